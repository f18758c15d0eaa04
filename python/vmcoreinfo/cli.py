"""Command line: ``vmcoreinfo show|notes|scan|demo`` (also ``python -m vmcoreinfo``).

Exit status: 0 ok; 1 a file could not be read or is not a valid dump (any :class:`vmcoreinfo.Error`
other than :class:`NoVmcoreinfoError`, or an OS error); 2 usage error; 3 no VMCOREINFO note
(``show``: the dump has none; ``scan``: the scan found none). With several files ``show`` exits with
1 if any file failed, else 3 if any file had no note, else 0. ``--json`` output is one JSON
document per file, one per line (JSON lines); hints and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import vmcoreinfo

from . import _batch, _convert_cli, _kview_cli, _native
from ._errors import Error, NoVmcoreinfoError

SUMMARY_KEYS = ("osrelease", "build_id", "page_size", "kernel_offset", "phys_base", "crashtime")
FORMATS = ("elf", "kdump", "lime", "raw")
FormatName = Literal["elf", "kdump", "lime", "raw"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_VMCOREINFO = 3

EXIT_CODES = f"""\
exit status:
  {EXIT_OK}  ok
  {EXIT_ERROR}  a file could not be read or is not a valid dump
  {EXIT_USAGE}  usage error
  {EXIT_NO_VMCOREINFO}  no VMCOREINFO note (show: the dump has none; scan: none found)
  with several files, show exits {EXIT_ERROR} if any file failed, else {EXIT_NO_VMCOREINFO} if any had no note
"""

#: How many memory ranges and notes ``show -v`` prints per dump (``--json -v`` lists all).
VERBOSE_LIST_MAX = 32

#: Signatures of compressors people wrap dumps in: (magic, name, command that undoes it).
COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\x04\x22\x4d\x18", "lz4", "unlz4"),
)


def _format(name: str | None) -> FormatName | None:
    return cast("FormatName | None", name)


def _progress(label: str) -> Callable[[int, int], None]:
    """A scan progress callback: a line on stderr when stderr is a terminal, else nothing (the
    callback still lets Ctrl-C through between chunks)."""
    tty = sys.stderr.isatty()

    def cb(done: int, total: int) -> None:
        if tty:
            pct = 100 * done // total if total else 100
            line = f"\r{label}: scanning for VMCOREINFO, {done >> 20} of {total >> 20} MiB ({pct}%)"
            end = "\n" if done >= total else ""
            print(line[:120].ljust(min(len(line), 120)), end=end, file=sys.stderr, flush=True)

    return cb


def _hex(v: int | None) -> str:
    return "absent" if v is None else hex(v)


def _file_hint(path: str) -> str | None:
    """Why a file without a dump signature is not a dump: empty, or compressed."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if not head:
        return "the file is empty"
    for magic, name, undo in COMPRESSED:
        if head.startswith(magic):
            return f"it is {name}-compressed: decompress it first (`{undo} {path}`)"
    return None


_CLI_HINTS = {
    "use-raw-format": " (a raw physical memory image has none: use --format raw)",
    "scan-for-note": (
        ". QEMU writes one only for a guest run with `-device vmcoreinfo` whose kernel had loaded the "
        "`qemu_fw_cfg` driver (CONFIG_FW_CFG_SYSFS) before the dump. The guest's memory may still hold "
        "the note: `vmcoreinfo scan {path}` looks for it page by page"
    ),
}
"""How the command line words each error hint (``exc.hint``)."""


def describe(e: BaseException, path: str | None = None) -> str:
    """One line for an error, without the file name (the caller prints it once) and with the
    command line's own hints (``--format raw``, not ``format="raw"``)."""
    if isinstance(e, OSError) and not isinstance(e, Error):
        if e.errno is not None:
            return os.strerror(e.errno)
        return str(e)
    if isinstance(e, Error):
        msg = e.message  # "PATH: offset N (0x..): what [rule r]" as the core words it
        if e.path and msg.startswith(f"{e.path}: "):
            msg = msg[len(e.path) + 2 :]
        # The advice in the command line's own terms, chosen by the error's machine-readable
        # hint and put in place of the library's wording of it (whatever that wording is).
        if e.hint in _CLI_HINTS:
            msg = msg.replace(_native.HINTS[e.hint], _CLI_HINTS[e.hint].format(path=path or "DUMP"))
        if path and isinstance(e, vmcoreinfo.FormatError) and e.offset == 0:
            hint = _file_hint(path)
            if hint:
                msg = f"not a dump: {hint}"
        return msg
    return str(e)


def _error_dict(e: BaseException, path: str) -> dict[str, Any]:
    return {
        "type": type(e).__name__,
        "message": describe(e, path),
        "offset": getattr(e, "offset", None),
        "address": getattr(e, "address", None),
    }


