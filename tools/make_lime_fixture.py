#!/usr/bin/env python3
"""Write the physical memory of a dump as a LiME image (or a sparse raw image), with vmcoreinfo.

    tools/make_lime_fixture.py                          # regenerate the committed fixtures
    tools/make_lime_fixture.py IN OUT [--raw] [--range START:END ...]

With no arguments it writes the committed LiME fixtures from the reduced real ELF fixtures:

    tests/fixtures/x86_64-qemu-elf.core -> tests/fixtures/x86_64-qemu.lime
        ranges 0x0-0xfff, 0x1000000-0x1000fff, 0x18dc000-0x18ddfff (the VMCOREINFO note page)
    tests/fixtures/arm64-qemu-elf.core  -> tests/fixtures/arm64-qemu.lime
        range 0x42290000-0x42291fff (the VMCOREINFO note page)

Every byte of range data is the source dump's real memory as ``Dump.read_phys`` returns it
(opened with ``elf_tails="absent"`` so nothing the producer did not save is written); nothing is
invented. The LiME layout is the one LiME itself writes: per range a 32-byte little-endian
header ``{u32 magic 0x4C694D45, u32 version 1, u64 s_addr, u64 e_addr (inclusive), u8[8] 0}``
followed by ``e_addr - s_addr + 1`` bytes, ranges in ascending address order. By default the
ranges are the dump's memory ranges; ``--range`` picks sub-ranges (END exclusive, hex ok).

``--raw`` writes a raw image instead: the file is physical memory from address 0, each range at
its own address, holes left as sparse file holes (read back as zeros). Data is copied in 4 MiB
reads, so a full-size dump converts in bounded memory.
"""

from __future__ import annotations

import argparse
import pathlib
import struct
import sys

import vmcoreinfo

LIME_MAGIC = 0x4C694D45
CHUNK = 4 << 20
ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DEFAULTS = [
    ("x86_64-qemu-elf.core", "x86_64-qemu.lime", None),
    ("arm64-qemu-elf.core", "arm64-qemu.lime", None),
]


def _copy(dump: vmcoreinfo.Dump, start: int, end: int, out, at: int | None = None) -> None:
    pos = start
    while pos < end:
        n = min(CHUNK, end - pos)
        data = dump.read_phys(pos, n)
        if at is not None:
            out.seek(at + pos - start)
        out.write(data)
        pos += n


def write_lime(dump: vmcoreinfo.Dump, path: str | pathlib.Path, ranges: list[tuple[int, int]] | None = None) -> int:
    """Write ``ranges`` (default: all of the dump's memory; END exclusive) as a LiME image."""
    ranges = sorted(ranges if ranges is not None else dump.memory_ranges())
    with open(path, "wb") as out:
        for start, end in ranges:
            out.write(struct.pack("<IIQQ8x", LIME_MAGIC, 1, start, end - 1))
            _copy(dump, start, end, out)
        return out.tell()


def write_raw(dump: vmcoreinfo.Dump, path: str | pathlib.Path, ranges: list[tuple[int, int]] | None = None) -> int:
    """Write ``ranges`` at their physical addresses in a sparse raw image; returns its length."""
    ranges = sorted(ranges if ranges is not None else dump.memory_ranges())
    with open(path, "wb") as out:
        for start, end in ranges:
            _copy(dump, start, end, out, at=start)
        length = ranges[-1][1] if ranges else 0
        out.truncate(length)
        return length


def _range(s: str) -> tuple[int, int]:
    a, b = s.split(":")
    return int(a, 0), int(b, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?")
    ap.add_argument("dst", nargs="?")
    ap.add_argument("--raw", action="store_true", help="write a sparse raw image instead of LiME")
    ap.add_argument("--range", action="append", type=_range, help="START:END (END exclusive)")
    a = ap.parse_args(argv)
    jobs = [(a.src, a.dst, a.range)] if a.src else [(FIXTURES / s, FIXTURES / d, r) for s, d, r in DEFAULTS]
    if a.src and not a.dst:
        ap.error("give both IN and OUT, or neither")
    for src, dst, ranges in jobs:
        with vmcoreinfo.open(src, elf_tails="absent") as dump:
            n = (write_raw if a.raw else write_lime)(dump, dst, ranges)
            used = ranges or dump.memory_ranges()
        print(f"{dst}: {n} bytes, ranges " + ", ".join(f"{s:#x}-{e - 1:#x}" for s, e in used))
    return 0


if __name__ == "__main__":
    sys.exit(main())
