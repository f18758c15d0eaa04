"""The README's examples run as written, so they cannot drift: every ```pycon block is a doctest
(run from the repository root, on the committed fixtures) and every ```console block's commands
are run and their output compared line for line."""

from __future__ import annotations

import doctest
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", README, flags=re.S | re.M)


def test_readme_has_examples() -> None:
    assert blocks("pycon") and blocks("console")


@pytest.mark.parametrize("i", range(len(blocks("pycon"))))
def test_python_examples(i: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    test = doctest.DocTestParser().get_doctest(blocks("pycon")[i], {}, f"README.md pycon block {i}", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert runner.tries >= 3


def commands(block: str) -> list[tuple[str, list[str], int]]:
    """(command, expected stdout lines, expected exit status) for each `$ ` line."""
    out: list[tuple[str, list[str], int]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], [], 0))
        elif m := re.fullmatch(r"\[exit status (\d+)\]", line):
            out[-1] = (out[-1][0], out[-1][1], int(m.group(1)))
        else:
            out[-1][1].append(line)
    return out


CASES = [c for b in blocks("console") for c in commands(b)]


@pytest.mark.parametrize("cmd,expected,status", CASES, ids=[c[0] for c in CASES])
def test_cli_examples(cmd: str, expected: list[str], status: int) -> None:
    argv = shlex.split(cmd)
    assert argv[0] == "vmcoreinfo"
    stdout = subprocess.DEVNULL if argv[-2:-1] == [">"] else subprocess.PIPE
    if stdout is subprocess.DEVNULL:
        argv = argv[:-2]
    cp = subprocess.run(
        [sys.executable, "-m", "vmcoreinfo", *argv[1:]],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert cp.returncode == status, cp.stderr
    if stdout is subprocess.PIPE:
        assert cp.stdout.splitlines() == expected
