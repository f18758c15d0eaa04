"""Real-guest conformance (issue #4): every dump QEMU and makedumpfile produced from
real Linux guests is read with vmcoreinfo and compared with what the guest itself
reported and with what peers (libkdumpfile, crash) read.

Run:  pytest -m realguest tests/realguest -s      (root; ~1-3 minutes)
The dumps come from generate.py (see conftest.py for VMCOREINFO_REALGUEST_DIR).
"""

from __future__ import annotations

import random
import re
import struct
import zlib

import pytest

try:
    import vmcoreinfo
except ImportError as e:  # collected even under -m "not realguest": fail only when run
    vmcoreinfo = None
    _IMPORT_ERROR = e
from realguest_support import crash_osrelease, generator, kdumpfile_probe, note, record, short

pytestmark = pytest.mark.realguest

PAGE = 4096
U64 = (1 << 64) - 1
X86_KERNEL_TEXT = 0xFFFFFFFF81000000  # _stext without KASLR (x86_64)
DRIVER_GUESTS = [g for g, s in generator.GUESTS.items() if s["driver"]]
NODRIVER_GUESTS = [g for g, s in generator.GUESTS.items() if not s["driver"]]
CASES = [pytest.param(g, f, req, id=f"{g}/{f}") for g in DRIVER_GUESTS for f, req in generator.PRODUCTS[g]]
NODRIVER_CASES = [pytest.param(g, f, req, id=f"{g}/{f}") for g in NODRIVER_GUESTS for f, req in generator.PRODUCTS[g]]
# the reference each dump's physical pages are compared against
REFERENCE = "qemu-elf.core"
PAGE_CASES = [c for c in CASES if c.values[1] != REFERENCE]
X86_64_DRIVER_GUESTS = [g for g in DRIVER_GUESTS if generator.GUESTS[g]["arch"] == "x86_64"]


@pytest.fixture(autouse=True)
def _need_vmcoreinfo():
    if vmcoreinfo is None:
        pytest.fail(
            f"the vmcoreinfo extension is not importable ({_IMPORT_ERROR}); "
            "build it with `pip install -e .` or `maturin develop`",
            pytrace=False,
        )


def parse_note(buf: bytes) -> tuple[int, int, int, bytes, bytes, int]:
    """(namesz, descsz, type, name, desc, padded length) of the ELF note at buf[0]."""
    namesz, descsz, ntype = struct.unpack_from("<III", buf, 0)
    name_end = 12 + (namesz + 3) // 4 * 4
    end = name_end + (descsz + 3) // 4 * 4
    return namesz, descsz, ntype, buf[12 : 12 + namesz], buf[name_end : name_end + descsz], end


def is_filtered(guest, fname: str) -> bool:
    """makedumpfile with a dump level that drops pages (zero pages included)."""
    return fname.startswith("md-") and "-d 31" in guest.files[fname]["producer"]


def qemu_hex_phys_base(text_value: str) -> int:
    """QEMU's (wrong) reading of x86_64 NUMBER(phys_base): base 16, sign kept."""
    neg = text_value.startswith("-")
    v = int(text_value.lstrip("-"), 16)
    return (-v if neg else v) & U64


