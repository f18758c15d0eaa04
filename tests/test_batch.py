"""identify_many: the same values and errors as a loop of vmcoreinfo.open, in input order, one
result per input, bounded look-ahead into the input, GIL released while waiting, progress."""

from __future__ import annotations

import itertools
import os
import pathlib
import sys
import threading
import time

import pytest
import vmcoreinfo
from helpers import FIXTURES

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benches"))
import make_corpus  # noqa: E402

ALL_FILES = sorted(str(p) for p in FIXTURES.rglob("*") if p.is_file())


def by_open(path: str, format: str | None = None) -> dict[str, object]:
    """What a loop of vmcoreinfo.open yields for one file (the reference)."""
    out: dict[str, object] = dict.fromkeys(vmcoreinfo.Identity.FIELDS)
    out["path"] = path
    try:
        with vmcoreinfo.open(path, format=format) as d:  # type: ignore[arg-type]
            out["format"] = d.format
            if d.format not in ("lime", "raw"):
                out["machine"] = d.machine
            vi = d.vmcoreinfo
            out["machine"] = d.machine
            out["osrelease"], out["build_id"] = vi.osrelease, vi.build_id
            out["vmcoreinfo_offset"], out["vmcoreinfo_size"], out["note_paddr"] = vi.offset_in_file, len(vi.raw), vi.note_paddr
            out["kernel_offset"], out["phys_base"], out["page_size"] = vi.kernel_offset, vi.phys_base, vi.page_size
            det = d.details()
            out["memory_declared_bytes"], out["memory_stored_bytes"] = det["memory_declared_bytes"], det["memory_stored_bytes"]
    except (vmcoreinfo.Error, OSError) as e:
        out["error_type"], out["error_message"] = type(e).__name__, str(e)
        out["error_offset"] = getattr(e, "offset", None)
    return out


def test_every_fixture_matches_a_loop_of_open():
    paths = ALL_FILES + [str(FIXTURES / "no-such-file.core"), str(FIXTURES / "kdump")]
    got = [r.as_dict() for r in vmcoreinfo.identify_many(paths, threads=2)]
    want = [by_open(p) for p in paths]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w["error_type"] is not None:
            # the batch keeps what it read before the error; the reference loop may not have read it
            for k in ("error_type", "error_message", "error_offset", "path"):
                assert g[k] == w[k], (k, g, w)
        else:
            assert g == w
    kinds = {g["error_type"] for g in got}
    assert {None, "FileNotFoundError", "IsADirectoryError", "NoVmcoreinfoError", "FormatError"} <= kinds, kinds
    assert {g["format"] for g in got} >= {"elf", "kdump", "flattened-kdump", "lime"}
    assert {g["machine"] for g in got} >= {"x86_64", "aarch64"}


