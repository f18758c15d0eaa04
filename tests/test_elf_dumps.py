"""Real QEMU / makedumpfile ELF dumps, reduced by tools/reduce_elf.py (real headers and notes)."""

from __future__ import annotations

import pathlib

import pytest
import vmcoreinfo
from helpers import FIXTURES, guest_report

X86 = FIXTURES / "x86_64-qemu-elf.core"
X86_PAGING = FIXTURES / "x86_64-qemu-elf-paging.core"
ARM = FIXTURES / "arm64-qemu-elf.core"
MD_ELF = FIXTURES / "x86_64-makedumpfile-d31.elf"
NO_NOTE = FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core"
I386_PAGING = FIXTURES / "i386-qemu-elf-paging.core"
X86_TEXT = (FIXTURES / "x86_64-qemu-elf.VMCOREINFO.txt").read_bytes()
I386_TEXT = (FIXTURES / "i386-qemu-elf.VMCOREINFO.txt").read_bytes()
ARM_TEXT = (FIXTURES / "arm64-qemu-elf.VMCOREINFO.txt").read_bytes()


@pytest.mark.parametrize("path", [X86, X86_PAGING, MD_ELF])
def test_x86_64_dumps_give_the_guests_text(path: pathlib.Path) -> None:
    with vmcoreinfo.open(path) as d:
        assert (d.format, d.machine, d.elf_class, d.byteorder) == ("elf", "x86_64", 64, "little")
        vi = d.vmcoreinfo
        assert vi.raw == X86_TEXT
        assert vi.osrelease == "6.1.0-48-cloud-amd64"
        assert vi.build_id == "7521662ee1b4feb9f968c04e27b9df05fd7b6de2"
        assert vi.page_size == 4096
        assert vi.kernel_offset == 0x20200000
        assert vi.symbol("init_uts_ns") == 0xFFFFFFFFA2DF9960
        assert vi.offset("uts_namespace", "name") == 0
        assert vi.crashtime is None  # live QEMU dump: no crash


def test_phys_base_is_the_kernels_signed_decimal_not_qemus_hex_reading() -> None:
    vi = vmcoreinfo.open(X86).vmcoreinfo
    assert vi["NUMBER(phys_base)"] == "-432013312"
    assert vi.phys_base == -432013312 == -0x19C00000
    assert vi.number("phys_base") == -432013312
    assert vi.phys_base != int("-432013312", 16)


def test_arm64_dump() -> None:
    with vmcoreinfo.open(ARM) as d:
        assert (d.machine, d.elf_class, d.byteorder) == ("aarch64", 64, "little")
        vi = d.vmcoreinfo
        assert vi.raw == ARM_TEXT
        assert vi.osrelease == "6.1.0-56-cloud-arm64"
        assert vi.number("VA_BITS") == 48
        assert vi.number("kimage_voffset") == 0xFFFFB19F11200000
        assert vi.number("PHYS_OFFSET") == 0xFFFFE88340000000
        assert vi.kernel_offset == 0x319F49400000
        assert vi.phys_base is None  # arm64 has no NUMBER(phys_base); absent is not 0