# ---------------------------------------------------------------- guest view sanity
@pytest.mark.parametrize("g", DRIVER_GUESTS)
def test_guest_view_consistent(guests, g):
    """The guest's own report is coherent: fw_cfg entry, /sys/kernel/vmcoreinfo, kcore."""
    gu = guests[g]
    v = gu.view
    entry = vmcoreinfo.FwCfgEntry.from_bytes(gu.fwcfg_raw)
    assert entry.guest_format == 1  # ELF
    assert entry.host_format == 0  # the guest's full write replaced it
    assert entry.size == v["note_size"] == 4132  # VMCOREINFO_NOTE_SIZE (0x1024)
    assert entry.paddr == v["note_paddr"]
    assert entry.paddr % PAGE == 0
    assert entry.to_bytes() == gu.fwcfg_raw
    assert len(gu.note_bytes) == entry.size  # the guest read the whole note
    namesz, descsz, ntype, name, desc, end = parse_note(gu.note_bytes)
    assert (namesz, ntype, name) == (11, 0, b"VMCOREINFO\0")
    assert end <= entry.size
    assert desc == gu.text
    assert gu.text.startswith(b"OSRELEASE=" + v["uname_r"].encode() + b"\n")
    if gu.elf_arch == "x86_64":
        # the guest's own phys_base (kallsyms _text vs /proc/iomem "Kernel code")
        assert v["phys_base_from_kallsyms_iomem"] == int(v["phys_base_text"])


@pytest.mark.parametrize("g", DRIVER_GUESTS)
def test_guest_identity(guests, g):
    """What the guest reported about itself (uname -r, its own /proc/kallsyms, the marker it
    wrote to /dev/kmsg) agrees with the VMCOREINFO it registered; the guest is what it claims
    (i386 PAE or not, x86_64 4- or 5-level paging)."""
    gu = guests[g]
    v = gu.view
    vi = vmcoreinfo.parse(gu.text)
    assert vi.osrelease == v["uname_r"]
    assert v["marker-written"] == generator.MARKER
    ks = v["kallsyms"]
    assert set(generator.KALLSYMS) <= set(ks)
    assert ks["_stext"] is not None and ks["_stext"] == vi.symbol("_stext")
    if ks["init_uts_ns"] is not None:  # data symbols need CONFIG_KALLSYMS_ALL
        assert ks["init_uts_ns"] == vi.symbol("init_uts_ns")
    for want in generator.GUESTS[g].get("vmcoreinfo", []):
        line = want.lstrip("!")  # "KEY=": the key with any value (kallsyms keys: 6.0+)
        have = [t for t in gu.text.decode().splitlines() if t == line or (line.endswith("=") and t.startswith(line))]
        assert bool(have) != want.startswith("!"), want
    symbols = {k[len("SYMBOL(") : -1]: int(val, 16) for k, val in vi.items() if k.startswith("SYMBOL(")}
    if gu.elf_arch == "i386":
        assert v["uname-m"] == "i686" and v["kcore-class"] == "32"
        assert vi["SIZE(atomic_long_t)"] == "4"
        assert all(a < 2**32 for a in symbols.values()), symbols
        assert ks["_stext"] >= 0xC0000000  # PAGE_OFFSET 0xc0000000 (VMSPLIT_3G)
        assert ("-pae" in v["uname_r"]) == ("CONFIG_X86_PAE" in vi)
    elif gu.elf_arch == "x86_64":
        assert v["uname-m"] == "x86_64" and v["kcore-class"] == "64"
        assert vi.kernel_offset == ks["_stext"] - X86_KERNEL_TEXT
        assert vi.kernel_offset != 0, "KASLR is meant to be on"
        l5 = vi.number("pgtable_l5_enabled")
        # the guest's own page_offset_base, read through /proc/kcore
        # (KASLR moves it in 1 GiB steps up from __PAGE_OFFSET_BASE_L4/L5)
        pob = v["kvar"]["page_offset_base"]
        assert pob >= (0xFF11000000000000 if l5 else 0xFFFF888000000000)
        assert pob % (1 << 30) == 0
        assert (pob >> 47 == 0x1FFFF) == (not l5)  # 4-level: a 48-bit canonical address
    note(
        f"{g}: uname -r {v['uname_r']}, _stext {ks['_stext']:#x}, "
        + ", ".join(f"{k} {'absent' if a is None else hex(a)}" for k, a in ks.items() if k != "_stext")
    )


