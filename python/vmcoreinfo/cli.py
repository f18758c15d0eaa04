"""Command line: ``vmcoreinfo show|notes|scan|demo`` (also ``python -m vmcoreinfo``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Literal, Sequence, cast

import vmcoreinfo

from . import _kview_cli
from ._errors import Error, NoVmcoreinfoError

SUMMARY_KEYS = ("osrelease", "build_id", "page_size", "kernel_offset", "phys_base", "crashtime")
FORMATS = ("elf", "kdump", "lime", "raw")
FormatName = Literal["elf", "kdump", "lime", "raw"]


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


def _hex(v: int | None) -> str | None:
    return None if v is None else hex(v)


def summarize(path: str, *, verbose: bool = False, format: str | None = None, progress: bool = False) -> dict[str, Any]:
    """What ``show`` prints for one dump, as a JSON-ready dict. ``format`` as for
    :func:`vmcoreinfo.open`; ``progress`` shows the scan of a LiME or raw image on stderr."""
    with vmcoreinfo.open(path, format=_format(format)) as dump:
        if progress and dump.format in ("lime", "raw"):
            dump.scan_vmcoreinfo(_progress(path))   # the scan a memory image's vmcoreinfo reuses
        out: dict[str, Any] = {
            "path": path,
            "format": dump.format,
            "machine": dump.machine,
            "elf_class": dump.elf_class,
            "byteorder": dump.byteorder,
        }
        try:
            vi = dump.vmcoreinfo
        except NoVmcoreinfoError as e:
            out["vmcoreinfo"] = None
            out["error"] = {"type": type(e).__name__, "message": str(e)}
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
        out["diagnostics"] = [
            {"kind": d.kind, "offset": d.offset, "line": d.line, "message": d.message} for d in vi.diagnostics
        ]
        if verbose:
            out["details"] = dump.details(pages=True)
            out["vmcoreinfo"] = dict(vi)
            out["memory_ranges"] = [list(r) for r in dump.memory_ranges()]
            out["notes"] = [{"name": n.name, "type": n.type, "offset": n.offset, "size": len(n.desc)} for n in dump.notes()]
        return out


def _print_summary(s: dict[str, Any], out: Any) -> None:
    print(f"{s['path']}:", file=out)
    print(f"  format        {s['format']} ({s['machine']}, ELF{s['elf_class']}, {s['byteorder']}-endian)", file=out)
    if s.get("vmcoreinfo", True) is None:
        print(f"  vmcoreinfo    none: {s['error']['message']}", file=out)
        return
    print(f"  osrelease     {s['osrelease']}", file=out)
    print(f"  build-id      {s['build_id']}", file=out)
    print(f"  page size     {s['page_size']}", file=out)
    print(f"  kernel offset {_hex(s['kernel_offset'])}", file=out)
    pb = s["phys_base"]
    print(f"  phys_base     {None if pb is None else f'{pb} ({pb:#x})'}", file=out)
    if s["crashtime"] is not None:
        print(f"  crashtime     {s['crashtime']}", file=out)
    where = f"at file offset {s['vmcoreinfo_offset']}" if s["vmcoreinfo_offset"] is not None else "in compressed pages"
    if s.get("vmcoreinfo_paddr") is not None:
        where += f", note at physical {s['vmcoreinfo_paddr']:#x} (found by scanning memory)"
    print(f"  vmcoreinfo    {s['keys']} keys, {s['vmcoreinfo_bytes']} bytes {where}", file=out)
    for d in s["diagnostics"]:
        print(f"  diagnostic    line {d['line']} (offset {d['offset']}): {d['message']} [{d['kind']}]", file=out)
    det = s.get("details")
    if det:
        if "compression" in det:
            print(f"  kdump         header v{det['header_version']} ({det['header_layout']}), block size {det['block_size']}, "
                  f"compression {'+'.join(det['compression']) or 'none'}, dump level {det['dump_level']}", file=out)
            if "flattened_records" in det:
                print(f"  flattened     {det['flattened_records']} records, end marker {'yes' if det['flattened_end_marker'] else 'MISSING'}", file=out)
            pg = det.get("pages")
            if pg:
                codecs = ", ".join(f"{k} {v}" for k, v in det["page_codecs"].items() if v)
                print(f"  pages         {pg['dumped']} dumped ({codecs}), {pg['excluded']} excluded, {pg['zero']} zero, {pg['valid']} valid", file=out)
            for a in det["anomalies"]:
                print(f"  anomaly       {a}", file=out)
        elif det.get("tail_bytes"):
            print(f"  elf tails     {det['tail_bytes']} bytes in p_filesz < p_memsz tails (read as zeros; elf_tails='absent' reports them absent)", file=out)
        pb = det["phys_base"]
        if pb["key"]:
            hdr = pb["header"]
            verdict = {True: "agree", False: "disagree: the header is wrong (QEMU reads the kernel's decimal value as hex); using VMCOREINFO's", None: ""}[pb["agree"]]
            print(f"  phys_base     {pb['key']} = {pb['vmcoreinfo']}; kdump header = {None if hdr is None else hex(hdr)} {verdict}".rstrip(), file=out)
    if "memory_ranges" in s:
        total = sum(e - b for b, e in s["memory_ranges"])
        print(f"  memory        {len(s['memory_ranges'])} ranges, {total} bytes", file=out)
        for n in s["notes"]:
            print(f"  note          {n['name']:<12} type {n['type']:<3} {n['size']:>6} bytes at {n['offset']}", file=out)


def cmd_show(args: argparse.Namespace) -> int:
    rc = 0
    results = []
    progress = len(args.dumps) > 1 and sys.stderr.isatty()
    for i, path in enumerate(args.dumps, 1):
        if progress:
            print(f"\r[{i}/{len(args.dumps)}] {path}"[:120].ljust(120), end="", file=sys.stderr, flush=True)
        try:
            s = summarize(path, verbose=args.verbose, format=getattr(args, "format", None), progress=not args.json)
            if s.get("vmcoreinfo", True) is None:
                rc = 1
        except (Error, OSError) as e:
            rc = 1
            s = {"path": path, "error": {"type": type(e).__name__, "message": str(e), "offset": getattr(e, "offset", None)}}
        if args.json:
            results.append(s)
        elif "format" not in s:
            print(f"{path}: error: {s['error']['message']}", file=sys.stderr)
        else:
            _print_summary(s, sys.stdout)
    if progress:
        print(file=sys.stderr)
    if args.json:
        json.dump(results if len(args.dumps) > 1 else results[0], sys.stdout, indent=2)
        print()
    return rc


def cmd_notes(args: argparse.Namespace) -> int:
    with vmcoreinfo.open(args.dump) as dump:
        notes = dump.notes()
        if args.json:
            json.dump(
                [{"name": n.name, "type": n.type, "offset": n.offset, "size": len(n.desc)} for n in notes],
                sys.stdout,
                indent=2,
            )
            print()
        else:
            for n in notes:
                kind = " (Windows dump header)" if n.is_windows_dump_header else ""
                print(f"{n.offset:#010x}  {n.name:<14} type {n.type:<4} {len(n.desc):>7} bytes{kind}")
    return 0


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
            json.dump({"path": args.dump, "format": dump.format, "bytes_scanned": total, "candidates": rows}, sys.stdout, indent=2)
            print()
        else:
            print(f"{args.dump}: {dump.format}, {total} bytes of physical memory scanned at page starts, "
                  f"{len(rows)} VMCOREINFO note{'s' if len(rows) != 1 else ''}")
            for r in rows:
                off = "" if r["offset_in_file"] is None else f", text at file offset {r['offset_in_file']:#x}"
                print(f"  {r['note_paddr']:#018x}  descsz {r['descsz']:<6} {r['keys']:>4} keys  "
                      f"osrelease {r['osrelease']}  build-id {r['build_id']}{off}")
    return 0 if rows else 1


def cmd_demo(args: argparse.Namespace) -> int:
    path = vmcoreinfo.sample_path()
    print(f"Sample: a real QEMU dump-guest-memory ELF of an x86_64 guest, reduced to headers and notes\n  {path}\n")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vmcoreinfo", description="Identify Linux guest memory dumps by their VMCOREINFO note.")
    p.add_argument("--version", action="version", version=f"%(prog)s {vmcoreinfo.__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show", help="summarize the VMCOREINFO of one or more dumps")
    s.add_argument("dumps", nargs="+", metavar="DUMP")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("-v", "--verbose", action="store_true", help="all keys, notes and memory ranges")
    s.add_argument("--format", choices=FORMATS, help="read as this format instead of detecting it ('raw' is never detected)")
    s.set_defaults(func=cmd_show)
    sc = sub.add_parser("scan", help="scan a dump's physical memory for VMCOREINFO notes (the fallback for dumps without one)")
    sc.add_argument("dump", metavar="DUMP")
    sc.add_argument("--format", choices=FORMATS, help="read as this format instead of detecting it ('raw' is never detected)")
    sc.add_argument("--json", action="store_true")
    sc.set_defaults(func=cmd_scan)
    n = sub.add_parser("notes", help="list the ELF notes of a dump")
    n.add_argument("dump", metavar="DUMP")
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=cmd_notes)
    d = sub.add_parser("demo", help="run `show` on the sample dump that ships with the package")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)
    _kview_cli.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # the reader went away (`| head`): not an error
        sys.stderr.close()
        return 0
    except (Error, OSError) as e:
        print(f"vmcoreinfo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C during a scan reaches us through its progress callback
        print(file=sys.stderr)
        return 130
