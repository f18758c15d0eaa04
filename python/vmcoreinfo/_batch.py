"""Many dumps at once: :func:`identify_many` and the multi-file ``vmcoreinfo show``.

``identify_many`` runs the per-file job (open, VMCOREINFO, the values pipelines sort dumps by)
on Rust threads with the GIL released and yields one :class:`Identity` per input, in input
order. Paths are pulled from the iterable a window at a time, so a generator over millions of
files runs in constant memory.
"""

from __future__ import annotations

import argparse
import collections
import csv
import errno
import glob
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from . import _errors, _native
from ._cli_common import ExitCode, ProgressLine, cli_wording, directory_message, format_name, plural, worst
from ._native import Identity
from ._schema import IDENTITY_FIELDS, SHOW_RECORD_KEYS, arrow_schema
from ._types import FormatName

__all__ = ["identify_many", "Identity", "IdentifyIter", "iter_paths", "run_show_many", "add_show_many_arguments"]

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]


class IdentifyIter:
    """The iterator :func:`identify_many` returns: one :class:`Identity` per path, in input order.

    ``close()`` stops early (files not yet started are dropped); leaving a ``with`` block closes it
    too. ``threads`` is the number of threads identifying files. ``for r in it`` iterates the
    native iterator itself (``iter(it)`` returns it), so the wrapper costs nothing per result.
    """

    __slots__ = ("_it",)

    def __init__(self, it: _native.IdentifyIter) -> None:
        self._it = it

    def __iter__(self) -> Iterator[Identity]:
        return self._it

    def __next__(self) -> Identity:
        return next(self._it)

    def close(self) -> None:
        self._it.close()

    @property
    def threads(self) -> int:
        return self._it.threads

    def __enter__(self) -> IdentifyIter:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def identify_many(
    paths: Iterable[PathLike],
    *,
    threads: int | None = None,
    progress: Callable[[int, int | None], bool | None] | None = None,
    format: FormatName | None = None,
    window: int | None = None,
) -> IdentifyIter:
    """Identify many dump files on Rust threads; yield one :class:`Identity` per path, in input order.

    Each result holds ``path``, ``format``, ``machine``, ``osrelease``, ``build_id``,
    ``kernel_offset``, ``phys_base``, ``page_size``, ``vmcoreinfo_offset`` (file offset of the
    text), ``vmcoreinfo_size``, ``note_paddr``, or the error: ``error_type`` (the exception class
    :func:`vmcoreinfo.open` would raise, e.g. ``"NoVmcoreinfoError"``, ``"FileNotFoundError"``),
    ``error_message`` and ``error_offset``. A bad file never stops the batch.

    ``threads``: threads identifying files (default: one per CPU this process may use); the
    thread iterating is one of them: it identifies files itself whenever the next result is not
    done yet (with the GIL released), so ``threads=1`` starts no thread at all. ``window``: files
    in flight at most (default ``64 * threads + 64``): memory is bounded by it, not by the number
    of paths; ``paths`` may be any iterable, including a generator. ``progress(done, total)`` is
    called at most ten times a second and at the end (``total`` is ``len(paths)`` when it has
    one, else None); returning ``False`` stops the batch after the result in hand. ``format`` as
    for :func:`vmcoreinfo.open` (any name of ``vmcoreinfo.FORMATS``; ValueError for another).
    Memory images (LiME, AVML, raw) are scanned for their note, as ``open`` does: that reads
    their memory (4 MiB at a time).

    The returned iterator has ``close()`` to stop early (files not yet started are dropped), and
    is a context manager that closes it: ``with vmcoreinfo.identify_many(paths) as it: ...``.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("identify_many takes an iterable of paths; wrap a single path in a list")
    fmt = format_name(format)
    total: int | None
    try:
        total = len(paths)  # type: ignore[arg-type]
    except TypeError:
        total = None
    return IdentifyIter(_native.identify_many(paths, threads, progress, fmt, window, total))


# --- file lists ---------------------------------------------------------------------------

_MAGIC = frozenset("*?[")


def is_glob(a: str) -> bool:
    """Whether ``a`` is expanded as a glob pattern: it has ``*``, ``?`` or ``[`` and names no
    existing file."""
    return bool(_MAGIC & set(a)) and not os.path.lexists(a)


def _walk(top: str) -> Iterator[str]:
    """Regular files under ``top`` in sorted order, streamed (one directory listed at a time);
    symlinks to directories are not followed."""
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            yield d  # identify_many reports why (PermissionError, ...)
            continue
        subdirs = []
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(e.path)
                elif e.is_file():
                    yield e.path
            except OSError:
                yield e.path
        stack.extend(reversed(subdirs))


def iter_paths(args: Iterable[str], *, recursive: bool) -> Iterator[str]:
    """The paths of :func:`iter_paths_found` without how each was found."""
    for path, _walked in iter_paths_found(args, recursive=recursive):
        yield path


def iter_paths_found(args: Iterable[str], *, recursive: bool) -> Iterator[tuple[str, bool]]:
    """Expand paths: the one expansion of the CLI (``show``) and of :mod:`vmcoreinfo.dask`.

    - A file (or any path that is neither a directory nor a glob) as it is.
    - A directory: with ``recursive``, its regular files, depth first in sorted order, symlinks to
      directories not followed; without, IsADirectoryError is raised.
    - A glob pattern that names no existing file (``*``, ``?``, ``[``; ``**`` crosses
      directories): its matches, sorted; a matching directory is walked as above with
      ``recursive``, else passed through (its result says IsADirectoryError). A pattern that
      matches nothing is passed through, so its result says FileNotFoundError.

    Streams: nothing is collected up front but one directory listing or one glob's matches at a
    time. Each path comes with whether it was found under a directory (True) rather than named
    or matched (False): ``show`` skips the files found under a directory that are not dumps."""
    for a in args:
        if os.path.isdir(a):
            if not recursive:
                raise IsADirectoryError(a)
            yield from ((p, True) for p in _walk(a))
        elif is_glob(a):
            matches = sorted(glob.glob(a, recursive=True))
            if not matches:
                yield a, False
            for m in matches:
                if os.path.isdir(m) and recursive:
                    yield from ((p, True) for p in _walk(m))
                else:
                    yield m, False  # a directory without -r: its result says IsADirectoryError
        else:
            yield a, False


# --- `vmcoreinfo show` over many files --------------------------------------------------------


def add_show_many_arguments(p: argparse.ArgumentParser) -> None:
    """The multi-file options of ``show`` (cli.py builds the rest)."""
    p.add_argument("-r", "--recursive", action="store_true", help="read directories recursively (regular files only)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--jsonl", action="store_true", help="JSON lines: one object per file (as --json)")
    out.add_argument("--csv", action="store_true", help="CSV with a header row")
    out.add_argument("--parquet", metavar="OUT", help="write a Parquet file (needs pyarrow: vmcoreinfo[parquet])")
    p.add_argument("--threads", type=int, metavar="N", help="threads identifying files, this one included (default: one per CPU)")


def wants_batch(args: argparse.Namespace) -> bool:
    """Whether ``show`` goes through :func:`run_show_many`: several inputs, a directory, a glob,
    ``-r``, or an output only the batch writes. One plain file (and ``-v``) stays with cli.py."""
    if args.verbose:
        return False
    if args.recursive or args.jsonl or args.csv or args.parquet:
        return True
    dumps = list(args.dumps)
    if len(dumps) != 1:
        return True
    return os.path.isdir(dumps[0]) or is_glob(dumps[0])


_OS_ERROR = re.compile(r"\[Errno (\d+)\] (.*?)(?:: '.*')?", re.S)


def message(r: Identity) -> str:
    """A failure's message as ``show`` of one file words it: without the path (printed once) and
    with the command line's advice (``--format raw``, not ``format="raw"``)."""
    msg = r.error_message or ""
    if r.error_type is not None and not hasattr(_errors, r.error_type):  # an OSError: its strerror
        m = _OS_ERROR.fullmatch(msg)
        if m:
            code = int(m.group(1))
            return m.group(2) if code == errno.ESPIPE else os.strerror(code)
        return msg
    return cli_wording(msg, r.path)


def _not_a_dump(r: Identity) -> bool:
    """Whether the file has no dump signature (a log or a text file beside the dumps)."""
    return r.error_type == "FormatError" and r.error_offset == 0 and _native.HINTS["use-raw-format"] in (r.error_message or "")


def _json_record(r: Identity) -> dict[str, Any]:
    """The ``show --json`` record (``_schema.SHOW_RECORD_KEYS``, as ``show`` of one file)."""
    d: dict[str, Any] = dict(r.as_dict())
    et, eo = d.pop("error_type"), d.pop("error_offset")
    del d["error_message"]
    d["error"] = None if et is None else {"type": et, "message": message(r), "offset": eo}
    assert tuple(d) == SHOW_RECORD_KEYS
    return d


#: The columns of ``show``'s tab-separated output (its header line).
HUMAN_COLUMNS = ("path", "format", "machine", "osrelease", "build_id", "kernel_offset", "phys_base", "page_size")


def _cell(v: object) -> str:
    return "" if v is None else str(v)


def _human(r: Identity) -> str:
    """One tab-separated line: :data:`HUMAN_COLUMNS`, empty for a value the file lacks."""
    ko = None if r.kernel_offset is None else hex(r.kernel_offset)
    vals = (r.path, r.format, r.machine, r.osrelease, r.build_id, ko, r.phys_base, r.page_size)
    return "\t".join(map(_cell, vals))


def _cut_warning(r: Identity) -> str:
    d, s = r.memory_declared_bytes or 0, r.memory_stored_bytes or 0
    return (
        f"vmcoreinfo: {r.path}: warning: the file holds only {s} of the {d} bytes of memory it declares "
        f"({100 * s / d:.1f}%): it was cut short"
    )


class _ParquetSink:
    """Rows to a Parquet file in record batches (memory bounded by the batch size)."""

    BATCH = 8192

    def __init__(self, path: str):
        import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped, import-not-found, unused-ignore]

        self.pa = pa
        self.schema = arrow_schema(pa)
        self.writer = pq.ParquetWriter(path, self.schema)
        self.rows: list[dict[str, Any]] = []

    def add(self, r: Identity) -> None:
        self.rows.append(r.as_dict())
        if len(self.rows) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(self.pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _rate_text(bar: ProgressLine, done: int, total: int | None, failed: int) -> str:
    of = f"/{total}" if total is not None else ""
    return f"vmcoreinfo: {done}{of} files, {bar.rate(done):,.0f}/s" + (f", {failed} failed" if failed else "")


def run_show_many(args: argparse.Namespace) -> int:
    """``vmcoreinfo show`` over many files: streams one result per file, in input order.

    Exit status: 0 every file identified; 4 some file is cut short (and none failed or lacks a
    note); 3 some file has no VMCOREINFO note and none failed otherwise; 1 some file could not be
    read or is broken; 2 usage (a directory without ``-r``, a bad option, pyarrow missing for
    ``--parquet``). Files found under a directory that have no dump signature (logs, text files)
    are skipped and counted in the summary line on stderr."""
    threads = args.threads
    if threads is not None and threads < 1:
        print("vmcoreinfo: error: --threads must be at least 1", file=sys.stderr)
        return ExitCode.USAGE
    for a in args.dumps:
        if os.path.isdir(a) and not args.recursive:
            print(f"vmcoreinfo: error: {directory_message(a)}", file=sys.stderr)
            return ExitCode.USAGE
    sink: _ParquetSink | None = None
    if args.parquet:
        try:
            sink = _ParquetSink(args.parquet)
        except ImportError:
            print("vmcoreinfo: error: --parquet needs pyarrow (pip install 'vmcoreinfo[parquet]')", file=sys.stderr)
            return ExitCode.USAGE
    mode = "parquet" if sink else "csv" if args.csv else "json" if (args.json or args.jsonl) else "text"
    explicit = all(not os.path.isdir(a) and not is_glob(a) for a in args.dumps)
    total = len(args.dumps) if explicit else None
    bar = ProgressLine(sys.stderr, enabled=not args.no_progress)
    failed = no_vi = cut = done = skipped = 0

    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n") if mode == "csv" else None
    if writer:
        writer.writerow(IDENTITY_FIELDS)
    elif mode == "text":
        print("\t".join(HUMAN_COLUMNS), file=out)
    walked: collections.deque[bool] = collections.deque()  # per path in flight: found under a directory

    def paths() -> Iterator[str]:
        for path, under_dir in iter_paths_found(args.dumps, recursive=args.recursive):
            walked.append(under_dir)
            yield path

    try:
        with identify_many(paths(), threads=threads, format=args.format) as it:
            for r in it:
                if walked.popleft() and _not_a_dump(r):
                    skipped += 1
                    continue
                done += 1
                if r.error_type is not None:
                    if r.error_type == "NoVmcoreinfoError":
                        no_vi += 1
                    else:
                        failed += 1
                if r.cut_short:
                    cut += 1
                    if mode == "text":
                        print(_cut_warning(r), file=sys.stderr)
                if mode == "json":
                    out.write(json.dumps(_json_record(r)) + "\n")
                elif writer:
                    writer.writerow(map(_cell, r.as_dict().values()))
                elif sink:
                    sink.add(r)
                elif r.error_type is None:
                    print(_human(r), file=out)
                if r.error_type is not None and mode == "text":
                    print(f"vmcoreinfo: {r.path}: error: {message(r)}", file=sys.stderr)
                if done % 64 == 0 and bar.due():
                    bar.update(_rate_text(bar, done, total, failed + no_vi))
    finally:
        if sink:
            sink.close()
        bar.update(_rate_text(bar, done, total, failed + no_vi), final=True)
        bar.close()
    out.flush()
    print(_summary_line(done, failed, no_vi, cut, skipped, args.parquet), file=sys.stderr)
    rc: set[int] = set()
    if failed:
        rc.add(ExitCode.ERROR)
    if no_vi:
        rc.add(ExitCode.NO_VMCOREINFO)
    if cut:
        rc.add(ExitCode.CUT_SHORT)
    return worst(rc)


def _summary_line(done: int, failed: int, no_vi: int, cut: int, skipped: int, parquet: str | None) -> str:
    """The one line every output mode of ``show`` over many files ends with, on stderr."""
    parts = [plural(done, "file"), f"{failed + no_vi} failed"]
    if no_vi:
        parts.append(f"{no_vi} without VMCOREINFO")
    if cut:
        parts.append(f"{cut} cut short")
    if skipped:
        parts.append(f"{skipped} skipped (no dump signature: not dumps)")
    where = f", written to {parquet}" if parquet else ""
    return f"vmcoreinfo: {', '.join(parts)}{where}"
