"""kdump-compressed and flattened dumps: fixtures reduced from real QEMU and makedumpfile output
(tests/fixtures/kdump/README.md says how)."""

from __future__ import annotations

import pathlib
import struct

import pytest
import vmcoreinfo
from helpers import FIXTURES, guest_report

K = FIXTURES / "kdump"
X86_TEXT = (FIXTURES / "x86_64-qemu-elf.VMCOREINFO.txt").read_bytes()
ARM_TEXT = (FIXTURES / "arm64-qemu-elf.VMCOREINFO.txt").read_bytes()
X86_NOTE = 0x18DC000
ARM_NOTE = 0x42290000

X86_FILES = [
    ("qemu-x86_64-zlib.kdump", "kdump", ["zlib"]),
    ("qemu-x86_64-zlib.flat", "flattened-kdump", ["zlib"]),
    ("md-x86_64-zlib-d31.kdump", "kdump", ["zlib"]),
    ("md-x86_64-zlib-d31.flat", "flattened-kdump", ["zlib"]),
    ("md-x86_64-lzo-d31.kdump", "kdump", ["lzo"]),
    ("md-x86_64-none-d31.kdump", "kdump", []),
    ("md-x86_64-zstd-d31.kdump", "kdump", ["zstd"]),
    ("md-x86_64-snappy-d31.kdump", "kdump", ["snappy"]),
]


@pytest.mark.parametrize("name,fmt,codecs", X86_FILES)
def test_x86_64_kdump_files_give_the_guests_text(name: str, fmt: str, codecs: list[str]) -> None:
    with vmcoreinfo.open(K / name) as d:
        assert (d.format, d.machine, d.elf_class, d.byteorder) == (fmt, "x86_64", 64, "little")
        vi = d.vmcoreinfo
        assert vi.raw.rstrip(b"\0") == X86_TEXT
        assert vi.phys_base == -432013312
        det = d.details(pages=True)
        assert det["compression"] == codecs
        assert det["block_size"] == 4096
        assert det["pages"]["dumped"] > 0
        assert sum(det["page_codecs"].values()) == det["pages"]["dumped"]


@pytest.mark.parametrize("name", ["qemu-arm64-zlib.kdump", "qemu-arm64-zlib.flat"])
def test_arm64_qemu_kdump_unknown_machine_64k_blocks(name: str) -> None:
    with vmcoreinfo.open(K / name) as d:
        det = d.details()
        assert det["utsname"]["machine"] == "Unknown"
        assert det["block_size"] == 65536
        assert d.machine == "aarch64"  # taken from VMCOREINFO, not the header
        vi = d.vmcoreinfo
        assert vi.raw.rstrip(b"\0") == ARM_TEXT
        assert vi.page_size == 4096


def test_arm32_qemu_kdump_unknown_machine_is_32_bit() -> None:
    # Real QEMU output for a 32-bit ARM guest: 32-bit header layout, machine "Unknown", no text.
    with vmcoreinfo.open(K / "qemu-arm-zlib.kdump") as d:
        det = d.details()
        assert (det["utsname"]["machine"], det["header_layout"]) == ("Unknown", "32-bit")
        assert (d.elf_class, d.byteorder, d.machine) == (32, "little", "unknown")
        assert [n.name for n in d.notes()][:1] == ["CORE"]
        assert d.read_phys(0x40101000, 16) == b"KDUMP32 ARM TEST"
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError):
            d.vmcoreinfo


def test_qemu_phys_base_bug_is_flagged_and_the_text_wins() -> None:
    with vmcoreinfo.open(K / "qemu-x86_64-zlib.kdump") as d:
        pb = d.details()["phys_base"]
        assert pb["key"] == "NUMBER(phys_base)"
        assert pb["vmcoreinfo"] == -432013312
        # QEMU parsed the decimal text "-432013312" as hex.
        assert pb["header"] == (-0x432013312) & (2**64 - 1)
        assert pb["agree"] is False
        assert d.vmcoreinfo.phys_base == -432013312
    with vmcoreinfo.open(K / "md-x86_64-zlib-d31.kdump") as d:
        pb = d.details()["phys_base"]
        assert pb["header"] == -432013312 & (2**64 - 1)
        assert pb["agree"] is True


