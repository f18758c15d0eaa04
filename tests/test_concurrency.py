"""Threads: one Dump shared by many threads, many dumps opened at once, GIL release during long
reads, and close() while other threads read.

The design under test: `Dump` is a frozen pyclass holding `RwLock<Option<Arc<core Dump>>>`;
every call clones the Arc under a read lock and works on an immutable core object (pread, no
shared file position; the kdump descriptor statistics sit in a `OnceLock`), so `close()` only
drops the Dump's reference and calls already running finish on their own Arc.
"""

from __future__ import annotations

import hashlib
import pathlib
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import vmcoreinfo
from helpers import FIXTURES

KD = FIXTURES / "kdump"
DUMPS = [
    FIXTURES / "x86_64-qemu-elf.core",
    FIXTURES / "x86_64-qemu-elf-paging.core",
    FIXTURES / "arm64-qemu-elf.core",
    FIXTURES / "x86_64-makedumpfile-d31.elf",
    *sorted(KD.glob("*.kdump")),
    *sorted(KD.glob("*.flat")),
]
THREADS = 8


def pages(d: vmcoreinfo.Dump, step: int = 4096) -> list[tuple[int, str]]:
    """Every page of every range, read one at a time, as (address, sha256)."""
    out = []
    for start, end in d.memory_ranges():
        for a in range(start, end, step):
            out.append((a, hashlib.sha256(d.read_phys(a, min(step, end - a))).hexdigest()))
    return out


def summary(d: vmcoreinfo.Dump) -> dict[str, object]:
    try:
        vi = d.vmcoreinfo
        text: tuple[object, ...] = (vi.osrelease, dict(vi))
    except vmcoreinfo.NoVmcoreinfoError:  # the 32-bit ARM kdump fixture has none
        text = (None, None)
    return {
        "format": d.format,
        "machine": d.machine,
        "osrelease": text[0],
        "items": text[1],
        "notes": [(n.name, n.type, n.offset, bytes(n.desc)) for n in d.notes()],
        "ranges": d.memory_ranges(),
        "pages": pages(d),
        "details": repr(d.details(pages=True)),
    }


def serial() -> dict[pathlib.Path, dict[str, object]]:
    out = {}
    for p in DUMPS:
        with vmcoreinfo.open(p) as d:
            out[p] = summary(d)
    return out


@pytest.fixture(scope="module")
def expected() -> dict[pathlib.Path, dict[str, object]]:
    return serial()


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_one_dump_shared_by_8_threads(path: pathlib.Path, expected: dict[pathlib.Path, dict[str, object]]) -> None:
    with vmcoreinfo.open(path) as d:
        barrier = threading.Barrier(THREADS)

        def work(_: int) -> dict[str, object]:
            barrier.wait()  # all threads start together: the first vmcoreinfo/details race
            return summary(d)

        with ThreadPoolExecutor(THREADS) as ex:
            results = list(ex.map(work, range(THREADS)))
    for r in results:
        assert r == expected[path]


def test_many_dumps_opened_in_parallel(expected: dict[pathlib.Path, dict[str, object]]) -> None:
    jobs = DUMPS * 3

    def work(p: pathlib.Path) -> tuple[pathlib.Path, dict[str, object]]:
        with vmcoreinfo.open(p) as d:
            return p, summary(d)

    with ThreadPoolExecutor(THREADS) as ex:
        for p, s in ex.map(work, jobs):
            assert s == expected[p], p


