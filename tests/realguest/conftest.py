"""Fixtures for the real-guest conformance tests (marker `realguest`).

The dumps come from tests/realguest/generate.py:
  * VMCOREINFO_REALGUEST_DIR=DIR: use DIR when DIR/COMPLETE exists; otherwise run the
    generator into DIR first (so a dev loop can reuse one run).
  * unset: run the generator into tests/realguest/out/ (fresh, once per session).
If the generator cannot produce the guests the tests ERROR out; they never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realguest_support import CHECKED, HERE, NOTES, Guest, generator


def _run_generator(out: Path) -> None:
    cmd = [sys.executable, str(HERE / "generate.py"), str(out)]
    t0 = time.monotonic()
    print(f"\n[realguest] running {' '.join(cmd)}", flush=True)
    cp = subprocess.run(cmd, text=True, capture_output=True, timeout=3600)
    print(cp.stdout[-6000:], flush=True)
    if cp.returncode != 0 or not (out / "COMPLETE").exists():
        pytest.fail(
            f"real-guest generator failed (rc={cp.returncode}, "
            f"{time.monotonic() - t0:.0f} s); the guests could not be produced:\n"
            f"{cp.stderr[-4000:]}\n{cp.stdout[-2000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def realguest_dir() -> Path:
    env = os.environ.get("VMCOREINFO_REALGUEST_DIR")
    out = Path(env).resolve() if env else HERE / "out"
    if not env or not (out / "COMPLETE").exists():
        _run_generator(out)
    for g in generator.GUESTS:
        if not (out / g / "manifest.json").exists():
            pytest.fail(
                f"{out / g / 'manifest.json'} missing: not a complete generator output (run tests/realguest/generate.py OUTDIR)",
                pytrace=False,
            )
    return out


@pytest.fixture(scope="session")
def guests(realguest_dir) -> dict[str, Guest]:
    return {g: Guest(realguest_dir, g) for g in generator.GUESTS}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not CHECKED and not NOTES:
        return
    tr = terminalreporter
    tr.section("real-guest dumps checked")
    for path in sorted(CHECKED):
        tr.write_line(f"{path}: {', '.join(CHECKED[path])}")
    for msg in NOTES:
        tr.write_line(f"note: {msg}")
