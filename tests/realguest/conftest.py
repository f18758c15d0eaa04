"""Fixtures for the real-guest conformance tests (marker `realguest`).

The dumps come from tests/realguest/generate.py:
  * VMCOREINFO_REALGUEST_DIR=DIR: use DIR when DIR/COMPLETE exists; otherwise run the
    generator into DIR first (so a dev loop can reuse one run).
  * unset: run the generator into tests/realguest/out/ (fresh, once per session).
  * VMCOREINFO_REALGUEST_GUESTS=g1,g2: check only these guests (a generator run with
    --guests g1,g2); the other guests' tests are deselected, and the summary says so.
    Unset with a complete DIR: the guests DIR holds (its summary.json), the others deselected
    the same way (an output made before guests were added).
If the generator cannot produce the guests the tests ERROR out; they never skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realguest_support import CHECKED, HERE, NOTES, Guest, generator


def _guests_of_dir() -> list[str] | None:
    """The guests of a complete VMCOREINFO_REALGUEST_DIR (its summary.json), or None: a
    generator output made before guests were added is checked for the guests it has."""
    env = os.environ.get("VMCOREINFO_REALGUEST_DIR")
    if not env or not (Path(env) / "COMPLETE").exists():
        return None
    try:
        made = json.loads((Path(env) / "summary.json").read_text())["guests"]
    except (OSError, ValueError, KeyError):
        return None
    return [g for g in generator.GUESTS if g in made]


def selected_guests() -> list[str]:
    env = os.environ.get("VMCOREINFO_REALGUEST_GUESTS")
    if not env:
        return _guests_of_dir() or list(generator.GUESTS)
    chosen = [g for g in env.split(",") if g]
    unknown = [g for g in chosen if g not in generator.GUESTS]
    if unknown:
        raise pytest.UsageError(f"VMCOREINFO_REALGUEST_GUESTS: unknown guest(s) {unknown} (known: {', '.join(generator.GUESTS)})")
    return chosen


DESELECTED: list[str] = []


def pytest_configure(config):
    config.addinivalue_line("markers", "guests(*names): the real guests a test needs")


def pytest_collection_modifyitems(config, items):
    """Deselect the tests of guests VMCOREINFO_REALGUEST_GUESTS leaves out."""
    chosen = set(selected_guests())
    keep, drop = [], []
    for item in items:
        if HERE not in Path(str(item.path)).parents:
            keep.append(item)
            continue
        need = set()
        cs = getattr(item, "callspec", None)
        if cs is not None and "g" in cs.params:
            need.add(cs.params["g"])
        for m in item.iter_markers("guests"):
            need.update(m.args)
        (drop if need - chosen else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        why = (
            "VMCOREINFO_REALGUEST_GUESTS"
            if os.environ.get("VMCOREINFO_REALGUEST_GUESTS")
            else "VMCOREINFO_REALGUEST_DIR (not generated there)"
        )
        DESELECTED.append(
            f"{len(drop)} real-guest test(s) deselected: guests {sorted(set(generator.GUESTS) - chosen)} left out by {why}"
        )


def _run_generator(out: Path) -> None:
    cmd = [sys.executable, str(HERE / "generate.py"), str(out), "--guests", ",".join(selected_guests())]
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
    for g in selected_guests():
        if not (out / g / "manifest.json").exists():
            pytest.fail(
                f"{out / g / 'manifest.json'} missing: not a complete generator output (run tests/realguest/generate.py OUTDIR)",
                pytrace=False,
            )
    return out


@pytest.fixture(scope="session")
def guests(realguest_dir) -> dict[str, Guest]:
    return {g: Guest(realguest_dir, g) for g in selected_guests()}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not CHECKED and not NOTES and not DESELECTED:
        return
    tr = terminalreporter
    tr.section("real-guest dumps checked")
    for path in sorted(CHECKED):
        tr.write_line(f"{path}: {', '.join(CHECKED[path])}")
    for msg in NOTES:
        tr.write_line(f"note: {msg}")
    for msg in DESELECTED:
        tr.write_line(f"NOTE: {msg}")
