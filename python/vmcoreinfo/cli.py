"""Command line: ``vmcoreinfo show|notes|scan|demo`` (also ``python -m vmcoreinfo``).

Exit status: 0 ok; 1 a file could not be read or is not a valid dump (any :class:`vmcoreinfo.Error`
other than :class:`NoVmcoreinfoError`, or an OS error); 2 usage error; 3 no VMCOREINFO note
(``show``: the dump has none; ``scan``: the scan found none); 4 (``show``) identified, but the file
holds less memory than it declares (cut short). With several files ``show`` exits with the first of
1, 3, 4 any file has, else 0. ``show --json`` writes one record per file, one per line (JSON
lines), with the keys of :data:`vmcoreinfo._schema.SHOW_RECORD_KEYS` for one file and for many
(``-v`` adds :data:`~vmcoreinfo._schema.SHOW_VERBOSE_KEYS`); hints and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any

import vmcoreinfo

from . import _batch, _convert_cli, _cpus_cli, _kview_cli, _objects_cli
from ._cli_common import (
    DUMP_OPTIONS,
    FORMAT_OPTIONS,
    JSON_OPTIONS,
    MEMORY_IMAGES,
    PROGRESS_OPTIONS,
    SHOW_JSON_OPTIONS,
    ExitCode,
    ProgressLine,
    UsageError,
    cli_wording,
    open_dump,
    plural,
    worst,
)
from ._errors import Error, NoVmcoreinfoError
from ._schema import SHOW_RECORD_KEYS
from ._types import DetailsDict, FormatName

SUMMARY_KEYS = ("osrelease", "build_id", "page_size", "kernel_offset", "phys_base", "crashtime")

EXIT_CODES = f"""\
exit status:
  {ExitCode.OK:d}  ok
  {ExitCode.ERROR:d}  a file could not be read or is not a valid dump
  {ExitCode.USAGE:d}  usage error
  {ExitCode.NO_VMCOREINFO:d}  no VMCOREINFO note (show: the dump has none; scan: none found)
  {ExitCode.CUT_SHORT:d}  show: identified, but the file is cut short (holds less memory than it declares)
  with several files, show exits {ExitCode.ERROR:d} if any file failed, else {ExitCode.NO_VMCOREINFO:d} if any had no note,
  else {ExitCode.CUT_SHORT:d} if any was cut short
"""

#: The VMCOREINFO keys that place the kernel in memory, per machine, shown by ``show`` (x86 has
#: phys_base and KERNELOFFSET, shown on their own lines).
ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "aarch64": ("NUMBER(PHYS_OFFSET)", "NUMBER(kimage_voffset)", "NUMBER(VA_BITS)", "NUMBER(TCR_EL1_T1SZ)"),
}

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


def _progress(label: str, *, enabled: bool = True) -> Callable[[int, int], None]:
    """A scan progress callback: a line on stderr when stderr is a terminal, else nothing (the
    callback still lets Ctrl-C through between chunks)."""
    line = ProgressLine(sys.stderr, enabled=enabled)

    def cb(done: int, total: int) -> None:
        final = done >= total
        if not (final or line.due()):
            return
        pct = 100 * done // total if total else 100
        line.update(f"{label}: scanning for VMCOREINFO, {done >> 20} of {total >> 20} MiB ({pct}%)", final=final)
        if final:
            line.close()

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


def describe(e: BaseException, path: str | None = None) -> str:
    """One line for an error, without the file name (the caller prints it once) and with the
    command line's own hints (``--format raw``, not ``format="raw"``)."""
    if isinstance(e, OSError) and not isinstance(e, Error):
        if e.errno == errno.ESPIPE and e.strerror:
            return e.strerror  # the library's "a pipe, not a seekable regular file: ..." with what to do
        if e.errno is not None:
            return os.strerror(e.errno)
        return str(e)
    if isinstance(e, Error):
        # "PATH: offset N (0x..): what [rule r]" as the core words it, without the path, the
        # advice in the command line's own terms (chosen by the error's machine-readable hint).
        msg = cli_wording(e.message, e.path, e.hint)
        if path and isinstance(e, vmcoreinfo.FormatError) and e.offset == 0:
            hint = _file_hint(path)
            if hint:
                msg = f"not a dump: {hint}"
        return msg
    return str(e)


