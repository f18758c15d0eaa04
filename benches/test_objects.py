"""(g) the kernel's own types and objects, from the dump alone, side by side with drgn given the
kernel's debug info (the ``-dbg`` package's vmlinux; drgn has no typed helpers without it):

* types: ours (open + ``dump.types`` + ``sizeof("struct task_struct")``: the in-memory BTF found
  and parsed) against drgn (``set_core_dump`` + ``load_debug_info([vmlinux])`` + ``prog.type``);
  both must give the same size;
* tasks: ours (open + ``dump.tasks()``) against drgn (the same load + ``for_each_task``); both must
  list the same pids (drgn leaves out the idle tasks: pid 0).
* kallsyms from a fresh open is in test_kview_log.py.

Inputs: the guests under ``$VMCOREINFO_REALGUEST_DIR`` whose kernel has BTF (``qemu-elf.core``);
drgn's vmlinux from ``$VMCOREINFO_DBG_CACHE`` (default /var/cache/vmcoreinfo-dbg, filled by
``tests/realguest/generate.py --dbg``). Without them the benches skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import vmcoreinfo

DBG = Path(os.environ.get("VMCOREINFO_DBG_CACHE", "/var/cache/vmcoreinfo-dbg"))


def _inputs() -> list[tuple[str, Path]]:
    root = os.environ.get("VMCOREINFO_REALGUEST_DIR")
    if not root or not Path(root).is_dir():
        return []
    out = []
    for g in sorted(Path(root).iterdir()):
        f = g / "qemu-elf.core"
        if f.exists() and "nodriver" not in g.name and not g.name.startswith("i386"):
            out.append((g.name, f))
    return out


INPUTS = _inputs()
IDS = [i[0] for i in INPUTS]
if not INPUTS:
    pytestmark = pytest.mark.skip(reason="set VMCOREINFO_REALGUEST_DIR to the real-guest dumps")


def _vmlinux(path: Path) -> Path:
    with vmcoreinfo.open(path) as d:
        release = d.vmcoreinfo.osrelease
    v = DBG / f"vmlinux-{release}"
    if not v.exists():
        pytest.skip(f"{v} not cached (tests/realguest/generate.py --dbg fetches it)")
    return v


def _drgn(path: Path, vmlinux: Path):  # noqa: ANN202 - drgn is optional
    drgn = pytest.importorskip("drgn")
    prog = drgn.Program()
    prog.set_core_dump(str(path))
    prog.load_debug_info([str(vmlinux)])
    return drgn, prog


def ours_types(path: Path) -> int:
    with vmcoreinfo.open(path) as d:
        return d.types.sizeof("struct task_struct")


def drgn_types(path: Path, vmlinux: Path) -> int:
    drgn, prog = _drgn(path, vmlinux)
    return drgn.sizeof(prog.type("struct task_struct"))


def ours_tasks(path: Path) -> set[int]:
    with vmcoreinfo.open(path) as d:
        return {t.pid for t in d.tasks()}


def drgn_tasks(path: Path, vmlinux: Path) -> set[int]:
    _, prog = _drgn(path, vmlinux)
    from drgn.helpers.linux.pid import for_each_task

    return {t.pid.value_() for t in for_each_task(prog)}


@pytest.mark.parametrize("reader", ["vmcoreinfo", "drgn"])
@pytest.mark.parametrize("inp", INPUTS, ids=IDS)
def test_types(benchmark, reader: str, inp: tuple[str, Path]) -> None:
    name, path = inp
    benchmark.group = f"types {name}"
    benchmark.extra_info.update(input=name, op="types", reader=reader)
    if reader == "drgn":
        vmlinux = _vmlinux(path)
        got = benchmark.pedantic(drgn_types, args=(path, vmlinux), rounds=3, iterations=1)
    else:
        got = benchmark(ours_types, path)
    assert got == ours_types(path)


@pytest.mark.parametrize("reader", ["vmcoreinfo", "drgn"])
@pytest.mark.parametrize("inp", INPUTS, ids=IDS)
def test_tasks(benchmark, reader: str, inp: tuple[str, Path]) -> None:
    name, path = inp
    benchmark.group = f"tasks {name}"
    benchmark.extra_info.update(input=name, op="tasks", reader=reader)
    if not hasattr(vmcoreinfo.Dump, "tasks"):
        pytest.skip("Dump.tasks() is not built")
    if reader == "drgn":
        vmlinux = _vmlinux(path)
        got = benchmark.pedantic(drgn_tasks, args=(path, vmlinux), rounds=3, iterations=1)
        assert got == ours_tasks(path) - {0}
    else:
        got = benchmark(ours_tasks, path)
        assert 0 in got and 1 in got
