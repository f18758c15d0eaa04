"""Command line for the dump's vCPUs and the panic: ``vmcoreinfo cpus``.

Exit status: 0 ok, 1 unreadable or invalid dump, 2 usage, 3 no VMCOREINFO.
``--json``: one JSON document on stdout, ``{"cpus": [Cpu.as_dict(), ...], "panic": PanicInfo.as_dict()
or null, "panic_error": null or why the panic could not be told (exit status 1 then)}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._cli_common import DUMP_OPTIONS, ExitCode, open_dump
from ._errors import Error

EPILOG = f"""\
exit status:
  {ExitCode.OK:d}  ok
  {ExitCode.ERROR:d}  the dump could not be read or is not valid (or its log, to tell whether it panicked)
  {ExitCode.USAGE:d}  usage error
  {ExitCode.NO_VMCOREINFO:d}  the dump has no VMCOREINFO note
"""


def _hex(v: int | None) -> str:
    return "-" if v is None else f"{v:#x}"


def cmd_cpus(args: argparse.Namespace) -> int:
    """Print each vCPU (pc symbolized, sp, the task it ran) and the panic when there was one."""
    panic_error: str | None = None
    with open_dump(args.dump, format=args.format) as dump:
        cpus = dump.cpus()
        try:
            panic = dump.panic_info()
        except Error as e:  # the registers stand; whether it panicked cannot be told
            panic, panic_error = None, str(e)
    rc = ExitCode.ERROR if panic_error else ExitCode.OK
    if panic_error:
        print(f"vmcoreinfo: warning: whether the guest panicked cannot be told: {panic_error}", file=sys.stderr)
    if args.json:
        doc: dict[str, Any] = {
            "cpus": [c.as_dict() for c in cpus],
            "panic": None if panic is None else panic.as_dict(),
            "panic_error": panic_error,
        }
        print(json.dumps(doc))
        return rc
    out = sys.stdout
    print(f"{'CPU':>3}  {'PC':<18}  {'SP':<18}  {'PID':>7}  {'COMM':<16}  SYMBOL", file=out)
    for c in cpus:
        pid = "-" if c.pid is None else str(c.pid)
        print(f"{c.cpu:>3}  {c.pc:#018x}  {c.sp:#018x}  {pid:>7}  {c.comm or '-':<16}  {c.symbol or '?'}", file=out)
    if panic_error:
        pass
    elif panic is None:
        print("no panic (the guest was dumped alive, or panic() did not run)", file=out)
    else:
        who = f"PID {panic.pid} Comm: {panic.comm}" if panic.pid is not None else "task unknown"
        print(f"panic on CPU {panic.cpu} ({who}; CPU from {panic.cpu_source}): {panic.message}", file=out)
        print(f"  {panic.taint}" + ("" if panic.crashtime is None else f", crash time {panic.crashtime}"), file=out)
    return rc


def add_parsers(sub: Any) -> None:
    """Register ``cpus`` on the CLI's subparsers."""
    chelp = "the dump's vCPUs (registers from its notes, pc symbolized, the task each ran) and the panic"
    c = sub.add_parser(
        "cpus",
        help=chelp,
        description=chelp,
        parents=list(DUMP_OPTIONS),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("dump", metavar="DUMP")
    c.set_defaults(func=cmd_cpus)