def _exit_code(e: BaseException) -> int:
    return ExitCode.NO_VMCOREINFO if isinstance(e, NoVmcoreinfoError) else ExitCode.ERROR


@dataclass(frozen=True)
class ErrorSummary:
    """An error as ``show --json`` reports it (one file or many: ``_schema.ERROR_KEYS``).
    ``offset``: the file offset, or for an error at an address the address (as
    ``Identity.error_offset``)."""

    type: str
    message: str
    offset: int | None

    @classmethod
    def of(cls, e: BaseException, path: str) -> ErrorSummary:
        off = getattr(e, "offset", None)
        if off is None:
            off = getattr(e, "address", None)
        return cls(type(e).__name__, describe(e, path), off)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields in their order: the JSON keys


@dataclass(frozen=True)
class NoteSummary:
    name: str
    type: int
    #: ``Note.type_name``: ``"NT_PRSTATUS"``, ``"QEMU_CPUSTATE"``, ... (None: unknown).
    type_name: str | None
    offset: int
    size: int

    @classmethod
    def of(cls, n: vmcoreinfo.Note) -> NoteSummary:
        return cls(n.name, n.type, n.type_name, n.offset, n.size)

    @property
    def kind(self) -> str:
        """``NT_PRSTATUS (1)``, or ``type 7`` for a type without a name."""
        return f"type {self.type}" if self.type_name is None else f"{self.type_name} ({self.type:#x})"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields in their order: the JSON keys


@dataclass(frozen=True)
class DiagnosticSummary:
    kind: str
    offset: int
    line: int
    message: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)  # the fields in their order: the JSON keys


@dataclass(frozen=True)
class VmcoreinfoSummary:
    """The values ``show`` prints from a VMCOREINFO note."""

    osrelease: str | None
    build_id: str | None
    page_size: int | None
    kernel_offset: int | None
    phys_base: int | None
    crashtime: int | None
    #: File offset of the text (None: in compressed pages).
    vmcoreinfo_offset: int | None
    #: Physical address of the note header when a scan of memory found it.
    vmcoreinfo_paddr: int | None
    vmcoreinfo_bytes: int
    keys: int
    diagnostics: tuple[DiagnosticSummary, ...]
    #: The machine's own keys that place the kernel (``ARCH_KEYS``): (key, value as written).
    arch_keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VerboseSummary:
    """What ``show -v`` adds."""

    details: DetailsDict
    vmcoreinfo: dict[str, str]
    memory_ranges: tuple[tuple[int, int], ...]
    notes: tuple[NoteSummary, ...]


