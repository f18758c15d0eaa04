"""(e) Conversion: a QEMU ELF dump to kdump-compressed (ours: write_kdump zlib/zstd/lzo on all cores;
makedumpfile -c/-z/-l at -d 0 and -d 31), and kdump to ELF (ours; makedumpfile cannot read a
kdump file as input). Side by side in one run.

Input: $BENCH_DATA/8G/qemu-elf.core when present, else $BENCH_DATA/256M/qemu-elf.core, else the
real-guest stage's x86_64 dump ($VMCOREINFO_REALGUEST_DIR/x86_64), else the committed fixture
(plain test runs). makedumpfile 1.7.2 cannot read QEMU 7.2's ELF layout (it ignores e_phoff), so
both tools convert the same standard-layout copy that our write_elf makes first (the same
memory, byte for byte). Throughput is guest memory converted per second (`extra_info`).

Notes: ours never filters pages (it keeps every page, storing zero pages once, like
makedumpfile -d 0 does with its shared zero page); makedumpfile -d 31 also drops cache, user
and free pages, so -d 31 rows are a reference point of a smaller output, not the same job.
Debian's makedumpfile 1.7.2 is built without zstd: `-z` is accepted and ignored (its output is
then uncompressed), which the output size column shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import inputs
import pytest
import vmcoreinfo
from conftest import record_fail

ROUNDS = int(os.environ.get("BENCH_CONVERT_ROUNDS", "3"))


def _source() -> tuple[Path, Path | None]:
    """(QEMU ELF dump, QEMU kdump of the same guest or None)."""
    if not inputs.use_fixtures():
        for sub in ("8G", "256M"):
            p = inputs.BENCH_DATA / sub / "qemu-elf.core"
            if p.exists():
                k = p.with_name("qemu-kdump-zlib.kdump")
                return p, k if k.exists() else None
    rg = os.environ.get("VMCOREINFO_REALGUEST_DIR")
    if rg and os.environ.get("BENCH_SET") != "fixtures" and (Path(rg) / "x86_64" / "qemu-elf.core").exists():
        d = Path(rg) / "x86_64"
        return d / "qemu-elf.core", d / "qemu-kdump-zlib.kdump"
    return inputs.FIX / "x86_64-qemu-elf.core", inputs.FIX / "kdump" / "qemu-x86_64-zlib.kdump"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    base = os.environ.get("BENCH_CONVERT_TMP")
    d = Path(base) if base else tmp_path_factory.mktemp("convert")
    d.mkdir(parents=True, exist_ok=True)
    elf, kdump = _source()
    std = d / "input-standard.core"
    with vmcoreinfo.open(elf) as dump:
        dump.write_elf(std)
        memory = sum(e - b for b, e in dump.memory_ranges())
    yield {"elf": std, "qemu_elf": elf, "qemu_kdump": kdump, "memory": memory, "dir": d}
    shutil.rmtree(d / "out", ignore_errors=True)
    std.unlink(missing_ok=True)


def _bench(benchmark, work, run, label: str) -> None:
    out_dir = work["dir"] / "out"
    out = out_dir / label

    def setup():
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
        return (), {}

    benchmark.pedantic(lambda: run(out), setup=setup, rounds=ROUNDS, iterations=1)
    size = out.stat().st_size
    benchmark.extra_info.update(
        memory_bytes=work["memory"],
        output_bytes=size,
        throughput_MBps=round(work["memory"] / benchmark.stats.stats.mean / 1e6, 1) if benchmark.stats else None,
    )
    with vmcoreinfo.open(out) as o:  # whatever wrote it, the output must read back
        assert o.vmcoreinfo.osrelease


@pytest.mark.parametrize("comp", ["zlib", "zstd", "lzo"])
def test_ours_elf_to_kdump(benchmark, work, comp):
    benchmark.group = "convert ELF -> kdump"
    benchmark.name = f"vmcoreinfo write_kdump {comp}"
    with vmcoreinfo.open(work["elf"]) as d:
        if comp == "lzo":
            try:
                d.write_kdump(work["dir"] / "lzo-probe", "lzo")
            except vmcoreinfo.UnsupportedFormatError as e:
                pytest.skip(f"this build has no LZO encoder: {e}")
            (work["dir"] / "lzo-probe").unlink()
        _bench(benchmark, work, lambda out: d.write_kdump(out, comp), f"ours-{comp}.kdump")


MAKEDUMPFILE = [("-c", "0"), ("-c", "31"), ("-z", "0"), ("-z", "31"), ("-l", "0")]


@pytest.mark.parametrize("flag,level", MAKEDUMPFILE, ids=[f"{f}-d{lv}" for f, lv in MAKEDUMPFILE])
def test_makedumpfile_elf_to_kdump(benchmark, work, flag, level):
    benchmark.group = "convert ELF -> kdump"
    benchmark.name = f"makedumpfile {flag} -d {level}"
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile unavailable")

    def run(out: Path) -> None:
        cp = subprocess.run(
            ["makedumpfile", flag, "-d", level, str(work["elf"]), str(out)], capture_output=True, text=True, timeout=3600
        )
        if cp.returncode != 0:
            raise RuntimeError(f"makedumpfile rc={cp.returncode}: {(cp.stdout + cp.stderr)[-300:]}")

    probe = work["dir"] / "md-probe"
    probe.unlink(missing_ok=True)
    try:
        run(probe)
    except RuntimeError as e:
        record_fail("convert", "makedumpfile", work["elf"].name, str(e))
    probe.unlink(missing_ok=True)
    _bench(benchmark, work, run, f"md{flag}-d{level}.kdump")


@pytest.mark.parametrize("src", ["qemu-kdump", "ours-kdump-zlib"])
def test_ours_kdump_to_elf(benchmark, work, src):
    benchmark.group = "convert kdump -> ELF"
    benchmark.name = f"vmcoreinfo write_elf from {src}"
    if src == "qemu-kdump":
        path = work["qemu_kdump"]
    else:
        path = work["dir"] / "ours-input.kdump"
        with vmcoreinfo.open(work["elf"]) as d:
            d.write_kdump(path, "zlib")
    with vmcoreinfo.open(path) as d:
        _bench(benchmark, work, lambda out: d.write_elf(out), f"from-{src}.core")


def test_elf_to_elf_reference(benchmark, work):
    """For scale: ELF to ELF is a copy (ours), makedumpfile -E -d 0 does the same."""
    benchmark.group = "convert kdump -> ELF"
    benchmark.name = "vmcoreinfo write_elf from ELF (copy)"
    with vmcoreinfo.open(work["qemu_elf"]) as d:
        _bench(benchmark, work, lambda out: d.write_elf(out), "elf-copy.core")


def test_makedumpfile_elf_to_elf_reference(benchmark, work):
    benchmark.group = "convert kdump -> ELF"
    benchmark.name = "makedumpfile -E -d 0 from ELF"
    if shutil.which("makedumpfile") is None:
        pytest.skip("makedumpfile unavailable")

    def run(out: Path) -> None:
        cp = subprocess.run(
            ["makedumpfile", "-E", "-d", "0", str(work["elf"]), str(out)], capture_output=True, text=True, timeout=3600
        )
        if cp.returncode != 0:
            raise RuntimeError(f"makedumpfile rc={cp.returncode}: {(cp.stdout + cp.stderr)[-300:]}")

    try:
        run(work["dir"] / "md-e-probe")
    except RuntimeError as e:
        record_fail("convert", "makedumpfile", work["elf"].name, str(e))
    (work["dir"] / "md-e-probe").unlink(missing_ok=True)
    _bench(benchmark, work, run, "md-E.core")
