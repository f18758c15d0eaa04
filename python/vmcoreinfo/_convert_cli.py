"""``vmcoreinfo convert IN OUT --to elf|kdump``: write any dump as a clean ELF core or kdump file."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from ._cli_common import FORMAT_OPTIONS, PROGRESS_OPTIONS, ExitCode, ProgressLine, open_dump, plural

COMPRESSIONS = ("zlib", "zstd", "snappy", "lzo", "none")
BAR_WIDTH = 30


def _bar_callback(line: ProgressLine, label: str) -> Callable[[int, int], None]:
    """The write progress callback: ``label [####....] pct% done/total MiB rate MB/s``."""

    def cb(done: int, total: int) -> None:
        final = done >= total
        if not (final or line.due()):
            return
        pct = 100 * done // total if total else 100
        fill = BAR_WIDTH * pct // 100
        line.update(
            f"{label} [{'#' * fill}{'.' * (BAR_WIDTH - fill)}] {pct:3d}% "
            f"{done >> 20}/{total >> 20} MiB {line.rate(done) / 1e6:.0f} MB/s",
            final=final,
        )
        if final:
            line.close()

    return cb


def add_parser(sub: Any) -> None:
    """Register the ``convert`` subcommand on the CLI's subparsers."""
    c = sub.add_parser(
        "convert",
        parents=[FORMAT_OPTIONS, PROGRESS_OPTIONS],
        help="write a dump as a clean ELF core or kdump-compressed file (repaired, with its VMCOREINFO)",
        description="Convert IN (ELF, kdump, flattened kdump, LiME, AVML, raw) to an ELF core or a kdump-compressed "
        "file that drgn, crash, makedumpfile and libkdumpfile read: the notes with VMCOREINFO last (taken from "
        "a scan of guest memory when IN has no note), phys_base as the kernel wrote it. OUT is written under a "
        "temporary name and appears only when complete. Exit status: 0 done, 1 unreadable or invalid input or "
        "unwritable OUT, 2 usage, 3 OUT was written but has no VMCOREINFO (none in IN, none found in memory).",
    )
    c.add_argument("input", metavar="IN")
    c.add_argument("output", metavar="OUT", help="output file; '-' writes a flattened kdump file to stdout (a pipe)")
    c.add_argument("--to", required=True, choices=("elf", "kdump"), help="output format")
    c.add_argument("--compression", choices=COMPRESSIONS, help="kdump page compression (default zlib)")
    c.add_argument(
        "--flattened",
        action="store_true",
        help="kdump: makedumpfile's flattened format (written in place, for pipes; makedumpfile -R reassembles it)",
    )
    c.add_argument("--exclude-zero", action="store_true", help="ELF: leave zero pages out of the file (p_filesz < p_memsz)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    c.set_defaults(func=cmd_convert, _convert_parser=c)


def cmd_convert(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args._convert_parser
    if args.to == "elf" and args.compression is not None:
        parser.error("--compression applies to --to kdump only")
    if args.to == "kdump" and args.exclude_zero:
        parser.error("--exclude-zero applies to --to elf only (kdump files store zero pages once)")
    to_stdout = args.output == "-"
    if to_stdout and args.to != "kdump":
        parser.error("OUT '-' (stdout) is for --to kdump (a flattened stream); an ELF core needs a file")
    if to_stdout and sys.stdout.isatty():
        parser.error("refusing to write a dump to a terminal: redirect stdout or name a file")
    flattened = args.flattened or to_stdout
    if flattened and args.to != "kdump":
        parser.error("--flattened applies to --to kdump only")
    output = "/dev/stdout" if to_stdout else args.output
    line = ProgressLine(sys.stderr, enabled=not (args.quiet or args.no_progress))
    bar = _bar_callback(line, f"{args.input} -> {'stdout' if to_stdout else args.output}") if line.enabled else None
    t0 = time.monotonic()
    with line, open_dump(args.input, format=args.format) as dump:
        if args.to == "elf":
            report = dump.write_elf(output, exclude_zero=args.exclude_zero, progress=bar)
        else:
            if to_stdout:
                sys.stdout.flush()
            report = dump.write_kdump(output, args.compression or "zlib", flattened=flattened, progress=bar)
    secs = time.monotonic() - t0
    for d in report["diagnostics"]:
        print(f"vmcoreinfo: {d['code']}: {d['message']}", file=sys.stderr)
    if not args.quiet:
        what = (
            f"{'flattened ' if flattened else ''}kdump ({report['compression']})"
            if args.to == "kdump"
            else "ELF" + (" (zero pages excluded)" if args.exclude_zero else "")
        )
        src = {"note": "from the input's note", "scan": "found by a scan of guest memory", "absent": "NONE"}[report["vmcoreinfo"]]
        print(
            f"{'stdout' if to_stdout else args.output}: {what}, "
            f"{report['memory_bytes'] >> 20} MiB of memory in {plural(report['segments'], 'range')}, "
            f"{plural(report['zero_pages'], 'zero page')}, {report['file_bytes']} bytes, {secs:.2f} s; VMCOREINFO {src}",
            file=sys.stderr if to_stdout else sys.stdout,
        )
    return ExitCode.NO_VMCOREINFO if report["vmcoreinfo"] == "absent" else ExitCode.OK
