"""Command line for the kernel's objects: ``vmcoreinfo ps`` and ``vmcoreinfo lsmod``.

Both read the kernel's own types (its in-memory BTF): a dump without them fails with
:class:`NoBtfError` (exit status 1). ``--json``: one JSON list of the records.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import vmcoreinfo

from ._cli_common import DUMP_OPTIONS, ExitCode

EPILOG = f"""\
exit status:
  {ExitCode.OK:d}  ok
  {ExitCode.ERROR:d}  the dump could not be read or is not valid, or has no BTF (NoBtfError)
  {ExitCode.USAGE:d}  usage error
  {ExitCode.NO_VMCOREINFO:d}  the dump has no VMCOREINFO note
"""


def _open(args: argparse.Namespace) -> vmcoreinfo.Dump:
    return vmcoreinfo.open(args.dump, format=args.format)


def format_ps(tasks: list[vmcoreinfo.Task]) -> str:
    """The tasks as ps lists them: PID TGID PPID ST CPU COMM, kernel threads' names in brackets."""
    lines = [f"{'PID':>7} {'TGID':>7} {'PPID':>7} ST {'CPU':>3} COMM"]
    for t in tasks:
        comm = f"[{t.comm}]" if t.is_kthread else t.comm
        lines.append(f"{t.pid:>7} {t.tgid:>7} {t.ppid:>7} {t.state:<2} {t.cpu:>3} {comm}")
    return "\n".join(lines) + "\n"


def format_lsmod(modules: list[vmcoreinfo.Module]) -> str:
    """The modules as lsmod lists them (without Used by), with base, state and taints."""
    width = max([len("Module"), *(len(m.name) for m in modules)])
    lines = [f"{'Module':<{width}} {'Size':>8}  {'Base':<18} {'State':<8} Taints"]
    for m in modules:
        lines.append(f"{m.name:<{width}} {m.size:>8}  {m.base:#018x} {m.state:<8} {m.taints}".rstrip())
    return "\n".join(lines) + "\n"


def cmd_ps(args: argparse.Namespace) -> int:
    """Every thread of the kernel, from init_task."""
    with _open(args) as dump:
        tasks = dump.tasks()
    if args.json:
        print(json.dumps([t.as_dict() for t in tasks]))
    else:
        print(format_ps(tasks), end="")
    return ExitCode.OK


def cmd_lsmod(args: argparse.Namespace) -> int:
    """The loaded modules, newest first."""
    with _open(args) as dump:
        modules = dump.modules()
    if args.json:
        print(json.dumps([m.as_dict() for m in modules]))
    else:
        print(format_lsmod(modules), end="")
    return ExitCode.OK


def add_parsers(sub: Any) -> None:
    """Register ``ps`` and ``lsmod`` on the CLI's subparsers."""
    common: dict[str, Any] = {
        "parents": list(DUMP_OPTIONS),
        "epilog": EPILOG,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    phelp = "list the kernel's tasks (every thread, as ps -eLf would), from the dump's BTF"
    p = sub.add_parser("ps", help=phelp, description=phelp, **common)
    p.add_argument("dump", metavar="DUMP")
    p.set_defaults(func=cmd_ps)
    lhelp = "list the loaded modules (as lsmod, with base, state and taints), from the dump's BTF"
    m = sub.add_parser("lsmod", help=lhelp, description=lhelp, **common)
    m.add_argument("dump", metavar="DUMP")
    m.set_defaults(func=cmd_lsmod)
