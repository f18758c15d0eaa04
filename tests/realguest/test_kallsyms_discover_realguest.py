"""kallsyms found by a scan of the kernel image (``Dump.kernel_symbols(source="scan")``, what
kernels before 6.0 need) against the tables VMCOREINFO names (6.x guests): the same symbol list,
name for name, address for address; on the 5.10 guest (no kallsyms keys) the scan's ``_stext``
and the guest's own /proc/kallsyms lines agree and the object-walker roots are found.

Run:  VMCOREINFO_REALGUEST_DIR=... [VMCOREINFO_RD2_DIR=/path/to/rd2] \
      pytest -m realguest tests/realguest/test_kallsyms_discover_realguest.py
(the rd2 guests' cases need VMCOREINFO_RD2_DIR, the make-real-dumps.sh output directory).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

try:
    import vmcoreinfo
except ImportError:  # collected even under -m "not realguest"
    vmcoreinfo = None

pytestmark = pytest.mark.realguest

RD2_6X = ["x86_64-k612", "x86_64-panic", "arm64-panic", "arm64-k612"]


def rd2(guest: str) -> Path:
    root = os.environ.get("VMCOREINFO_RD2_DIR")
    if not root:
        pytest.skip("set VMCOREINFO_RD2_DIR to the make-real-dumps.sh output (rd2) for these guests")
    return Path(root) / guest


def same_as_vmcoreinfo(path: Path) -> None:
    with vmcoreinfo.open(path) as dump:
        keys = dump.kernel_symbols(source="vmcoreinfo")
        scan = dump.kernel_symbols(source="scan")
    assert (keys.source, scan.source) == ("vmcoreinfo", "scan")
    assert scan.encoding == keys.encoding
    assert len(scan) == len(keys) > 1000
    assert list(scan) == list(keys)


@pytest.mark.parametrize("guest", RD2_6X)
def test_scan_finds_the_tables_vmcoreinfo_names(guest: str) -> None:
    same_as_vmcoreinfo(rd2(guest) / "qemu-elf.core")


@pytest.mark.guests("i386")
def test_scan_finds_the_tables_vmcoreinfo_names_i386(guests) -> None:  # type: ignore[no-untyped-def]
    same_as_vmcoreinfo(Path(guests["i386"].path("qemu-elf.core", True)))


def test_scan_on_a_510_kernel_matches_its_own_kallsyms() -> None:
    d = rd2("x86_64-k510")
    lines = re.findall(r"^RD: kallsyms ([0-9a-f]+) (\w) (\S+)$", (d / "guest-rd-lines.txt").read_text(), re.M)
    assert lines, "no RD: kallsyms lines"
    text = (d / "VMCOREINFO.txt").read_text()
    assert "SYMBOL(kallsyms_names)" not in text
    stext = int(re.search(r"^SYMBOL\(_stext\)=([0-9a-f]+)$", text, re.M).group(1), 16)  # type: ignore[union-attr]
    with vmcoreinfo.open(d / "qemu-elf.core") as dump:
        syms = dump.symbols
        assert syms.source == "scan"
        assert syms.address("_stext") == stext
        for addr, _typ, name in lines:
            assert syms.address(name) == int(addr, 16), name
        for root in ("init_task", "modules", "__per_cpu_offset"):
            assert root in syms, root
        with pytest.raises(vmcoreinfo.UnsupportedFormatError, match="kallsyms_names"):
            dump.kernel_symbols(source="vmcoreinfo")