def big_kdump(tmp_path: pathlib.Path, npages: int) -> pathlib.Path:
    """The real qemu-x86_64 kdump's headers and notes with `npages` present pfns 0..npages-1,
    each with its own copy of one real zlib page of the fixture (distinct data offsets, so
    reads decompress every page rather than one shared block)."""
    real = (KD / "qemu-x86_64-zlib.kdump").read_bytes()
    _, bs, sub, bmb = struct.unpack_from("<IIII", real, 424)
    bm_off = bs * (1 + sub)
    half = bs * bmb // 2
    desc_off = bm_off + 2 * half
    ndesc = sum(bin(x).count("1") for x in real[bm_off + half : bm_off + 2 * half])
    zlib_desc = next(
        struct.unpack_from("<qIIQ", real, desc_off + 24 * i)
        for i in range(ndesc)
        if struct.unpack_from("<qIIQ", real, desc_off + 24 * i)[2] == 1
    )
    page = real[zlib_desc[0] : zlib_desc[0] + zlib_desc[1]]
    half_blocks = -(-npages // (8 * bs))
    out = bytearray(real[:bm_off])
    struct.pack_into("<I", out, 436, 2 * half_blocks)
    struct.pack_into("<I", out, 440, npages)
    struct.pack_into("<Q", out, bs + 96, npages)
    bm = bytearray(half_blocks * bs)
    for p in range(npages):
        bm[p >> 3] |= 1 << (p & 7)
    out += bm + bm
    data_off = len(out) + 24 * npages
    out += b"".join(struct.pack("<qIIQ", data_off + i * len(page), len(page), 1, 0) for i in range(npages))
    out += page * npages
    p = tmp_path / "big.kdump"
    p.write_bytes(out)
    return p


def test_long_read_releases_the_gil(tmp_path: pathlib.Path) -> None:
    """During one long read (16384 zlib pages, 64 MiB), a pure-Python thread keeps running.

    The switch interval is raised to 5 s, so if read_phys held the GIL the counter thread could
    not run at all until the read returned."""
    p = big_kdump(tmp_path, 16384)
    stop = threading.Event()
    ticks: list[float] = []

    def counter() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0)  # let the main thread take the GIL back

    old = sys.getswitchinterval()
    # read_phys_into: the buffer exists before the read, so all of the read runs without the GIL
    # (read_phys also allocates its result, which needs the GIL).
    data = bytearray(16384 * 4096)
    with vmcoreinfo.open(p) as d:
        d.read_phys(0, 4096)
        t = threading.Thread(target=counter)
        t.start()
        try:
            while len(ticks) < 10:
                time.sleep(0.001)
            sys.setswitchinterval(5.0)
            t0 = time.perf_counter()
            d.read_phys_into(0, data)
            t1 = time.perf_counter()
        finally:
            sys.setswitchinterval(old)
            stop.set()
            t.join()
    assert len(data) == 16384 * 4096 and data[:4096] == data[-4096:]
    during = [x for x in ticks if t0 < x < t1]
    print(f"read of 64 MiB took {t1 - t0:.3f} s; {len(during)} counter ticks ran during it")
    # The counter ran throughout the read: many ticks, spread over most of its duration.
    assert t1 - t0 > 0.005, f"read too short to measure ({t1 - t0:.4f} s)"
    assert len(during) > 100, f"only {len(during)} ticks during a {t1 - t0:.3f} s read"
    assert during[-1] - during[0] > 0.5 * (t1 - t0)


def test_close_while_other_threads_read() -> None:
    """Readers get results or ClosedError; never anything else; reads in flight complete."""
    for path in (KD / "qemu-x86_64-zlib.kdump", KD / "qemu-x86_64-zlib.flat", FIXTURES / "x86_64-qemu-elf.core"):
        d = vmcoreinfo.open(path)
        want = {a: d.read_phys(a, min(e - a, 4096)) for a, e in d.memory_ranges()}
        started = threading.Barrier(THREADS + 1)
        outcomes: list[str] = []
        lock = threading.Lock()

        def reader(i: int) -> None:
            started.wait()
            n = 0
            try:
                while True:
                    for a, b in want.items():
                        assert d.read_phys(a, len(b)) == b
                    if i % 2:
                        d.notes()
                        d.memory_ranges()
                        d.details()
                    n += 1
            except vmcoreinfo.ClosedError as e:
                assert e.path == str(path)
                with lock:
                    outcomes.append(f"closed after {n}")

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        started.wait()
        time.sleep(0.05)
        d.close()
        for t in threads:
            t.join(timeout=10)
            assert not t.is_alive()
        assert len(outcomes) == THREADS, outcomes
        assert d.closed
        with pytest.raises(vmcoreinfo.ClosedError):
            d.read_phys(0, 1)
        d.close()  # idempotent


def test_close_during_a_long_read_lets_it_finish(tmp_path: pathlib.Path) -> None:
    p = big_kdump(tmp_path, 8192)
    d = vmcoreinfo.open(p)
    result: list[object] = []

    def long_read() -> None:
        try:
            result.append(len(d.read_phys(0, 8192 * 4096)))
        except vmcoreinfo.ClosedError as e:
            result.append(e)

    t = threading.Thread(target=long_read)
    t.start()
    d.close()
    t.join()
    # Either the read had started (and completes on its own reference, whole) or it saw the close
    # (a ClosedError naming the file); nothing else, and exactly one outcome.
    assert len(result) == 1, result
    if not isinstance(result[0], vmcoreinfo.ClosedError):
        assert result == [8192 * 4096]
    else:
        assert result[0].path == str(p)
    # After the close every read is a ClosedError naming the file, deterministically.
    with pytest.raises(vmcoreinfo.ClosedError) as e:
        d.read_phys(0, 4096)
    assert e.value.path == str(p)


def test_fwcfg_device_shared_by_threads() -> None:
    """FwCfgDevice is a mutex-guarded model: concurrent writes never tear an entry."""
    dev = vmcoreinfo.FwCfgDevice()
    entries = [vmcoreinfo.FwCfgEntry(guest_format=1, size=4132, paddr=0x1000 * i).to_bytes() for i in range(THREADS)]

    def work(i: int) -> None:
        for _ in range(2000):
            dev.write(0, entries[i])
            assert dev.entry.to_bytes() in entries

    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(work, range(THREADS)))
    assert dev.has_vmcoreinfo
