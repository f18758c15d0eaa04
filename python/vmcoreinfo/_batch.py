"""Many dumps at once: :func:`identify_many` and the multi-file ``vmcoreinfo show``.

``identify_many`` runs the per-file job (open, VMCOREINFO, the values pipelines sort dumps by)
on Rust threads with the GIL released and yields one :class:`Identity` per input, in input
order. Paths are pulled from the iterable a window at a time, so a generator over millions of
files runs in constant memory.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Literal

from ._native import IdentifyIter, Identity
from ._native import identify_many as _identify_many

__all__ = ["identify_many", "Identity", "IdentifyIter", "iter_paths", "run_show_many", "add_show_many_arguments"]

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]

# Exit codes of `vmcoreinfo show` (README "Command line").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_VMCOREINFO = 3


def identify_many(
    paths: Iterable[PathLike],
    *,
    threads: int | None = None,
    progress: Callable[[int, int | None], bool | None] | None = None,
    format: Literal["elf", "kdump", "lime", "raw"] | None = None,
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
    for :func:`vmcoreinfo.open`. LiME and raw images are scanned for their note, as ``open``
    does: that reads their memory (4 MiB at a time).

    The returned iterator has ``close()`` to stop early (files not yet started are dropped).
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("identify_many takes an iterable of paths; wrap a single path in a list")
    total: int | None
    try:
        total = len(paths)  # type: ignore[arg-type]
    except TypeError:
        total = None
    return _identify_many(paths, threads, progress, format, window, total)


# --- file lists ---------------------------------------------------------------------------

_MAGIC = frozenset("*?[")


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
    """Expand command-line arguments: a file as it is; a directory (with ``recursive``) into
    its regular files; a glob pattern that names no existing file (``*``, ``?``, ``[``; ``**``
    crosses directories) into its matches, sorted. A pattern that matches nothing is passed
    through, so its result says FileNotFoundError. Streams: nothing is collected up front but
    one directory listing or one glob's matches at a time."""
    for a in args:
        if os.path.isdir(a):
            if not recursive:
                raise IsADirectoryError(a)
            yield from _walk(a)
        elif not os.path.lexists(a) and _MAGIC & set(a):
            matches = sorted(glob.glob(a, recursive=True))
            if not matches:
                yield a
            for m in matches:
                if os.path.isdir(m) and recursive:
                    yield from _walk(m)
                else:
                    yield m  # a directory without -r: its result says IsADirectoryError
        else:
            yield a


# --- `vmcoreinfo show` over many files --------------------------------------------------------


def add_show_many_arguments(p: argparse.ArgumentParser) -> None:
    """The multi-file options of ``show`` (cli.py builds the rest)."""
    p.add_argument("-r", "--recursive", action="store_true", help="read directories recursively (regular files only)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--jsonl", action="store_true", help="JSON lines: one object per file (as --json)")
    out.add_argument("--csv", action="store_true", help="CSV with a header row")
    out.add_argument("--parquet", metavar="OUT", help="write a Parquet file (needs pyarrow: vmcoreinfo[parquet])")
    p.add_argument("--threads", type=int, metavar="N", help="threads identifying files, this one included (default: one per CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr (default: shown on a terminal)")


def wants_batch(args: argparse.Namespace) -> bool:
    """Whether ``show`` goes through :func:`run_show_many`: several inputs, a directory, a glob,
    ``-r``, or an output only the batch writes. One plain file (and ``-v``) stays with cli.py."""
    if getattr(args, "verbose", False):
        return False
    if getattr(args, "recursive", False) or getattr(args, "jsonl", False) or getattr(args, "csv", False):
        return True
    if getattr(args, "parquet", None):
        return True
    dumps = list(args.dumps)
    if len(dumps) != 1:
        return True
    a = dumps[0]
    return os.path.isdir(a) or (not os.path.lexists(a) and bool(_MAGIC & set(a)))


class _Progress:
    """A one-line progress display on stderr: files done (of the total when known), rate,
    failures. Own and tiny rather than tqdm or rich: the CLI needs one line, and the package keeps
    no runtime dependency for it."""

    def __init__(self, out: IO[str], total: int | None):
        self.out, self.total, self.t0, self.shown = out, total, time.monotonic(), False

    def __call__(self, done: int, total: int | None, failed: int = 0) -> None:
        dt = max(time.monotonic() - self.t0, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        line = f"\rvmcoreinfo: {done}{of} files, {done / dt:,.0f}/s" + (f", {failed} failed" if failed else "")
        self.out.write(line[:120].ljust(60))
        self.out.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            self.out.write("\n")
            self.out.flush()


def _json_record(r: Identity) -> dict[str, Any]:
    d: dict[str, Any] = dict(r.as_dict())
    et, em, eo = d.pop("error_type"), d.pop("error_message"), d.pop("error_offset")
    d["error"] = None if et is None else {"type": et, "message": em, "offset": eo}
    return d


def _human(r: Identity) -> str:
    ko = "-" if r.kernel_offset is None else hex(r.kernel_offset)
    return (
        f"{r.path}\t{r.format}\t{r.machine}\t{r.osrelease}\t{r.build_id}"
        f"\tkernel_offset={ko}\tphys_base={r.phys_base}\tpage_size={r.page_size}"
    )


class _ParquetSink:
    """Rows to a Parquet file in record batches (memory bounded by the batch size)."""

    BATCH = 8192

    def __init__(self, path: str):
        import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped, import-not-found, unused-ignore]

        self.pa = pa
        s, i, u = pa.string(), pa.int64(), pa.uint64()
        self.schema = pa.schema(
            [
                ("path", s),
                ("format", s),
                ("machine", s),
                ("osrelease", s),
                ("build_id", s),
                ("kernel_offset", u),
                ("phys_base", i),
                ("page_size", u),
                ("vmcoreinfo_offset", u),
                ("vmcoreinfo_size", u),
                ("note_paddr", u),
                ("error_type", s),
                ("error_message", s),
                ("error_offset", u),
            ]
        )
        assert tuple(self.schema.names) == Identity.FIELDS
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


def run_show_many(args: argparse.Namespace) -> int:
    """``vmcoreinfo show`` over many files: streams one result per file, in input order.

    Exit status: 0 every file identified; 3 some file has no VMCOREINFO note and none failed
    otherwise; 1 some file could not be read or is broken; 2 usage (a directory without ``-r``,
    a bad option, pyarrow missing for ``--parquet``)."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        print("vmcoreinfo: error: --threads must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    for a in args.dumps:
        if os.path.isdir(a) and not args.recursive:
            print(f"vmcoreinfo: error: {a} is a directory (use -r to read the files under it)", file=sys.stderr)
            return EXIT_USAGE
    sink: _ParquetSink | None = None
    if getattr(args, "parquet", None):
        try:
            sink = _ParquetSink(args.parquet)
        except ImportError:
            print("vmcoreinfo: error: --parquet needs pyarrow (pip install 'vmcoreinfo[parquet]')", file=sys.stderr)
            return EXIT_USAGE
    mode = "parquet" if sink else "csv" if args.csv else "json" if (args.json or args.jsonl) else "text"
    explicit = all(not os.path.isdir(a) and (os.path.lexists(a) or not (_MAGIC & set(a))) for a in args.dumps)
    total = len(args.dumps) if explicit else None
    show = sys.stderr.isatty() and not getattr(args, "no_progress", False)
    bar = _Progress(sys.stderr, total) if show else None
    failed = no_vi = done = 0

    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n") if mode == "csv" else None
    if writer:
        writer.writerow(Identity.FIELDS)
    it = identify_many(iter_paths(args.dumps, recursive=args.recursive), threads=threads, format=getattr(args, "format", None))
    last = time.monotonic()
    try:
        for r in it:
            done += 1
            if r.error_type is not None:
                if r.error_type == "NoVmcoreinfoError":
                    no_vi += 1
                else:
                    failed += 1
            if mode == "json":
                out.write(json.dumps(_json_record(r)) + "\n")
            elif writer:
                writer.writerow(r.as_dict().values())
            elif sink:
                sink.add(r)
            elif r.error_type is None:
                print(_human(r), file=out)
            else:
                print(f"{r.path}: error: {r.error_type}: {r.error_message}", file=sys.stderr)
            if bar and done % 64 == 0 and time.monotonic() - last >= 0.1:
                last = time.monotonic()
                bar(done, total, failed + no_vi)
    finally:
        it.close()
        if sink:
            sink.close()
        if bar:
            bar(done, total, failed + no_vi)
            bar.end()
    out.flush()
    if sink:
        print(f"vmcoreinfo: {done} files, {failed + no_vi} failed, written to {args.parquet}", file=sys.stderr)
    if failed:
        return EXIT_FAILED
    return EXIT_NO_VMCOREINFO if no_vi else EXIT_OK