def _exit_code(e: BaseException) -> int:
    return EXIT_NO_VMCOREINFO if isinstance(e, NoVmcoreinfoError) else EXIT_ERROR


def summarize(path: str, *, verbose: bool = False, format: str | None = None, progress: bool = False) -> dict[str, Any]:
    """What ``show`` prints for one dump, as a JSON-ready dict. ``format`` as for
    :func:`vmcoreinfo.open`; ``progress`` shows the scan of a LiME or raw image on stderr."""
    with vmcoreinfo.open(path, format=_format(format)) as dump:
        if progress and dump.format in ("lime", "raw"):
            dump.scan_vmcoreinfo(_progress(path))  # the scan a memory image's vmcoreinfo reuses
        out: dict[str, Any] = {
            "path": path,
            "format": dump.format,
            "machine": dump.machine,
            "elf_class": dump.elf_class,
            "byteorder": dump.byteorder,
        }
        det = dump.details(pages=verbose)
        out["memory_declared_bytes"] = det["memory_declared_bytes"]
        out["memory_stored_bytes"] = det["memory_stored_bytes"]
        try:
            vi = dump.vmcoreinfo
        except NoVmcoreinfoError as e:
            out["vmcoreinfo"] = None
            out["error"] = _error_dict(e, path)
            return out
        out.update(
            osrelease=vi.osrelease,
            build_id=vi.build_id,
            page_size=vi.page_size,
            kernel_offset=vi.kernel_offset,
            phys_base=vi.phys_base,
            crashtime=vi.crashtime,
            vmcoreinfo_offset=vi.offset_in_file,
            vmcoreinfo_paddr=vi.note_paddr,
            vmcoreinfo_bytes=len(vi.raw),
            keys=len(vi),
        )
        out["diagnostics"] = [{"kind": d.kind, "offset": d.offset, "line": d.line, "message": d.message} for d in vi.diagnostics]
        if verbose:
            out["details"] = det.as_dict()
            out["vmcoreinfo"] = dict(vi)
            out["memory_ranges"] = [list(r) for r in dump.memory_ranges()]
            out["notes"] = [_note_dict(n) for n in dump.notes()]
        return out


def _note_dict(n: vmcoreinfo.Note) -> dict[str, Any]:
    return {"name": n.name, "type": n.type, "offset": n.offset, "size": n.size}


def _short(s: dict[str, Any]) -> str | None:
    """The warning for a file that holds less memory than it declares, or None."""
    declared, stored = s.get("memory_declared_bytes"), s.get("memory_stored_bytes")
    if declared is None or stored is None or stored >= declared:
        return None
    return (
        f"the file holds only {stored} of the {declared} bytes of memory it declares "
        f"({100 * stored / declared:.1f}%): it was cut short; reads of the rest raise TruncatedError"
    )


