"""LiME and raw physical images, and the VMCOREINFO scan, on real memory.

The LiME fixtures (tests/fixtures/*-qemu.lime) hold real pages of the reduced real QEMU dumps,
written by tools/make_lime_fixture.py; raw images are built here, in tmp_path, from the same
real pages placed at their physical addresses in a sparse file.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import vmcoreinfo
from helpers import FIXTURES

X86_ELF = FIXTURES / "x86_64-qemu-elf.core"
X86_NOVI = FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core"
X86_LIME = FIXTURES / "x86_64-qemu.lime"
ARM_LIME = FIXTURES / "arm64-qemu.lime"
X86_TEXT = (FIXTURES / "x86_64-qemu-elf.VMCOREINFO.txt").read_bytes()
ARM_TEXT = (FIXTURES / "arm64-qemu-elf.VMCOREINFO.txt").read_bytes()
X86_NOTE = 0x18DC000
ARM_NOTE = 0x42290000
MAGIC = 0x4C694D45
MiB = 1 << 20


def real_pages(path: Path = X86_ELF) -> list[tuple[int, bytes]]:
    """Every range of real memory a reduced real dump holds, as (address, bytes)."""
    with vmcoreinfo.open(path, elf_tails="absent") as d:
        return [(s, d.read_phys(s, e - s)) for s, e in d.memory_ranges()]


def write_raw(path: Path, pages: list[tuple[int, bytes]], size: int | None = None) -> Path:
    """A sparse raw image: each (address, bytes) at its physical address."""
    with open(path, "wb") as f:
        for addr, data in pages:
            f.seek(addr)
            f.write(data)
        end = max(a + len(d) for a, d in pages) if pages else 0
        f.truncate(size if size is not None else end)
    return path


def lime_header(s: int, e: int, magic: int = MAGIC, version: int = 1) -> bytes:
    return struct.pack("<IIQQ8x", magic, version, s, e)


# --- LiME ---------------------------------------------------------------------------------------


def test_lime_x86_64_vmcoreinfo_equals_the_real_text() -> None:
    with vmcoreinfo.open(X86_LIME) as d:
        assert d.format == "lime"
        assert d.notes() == []
        vi = d.vmcoreinfo
        assert vi.raw == X86_TEXT
        assert vi.note_paddr == X86_NOTE
        assert vi.osrelease == "6.1.0-48-cloud-amd64"
        assert (d.machine, d.elf_class, d.byteorder) == ("x86_64", None, "little")  # no ELF involved
        assert (d.details()["identity_source"], d.details()["address_bits"]) == ("scan", 64)
        # The text's file offset is where the text is in the LiME file.
        assert vi.offset_in_file is not None
        assert X86_LIME.read_bytes()[vi.offset_in_file : vi.offset_in_file + len(X86_TEXT)] == X86_TEXT
        assert d.details()["phys_base"]["vmcoreinfo"] == vi.phys_base == -432013312


def test_lime_memory_equals_the_source_dump() -> None:
    src = real_pages()
    with vmcoreinfo.open(X86_LIME) as d:
        assert d.memory_ranges() == [(a, a + len(b)) for a, b in src]
        for addr, data in src:
            assert d.read_phys(addr, len(data)) == data
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_phys(0x1000 - 8, 16)
        assert ei.value.address == 0x1000
        assert d.details()["lime_ranges"] == 3


def test_lime_arm64() -> None:
    with vmcoreinfo.open(ARM_LIME) as d:
        vi = d.vmcoreinfo
        assert vi.raw == ARM_TEXT
        assert vi.note_paddr == ARM_NOTE
        assert d.machine == "aarch64"


def test_lime_fixture_is_what_the_tool_writes(tmp_path: Path) -> None:
    tool = Path(__file__).resolve().parent.parent / "tools" / "make_lime_fixture.py"
    out = tmp_path / "x.lime"
    subprocess.run([sys.executable, str(tool), str(X86_ELF), str(out)], check=True, capture_output=True)
    assert out.read_bytes() == X86_LIME.read_bytes()


# --- raw ----------------------------------------------------------------------------------------


@pytest.fixture
def x86_raw(tmp_path: Path) -> Path:
    return write_raw(tmp_path / "x86_64.raw", real_pages())


def test_raw_is_never_detected_and_must_be_asked_for(x86_raw: Path) -> None:
    with pytest.raises(vmcoreinfo.FormatError, match="raw"):
        vmcoreinfo.open(x86_raw)
    with vmcoreinfo.open(x86_raw, format="raw") as d:
        assert d.format == "raw"
        assert d.memory_ranges() == [(0, X86_NOTE + 0x2000)]
        vi = d.vmcoreinfo
        assert vi.raw == X86_TEXT
        assert vi.note_paddr == X86_NOTE
        assert vi.offset_in_file == X86_NOTE + 24
        assert d.machine == "x86_64"
        assert d.read_phys(0x1000000, 4096) == dict(real_pages())[0x1000000]
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_phys(X86_NOTE + 0x2000 - 4, 8)
        assert ei.value.address == X86_NOTE + 0x2000


def test_forced_formats() -> None:
    with pytest.raises(vmcoreinfo.FormatError, match="lime"):
        vmcoreinfo.open(X86_LIME, format="elf")
    with pytest.raises(vmcoreinfo.FormatError, match="elf"):
        vmcoreinfo.open(X86_ELF, format="lime")
    with pytest.raises(vmcoreinfo.FormatError):
        vmcoreinfo.open(X86_ELF, format="kdump")
    with vmcoreinfo.open(FIXTURES / "kdump" / "qemu-x86_64-zlib.flat", format="kdump") as d:
        assert d.format == "flattened-kdump"
    with vmcoreinfo.open(X86_ELF, format="elf") as d:
        assert d.vmcoreinfo.raw == X86_TEXT
    with vmcoreinfo.open(X86_LIME, format="raw") as d:  # any file can be read as raw
        assert d.format == "raw"
    with pytest.raises(ValueError, match="format"):
        vmcoreinfo.open(X86_ELF, format="vmss")  # type: ignore[arg-type]


def test_raw_without_a_note_says_a_scan_ran(tmp_path: Path) -> None:
    p = write_raw(tmp_path / "zeros.raw", [], size=8 * MiB)
    with vmcoreinfo.open(p, format="raw") as d:
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError, match="scan"):
            d.vmcoreinfo
        assert d.machine == "unknown"
        assert d.scan_vmcoreinfo() == []


def test_several_notes_are_all_listed_and_the_first_is_used(tmp_path: Path) -> None:
    pages = real_pages()
    note = dict(pages)[X86_NOTE]
    p = write_raw(tmp_path / "two.raw", pages + [(0x2000000, note)])
    with vmcoreinfo.open(p, format="raw") as d:
        vi = d.vmcoreinfo
        assert vi.note_paddr == X86_NOTE
        diags = [x for x in vi.diagnostics if x.kind == "multiple-candidates"]
        assert len(diags) == 1 and "0x2000000" in diags[0].message
        assert "all with the same text" in diags[0].message
        found = d.scan_vmcoreinfo()
        assert [v.note_paddr for v in found] == [X86_NOTE, 0x2000000]
        assert all(v.raw == X86_TEXT for v in found)
    # A copy below the real note whose text differs: the first is still used, and the
    # diagnostic says the texts differ.
    other = note.replace(b"OSRELEASE=6.1.0-48", b"OSRELEASE=6.1.0-47")
    p = write_raw(tmp_path / "differ.raw", pages + [(0x800000, other)])
    with vmcoreinfo.open(p, format="raw") as d:
        vi = d.vmcoreinfo
        assert vi.note_paddr == 0x800000 and vi.osrelease == "6.1.0-47-cloud-amd64"
        (diag,) = [x for x in vi.diagnostics if x.kind == "multiple-candidates"]
        assert "2 DIFFERENT texts" in diag.message
        assert d.details()["scan"]["distinct_texts"] == 2


# --- the scan on ELF and kdump dumps ------------------------------------------------------------


def test_scan_finds_the_note_in_the_elf_fixture() -> None:
    with vmcoreinfo.open(X86_ELF) as d:
        found = d.scan_vmcoreinfo()
        assert [v.note_paddr for v in found] == [X86_NOTE]
        assert found[0].raw == d.vmcoreinfo.raw == X86_TEXT


def test_scan_is_the_fallback_when_the_elf_has_no_note() -> None:
    with vmcoreinfo.open(X86_NOVI) as d:
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError, match="scan_vmcoreinfo"):
            d.vmcoreinfo
        found = d.scan_vmcoreinfo()
        assert [v.note_paddr for v in found] == [X86_NOTE]
        assert found[0].raw == X86_TEXT
        # Scanning does not turn an ELF's missing note into a found one.
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError):
            d.vmcoreinfo


@pytest.mark.parametrize("name", ["qemu-x86_64-zlib.kdump", "qemu-x86_64-zlib.flat", "md-x86_64-lzo-d31.kdump"])
def test_scan_reads_through_kdump_pages(name: str) -> None:
    with vmcoreinfo.open(FIXTURES / "kdump" / name) as d:
        found = d.scan_vmcoreinfo()
        assert [v.note_paddr for v in found] == [X86_NOTE]
        assert found[0].raw == d.vmcoreinfo.raw


# --- progress and cancellation ------------------------------------------------------------------


@pytest.fixture
def big_raw(tmp_path: Path) -> Path:
    """200 MiB sparse raw image with the real note page at 150 MiB."""
    note = dict(real_pages())[X86_NOTE]
    return write_raw(tmp_path / "big.raw", [(150 * MiB, note)], size=200 * MiB)


def test_progress_is_called_at_most_every_100_ms_and_at_the_end(big_raw: Path) -> None:
    # The one progress policy (scans, writes, batches): the first report at once, then at most
    # every 100 ms, and the end (it was every 64 MiB for scans before the policies were unified).
    calls: list[tuple[int, int, float]] = []
    with vmcoreinfo.open(big_raw, format="raw") as d:
        found = d.scan_vmcoreinfo(lambda done, total: calls.append((done, total, time.monotonic())))
    assert [v.note_paddr for v in found] == [150 * MiB]
    assert calls[-1][:2] == (200 * MiB, 200 * MiB)
    assert all(t == 200 * MiB for _, t, _ in calls)
    assert calls[0][0] < 200 * MiB or len(calls) == 1
    times = [t for _, _, t in calls[:-1]]
    assert all(b - a >= 0.099 for a, b in zip(times, times[1:]))
    assert len(calls) >= 2


def test_returning_false_cancels(big_raw: Path) -> None:
    calls: list[int] = []

    def stop(done: int, total: int) -> bool:
        calls.append(done)
        return False

    with vmcoreinfo.open(big_raw, format="raw") as d:
        with pytest.raises(vmcoreinfo.CancelledError) as ei:  # cancelled before reaching 150 MiB
            d.scan_vmcoreinfo(stop)
        assert ei.value.path == str(big_raw) and not isinstance(ei.value, OSError)
        assert len(calls) == 1 and calls[0] < 150 * MiB
        # A cancelled scan is not kept: vmcoreinfo runs a full one.
        assert d.vmcoreinfo.note_paddr == 150 * MiB
        assert d.vmcoreinfo.raw == X86_TEXT


def test_callback_exceptions_propagate(big_raw: Path) -> None:
    def boom(done: int, total: int) -> None:
        raise KeyError("stop")

    with vmcoreinfo.open(big_raw, format="raw") as d:
        with pytest.raises(KeyError):
            d.scan_vmcoreinfo(boom)


# --- hostile LiME headers -----------------------------------------------------------------------


def _lime_err(tmp_path: Path, data: bytes) -> vmcoreinfo.Error:
    p = tmp_path / "bad.lime"
    p.write_bytes(data)
    with pytest.raises(vmcoreinfo.Error) as ei:
        vmcoreinfo.open(p)
    assert ei.value.path == str(p)
    return ei.value


GOOD = X86_LIME.read_bytes()


@pytest.mark.parametrize(
    "tail, cls, why",
    [
        (lime_header(0x5000000, 0x5000FFF, magic=0x12345678) + bytes(4096), vmcoreinfo.FormatError, "bad magic"),
        (lime_header(0x5000000, 0x4FFFFFF) + bytes(16), vmcoreinfo.FormatError, "below start"),
        (lime_header(0x5000000, 0x5000FFF) + bytes(100), vmcoreinfo.TruncatedError, "past the end"),
        (lime_header(0x5000000, 0x5000000 + (1 << 62)), vmcoreinfo.TruncatedError, "past the end"),
        (lime_header(0, (1 << 64) - 1), vmcoreinfo.FormatError, "wraps"),
        (lime_header(0x5000000, 0x5000FFF, version=2) + bytes(4096), vmcoreinfo.UnsupportedFormatError, "version"),
        (lime_header(0x5000000, 0x5000FFF, magic=0x4C4D5641, version=2) + bytes(10), vmcoreinfo.UnsupportedFormatError, "AVML"),
        (lime_header(0x18DD000, 0x18DDFFF) + bytes(4096), vmcoreinfo.FormatError, "overlaps"),
        (lime_header(0x5000000, 0x5000FFF)[:20], vmcoreinfo.TruncatedError, "cut short"),
    ],
    ids=[
        "bad-magic-mid-file",
        "end-below-start",
        "data-past-eof",
        "huge-range",
        "2^64-wrap",
        "version",
        "avml",
        "overlap",
        "short-header",
    ],
)
def test_hostile_lime_headers_are_typed_errors_at_the_header(tmp_path: Path, tail: bytes, cls: type, why: str) -> None:
    e = _lime_err(tmp_path, GOOD + tail)
    assert type(e) is cls, e
    assert e.offset == len(GOOD), e
    assert why in str(e)


def test_lime_range_count_is_capped(tmp_path: Path) -> None:
    one = lime_header(0, 0) + b"\0"
    data = b"".join(lime_header(2 * i, 2 * i) + b"\0" for i in range(1 << 16)) + lime_header(1 << 20, 1 << 20) + b"\0"
    e = _lime_err(tmp_path, data)
    assert isinstance(e, vmcoreinfo.LimitError)
    assert e.offset == (1 << 16) * len(one)


# --- command line -------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmcoreinfo", *args], text=True, capture_output=True)


def test_cli_show_raw_and_scan(x86_raw: Path, tmp_path: Path) -> None:
    cp = run_cli("show", "--format", "raw", str(x86_raw))
    assert cp.returncode == 0, cp.stderr
    assert "6.1.0-48-cloud-amd64" in cp.stdout and "0x18dc000" in cp.stdout
    cp = run_cli("show", str(x86_raw))
    assert cp.returncode == 1 and "raw" in cp.stderr
    cp = run_cli("scan", str(X86_NOVI))
    assert cp.returncode == 0, cp.stderr
    assert "0x00000000018dc000" in cp.stdout and "1 VMCOREINFO note" in cp.stdout
    cp = run_cli("scan", "--json", str(X86_LIME))
    assert cp.returncode == 0 and '"note_paddr": 26066944' in cp.stdout
    zeros = write_raw(tmp_path / "z.raw", [], size=MiB)
    cp = run_cli("scan", "--format", "raw", str(zeros))
    assert cp.returncode == 3 and "0 VMCOREINFO notes" in cp.stdout  # 3: no VMCOREINFO


def test_a_failing_scan_is_an_error_not_an_unknown_machine(tmp_path: Path) -> None:
    """A memory image's machine comes from its scan: when the scan fails (here: the file shrank
    under the mapping it reads through), `machine` raises instead of saying "unknown"."""
    p = tmp_path / "shrinks.lime"
    p.write_bytes(X86_LIME.read_bytes())
    with vmcoreinfo.open(p, mmap="always") as d:
        with open(p, "r+b") as f:
            f.truncate(64)
        with pytest.raises(vmcoreinfo.TruncatedError):
            _ = d.machine
        with pytest.raises(vmcoreinfo.TruncatedError):
            d.details()
