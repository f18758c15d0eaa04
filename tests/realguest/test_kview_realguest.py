"""Real-guest conformance of the kernel view's address translation: on every guest and every
dump format each produced, kernel virtual addresses read through VMCOREINFO and the kernel's
own page tables give what the guest itself reported, agree across formats, and agree with
libkdumpfile's translation wherever libkdumpfile translates at all.

Run:  VMCOREINFO_REALGUEST_DIR=... pytest -m realguest tests/realguest/test_kview_realguest.py
"""

from __future__ import annotations

import functools
import json
import re
import subprocess

import pytest

try:
    import vmcoreinfo
except ImportError as e:  # collected even under -m "not realguest": fail only when run
    vmcoreinfo = None
    _IMPORT_ERROR = e
from realguest_support import DEBIAN_PYTHON, HERE, generator, note, record

pytestmark = pytest.mark.realguest

DRIVER_GUESTS = [g for g, s in generator.GUESTS.items() if s["driver"]]
CASES = [pytest.param(g, f, req, id=f"{g}/{f}") for g in DRIVER_GUESTS for f, req in generator.PRODUCTS[g]]
REFERENCE = "qemu-elf.core"
OTHER_CASES = [c for c in CASES if c.values[1] != REFERENCE]


@pytest.fixture(autouse=True)
def _need_vmcoreinfo():
    if vmcoreinfo is None:
        pytest.fail(
            f"the vmcoreinfo extension is not importable ({_IMPORT_ERROR}); build it with `maturin develop`", pytrace=False
        )


def uts_release_addr(vi) -> int:
    # OFFSET(uts_namespace.name) entered VMCOREINFO in Linux 5.11 ("kdump: append
    # uts_namespace.name offset to VMCOREINFO"); until 5.10 struct uts_namespace begins
    # with struct kref (4 bytes) and the char arrays of name follow at 4
    off = vi.offset("uts_namespace", "name")
    if off is None and tuple(int(x) for x in re.findall(r"\d+", vi.osrelease)[:2]) < (5, 11):
        off = 4
    return vi.symbol("init_uts_ns") + off + 130


