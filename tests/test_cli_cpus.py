"""`vmcoreinfo cpus`: registers from the notes even when the dump holds too little memory to tell
whether the guest panicked (the small fixtures), errors and usage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent / "fixtures"


def run_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmcoreinfo", *map(str, args)], text=True, capture_output=True, timeout=120)


def test_cpus_text_reads_registers_and_says_the_panic_cannot_be_told():
    r = run_cli("cpus", str(FIX / "x86_64-qemu-elf.core"))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["CPU", "PC", "SP"]
    assert lines[1].split()[0] == "0" and lines[1].split()[1].startswith("0xffffffff")
    assert "whether the guest panicked cannot be told" in r.stderr


def test_cpus_json_has_the_registers_and_the_panic_error():
    r = run_cli("cpus", "--json", str(FIX / "x86_64-qemu-elf.core"))
    doc = json.loads(r.stdout)
    assert [c["cpu"] for c in doc["cpus"]] == [0]
    regs = doc["cpus"][0]["registers"]
    assert regs["rip"] == doc["cpus"][0]["pc"] and regs["rsp"] == doc["cpus"][0]["sp"]
    assert doc["panic"] is None and "no memory" in doc["panic_error"]
    assert r.returncode == 1


@pytest.mark.parametrize("fixture,pc", [("arm64-qemu-elf.core", "pc"), ("i386-qemu-elf-paging.core", "eip")])
def test_cpus_of_other_machines(fixture, pc):
    r = run_cli("cpus", "--json", str(FIX / fixture))
    doc = json.loads(r.stdout)
    assert doc["cpus"] and all(c["registers"][pc] == c["pc"] for c in doc["cpus"])


def test_cpus_of_a_directory_is_a_usage_error(tmp_path):
    r = run_cli("cpus", str(tmp_path))
    assert r.returncode == 2 and "is a directory" in r.stderr
