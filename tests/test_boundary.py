"""The typed boundary between the Rust core and Python: exceptions (kinds, hints, offsets, built by
keyword, pickling), paths (str, bytes, PathLike, non-UTF-8 names), progress callbacks (one policy:
False cancels, Ctrl-C honoured), argument validation, and result objects that pickle."""

from __future__ import annotations

import os
import pathlib
import pickle
import shutil
import signal
import threading
import time

import pytest
import vmcoreinfo
from helpers import FIXTURES
from vmcoreinfo import _native

ELF = FIXTURES / "x86_64-qemu-elf.core"
NOVI = FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core"

# --- errors --------------------------------------------------------------------------------------


def test_hints_are_machine_readable_and_the_message_keeps_its_words(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "text.txt"
    p.write_text("hello\n")
    with pytest.raises(vmcoreinfo.FormatError) as ei:
        vmcoreinfo.open(p)
    assert ei.value.hint == "use-raw-format"
    assert str(ei.value).endswith(_native.HINTS["use-raw-format"]) and 'format="raw"' in str(ei.value)
    with vmcoreinfo.open(NOVI) as d, pytest.raises(vmcoreinfo.NoVmcoreinfoError) as ni:
        d.vmcoreinfo
    assert ni.value.hint == "scan-for-note"
    assert str(ni.value).endswith(_native.HINTS["scan-for-note"]) and "scan_vmcoreinfo()" in str(ni.value)
    with vmcoreinfo.open(ELF) as d, pytest.raises(vmcoreinfo.AbsentMemoryError) as ai:
        d.read_phys(1 << 60, 1)
    assert ai.value.hint is None
    assert set(_native.HINTS) == {"use-raw-format", "scan-for-note"}


def test_errors_are_built_by_keyword() -> None:
    e = vmcoreinfo.FormatError("m", path="p", offset=3, location="file", hint="use-raw-format")
    assert (e.message, e.path, e.offset, e.rule, e.address, e.location, e.hint) == (
        "m",
        "p",
        3,
        None,
        None,
        "file",
        "use-raw-format",
    )
    with pytest.raises(TypeError):
        vmcoreinfo.FormatError("m", "p", 3)  # type: ignore[misc]


def _attrs(e: BaseException) -> dict[str, object]:
    return {"type": type(e), "str": str(e), "args": e.args, **vars(e)}


def test_exceptions_pickle_with_every_attribute(tmp_path: pathlib.Path) -> None:
    errors: list[BaseException] = []
    with vmcoreinfo.open(NOVI) as d:
        try:
            d.vmcoreinfo
        except vmcoreinfo.Error as e:
            errors.append(e)
        try:
            d.scan_vmcoreinfo(lambda done, total: False)
        except vmcoreinfo.Error as e:
            errors.append(e)
    try:
        vmcoreinfo.open(tmp_path / "missing")
    except OSError as e:
        errors.append(e)
    try:
        vmcoreinfo.open("/proc/self/mem")
    except OSError as e:
        errors.append(e)
    assert [type(e).__name__ for e in errors] == ["NoVmcoreinfoError", "CancelledError", "FileNotFoundError", "OSError"]
    for e in errors:
        back = pickle.loads(pickle.dumps(e))
        assert _attrs(back) == _attrs(e)


def test_os_errors_keep_offset_and_path() -> None:
    # B12: the offset of a failed read was dropped on the way to Python.
    with pytest.raises(OSError) as ei:
        vmcoreinfo.open("/proc/self/mem")  # pread at offset 0 fails with EIO
    e = ei.value
    assert e.errno == 5 and e.filename == "/proc/self/mem"
    assert e.offset == 0 and e.path == "/proc/self/mem"  # type: ignore[attr-defined]
    with pytest.raises(FileNotFoundError) as fi:
        vmcoreinfo.open("/nonexistent/x.core")
    assert fi.value.offset is None and fi.value.path == "/nonexistent/x.core"  # type: ignore[attr-defined]


def test_cancelled_and_internal_errors_are_not_os_errors() -> None:
    assert issubclass(vmcoreinfo.CancelledError, vmcoreinfo.Error)
    assert not issubclass(vmcoreinfo.CancelledError, (OSError, KeyboardInterrupt))
    assert issubclass(vmcoreinfo.InternalError, vmcoreinfo.Error) and issubclass(vmcoreinfo.InternalError, RuntimeError)
    assert not issubclass(vmcoreinfo.InternalError, OSError)


# --- paths ---------------------------------------------------------------------------------------


@pytest.fixture
def odd_name(tmp_path: pathlib.Path) -> bytes:
    """A copy of the ELF fixture under a name that is not UTF-8."""
    p = os.path.join(os.fsencode(tmp_path), b"guest-\xff\xfe.core")
    shutil.copyfile(ELF, p)
    return p


class _BytesPath:
    def __init__(self, p: bytes) -> None:
        self.p = p

    def __fspath__(self) -> bytes:
        return self.p


def test_open_takes_bytes_pathlike_and_non_utf8_names(odd_name: bytes) -> None:
    # B2: bytes and surrogate-escaped names raised TypeError / UnicodeEncodeError.
    want = vmcoreinfo.open(ELF).vmcoreinfo
    with vmcoreinfo.open(os.fsencode(ELF)) as d:
        assert d.path == str(ELF) and d.vmcoreinfo == want
    for p in [odd_name, os.fsdecode(odd_name), pathlib.Path(os.fsdecode(odd_name)), _BytesPath(odd_name)]:
        with vmcoreinfo.open(p) as d:  # type: ignore[arg-type]
            assert d.path == os.fsdecode(odd_name) and os.fsencode(d.path) == odd_name
            assert d.vmcoreinfo == want
    with pytest.raises(TypeError, match="expected a path"):
        vmcoreinfo.open(42)  # type: ignore[arg-type]


def test_errors_name_non_utf8_files_readably(odd_name: bytes) -> None:
    missing = odd_name + b".missing"
    with pytest.raises(FileNotFoundError) as ei:
        vmcoreinfo.open(missing)
    assert ei.value.path == os.fsdecode(missing).encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # type: ignore[attr-defined]


def test_writers_and_identify_many_take_the_same_paths(odd_name: bytes, tmp_path: pathlib.Path) -> None:
    out = os.path.join(os.fsencode(tmp_path), b"out-\xff.core")
    with vmcoreinfo.open(odd_name) as d:
        d.write_elf(out)
        d.write_kdump(_BytesPath(out + b".kdump"))  # type: ignore[arg-type]
    with vmcoreinfo.open(out) as o:
        assert o.vmcoreinfo.osrelease is not None
    ids = list(vmcoreinfo.identify_many([odd_name, os.fsdecode(out), _BytesPath(out + b".kdump")]))
    assert [i.ok for i in ids] == [True, True, True]
    assert ids[0].path == os.fsdecode(odd_name)


# --- progress ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["write_elf", "write_kdump"])
def test_false_cancels_a_write(tmp_path: pathlib.Path, method: str) -> None:
    # B14: writers ignored False.
    calls: list[int] = []

    def stop(done: int, total: int) -> bool:
        calls.append(done)
        return False

    with vmcoreinfo.open(ELF) as d, pytest.raises(vmcoreinfo.CancelledError) as ei:
        getattr(d, method)(tmp_path / "o", progress=stop)
    assert calls and ei.value.path == str(ELF)
    assert os.listdir(tmp_path) == [], "a cancelled write leaves no file"


def test_false_cancels_a_scan_of_any_dump() -> None:
    with vmcoreinfo.open(NOVI) as d, pytest.raises(vmcoreinfo.CancelledError):
        d.scan_vmcoreinfo(lambda done, total: False)
    with vmcoreinfo.open(ELF) as d:
        assert len(d.scan_vmcoreinfo(lambda done, total: None)) == 1, "only False cancels"


def test_false_cancels_identify_many() -> None:
    it = vmcoreinfo.identify_many([ELF] * 10, progress=lambda done, total: False)
    first = next(it)  # the result the callback was told about is still yielded
    assert first.ok
    with pytest.raises(vmcoreinfo.CancelledError):
        next(it)
    assert list(it) == []


@pytest.fixture
def huge_sparse_raw(tmp_path: pathlib.Path) -> pathlib.Path:
    """64 GiB of holes: an implicit scan of it takes seconds."""
    p = tmp_path / "huge.raw"
    with open(p, "wb") as f:
        f.truncate(64 << 30)
    return p


@pytest.mark.parametrize("prop", ["machine", "byteorder", "vmcoreinfo"])
def test_ctrl_c_interrupts_an_implicit_scan(huge_sparse_raw: pathlib.Path, prop: str) -> None:
    # B14: the scan behind these properties never checked signals.
    with vmcoreinfo.open(huge_sparse_raw, format="raw") as d:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        t0 = time.monotonic()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                getattr(d, prop)
        finally:
            timer.cancel()
        assert time.monotonic() - t0 < 3, "Ctrl-C waited for the end of the scan"


# --- identify_many arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"window": 2**62},
        {"window": 2**40},
        {"window": 2**70},
        {"window": -1},
        {"threads": 2**40},
        {"threads": 2**64},
        {"threads": -3},
        {"threads": 1025},
        {"window": (1 << 20) + 1},
    ],
)
def test_absurd_threads_and_window_are_value_errors(kw: dict[str, int]) -> None:
    # B6: window=2**62 was a PanicException, 2**40 an abort, threads unbounded.
    with pytest.raises(ValueError, match="must be between 1 and"):
        vmcoreinfo.identify_many([ELF], **kw)  # type: ignore[arg-type]


