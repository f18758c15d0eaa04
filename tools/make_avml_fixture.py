#!/usr/bin/env python3
"""Write the physical memory of a dump as an AVML v2 (Snappy-compressed) image.

    tools/make_avml_fixture.py                 # regenerate tests/fixtures/x86_64-qemu.avml
    tools/make_avml_fixture.py IN OUT

With no arguments: tests/fixtures/x86_64-qemu-elf.core's ranges 0x0-0xfff, 0x1000000-0x1000fff
and 0x18dc000-0x18ddfff (the VMCOREINFO note page) -> tests/fixtures/x86_64-qemu.avml, the same
real guest memory as the LiME fixture. Every byte is the source's memory as ``Dump.read_phys``
returns it; nothing is invented.

The layout is the one AVML writes for version 2: per block a 32-byte little-endian header
``{u32 magic 0x4C4D5641 "AVML", u32 version 2, u64 start, u64 end (inclusive), u8[8] 0}``, then a
Snappy framed stream (stream identifier, then chunks of at most 64 KiB with the masked CRC-32C
of their data) that decompresses to the block's bytes, then a u64 LE with the stream's length.
As AVML does, all-zero pages are omitted (a block never holds one), so a range with a zero page
in the middle becomes two blocks. The Snappy blocks written here are literal-only (valid Snappy
that any decoder reads; this tool has no compressor).
"""

from __future__ import annotations

import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

MAGIC = 0x4C4D5641
PAGE = 4096
DEFAULT_RANGES = [(0x0, 0x1000), (0x1000000, 0x1001000), (0x18DC000, 0x18DE000)]


def _crc32c_table() -> list[int]:
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def snappy_literal_block(data: bytes) -> bytes:
    assert 0 < len(data) <= 65536
    n = len(data) - 1
    tag = bytes([n << 2]) if n < 60 else bytes([61 << 2]) + struct.pack("<H", n)
    return varint(len(data)) + tag + data


def framed(data: bytes) -> bytes:
    out = bytearray(b"\xff\x06\x00\x00sNaPpY")
    for i in range(0, len(data), 65536):
        chunk = data[i : i + 65536]
        body = struct.pack("<I", masked_crc32c(chunk)) + snappy_literal_block(chunk)
        out += bytes([0x00]) + struct.pack("<I", len(body))[:3] + body
    return bytes(out)


def block(start: int, data: bytes) -> bytes:
    body = framed(data)
    head = struct.pack("<IIQQ8x", MAGIC, 2, start, start + len(data) - 1)
    return head + body + struct.pack("<Q", len(body))


def write(src: pathlib.Path, dst: pathlib.Path, ranges: list[tuple[int, int]] | None) -> None:
    import vmcoreinfo

    out = bytearray()
    with vmcoreinfo.open(src) as d:
        for s, e in ranges or d.memory_ranges():
            run_start, run = s, bytearray()
            for a in range(s, e, PAGE):
                page = d.read_phys(a, min(PAGE, e - a))
                if page.count(0) == len(page):  # omitted, as AVML omits zero blocks
                    if run:
                        out += block(run_start, bytes(run))
                    run_start, run = a + len(page), bytearray()
                    continue
                run += page
            if run:
                out += block(run_start, bytes(run))
    dst.write_bytes(out)
    print(f"{dst}: {len(out)} bytes")


def main() -> int:
    if len(sys.argv) == 1:
        write(ROOT / "tests/fixtures/x86_64-qemu-elf.core", ROOT / "tests/fixtures/x86_64-qemu.avml", DEFAULT_RANGES)
    elif len(sys.argv) == 3:
        write(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), None)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
