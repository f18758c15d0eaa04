"""Kernel view benchmarks, side by side in one run: page_offset_base discovery (x86_64 4- and
5-level), 1 M kernel-address translations, and read_virt throughput, against libkdumpfile (its
own process under /usr/bin/python3, timed inside; figures in extra_info) and drgn (in process;
drgn has no translate call without debug info, so its row is a 1-byte prog.read per address).

Inputs: real QEMU dumps from tests/realguest/generate.py: set VMCOREINFO_REALGUEST_DIR to its
output directory (guests x86_64, x86_64-la57, arm64, i386 are used when present); otherwise every
test here is skipped with that reason.

  VMCOREINFO_REALGUEST_DIR=/path/to/out pytest benches/test_kview.py -p no:cacheprovider \\
      --benchmark-columns=min,median,max,rounds --benchmark-group-by=group
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
import vmcoreinfo

HERE = Path(__file__).resolve().parent
RG = os.environ.get("VMCOREINFO_REALGUEST_DIR")
DEBIAN_PYTHON = "/usr/bin/python3"
N_TRANSLATE = int(os.environ.get("BENCH_KVIEW_N", "1000000"))
READ_TOTAL = 64 << 20
READ_CHUNK = 1 << 20

GUESTS = {"x86_64": "x86_64", "x86_64-la57": "x86_64", "arm64": "aarch64", "i386": "-"}
FILES = ["qemu-elf.core", "qemu-kdump-zlib.kdump"]


def dump_path(guest: str, fname: str) -> Path:
    if not RG:
        pytest.skip("set VMCOREINFO_REALGUEST_DIR to a tests/realguest/generate.py output directory")
    p = Path(RG) / guest / fname
    if not p.exists():
        pytest.skip(f"{p} not present (that guest/format was not generated)")
    return p


def addresses(d: vmcoreinfo.Dump, n: int) -> list[int]:
    """n random direct-map (linear map) addresses over the guest's RAM below 256 MiB that the
    kernel maps, seeded: the same list for every reader."""
    po, base = linear_map(d)
    rng = random.Random(1234)
    ranges = d.memory_ranges()
    lo = ranges[0][0]
    ram = [(s, min(e, lo + 0x1000_0000)) for s, e in ranges if s < lo + 0x1000_0000]
    pages = []
    for s, e in ram:
        pages += range(s & ~0xFFF, e, 0x1000)
    mapped = []
    for pa in rng.sample(pages, min(len(pages), 4096)):
        try:
            va = (po + pa - base) & (2**64 - 1)
            d.translate(va)
            mapped.append(va)
        except vmcoreinfo.Error:
            pass
    return [rng.choice(mapped) + rng.randrange(0x1000) for _ in range(n)]


def linear_map(d: vmcoreinfo.Dump) -> tuple[int, int]:
    """(virtual start, physical start) of the kernel's linear map of RAM: arm64 maps
    PHYS_OFFSET at PAGE_OFFSET (modulo 2^64: it prints "negative" when the linear map is
    randomised), x86 maps physical 0 there."""
    lay = d.kernel_layout()
    base = d.vmcoreinfo.number("PHYS_OFFSET") if lay["arch"] == "aarch64" else 0
    return lay["page_offset"], (base or 0) & (2**64 - 1)


def kdumpfile_run(*args: str) -> dict:
    cp = subprocess.run([DEBIAN_PYTHON, str(HERE / "kview_kdumpfile.py"), *args], capture_output=True, text=True, timeout=600)
    if cp.returncode != 0 or not cp.stdout.strip():
        return {"ok": False, "error": f"rc={cp.returncode} {cp.stderr[-300:]}"}
    return json.loads(cp.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- discovery
@pytest.mark.parametrize("fname", FILES)
@pytest.mark.parametrize("guest", ["x86_64", "x86_64-la57"])
def test_discovery(benchmark, guest: str, fname: str) -> None:
    """Build the translator (root self-check) and discover + validate page_offset_base, on a
    freshly opened dump each round (the open itself is not timed)."""
    p = dump_path(guest, fname)
    benchmark.group = f"page_offset_base discovery {guest}"
    lay = benchmark.pedantic(lambda d: d.kernel_layout(), setup=lambda: ((vmcoreinfo.open(p),), {}), rounds=50)
    assert lay["page_offset"] is not None and lay["page_offset"] % (1 << 30) == 0


# --------------------------------------------------------------------------- translations
@pytest.mark.parametrize("reader", ["vmcoreinfo", "libkdumpfile", "drgn-read1"])
@pytest.mark.parametrize("guest", list(GUESTS))
def test_translate_1m(benchmark, guest: str, reader: str) -> None:
    p = dump_path(guest, "qemu-elf.core")
    benchmark.group = f"{N_TRANSLATE} translations {guest}"
    with vmcoreinfo.open(p) as d:
        addrs = addresses(d, N_TRANSLATE)
        want = 0
        if reader == "libkdumpfile":  # its answers must be ours
            for a in addrs:
                want ^= d.translate(a)
        if reader == "vmcoreinfo":

            def run() -> int:
                acc = 0
                tr = d.translate
                for a in addrs:
                    acc ^= tr(a)
                return acc

            benchmark.pedantic(run, rounds=3, iterations=1)
            return
    if reader == "drgn-read1":
        drgn = pytest.importorskip("drgn")
        prog = drgn.Program()
        try:
            prog.set_core_dump(str(p))
        except Exception as e:  # noqa: BLE001
            pytest.skip(f"drgn cannot open it: {e}")

        def run_drgn() -> None:
            rd = prog.read
            for a in addrs:
                rd(a, 1)

        try:
            prog.read(addrs[0], 1)
        except Exception as e:  # noqa: BLE001
            pytest.skip(f"drgn cannot read it: {e}")
        benchmark.pedantic(run_drgn, rounds=1, iterations=1)
        return
    if not Path(DEBIAN_PYTHON).exists():
        pytest.skip("libkdumpfile runs under Debian's /usr/bin/python3 with python3-libkdumpfile")
    with tempfile.NamedTemporaryFile(suffix=".u64") as f:
        f.write(struct.pack(f"<{len(addrs)}Q", *addrs))
        f.flush()
        res = kdumpfile_run(str(p), GUESTS[guest], "translate", f.name)
        if not res["ok"]:
            pytest.skip(f"libkdumpfile cannot translate on {guest}: {res['error'][:120]}")
        # the table shows the whole process (start, open, the address file); extra_info the loop
        res = benchmark.pedantic(lambda: kdumpfile_run(str(p), GUESTS[guest], "translate", f.name), rounds=1, iterations=1)
    benchmark.extra_info["inner_seconds"] = res["seconds"]
    assert res["count"] == len(addrs) and res["checksum"] == want


# --------------------------------------------------------------------------- read_virt
@pytest.mark.parametrize("reader", ["vmcoreinfo", "libkdumpfile", "drgn"])
@pytest.mark.parametrize("fname", FILES)
@pytest.mark.parametrize("guest", ["x86_64", "x86_64-la57", "arm64"])
def test_read_virt_64mib(benchmark, guest: str, fname: str, reader: str) -> None:
    """64 MiB of the direct map from page_offset + 16 MiB, in 1 MiB reads."""
    p = dump_path(guest, fname)
    benchmark.group = f"read_virt 64 MiB {guest} {fname}"
    with vmcoreinfo.open(p) as d:
        po, base = linear_map(d)
        va = (po + d.memory_ranges()[0][0] - base + (16 << 20)) & (2**64 - 1)
        ref = d.read_virt(va, 4096)
        if reader == "vmcoreinfo":
            buf = bytearray(READ_CHUNK)

            def run() -> None:
                for off in range(0, READ_TOTAL, READ_CHUNK):
                    d.read_virt_into(va + off, buf)

            benchmark.pedantic(run, rounds=3, iterations=1)
            if benchmark.stats:  # None under --benchmark-disable
                benchmark.extra_info["MB/s"] = READ_TOTAL / benchmark.stats.stats.min / 1e6
            return
    if reader == "drgn":
        drgn = pytest.importorskip("drgn")
        prog = drgn.Program()
        try:
            prog.set_core_dump(str(p))
            assert prog.read(va, 4096) == ref
        except Exception as e:  # noqa: BLE001
            pytest.skip(f"drgn: {e}")
        benchmark.pedantic(
            lambda: [prog.read(va + o, READ_CHUNK) for o in range(0, READ_TOTAL, READ_CHUNK)], rounds=3, iterations=1
        )
        if benchmark.stats:  # None under --benchmark-disable
            benchmark.extra_info["MB/s"] = READ_TOTAL / benchmark.stats.stats.min / 1e6
        return
    args = (str(p), GUESTS[guest], "read", f"{va:x}", str(READ_TOTAL), str(READ_CHUNK))
    res = kdumpfile_run(*args)
    if not res["ok"]:
        pytest.skip(f"libkdumpfile: {res['error'][:120]}")
    res = benchmark.pedantic(lambda: kdumpfile_run(*args), rounds=1, iterations=1)
    benchmark.extra_info["inner_seconds"] = res["seconds"]
    benchmark.extra_info["MB/s"] = READ_TOTAL / res["seconds"] / 1e6
