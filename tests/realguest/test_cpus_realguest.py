"""Real-guest conformance of the vCPUs and the panic: in every dump format a guest produced,
``dump.cpus()`` has one entry per vCPU the guest ran with (registers from the dump's notes, pc
inside a kernel symbol); on the guests that panicked (sysrq-c from a task the guest names in its
report), ``panic_info()`` names the CPU, pid and comm of the ``CPU: N PID: P Comm: C`` line the
kernel logged and the panic message; the guests dumped alive give None.
"""

from __future__ import annotations

import re

import pytest

try:
    import vmcoreinfo
except ImportError:  # collected even under -m "not realguest"
    vmcoreinfo = None
from realguest_support import generator, record

pytestmark = pytest.mark.realguest

DRIVER_GUESTS = [g for g, s in generator.GUESTS.items() if s["driver"]]
CASES = [pytest.param(g, f, req, id=f"{g}/{f}") for g in DRIVER_GUESTS for f, req in generator.PRODUCTS[g]]
CPU_LINE = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (\S+)")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_cpus_and_panic(guests, g, fname, required):
    guest = guests[g]
    path = guest.path(fname, required)
    with vmcoreinfo.open(path) as d:
        cpus = d.cpus()
        panic = d.panic_info()
        log = d.kernel_log()
    assert [c.cpu for c in cpus] == list(range(guest.smp)), f"{path}: {len(cpus)} vCPUs, the guest ran {guest.smp}"
    for c in cpus:
        assert c.pc != 0 and c.sp != 0
        assert c.source in ("elf-note", "kdump-note", "crash-notes")
        if c.symbol is not None:
            assert re.fullmatch(r"[\w.$]+\+0x[0-9a-f]+(/0x[0-9a-f]+)?", c.symbol), c.symbol
    if not generator.GUESTS[g].get("panic"):
        assert panic is None, f"{path}: a live guest reported a panic: {panic}"
        record(path, f"{len(cpus)} vCPUs, no panic")
        return
    want = guest.panic_task
    assert want is not None, f"{g}: the guest report names no panic task"
    logged = [m for r in log if (m := CPU_LINE.search(r.text))]
    assert logged, f"{path}: no CPU: N PID: P line in the log"
    cpu, pid, comm = int(logged[-1][1]), int(logged[-1][2]), logged[-1][3]
    assert panic is not None, f"{path}: the guest panicked but panic_info() is None"
    assert (panic.cpu, panic.pid, panic.comm) == (cpu, pid, comm)
    assert (pid, comm) == (want.pid, want.comm)
    assert panic.message.startswith("Kernel panic - not syncing: sysrq triggered crash")
    assert panic.record is not None and panic.record.text == panic.message
    assert panic.taint in ("Not tainted",) or panic.taint.startswith("Tainted: ")
    on_cpu = cpus[panic.cpu]
    assert on_cpu.symbol is not None, f"{path}: the panic CPU's pc {on_cpu.pc:#x} is in no symbol"
    # the task running on the panic CPU: per-CPU data (x86_64), or on arm64 6.1, whose kallsyms
    # has no __per_cpu_offset, the task marked running there whose stack holds the CPU's sp
    assert (on_cpu.pid, on_cpu.comm) == (pid, comm), f"{path}: CPU {panic.cpu} runs {on_cpu.pid} {on_cpu.comm}"
    assert panic.task == on_cpu.task is not None
    record(path, f"panic on CPU {panic.cpu} pid {panic.pid} {panic.comm} ({panic.cpu_source}); pc {on_cpu.symbol}")
