"""(e) batch: identify a corpus of real-shaped dump files (benches/make_corpus.py: the committed
ELF fixtures, each copy with a distinct VMCOREINFO text) per round, every result checked against
the manifest. Side by side in one group: identify_many on one core (the process pinned to one
CPU, threads=1: the calling thread does all the work) and on every CPU, a Python loop of
vmcoreinfo.open, drgn and libkdumpfile loops (where installed), and vmcoreinfo.dask on a
two-process LocalCluster. Plus peak RSS of a
batch against the number of files (benches/batch_rss.py, each count in its own process).

BENCH_CORPUS_FILES sets the corpus size (default 10,000; 300 in plain test runs, which check
correctness only). The corpus lives in $BENCH_DATA/corpus-<N> (made once, then reused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import inputs
import make_corpus
import pytest
from conftest import reader_or_skip

HERE = Path(__file__).resolve().parent


def _disabled(config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module")
def corpus(request, tmp_path_factory):
    n = int(os.environ.get("BENCH_CORPUS_FILES", 300 if _disabled(request.config) else 10_000))
    d = inputs.BENCH_DATA / f"corpus-{n}" if inputs.BENCH_DATA.parent.exists() else tmp_path_factory.mktemp("corpus")
    try:
        m = make_corpus.load_manifest(make_corpus.make(d, n))
    except OSError:
        d = tmp_path_factory.mktemp("corpus")
        m = make_corpus.load_manifest(make_corpus.make(d, n))
    paths = [r["path"] for r in m]
    for p in paths:  # into the page cache
        with open(p, "rb") as f:
            f.read()
    return paths, m


def _group(benchmark, corpus, reader, **extra):
    paths, _ = corpus
    benchmark.group = f"batch {len(paths)} ELF files"
    benchmark.extra_info.update(reader=reader, files=len(paths), op="batch", input=f"corpus-{len(paths)}", **extra)


def _check_dicts(got: list[dict], manifest: list[dict]) -> None:
    assert len(got) == len(manifest)
    for g, w in zip(got, manifest):
        assert (g["osrelease"], g["build_id"], g["kernel_offset"], g["phys_base"], g["page_size"]) == (
            w["osrelease"],
            w["build_id"],
            w["kernel_offset"],
            w["phys_base"],
            w["page_size"],
        ), (g, w)


class _Cpu:
    """Wraps a round: records the process CPU time (all threads) it took, so that files per
    CPU-second (the per-core rate) is reported beside wall time, which a busy machine inflates."""

    def __init__(self, benchmark, fn, files):
        self.benchmark, self.fn, self.files, self.cpu = benchmark, fn, files, []

    def __call__(self):
        import time

        c = time.process_time()
        r = self.fn()
        self.cpu.append(time.process_time() - c)
        return r

    def record(self):
        best = min(self.cpu)
        self.benchmark.extra_info.update(cpu_s_min=best, files_per_cpu_s=self.files / best if best else None)
        print(
            f"\n  {self.benchmark.extra_info['reader']}: {self.files} files, least process CPU per round "
            f"{best * 1e3:.1f} ms = {self.files / best if best else 0:,.0f} files per CPU-second"
        )


def _pinned(fn):
    """Run fn with this thread (and the threads it starts) on one CPU."""
    cpus = os.sched_getaffinity(0)
    one = {min(cpus)}

    def run():
        os.sched_setaffinity(0, one)
        try:
            return fn()
        finally:
            os.sched_setaffinity(0, cpus)

    return run


def test_batch_identify_many_one_core(benchmark, corpus):
    import vmcoreinfo

    paths, m = corpus
    _group(benchmark, corpus, "vmcoreinfo.identify_many (1 core)", cpus=1, threads=1)
    cpu = _Cpu(benchmark, _pinned(lambda: list(vmcoreinfo.identify_many(paths, threads=1))), len(paths))
    res = benchmark(cpu)
    cpu.record()
    assert make_corpus.check(res, m) == len(paths)


def test_batch_identify_many_all_cores(benchmark, corpus):
    import vmcoreinfo

    paths, m = corpus
    n = len(os.sched_getaffinity(0))
    _group(benchmark, corpus, f"vmcoreinfo.identify_many ({n} cores)", cpus=n, threads=n)
    cpu = _Cpu(benchmark, lambda: list(vmcoreinfo.identify_many(paths)), len(paths))
    res = benchmark(cpu)
    cpu.record()
    assert make_corpus.check(res, m) == len(paths)


@pytest.mark.parametrize("reader_name", ["vmcoreinfo", "drgn", "libkdumpfile", "libkdumpfile-debian"])
def test_batch_loop(benchmark, corpus, reader_name, request):
    paths, m = corpus
    r = reader_or_skip(reader_name)
    label = "vmcoreinfo.open loop" if reader_name == "vmcoreinfo" else f"{reader_name} loop"
    _group(benchmark, corpus, label + " (1 core)", cpus=1)
    slow = reader_name != "vmcoreinfo" and not _disabled(request.config)
    fn = _Cpu(benchmark, _pinned(lambda: [r.identify(p) for p in paths]), len(paths))
    rounds = 1 if "libkdumpfile" in reader_name else 3  # libkdumpfile: about a minute per round here
    got = benchmark.pedantic(fn, rounds=rounds, iterations=1) if slow else benchmark(fn)
    fn.record()
    _check_dicts(got, m)


def test_batch_dask_local_cluster(benchmark, corpus):
    pytest.importorskip("distributed", reason="the vmcoreinfo[dask] extra is not installed")
    import vmcoreinfo.dask as vd
    from distributed import Client, LocalCluster

    paths, m = corpus
    _group(benchmark, corpus, "vmcoreinfo.dask, LocalCluster 2 worker processes", cpus=2, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, Client(cl):
        batch = max(1, len(paths) // 8)
        got = benchmark.pedantic(
            lambda: vd.identify_bag(paths, batch_size=batch, threads=1).compute(), rounds=3, iterations=1, warmup_rounds=1
        )
    _check_dicts(got, m)
    assert [g["path"] for g in got] == paths


def test_batch_peak_rss_independent_of_file_count(corpus):
    """Peak RSS of identify_many over 1x, 10x and (benchmark runs) 100x the corpus, each count
    in its own process (VmHWM): the batch must not grow with the number of files."""
    paths, _ = corpus
    counts = [len(paths), 10 * len(paths)] + ([100 * len(paths)] if len(paths) >= 10_000 else [])
    out = []
    for n in counts:
        p = subprocess.run(
            [sys.executable, str(HERE / "batch_rss.py"), str(Path(paths[0]).parent.parent), str(n)],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        out.append(json.loads(p.stdout.strip().splitlines()[-1]))
    for r in out:
        print(
            f"batch rss: {r['files']:>9} files  peak {r['maxrss_kib'] / 1024:7.1f} MiB  "
            f"(after import {r['import_maxrss_kib'] / 1024:.1f} MiB)  {r['files'] / r['seconds']:,.0f} files/s"
        )
    if os.environ.get("BENCH_RESULTS"):
        Path(os.environ["BENCH_RESULTS"], "batch_rss.json").write_text(json.dumps(out, indent=1))
    grow = out[-1]["maxrss_kib"] - out[0]["maxrss_kib"]
    assert grow < 8 * 1024, f"peak RSS grew by {grow} KiB from {counts[0]} to {counts[-1]} files"