def _print_summary(s: dict[str, Any], out: Any) -> None:
    def p(line: str) -> None:
        print(line, file=out)

    p(f"{s['path']}:")
    cls = "" if s["elf_class"] is None else f"ELF{s['elf_class']}, "
    p(f"  format        {s['format']} ({s['machine']}, {cls}{s['byteorder']}-endian)")
    declared, stored = s.get("memory_declared_bytes"), s.get("memory_stored_bytes")
    if declared is not None:
        short = " (CUT SHORT)" if stored < declared else ""
        p(f"  stored        {stored} of {declared} bytes of declared memory are in the file{short}")
    if s.get("vmcoreinfo", True) is None:
        p(f"  vmcoreinfo    none: {s['error']['message']}")
        return
    p(f"  osrelease     {s['osrelease'] or 'absent'}")
    p(f"  build-id      {s['build_id'] or 'absent'}")
    p(f"  page size     {'absent' if s['page_size'] is None else s['page_size']}")
    p(f"  kernel offset {_hex(s['kernel_offset'])}")
    pb = s["phys_base"]
    p(f"  phys_base     {'absent' if pb is None else f'{pb} ({pb:#x})'}")
    if s["crashtime"] is not None:
        p(f"  crashtime     {s['crashtime']}")
    if s["vmcoreinfo_offset"] is not None:
        where = f"text at file offset {s['vmcoreinfo_offset']}"
    else:
        where = "text in compressed pages"
    if s.get("vmcoreinfo_paddr") is not None:
        where += f", note header at physical {s['vmcoreinfo_paddr']:#x} (found by scanning memory)"
    p(f"  vmcoreinfo    {s['keys']} keys, {s['vmcoreinfo_bytes']} bytes, {where}")
    for d in s["diagnostics"]:
        p(f"  diagnostic    line {d['line']} (offset {d['offset']}): {d['message']} [{d['kind']}]")
    det = s.get("details")
    if det:
        if "compression" in det:
            p(
                f"  kdump         header v{det['header_version']} ({det['header_layout']}), block size {det['block_size']}, "
                f"compression {'+'.join(det['compression']) or 'none'}, dump level {det['dump_level']}"
            )
            if "flattened_records" in det:
                end = "yes" if det["flattened_end_marker"] else "MISSING"
                p(f"  flattened     {det['flattened_records']} records, end marker {end}")
            pg = det.get("pages")
            if pg:
                codecs = ", ".join(f"{k} {v}" for k, v in det["page_codecs"].items() if v)
                p(
                    f"  pages         {pg['dumped']} dumped ({codecs}), {pg['excluded']} excluded, "
                    f"{pg['zero']} zero, {pg['valid']} valid"
                )
            for a in det["anomalies"]:
                p(f"  anomaly       {a}")
        elif det.get("tail_bytes"):
            p(
                f"  elf tails     {det['tail_bytes']} bytes in p_filesz < p_memsz tails "
                "(absent: not saved by the producer; elf_tails='zeros' reads them as zeros)"
            )
        pb = det["phys_base"]
        if pb["key"] and pb["header"] is not None:
            verdict = {
                True: "agree",
                False: "disagree: the header is wrong (QEMU reads the kernel's decimal value as hex); using VMCOREINFO's",
                None: "",
            }[pb["agree"]]
            p(f"  phys_base     {pb['key']} = {pb['vmcoreinfo']}; kdump header = {pb['header']:#x} {verdict}".rstrip())
    if "memory_ranges" in s:
        ranges = s["memory_ranges"]
        total = sum(e - b for b, e in ranges)
        p(f"  memory        {len(ranges)} ranges, {total} bytes")
        for b, e in ranges[:VERBOSE_LIST_MAX]:
            p(f"  range         {b:#018x}-{e:#018x} ({e - b} bytes)")
        if len(ranges) > VERBOSE_LIST_MAX:
            p(f"  range         ... {len(ranges) - VERBOSE_LIST_MAX} more (--json -v lists all)")
        notes = s["notes"]
        for n in notes[:VERBOSE_LIST_MAX]:
            p(f"  note          {n['name']:<12} type {n['type']:<3} {n['size']:>6} bytes, header at file offset {n['offset']}")
        if len(notes) > VERBOSE_LIST_MAX:
            p(f"  note          ... {len(notes) - VERBOSE_LIST_MAX} more (--json -v lists all)")
        if s.get("vmcoreinfo"):
            for k, v in s["vmcoreinfo"].items():
                p(f"  key           {k}={v}")


def _show_one(path: str, args: argparse.Namespace) -> int:
    """Print one file's summary (or its error); return its exit status."""
    rc = EXIT_OK
    try:
        s = summarize(path, verbose=args.verbose, format=getattr(args, "format", None), progress=not args.json)
        if s.get("vmcoreinfo", True) is None:
            rc = EXIT_NO_VMCOREINFO
    except (Error, OSError) as e:
        rc = _exit_code(e)
        s = {"path": path, "error": _error_dict(e, path)}
    short = _short(s)
    if short:
        print(f"vmcoreinfo: {path}: warning: {short}", file=sys.stderr)
    if args.json:
        print(json.dumps(s), flush=True)
    elif "format" not in s:
        print(f"vmcoreinfo: {path}: error: {s['error']['message']}", file=sys.stderr)
    else:
        _print_summary(s, sys.stdout)
    return rc


def cmd_show(args: argparse.Namespace) -> int:
    if _batch.wants_batch(args):  # several files, directories, globs: streamed by identify_many
        return _batch.run_show_many(args)
    codes = set()
    progress = len(args.dumps) > 1 and sys.stderr.isatty() and not args.json
    for i, path in enumerate(args.dumps, 1):
        if progress:
            print(f"\r[{i}/{len(args.dumps)}] {path}"[:120].ljust(120), end="", file=sys.stderr, flush=True)
        codes.add(_show_one(path, args))
    if progress:
        print(file=sys.stderr)
    for rc in (EXIT_ERROR, EXIT_NO_VMCOREINFO):
        if rc in codes:
            return rc
    return EXIT_OK


