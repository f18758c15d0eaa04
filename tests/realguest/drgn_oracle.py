"""drgn's reading of a guest dump with the kernel's vmlinux (the real-guest oracle).

usage: <drgn venv>/bin/python drgn_oracle.py DUMP VMLINUX  > drgn.json

Run by the generator in a subprocess with the python of a venv that has drgn (PyPI);
never imported by the tests.  Prints one JSON object:
  {"drgn": version, "release": uts release, "seconds": {...},
   "tasks": [{"idle", "pid", "tgid", "ppid", "comm", "state", "cpu", "kthread", "address",
              "frames": [{"name", "pc"}] (non-inline frames only) | "stack_error"}],
   "modules": [{"name", "base", "address"}],
   "panic": {"cpu", "pid", "comm"} | null}
tasks: the idle task of every online CPU ("idle": true; pid 0, swapper/N, not in
for_each_task) and every thread for_each_task yields (the pid namespace's).
"""

from __future__ import annotations

import json
import sys
import time

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import cpu_curr, idle_task, task_cpu, task_state_to_char

PF_KTHREAD = 0x00200000


def _int(v) -> int:
    return int(v.value_())


def module_list(prog):
    try:
        from drgn.helpers.linux.module import for_each_module

        mods = list(for_each_module(prog))
    except ImportError:
        from drgn.helpers.linux.list import list_for_each_entry

        mods = list(list_for_each_entry("struct module", prog["modules"].address_of_(), "list"))
    out = []
    for m in mods:
        try:  # 6.4+: mem[MOD_TEXT]; before: core_layout
            base = _int(m.mem[prog["MOD_TEXT"]].base)
        except (AttributeError, LookupError):
            base = _int(m.core_layout.base)
        out.append({"name": m.name.string_().decode(), "base": base, "address": _int(m)})
    return out


def frames(prog, task):
    out = []
    for f in prog.stack_trace(task):
        if f.is_inline:
            continue
        name = f.name
        if name is None:
            try:
                name = f.symbol().name
            except LookupError:
                name = None
        out.append({"name": name, "pc": f.pc})
    return out


def panic_of(prog):
    try:
        cpu = _int(prog["panic_cpu"].counter)
    except (KeyError, LookupError, AttributeError):
        return None
    if cpu < 0:
        return None
    t = cpu_curr(prog, cpu)
    return {"cpu": cpu, "pid": _int(t.pid), "comm": t.comm.string_().decode(errors="replace")}


def main() -> int:
    dump, vmlinux = sys.argv[1], sys.argv[2]
    sec = {}
    t0 = time.monotonic()
    prog = drgn.Program()
    prog.set_core_dump(dump)
    try:
        prog.load_debug_info([vmlinux])
    except drgn.MissingDebugInfoError:
        pass  # the modules' debug info is absent (only vmlinux is kept); vmlinux's is there
    sec["load"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    tasks = []
    # for_each_task walks the pid namespace: the idle tasks (pid 0, swapper/N; swapper/0 is
    # init_task, the head of the task list) are added from each online CPU, marked "idle"
    idle = [(idle_task(prog, cpu), True) for cpu in for_each_online_cpu(prog)]
    for t, is_idle in idle + [(t, False) for t in for_each_task(prog)]:
        rec = {
            "idle": is_idle,
            "pid": _int(t.pid),
            "tgid": _int(t.tgid),
            "ppid": _int(t.real_parent.tgid),
            "comm": t.comm.string_().decode(errors="replace"),
            "state": task_state_to_char(t),
            "cpu": task_cpu(t),
            "kthread": bool(_int(t.flags) & PF_KTHREAD),
            "address": _int(t),  # for_each_task yields pointers
        }
        try:
            rec["frames"] = frames(prog, t)
        except Exception as e:  # noqa: BLE001 - recorded, the oracle goes on
            rec["stack_error"] = f"{type(e).__name__}: {e}"
        tasks.append(rec)
    sec["tasks"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    modules = module_list(prog)
    sec["modules"] = round(time.monotonic() - t0, 3)
    try:
        release = prog["init_uts_ns"].name.release.string_().decode()
    except (KeyError, LookupError):
        pass
    out = {
        "drgn": drgn.__version__,
        "dump": dump,
        "vmlinux": vmlinux,
        "release": release,
        "seconds": sec,
        "tasks": tasks,
        "modules": modules,
        "panic": panic_of(prog),
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
