"""Shared fixtures for the benches: readers (ours + peers), inputs, and per-(reader, op, file)
probes run in a subprocess (benches/probe.py) before anything runs in-process.

A peer that cannot read a file is recorded as failing (xfail with its error, and in
$BENCH_RESULTS/fails.json when BENCH_RESULTS is set), never dropped; a peer that is not
installed is skipped as unavailable. Ours must always work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import inputs  # noqa: E402
import readers  # noqa: E402

PROBE_MEM_GIB = float(os.environ.get("BENCH_PROBE_MEM_GIB", "12"))
PROBE_TIMEOUT = float(os.environ.get("BENCH_PROBE_TIMEOUT", "300"))
RESULTS = os.environ.get("BENCH_RESULTS")

_READERS, _MISSING = readers.available()
_probe_cache: dict = {}
_fails: list = []


def probe(reader: str, op: str, path: str) -> dict:
    key = (reader, op, path)
    if key not in _probe_cache:
        cmd = [sys.executable, str(HERE / "probe.py"), reader, op, path, "--mem-limit", str(PROBE_MEM_GIB)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT)
            line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
            res = (
                json.loads(line)
                if line.startswith("{")
                else {"ok": False, "error": f"probe exited {p.returncode}: {p.stderr.strip()[-300:]}"}
            )
        except subprocess.TimeoutExpired:
            res = {"ok": False, "error": f"timeout after {PROBE_TIMEOUT:.0f} s"}
        _probe_cache[key] = res
    return _probe_cache[key]


#: How to make each optional peer available (scripts/bench.sh does all of it in its own venv).
ENABLE = {
    "libkdumpfile": "enable it with `apt-get install libkdumpfile-dev && python benches/install_pykdumpfile.py` "
    "(PyPI pykdumpfile, patched to build against Debian's libkdumpfile 0.5.1, into this Python)",
    "libkdumpfile-debian": "enable it with `apt-get install python3-libkdumpfile` (loaded from " + readers.DEBIAN_DIST + ")",
    "drgn": "enable it with `pip install -r benches/requirements.txt`",
    "pyelftools": "enable it with `pip install -r benches/requirements.txt`",
    "lief": "enable it with `pip install -r benches/requirements.txt`",
}


def reader_or_skip(name: str) -> readers.Reader:
    if name in _MISSING:
        how = ENABLE.get(name, "see benches/README.md")
        pytest.skip(f"{name} unavailable ({_MISSING[name]}): {how}")
    return _READERS[name]


def record_fail(group: str, reader: str, input_id: str, error: str):
    _fails.append({"group": group, "reader": reader, "input": input_id, "error": error})
    pytest.xfail(f"{reader} fails on {input_id}: {error}")


def pytest_sessionfinish(session, exitstatus):
    if RESULTS:
        Path(RESULTS).mkdir(parents=True, exist_ok=True)
        (Path(RESULTS) / "fails.json").write_text(json.dumps(_fails, indent=1))
        (Path(RESULTS) / "readers.json").write_text(
            json.dumps(
                {
                    "available": {n: r.version() for n, r in _READERS.items()},
                    "unavailable": _MISSING,
                    "inputs": [
                        {"id": i, "path": p, "format": f, "memory": m, "size": os.stat(p).st_size}
                        for i, p, f, m in inputs.inputs()
                    ],
                },
                indent=1,
            )
        )


READER_NAMES = [c.name for c in readers.ALL]


def pytest_configure(config):
    # Plain test runs (CI: `pytest benches --benchmark-disable`) check correctness on the small
    # committed fixtures even where big inputs exist; BENCH_SET=big forces the big ones.
    if os.environ.get("BENCH_SET") is None and config.getoption("benchmark_disable", False):
        os.environ["BENCH_SET"] = "fixtures"


@pytest.fixture(scope="session")
def ours() -> readers.Reader:
    return _READERS["vmcoreinfo"]


def rounds_for(seconds: float | None) -> int | None:
    """Slow calls (a peer parsing a whole multi-GiB file) get a few pedantic rounds."""
    if seconds is None or seconds < 0.5:
        return None
    return 3 if seconds < 20 else 1