def cmd_notes(args: argparse.Namespace) -> int:
    with vmcoreinfo.open(args.dump, format=_format(args.format)) as dump:
        notes = dump.notes()
        if args.json:
            print(json.dumps([_note_dict(n) for n in notes]))
        elif not notes:
            why = f"a {dump.format} image carries none" if dump.format in ("lime", "raw") else "the dump has none"
            print(f"{args.dump}: no ELF notes ({why})")
        else:
            for n in notes:
                kind = " (Windows dump header)" if n.is_windows_dump_header else ""
                print(f"{n.offset:#010x}  {n.name:<14} type {n.type:<4} {n.size:>7} bytes{kind}")
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    """Scan a dump's physical memory for VMCOREINFO notes and print every candidate."""
    with vmcoreinfo.open(args.dump, format=_format(args.format)) as dump:
        total = sum(e - b for b, e in dump.memory_ranges())
        found = dump.scan_vmcoreinfo(_progress(args.dump))
        rows = [
            {
                "note_paddr": vi.note_paddr,
                "descsz": len(vi.raw),
                "offset_in_file": vi.offset_in_file,
                "osrelease": vi.osrelease,
                "build_id": vi.build_id,
                "keys": len(vi),
            }
            for vi in found
        ]
        if args.json:
            print(json.dumps({"path": args.dump, "format": dump.format, "bytes_scanned": total, "candidates": rows}))
        else:
            print(
                f"{args.dump}: {dump.format}, {total} bytes of physical memory scanned at page starts, "
                f"{len(rows)} VMCOREINFO note{'s' if len(rows) != 1 else ''}"
            )
            for r in rows:
                off = "" if r["offset_in_file"] is None else f", text at file offset {r['offset_in_file']:#x}"
                print(
                    f"  {r['note_paddr']:#018x}  descsz {r['descsz']:<6} {r['keys']:>4} keys  "
                    f"osrelease {r['osrelease'] or 'absent'}  build-id {r['build_id'] or 'absent'}{off}"
                )
    return EXIT_OK if rows else EXIT_NO_VMCOREINFO


def cmd_demo(args: argparse.Namespace) -> int:
    path = vmcoreinfo.sample_path()
    print(
        f"Sample: a real QEMU dump-guest-memory ELF of an x86_64 guest, reduced to headers and notes\n  {path}\n", file=sys.stderr
    )
    ns = argparse.Namespace(dumps=[path], json=args.json, verbose=True)
    rc = cmd_show(ns)
    if not args.json:
        with vmcoreinfo.open(path) as dump:
            vi = dump.vmcoreinfo
            print("\nTyped accessors:")
            print(f"  vi.symbol('init_uts_ns')            = {_hex(vi.symbol('init_uts_ns'))}")
            print(f"  vi.offset('uts_namespace', 'name')  = {vi.offset('uts_namespace', 'name')}")
            print(f"  vi.number('phys_base')              = {vi.number('phys_base')}")
            print(f"  vi['NUMBER(phys_base)']             = {vi.get('NUMBER(phys_base)')!r}  (kernel writes decimal)")
    return rc


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with EXIT_USAGE (argparse's own 2, kept explicit)."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="vmcoreinfo",
        description="Identify Linux guest memory dumps by their VMCOREINFO note.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {vmcoreinfo.__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", title="commands", parser_class=_Parser)
    json_help = "one JSON document on stdout (show: one per file, one per line)"
    fmt_help = "read as this format instead of detecting it ('raw' is never detected)"

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return cast(
            argparse.ArgumentParser,
            sub.add_parser(
                name, help=help, description=help, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter
            ),
        )

    s = add("show", "summarize the VMCOREINFO of one or more dumps")
    s.add_argument("dumps", nargs="+", metavar="DUMP")
    s.add_argument("--json", action="store_true", help=json_help)
    s.add_argument("-v", "--verbose", action="store_true", help="also every key, note, memory range and kdump page count")
    s.add_argument("--format", choices=FORMATS, help=fmt_help)
    _batch.add_show_many_arguments(s)
    s.set_defaults(func=cmd_show)
    sc = add("scan", "scan a dump's physical memory for VMCOREINFO notes (the fallback for dumps without one)")
    sc.add_argument("dump", metavar="DUMP")
    sc.add_argument("--format", choices=FORMATS, help=fmt_help)
    sc.add_argument("--json", action="store_true", help=json_help)
    sc.set_defaults(func=cmd_scan)
    n = add("notes", "list the ELF notes of a dump")
    n.add_argument("dump", metavar="DUMP")
    n.add_argument("--format", choices=FORMATS, help=fmt_help)
    n.add_argument("--json", action="store_true", help=json_help)
    n.set_defaults(func=cmd_notes)
    d = add("demo", "run `show -v` on the sample dump that ships with the package")
    d.add_argument("--json", action="store_true", help=json_help)
    d.set_defaults(func=cmd_demo)
    _convert_cli.add_parser(sub)
    _kview_cli.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except BrokenPipeError:  # the reader went away (`| head`): not an error
        sys.stderr.close()
        return EXIT_OK
    except (Error, OSError) as e:
        path = getattr(args, "dump", None)
        where = f"{path}: " if path else ""
        print(f"vmcoreinfo: {where}error: {describe(e, path)}", file=sys.stderr)
        return _exit_code(e)
    except KeyboardInterrupt:  # Ctrl-C during a scan reaches us through its progress callback
        print(file=sys.stderr)
        return 130
