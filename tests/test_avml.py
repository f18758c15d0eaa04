"""AVML v2 images (Snappy-compressed ranges): detected by magic, read back byte for byte,
the VMCOREINFO scan works through the decompression, and hostile inputs are typed errors.

tests/fixtures/x86_64-qemu.avml is real guest memory (tools/make_avml_fixture.py: the same
ranges of the real x86_64 QEMU dump as the LiME fixture, all-zero pages omitted as AVML does)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import vmcoreinfo
from helpers import FIXTURES

AVML = FIXTURES / "x86_64-qemu.avml"
LIME = FIXTURES / "x86_64-qemu.lime"


def test_reads_the_same_memory_as_the_lime_image() -> None:
    with vmcoreinfo.open(AVML) as a, vmcoreinfo.open(LIME) as li:
        assert a.format == "avml"
        ranges = a.memory_ranges()
        assert ranges
        # Every AVML range lies inside a LiME range and holds the same bytes.
        for s, e in ranges:
            assert a.read_phys(s, e - s) == li.read_phys(s, e - s)
        # What AVML left out is all zeros in the LiME image (omitted zero pages), and absent here.
        for s, e in li.memory_ranges():
            for p in range(s, e, 4096):
                if not any(rs <= p < re for rs, re in ranges):
                    assert li.read_phys(p, 4096) == bytes(4096)
                    with pytest.raises(vmcoreinfo.AbsentMemoryError):
                        a.read_phys(p, 16)
        assert a.vmcoreinfo.osrelease == li.vmcoreinfo.osrelease
        assert dict(a.vmcoreinfo) == dict(li.vmcoreinfo)
        assert a.machine == "x86_64"
        found = a.scan_vmcoreinfo()
        assert [v.osrelease for v in found] == [v.osrelease for v in li.scan_vmcoreinfo()]
        # Compressed: a view is a decompressed copy.
        s, e = ranges[-1]
        v = a.view_phys(s, e - s)
        assert not v.obj.mapped and bytes(v) == li.read_phys(s, e - s)


def test_format_can_be_asked_for() -> None:
    with vmcoreinfo.open(AVML, format="avml") as a:
        assert a.format == "avml"
    with pytest.raises(vmcoreinfo.FormatError):
        vmcoreinfo.open(LIME, format="avml")


def _err(tmp_path: Path, data: bytes) -> vmcoreinfo.Error:
    p = tmp_path / "bad.avml"
    p.write_bytes(data)
    with pytest.raises(vmcoreinfo.Error) as ei:
        with vmcoreinfo.open(p, format="avml") as d:
            for s, e in d.memory_ranges():
                d.read_phys(s, e - s)
    return ei.value


def test_every_truncation_is_typed(tmp_path: Path) -> None:
    data = AVML.read_bytes()
    for cut in list(range(1, 80)) + list(range(80, len(data), 97)):
        e = _err(tmp_path, data[:cut])
        assert isinstance(e, (vmcoreinfo.TruncatedError, vmcoreinfo.FormatError)), (cut, e)
        assert e.offset is not None and e.offset <= cut, (cut, e)


def _header(start: int, end: int, version: int = 2) -> bytes:
    return struct.pack("<IIQQ8x", 0x4C4D5641, version, start, end)


STREAM_ID = b"\xff\x06\x00\x00sNaPpY"


@pytest.mark.parametrize(
    ("data", "cls", "why"),
    [
        (_header(0x1000, 0xFFF) + STREAM_ID, vmcoreinfo.FormatError, "empty or wraps"),
        (_header(0, 2**64 - 1) + STREAM_ID, vmcoreinfo.FormatError, "empty or wraps"),
        # A huge declared range with a tiny stream: the stream runs out, nothing is allocated.
        (_header(0, 2**62) + STREAM_ID, vmcoreinfo.TruncatedError, "past the end"),
        (_header(0, 0xFFF, version=7) + STREAM_ID, vmcoreinfo.UnsupportedFormatError, "version"),
        (_header(0, 0xFFF) + b"\x02\x00\x00\x00", vmcoreinfo.FormatError, "reserved"),
        (_header(0, 0xFFF) + b"\xff\x06\x00\x00sNaPpX", vmcoreinfo.FormatError, "identifier"),
        # A compressed chunk declaring 2 MiB (the framing allows at most 64 KiB).
        (_header(0, 0xFFF) + STREAM_ID + b"\x00\x08\x00\x00" + bytes(4) + b"\x80\x80\x80\x01", vmcoreinfo.FormatError, "at most"),
        # A literal chunk that fits, then a trailer that disagrees with the stream's length.
        (
            _header(0, 3) + STREAM_ID + b"\x01\x08\x00\x00" + bytes(4) + b"abcd" + struct.pack("<Q", 99),
            vmcoreinfo.FormatError,
            "trailer",
        ),
        # Declared 4 bytes, stream holds 8.
        (
            _header(0, 3) + STREAM_ID + b"\x01\x0c\x00\x00" + bytes(4) + b"abcdefgh" + struct.pack("<Q", 26),
            vmcoreinfo.FormatError,
            "more than",
        ),
        # Blocks out of order.
        (
            _header(0x2000, 0x2003)
            + STREAM_ID
            + b"\x01\x08\x00\x00"
            + bytes(4)
            + b"abcd"
            + struct.pack("<Q", 22)
            + _header(0x1000, 0x1003)
            + STREAM_ID
            + b"\x01\x08\x00\x00"
            + bytes(4)
            + b"abcd"
            + struct.pack("<Q", 22),
            vmcoreinfo.FormatError,
            "precedes",
        ),
    ],
    ids=[
        "end-below-start",
        "2^64",
        "huge-range",
        "version",
        "reserved-chunk",
        "bad-stream-id",
        "chunk-too-big",
        "trailer",
        "overfull",
        "order",
    ],
)
def test_hostile_avml_is_typed(tmp_path: Path, data: bytes, cls: type, why: str) -> None:
    e = _err(tmp_path, data)
    assert type(e) is cls, e
    assert why in str(e), e


def test_corrupt_compressed_chunk_is_a_decompress_error(tmp_path: Path) -> None:
    # A compressed chunk whose Snappy body is garbage (declares 16 bytes, then a bad copy tag).
    body = bytes(4) + b"\x10" + b"\x0e\xff\xff\xff"
    data = _header(0, 15) + STREAM_ID + b"\x00" + struct.pack("<I", len(body))[:3] + body
    data += struct.pack("<Q", len(STREAM_ID) + 4 + len(body))
    p = tmp_path / "bad.avml"
    p.write_bytes(data)
    with vmcoreinfo.open(p) as d:
        assert d.memory_ranges() == [(0, 16)]
        with pytest.raises(vmcoreinfo.Error) as ei:
            d.read_phys(0, 16)
        assert "Snappy" in str(ei.value)
