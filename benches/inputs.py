"""Bench inputs: big real dumps under $BENCH_DATA (scripts/make-bench-data.sh makes them), or,
when those are missing (CI: `pytest benches --benchmark-disable`), the small committed fixtures.

Each input: (id, path, format, guest memory label). BENCH_SET=fixtures forces the fixtures,
BENCH_SET=big the big inputs; `--benchmark-disable` runs default to the fixtures (conftest).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATA = Path(os.environ.get("BENCH_DATA", ROOT / "bench-data"))
FIX = ROOT / "tests" / "fixtures"

BIG = [
    # id, relative path, format, guest RAM
    ("elf-256M", "256M/qemu-elf.core", "elf", "256 MiB"),
    ("elf-8G", "8G/qemu-elf.core", "elf", "8 GiB"),
    ("elf-64G-sparse", "64G/qemu-elf-sparse.core", "elf", "64 GiB (sparse)"),
    ("kdump-zlib-256M", "256M/qemu-kdump-zlib.kdump", "kdump", "256 MiB"),
    ("kdump-zlib-8G", "8G/qemu-kdump-zlib.kdump", "kdump", "8 GiB"),
    ("md-kdump-zlib-d31-8G", "8G/md-zlib-d31.kdump", "kdump", "8 GiB"),
    ("flat-zlib-256M", "256M/qemu-kdump-zlib.flat", "flattened-kdump", "256 MiB"),
    ("flat-zlib-8G", "8G/qemu-kdump-zlib.flat", "flattened-kdump", "8 GiB"),
    ("md-flat-zlib-d31-8G", "8G/md-zlib-d31.flat", "flattened-kdump", "8 GiB"),
]
SMALL = [
    ("fixture-elf", FIX / "x86_64-qemu-elf.core", "elf", "fixture"),
    ("fixture-elf-arm64", FIX / "arm64-qemu-elf.core", "elf", "fixture"),
    ("fixture-kdump-zlib", FIX / "kdump/qemu-x86_64-zlib.kdump", "kdump", "fixture"),
    ("fixture-md-kdump-zlib-d31", FIX / "kdump/md-x86_64-zlib-d31.kdump", "kdump", "fixture"),
    ("fixture-flat-zlib", FIX / "kdump/qemu-x86_64-zlib.flat", "flattened-kdump", "fixture"),
    ("fixture-md-flat-zlib-d31", FIX / "kdump/md-x86_64-zlib-d31.flat", "flattened-kdump", "fixture"),
]
# bulk physical read (d): kdump-zlib files (plus the ELF of the same guest, for reference, and the
# 64 GiB sparse ELF against libkdumpfile)
BULK_BIG = ["kdump-zlib-256M", "kdump-zlib-8G", "elf-256M", "elf-64G-sparse"]
BULK_SMALL = ["fixture-kdump-zlib", "fixture-elf"]


def _big_present() -> bool:
    return all((BENCH_DATA / rel).exists() for _, rel, _, _ in BIG)


def use_fixtures() -> bool:
    if os.environ.get("BENCH_SET") == "big":
        return False
    return os.environ.get("BENCH_SET") == "fixtures" or not _big_present()


def inputs() -> list[tuple[str, str, str, str]]:
    if use_fixtures():
        return [(i, str(p), f, m) for i, p, f, m in SMALL if Path(p).exists()]
    return [(i, str(BENCH_DATA / rel), f, m) for i, rel, f, m in BIG]


def bulk_ids() -> list[str]:
    return BULK_SMALL if use_fixtures() else BULK_BIG


def by_id() -> dict[str, tuple[str, str, str, str]]:
    return {i[0]: i for i in inputs()}
