"""Command line for the kernel log and kernel symbols: ``vmcoreinfo dmesg`` and ``vmcoreinfo sym``.

Exit status: 0 ok, 1 unreadable or invalid dump (or no such symbol), 2 usage, 3 no VMCOREINFO.
``--json``: one JSON document on stdout (``dmesg``: the list of log records; ``sym``: one object
per query, each with ``source``: how the tables were found, ``"vmcoreinfo"`` or ``"scan"``).
``sym`` without ``--json`` says the source on stderr (``# kallsyms: N symbols from scan``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import vmcoreinfo

from ._cli_common import DUMP_OPTIONS, ExitCode, open_dump
from ._errors import NoVmcoreinfoError

EPILOG = f"""\
exit status:
  {ExitCode.OK:d}  ok
  {ExitCode.ERROR:d}  the dump could not be read or is not valid (sym: some NAME or 0xADDR not found)
  {ExitCode.USAGE:d}  usage error
  {ExitCode.NO_VMCOREINFO:d}  the dump has no VMCOREINFO note
"""


def _open(args: argparse.Namespace) -> vmcoreinfo.Dump:
    return open_dump(args.dump, format=args.format)


def _record_dict(r: vmcoreinfo.LogRecord) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "timestamp_ns": r.timestamp_ns,
        "level": r.level,
        "facility": r.facility,
        "caller_id": r.caller_id,
        "text": r.text,
    }


def cmd_dmesg(args: argparse.Namespace) -> int:
    """Print the kernel log as ``makedumpfile --dump-dmesg`` writes it (``--json``: its records)."""
    try:
        with _open(args) as dump:
            if args.json:
                text = json.dumps([_record_dict(r) for r in dump.kernel_log()]) + "\n"
            else:
                text = dump.dmesg(caller_id=args.caller_id)
    except NoVmcoreinfoError as e:
        print(f"vmcoreinfo: error: {e}", file=sys.stderr)
        return ExitCode.NO_VMCOREINFO
    sys.stdout.write(text)
    sys.stdout.flush()
    return ExitCode.OK


def _query(syms: vmcoreinfo.KernelSymbols, q: str) -> dict[str, Any]:
    """One ``sym`` query's answer: ``query``, ``name``, ``address``, ``offset`` (from the symbol),
    ``error`` (None, or why there is no answer). ValueError for a malformed ``0x`` address."""
    if q.lower().startswith("0x"):
        addr = int(q, 16)
        try:
            name, off = syms.lookup(addr)
        except KeyError:
            return {"query": q, "name": None, "address": addr, "offset": None, "error": "below every kernel symbol"}
        return {"query": q, "name": name, "address": addr, "offset": off, "error": None}
    try:
        return {"query": q, "name": q, "address": syms.address(q), "offset": 0, "error": None}
    except KeyError:
        return {"query": q, "name": q, "address": None, "offset": None, "error": f"no kernel symbol named {q!r}"}


def cmd_sym(args: argparse.Namespace) -> int:
    """``NAME``: its address and type. ``0xADDR``: the symbol at or below it, with the offset."""
    for q in args.query:
        if q.lower().startswith("0x"):
            try:
                int(q, 16)
            except ValueError:
                print(f"vmcoreinfo: error: {q!r} is not a hexadecimal address", file=sys.stderr)
                return ExitCode.USAGE
    try:
        with _open(args) as dump:
            syms = dump.symbols
            rows = [{**_query(syms, q), "source": syms.source} for q in args.query]
    except NoVmcoreinfoError as e:
        print(f"vmcoreinfo: error: {e}", file=sys.stderr)
        return ExitCode.NO_VMCOREINFO
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"# kallsyms: {len(syms)} symbols from {syms.source} ({syms.encoding})", file=sys.stderr)
        for r in rows:
            if r["address"] is None:
                print(f"vmcoreinfo: error: {r['error']}", file=sys.stderr)
            elif r["name"] is None:
                print(f"{r['address']:016x} (below every kernel symbol)")
            elif r["query"].lower().startswith("0x"):
                off = r["offset"]
                print(f"{r['address']:016x} {r['name']}+{off:#x}" if off else f"{r['address']:016x} {r['name']}")
            else:
                print(f"{r['address']:016x} {r['name']}")
    return ExitCode.ERROR if any(r["error"] for r in rows) else ExitCode.OK


def add_parsers(sub: Any) -> None:
    """Register ``dmesg`` and ``sym`` on the CLI's subparsers."""
    common: dict[str, Any] = {
        "parents": list(DUMP_OPTIONS),
        "epilog": EPILOG,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    dhelp = "print the kernel log (makedumpfile --dump-dmesg format)"
    d = sub.add_parser("dmesg", help=dhelp, description=dhelp, **common)
    d.add_argument("dump", metavar="DUMP")
    d.add_argument("--caller-id", action="store_true", help="add the [  T123] caller column (makedumpfile >= 1.7.5)")
    d.set_defaults(func=cmd_dmesg)
    shelp = (
        "kernel symbols (kallsyms: the tables VMCOREINFO names on Linux 6.0+, else found by a scan of the kernel "
        "image): a name's address, or the symbol at 0xADDR"
    )
    s = sub.add_parser("sym", help=shelp, description=shelp, **common)
    s.add_argument("dump", metavar="DUMP")
    s.add_argument("query", nargs="+", metavar="NAME|0xADDR")
    s.set_defaults(func=cmd_sym)
