"""Command line for the kernel log and kernel symbols: ``vmcoreinfo dmesg`` and ``vmcoreinfo sym``.

Exit status: 0 ok, 1 unreadable or invalid dump (or no such symbol), 2 usage, 3 no VMCOREINFO.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Literal, cast

import vmcoreinfo

from ._errors import NoVmcoreinfoError

_FORMATS = ("elf", "kdump", "lime", "raw")
_FormatName = Literal["elf", "kdump", "lime", "raw"]


def _open(args: argparse.Namespace) -> vmcoreinfo.Dump:
    return vmcoreinfo.open(args.dump, format=cast("_FormatName | None", args.format))


def cmd_dmesg(args: argparse.Namespace) -> int:
    """Print the kernel log as ``makedumpfile --dump-dmesg`` writes it."""
    try:
        with _open(args) as dump:
            text = dump.dmesg(caller_id=args.caller_id)
    except NoVmcoreinfoError as e:
        print(f"vmcoreinfo: error: {e}", file=sys.stderr)
        return 3
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def cmd_sym(args: argparse.Namespace) -> int:
    """``NAME``: its address and type. ``0xADDR``: the symbol at or below it, with the offset."""
    try:
        with _open(args) as dump:
            syms = dump.symbols
            rc = 0
            for q in args.query:
                if q.lower().startswith("0x"):
                    try:
                        addr = int(q, 16)
                    except ValueError:
                        print(f"vmcoreinfo: error: {q!r} is not a hexadecimal address", file=sys.stderr)
                        return 2
                    try:
                        name, off = syms.lookup(addr)
                    except KeyError:
                        print(f"{addr:016x} (below every kernel symbol)")
                        rc = 1
                        continue
                    print(f"{addr:016x} {name}+{off:#x}" if off else f"{addr:016x} {name}")
                else:
                    try:
                        print(f"{syms.address(q):016x} {q}")
                    except KeyError:
                        print(f"vmcoreinfo: error: no kernel symbol named {q!r}", file=sys.stderr)
                        rc = 1
            return rc
    except NoVmcoreinfoError as e:
        print(f"vmcoreinfo: error: {e}", file=sys.stderr)
        return 3


def add_parsers(sub: Any) -> None:
    """Register ``dmesg`` and ``sym`` on the CLI's subparsers."""
    d = sub.add_parser("dmesg", help="print the kernel log (makedumpfile --dump-dmesg format)")
    d.add_argument("dump", metavar="DUMP")
    d.add_argument("--caller-id", action="store_true", help="add the [  T123] caller column (makedumpfile >= 1.7.5)")
    d.add_argument("--format", choices=_FORMATS, help="read as this format instead of detecting it ('raw' is never detected)")
    d.set_defaults(func=cmd_dmesg)
    s = sub.add_parser("sym", help="kernel symbols (kallsyms, Linux 6.0+): a name's address, or the symbol at 0xADDR")
    s.add_argument("dump", metavar="DUMP")
    s.add_argument("query", nargs="+", metavar="NAME|0xADDR")
    s.add_argument("--format", choices=_FORMATS, help="read as this format instead of detecting it ('raw' is never detected)")
    s.set_defaults(func=cmd_sym)
