"""vmcoreinfo.dask on a distributed.LocalCluster with two worker processes: a corpus of
real-shaped dumps (with broken ones) as a DataFrame and as a Bag, every row checked."""

from __future__ import annotations

import pathlib
import sys

import pytest

pytest.importorskip("dask", reason="dask is not installed (the vmcoreinfo[dask] extra)")
pytest.importorskip("distributed", reason="distributed is not installed (the vmcoreinfo[dask] extra)")
pytest.importorskip("pandas", reason="pandas is not installed (the vmcoreinfo[dask] extra)")

import vmcoreinfo.dask as vd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benches"))
import make_corpus  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    return d, make_corpus.load_manifest(make_corpus.make(d, 400, mix=True, bad=20))


class Row:
    def __init__(self, d):
        self.__dict__.update(d)


def _none(v):
    try:
        import pandas as pd

        return None if pd.isna(v) else v
    except (TypeError, ValueError):
        return v


def test_dataframe_on_two_worker_processes(client, corpus):
    d, manifest = corpus
    df = vd.identify_dataframe([str(d / "*" / "*")], batch_size=64)
    assert df.npartitions == 7  # 400 paths / 64
    pdf = df.compute()
    rows = [Row({k: _none(v) for k, v in r.items()}) for r in pdf.to_dict("records")]
    assert make_corpus.check(rows, manifest) == 400
    # the work really ran in two worker processes
    who = client.run(lambda: __import__("os").getpid())
    assert len(set(who.values())) == 2
    assert pdf["kernel_offset"].dtype.name == "UInt64"


def test_bag_in_input_order(client, corpus):
    _, manifest = corpus
    paths = [m["path"] for m in manifest]
    out = vd.identify_bag(paths, batch_size=50).compute()
    assert make_corpus.check([Row(r) for r in out], manifest) == 400


def test_paths(tmp_path, corpus):
    d, manifest = corpus
    assert list(vd.expand_paths("file://" + manifest[0]["path"])) == [manifest[0]["path"]]
    assert list(vd.expand_paths([str(tmp_path / "none-*.core")])) == [str(tmp_path / "none-*.core")]
    with pytest.raises(ValueError, match="s3:// paths are not supported"):
        list(vd.expand_paths(["s3://bucket/dump.core"]))
    with pytest.raises(ValueError):
        vd.identify_bag([], batch_size=0)


def test_expand_paths_is_the_cli_expansion(tmp_path):
    """One expansion for `vmcoreinfo show` and vmcoreinfo.dask: the same list, in the same order,
    for files, directories (walked with recursive), subdirectories and globs."""
    from vmcoreinfo import _batch

    (tmp_path / "a" / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    for rel in ["a/2.core", "a/1.core", "a/sub/3.core", "a/sub/deeper/4.kdump", "b/5.core", "top.core"]:
        (tmp_path / rel).write_bytes(b"x")
    t = str(tmp_path)
    cases = [
        ([f"{t}/a"], True),
        ([f"{t}/*"], True),
        ([f"{t}/*"], False),  # directories a glob matches are kept (their results say IsADirectoryError)
        ([f"{t}/**/*.core"], False),
        ([f"{t}/top.core", f"{t}/b", f"{t}/none-*.core"], True),
    ]
    for args, recursive in cases:
        cli = list(_batch.iter_paths(args, recursive=recursive))
        assert list(vd.expand_paths(args, recursive=recursive)) == cli, (args, recursive)
        assert list(vd.expand_paths(["file://" + a for a in args], recursive=recursive)) == cli
    assert list(vd.expand_paths([f"{t}/a"], recursive=True)) == [
        f"{t}/a/1.core",
        f"{t}/a/2.core",
        f"{t}/a/sub/3.core",
        f"{t}/a/sub/deeper/4.kdump",
    ]
    assert list(vd.expand_paths([f"{t}/*"])) == [f"{t}/a", f"{t}/b", f"{t}/top.core"]
    with pytest.raises(IsADirectoryError):
        list(vd.expand_paths([f"{t}/a"]))  # a directory given without recursive, as `show` without -r


def test_identify_partition_takes_every_format():
    avml = str(pathlib.Path(__file__).parent / "fixtures" / "x86_64-qemu.avml")
    (row,) = vd.identify_partition([avml], format="avml")
    assert row["format"] == "avml" and row["error_type"] is None
