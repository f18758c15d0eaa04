"""The VMCOREINFO scan, LiME and raw images on real full-size guest memory.

Each real QEMU ELF dump is scanned page by page; the note the guest itself reported (its
physical address and text) must be among the candidates, also for the guest that ran without
the qemu_fw_cfg driver (its dump has no VMCOREINFO note: the scan is the fallback). The x86_64
dump's memory is then written as a LiME image and as a sparse raw image in tmp (with the
writers of tools/make_lime_fixture.py) and read back: vmcoreinfo comes from the scan and must be
the guest's text. A few seconds in all.
"""

from __future__ import annotations

import importlib.util
import random
import time
from pathlib import Path

import pytest

try:
    import vmcoreinfo
except ImportError:  # collected under -m "not realguest" too; test_realguest.py reports it
    vmcoreinfo = None
from realguest_support import generator, note, record

pytestmark = pytest.mark.realguest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_lime_fixture.py"


def _tool():
    spec = importlib.util.spec_from_file_location("make_lime_fixture", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _scan(path: Path, **kw):
    with vmcoreinfo.open(path, **kw) as d:
        total = sum(e - s for s, e in d.memory_ranges())
        t0 = time.perf_counter()
        found = d.scan_vmcoreinfo()
        dt = time.perf_counter() - t0
        return d.format, total, dt, found


@pytest.mark.parametrize("g", list(generator.GUESTS))
def test_scan_finds_the_note_the_guest_reported(guests, g):
    gu = guests[g]
    path = gu.path("qemu-elf.core", True)
    fmt, total, dt, found = _scan(path)
    addrs = [v.note_paddr for v in found]
    paddr = gu.view["note_paddr"]
    assert paddr in addrs, f"scan found {[hex(a) for a in addrs]}, guest's note at {paddr:#x}"
    assert found[addrs.index(paddr)].raw == gu.text
    with vmcoreinfo.open(path) as d:
        if gu.manifest.get("guest_view", {}).get("driver") == "module-loaded":
            assert d.vmcoreinfo.raw == gu.text
        else:
            with pytest.raises(vmcoreinfo.NoVmcoreinfoError):
                d.vmcoreinfo
    note(
        f"{g}/qemu-elf.core: scan of {total >> 20} MiB in {dt:.2f} s ({total / dt / 1e6:.0f} MB/s), "
        f"candidates {[hex(a) for a in addrs]}"
    )
    record(path, "scan finds guest note")


@pytest.mark.guests("x86_64")
def test_real_memory_as_lime_and_raw(guests, tmp_path):
    gu = guests["x86_64"]
    src = gu.path("qemu-elf.core", True)
    tool = _tool()
    paddr = gu.view["note_paddr"]
    with vmcoreinfo.open(src) as d:
        ranges = d.memory_ranges()
        t0 = time.perf_counter()
        tool.write_lime(d, tmp_path / "mem.lime")
        # raw: the RAM below 1 GiB (x86 dumps also hold VGA VRAM and BIOS ROM near 4 GiB,
        # which would make the sparse file, and its scan, 4 GiB long)
        low = [(s, min(e, 1 << 30)) for s, e in ranges if s < 1 << 30]
        tool.write_raw(d, tmp_path / "mem.raw", low)
        t_write = time.perf_counter() - t0
        rnd = random.Random(1)
        samples = [rnd.randrange(s, e - 4096) & ~0xFFF for s, e in low if e - s > 8192 for _ in range(8)]
        ref = {a: d.read_phys(a, 4096) for a in samples}
    for fname, kw in (("mem.lime", {}), ("mem.raw", {"format": "raw"})):
        fmt, total, dt, found = _scan(tmp_path / fname, **kw)
        assert paddr in [v.note_paddr for v in found]
        with vmcoreinfo.open(tmp_path / fname, **kw) as m:
            assert m.format == fmt
            vi = m.vmcoreinfo
            assert vi.raw == gu.text
            assert (m.machine, m.byteorder) == ("x86_64", "little")
            for a, page in ref.items():
                assert m.read_phys(a, 4096) == page
        note(
            f"x86_64 as {fmt}: scan of {total >> 20} MiB in {dt:.2f} s; vmcoreinfo at {vi.note_paddr:#x}"
            f" of {len(found)} candidate(s)"
        )
        record(tmp_path / fname, "lime/raw from real memory")
        (tmp_path / fname).unlink()  # ~270 MB each; pytest keeps recent tmp dirs
    note(f"x86_64: LiME + raw written in {t_write:.2f} s")
