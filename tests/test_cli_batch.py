"""`vmcoreinfo show` over many files, through a subprocess: JSON lines, CSV, Parquet, directories
(-r), globs, exit codes (0 ok, 1 a file failed, 2 usage, 3 no VMCOREINFO), progress on a tty only."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import shutil
import subprocess
import sys

import pytest
from helpers import FIXTURES

GOOD = ["x86_64-qemu-elf.core", "arm64-qemu-elf.core", "kdump/qemu-x86_64-zlib.kdump", "kdump/qemu-x86_64-zlib.flat"]


def run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmcoreinfo", *args], text=True, capture_output=True, cwd=cwd, timeout=120)


@pytest.fixture
def tree(tmp_path):
    """good/ (4 real dumps, one in a subdirectory), novi/ (the dump without a note), bad/ (a text file)."""
    (tmp_path / "good" / "sub").mkdir(parents=True)
    for i, name in enumerate(GOOD):
        dst = tmp_path / "good" / ("sub" if i == 3 else "") / name.replace("/", "-")
        shutil.copy(FIXTURES / name, dst)
    (tmp_path / "novi").mkdir()
    shutil.copy(FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core", tmp_path / "novi" / "a.core")
    (tmp_path / "bad").mkdir()
    shutil.copy(FIXTURES / "x86_64.VMCOREINFO.txt", tmp_path / "bad" / "text.core")
    return tmp_path


def jsonl(out: str) -> list[dict]:
    return [json.loads(ln) for ln in out.splitlines()]


def test_recursive_directory_as_json_lines(tree):
    p = run("show", "-r", "--jsonl", str(tree / "good"))
    assert p.returncode == 0, p.stderr
    rows = jsonl(p.stdout)
    assert [os.path.basename(r["path"]) for r in rows] == [
        "arm64-qemu-elf.core",
        "kdump-qemu-x86_64-zlib.kdump",
        "x86_64-qemu-elf.core",
        "kdump-qemu-x86_64-zlib.flat",
    ]
    assert {r["format"] for r in rows} == {"elf", "kdump", "flattened-kdump"}
    assert all(r["error"] is None and r["osrelease"] and r["page_size"] == 4096 for r in rows)
    assert p.stderr == "vmcoreinfo: 4 files, 0 failed\n"  # the summary; no progress when stderr is not a terminal


def test_json_is_json_lines_one_document_per_file(tree):
    a, b = str(tree / "good" / "x86_64-qemu-elf.core"), str(tree / "good" / "arm64-qemu-elf.core")
    p = run("show", "--json", a, b)
    assert p.returncode == 0, p.stderr
    assert [r["machine"] for r in jsonl(p.stdout)] == ["x86_64", "aarch64"]
    p = run("show", "--jsonl", a)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1
    assert json.loads(p.stdout)["path"] == a


def test_directory_without_r_is_a_usage_error(tree):
    p = run("show", "--jsonl", str(tree / "good"))
    assert p.returncode == 2
    assert "use -r" in p.stderr and p.stdout == ""


def test_exit_codes(tree):
    assert run("show", "-r", "--jsonl", str(tree / "novi")).returncode == 3
    p = run("show", "-r", "--jsonl", str(tree / "novi"), str(tree / "good"))
    assert p.returncode == 3
    assert sum(r["error"] is not None for r in jsonl(p.stdout)) == 1
    p = run("show", "-r", "--jsonl", str(tree), str(tree / "bad" / "text.core"))
    assert p.returncode == 1, p.stderr  # a broken file outweighs a missing note
    rows = jsonl(p.stdout)
    assert len(rows) == 6  # the text file under bad/ is skipped, the one named is not
    errs = {os.path.basename(r["path"]): r["error"]["type"] for r in rows if r["error"]}
    assert errs == {"text.core": "FormatError", "a.core": "NoVmcoreinfoError"}
    p = run("show", "--jsonl", str(tree / "missing.core"), str(tree / "good" / "x86_64-qemu-elf.core"))
    assert p.returncode == 1
    assert jsonl(p.stdout)[0]["error"]["type"] == "FileNotFoundError"
    assert run("show", "--threads", "0", "--jsonl", str(tree / "good" / "x86_64-qemu-elf.core")).returncode == 2
    assert run("show", "--csv", "--jsonl", str(tree)).returncode == 2  # argparse: mutually exclusive


def test_globs_expand_sorted_and_recursively(tree):
    p = run("show", "--jsonl", str(tree / "good" / "*.core"))
    assert p.returncode == 0, p.stderr
    assert [os.path.basename(r["path"]) for r in jsonl(p.stdout)] == ["arm64-qemu-elf.core", "x86_64-qemu-elf.core"]
    p = run("show", "--jsonl", str(tree / "**" / "*.flat"))
    assert [os.path.basename(r["path"]) for r in jsonl(p.stdout)] == ["kdump-qemu-x86_64-zlib.flat"]
    p = run("show", "--jsonl", str(tree / "nothing-*.core"))
    assert p.returncode == 1 and jsonl(p.stdout)[0]["error"]["type"] == "FileNotFoundError"


def test_csv(tree):
    p = run("show", "-r", "--csv", str(tree / "good"), str(tree / "novi"))
    assert p.returncode == 3, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 5
    import vmcoreinfo

    assert list(rows[0]) == list(vmcoreinfo.Identity.FIELDS)
    assert rows[0]["machine"] == "aarch64" and rows[0]["page_size"] == "4096" and rows[0]["error_type"] == ""
    assert rows[-1]["error_type"] == "NoVmcoreinfoError"


def test_human_lines_for_many_files(tree):
    p = run("show", str(tree / "good" / "x86_64-qemu-elf.core"), str(tree / "bad" / "text.core"))
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines[0] == "path\tformat\tmachine\tosrelease\tbuild_id\tkernel_offset\tphys_base\tpage_size"
    assert lines[1].startswith(str(tree / "good" / "x86_64-qemu-elf.core") + "\telf\tx86_64\t6.1.0-48-cloud-amd64")
    assert f"vmcoreinfo: {tree / 'bad' / 'text.core'}: error: offset 0 (0x0): not a dump" in p.stderr


def test_parquet(tree):
    out = tree / "out.parquet"
    p = run("show", "-r", "--parquet", str(out), str(tree / "good"), str(tree / "bad" / "text.core"))
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert p.returncode == 2 and "pyarrow" in p.stderr
        pytest.skip("pyarrow is not installed (the parquet extra); checked the usage error instead")
    assert p.returncode == 1, p.stderr
    t = pq.read_table(out).to_pylist()
    assert [r["machine"] for r in t] == ["aarch64", "x86_64", "x86_64", "x86_64", None]
    assert t[0]["kernel_offset"] is not None and t[-1]["error_type"] == "FormatError"
    assert "5 files, 1 failed" in p.stderr


def test_progress_on_a_terminal(tree):
    """stderr on a pseudo-terminal: a progress line; stdout (a pipe) carries only the results."""
    master, slave = pty.openpty()
    try:
        p = subprocess.run(
            [sys.executable, "-m", "vmcoreinfo", "show", "-r", "--jsonl", str(tree / "good")],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=120,
        )
        os.close(slave)
        slave = -1
        err = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0
    assert len(p.stdout.splitlines()) == 4
    assert b"vmcoreinfo: 4 files" in err, err
