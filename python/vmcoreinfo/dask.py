"""Identification of many dumps on a Dask cluster (the optional extra ``vmcoreinfo[dask]``).

>>> from distributed import Client                              # doctest: +SKIP
>>> import vmcoreinfo.dask as vd                                # doctest: +SKIP
>>> client = Client("scheduler:8786")                           # doctest: +SKIP
>>> df = vd.identify_dataframe(["/dumps/**/*.core"], batch_size=2000)   # doctest: +SKIP
>>> df.groupby("osrelease").size().compute()                    # doctest: +SKIP

Paths and globs are expanded on the client, then cut into partitions of ``batch_size`` paths;
each task calls :func:`vmcoreinfo.identify_many` on its partition (Rust threads, GIL released),
so a worker spends its time in the per-file job, not in task overhead. Results keep the input
order (globs expand sorted).

Where the files must be: every worker opens the paths itself, with ``pread``, reading only
headers and notes. So the dumps must be at the same path on the client (for glob expansion) and
on every worker: a local disk on a one-machine cluster, or a shared filesystem (NFS, CephFS,
Lustre, a FUSE mount of an object store such as s3fs or gcsfuse that serves ranged reads).
``file://`` URLs are accepted and mean local paths. Object-store URLs (``s3://``, ``gs://``,
``az://``, ``http://``) are refused with ``ValueError``: fsspec could only hand this library a
whole downloaded copy, which is what it exists not to need; mount the bucket instead.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, cast

import dask.bag as db
import dask.dataframe as dd
import pandas as pd  # type: ignore[import-untyped, import-not-found, unused-ignore]

from ._batch import identify_many
from ._native import Identity

__all__ = ["identify_bag", "identify_dataframe", "expand_paths", "identify_partition", "META"]

_MAGIC = frozenset("*?[")

# The DataFrame's columns (Identity.FIELDS order) and dtypes: nullable integers, strings as object.
META = pd.DataFrame(
    {
        "path": pd.Series([], dtype=object),
        "format": pd.Series([], dtype=object),
        "machine": pd.Series([], dtype=object),
        "osrelease": pd.Series([], dtype=object),
        "build_id": pd.Series([], dtype=object),
        "kernel_offset": pd.Series([], dtype="UInt64"),
        "phys_base": pd.Series([], dtype="Int64"),
        "page_size": pd.Series([], dtype="UInt64"),
        "vmcoreinfo_offset": pd.Series([], dtype="UInt64"),
        "vmcoreinfo_size": pd.Series([], dtype="UInt64"),
        "note_paddr": pd.Series([], dtype="UInt64"),
        "error_type": pd.Series([], dtype=object),
        "error_message": pd.Series([], dtype=object),
        "error_offset": pd.Series([], dtype="UInt64"),
    }
)
assert tuple(META.columns) == Identity.FIELDS


def _local(p: str) -> str:
    if "://" in p:
        proto, _, rest = p.partition("://")
        if proto != "file":
            raise ValueError(
                f"{p}: {proto}:// paths are not supported: workers read dumps with pread from a file "
                "system; mount the store (s3fs, gcsfuse, ...) and pass local paths"
            )
        return rest
    return p


def expand_paths(paths: str | Iterable[str]) -> Iterator[str]:
    """Paths as given, ``file://`` URLs as local paths, glob patterns (``*``, ``?``, ``[``;
    ``**`` crosses directories) expanded, sorted. A pattern that matches nothing is kept as it
    is, so its result reports FileNotFoundError."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [os.fspath(paths)]
    for p in paths:
        p = _local(os.fspath(p))
        if _MAGIC & set(p) and not os.path.lexists(p):
            matches = sorted(m for m in glob.glob(p, recursive=True) if not os.path.isdir(m))
            yield from matches if matches else [p]
        else:
            yield p


def identify_partition(
    paths: Sequence[str], threads: int | None = None, format: Literal["elf", "kdump", "lime", "raw"] | None = None
) -> list[dict[str, Any]]:
    """One task: :func:`vmcoreinfo.identify_many` over a partition, as dicts."""
    return [r.as_dict() for r in identify_many(list(paths), threads=threads, format=format)]


def _frame(paths: Sequence[str], threads: int | None, format: Any) -> pd.DataFrame:
    rows = identify_partition(paths, threads, format)
    return pd.DataFrame.from_records(rows, columns=list(META.columns)).astype(META.dtypes.to_dict())


def _chunks(paths: str | Iterable[str], batch_size: int) -> list[list[str]]:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    out: list[list[str]] = []
    cur: list[str] = []
    for p in expand_paths(paths):
        cur.append(p)
        if len(cur) == batch_size:
            out.append(cur)
            cur = []
    if cur or not out:
        out.append(cur)
    return out


def identify_bag(
    paths: str | Iterable[str],
    *,
    batch_size: int = 1000,
    threads: int | None = None,
    format: Literal["elf", "kdump", "lime", "raw"] | None = None,
) -> db.Bag:
    """A Bag of ``Identity.as_dict()`` dicts, one per path, in input order; one task per
    ``batch_size`` paths. ``threads``: identify_many threads per task (default: the worker's CPUs;
    with several worker threads per process, 1 is enough)."""
    chunks = _chunks(paths, batch_size)
    bag = db.from_sequence(chunks, npartitions=len(chunks))  # type: ignore[no-untyped-call, unused-ignore]
    return cast(
        db.Bag, bag.map_partitions(lambda part: [d for chunk in part for d in identify_partition(chunk, threads, format)])
    )


def identify_dataframe(
    paths: str | Iterable[str],
    *,
    batch_size: int = 1000,
    threads: int | None = None,
    format: Literal["elf", "kdump", "lime", "raw"] | None = None,
) -> dd.DataFrame:
    """A DataFrame with one row per path (columns: ``Identity.FIELDS``; integers nullable), in
    input order; one partition, and one task, per ``batch_size`` paths."""
    chunks = _chunks(paths, batch_size)
    df = dd.from_map(
        _frame,
        chunks,
        threads=threads,
        format=format,
        meta=META,  # type: ignore[no-untyped-call, unused-ignore]
        enforce_metadata=False,
    )
    return cast(dd.DataFrame, df)