@dataclass(frozen=True)
class Summary:
    """What ``show`` prints for one dump that opened. ``vmcoreinfo`` is None when the dump has no
    note, and ``error`` then says why; ``verbose`` is set by ``show -v`` when there is a note."""

    path: str
    format: FormatName
    machine: str
    elf_class: int | None
    byteorder: str
    memory_declared_bytes: int | None
    memory_stored_bytes: int | None
    vmcoreinfo: VmcoreinfoSummary | None
    error: ErrorSummary | None = None
    verbose: VerboseSummary | None = None

    @property
    def cut_short(self) -> bool:
        declared, stored = self.memory_declared_bytes, self.memory_stored_bytes
        return declared is not None and stored is not None and stored < declared

    def as_json(self) -> dict[str, Any]:
        """The ``show --json`` record: ``_schema.SHOW_RECORD_KEYS`` (what the many-file path
        writes too), then with ``-v`` ``_schema.SHOW_VERBOSE_KEYS`` (the key order is part of the
        output)."""
        vi = self.vmcoreinfo
        out = record(self.path, self.format, self.machine, self.error)
        out.update(memory_declared_bytes=self.memory_declared_bytes, memory_stored_bytes=self.memory_stored_bytes)
        if vi is not None:
            out.update(
                osrelease=vi.osrelease,
                build_id=vi.build_id,
                kernel_offset=vi.kernel_offset,
                phys_base=vi.phys_base,
                page_size=vi.page_size,
                vmcoreinfo_offset=vi.vmcoreinfo_offset,
                vmcoreinfo_size=vi.vmcoreinfo_bytes,
                note_paddr=vi.vmcoreinfo_paddr,
            )
        v = self.verbose
        if v is not None and vi is not None:
            out.update(
                elf_class=self.elf_class,
                byteorder=self.byteorder,
                crashtime=vi.crashtime,
                keys=vi.keys,
                diagnostics=[d.as_json() for d in vi.diagnostics],
                details=v.details,
                vmcoreinfo=v.vmcoreinfo,
                memory_ranges=[list(r) for r in v.memory_ranges],
                notes=[n.as_json() for n in v.notes],
            )
        return out


def record(path: str, format: str | None, machine: str | None, error: ErrorSummary | None) -> dict[str, Any]:
    """A ``show --json`` record with nothing known but these (``_schema.SHOW_RECORD_KEYS``)."""
    out: dict[str, Any] = dict.fromkeys(SHOW_RECORD_KEYS)
    out.update(path=path, format=format, machine=machine, error=None if error is None else error.as_json())
    return out


def summarize(path: str, *, verbose: bool = False, format: FormatName | None = None, progress: bool = False) -> Summary:
    """What ``show`` prints for one dump. ``format`` as for :func:`vmcoreinfo.open`;
    ``progress`` shows the scan of a memory image (LiME, AVML, raw) on stderr."""
    with vmcoreinfo.open(path, format=format) as dump:
        if progress and dump.format in MEMORY_IMAGES:
            dump.scan_vmcoreinfo(_progress(path))  # the scan a memory image's vmcoreinfo reuses
        det = dump.details(pages=verbose)

        def summary(
            vi: VmcoreinfoSummary | None, *, error: ErrorSummary | None = None, verbose: VerboseSummary | None = None
        ) -> Summary:
            return Summary(
                path=path,
                format=dump.format,
                machine=dump.machine,
                elf_class=dump.elf_class,
                byteorder=dump.byteorder,
                memory_declared_bytes=det["memory_declared_bytes"],
                memory_stored_bytes=det["memory_stored_bytes"],
                vmcoreinfo=vi,
                error=error,
                verbose=verbose,
            )

        try:
            vi = dump.vmcoreinfo
        except NoVmcoreinfoError as e:
            return summary(None, error=ErrorSummary.of(e, path))
        values = VmcoreinfoSummary(
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
            diagnostics=tuple(DiagnosticSummary(d.kind, d.offset, d.line, d.message) for d in vi.diagnostics),
            arch_keys=tuple((k, v) for k in ARCH_KEYS.get(dump.machine, ()) if (v := vi.get(k)) is not None),
        )
        more = None
        if verbose:
            more = VerboseSummary(
                details=det.as_dict(),
                vmcoreinfo=dict(vi),
                memory_ranges=tuple(dump.memory_ranges()),
                notes=tuple(NoteSummary.of(n) for n in dump.notes()),
            )
        return summary(values, verbose=more)


def _short(s: Summary) -> str | None:
    """The warning for a file that holds less memory than it declares, or None."""
    declared, stored = s.memory_declared_bytes, s.memory_stored_bytes
    if declared is None or stored is None or stored >= declared:
        return None
    return (
        f"the file holds only {stored} of the {declared} bytes of memory it declares "
        f"({100 * stored / declared:.1f}%): it was cut short; reads of the rest raise TruncatedError"
    )


