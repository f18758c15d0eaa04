"""Shared helpers for the real-guest tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DEBIAN_PYTHON = "/usr/bin/python3"


def _load_generator():
    spec = importlib.util.spec_from_file_location("vmcoreinfo_realguest_generate", HERE / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


generator = _load_generator()

# file -> list of checks it passed (printed in the terminal summary)
CHECKED: dict[str, list[str]] = {}
NOTES: list[str] = []


def record(path: Path | str, check: str) -> None:
    CHECKED.setdefault(str(path), []).append(check)


def short(msg: str | None, n: int = 110) -> str:
    msg = (msg or "").split(" | ")[-1]
    return msg if len(msg) <= n else msg[:n] + "..."


def note(msg: str) -> None:
    NOTES.append(msg)


class Guest:
    def __init__(self, root: Path, name: str):
        self.name = name
        self.dir = root / name
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        self.view = self.manifest["guest_view"]
        self.files = self.manifest["files"]
        self.elf_arch = self.manifest["elf_arch"]  # "x86_64" | "aarch64"

    def path(self, fname: str, required: bool) -> Path:
        if fname in self.files:
            return self.dir / fname
        why = [r for r in self.manifest["failed"] if r.get("file") == fname]
        if required:
            pytest.fail(f"{self.name}/{fname} was not produced: {why or 'not in manifest'}", pytrace=False)
        pytest.skip(f"{self.name}/{fname} not produced (optional): {short(why[0]['error']) if why else 'not in manifest'}")

    # the guest's own view --------------------------------------------------
    @property
    def note_bytes(self) -> bytes:
        """The note as the guest read it through /proc/kcore (len = note size)."""
        return bytes.fromhex(self.view["note_hex"])

    @property
    def text(self) -> bytes:
        return self.view["note_text"].encode("latin-1")

    @property
    def fwcfg_raw(self) -> bytes:
        return bytes.fromhex(self.view["fwcfg_raw_hex"])


@functools.cache
def kdumpfile_probe(path: str, arch: str) -> dict:
    """libkdumpfile's reading, in a subprocess of the Debian interpreter."""
    cp = subprocess.run(
        [DEBIAN_PYTHON, str(HERE / "kdumpfile_probe.py"), path, arch], text=True, capture_output=True, timeout=300
    )
    if cp.returncode != 0 or not cp.stdout.strip():
        return {"ok": False, "error": f"probe crashed rc={cp.returncode}: {cp.stderr[-500:]}"}
    return json.loads(cp.stdout.strip().splitlines()[-1])


@functools.cache
def crash_osrelease(path: str) -> tuple[int, str]:
    cp = subprocess.run(["crash", "--osrelease", path], text=True, capture_output=True, timeout=300)
    lines = [ln for ln in cp.stdout.replace("\r", "\n").splitlines() if ln.strip() and "please wait" not in ln]
    return cp.returncode, (lines[-1].strip() if lines else "")
