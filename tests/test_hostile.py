"""Malformed files derived from a real dump: every case is a typed error naming file and offset."""

from __future__ import annotations

import pathlib
import struct

import pytest
import vmcoreinfo
from helpers import FIXTURES

REAL = (FIXTURES / "x86_64-qemu-elf.core").read_bytes()
PHOFF = 0xC0  # QEMU 7.2 puts the program headers after the section headers
NOTE_OFF = 0x1D8


def write(tmp_path: pathlib.Path, data: bytes, name: str = "bad.core") -> pathlib.Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def open_and_identify(p: pathlib.Path) -> None:
    with vmcoreinfo.open(p) as d:
        d.vmcoreinfo.osrelease


@pytest.mark.parametrize(
    "cut",
    [0, 3, 4, 16, 63, 64, 0x40 + 64, PHOFF, PHOFF + 56, PHOFF + 4 * 56 - 1, NOTE_OFF + 11, NOTE_OFF + 0x100, NOTE_OFF + 0x1007],
)
def test_truncation_at_header_boundaries(tmp_path: pathlib.Path, cut: int) -> None:
    p = write(tmp_path, REAL[:cut])
    with pytest.raises(vmcoreinfo.Error) as ei:
        open_and_identify(p)
    assert isinstance(ei.value, (vmcoreinfo.FormatError, vmcoreinfo.NoVmcoreinfoError))
    assert ei.value.path == str(p)
    assert ei.value.offset is not None or isinstance(ei.value, vmcoreinfo.NoVmcoreinfoError)


def test_truncated_memory_is_a_truncated_error_not_zeros(tmp_path: pathlib.Path) -> None:
    p = write(tmp_path, REAL[: len(REAL) - 0x3000])  # cut into the last PT_LOADs' data
    with vmcoreinfo.open(p) as d:
        assert d.vmcoreinfo.osrelease  # headers and notes are intact
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.read_phys(0x1000000, 4096)
        assert ei.value.offset is not None and ei.value.path == str(p)


def patch(data: bytes, off: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


@pytest.mark.parametrize(
    "field,fmt,value,exc",
    [
        ("e_phoff", "<Q", 2**64 - 8, vmcoreinfo.TruncatedError),
        ("e_phoff", "<Q", 2**32, vmcoreinfo.TruncatedError),
        ("e_phnum", "<H", 0xFFFE, vmcoreinfo.TruncatedError),
        ("e_phentsize", "<H", 57, vmcoreinfo.FormatError),
        ("p_offset", "<Q", 2**64 - 1, vmcoreinfo.FormatError),
        ("p_filesz", "<Q", 2**63, vmcoreinfo.LimitError),
        ("p_filesz", "<Q", 2**32 + 8, vmcoreinfo.LimitError),
    ],
)
def test_lying_sizes(tmp_path: pathlib.Path, field: str, fmt: str, value: int, exc: type[Exception]) -> None:
    where = {"e_phoff": 0x20, "e_phnum": 0x38, "e_phentsize": 0x36, "p_offset": PHOFF + 8, "p_filesz": PHOFF + 32}[field]
    p = write(tmp_path, patch(REAL, where, fmt, value))
    with pytest.raises(exc) as ei:
        open_and_identify(p)
    assert ei.value.path == str(p)  # type: ignore[attr-defined]


def test_pt_note_past_eof(tmp_path: pathlib.Path) -> None:
    p = write(tmp_path, patch(REAL, PHOFF + 8, "<Q", len(REAL) - 16))
    with pytest.raises(vmcoreinfo.TruncatedError) as ei:
        open_and_identify(p)
    assert ei.value.offset == len(REAL) - 16


def test_lying_descsz_in_the_vmcoreinfo_note(tmp_path: pathlib.Path) -> None:
    notes = vmcoreinfo.open(FIXTURES / "x86_64-qemu-elf.core").notes()
    vmci = notes[-1].offset
    for descsz in (2**32 - 1, 2**31, 0x1000_0000):
        p = write(tmp_path, patch(REAL, vmci + 4, "<I", descsz))
        with pytest.raises(vmcoreinfo.FormatError) as ei:
            open_and_identify(p)
        assert ei.value.offset == vmci


def test_wrong_class_for_machine(tmp_path: pathlib.Path) -> None:
    # An x86_64 dump whose e_machine says ARM (32-bit only).
    p = write(tmp_path, patch(REAL, 18, "<H", 40))
    with pytest.raises(vmcoreinfo.BitnessError) as ei:
        vmcoreinfo.open(p)
    assert ei.value.rule == "class-for-machine"
    assert ei.value.path == str(p)


def test_swapped_byte_order_is_an_error_not_garbage(tmp_path: pathlib.Path) -> None:
    b = bytearray(REAL)
    b[5] = 2  # ELFDATA2MSB: every header field now reads byte-swapped
    p = write(tmp_path, bytes(b))
    with pytest.raises(vmcoreinfo.FormatError):
        open_and_identify(p)


@pytest.mark.parametrize("head", [b"", b"\x7fEL", b"MZ\x90\x00" + bytes(100), bytes(4096), b"\x7fELF\x03\x01\x01" + bytes(60)])
def test_not_a_dump(tmp_path: pathlib.Path, head: bytes) -> None:
    p = write(tmp_path, head)
    with pytest.raises(vmcoreinfo.FormatError) as ei:
        vmcoreinfo.open(p)
    assert ei.value.path == str(p) and ei.value.offset is not None


def test_file_shrinks_after_open(tmp_path: pathlib.Path) -> None:
    p = write(tmp_path, REAL)
    with vmcoreinfo.open(p) as d:
        p.write_bytes(REAL[:0x2000])
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.read_phys(0x18DC000, 4096)
        assert "shrink" in str(ei.value)