def _print_summary(s: Summary, out: IO[str]) -> None:
    def p(line: str) -> None:
        print(line, file=out)

    p(f"{s.path}:")
    cls = "" if s.elf_class is None else f"ELF{s.elf_class}, "
    p(f"  format        {s.format} ({s.machine}, {cls}{s.byteorder}-endian)")
    declared, stored = s.memory_declared_bytes, s.memory_stored_bytes
    if declared is not None:
        short = " (CUT SHORT)" if stored is not None and stored < declared else ""
        p(f"  stored        {stored} of {declared} bytes of declared memory are in the file{short}")
    vi = s.vmcoreinfo
    if vi is None:
        p(f"  vmcoreinfo    none: {'' if s.error is None else s.error.message}")
        return
    p(f"  osrelease     {vi.osrelease or 'absent'}")
    p(f"  build-id      {vi.build_id or 'absent'}")
    p(f"  page size     {'absent' if vi.page_size is None else vi.page_size}")
    p(f"  kernel offset {_hex(vi.kernel_offset)}")
    pb = vi.phys_base
    if pb is not None or not vi.arch_keys:  # arm64 has no phys_base: PHYS_OFFSET says where RAM is
        p(f"  phys_base     {'absent' if pb is None else f'{pb} ({pb:#x})'}")
    for key, val in vi.arch_keys:
        p(f"  {_arch_key_line(key, val)}")
    if vi.crashtime is not None:
        p(f"  crashtime     {vi.crashtime}")
    if vi.vmcoreinfo_offset is not None:
        where = f"text at file offset {vi.vmcoreinfo_offset}"
    else:
        where = "text in compressed pages"
    if vi.vmcoreinfo_paddr is not None:
        where += f", note header at physical {vi.vmcoreinfo_paddr:#x} (found by scanning memory)"
    p(f"  vmcoreinfo    {vi.keys} keys, {vi.vmcoreinfo_bytes} bytes, {where}")
    for d in vi.diagnostics:
        p(f"  diagnostic    line {d.line} (offset {d.offset}): {d.message} [{d.kind}]")
    v = s.verbose
    if v is None:
        return
    det = v.details
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
                codecs = ", ".join(f"{k} {count}" for k, count in det["page_codecs"].items() if count)
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
        pbd = det["phys_base"]
        if pbd["key"] and pbd["header"] is not None:
            verdict = {
                True: "agree",
                False: "disagree: the header is wrong (QEMU reads the kernel's decimal value as hex); using VMCOREINFO's",
                None: "",
            }[pbd["agree"]]
            key = pbd["key"].removeprefix("NUMBER(").removesuffix(")")
            vmci = pbd["vmcoreinfo"]
            shown = f"{vmci:#x}" if isinstance(vmci, int) else str(vmci)
            p(f"  {key:<13} VMCOREINFO {shown}; kdump header {pbd['header']:#x}: {verdict}".rstrip(" :"))
    ranges = v.memory_ranges
    total = sum(e - b for b, e in ranges)
    p(f"  memory        {plural(len(ranges), 'range')}, {total} bytes")
    for b, e in ranges[:VERBOSE_LIST_MAX]:
        p(f"  range         {b:#018x}-{e:#018x} ({e - b} bytes)")
    if len(ranges) > VERBOSE_LIST_MAX:
        p(f"  range         ... {len(ranges) - VERBOSE_LIST_MAX} more (--json -v lists all)")
    notes = v.notes
    for n in notes[:VERBOSE_LIST_MAX]:
        p(f"  note          {n.name:<12} {n.kind:<22} {n.size:>6} bytes, header at file offset {n.offset}")
    if len(notes) > VERBOSE_LIST_MAX:
        p(f"  note          ... {len(notes) - VERBOSE_LIST_MAX} more (--json -v lists all)")
    for k, val in v.vmcoreinfo.items():
        p(f"  key           {k}={val}")