def test_the_caps_themselves_are_accepted() -> None:
    it = vmcoreinfo.identify_many([ELF], threads=2, window=1 << 20)
    assert [i.ok for i in it] == [True]
    with pytest.raises(TypeError):
        vmcoreinfo.identify_many([ELF], threads="2")  # type: ignore[arg-type]


# --- Dump.close ------------------------------------------------------------------------------------


def test_close_and_closed_agree() -> None:
    d = vmcoreinfo.open(ELF)
    assert not d.closed
    d.close()
    assert d.closed
    with pytest.raises(vmcoreinfo.ClosedError):
        d.vmcoreinfo
    d.close()
    assert d.closed


# --- result objects --------------------------------------------------------------------------------


def _roundtrip(x: object) -> object:
    back = pickle.loads(pickle.dumps(x))
    assert type(back) is type(x)
    assert back == x, f"{x!r} did not survive pickling"
    return back


def test_result_objects_pickle() -> None:
    with vmcoreinfo.open(ELF) as d:
        vi = d.vmcoreinfo
        back = _roundtrip(vi)
        assert isinstance(back, vmcoreinfo.VmcoreInfo)
        assert (back.offset_in_file, back.note_paddr, back.raw, back.diagnostics) == (
            vi.offset_in_file,
            vi.note_paddr,
            vi.raw,
            vi.diagnostics,
        )
        for n in d.notes():
            b = _roundtrip(n)
            assert isinstance(b, vmcoreinfo.Note) and bytes(b.desc) == bytes(n.desc)
        for x in [d.details(), d.details(pages=True), *vi.diagnostics]:
            _roundtrip(x)
    for i in vmcoreinfo.identify_many([ELF, NOVI, "/nonexistent"]):
        b = _roundtrip(i)
        assert isinstance(b, vmcoreinfo.Identity) and b.as_dict() == i.as_dict()
    with vmcoreinfo.open(FIXTURES / "kdump" / "md-x86_64-zlib-d31.kdump") as k:
        det = k.details(pages=True)
        assert det.pages is not None and _roundtrip(det.pages) == det.pages
        _roundtrip(det)


