"""The mapped read path: a file shrinking under the mapping is a TruncatedError, never SIGBUS.

Another process truncates the dump file (page-aligned) and writes it back, over and over, while
threads read and scan it through one mapping. Every call must either return exactly what the
file held or raise TruncatedError; the process must survive. `mmap=False` reads with pread.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest
import vmcoreinfo
from helpers import FIXTURES

# A reader thread dying of an unexpected exception fails the test, not just warns.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

PAGE = 4096
SIZE = 8 << 20


def make_image(path: pathlib.Path) -> bytes:
    """A raw image made of the real x86_64 LiME fixture's bytes (its memory holds a real
    VMCOREINFO note), repeated to SIZE."""
    src = (FIXTURES / "x86_64-qemu.lime").read_bytes()
    data = (src * (SIZE // len(src) + 1))[:SIZE]
    path.write_bytes(data)
    return data


def shrinker(path: str, data: bytes, stop: mp.synchronize.Event, cuts: mp.sharedctypes.Synchronized) -> None:  # type: ignore[name-defined]
    fd = os.open(path, os.O_WRONLY)
    n = 0
    while not stop.is_set():
        keep = (n * 7919 % (SIZE // PAGE)) * PAGE  # page-aligned: the end is never mid-page
        os.ftruncate(fd, keep)
        time.sleep(0.001)
        for off in range(keep, SIZE, 1 << 20):
            os.pwrite(fd, data[off : off + (1 << 20)], off)
        n += 1
        cuts.value = n
    os.close(fd)


def expected(path: pathlib.Path) -> tuple[dict[int, str], list[str]]:
    with vmcoreinfo.open(path, format="raw", mmap=False) as d:
        pages = {a: hashlib.sha256(d.read_phys(a, 65536)).hexdigest() for a in range(0, SIZE, 65536)}
        scan = [v.osrelease for v in d.scan_vmcoreinfo()]
    return pages, scan


@pytest.mark.parametrize("round_", range(3))
def test_shrinking_file_under_mapping(tmp_path: pathlib.Path, round_: int) -> None:
    path = tmp_path / "image.raw"
    data = make_image(path)
    pages, scan = expected(path)
    assert scan, "the real fixture's note must be found"
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    cuts = ctx.Value("i", 0)
    proc = ctx.Process(target=shrinker, args=(str(path), data, stop, cuts))
    proc.start()
    outcomes = {"ok": 0, "truncated": 0}
    failures: list[str] = []
    lock = threading.Lock()

    def record(kind: str) -> None:
        with lock:
            outcomes[kind] += 1

    def reader(seed: int) -> None:
        deadline = time.monotonic() + 2.0
        i = seed
        while time.monotonic() < deadline:
            # A fresh mapping now and then: poisoning is sticky per mapping.
            try:
                d = vmcoreinfo.open(path, format="raw", mmap="always")
            except vmcoreinfo.TruncatedError:
                record("truncated")  # it shrank while its header was read
                continue
            with d:
                # The file may be short right now: read only what it held when opened.
                ranges = d.memory_ranges()
                blocks = (ranges[-1][1] if ranges else 0) // 65536
                if blocks == 0:
                    continue
                for _ in range(40):
                    a = (i * 40503 % blocks) * 65536
                    i += 1
                    try:
                        got = hashlib.sha256(d.read_phys(a, 65536)).hexdigest()
                    except vmcoreinfo.TruncatedError:
                        record("truncated")
                        continue
                    except Exception as e:  # noqa: BLE001 - anything else is the failure under test
                        failures.append(f"read {a:#x}: {type(e).__name__}: {e}")
                        continue
                    if got != pages[a]:
                        failures.append(f"read {a:#x}: wrong bytes without an error")
                    record("ok")
                if seed % 2 == 0:
                    try:
                        got_scan = [v.osrelease for v in d.scan_vmcoreinfo()]
                    except vmcoreinfo.TruncatedError:
                        record("truncated")
                    except Exception as e:  # noqa: BLE001
                        failures.append(f"scan: {type(e).__name__}: {e}")
                    else:
                        if got_scan != scan and blocks == SIZE // 65536:
                            failures.append(f"scan found {got_scan!r}, expected {scan!r}")
                        record("ok")

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        proc.join(10)
    assert proc.exitcode == 0
    assert not failures, failures[:5]
    assert cuts.value > 0
    # The race must really have been exercised: some calls met the shrunken file.
    assert outcomes["truncated"] > 0, outcomes
    assert outcomes["ok"] > 0, outcomes


def test_mmap_false_reads_the_same(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "image.raw"
    make_image(path)
    with vmcoreinfo.open(path, format="raw", mmap=False) as a, vmcoreinfo.open(path, format="raw", mmap="always") as b:
        for addr in (0, 4096 * 3 + 17, SIZE - 100):
            assert a.read_phys(addr, 100) == b.read_phys(addr, 100)
        assert [v.osrelease for v in a.scan_vmcoreinfo()] == [v.osrelease for v in b.scan_vmcoreinfo()]


def test_truncated_before_read_both_paths(tmp_path: pathlib.Path) -> None:
    """Shrink once, then read past the new end: TruncatedError on both paths, offset named."""
    for mmap in ("always", True, False):
        path = tmp_path / f"image-{mmap}.raw"
        make_image(path)
        with vmcoreinfo.open(path, format="raw", mmap=mmap) as d:
            os.truncate(path, SIZE // 2)
            with pytest.raises(vmcoreinfo.TruncatedError):
                d.read_phys(SIZE - PAGE, PAGE)


def test_foreign_sigbus_still_kills(tmp_path: pathlib.Path) -> None:
    """A SIGBUS outside our mappings goes to the previous (default) action: the process dies
    of SIGBUS, the guard does not swallow it."""
    code = (
        "import mmap, os, sys, vmcoreinfo\n"
        f"d = vmcoreinfo.open({str(tmp_path / 'image.raw')!r}, format='raw', mmap='always')\n"
        "d.read_phys(0, 16)\n"  # the guard is installed now
        f"p = {str(tmp_path / 'other')!r}\n"
        "open(p, 'wb').write(b'x' * 65536)\n"
        "f = open(p, 'r+b'); m = mmap.mmap(f.fileno(), 65536)\n"
        "os.truncate(p, 0)\n"
        "print('before', flush=True)\n"
        "m[40000]\n"
        "print('after', flush=True)\n"
    )
    make_image(tmp_path / "image.raw")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "before" in r.stdout and "after" not in r.stdout
    assert r.returncode == -7, (r.returncode, r.stderr[-500:])  # killed by SIGBUS


def run_child(tmp_path: pathlib.Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run `body` in a fresh interpreter (it may die of a signal) with `image` (an image of
    SIZE bytes) and `other` (a copy) as paths; `faulthandler` is off unless `body` enables it."""
    make_image(tmp_path / "image.raw")
    (tmp_path / "other.raw").write_bytes((tmp_path / "image.raw").read_bytes())
    code = (
        "import faulthandler, os, signal, sys, vmcoreinfo\n"
        f"image, other = {str(tmp_path / 'image.raw')!r}, {str(tmp_path / 'other.raw')!r}\n"
        f"SIZE, PAGE = {SIZE}, {PAGE}\n"
        "def cut_and_read(d, path):\n"
        "    os.truncate(path, SIZE // 2)\n"
        "    try:\n"
        "        d.read_phys(SIZE - PAGE, PAGE)\n"
        "    except vmcoreinfo.TruncatedError as e:\n"
        "        print('truncated', e.offset, flush=True)\n"
        "    else:\n"
        "        print('read without error', flush=True)\n" + body
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "steps",
    [
        # faulthandler installed after our first mapping: it replaced our handler.
        "faulthandler.enable()\n",
        # faulthandler installed before our first mapping and disabled after it: disable()
        # restored the SIG_DFL it had saved, which removed our handler.
        "faulthandler.disable()\n",
        "faulthandler.enable(); faulthandler.disable(); faulthandler.enable()\n",
    ],
)
def test_the_guard_is_reinstalled_when_another_sigbus_handler_replaced_it(tmp_path: pathlib.Path, steps: str) -> None:
    """B9: a later sigaction(SIGBUS) (here Python's faulthandler) replaces the guard; the next
    mapping puts it back, so a file shrinking under a mapping is again a TruncatedError."""
    body = (
        ("faulthandler.enable()\n" if steps.startswith("faulthandler.disable") else "")
        + "a = vmcoreinfo.open(image, format='raw', mmap='always')\n"
        "a.read_phys(0, 16)\n"  # the guard is installed now
         + steps + "b = vmcoreinfo.open(other, format='raw', mmap='always')\n"  # re-checks the disposition
        "cut_and_read(b, other)\n"
        "cut_and_read(a, image)\n"
    )
    r = run_child(tmp_path, body)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-800:])
    # As with the guard never replaced: a TruncatedError at the read's offset, for the new
    # mapping and for the one made before the other handler came.
    assert r.stdout.split("\n")[:2] == [f"truncated {SIZE - PAGE}"] * 2, r.stdout