def _arch_key_line(key: str, val: str) -> str:
    """``PHYS_OFFSET   0xffffe88340000000 (-0x177cc0000000 as a signed 64-bit value)``: the value
    as VMCOREINFO writes it, and a negative PHYS_OFFSET as the number it stands for."""
    name = key[key.index("(") + 1 : -1] if "(" in key else key
    line = f"{name:<13} {val}"
    try:
        n = int(val, 0)
    except ValueError:
        return line
    if name == "PHYS_OFFSET" and n >= 1 << 63:  # memstart_addr: negative under a randomized linear map
        line += f" ({n - (1 << 64):#x} as a signed 64-bit value)"
    return line


def _show_one(path: str, args: argparse.Namespace) -> int:
    """Print one file's summary (or its error); return its exit status."""
    try:
        s = summarize(path, verbose=args.verbose, format=args.format, progress=not (args.json or args.no_progress))
    except (Error, OSError) as e:
        err = ErrorSummary.of(e, path)
        if args.json:
            print(json.dumps(record(path, None, None, err)), flush=True)
        else:
            print(f"vmcoreinfo: {path}: error: {err.message}", file=sys.stderr)
        return _exit_code(e)
    short = _short(s)
    if short:
        print(f"vmcoreinfo: {path}: warning: {short}", file=sys.stderr)
    if args.json:
        print(json.dumps(s.as_json()), flush=True)
    else:
        _print_summary(s, sys.stdout)
    if s.vmcoreinfo is None:
        return ExitCode.NO_VMCOREINFO
    return ExitCode.CUT_SHORT if s.cut_short else ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    if _batch.wants_batch(args):  # several files, directories, globs: streamed by identify_many
        return _batch.run_show_many(args)
    codes = set()
    n = len(args.dumps)
    with ProgressLine(sys.stderr, enabled=n > 1 and not (args.json or args.no_progress)) as line:
        for i, path in enumerate(args.dumps, 1):
            line.update(f"[{i}/{n}] {path}")
            codes.add(_show_one(path, args))
    return worst(codes)


def cmd_notes(args: argparse.Namespace) -> int:
    with open_dump(args.dump, format=args.format) as dump:
        notes = dump.notes()
        if args.json:
            print(json.dumps([{**NoteSummary.of(n).as_json(), "desc": bytes(n.desc).hex()} for n in notes]))
        elif not notes:
            why = f"a {dump.format} image carries none" if dump.format in MEMORY_IMAGES else "the dump has none"
            print(f"{args.dump}: no ELF notes ({why})")
        else:
            for n in notes:
                kind = " (Windows dump header)" if n.is_windows_dump_header else ""
                print(f"{n.offset:#010x}  {n.name:<14} {NoteSummary.of(n).kind:<22} {n.size:>7} bytes{kind}")
    return ExitCode.OK


def cmd_scan(args: argparse.Namespace) -> int:
    """Scan a dump's physical memory for VMCOREINFO notes and print every candidate."""
    with open_dump(args.dump, format=args.format) as dump:
        total = sum(e - b for b, e in dump.memory_ranges())
        found = dump.scan_vmcoreinfo(_progress(args.dump, enabled=not args.no_progress))
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
    return ExitCode.OK if rows else ExitCode.NO_VMCOREINFO