def test_i386_paging_dump_is_elf64_and_opens() -> None:
    """QEMU writes every i386 PC guest as ELFCLASS64 + EM_386 (the BIOS ROM block ends at 4 GiB);
    with paging=true the PT_LOADs (here reduced to three pages) end far below 4 GiB. Real: a
    Debian 686 guest, 192 MiB; the guest's own report and note text are committed beside it."""
    rep = guest_report("i386-qemu-elf.guest-report.txt")
    raw = I386_PAGING.read_bytes()
    assert (raw[4], int.from_bytes(raw[18:20], "little")) == (2, 3)  # ELFCLASS64, EM_386
    with vmcoreinfo.open(I386_PAGING) as d:
        assert (d.format, d.machine, d.elf_class, d.byteorder) == ("elf", "i386", 64, "little")
        assert max(end for _, end in d.memory_ranges()) < 2**32
        det = d.details()
        assert det["address_bits"] == 32
        assert "ELFCLASS64" in det["class_note"] and "below 4 GiB" in det["class_note"]
        vi = d.vmcoreinfo
        assert vi.raw == I386_TEXT
        assert vi.osrelease == rep["release"] == "6.1.0-50-686"
        assert vi.build_id == "e53bebc4fd9b0992c212d7b0f7f84237a970890d"
        assert "CONFIG_X86_PAE" not in vi
        # 32-bit kernel addresses; _stext is the guest's own (KASLR: not 0xc1000000)
        syms = rep["kallsyms"]
        assert isinstance(syms, dict)
        assert vi.symbol("_stext") == syms["_stext"] == 0xC5000000
        assert all(vi.symbol(s) < 2**32 for s in ("init_uts_ns", "swapper_pg_dir", "mem_map"))
        # lowmem is linear at PAGE_OFFSET 0xc0000000: init_uts_ns.name.release holds OSRELEASE
        uts = vi.symbol("init_uts_ns") - 0xC0000000 + vi.offset("uts_namespace", "name")
        assert d.read_phys(uts, 6) == b"Linux\0"
        assert d.read_phys(uts + 130, 65).rstrip(b"\0") == vi.osrelease.encode()


def test_i386_symbols_past_32_bits_are_refused(tmp_path: pathlib.Path) -> None:
    """Addresses are 32-bit on i386 even inside QEMU's ELF64: a SYMBOL past 4 GiB is an error."""
    raw = I386_PAGING.read_bytes()
    old, wide = b"OFFSET(uts_namespace.name)=0\n", b"SYMBOL(wide)=100000000000000\n"
    assert len(old) == len(wide) and raw.count(old) == 2  # the note, and its page in memory
    p = tmp_path / "i386-wide-symbol.core"
    p.write_bytes(raw.replace(old, wide))
    with vmcoreinfo.open(p) as d, pytest.raises(vmcoreinfo.BitnessError) as ei:
        d.vmcoreinfo
    assert ei.value.rule == "address-width"
    assert "SYMBOL(wide) = 0x100000000000000 does not fit a 32-bit address" in str(ei.value)


@pytest.mark.parametrize(
    "path,report",
    [
        (X86, "x86_64-qemu-elf.guest-report.txt"),
        (X86_PAGING, "x86_64-qemu-elf.guest-report.txt"),
        (ARM, "arm64-qemu-elf.guest-report.txt"),
        (I386_PAGING, "i386-qemu-elf.guest-report.txt"),
    ],
)
def test_read_phys_at_the_fw_cfg_paddr_is_the_note_itself(path: pathlib.Path, report: str) -> None:
    rep = guest_report(report)
    entry = vmcoreinfo.FwCfgEntry.from_bytes(rep["fwcfg_raw"])  # type: ignore[arg-type]
    assert (entry.host_format, entry.guest_format) == (0, vmcoreinfo.FwCfgEntry.FORMAT_ELF)
    assert entry.paddr == rep["sys_addr"]
    assert entry.size == 4132 == rep["sys_size"] + 4132 - 0x1024
    with vmcoreinfo.open(path) as d:
        note = d.read_phys(entry.paddr, entry.size)
        namesz, descsz, ntype = (int.from_bytes(note[i : i + 4], "little") for i in (0, 4, 8))
        assert (namesz, ntype) == (11, 0)
        assert note[12:23] == b"VMCOREINFO\0"
        text = d.vmcoreinfo.raw
        assert note[24 : 24 + descsz].rstrip(b"\0") == text
        # The guest's note buffer is larger than its text; QEMU copies only what the header says.
        assert descsz >= len(text)
        # And reading it exactly as QEMU does gives the same text.
        assert d.read_guest_note(entry).raw.rstrip(b"\0") == text


def test_notes_are_listed_with_offsets_and_zero_copy_descs() -> None:
    with vmcoreinfo.open(X86) as d:
        notes = d.notes()
        assert [n.name for n in notes] == ["CORE", "QEMU", "VMCOREINFO"]
        assert notes[0].type == 1  # NT_PRSTATUS
        desc = notes[-1].desc
        assert isinstance(desc, memoryview) and desc.readonly
        assert bytes(desc) == X86_TEXT
        raw = X86.read_bytes()
        for n in notes:
            assert raw[n.offset + 12 : n.offset + 12 + len(n.name)] == n.name.encode()
        assert d.vmcoreinfo.offset_in_file == raw.index(X86_TEXT)