# ---------------------------------------------------------------- per dump
@pytest.mark.parametrize("g,fname,required", CASES)
def test_vmcoreinfo_equals_guest_text(guests, g, fname, required):
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        assert dump.format == gu.files[fname]["format"]
        assert dump.machine == gu.elf_arch
        assert dump.byteorder == "little"
        details = dump.details()
        if dump.format == "elf":
            # QEMU writes i386 PC guests as ELF64 too (the BIOS ROM block ends at 4 GiB)
            assert dump.elf_class == 64
        if gu.elf_arch == "i386":
            assert details["address_bits"] == 32
            if dump.format == "elf" and fname.startswith("qemu-"):
                assert "ELFCLASS64" in details["class_note"]
        else:
            assert details["address_bits"] == 64
            assert "class_note" not in details
        vi = dump.vmcoreinfo
        assert vi.raw == gu.text, "vmcoreinfo.raw differs from the guest's own note text"
    record(path, "raw==guest")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_fw_cfg_entry_points_at_note(guests, g, fname, required):
    """Follow the fw_cfg entry the guest reported: the dump's memory at entry.paddr holds
    the whole note, and read_guest_note() yields the same text as the dump's note."""
    gu = guests[g]
    path = gu.path(fname, required)
    entry = vmcoreinfo.FwCfgEntry.from_bytes(gu.fwcfg_raw)
    with vmcoreinfo.open(path) as dump:
        try:
            mem = dump.read_phys(entry.paddr, entry.size)
        except vmcoreinfo.AbsentMemoryError as e:
            # makedumpfile -d 31 drops zero pages: the note's second page is all zero
            # (alloc_pages_exact(VMCOREINFO_NOTE_SIZE, __GFP_ZERO) spans two pages)
            assert is_filtered(gu, fname), f"{fname}: note memory absent: {e}"
            hdr = dump.read_phys(entry.paddr, 12)
            end = parse_note(hdr + bytes(4096))[5]
            mem = dump.read_phys(entry.paddr, end)
            assert not any(gu.note_bytes[end:]), "excluded remainder was not zero"
            note(f"{path}: note tail [{end:#x}, {entry.size:#x}) excluded by makedumpfile (zero page); read the padded note only")
        namesz, descsz, ntype, name, desc, end = parse_note(mem)
        assert (namesz, ntype, name) == (11, 0, b"VMCOREINFO\0")
        assert end <= entry.size
        assert desc == gu.text
        assert mem == gu.note_bytes[: len(mem)], "note memory differs from the guest's kcore read"
        try:
            vi = dump.read_guest_note(entry)
        except vmcoreinfo.AbsentMemoryError:
            assert is_filtered(gu, fname)
            note(f"{path}: read_guest_note raised AbsentMemoryError (filtered dump)")
        else:
            assert vi.raw == gu.text
            assert vi.raw == dump.vmcoreinfo.raw
    record(path, "fw_cfg->note")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_values_sane(guests, g, fname, required):
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        vi = dump.vmcoreinfo
    assert vi.page_size == 4096
    assert vi.osrelease == gu.view["uname_r"]
    assert vi["OSRELEASE"] == gu.view["uname_r"]
    assert vi.symbol("init_uts_ns") is not None
    assert vi.crashtime is None  # a live QEMU dump, no crash
    if vi.build_id is not None:
        assert re.fullmatch(r"[0-9a-f]{40}", vi.build_id)
    if gu.elf_arch == "x86_64":
        text_pb = gu.view["phys_base_text"]
        assert vi.phys_base == int(text_pb)  # the kernel's signed decimal
        assert vi.phys_base == gu.view["phys_base_from_kallsyms_iomem"]
        if vi.phys_base != 0:
            assert vi.phys_base & U64 != qemu_hex_phys_base(text_pb), "phys_base must not be QEMU's base-16 reading"
        assert vi.number("phys_base") == int(text_pb)
        assert vi.kernel_offset is not None
    if gu.elf_arch == "i386":
        # i386 writes neither phys_base nor KERNELOFFSET (KASLR moves both address spaces together)
        assert vi.phys_base is None and vi.kernel_offset is None
        assert vi.symbol("_stext") == gu.view["kallsyms"]["_stext"] < 2**32
    record(path, "values")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_libkdumpfile_agrees(guests, g, fname, required):
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        raw = dump.vmcoreinfo.raw
        fmt = dump.format
    peer = kdumpfile_probe(str(path), gu.elf_arch)
    if not peer["ok"]:
        # libkdumpfile 0.5.1 cannot open flattened files; it must read the others
        assert fmt == "flattened-kdump", f"libkdumpfile failed on a {fmt} file: {peer['error']}"
        note(f"{path}: libkdumpfile n/a ({peer['error']})")
        record(path, "libkdumpfile n/a")
        return
    assert bytes.fromhex(peer["raw_hex"]) == raw, "libkdumpfile's raw VMCOREINFO differs"
    assert bytes.fromhex(peer["raw_hex"]) == gu.text
    if gu.elf_arch == "x86_64" and peer.get("phys_base") is not None:
        assert peer["phys_base"] == int(gu.view["phys_base_text"]) & U64
    record(path, "libkdumpfile==")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_crash_osrelease_agrees(guests, g, fname, required):
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        osrelease = dump.vmcoreinfo.osrelease
    rc, out = crash_osrelease(str(path))
    if rc != 0 or out == "unknown":
        # Debian's crash is built for the host: it prints "unknown" for an aarch64 ELF
        note(f"{path}: crash --osrelease n/a (rc={rc}, {out!r})")
        record(path, "crash n/a")
        assert gu.elf_arch != "x86_64", f"crash failed on an x86_64 dump: rc={rc} {out!r}"
        return
    assert out == osrelease == gu.view["uname_r"]
    record(path, "crash==")


