"""Identification of many dumps on a Dask cluster (the optional extra ``vmcoreinfo[dask]``).

>>> from distributed import Client                              # doctest: +SKIP
>>> import vmcoreinfo.dask as vd                                # doctest: +SKIP
>>> client = Client("scheduler:8786")                           # doctest: +SKIP
>>> df = vd.identify_dataframe(["/dumps/**/*.core"], batch_size=2000)   # doctest: +SKIP
>>> df.groupby("osrelease").size().compute()                    # doctest: +SKIP

Paths, globs and (with ``recursive=True``) directories are expanded on the client as
``vmcoreinfo show`` expands them (:func:`expand_paths`), then cut into partitions of ``batch_size`` paths;
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

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import dask.bag as db
import dask.dataframe as dd
import pandas as pd  # type: ignore[import-untyped, import-not-found, unused-ignore]

from ._batch import identify_many, iter_paths
from ._schema import pandas_dtypes
from ._types import FormatName

__all__ = ["identify_bag", "identify_dataframe", "expand_paths", "identify_partition", "META"]

# The DataFrame's columns (Identity.FIELDS order) and dtypes (vmcoreinfo._schema): nullable
# integers, strings as object.
META = pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in pandas_dtypes().items()})


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


def expand_paths(paths: str | os.PathLike[str] | Iterable[str], *, recursive: bool = False) -> Iterator[str]:
    """The paths to identify, as ``vmcoreinfo show`` expands its arguments (one function does
    both: :func:`vmcoreinfo._batch.iter_paths`), after ``file://`` URLs become local paths.

    A file as it is; a glob pattern (``*``, ``?``, ``[``; ``**`` crosses directories) into its
    matches, sorted, and a pattern that matches nothing as it is (its result reports
    FileNotFoundError); a directory, given or matched, with ``recursive`` into its regular files
    in sorted order. Without ``recursive`` a directory given raises IsADirectoryError and one a
    glob matches is kept (its result reports IsADirectoryError). Streamed."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [os.fspath(paths)]
    return iter_paths((_local(os.fspath(p)) for p in paths), recursive=recursive)


def identify_partition(
    paths: Sequence[str], threads: int | None = None, format: FormatName | None = None
) -> list[dict[str, Any]]:
    """One task: :func:`vmcoreinfo.identify_many` over a partition, as dicts."""
    with identify_many(list(paths), threads=threads, format=format) as it:
        return [r.as_dict() for r in it]


def _frame(paths: Sequence[str], threads: int | None, format: FormatName | None) -> pd.DataFrame:
    rows = identify_partition(paths, threads, format)
    return pd.DataFrame.from_records(rows, columns=list(META.columns)).astype(META.dtypes.to_dict())


def _chunks(paths: str | Iterable[str], batch_size: int, recursive: bool) -> list[list[str]]:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    out: list[list[str]] = []
    cur: list[str] = []
    for p in expand_paths(paths, recursive=recursive):
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
    format: FormatName | None = None,
    recursive: bool = False,
) -> db.Bag:
    """A Bag of ``Identity.as_dict()`` dicts, one per path, in input order; one task per
    ``batch_size`` paths. ``threads``: identify_many threads per task (default: the worker's CPUs;
    with several worker threads per process, 1 is enough). ``recursive``: walk directories (see
    :func:`expand_paths`)."""
    chunks = _chunks(paths, batch_size, recursive)
    bag = db.from_sequence(chunks, npartitions=len(chunks))  # type: ignore[no-untyped-call, unused-ignore]
    return cast(
        db.Bag, bag.map_partitions(lambda part: [d for chunk in part for d in identify_partition(chunk, threads, format)])
    )


def identify_dataframe(
    paths: str | Iterable[str],
    *,
    batch_size: int = 1000,
    threads: int | None = None,
    format: FormatName | None = None,
    recursive: bool = False,
) -> dd.DataFrame:
    """A DataFrame with one row per path (columns: ``Identity.FIELDS``; integers nullable), in
    input order; one partition, and one task, per ``batch_size`` paths. ``threads``, ``format`` and
    ``recursive`` as for :func:`identify_bag`."""
    chunks = _chunks(paths, batch_size, recursive)
    df = dd.from_map(
        _frame,
        chunks,
        threads=threads,
        format=format,
        meta=META,  # type: ignore[no-untyped-call, unused-ignore]
        enforce_metadata=False,
    )
    return cast(dd.DataFrame, df)