@pytest.mark.parametrize("name", [n for n, _, _ in X86_FILES])
def test_pages_equal_the_elf_dump_of_the_same_guest(name: str) -> None:
    elf = vmcoreinfo.open(FIXTURES / "x86_64-qemu-elf.core")
    with vmcoreinfo.open(K / name) as d:
        common = 0
        for lo, hi in elf.memory_ranges():
            for page in range(lo, hi, 4096):
                try:
                    data = d.read_phys(page, 4096)
                except vmcoreinfo.AbsentMemoryError:
                    continue
                assert data == elf.read_phys(page, 4096), hex(page)
                common += 1
        assert common >= 1
        # The page holding the VMCOREINFO note at the fw_cfg paddr is in both, and is the note.
        rep = guest_report("x86_64-qemu-elf.guest-report.txt")
        entry = vmcoreinfo.FwCfgEntry.from_bytes(rep["fwcfg_raw"])  # type: ignore[arg-type]
        assert entry.paddr == X86_NOTE
        assert d.read_guest_note(entry).raw.rstrip(b"\0") == X86_TEXT


def test_arm64_kdump_pages_equal_the_elf_dump() -> None:
    elf = vmcoreinfo.open(FIXTURES / "arm64-qemu-elf.core")
    with vmcoreinfo.open(K / "qemu-arm64-zlib.kdump") as d:
        assert d.read_phys(ARM_NOTE, 8192) == elf.read_phys(ARM_NOTE, 8192)
        assert d.read_phys(ARM_NOTE + 12, 11) == b"VMCOREINFO\0"


@pytest.mark.parametrize(
    "flat,kd",
    [
        ("qemu-x86_64-zlib.flat", "qemu-x86_64-zlib.kdump"),
        ("md-x86_64-zlib-d31.flat", "md-x86_64-zlib-d31.kdump"),
        ("qemu-arm64-zlib.flat", "qemu-arm64-zlib.kdump"),
    ],
)
def test_flattened_reads_as_reassembled(flat: str, kd: str) -> None:
    with vmcoreinfo.open(K / flat) as f, vmcoreinfo.open(K / kd) as k:
        assert f.memory_ranges() == k.memory_ranges()
        assert f.details()["flattened_records"] > 0
        for lo, hi in k.memory_ranges():
            assert f.read_phys(lo, hi - lo) == k.read_phys(lo, hi - lo)
        assert [(n.name, n.type, bytes(n.desc)) for n in f.notes()] == [(n.name, n.type, bytes(n.desc)) for n in k.notes()]


def test_excluded_pages_are_absent_not_zeros() -> None:
    with vmcoreinfo.open(K / "md-x86_64-zlib-d31.kdump") as d:
        ranges = d.memory_ranges()
        gap = ranges[0][1]  # first address after the first present range
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_phys(gap - 16, 32)
        assert ei.value.address == gap and ei.value.location == "physical"
        assert ei.value.path == str(K / "md-x86_64-zlib-d31.kdump")


def test_large_read_into_a_callers_buffer() -> None:
    with vmcoreinfo.open(K / "qemu-x86_64-zlib.kdump") as d:
        lo, hi = max(d.memory_ranges(), key=lambda r: r[1] - r[0])
        buf = bytearray(hi - lo)
        d.read_phys_into(lo, buf)
        assert bytes(buf) == d.read_phys(lo, hi - lo)
        assert len(buf) >= 16 * 4096  # the parallel path


def test_cli_verbose_lists_kdump_facts(capsys: pytest.CaptureFixture[str]) -> None:
    from vmcoreinfo.cli import main

    assert main(["show", "-v", str(K / "qemu-x86_64-zlib.flat")]) == 0
    out = capsys.readouterr().out
    assert "flattened-kdump" in out and "zlib" in out and "phys_base" in out and "disagree" in out


def test_machine_learned_from_a_scan_when_the_header_names_none(tmp_path: pathlib.Path) -> None:
    """QEMU's arm64 kdump header says "Unknown"; with its sub-header's VMCOREINFO and note area
    cleared, nothing names the machine until a scan finds the text in memory."""
    data = bytearray((K / "qemu-arm64-zlib.kdump").read_bytes())
    bs = 65536  # QEMU's arm64 kdump block size (the guest's pages are 4 KiB)
    for field in (40, 56):  # size_vmcoreinfo, note_size
        struct.pack_into("<Q", data, bs + field, 0)
    p = tmp_path / "nameless.kdump"
    p.write_bytes(bytes(data))
    with vmcoreinfo.open(p) as d:
        assert (d.machine, d.details()["identity_source"]) == ("unknown", "unknown")
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError):
            _ = d.vmcoreinfo
        found = d.scan_vmcoreinfo()
        assert found and found[0].number("VA_BITS")
        assert (d.machine, d.elf_class, d.details()["identity_source"]) == ("aarch64", 64, "scan")