def test_memory_ranges_and_absent_memory() -> None:
    with vmcoreinfo.open(X86) as d:
        ranges = d.memory_ranges()
        assert ranges == [(0, 0x1000), (0x1000000, 0x1001000), (0x18DC000, 0x18DE000)]
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_phys(0x18DDFF0, 0x20)
        assert (ei.value.address, ei.value.offset, ei.value.location) == (0x18DE000, None, "physical")
        assert ei.value.path == str(X86)
        buf = bytearray(16)
        d.read_phys_into(0x18DC000, buf)
        assert bytes(buf) == d.read_phys(0x18DC000, 16)


def test_no_vmcoreinfo_error_says_how_to_get_one() -> None:
    with vmcoreinfo.open(NO_NOTE) as d:
        assert [n.name for n in d.notes()] == ["CORE", "QEMU"]
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError) as ei:
            d.vmcoreinfo
    msg = str(ei.value)
    assert "-device vmcoreinfo" in msg and "qemu_fw_cfg" in msg and str(NO_NOTE) in msg
    assert isinstance(ei.value, LookupError)


def test_closed_dump_and_pathlike() -> None:
    d = vmcoreinfo.open(pathlib.Path(X86))
    assert d.path == str(X86)
    d.close()
    d.close()
    assert d.closed
    with pytest.raises(vmcoreinfo.ClosedError):
        d.vmcoreinfo


def test_os_errors_are_builtin() -> None:
    with pytest.raises(FileNotFoundError) as ei:
        vmcoreinfo.open("/nonexistent/dump.core")
    assert ei.value.filename == "/nonexistent/dump.core"
    with pytest.raises(IsADirectoryError):
        vmcoreinfo.open(FIXTURES)


def test_sample_ships_in_the_package() -> None:
    assert pathlib.Path(vmcoreinfo.sample_path()).read_bytes() == X86.read_bytes()


def test_closed_dump_refuses_even_a_cached_vmcoreinfo() -> None:
    d = vmcoreinfo.open(X86)
    assert d.vmcoreinfo.osrelease
    d.close()
    with pytest.raises(vmcoreinfo.ClosedError):
        d.vmcoreinfo


def test_no_vmcoreinfo_error_names_where_it_looked() -> None:
    with vmcoreinfo.open(NO_NOTE) as d:
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError) as ei:
            d.vmcoreinfo
        assert ei.value.offset == d.notes()[0].offset  # the PT_NOTE segment's start


def test_huge_read_phys_is_refused_before_allocating() -> None:
    """read_phys checks the range, then a bound, before it allocates: 2 GiB or 1 TiB from 0 fail
    at once at the first absent address (not a MemoryError); a held range over MAX_READ_PHYS is a
    LimitError."""
    import time

    with vmcoreinfo.open(FIXTURES / "x86_64-qemu-elf.core") as d:
        t0 = time.perf_counter()
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_phys(0, 1 << 31)
        assert time.perf_counter() - t0 < 0.5
        assert (ei.value.address, ei.value.location) == (0x1000, "physical")
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_phys(0, 1 << 40)
        assert ei.value.address == 0x1000
        buf = bytearray(1 << 21)  # read_phys_into checks the range before reading too
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_phys_into(0, buf)
        assert ei.value.address == 0x1000 and buf == bytearray(1 << 21)


def test_read_phys_of_a_held_range_over_the_bound_is_a_limit_error(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "big.raw"
    with open(p, "wb") as f:  # sparse: 1 GiB + 1 page of zeros as a raw image
        f.truncate(vmcoreinfo.MAX_READ_PHYS + 4096)
    with vmcoreinfo.open(p, format="raw") as d:
        with pytest.raises(vmcoreinfo.LimitError):
            d.read_phys(0, vmcoreinfo.MAX_READ_PHYS + 1)
        assert d.read_phys(vmcoreinfo.MAX_READ_PHYS, 16) == bytes(16)
