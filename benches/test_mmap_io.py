"""Mapped vs pread reads, side by side in one run (benches/MMAP.md).

Inputs (not committed; made by the commands in benches/MMAP.md), under $MMAP_BENCH_DIR
(default <repo>/bench-data):
  256M/qemu-elf.core       a real 256 MiB x86_64 QEMU ELF dump (scripts/make-bench-data.sh)
  64G/qemu-elf-sparse.core that dump's headers and notes, its PT_LOADs grown to 64 GiB (holes)

    python -m pytest benches/test_mmap_io.py -p no:cacheprovider --benchmark-columns=min,median,max,rounds
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import vmcoreinfo

BD = Path(os.environ.get("MMAP_BENCH_DIR", Path(__file__).resolve().parent.parent / "bench-data"))
# The real 256 MiB x86_64 QEMU ELF dump scripts/make-bench-data.sh makes (or links).
REAL = BD / "256M" / "qemu-elf.core"
SPARSE = BD / "64G" / "qemu-elf-sparse.core"
CHUNK = 1 << 20
MODES = ["mmap", "pread"]
# "mmap": open(mmap="always") (reads through the mapping); "pread": open(mmap=False).
OPT = {"mmap": "always", "pread": False}


def need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"{p} not made (see benches/MMAP.md)")
    return p


def every_byte(path: Path, mmap: object) -> int:
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    total = 0
    with vmcoreinfo.open(path, mmap=mmap, elf_tails="zeros") as d:
        for s, e in d.memory_ranges():
            a = s
            while a < e:
                n = min(CHUNK, e - a)
                d.read_phys_into(a, mv[:n])
                total += n
                a += n
    return total


@pytest.mark.parametrize("mode", MODES)
def test_identify(benchmark, mode):
    p = need(REAL)
    benchmark.group = "identify real 256M ELF"

    def run():
        with vmcoreinfo.open(p, mmap=OPT[mode]) as d:
            return d.vmcoreinfo.osrelease

    assert benchmark.pedantic(run, rounds=20, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("mode", MODES)
def test_bulk(benchmark, mode):
    p = need(REAL)
    benchmark.group = "bulk read_phys_into 1 MiB, real 256M ELF"
    n = benchmark.pedantic(every_byte, args=(p, OPT[mode]), rounds=5, iterations=1, warmup_rounds=1)
    assert n > 200 << 20


@pytest.mark.parametrize("mode", MODES)
def test_scan(benchmark, mode):
    p = need(REAL)
    benchmark.group = "scan_vmcoreinfo real 256M ELF"

    def run():
        with vmcoreinfo.open(p, mmap=OPT[mode]) as d:
            return len(d.scan_vmcoreinfo())

    assert benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1) >= 1


@pytest.mark.parametrize("mode", MODES)
def test_sparse_every_page(benchmark, mode):
    p = need(SPARSE)
    benchmark.group = "every page of the 64 GiB sparse ELF, read_phys_into 1 MiB"
    n = benchmark.pedantic(every_byte, args=(p, OPT[mode]), rounds=1, iterations=1)
    assert n == 64 << 30


@pytest.mark.parametrize("how", ["view_phys+frombuffer", "read_phys+frombuffer", "view_phys(mmap=False)"])
def test_view_1g(benchmark, how):
    np = pytest.importorskip("numpy")
    p = need(SPARSE)
    benchmark.group = "1 GiB into numpy (touch every page)"
    with vmcoreinfo.open(p, mmap=how != "view_phys(mmap=False)") as d:  # True: mapped for views
        s, e = max(d.memory_ranges(), key=lambda r: r[1] - r[0])
        size = 1 << 30

        def run():
            if how.startswith("view_phys"):
                x = d.view_phys(s, size)
            else:
                x = d.read_phys(s, size)
            a = np.frombuffer(x, dtype=np.uint8)
            return int(a[::4096].sum()) + len(a)

        assert benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1) >= size
