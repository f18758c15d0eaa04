"""(d) bulk physical read, 1 MiB per call: every present page of a kdump-zlib dump, of the ELF
of the same guest (for reference) and of the 64 GiB sparse ELF (holes at hole speed). Ours:
Dump.read_phys_into over memory_ranges(); libkdumpfile: kdump_read of MACHPHYSADDR.
Throughput = bytes / time (BENCHMARKS.md)."""

from __future__ import annotations

import os

import inputs
import pytest
import readers
from conftest import probe, reader_or_skip, record_fail

BULK_READERS = ["vmcoreinfo", "libkdumpfile", "libkdumpfile-debian"]
BYID = inputs.by_id()
BULK = [BYID[i] for i in inputs.bulk_ids() if i in BYID]
VERIFY_MAX = 1 << 30  # crc-compare every byte with ours for files below this size


def _timed_bulk(r, path, ranges):
    """The timed loop, without a checksum: bytes read."""
    total = 0
    if isinstance(r, readers.Ours):
        buf = bytearray(readers.CHUNK)
        mv = memoryview(buf)
        with r.mod.open(path) as d:
            for s, e in ranges:
                a = s
                while a < e:
                    n = min(readers.CHUNK, e - a)
                    d.read_phys_into(a, mv[:n])
                    total += n
                    a += n
        return total
    k = r._ctx(path)
    try:
        for s, e in ranges:
            a = s
            while a < e:
                n = min(readers.CHUNK, e - a)
                total += len(r._read(k, a, n))
                a += n
    finally:
        r._release(k)
    return total


@pytest.mark.parametrize("reader_name", BULK_READERS)
@pytest.mark.parametrize("inp", BULK, ids=[i[0] for i in BULK])
def test_bulk(benchmark, reader_name, inp, ours):
    input_id, path, fmt, mem = inp
    r = reader_or_skip(reader_name)
    ranges = ours.ranges(path)
    want = sum(e - s for s, e in ranges)
    benchmark.group = f"bulk {input_id}"
    benchmark.extra_info.update(input=input_id, format=fmt, memory=mem, op="bulk", reader=reader_name, bytes=want)
    if os.stat(path).st_size <= VERIFY_MAX:
        if reader_name == "vmcoreinfo":
            n, crc = ours.bulk(path, ranges)
            assert n == want
        else:
            p = probe(reader_name, "bulk", path)
            if not p.get("ok"):
                record_fail("bulk", reader_name, input_id, p.get("error") or "?")
            n, crc = ours.bulk(path, ranges)
            assert p["result"] == {"bytes": n, "crc32": crc}, f"{reader_name} reads other bytes than ours"
    if reader_name != "vmcoreinfo":
        k = r._ctx(path)
        try:
            r._read(k, ranges[0][0], 4096)
        except Exception as e:  # noqa: BLE001
            record_fail("bulk", reader_name, input_id, f"{type(e).__name__}: {e}")
        finally:
            r._release(k)
    # The 64 GiB sparse ELF takes tens of seconds a pass (libkdumpfile more than a minute): one.
    rounds, warm = (1, 0) if want > (16 << 30) else (3, 1) if want > (1 << 30) else (5, 1)
    got = benchmark.pedantic(_timed_bulk, args=(r, path, ranges), rounds=rounds, iterations=1, warmup_rounds=warm)
    assert got == want
