"""Dump.view_phys: zero-copy read-only views of the file's mapping where the range is one run of
stored bytes (ELF, LiME, raw), an owned copy elsewhere (kdump's compressed pages, mmap=False);
views keep the mapping alive past close()."""

from __future__ import annotations

import gc
import pathlib
import shutil

import pytest
import vmcoreinfo
from helpers import FIXTURES

MAPPABLE = [FIXTURES / "x86_64-qemu-elf.core", FIXTURES / "arm64-qemu-elf.core", FIXTURES / "x86_64-qemu.lime"]
KDUMPS = sorted((FIXTURES / "kdump").glob("*.kdump"))


def first_range(d: vmcoreinfo.Dump) -> tuple[int, int]:
    start, end = d.memory_ranges()[0]
    return start, min(end - start, 8192)


def maps_of(path: pathlib.Path) -> int:
    return sum(str(path) in ln for ln in pathlib.Path("/proc/self/maps").read_text().splitlines())


@pytest.mark.parametrize("path", MAPPABLE, ids=lambda p: p.name)
def test_mapped_view_is_zero_copy_and_equal(path: pathlib.Path) -> None:
    with vmcoreinfo.open(path) as d:
        for start, end in d.memory_ranges():
            n = min(end - start, 8192)
            v = d.view_phys(start, n)
            assert v.obj.mapped
            assert v.readonly and len(v) == n
            assert bytes(v) == d.read_phys(start, n)
            with pytest.raises(TypeError):
                v[0] = 0  # type: ignore[index]


def test_raw_view_and_numpy(tmp_path: pathlib.Path) -> None:
    np = pytest.importorskip("numpy")
    src = FIXTURES / "x86_64-qemu.lime"
    with vmcoreinfo.open(src, format="raw") as d:
        v = d.view_phys(100, 1000)
        assert v.obj.mapped and bytes(v) == src.read_bytes()[100:1100]
        a = np.frombuffer(v, dtype=np.uint8)
        assert not a.flags.writeable and a.tobytes() == bytes(v)


@pytest.mark.parametrize("path", KDUMPS, ids=lambda p: p.name)
def test_kdump_view_is_a_copy(path: pathlib.Path) -> None:
    with vmcoreinfo.open(path) as d:
        start, n = first_range(d)
        v = d.view_phys(start, n)
        assert not v.obj.mapped  # compressed pages: decompressed into a buffer the view owns
        assert v.readonly and bytes(v) == d.read_phys(start, n)


@pytest.mark.parametrize("path", MAPPABLE, ids=lambda p: p.name)
def test_mmap_false_views_are_copies(path: pathlib.Path) -> None:
    with vmcoreinfo.open(path, mmap=False) as d:
        start, n = first_range(d)
        v = d.view_phys(start, n)
        assert not v.obj.mapped and bytes(v) == d.read_phys(start, n)


def test_absent_and_oversized() -> None:
    with vmcoreinfo.open(FIXTURES / "x86_64-qemu-elf.core") as d:
        top = d.memory_ranges()[-1][1]
        with pytest.raises(vmcoreinfo.AbsentMemoryError):
            d.view_phys(top, 16)
        with pytest.raises(vmcoreinfo.AbsentMemoryError):
            d.view_phys(top - 8, 16)  # runs past the end
    with vmcoreinfo.open(KDUMPS[0]) as d:
        with pytest.raises(vmcoreinfo.LimitError):
            d.view_phys(0, vmcoreinfo.MAX_READ_PHYS + 1)


def test_view_outlives_close(tmp_path: pathlib.Path) -> None:
    """close() releases the dump; a live view keeps its mapping (and its bytes) until it is
    released; then the mapping goes away."""
    path = tmp_path / "dump.core"
    shutil.copy(FIXTURES / "x86_64-qemu-elf.core", path)
    d = vmcoreinfo.open(path)
    start, n = first_range(d)
    want = d.read_phys(start, n)
    v = d.view_phys(start, n)
    assert maps_of(path) == 1
    d.close()
    with pytest.raises(vmcoreinfo.ClosedError):
        d.view_phys(start, n)
    assert maps_of(path) == 1 and bytes(v) == want
    arr = memoryview(v)  # a second export of the same view
    del v
    gc.collect()
    assert maps_of(path) == 1 and bytes(arr) == want
    arr.release()
    del arr
    gc.collect()
    assert maps_of(path) == 0


def test_file_shrinks_under_a_live_view(tmp_path: pathlib.Path) -> None:
    """Documented: bytes past the new end read as zeros through the view (no SIGBUS); the dump's
    own reads past the new end, and every later view, raise TruncatedError."""
    path = tmp_path / "image.raw"
    data = bytes(range(256)) * 4096  # 1 MiB
    path.write_bytes(data)
    with vmcoreinfo.open(path, format="raw") as d:
        v = d.view_phys(0, len(data))
        assert v.obj.mapped
        import os

        os.truncate(path, 65536)
        got = bytes(v)  # touches the pages past the new end
        assert got[:65536] == data[:65536]
        assert got[65536:] == bytes(len(data) - 65536)
        assert d.read_phys(0, 16) == data[:16]  # reads use pread: bytes still in the file read
        with pytest.raises(vmcoreinfo.TruncatedError):
            d.read_phys(65536 * 2, 16)
        with pytest.raises(vmcoreinfo.TruncatedError):
            d.view_phys(0, 16)  # the mapping met the shrunken end: no more views of it