# ---------------------------------------------------------------- physical pages
def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _sample_pages(common: list[tuple[int, int]], must: int, n: int, seed: int) -> list[int]:
    pages = set()
    for lo, hi in common:
        first = (lo + PAGE - 1) // PAGE * PAGE
        last = (hi // PAGE - 1) * PAGE
        if first <= last:
            pages.update((first, last))
    if any(lo <= must < hi for lo, hi in common):
        pages.add(must)
    rnd = random.Random(seed)
    total = sum(max(0, hi // PAGE - (lo + PAGE - 1) // PAGE) for lo, hi in common)
    for _ in range(min(n, total)):
        k = rnd.randrange(total)
        for lo, hi in common:
            cnt = max(0, hi // PAGE - (lo + PAGE - 1) // PAGE)
            if k < cnt:
                pages.add(((lo + PAGE - 1) // PAGE + k) * PAGE)
                break
            k -= cnt
    return sorted(pages)


@pytest.mark.parametrize("g,fname,required", PAGE_CASES)
def test_physical_pages_equal(guests, g, fname, required):
    """The guest was stopped for all dumps: every page present in both the QEMU ELF
    and this dump reads the same (sampled; always including the note's page)."""
    gu = guests[g]
    path = gu.path(fname, required)
    ref = gu.path(REFERENCE, True)
    paddr = gu.view["note_paddr"]
    # Compare only memory the producers saved: ELF p_filesz..p_memsz tails are memory the
    # producer did not write (makedumpfile -E's excluded pages), so read them as absent.
    with vmcoreinfo.open(ref, elf_tails="absent") as a, vmcoreinfo.open(path, elf_tails="absent") as b:
        ra, rb = a.memory_ranges(), b.memory_ranges()
        assert ra and rb
        for lo, hi in ra + rb:
            assert lo < hi
        common = _intersect(sorted(ra), sorted(rb))
        assert any(lo <= paddr < hi for lo, hi in common), f"note page {paddr:#x} not in both dumps"
        pages = _sample_pages(common, paddr, 256, seed=zlib.crc32(fname.encode()))
        assert paddr in pages
        differ = [p for p in pages if a.read_phys(p, PAGE) != b.read_phys(p, PAGE)]
        if b.format == "elf":
            # Read as the ELF format defines (elf_tails="zeros"), tails are zeros; by default absent.
            tails = _elf_unbacked(path)
            with vmcoreinfo.open(path, elf_tails="zeros") as z:
                for lo, _hi in tails[:3]:
                    assert z.read_phys(lo, 16) == bytes(16)
                    with pytest.raises(vmcoreinfo.AbsentMemoryError):
                        b.read_phys(lo, 16)
        assert not differ, f"{len(differ)} of {len(pages)} pages differ, e.g. {[hex(p) for p in differ[:5]]}"
        # read_phys_into fills a caller's buffer with the same bytes
        buf = bytearray(PAGE)
        b.read_phys_into(paddr, buf)
        assert bytes(buf) == a.read_phys(paddr, PAGE)
    record(path, f"{len(pages)} pages=={REFERENCE}")


def _elf_unbacked(path) -> list[tuple[int, int]]:
    """Physical ranges [paddr + p_filesz, paddr + p_memsz) of an ELF64 LE dump's PT_LOADs."""
    with open(path, "rb") as f:
        eh = f.read(64)
        (phoff,) = struct.unpack_from("<Q", eh, 32)
        (phnum,) = struct.unpack_from("<H", eh, 56)
        f.seek(phoff)
        table = f.read(56 * phnum)
    out = []
    for i in range(phnum):
        ptype, _, _, _, paddr, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", table, 56 * i)
        if ptype == 1 and memsz > filesz:
            out.append((paddr + filesz, paddr + memsz))
    return out


# ---------------------------------------------------------------- QEMU's phys_base bug
def _kdump_sub_header_phys_base(path) -> int:
    with open(path, "rb") as f:
        head = f.read(512)
        assert head[:8] == b"KDUMP   "
        block_size = struct.unpack_from("<i", head, 428)[0]  # 64-bit producer layout
        f.seek(block_size)
        return struct.unpack("<Q", f.read(8))[0]


@pytest.mark.parametrize("g", X86_64_DRIVER_GUESTS)
def test_qemu_kdump_header_phys_base_is_hex_reading(guests, g):
    """QEMU parses x86_64 NUMBER(phys_base) in base 16; the kernel wrote decimal. The
    header value is QEMU's; vmcoreinfo reports the text's (right) value."""
    gu = guests[g]
    path = gu.path("qemu-kdump-zlib.kdump", True)
    text_pb = gu.view["phys_base_text"]
    hdr = _kdump_sub_header_phys_base(path)
    assert hdr == qemu_hex_phys_base(text_pb)
    with vmcoreinfo.open(path) as dump:
        assert dump.vmcoreinfo.phys_base == int(text_pb)
    if int(text_pb) != 0:
        assert hdr != int(text_pb) & U64
    note(f"{path}: kdump header phys_base {hdr:#x}; text says {text_pb} ({int(text_pb) & U64:#x})")
    record(path, "header phys_base bug")


# ---------------------------------------------------------------- no driver
@pytest.mark.parametrize("g,fname,required", NODRIVER_CASES)
def test_no_vmcoreinfo_without_driver(guests, g, fname, required):
    gu = guests[g]
    assert gu.view["fwcfg_raw_hex"] is None  # the guest never wrote fw_cfg
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError) as ei:
            dump.vmcoreinfo
        msg = str(ei.value)
        assert "-device vmcoreinfo" in msg
        assert "qemu_fw_cfg" in msg
        assert isinstance(ei.value, LookupError)
        assert not [n for n in dump.notes() if n.name == "VMCOREINFO"]
        # the kernel's note is still in guest RAM; QEMU just never learnt where
        paddr = gu.view["note_paddr"]
        end = parse_note(gu.note_bytes)[5]
        mem = dump.read_phys(paddr, end)
        assert parse_note(mem)[4] == gu.text
    peer = kdumpfile_probe(str(path), gu.elf_arch)
    assert not peer.get("raw_hex"), "libkdumpfile found a VMCOREINFO the dump should lack"
    record(path, "NoVmcoreinfoError")


# ---------------------------------------------------------------- coverage of the run
def test_every_dump_is_checked(guests):
    """Nothing the generator wrote escapes the parametrized tests."""
    for g, gu in guests.items():
        planned = {f for f, _ in generator.PRODUCTS[g]}
        extra = set(gu.files) - planned
        assert not extra, f"{g}: dumps not covered by the tests: {sorted(extra)}"
        for r in gu.manifest["refused"]:
            note(f"{g}: QEMU refused format={r['format']} paging={r['paging']}: {r['error']}")
        for r in gu.manifest["failed"]:
            note(f"{g}: not produced: {r['file']}: {short(r.get('error'))}")


@pytest.mark.guests("x86_64")  # reads guests["x86_64"]
def test_elf_tails_read_absent_like_the_kdump_of_the_same_dump_level(guests):
    """makedumpfile -E writes pages it excluded as PT_LOAD tails: where the kdump file of the same
    dump level says a page was excluded by the producer and the ELF file has it in a tail, both
    say absent by default (the ELF reading used to invent zeros there)."""
    gu = guests["x86_64"]
    elf, kd = gu.path("md-d31.elf", False), gu.path("md-zlib-d31.kdump", False)
    tails = _elf_unbacked(elf)
    assert tails
    checked = 0
    with (
        vmcoreinfo.open(elf) as e,
        vmcoreinfo.open(elf, elf_tails="zeros") as z,
        vmcoreinfo.open(kd) as k,
    ):
        for lo, hi in tails:
            for addr in range((lo + PAGE - 1) // PAGE * PAGE, hi, max(PAGE, (hi - lo) // 8 // PAGE * PAGE)):
                try:
                    k.read_phys(addr, 16)
                    continue  # the kdump run kept this page
                except vmcoreinfo.AbsentMemoryError as ek:
                    if "excluded by the producer" not in str(ek):
                        continue  # e.g. beyond the kdump's max_mapnr (device memory)
                with pytest.raises(vmcoreinfo.AbsentMemoryError) as ee:
                    e.read_phys(addr, 16)
                assert (getattr(ee.value, "address", None) or ee.value.offset) == addr
                assert z.read_phys(addr, 16) == bytes(16)
                checked += 1
    assert checked
    record(elf, f"{checked} tail pages absent as in md-zlib-d31.kdump")


@pytest.mark.guests("x86_64")  # reads guests["x86_64"]
def test_a_real_dump_cut_to_1_mib_says_so(guests, tmp_path):
    """The first MiB of a real dump: show warns how much memory is missing; reads past the cut
    name the offset where the data was declared and do not claim the file shrank."""
    import subprocess
    import sys

    src = guests["x86_64"].path(REFERENCE, True)
    cut = tmp_path / "cut.core"
    with open(src, "rb") as f:
        cut.write_bytes(f.read(1 << 20))
    with vmcoreinfo.open(cut) as d:
        det = d.details()
        assert det["memory_stored_bytes"] < det["memory_declared_bytes"] // 100
        assert d.vmcoreinfo.osrelease
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.read_phys(0x1000000, PAGE)
        assert ei.value.offset > 1 << 20 and "shr" not in str(ei.value)
    cp = subprocess.run([sys.executable, "-m", "vmcoreinfo", "show", str(cut)], capture_output=True, text=True, check=False)
    assert cp.returncode == 4  # ExitCode.CUT_SHORT: identified, but the file was cut short
    assert "(CUT SHORT)" in cp.stdout and "warning: the file holds only" in cp.stderr
