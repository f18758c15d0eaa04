"""Shared helpers for the real-guest tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import re
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
    def spec(self) -> dict:
        return generator.GUESTS[self.name]

    @property
    def report(self) -> str:
        return (self.dir / "guest-report.txt").read_text(errors="replace")

    @functools.cached_property
    def tasks(self) -> dict[int, GuestTask]:
        return guest_tasks(self.report)

    @functools.cached_property
    def modules(self) -> dict[str, GuestModule]:
        return guest_modules(self.report)

    @functools.cached_property
    def stacks(self) -> dict[int, list[GuestFrame]]:
        return guest_stacks(self.report)

    @functools.cached_property
    def panic_task(self) -> PanicTask | None:
        return panic_task(self.report)

    @functools.cached_property
    def drgn(self) -> dict | None:
        return drgn_reading(self.dir)

    @property
    def smp(self) -> int:
        """vCPUs the guest ran with (generate.py's -smp)."""
        return int(self.manifest.get("smp", 1))

    @property
    def kernel_version(self) -> tuple[int, int]:
        """(major, minor) of the guest's uname -r."""
        m = re.match(r"(\d+)\.(\d+)", self.view["uname_r"])
        return (int(m.group(1)), int(m.group(2)))

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


# ---------------------------------------------------------------- the guest's own listings
# Lines of guest-report.txt (generate.py's init script; formats in /work/wt/API.md):
#   RGUEST task TID TGID PPID STATE CPU KTHREAD COMM
#   RGUEST module NAME SIZE REFCOUNT STATE 0xBASE [TAINTS]
#   RGUEST stack TID SYMBOL+0xOFF/0xSIZE [MODULE]
#   RGUEST panic-task PID COMM
TASK_COMM_LEN = 16  # include/linux/sched.h: task->comm holds 15 bytes and a NUL
# a workqueue worker's own task->comm (kernel/workqueue.c create_worker: "kworker/%s" with
# "u%d:%d" or "%d:%d" + "H" for high priority; "kworker/dying" when it leaves)
_KWORKER = re.compile(r"(kworker/(?:u?\d+:\d+H?|dying))[+-].*")
# /proc/modules state column (kernel/module/procfs.c m_show) -> enum module_state
_MODULE_STATES = {"Live": "live", "Loading": "coming", "Unloading": "going"}


@dataclasses.dataclass(frozen=True)
class GuestTask:
    """One thread as the guest listed it from /proc/TGID/task/TID/stat."""

    tid: int
    tgid: int
    ppid: int
    state: str  # one letter as ps (R S D T t X Z P I)
    cpu: int  # the CPU it last ran on (stat field 39)
    kthread: bool  # PF_KTHREAD in the stat flags
    proc_comm: str  # the name as /proc prints it (see comm)
    comm: str  # task->comm, what the dump holds (see kernel_comm)

    @property
    def pid(self) -> int:  # the kernel's task->pid is the thread id
        return self.tid


def kernel_comm(proc_comm: str, kthread: bool) -> str:
    """task->comm from the name /proc prints.  fs/proc/array.c proc_task_name() prints a
    workqueue worker (PF_WQ_WORKER) as task->comm + "+desc" (busy) or "-desc" (idle)
    (wq_worker_comm), and since 5.17 any other kernel thread by its full name
    (get_kthread_comm, commit d6986ce24fc0), which task->comm holds only up to
    TASK_COMM_LEN - 1 bytes; user tasks print task->comm itself."""
    if not kthread:
        return proc_comm
    m = _KWORKER.fullmatch(proc_comm)
    name = m.group(1) if m else proc_comm
    return name.encode()[: TASK_COMM_LEN - 1].decode(errors="ignore")


@dataclasses.dataclass(frozen=True)
class GuestModule:
    """One /proc/modules line (the deps column is not reported)."""

    name: str
    size: int
    refcount: int
    state: str  # "live", "coming", "going" (enum module_state; /proc prints Live/Loading/Unloading)
    base: int  # the core (text) base; 0 when kptr_restrict hid it
    taints: str  # as /proc/modules prints them without the parentheses, "" when none


@dataclasses.dataclass(frozen=True)
class GuestFrame:
    """One /proc/TID/stack line: `symbol+0xoff/0xsize [module]`."""

    symbol: str
    offset: int
    size: int
    module: str | None

    def __str__(self) -> str:
        s = f"{self.symbol}+{self.offset:#x}/{self.size:#x}"
        return f"{s} [{self.module}]" if self.module else s


@dataclasses.dataclass(frozen=True)
class PanicTask:
    pid: int
    comm: str


def _report_lines(report) -> list[str]:
    """report: the text of guest-report.txt, its Path, or its lines."""
    if isinstance(report, Path):
        report = report.read_text(errors="replace")
    if isinstance(report, str):
        report = report.splitlines()
    return [ln.rstrip("\r\n") for ln in report]


def _items(report, key: str) -> list[tuple[int, str]]:
    """(line number, rest) of every `RGUEST KEY rest` line."""
    head = f"{generator.PREFIX} {key} "
    return [(i, ln[len(head) :]) for i, ln in enumerate(_report_lines(report), 1) if ln.startswith(head)]


def guest_tasks(report) -> dict[int, GuestTask]:
    """Every thread the guest listed, by TID (in the guest's order)."""
    out: dict[int, GuestTask] = {}
    for i, rest in _items(report, "task"):
        parts = rest.split(" ", 6)
        if len(parts) != 7 or not all(p.lstrip("-").isdigit() for p in parts[:3] + parts[4:6]):
            raise ValueError(f"report line {i}: bad task line {rest!r}")
        tid, tgid, ppid, state, cpu, kt, comm = parts
        if len(state) != 1 or kt not in ("0", "1"):
            raise ValueError(f"report line {i}: bad task state/kthread {rest!r}")
        if int(tid) in out:
            raise ValueError(f"report line {i}: task {tid} listed twice")
        kthread = kt == "1"
        out[int(tid)] = GuestTask(int(tid), int(tgid), int(ppid), state, int(cpu), kthread, comm, kernel_comm(comm, kthread))
    return out


def guest_modules(report) -> dict[str, GuestModule]:
    """The guest's /proc/modules, by name (in its order: the last loaded first)."""
    out: dict[str, GuestModule] = {}
    for i, rest in _items(report, "module"):
        parts = rest.split()
        if len(parts) not in (5, 6) or not (parts[1].isdigit() and parts[2].lstrip("-").isdigit()):
            raise ValueError(f"report line {i}: bad module line {rest!r}")
        name, size, refs, state, base = parts[:5]
        if state not in _MODULE_STATES or not re.fullmatch(r"0x[0-9a-f]+", base):
            raise ValueError(f"report line {i}: bad module state/base {rest!r}")
        taints = parts[5] if len(parts) == 6 else ""
        if taints and not re.fullmatch(r"\([A-Z]+\)", taints):
            raise ValueError(f"report line {i}: bad module taints {rest!r}")
        out[name] = GuestModule(name, int(size), int(refs), _MODULE_STATES[state], int(base, 16), taints.strip("()"))
    return out


_FRAME = re.compile(r"(\S+)\+(0x[0-9a-f]+)/(0x[0-9a-f]+)(?: \[(\S+)\])?")


def guest_stacks(report) -> dict[int, list[GuestFrame]]:
    """/proc/TID/stack of every thread that had one, by TID (frames innermost first)."""
    out: dict[int, list[GuestFrame]] = {}
    for i, rest in _items(report, "stack"):
        tid, _, frame = rest.partition(" ")
        m = _FRAME.fullmatch(frame)
        if not tid.isdigit() or not m:
            raise ValueError(f"report line {i}: bad stack line {rest!r}")
        out.setdefault(int(tid), []).append(GuestFrame(m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4)))
    return out


def panic_task(report) -> PanicTask | None:
    """The task that wrote `c` to /proc/sysrq-trigger (None: the guest did not panic)."""
    items = _items(report, "panic-task")
    if not items:
        return None
    if len(items) > 1:
        raise ValueError(f"report lines {[i for i, _ in items]}: more than one panic-task line")
    i, rest = items[0]
    pid, _, comm = rest.partition(" ")
    if not pid.isdigit() or not comm:
        raise ValueError(f"report line {i}: bad panic-task line {rest!r}")
    return PanicTask(int(pid), comm)


def drgn_reading(guest_dir: Path) -> dict | None:
    """drgn.json (drgn_oracle.py's reading with the kernel's vmlinux), None when not made."""
    p = Path(guest_dir) / "drgn.json"
    return json.loads(p.read_text()) if p.exists() else None