def cmd_demo(args: argparse.Namespace) -> int:
    """The summary of the sample dump and a short tour of what else there is to see (``-v``: the
    whole ``show -v``, every key)."""
    path = vmcoreinfo.sample_path()
    print(
        f"Sample: a real QEMU dump-guest-memory ELF of an x86_64 guest, reduced to headers and notes\n  {path}\n", file=sys.stderr
    )
    flags = [*(["-v"] if args.verbose else []), *(["--json"] if args.json else [])]
    show = build_parser().parse_args(["show", *flags, "--", path])
    rc = int(show.func(show))
    if args.json or args.verbose:
        return rc
    with vmcoreinfo.open(path) as dump:
        vi = dump.vmcoreinfo
        notes = [NoteSummary.of(n) for n in dump.notes()]
    print("\nThe notes (vmcoreinfo notes DUMP):")
    for n in notes:
        print(f"  {n.name:<12} {n.kind:<22} {n.size:>6} bytes, header at file offset {n.offset}")
    print("\nIn Python (with vmcoreinfo.open(DUMP) as dump: vi = dump.vmcoreinfo):")
    print(f"  vi.symbol('init_uts_ns')            = {_hex(vi.symbol('init_uts_ns'))}")
    print(f"  vi.offset('uts_namespace', 'name')  = {vi.offset('uts_namespace', 'name')}")
    print(f"  vi.number('phys_base')              = {vi.number('phys_base')}")
    print(f"  vi['NUMBER(phys_base)']             = {vi.get('NUMBER(phys_base)')!r}  (the kernel writes decimal)")
    print(
        "\nOn a dump of your own:\n"
        "  vmcoreinfo show -v DUMP              every key, note and memory range (vmcoreinfo demo -v: this sample's)\n"
        "  vmcoreinfo dmesg DUMP                the kernel log\n"
        "  vmcoreinfo sym DUMP NAME|0xADDR      kernel symbols\n"
        "  vmcoreinfo convert IN OUT --to elf   a clean ELF core (or --to kdump) for drgn and crash\n"
        "  vmcoreinfo show -r --csv DIR         many dumps at once"
    )
    return rc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vmcoreinfo",
        description="Identify Linux guest memory dumps by their VMCOREINFO note.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {vmcoreinfo.__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", title="commands")

    def add(name: str, help: str, parents: Sequence[argparse.ArgumentParser]) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=list(parents),
        )

    s = add("show", "summarize the VMCOREINFO of one or more dumps", [FORMAT_OPTIONS, SHOW_JSON_OPTIONS, PROGRESS_OPTIONS])
    s.add_argument("dumps", nargs="+", metavar="DUMP")
    s.add_argument("-v", "--verbose", action="store_true", help="also every key, note, memory range and kdump page count")
    _batch.add_show_many_arguments(s)
    s.set_defaults(func=cmd_show)
    sc = add(
        "scan",
        "scan a dump's physical memory for VMCOREINFO notes (the fallback for dumps without one)",
        [*DUMP_OPTIONS, PROGRESS_OPTIONS],
    )
    sc.add_argument("dump", metavar="DUMP")
    sc.set_defaults(func=cmd_scan)
    n = add("notes", "list the ELF notes of a dump", DUMP_OPTIONS)
    n.add_argument("dump", metavar="DUMP")
    n.set_defaults(func=cmd_notes)
    d = add("demo", "the summary of the sample dump that ships with the package, and a short tour", [JSON_OPTIONS])
    d.add_argument("-v", "--verbose", action="store_true", help="the whole `show -v` of the sample: every key, note and range")
    d.set_defaults(func=cmd_demo)
    _convert_cli.add_parser(sub)
    _kview_cli.add_parsers(sub)
    _cpus_cli.add_parsers(sub)
    _objects_cli.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"vmcoreinfo: error: {e}", file=sys.stderr)
        return ExitCode.USAGE
    except BrokenPipeError:  # the reader went away (`| head`): not an error
        sys.stderr.close()
        return ExitCode.OK
    except (Error, OSError) as e:
        path = getattr(args, "dump", None)
        where = f"{path}: " if path else ""
        print(f"vmcoreinfo: {where}error: {describe(e, path)}", file=sys.stderr)
        return _exit_code(e)
    except KeyboardInterrupt:  # Ctrl-C during a scan reaches us through its progress callback
        print(file=sys.stderr)
        return ExitCode.INTERRUPTED