def test_kernel_view_results_pickle(tmp_path: pathlib.Path) -> None:
    from test_kview_log import log_guest

    p, _ = log_guest(tmp_path, states={4: 0})
    with vmcoreinfo.open(p) as d:
        log = d.kernel_log()
        lay = d.kernel_layout()
    assert log and _roundtrip(log) == log
    assert isinstance(_roundtrip(lay), vmcoreinfo.KernelLayout)
    assert lay.arch == lay["arch"] == "x86_64" and lay.root == lay.as_dict()["root"]


def test_a_scanned_texts_origin_survives_pickling() -> None:
    with vmcoreinfo.open(ELF) as d:
        found = d.scan_vmcoreinfo()
    assert found
    for v in found:
        b = _roundtrip(v)
        assert isinstance(b, vmcoreinfo.VmcoreInfo) and (b.note_paddr, b.offset_in_file) == (v.note_paddr, v.offset_in_file)


def test_write_reports_are_frozen_records(tmp_path: pathlib.Path) -> None:
    with vmcoreinfo.open(ELF) as d:
        r = d.write_elf(tmp_path / "o.core", exclude_zero=True)
        k = d.write_kdump(tmp_path / "o.kdump", "zstd")
    assert isinstance(r, vmcoreinfo.WriteReport) and r.format == "elf" and r.exclude_zero is True
    assert r.compression is None and "compression" not in r and r["exclude_zero"] is True
    assert k.compression == "zstd" and k.flattened is False and "exclude_zero" not in k
    assert r.file_bytes == (tmp_path / "o.core").stat().st_size == r["file_bytes"]
    assert r.path == tmp_path / "o.core"
    with pytest.raises(AttributeError):
        r.pages = 0  # type: ignore[misc]
    for x in (r, k):
        _roundtrip(x)
        assert dict(x) == x.as_dict() and list(x) == x.keys() and len(x) == len(x.keys())
    assert all(isinstance(g, vmcoreinfo.WriteDiagnostic) for g in r.diagnostics)


def test_details_is_a_frozen_record_that_reads_like_its_dict() -> None:
    with vmcoreinfo.open(FIXTURES / "kdump" / "md-x86_64-zlib-d31.kdump") as d:
        det = d.details(pages=True)
    assert isinstance(det, vmcoreinfo.Details)
    assert det.format == det["format"] == "kdump" and det.block_size == det["block_size"]
    assert det.utsname is not None and det.utsname.machine == det["utsname"]["machine"]
    assert det.phnum is None and "phnum" not in det and det.get("phnum", 7) == 7
    assert "memory_declared_bytes" in det, "present even when None, as in the dict"
    d2 = det.as_dict()
    assert d2["phys_base"] == det.phys_base.as_dict() and d2["pages"]["dumped"] == det.pages.dumped  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        det["phnum"]
    with pytest.raises(AttributeError):
        det.format = "elf"  # type: ignore[misc]


def test_vmcoreinfo_equality_follows_mapping_semantics() -> None:
    with vmcoreinfo.open(ELF) as d:
        vi = d.vmcoreinfo
    assert vi == dict(vi) and dict(vi) == vi, "a Mapping equals a dict with the same items"
    assert vi != {**dict(vi), "EXTRA": "1"}
    assert vi.__eq__(1) is NotImplemented and vi.__eq__("text") is NotImplemented
    assert vi != 1 and vi != vi.raw
    assert vi == vmcoreinfo.parse(vi.raw)