def test_errors_keep_what_was_read_and_the_exception_class():
    (r,) = vmcoreinfo.identify_many([FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core"])
    assert (r.format, r.machine, r.ok) == ("elf", "x86_64", False)
    assert r.error == ("NoVmcoreinfoError", r.error_message)
    assert "x86_64-qemu-elf-no-vmcoreinfo.core" in (r.error_message or "") and r.error_offset is not None
    with pytest.raises(vmcoreinfo.NoVmcoreinfoError) as ei:
        vmcoreinfo.open(FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core").vmcoreinfo
    assert str(ei.value) == r.error_message


def test_format_option_is_passed_on():
    raw = str(FIXTURES / "x86_64-qemu.lime")
    (det,), (forced,) = vmcoreinfo.identify_many([raw]), vmcoreinfo.identify_many([raw], format="elf")
    assert det.format == "lime" and det.ok
    assert forced.error_type == "FormatError"


@pytest.mark.parametrize("threads,window", [(1, 1), (1, 7), (2, 2), (3, 64), (8, 1000)])
def test_corpus_in_input_order_every_result_checked(tmp_path, threads, window):
    m = make_corpus.load_manifest(make_corpus.make(tmp_path, 240, mix=True, bad=24))
    # a generator: identify_many must not need len() or a second pass
    res = vmcoreinfo.identify_many((row["path"] for row in m), threads=threads, window=window)
    assert make_corpus.check(res, m) == 240


def test_paths_of_every_kind(tmp_path):
    src = FIXTURES / "x86_64-qemu-elf.core"
    odd = tmp_path / "caf\udce9.core".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    os.symlink(src, os.fsencode(odd))
    inputs = [src, str(src), os.fsencode(src), odd]
    res = list(vmcoreinfo.identify_many(inputs))
    assert [r.path for r in res] == [str(src), str(src), str(src), str(odd)]
    assert all(r.ok and r.machine == "x86_64" for r in res), res


def test_bad_arguments():
    with pytest.raises(TypeError, match="iterable of paths"):
        vmcoreinfo.identify_many(str(FIXTURES / "x86_64-qemu-elf.core"))
    with pytest.raises(ValueError):
        vmcoreinfo.identify_many([], threads=0)
    with pytest.raises(ValueError):
        vmcoreinfo.identify_many([], window=0)
    with pytest.raises(ValueError):
        vmcoreinfo.identify_many([], format="zip")  # type: ignore[arg-type]
    it = vmcoreinfo.identify_many([str(FIXTURES / "x86_64-qemu-elf.core"), 42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="expected a path"):
        list(it)
    assert list(vmcoreinfo.identify_many([])) == []


def test_input_is_pulled_a_window_at_a_time_and_close_stops():
    pulled = 0

    def endless():
        nonlocal pulled
        for p in itertools.cycle(ALL_FILES[:3]):
            pulled += 1
            yield p

    it = vmcoreinfo.identify_many(endless(), threads=2, window=50)
    first = list(itertools.islice(it, 1000))
    assert len(first) == 1000
    assert pulled <= 1000 + 50, pulled  # never more than the window ahead of the consumer
    assert it.threads == 2
    it.close()
    assert it.threads == 0
    assert list(it) == []


def test_progress_reports_and_can_stop():
    paths = [str(FIXTURES / "x86_64-qemu-elf.core")] * 300
    calls: list[tuple[int, int | None]] = []
    assert len(list(vmcoreinfo.identify_many(paths, progress=lambda d, t: calls.append((d, t))))) == 300
    assert calls and calls[-1] == (300, 300)
    assert all(d <= 300 for d, _ in calls)

    calls.clear()
    out = list(vmcoreinfo.identify_many(iter(paths), progress=lambda d, t: calls.append((d, t))))
    assert len(out) == 300 and calls[-1] == (300, None)

    # False cancels the batch (CancelledError, as for scans and writes); the progress callback
    # is rate-limited, so make the first call come soon
    seen = []

    def stop_early(done, total):
        seen.append(done)
        return False

    it = vmcoreinfo.identify_many(itertools.repeat(paths[0]), progress=stop_early, window=8)
    n = 0
    t0 = time.monotonic()
    with pytest.raises(vmcoreinfo.CancelledError) as ei:
        for _ in it:
            n += 1
            time.sleep(0.001)
            assert time.monotonic() - t0 < 30, "progress returning False did not stop the batch"
    assert seen and n == seen[0]
    assert not isinstance(ei.value, OSError) and ei.value.path is None
    assert next(it, None) is None, "a cancelled batch stays stopped"

    def boom(done, total):
        raise RuntimeError("from progress")

    with pytest.raises(RuntimeError, match="from progress"):
        list(vmcoreinfo.identify_many(paths[:3], progress=boom))


def test_gil_is_released_while_waiting(tmp_path):
    # A raw image is found by scanning its memory: 128 MiB of data (not holes, which a sparse
    # read skips) keep a worker busy while the main thread waits in next(); another Python
    # thread must keep running meanwhile.
    big = tmp_path / "data.raw"
    with open(big, "wb") as f:
        block = bytes(range(256)) * 4096
        for _ in range(128):
            f.write(block)
    ticks = 0
    stop = threading.Event()

    def spin():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        t0 = time.perf_counter()
        before = ticks
        (r,) = vmcoreinfo.identify_many([big], format="raw", threads=1)
        elapsed = time.perf_counter() - t0
        during = ticks - before
    finally:
        stop.set()
        t.join()
    assert r.error_type == "NoVmcoreinfoError" and r.format == "raw"
    assert during > 1000, (during, elapsed)


def test_identity_is_a_frozen_value():
    (r,) = vmcoreinfo.identify_many([FIXTURES / "arm64-qemu-elf.core"])
    with pytest.raises(AttributeError):
        r.osrelease = "x"  # type: ignore[misc]
    d = r.as_dict()
    assert tuple(d) == vmcoreinfo.Identity.FIELDS
    assert d["machine"] == "aarch64" and d["page_size"] == 4096 and d["error_type"] is None
    assert "aarch64" in repr(r)


def _batch_thread_ids() -> set[str]:
    """Thread ids of this process's batch workers (named ``vmcoreinfo-batch-N``, which the
    kernel cuts to 15 bytes)."""
    out = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().startswith("vmcoreinfo-batc"):
                    out.add(tid)
        except FileNotFoundError:  # ended meanwhile
            pass
    return out


def test_the_calling_thread_is_one_of_the_threads():
    before = _batch_thread_ids()
    it = vmcoreinfo.identify_many(ALL_FILES, threads=1)
    first = next(it)
    assert it.threads == 1 and first.path == ALL_FILES[0]
    assert _batch_thread_ids() - before == set()  # threads=1: no worker, the caller identifies
    assert [r.path for r in it] == ALL_FILES[1:]
    before = _batch_thread_ids()
    it = vmcoreinfo.identify_many(ALL_FILES, threads=3)
    next(it)
    # A worker names itself once it runs: on a loaded machine that can come after next().
    deadline = time.monotonic() + 10
    while len(_batch_thread_ids() - before) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert it.threads == 3 and len(_batch_thread_ids() - before) == 2
    it.close()


def test_results_are_left_out_of_the_cycle_collector_and_outlive_it():
    import gc

    res = list(vmcoreinfo.identify_many(ALL_FILES, threads=2))
    assert res and not any(gc.is_tracked(r) for r in res)
    want = [r.as_dict() for r in res]
    gc.collect()
    assert [r.as_dict() for r in res] == want
    assert [by_open(p) for p in ALL_FILES[:5]] == [r.as_dict() for r in res[:5]]