def test_the_guard_is_reinstalled_after_faulthandler_for_views(tmp_path: pathlib.Path) -> None:
    """B9 through the lazy mapping of view_phys: the view's mapping re-installs the guard too."""
    body = (
        "a = vmcoreinfo.open(image, format='raw')\n"
        "a.view_phys(0, 16)\n"
        "faulthandler.enable()\n"
        "b = vmcoreinfo.open(other, format='raw')\n"
        "v = b.view_phys(SIZE - PAGE, PAGE)\n"
        "os.truncate(other, SIZE // 2)\n"
        "print('zeros' if bytes(v) == bytes(PAGE) else 'bytes', flush=True)\n"
        "cut_and_read(b, other)\n"
    )
    r = run_child(tmp_path, body)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-800:])
    assert r.stdout.split("\n")[:2] == ["zeros", f"truncated {SIZE - PAGE}"], r.stdout


# A Py_buffer's first field is the buffer's address: where a view of the mapping lies.
SIGQUEUE_INTO_MAPPING = """
import ctypes, platform
class Py_buffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_void_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]
pb = Py_buffer()
ctypes.pythonapi.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
assert ctypes.pythonapi.PyObject_GetBuffer(v, ctypes.byref(pb), 0) == 0
addr = pb.buf + 8
# A siginfo as sigqueue() sends it (si_code SI_QUEUE = -1), whose si_addr field, shared with
# si_pid/si_uid, holds an address inside the live mapping.
info = (ctypes.c_char * 128)()
ctypes.memmove(info, (ctypes.c_int * 3)(signal.SIGBUS, 0, -1), 12)
ctypes.memmove(ctypes.addressof(info) + 16, ctypes.byref(ctypes.c_uint64(addr)), 8)
nr = {"x86_64": 129, "aarch64": 138}[platform.machine()]  # rt_sigqueueinfo
libc = ctypes.CDLL(None, use_errno=True)
print("before", flush=True)
r = libc.syscall(ctypes.c_long(nr), ctypes.c_long(os.getpid()), ctypes.c_long(signal.SIGBUS), info)
print("sent", r, ctypes.get_errno(), flush=True)
"""


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="syscall number")
@pytest.mark.parametrize("how", ["kill", "sigqueue-address-in-mapping"])
def test_a_sigbus_sent_by_a_process_is_not_taken_for_a_truncation(tmp_path: pathlib.Path, how: str) -> None:
    """B10: a SIGBUS sent by a process (si_code <= 0; si_addr aliases the sender's pid and uid)
    is not the guard's, even when that field holds an address inside a live mapping: it goes to
    the previous disposition (here the default, death by SIGBUS) and is not swallowed."""
    body = "a = vmcoreinfo.open(image, format='raw', mmap='always')\nv = a.view_phys(0, 4096)\n"
    if how == "kill":
        body += "print('before', flush=True)\nos.kill(os.getpid(), signal.SIGBUS)\n"
    else:
        body += SIGQUEUE_INTO_MAPPING
    body += "print('survived', a.read_phys(0, 4) == bytes(v[:4]), flush=True)\n"
    r = run_child(tmp_path, body)
    assert "before" in r.stdout and "survived" not in r.stdout, (r.stdout, r.stderr[-800:])
    assert r.returncode == -signal.SIGBUS, (r.returncode, r.stderr[-800:])
