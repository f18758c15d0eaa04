"""``vmcoreinfo ps`` and ``vmcoreinfo lsmod``: argument handling, output and error paths
(the walkers themselves are tested in Rust with fakes, and on real guests in tests/realguest)."""

from __future__ import annotations

import json
import pathlib
import pickle
import subprocess
import sys
from typing import Any

import pytest
import vmcoreinfo
from vmcoreinfo import _objects_cli, cli

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers import FIXTURES  # noqa: E402
from test_kview_log import sym_guest  # noqa: E402

TASKS = [
    vmcoreinfo.Task(0, 0, 0, "swapper/0", "R", 0, True, True, 0xFFFFFFFF82A1AA40),
    vmcoreinfo.Task(1, 1, 0, "init", "S", 1, False, False, 0xFFFF888003C30000),
    vmcoreinfo.Task(2, 2, 0, "kthreadd", "S", 0, False, True, 0xFFFF888003C32000),
    vmcoreinfo.Task(101, 100, 1, "a b", "D", 1, False, False, 0xFFFF888003C34000),
]
MODULES = [
    vmcoreinfo.Module("qemu_fw_cfg", 0xFFFFFFFFC04D0000, 20480, "live", "", 0xFFFFFFFFC04D3000),
    vmcoreinfo.Module("vendor_mod", 0xFFFFFFFFC0500000, 8192, "coming", "(OE)", 0xFFFFFFFFC0501000),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmcoreinfo", *args], capture_output=True, text=True, timeout=60)


def test_records_are_frozen_and_pickle() -> None:
    t = TASKS[3]
    assert pickle.loads(pickle.dumps(t)) == t and t.as_dict()["comm"] == "a b"
    with pytest.raises(AttributeError):
        t.pid = 3  # type: ignore[misc]
    s = vmcoreinfo.Symbol("fw_cfg_probe", 0x23, 0x80, "qemu_fw_cfg")
    assert str(s) == "fw_cfg_probe+0x23/0x80 [qemu_fw_cfg]"
    assert str(vmcoreinfo.Symbol("panic", 5, None, None)) == "panic+0x5"
    assert pickle.loads(pickle.dumps(s)) == s and s["module"] == "qemu_fw_cfg"


def test_format_ps_brackets_kernel_threads() -> None:
    lines = _objects_cli.format_ps(TASKS).splitlines()
    assert lines[0].split() == ["PID", "TGID", "PPID", "ST", "CPU", "COMM"]
    assert lines[1].split() == ["0", "0", "0", "R", "0", "[swapper/0]"]
    assert lines[2].split() == ["1", "1", "0", "S", "1", "init"]
    assert lines[3].endswith("[kthreadd]")
    assert lines[4].split(maxsplit=5) == ["101", "100", "1", "D", "1", "a b"]


def test_format_lsmod() -> None:
    lines = _objects_cli.format_lsmod(MODULES).splitlines()
    assert lines[0].split() == ["Module", "Size", "Base", "State", "Taints"]
    assert lines[1].split() == ["qemu_fw_cfg", "20480", "0xffffffffc04d0000", "live"]
    assert lines[2].split() == ["vendor_mod", "8192", "0xffffffffc0500000", "coming", "(OE)"]


class _FakeDump:
    def __enter__(self) -> _FakeDump:
        return self

    def __exit__(self, *a: object) -> None:
        pass

    def tasks(self) -> list[vmcoreinfo.Task]:
        return TASKS

    def modules(self) -> list[vmcoreinfo.Module]:
        return MODULES


def test_json_output(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(_objects_cli.vmcoreinfo, "open", lambda *a, **k: _FakeDump())
    assert cli.main(["ps", "x.core", "--json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    assert [r["pid"] for r in rows] == [0, 1, 2, 101] and rows[2]["is_kthread"] is True
    assert cli.main(["lsmod", "--json", "x.core"]) == 0
    mods = json.loads(capsys.readouterr().out)
    assert mods[1] == {"name": "vendor_mod", "base": 0xFFFFFFFFC0500000, "size": 8192, "state": "coming",
                       "taints": "(OE)", "address": 0xFFFFFFFFC0501000}  # fmt: skip
    assert cli.main(["ps", "x.core"]) == 0
    assert "[kthreadd]" in capsys.readouterr().out


def test_a_dump_without_btf(tmp_path: pathlib.Path) -> None:
    p = sym_guest(tmp_path)
    with vmcoreinfo.open(p) as d:
        with pytest.raises(vmcoreinfo.NoBtfError, match="BTF"):
            d.tasks()
        with pytest.raises(vmcoreinfo.NoBtfError):
            d.modules()
        # A kernel address needs no BTF; an address outside the image needs the modules.
        sym = d.symbolize(d.symbols.address("static_fn") + 1)
        assert sym is not None and sym.name == "static_fn" and sym.offset == 1 and sym.module is None
        with pytest.raises(vmcoreinfo.NoBtfError):
            d.symbolize(0xFFFFFFFFC0000000)
        assert d.symbols.lookup(0xFFFFFFFF84A00041) == ("static_fn", 1), "lookup unchanged without modules"
    for cmd in ("ps", "lsmod"):
        cp = run(cmd, str(p))
        assert cp.returncode == 1 and "BTF" in cp.stderr and cp.stdout == "", cp.stderr
        cp = run(cmd, "--json", str(p))
        assert cp.returncode == 1 and cp.stdout == ""


def test_arguments_and_other_errors(tmp_path: pathlib.Path) -> None:
    assert run("ps").returncode == 2
    assert run("lsmod", "a", "b").returncode == 2
    assert run("ps", str(tmp_path / "missing.core")).returncode == 1
    # No VMCOREINFO: 3 once the BTF is read through it, 1 (no BTF) before; never success.
    cp = run("lsmod", str(FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core"))
    assert cp.returncode in (1, 3) and cp.stderr.startswith("vmcoreinfo: ") and cp.stdout == ""
    cp = run("ps", "--help")
    assert cp.returncode == 0 and "exit status" in cp.stdout
