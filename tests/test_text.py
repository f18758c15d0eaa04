"""vmcoreinfo.parse on real texts and on hostile ones."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import vmcoreinfo
from helpers import FIXTURES

X86 = (FIXTURES / "x86_64-qemu-elf.VMCOREINFO.txt").read_bytes()
ARM = (FIXTURES / "arm64-qemu-elf.VMCOREINFO.txt").read_bytes()


def test_mapping_protocol_over_a_real_text() -> None:
    vi = vmcoreinfo.parse(X86)
    assert isinstance(vi, Mapping)
    lines = [ln for ln in X86.decode().splitlines() if ln]
    assert len(vi) == len(lines)
    assert list(vi)[:3] == ["OSRELEASE", "BUILD-ID", "PAGESIZE"]
    assert dict(vi) == dict(ln.split("=", 1) for ln in lines)
    assert "SYMBOL(init_uts_ns)" in vi and "nope" not in vi and 5 not in vi
    assert vi.get("nope", 7) == 7
    with pytest.raises(KeyError):
        vi["nope"]
    assert vi.raw == X86
    assert vi.offset_in_file is None
    assert vi.diagnostics == []


def test_parse_accepts_str_bytes_bytearray_memoryview() -> None:
    for data in (X86, X86.decode(), bytearray(X86), memoryview(X86)):
        assert vmcoreinfo.parse(data).osrelease == "6.1.0-48-cloud-amd64"
    with pytest.raises(TypeError):
        vmcoreinfo.parse(12)  # type: ignore[arg-type]


def test_typed_accessors_and_absence() -> None:
    vi = vmcoreinfo.parse(ARM)
    assert vi.size("page") == 64
    assert vi.length("mem_section") is None or vi.length("mem_section") > 0
    assert vi.symbol("no_such_symbol") is None
    assert vi.config("NO_SUCH") is None
    vi0 = vmcoreinfo.parse(b"NUMBER(phys_base)=0\n")
    assert vi0.phys_base == 0 and vmcoreinfo.parse(b"OSRELEASE=x\n").phys_base is None


def test_quirks_are_diagnosed_not_dropped() -> None:
    text = b"OSRELEASE=a\nOSRELEASE=b\nno equals here\n" + b"SYMBOL(x)=" + b"f" * 80 + b"\nPAGESIZE=4096\xff\nCRASHTIME=5\0\0\0"
    vi = vmcoreinfo.parse(text)
    assert vi.osrelease == "a"  # first occurrence wins
    kinds = {d.kind for d in vi.diagnostics}
    assert {"duplicate-key", "no-equals", "long-line", "non-utf8"} <= kinds
    assert vi.crashtime == 5
    assert vmcoreinfo.parse(b"A=1").missing_final_newline


def test_malformed_values_raise_with_offsets() -> None:
    text = b"OSRELEASE=x\nPAGESIZE=4k\nSYMBOL(s)=zz\nNUMBER(phys_base)=99999999999999999999999\n"
    vi = vmcoreinfo.parse(text)
    with pytest.raises(vmcoreinfo.FormatError) as ei:
        vi.page_size
    assert ei.value.offset == text.index(b"4k")
    with pytest.raises(vmcoreinfo.FormatError) as ei:
        vi.symbol("s")
    assert ei.value.offset == text.index(b"zz")
    with pytest.raises(vmcoreinfo.FormatError):
        vi.phys_base


def test_gigantic_and_garbage_text_is_bounded() -> None:
    big = b"K%d=%d\n" * 1
    vi = vmcoreinfo.parse(b"".join(b"K%d=%d\n" % (i, i) for i in range(200_000)))
    assert len(vi) == 200_000 and vi["K199999"] == "199999"
    vi = vmcoreinfo.parse(bytes(range(256)) * 4096)
    assert isinstance(len(vi), int)
    assert big


def test_non_utf8_keys_round_trip_through_the_mapping() -> None:
    vi = vmcoreinfo.parse(b"OSRELEASE=x\nSYMBOL(\xffbad)=10\nSIZE(page)=64\n")
    assert len(list(vi)) == 3
    for key in vi:
        assert key in vi
        assert vi[key] == vi.get(key)
    assert dict(vi.items())["SYMBOL(\udcffbad)"] == "10"
    assert "non-utf8" in {d.kind for d in vi.diagnostics}


def test_fwcfg_device_write_outcomes_match_the_docstring() -> None:
    """Only a full 16-byte write at offset 0 turns the note on; a partial write is stored but
    disables it; an empty or out-of-bounds write is ignored (nothing stored)."""
    entry = vmcoreinfo.FwCfgEntry(guest_format=1, size=4132, paddr=0x18CC000)
    dev = vmcoreinfo.FwCfgDevice()
    assert dev.write(0, entry.to_bytes()) == "accepted" and dev.has_vmcoreinfo
    assert dev.entry == entry and dev.entry.paddr == 0x18CC000 and dev.entry.size == 4132
    assert dev.write(8, (0x1000).to_bytes(8, "little")) == "disabled" and not dev.has_vmcoreinfo
    assert dev.entry.paddr == 0x1000  # stored
    assert dev.write(16, b"x") == "ignored" and dev.entry.paddr == 0x1000
    assert dev.write(0, vmcoreinfo.FwCfgEntry(guest_format=0).to_bytes()) == "disabled"
    assert dev.write(0, vmcoreinfo.FwCfgEntry(guest_format=2).to_bytes()) == "accepted-unsupported-format"