def probe_addresses(dump) -> list[int]:
    """Kernel addresses worth comparing: every SYMBOL in VMCOREINFO, the release string, and a
    spread of direct-map addresses (the page tables, low memory, memory near the top)."""
    vi = dump.vmcoreinfo
    lay = dump.kernel_layout()
    addrs = {uts_release_addr(vi)}
    for key in vi:
        if key.startswith("SYMBOL("):
            addrs.add(vi.symbol(key[7:-1]))
    po = lay["page_offset"]
    if po is not None:
        # arm64 maps PHYS_OFFSET at PAGE_OFFSET (modulo 2^64: PHYS_OFFSET prints "negative" when
        # the linear map is randomised); x86 maps physical 0 there
        base = (vi.number("PHYS_OFFSET") or 0) & (2**64 - 1) if lay["arch"] == "aarch64" else 0
        ranges = dump.memory_ranges()
        lo = ranges[0][0]
        top = max(end for _, end in ranges)
        for pa in (lo + 0x1000, lo + 0x9F000, lo + 0x100000, lay["root"], lo + 0x1234567, (lo + top) // 2, top - 0x1000):
            if lay["arch"] != "i386" or pa < 0x3000_0000:  # i386: lowmem only
                addrs.add((po + pa - base) & (2**64 - 1))
    return sorted(a for a in addrs if a)


@functools.cache
def kdumpfile_translate(path: str, arch: str, addrs: tuple[int, ...]) -> dict:
    cmd = [DEBIAN_PYTHON, str(HERE / "kdumpfile_translate.py"), path, arch] + [f"{a:x}" for a in addrs]
    cp = subprocess.run(cmd, text=True, capture_output=True, timeout=300)
    if cp.returncode != 0 or not cp.stdout.strip():
        return {"ok": False, "error": f"probe crashed rc={cp.returncode}: {cp.stderr[-300:]}", "pa": {}}
    return json.loads(cp.stdout.strip().splitlines()[-1])


def ours(dump, addrs) -> dict[int, int | None]:
    out = {}
    for a in addrs:
        try:
            out[a] = dump.translate(a)
        except vmcoreinfo.UnmappedError:
            out[a] = None
    return out


@pytest.mark.parametrize("g,fname,required", CASES)
def test_read_virt_finds_osrelease(guests, g, fname, required):
    """The issue's check: read_virt(init_uts_ns.name.release, 65) starts with OSRELEASE."""
    path = guests[g].path(fname, required)
    with vmcoreinfo.open(path) as dump:
        vi = dump.vmcoreinfo
        addr = uts_release_addr(vi)
        got = dump.read_virt(addr, 65)
        assert got.startswith(vi.osrelease.encode()), (got, vi.osrelease)
        assert got[len(vi.osrelease)] == 0
        buf = bytearray(65)
        dump.read_virt_into(addr, buf)
        assert bytes(buf) == got
        pa = dump.translate(addr)
        assert dump.read_phys(pa, 65) == got
        # a read that crosses pages agrees with page-by-page reads
        start = (addr & ~0xFFF) - 8
        span = dump.read_virt(start, 8 + 4096 + 8)
        assert span[8 + (addr & 0xFFF) :][: len(vi.osrelease)] == vi.osrelease.encode()
    record(path, "read_virt(uts)==OSRELEASE")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_layout_matches_the_guest(guests, g, fname, required):
    """The layout found from VMCOREINFO and the page tables is the guest's own: x86_64
    page_offset_base as the guest read it, the level count, i386 PAE, the root table, and
    kernel text the guest's kallsyms names."""
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        vi = dump.vmcoreinfo
        lay = dump.kernel_layout()
        ks = gu.view.get("kallsyms") or {}
        kvar = gu.view.get("kvar") or {}
        if dump.machine == "x86_64":
            assert lay["arch"] == "x86_64"
            assert lay["levels"] == (5 if vi.number("pgtable_l5_enabled") else 4)
            assert lay["page_offset"] is not None, lay["page_offset_error"]
            if kvar.get("page_offset_base") is not None:
                assert lay["page_offset"] == kvar["page_offset_base"]
                record(path, "page_offset_base==guest")
            else:
                note(f"{path}: the guest did not report page_offset_base; checked alignment only")
            assert lay["page_offset"] % (1 << 30) == 0
            assert dump.translate(vi.symbol("init_top_pgt")) == lay["root"]
        elif dump.machine == "i386":
            assert lay["arch"] == "i386"
            assert lay["pae"] == bool(vi.config("X86_PAE"))
            assert lay["levels"] == (3 if lay["pae"] else 2)
            assert dump.translate(vi.symbol("swapper_pg_dir")) == lay["root"]
            # lowmem is linear at PAGE_OFFSET
            assert dump.translate(lay["page_offset"] + 0x100000) == 0x100000
        else:
            assert lay["arch"] == "aarch64"
            assert dump.translate(vi.symbol("swapper_pg_dir")) == lay["root"]
            assert lay["va_bits"] in (39, 42, 47, 48, 52)
            # the linear map as the kernel computes it (arch/arm64/include/asm/memory.h
            # __phys_to_virt: (pa - PHYS_OFFSET) | PAGE_OFFSET, PAGE_OFFSET being
            # _PAGE_OFFSET(VA_BITS) of the build): a 52-bit build (Debian 13's 6.12,
            # NUMBER(VA_BITS)=52) on a 48-bit CPU lowers memstart_addr (PHYS_OFFSET) by
            # _PAGE_OFFSET(48) - _PAGE_OFFSET(52), so the address lands in the 48-bit range
            build_page_offset = (-(1 << vi.number("VA_BITS"))) & (2**64 - 1)
            linear_root = ((lay["root"] - vi.number("PHYS_OFFSET")) & (2**64 - 1)) | build_page_offset
            assert linear_root >= lay["page_offset"]
            assert dump.translate(linear_root) == lay["root"]
        if ks.get("_stext") is not None:
            assert ks["_stext"] == vi.symbol("_stext")
            dump.translate(ks["_stext"])  # kernel text is mapped
            record(path, "_stext mapped")
    record(path, f"layout {lay['arch']} {lay['levels']}-level")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_unmapped_is_unmapped_error(guests, g, fname, required):
    path = guests[g].path(fname, required)
    with vmcoreinfo.open(path) as dump:
        lay = dump.kernel_layout()
        if lay["arch"] == "x86_64":
            holes = [0xFFFF800000000000 if lay["levels"] == 4 else 0xFF00000000000000, 0x1000]
        elif lay["arch"] == "i386":
            holes = [0xBFFFF000 if lay["page_offset"] == 0xC0000000 else 0x1000]
        else:
            holes = [lay["page_offset"] + (1 << (lay["va_bits"] - 2)), 0x1000]
        for a in holes:
            with pytest.raises(vmcoreinfo.UnmappedError) as ei:
                dump.translate(a)
            assert ei.value.address == a and ei.value.location == "virtual"
            assert isinstance(ei.value, LookupError) and isinstance(ei.value, vmcoreinfo.Error)
            with pytest.raises(vmcoreinfo.UnmappedError):
                dump.read_virt(a, 16)
    record(path, "UnmappedError")


@pytest.mark.parametrize("g,fname,required", OTHER_CASES)
def test_translation_agrees_across_formats(guests, g, fname, required):
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(gu.path(REFERENCE, True)) as ref:
        addrs = probe_addresses(ref)
        want = ours(ref, addrs)
    with vmcoreinfo.open(path) as dump:
        got = ours(dump, addrs)
    assert got == want
    record(path, f"translate=={REFERENCE} ({len(addrs)} addresses)")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_translation_agrees_with_libkdumpfile(guests, g, fname, required):
    """Wherever libkdumpfile translates an address, ours gives the same physical address; an
    address libkdumpfile translates is never unmapped for us."""
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        addrs = tuple(probe_addresses(dump))
        mine = ours(dump, addrs)
        arch = {"x86_64": "x86_64", "aarch64": "aarch64"}.get(dump.machine, "-")
        fmt = dump.format
    peer = kdumpfile_translate(str(path), arch, addrs)
    if not peer["ok"]:
        note(f"{path}: libkdumpfile translates nothing ({(peer['error'] or '')[:100]})")
        record(path, "libkdumpfile translate n/a")
        # It must work on the x86_64 files it can open (flattened files it cannot).
        assert not (arch == "x86_64" and fmt != "flattened-kdump"), peer["error"]
        return
    compared = 0
    for a in addrs:
        theirs = peer["pa"].get(f"{a:x}")
        if theirs is None:
            continue
        assert mine[a] == theirs, f"{a:#x}: ours {mine[a] and hex(mine[a])}, libkdumpfile {theirs:#x}"
        compared += 1
    assert compared > 0
    record(path, f"translate==libkdumpfile ({compared}/{len(addrs)})")


@pytest.mark.parametrize("g,fname,required", [c for c in CASES if "d31" in c.values[1]])
def test_excluded_pages_are_absent_not_garbage(guests, g, fname, required):
    """makedumpfile -d 31 drops free and zero pages: reading one through the direct map raises
    AbsentMemoryError at its physical address."""
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(gu.path(REFERENCE, True)) as ref:
        full = ref.memory_ranges()
    with vmcoreinfo.open(path) as dump:
        lay = dump.kernel_layout()
        kept = dump.memory_ranges()
        gap = next(
            (end for (_, end), (start, _) in zip(kept, kept[1:]) if start > end and any(s <= end < e for s, e in full)), None
        )
        if gap is None or lay["page_offset"] is None or (lay["arch"] == "i386" and gap >= 0x3000_0000):
            pytest.skip("no excluded page inside RAM reachable through the direct map")
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            dump.read_virt(lay["page_offset"] + gap, 64)
        assert ei.value.address == gap
    record(path, "excluded page -> AbsentMemoryError")
