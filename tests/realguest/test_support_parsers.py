"""The parsers of the guest's own listings (realguest_support.guest_tasks & co.), on a
committed excerpt of a real report (fixtures/, from the x86_64-panic guest, 6.1) and on
lines made to be wrong.  No guests needed (not marked realguest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from realguest_support import (
    GuestFrame,
    generator,
    guest_modules,
    guest_stacks,
    guest_tasks,
    kernel_comm,
    panic_task,
)

FIX = Path(__file__).resolve().parent / "fixtures"
REPORT = FIX / "x86_64-panic-report-excerpt.txt"
DRGN = json.loads((FIX / "x86_64-panic-drgn-excerpt.json").read_text())


def test_tasks_of_the_excerpt():
    tasks = guest_tasks(REPORT)
    lines = [ln for ln in REPORT.read_text().splitlines() if ln.startswith("RGUEST task ")]
    assert list(tasks) == [int(ln.split()[2]) for ln in lines]  # the guest's order, by TID
    init = tasks[1]
    assert (init.tid, init.pid, init.tgid, init.ppid, init.state, init.cpu, init.kthread) == (1, 1, 1, 0, "S", 1, False)
    assert init.comm == init.proc_comm == "init"
    # comm runs to the end of the line: spaces and parentheses kept
    assert tasks[226].comm == "rg sl(eep)er 2" and tasks[226].ppid == 1
    assert tasks[228].ppid == 226 and tasks[228].comm == "sleep"
    assert tasks[233].state == "R" and tasks[233].comm == "rg-panic"
    assert tasks[2].kthread and tasks[2].ppid == 0 and tasks[2].state == "S"
    assert tasks[12].state == "I" and tasks[12].kthread


def test_task_comm_is_what_the_dump_holds():
    """/proc prints kernel threads by their full name and workqueue workers with their
    work's description; the parsed comm is task->comm, as drgn read it from the same guest."""
    tasks = guest_tasks(REPORT)
    assert tasks[12].proc_comm == "rcu_tasks_rude_kthread"
    assert tasks[31].proc_comm == "kworker/u4:1-events_unbound"
    for tid, want in DRGN["tasks"].items():
        t = tasks[int(tid)]
        assert t.comm == want["comm"], (tid, t.proc_comm)
        assert (t.tgid, t.ppid, t.kthread) == (want["tgid"], want["ppid"], want["kthread"]), tid


@pytest.mark.parametrize(
    "proc,kthread,want",
    [
        ("kworker/0:1H-kblockd", True, "kworker/0:1H"),
        ("kworker/u4:2+events_unbound", True, "kworker/u4:2"),  # "+": busy
        ("kworker/1:0", True, "kworker/1:0"),
        ("kworker/R-slub_flushwq", True, "kworker/R-slub_"),  # 6.9+ rescuers: the name itself
        ("rcu_tasks_trace_kthread", True, "rcu_tasks_trace"),
        ("ksoftirqd/1", True, "ksoftirqd/1"),
        ("kworker/0:0-events", False, "kworker/0:0-events"),  # a user task: as printed
        ("a-very-long-user-comm", False, "a-very-long-user-comm"),
    ],
)
def test_kernel_comm(proc, kthread, want):
    assert kernel_comm(proc, kthread) == want


def test_modules_of_the_excerpt():
    mods = guest_modules(REPORT)
    assert list(mods) == ["nls_utf8", "crc7", "crc_itu_t", "cordic", "qemu_fw_cfg"]
    fw = mods["qemu_fw_cfg"]
    assert (fw.size, fw.refcount, fw.state, fw.base, fw.taints) == (20480, 0, "live", 0xFFFFFFFFC045B000, "")
    assert {m.name: m.base for m in mods.values()} == DRGN["modules"]
    # the four EXTRA_MODULES (module names have "_" where the file has "-")
    assert {n.replace("-", "_") for n in generator.EXTRA_MODULES} < set(mods)


def test_module_states_and_taints():
    text = (
        "RGUEST module foo 8192 2 Loading 0xffffffffc0001000 (OE)\n"
        "RGUEST module bar 4096 -1 Unloading 0xffff800001234000\n"
        "RGUEST module baz 4096 0 Live 0x0000000000000000\n"
    )
    mods = guest_modules(text)
    assert (mods["foo"].state, mods["foo"].taints, mods["foo"].refcount) == ("coming", "OE", 2)
    assert (mods["bar"].state, mods["bar"].refcount, mods["bar"].base) == ("going", -1, 0xFFFF800001234000)
    assert mods["baz"].base == 0  # kptr_restrict would print zeros


def test_stacks_of_the_excerpt():
    stacks = guest_stacks(REPORT)
    assert [f.symbol for f in stacks[1]] == [
        "do_wait",
        "kernel_wait4",
        "__do_sys_wait4",
        "do_syscall_64",
        "entry_SYSCALL_64_after_hwframe",
    ]
    assert stacks[1][0] == GuestFrame("do_wait", 0x160, 0x2F0, None)
    assert str(stacks[2][0]) == "kthreadd+0x2bc/0x2d0"
    assert stacks[233][0].symbol == "proc_pid_stack"  # the listing task read its own stack
    assert 228 not in stacks  # not in the excerpt


def test_stack_frame_in_a_module():
    frames = guest_stacks(["RGUEST stack 42 fw_cfg_read_blob+0x1c/0x90 [qemu_fw_cfg]"])
    assert frames == {42: [GuestFrame("fw_cfg_read_blob", 0x1C, 0x90, "qemu_fw_cfg")]}
    assert str(frames[42][0]) == "fw_cfg_read_blob+0x1c/0x90 [qemu_fw_cfg]"


def test_panic_task():
    pt = panic_task(REPORT)
    assert (pt.pid, pt.comm) == (233, "rg-panic")
    assert (pt.pid, pt.comm) == (DRGN["panic"]["pid"], DRGN["panic"]["comm"])
    assert guest_tasks(REPORT)[pt.pid].comm == pt.comm
    assert panic_task("RGUEST begin\nRGUEST end\n") is None


@pytest.mark.parametrize(
    "parse,line",
    [
        (guest_tasks, "RGUEST task 1 1 0 S 0 init"),  # a field missing
        (guest_tasks, "RGUEST task 1 1 0 SS 0 0 init"),
        (guest_tasks, "RGUEST task 1 1 0 S 0 2 init"),
        (guest_tasks, "RGUEST task x 1 0 S 0 0 init"),
        (guest_modules, "RGUEST module foo 8192 0 Live"),
        (guest_modules, "RGUEST module foo 8192 0 Alive 0xffffffffc0001000"),
        (guest_modules, "RGUEST module foo 8192 0 Live ffffffffc0001000"),
        (guest_modules, "RGUEST module foo 8192 0 Live 0xffffffffc0001000 OE"),
        (guest_stacks, "RGUEST stack 1 do_wait"),
        (guest_stacks, "RGUEST stack 1 [<0>] do_wait+0x160/0x2f0"),
        (panic_task, "RGUEST panic-task 1"),
    ],
)
def test_bad_lines_are_refused(parse, line):
    with pytest.raises(ValueError, match="report line 2"):
        parse(["RGUEST begin", line])


def test_a_task_listed_twice_is_refused():
    with pytest.raises(ValueError, match="listed twice"):
        guest_tasks(["RGUEST task 5 5 2 I 0 1 x", "RGUEST task 5 5 2 I 0 1 x"])
