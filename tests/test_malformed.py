"""Malformed dumps derived from the real fixtures: truncations, lying sizes, hostile layouts.

Every case goes through the whole API (open, notes, vmcoreinfo, details, memory ranges, reads)
and must end in a typed ``vmcoreinfo.Error`` naming the file (``.path``) and a byte (``.offset``:
a file offset, or for ``AbsentMemoryError`` the absent physical address), or in a documented
success. Never a crash, a hang or a huge allocation:

* time: every case finishes in under ``CASE_SECONDS`` (1 s) of wall time;
* memory: the process's peak RSS stays under ``RSS_BOUND`` (512 MiB) after every case, and
  ``test_lying_sizes_do_not_allocate`` runs every lying-size case (files that claim terabytes)
  in a fresh interpreter whose peak RSS may grow by at most ``RSS_GROWTH`` (64 MiB) over its
  baseline.

The fixtures are real QEMU/makedumpfile output reduced by tools/reduce_elf.py and
tools/reduce_kdump.py; hand-picked ELF header cases close the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import resource
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator

import pytest
import vmcoreinfo

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers import FIXTURES  # noqa: E402

KD = FIXTURES / "kdump"
CASE_SECONDS = 1.0
RSS_BOUND = 512 << 20
RSS_GROWTH = 64 << 20
MiB = 1 << 20


# --------------------------------------------------------------------------- the checks


def check_error(e: vmcoreinfo.Error, path: pathlib.Path) -> None:
    """Every error names the file and the byte it concerns."""
    assert e.path == str(path), f"{type(e).__name__} without the file: {e}"
    if isinstance(e, vmcoreinfo.NoVmcoreinfoError) and e.offset is None:
        return  # "no VMCOREINFO note anywhere" concerns no one byte
    where = e.address if e.location in ("physical", "virtual") else e.offset
    assert where is not None and e.location is not None, f"{type(e).__name__} without a location: {e}"
    assert isinstance(where, int) and where >= 0


@dataclasses.dataclass
class Outcome:
    """What each step of `exercise` gave: "ok" or the exception class name (and its offset)."""

    steps: dict[str, str] = dataclasses.field(default_factory=dict)
    errors: dict[str, vmcoreinfo.Error] = dataclasses.field(default_factory=dict)

    def __getitem__(self, step: str) -> str:
        return self.steps.get(step, "not-run")

    @property
    def opened(self) -> bool:
        return self.steps.get("open") == "ok"


def exercise(path: pathlib.Path, **open_kw: object) -> Outcome:
    """Use every part of the API on `path`, recording each step's outcome."""
    out = Outcome()

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        try:
            yield
            out.steps[name] = "ok"
        except vmcoreinfo.Error as e:
            check_error(e, path)
            out.steps[name] = type(e).__name__
            out.errors[name] = e

    d = None
    with step("open"):
        d = vmcoreinfo.open(path, **open_kw)  # type: ignore[arg-type]
    if d is None:
        return out
    with d:
        assert d.format in ("elf", "kdump", "flattened-kdump")
        _ = (d.machine, d.elf_class, d.byteorder, repr(d))
        with step("notes"):
            for n in d.notes():
                _ = (n.name, n.type, n.offset, bytes(n.desc[:16]))
        with step("vmcoreinfo"):
            vi = d.vmcoreinfo
            _ = (vi.osrelease, len(vi), vi.diagnostics, vi.raw[:16])
        with step("accessors"):
            vi = d.vmcoreinfo
            _ = (vi.page_size, vi.kernel_offset, vi.phys_base, vi.symbol("init_uts_ns"), vi.offset("uts_namespace", "name"))
        with step("details"):
            d.details(pages=True)
        ranges: list[tuple[int, int]] = []
        with step("ranges"):
            ranges = d.memory_ranges()
        for i, (start, end) in enumerate(ranges[:8]):
            assert start < end
            with step(f"read{i}"):
                d.read_phys(start, min(end - start, 64 * 1024))
            with step(f"last{i}"):
                d.read_phys(end - 1, 1)
        with step("read-top"):
            d.read_phys(2**64 - 4096, 4096)
        # The kernel view over whatever the case left: a value or a typed error naming the file
        # and the byte, the address, or (for a key the text lacks) the key.
        try:
            vi = d.vmcoreinfo
            addr = (vi.symbol("init_uts_ns") or 0) + (vi.offset("uts_namespace", "name") or 0) + 130
            d.kernel_layout()
            d.read_virt(addr, 65)
            out.steps["kview"] = "ok"
        except vmcoreinfo.Error as e:
            assert e.path == str(path), f"{type(e).__name__} without the file: {e}"
            assert (
                e.offset is not None
                or e.address is not None
                or isinstance(e, (vmcoreinfo.UnsupportedFormatError, vmcoreinfo.NoVmcoreinfoError))
            ), f"{type(e).__name__} names no place: {e}"
            out.steps["kview"] = type(e).__name__
    return out


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """The time and memory bound every case must meet."""
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    assert dt < CASE_SECONDS, f"case took {dt:.2f} s"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < RSS_BOUND, f"peak RSS {peak >> 20} MiB"


def run_case(tmp_path: pathlib.Path, data: bytes, name: str = "bad", **open_kw: object) -> tuple[pathlib.Path, Outcome]:
    p = tmp_path / name
    p.write_bytes(data)
    with bounded():
        o = exercise(p, **open_kw)
    return p, o


def patch(data: bytes, off: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


# --------------------------------------------------------------------------- fixture layouts


@dataclasses.dataclass
class KdumpLayout:
    """Where things are in a (little-endian, 64-bit-layout: every fixture is) kdump file."""

    data: bytes
    bs: int
    sub_blocks: int
    bitmap_blocks: int
    vmci: tuple[int, int]
    note: tuple[int, int]
    bm_off: int
    desc_off: int
    descs: list[tuple[int, int, int, int]]  # (offset, size, flags, page_flags)

    @classmethod
    def of(cls, data: bytes) -> KdumpLayout:
        _, bs, sub, bmb = struct.unpack_from("<IIII", data, 424)
        ov, sv, on, sn = struct.unpack_from("<QQQQ", data, bs + 32)
        bm_off = bs * (1 + sub)
        half = bs * bmb // 2
        ndesc = sum(bin(x).count("1") for x in data[bm_off + half : bm_off + 2 * half])
        desc_off = bm_off + 2 * half
        descs = [struct.unpack_from("<qIIQ", data, desc_off + 24 * i) for i in range(ndesc)]
        return cls(data, bs, sub, bmb, (ov, sv), (on, sn), bm_off, desc_off, descs)

    @property
    def desc_end(self) -> int:
        return self.desc_off + 24 * len(self.descs)

    def boundaries(self) -> list[int]:
        """Every header, sub-header, bitmap, descriptor and page-data boundary (and a byte in)."""
        bs = self.bs
        cuts = [0, 1, 8, 12, 402, 424, 428, 432, 436, 440, 444, 464, bs - 1, bs]
        cuts += [bs + o for o in (8, 16, 32, 40, 48, 56, 64, 80, 96, 104)]
        for off, size in (self.vmci, self.note):
            cuts += [off, off + 12, off + size // 2, off + size - 1, off + size]
        half = bs * self.bitmap_blocks // 2
        cuts += [self.bm_off, self.bm_off + 1, self.bm_off + half - 1, self.bm_off + half, self.bm_off + 2 * half - 1]
        for i in range(len(self.descs) + 1):
            cuts += [self.desc_off + 24 * i, self.desc_off + 24 * i + 8]
        for off, size, _, _ in self.descs:
            cuts += [off, off + size // 2, off + size]
        cuts.append(len(self.data) - 1)
        return sorted({c for c in cuts if 0 <= c < len(self.data)})


def flat_records(data: bytes) -> list[tuple[int, int, int]]:
    """(header file offset, record offset, size) of every record; the end marker last."""
    out = []
    pos = 4096
    while pos + 16 <= len(data):
        off, size = struct.unpack_from(">qq", data, pos)
        out.append((pos, off, size))
        if off == -1 and size == -1:
            break
        pos += 16 + size
    return out


def flatten(records: list[tuple[int, bytes]], end_marker: bool = True) -> bytes:
    out = bytearray(b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1))
    out += bytes(4096 - len(out))
    for off, d in records:
        out += struct.pack(">qq", off, len(d)) + d
    if end_marker:
        out += struct.pack(">qq", -1, -1)
    return bytes(out)


def record_list(data: bytes) -> list[tuple[int, bytes]]:
    return [(off, data[h + 16 : h + 16 + size]) for h, off, size in flat_records(data) if off != -1]


# The layout helpers here read the 64-bit layout, and the cases expect a VMCOREINFO text: the
# 32-bit ARM fixture (neither) is covered by tests/test_kdump.py and src/kdump/tests.rs.
KDUMPS = sorted(p.name for p in KD.glob("*.kdump") if p.name != "qemu-arm-zlib.kdump")
FLATS = sorted(p.name for p in KD.glob("*.flat"))
ELF = (FIXTURES / "x86_64-qemu-elf.core").read_bytes()
ELF_PHOFF = 0xC0
ELF_NOTE_OFF = 0x1D8  # the PT_NOTE segment: CORE, QEMU, VMCOREINFO notes
QKD = (KD / "qemu-x86_64-zlib.kdump").read_bytes()
QKD_L = KdumpLayout.of(QKD)
QFLAT = (KD / "qemu-x86_64-zlib.flat").read_bytes()
REAL_TEXT = (FIXTURES / "x86_64-qemu-elf.VMCOREINFO.txt").read_bytes()


def reference(path: pathlib.Path) -> dict[int, bytes]:
    """First page of every range of an intact fixture (for comparing what a damaged file gives)."""
    with vmcoreinfo.open(path) as d:
        return {s: d.read_phys(s, min(e - s, 4096)) for s, e in d.memory_ranges()}


# --------------------------------------------------------------------------- truncation


def kdump_cuts() -> list[tuple[str, int]]:
    return [(name, c) for name in KDUMPS for c in KdumpLayout.of((KD / name).read_bytes()).boundaries()]


@pytest.mark.parametrize("name,cut", kdump_cuts(), ids=lambda x: str(x))
def test_kdump_truncated_at_every_boundary(tmp_path: pathlib.Path, name: str, cut: int) -> None:
    data = (KD / name).read_bytes()
    lay = KdumpLayout.of(data)
    p, o = run_case(tmp_path, data[:cut], name)
    if cut < 8:
        assert o["open"] == "FormatError"  # no signature: not a dump
    elif cut < lay.desc_off:
        # Opening reads the header blocks and checks that the bitmaps are in the file.
        assert o["open"] == "TruncatedError", o.steps
        assert o.errors["open"].offset <= max(cut, lay.desc_off)  # type: ignore[operator]
    elif cut < lay.desc_end:
        # The bitmaps are read on first use of the pages: the text reads, the page index
        # reports the cut descriptor table.
        assert o.opened and o["vmcoreinfo"] == "ok", o.steps
        assert o["ranges"] == "TruncatedError", o.steps
        assert o.errors["ranges"].offset == lay.desc_off, o.steps
    else:
        # Headers intact: the text (in the sub-header) reads; pages cut off are TruncatedError.
        assert o.opened and o["vmcoreinfo"] == "ok", o.steps
        for step, res in o.steps.items():
            if step.startswith("read") and step != "read-top":
                assert res in ("ok", "TruncatedError"), (step, res)
        assert o["read-top"] == "AbsentMemoryError"


def flat_cuts() -> list[tuple[str, int]]:
    out = []
    for name in FLATS:
        data = (KD / name).read_bytes()
        cuts = {0, 12, 16, 24, 31, 32, 4095, 4096}
        for h, _off, size in flat_records(data):
            cuts |= {h, h + 8, h + 15, h + 16}
            if size > 0:
                cuts |= {h + 16 + size // 2, h + 16 + size - 1}
        out += [(name, c) for c in sorted(cuts) if c < len(data)]
    return out


@pytest.mark.parametrize("name,cut", flat_cuts(), ids=lambda x: str(x))
def test_flattened_truncated_at_every_record_boundary(tmp_path: pathlib.Path, name: str, cut: int) -> None:
    data = (KD / name).read_bytes()
    headers = [h for h, _, _ in flat_records(data)]
    p, o = run_case(tmp_path, data[:cut], name)
    if cut < 32:
        assert o["open"] == "FormatError"  # no flattened signature, no KDUMP signature
        return
    if cut < 4096:
        assert o["open"] == "TruncatedError"
        return
    if cut in headers:
        # Ends at a record boundary without the end marker: the records seen are indexed
        # (documented); what the kdump layer then lacks is a typed error or absent memory.
        if o.opened:
            with vmcoreinfo.open(p) as d:
                assert d.details()["flattened_end_marker"] is False
        return
    # Inside a record header or its data: TruncatedError at that record's header.
    h = max(x for x in headers if x < cut)
    assert o["open"] == "TruncatedError", o.steps
    assert o.errors["open"].offset == h


# --------------------------------------------------------------------------- lying sizes

# Values near 2^32 and 2^64 for 32- and 64-bit fields.
U32_LIES = [2**31, 2**32 - 4096, 2**32 - 1, 0x100001]
U64_LIES = [2**32 - 1, 2**32, 2**32 + 4096, 2**40, 2**63, 2**64 - 4096, 2**64 - 1]

ELF_VMCI_NOTE = ELF_NOTE_OFF + 12 + 8 + 336 + 12 + 8 + 440  # CORE note (12+8+336), QEMU note (12+8+440)
ELF_PH_NOTE, ELF_PH_LOAD = ELF_PHOFF, ELF_PHOFF + 56  # PT_NOTE, then the first PT_LOAD


def lying_cases() -> list[tuple[str, str, bytes]]:
    """(id, kind, data) for every lying-size case; kind is "elf", "kdump" or "flat"."""
    cases: list[tuple[str, str, bytes]] = []
    # ELF: note sizes of every note (CORE first, QEMU second, VMCOREINFO last).
    for which, at in (("core", ELF_NOTE_OFF), ("qemu", ELF_NOTE_OFF + 356), ("vmcoreinfo", ELF_VMCI_NOTE)):
        for field, off in (("namesz", 0), ("descsz", 4)):
            for v in U32_LIES:
                cases.append((f"elf-{which}-{field}-{v:#x}", "elf", patch(ELF, at + off, "<I", v)))
    for v in U64_LIES:
        cases.append((f"elf-e_phoff-{v:#x}", "elf", patch(ELF, 0x20, "<Q", v)))
        cases.append((f"elf-note-p_offset-{v:#x}", "elf", patch(ELF, ELF_PH_NOTE + 8, "<Q", v)))
        cases.append((f"elf-note-p_filesz-{v:#x}", "elf", patch(ELF, ELF_PH_NOTE + 32, "<Q", v)))
        cases.append((f"elf-load-p_offset-{v:#x}", "elf", patch(ELF, ELF_PH_LOAD + 8, "<Q", v)))
        cases.append((f"elf-load-p_filesz-{v:#x}", "elf", patch(ELF, ELF_PH_LOAD + 32, "<Q", v)))
        cases.append((f"elf-load-p_memsz-{v:#x}", "elf", patch(ELF, ELF_PH_LOAD + 40, "<Q", v)))
        cases.append((f"elf-load-p_paddr-{v:#x}", "elf", patch(ELF, ELF_PH_LOAD + 24, "<Q", v)))
    # e_phnum = PN_XNUM: the count comes from section 0's sh_info (section headers at 0x40).
    xnum = patch(ELF, 0x38, "<H", 0xFFFF)
    for v in [0, 1, 3, 5, 0xFFFF, 2**31, 2**32 - 1]:
        cases.append((f"elf-pn_xnum-sh_info-{v:#x}", "elf", patch(xnum, 0x40 + 44, "<I", v)))
    for v in U64_LIES:
        cases.append((f"elf-pn_xnum-e_shoff-{v:#x}", "elf", patch(patch(xnum, 0x40 + 44, "<I", 4), 0x28, "<Q", v)))
    for v in [0xFFFE, 0x8000, 5]:
        cases.append((f"elf-e_phnum-{v:#x}", "elf", patch(ELF, 0x38, "<H", v)))
    # kdump header and sub-header.
    bs = QKD_L.bs
    for field, off in (("block_size", 428), ("sub_hdr_size", 432), ("bitmap_blocks", 436), ("max_mapnr", 440)):
        for v in U32_LIES + [2**32 - 2, 0x10000000]:
            cases.append((f"kdump-{field}-{v:#x}", "kdump", patch(QKD, off, "<I", v)))
    for field, off in (
        ("offset_vmcoreinfo", 32),
        ("size_vmcoreinfo", 40),
        ("offset_note", 48),
        ("note_size", 56),
        ("offset_eraseinfo", 64),
        ("size_eraseinfo", 72),
        ("start_pfn_64", 80),
        ("end_pfn_64", 88),
        ("max_mapnr_64", 96),
    ):
        for v in U64_LIES:
            cases.append((f"kdump-{field}-{v:#x}", "kdump", patch(QKD, bs + off, "<Q", v)))
    split = patch(QKD, bs + 12, "<i", 1)
    for v in U64_LIES:
        cases.append((f"kdump-split-end_pfn_64-{v:#x}", "kdump", patch(split, bs + 88, "<Q", v)))
        cases.append((f"kdump-split-start_pfn_64-{v:#x}", "kdump", patch(split, bs + 80, "<Q", v)))
    # The notes blob of the kdump (its VMCOREINFO note is the last; its text is what
    # offset_vmcoreinfo points at).
    on, _ = QKD_L.note
    for field, off in (("namesz", 0), ("descsz", 4)):
        for v in U32_LIES:
            cases.append((f"kdump-note-{field}-{v:#x}", "kdump", patch(QKD, on + off, "<I", v)))
    # Page descriptors: offset, size.
    for v in U64_LIES:
        cases.append((f"kdump-desc-offset-{v:#x}", "kdump", patch(QKD, QKD_L.desc_off + 24 * 3, "<Q", v)))
    for v in U32_LIES:
        cases.append((f"kdump-desc-size-{v:#x}", "kdump", patch(QKD, QKD_L.desc_off + 24 * 3 + 8, "<I", v)))
    # Flattened record headers: offset and size of the first record and of a late one.
    recs = flat_records(QFLAT)
    for idx in (0, len(recs) - 2):
        h = recs[idx][0]
        for v in U64_LIES:
            cases.append((f"flat-rec{idx}-offset-{v:#x}", "flat", patch(QFLAT, h, ">Q", v)))
            cases.append((f"flat-rec{idx}-size-{v:#x}", "flat", patch(QFLAT, h + 8, ">Q", v)))
    # Flattened files whose holes claim what the kdump layer would allocate: bitmaps of 1 GiB,
    # a note area of 200 MiB, each in a hole that an empty record at 1 TiB makes "exist".
    hdr = bytearray(QKD[: bs * 3])
    struct.pack_into("<I", hdr, 436, (1 << 30) // bs)
    cases.append(("flat-bitmaps-in-holes", "flat", flatten([(0, bytes(hdr)), (2**40, b"")])))
    sub = bytearray(QKD[bs : bs + 104])
    struct.pack_into("<QQ", sub, 48, 2**39, 200 << 20)
    cases.append(("flat-notes-in-holes", "flat", flatten(record_list(QFLAT) + [(bs, bytes(sub)), (2**40, b"")])))
    return cases


LYING = lying_cases()


@pytest.mark.parametrize("case", LYING, ids=[c[0] for c in LYING])
def test_lying_sizes(tmp_path: pathlib.Path, case: tuple[str, str, bytes]) -> None:
    name, kind, data = case
    p, o = run_case(tmp_path, data, name)
    # Either open refuses it (typed, with the file and byte), or what opened reads consistently:
    # no step may report a read of memory that is not in memory_ranges() as "ok".
    if not o.opened:
        assert o.errors["open"].offset is not None
        return
    assert o["read-top"] == "AbsentMemoryError"


def test_lying_sizes_examples(tmp_path: pathlib.Path) -> None:
    """A few lying sizes with the exact error they must give (the rest: any typed error)."""
    expect = {
        "elf-e_phoff-0xffffffffffffffff": ("TruncatedError", 0xFFFFFFFFFFFFFFFF),
        "elf-note-p_filesz-0x100000000": ("LimitError", None),
        "elf-load-p_offset-0xffffffffffffffff": ("FormatError", ELF_PH_LOAD),
        "elf-pn_xnum-sh_info-0xffffffff": ("TruncatedError", ELF_PHOFF),
        "kdump-block_size-0x80000000": ("LimitError", 428),
        "kdump-bitmap_blocks-0xfffffffe": ("LimitError", 436),
        "kdump-sub_hdr_size-0xffffffff": ("TruncatedError", 436),
        "flat-rec0-size-0xffffffffffffffff": ("FormatError", 4096),
        "flat-rec0-size-0x10000000000": ("TruncatedError", 4096),
        # Flattened: the kdump layer's offsets are in the reassembled file (the contract of
        # Location::File and Error.offset, B11): bitmap_blocks at 436 of the reassembled header
        # (4548 in the file as written), and the note area at 2**39, which lies in a hole that no
        # record wrote and so has no offset in the file as written at all.
        "flat-bitmaps-in-holes": ("LimitError", 436),
        "flat-notes-in-holes": ("LimitError", 2**39),
    }
    got = {}
    for name, _, data in LYING:
        if name in expect:
            p, o = run_case(tmp_path, data, name)
            got[name] = (o["open"], expect[name][1] and o.errors["open"].offset)
    assert got == {k: (v[0], v[1]) for k, v in expect.items()}


def test_lying_kdump_text_location_is_dropped_and_the_note_used(tmp_path: pathlib.Path) -> None:
    """offset_vmcoreinfo outside the file: reported as an anomaly at the field, and the text is
    still found in the notes blob (documented in src/kdump.rs)."""
    for v in U64_LIES:
        p, o = run_case(tmp_path, patch(QKD, QKD_L.bs + 32, "<Q", v))
        assert o.opened and o["vmcoreinfo"] == "ok"
        with vmcoreinfo.open(p) as d:
            assert d.vmcoreinfo.osrelease == "6.1.0-48-cloud-amd64"
            anomalies = d.details()["anomalies"]
            assert any("VMCOREINFO location" in a for a in map(str, anomalies)), anomalies


def test_pn_xnum_with_the_true_count_in_sh_info_opens(tmp_path: pathlib.Path) -> None:
    data = patch(patch(ELF, 0x38, "<H", 0xFFFF), 0x40 + 44, "<I", 4)
    p, o = run_case(tmp_path, data)
    assert o.opened and o["vmcoreinfo"] == "ok"
    with vmcoreinfo.open(p) as d:
        assert d.details()["phnum"] == 4


# --------------------------------------------------------------------------- ELF layouts


def test_overlapping_pt_loads_with_conflicting_offsets(tmp_path: pathlib.Path) -> None:
    """Two PT_LOADs claim physical 0 with different file bytes: the one with the lower file
    offset wins (deterministic), and the conflict is counted in details()."""
    # PT_LOAD 3 (paddr 16 MiB, file 16864) moved onto PT_LOAD 2 (paddr 0, file 12768).
    data = patch(patch(ELF, ELF_PHOFF + 3 * 56 + 16, "<Q", 0), ELF_PHOFF + 3 * 56 + 24, "<Q", 0)
    p, o = run_case(tmp_path, data)
    assert o.opened and o["vmcoreinfo"] == "ok"
    with vmcoreinfo.open(p) as d:
        assert d.read_phys(0, 4096) == ELF[12768 : 12768 + 4096]
        assert d.details()["conflicting_overlap_bytes"] == 4096
        assert (16 << 20, (16 << 20) + 4096) not in d.memory_ranges()
    # Partial overlap: PT_LOAD 3 starts half-way into PT_LOAD 2.
    data = patch(patch(ELF, ELF_PHOFF + 3 * 56 + 16, "<Q", 2048), ELF_PHOFF + 3 * 56 + 24, "<Q", 2048)
    p, o = run_case(tmp_path, data)
    with vmcoreinfo.open(p) as d:
        assert d.read_phys(0, 4096) == ELF[12768 : 12768 + 4096]
        assert d.read_phys(4096, 2048) == ELF[16864 + 2048 : 16864 + 4096]
        assert d.details()["conflicting_overlap_bytes"] == 2048


@pytest.mark.parametrize(
    "machine,ok",
    [(62, True), (183, True), (21, True), (22, True), (243, True), (40, False), (3, True), (20, True), (0, True)],
)
def test_elf_class_for_machine(tmp_path: pathlib.Path, machine: int, ok: bool) -> None:
    """ELF64 with each e_machine: x86_64, aarch64, ppc64, s390x, riscv accept ELF64; arm is
    ELF32 only; i386 may be ELF64 whatever its memory (QEMU writes every PC guest as ELF64: its
    BIOS ROM block ends at 4 GiB, even when a paging=true dump's PT_LOADs do not)."""
    p, o = run_case(tmp_path, patch(ELF, 18, "<H", machine))
    if ok:
        assert o.opened, o.steps
    else:
        assert o["open"] == "BitnessError"
        assert o.errors["open"].rule == "class-for-machine" and o.errors["open"].offset is not None


def test_i386_elf64_above_4gib_is_accepted(tmp_path: pathlib.Path) -> None:
    data = patch(ELF, 18, "<H", 3)
    data = patch(patch(data, ELF_PHOFF + 3 * 56 + 16, "<Q", 2**32), ELF_PHOFF + 3 * 56 + 24, "<Q", 2**32)
    p, o = run_case(tmp_path, data)
    assert o.opened
    with vmcoreinfo.open(p) as d:
        assert d.machine == "i386" and d.elf_class == 64
        assert d.details()["address_bits"] == 32
        assert "reach 0x100001000" in d.details()["class_note"]


# --------------------------------------------------------------------------- big notes and texts


def elf_with_vmcoreinfo(desc: bytes) -> bytes:
    """The real ELF fixture with its VMCOREINFO note replaced by one carrying `desc`: a new
    PT_NOTE segment (the real CORE and QEMU notes, then the new note) appended to the file."""
    real_notes = ELF[ELF_NOTE_OFF:ELF_VMCI_NOTE]
    note = struct.pack("<III", 11, len(desc), 0) + b"VMCOREINFO\0\0" + desc + bytes(-len(desc) % 4)
    seg = real_notes + note
    off = len(ELF) + (-len(ELF) % 8)
    data = ELF + bytes(off - len(ELF)) + seg
    data = patch(data, ELF_PH_NOTE + 8, "<Q", off)
    data = patch(data, ELF_PH_NOTE + 32, "<Q", len(seg))
    return patch(data, ELF_PH_NOTE + 40, "<Q", len(seg))


def kdump_with_text(text: bytes) -> bytes:
    """The real kdump fixture with offset/size_vmcoreinfo pointing at `text`, appended."""
    data = QKD + text
    data = patch(data, QKD_L.bs + 32, "<Q", len(QKD))
    return patch(data, QKD_L.bs + 40, "<Q", len(text))


def big_text(size: int) -> bytes:
    line = b"SYMBOL(padding_symbol_%07d)=ffffffff81000000\n"
    out = bytearray(REAL_TEXT)
    i = 0
    while len(out) < size:
        out += line % i
        i += 1
    return bytes(out[:size])


@pytest.mark.parametrize("kind", ["elf", "kdump"])
def test_vmcoreinfo_over_1mib_needs_max_note_size(tmp_path: pathlib.Path, kind: str) -> None:
    # ELF: a note of desc 1 MiB is a padded note of 1 MiB + 24 bytes (over QEMU's limit).
    text = big_text(MiB)
    data = elf_with_vmcoreinfo(text) if kind == "elf" else kdump_with_text(text + b"X")
    p, o = run_case(tmp_path, data)
    assert o.opened and o["vmcoreinfo"] == "NoteRuleError", o.steps
    e = o.errors["vmcoreinfo"]
    assert e.rule == "size-above-limit" and e.offset is not None
    p, o = run_case(tmp_path, data, max_note_size=4 * MiB)
    assert o["vmcoreinfo"] == "ok", o.steps
    with vmcoreinfo.open(p, max_note_size=4 * MiB) as d:
        vi = d.vmcoreinfo
        assert vi.osrelease == "6.1.0-48-cloud-amd64"
        assert len(vi.raw) in (MiB, MiB + 1)
        assert len(vi.diagnostics) <= 1001


def test_vmcoreinfo_desc_over_1mib_is_refused_even_with_a_raised_limit(tmp_path: pathlib.Path) -> None:
    """QEMU's own rule: n_descsz > 1 MiB is never taken (max_note_size raises only the size limit)."""
    data = elf_with_vmcoreinfo(big_text(MiB + 4))
    for kw in ({}, {"max_note_size": 8 * MiB}):
        p, o = run_case(tmp_path, data, **kw)
        assert o["vmcoreinfo"] == "NoteRuleError"
        assert o.errors["vmcoreinfo"].rule == "descsz-too-large"
        assert o.errors["vmcoreinfo"].offset == len(ELF) + (-len(ELF) % 8) + (ELF_VMCI_NOTE - ELF_NOTE_OFF) + 4


@pytest.mark.parametrize(
    "name,text",
    [
        ("latin1", REAL_TEXT.replace(b"OSRELEASE=6.1.0", b"OSRELEASE=6.1.\xe90")),
        ("invalid-utf8-keys", b"\xff\xfe=1\n" + REAL_TEXT + b"\xc3(=\x80\n"),
        ("nul-inside", REAL_TEXT[:100] + b"\0" + REAL_TEXT[100:]),
        ("all-ff", b"\xff" * 4096),
        ("no-newlines-1mib", b"A" * (MiB - 100)),
        ("100k-lines", b"".join(b"K%d=%d\n" % (i, i) for i in range(100_000))[: MiB - 100]),
        ("100k-empty-lines", b"\n" * 100_000),
        ("100k-equals", b"=\n" * 100_000),
        ("duplicate-keys", b"OSRELEASE=a\n" * 50_000),
        ("crlf", REAL_TEXT.replace(b"\n", b"\r\n")[: MiB - 100]),
    ],
)
def test_non_utf8_and_gigantic_text(tmp_path: pathlib.Path, name: str, text: bytes) -> None:
    # Through parse() (no file), and as a dump's note (a file, limit raised for the big ones).
    with bounded():
        vi = vmcoreinfo.parse(text)
        _ = (vi.osrelease, len(vi), vi.raw[:10], vi.diagnostics[:5], list(vi.items())[:5])
        assert len(vi.diagnostics) <= 1001
        for k in list(vi.keys())[:1000]:
            if "\ufffd" not in k:  # keys are decoded lossily; a lossy key is not a lookup key
                vi[k]
    p, o = run_case(tmp_path, kdump_with_text(text), max_note_size=2 * MiB)
    assert o.opened and o["vmcoreinfo"] == "ok", o.steps
    assert o["accessors"] in ("ok", "FormatError")  # a malformed value is a FormatError with its offset
    if name == "latin1":
        with vmcoreinfo.open(p) as d:
            assert d.vmcoreinfo.osrelease == "6.1.\ufffd0-48-cloud-amd64"
            assert any(x.kind == "non-utf8" for x in d.vmcoreinfo.diagnostics)


# --------------------------------------------------------------------------- flattened records


def test_flattened_overlapping_record_later_wins(tmp_path: pathlib.Path) -> None:
    """A later record overwrites an earlier one (makedumpfile -R semantics)."""
    recs = record_list(QFLAT)
    text_off = QKD_L.vmci[0] + REAL_TEXT.index(b"6.1.0-48")
    recs.append((text_off, b"9.9.9-99"))
    p, o = run_case(tmp_path, flatten(recs))
    assert o.opened and o["vmcoreinfo"] == "ok"
    with vmcoreinfo.open(p) as d:
        assert d.vmcoreinfo.osrelease == "9.9.9-99-cloud-amd64"
    # ... and an earlier record that a later one covers entirely changes nothing.
    recs = record_list(QFLAT)
    recs.insert(0, (text_off, b"0.0.0-00"))
    p, o = run_case(tmp_path, flatten(recs))
    with vmcoreinfo.open(p) as d:
        assert d.vmcoreinfo.osrelease == "6.1.0-48-cloud-amd64"


def test_flattened_records_backwards_and_shuffled(tmp_path: pathlib.Path) -> None:
    want = reference(KD / "qemu-x86_64-zlib.kdump")
    recs = record_list(QFLAT)
    for order in (recs[::-1], recs[1::2] + recs[::2]):
        p, o = run_case(tmp_path, flatten(order))
        assert o.opened and o["vmcoreinfo"] == "ok"
        with vmcoreinfo.open(p) as d:
            assert {s: d.read_phys(s, len(b)) for s, b in want.items()} == want


def test_flattened_without_end_marker(tmp_path: pathlib.Path) -> None:
    want = reference(KD / "qemu-x86_64-zlib.kdump")
    p, o = run_case(tmp_path, flatten(record_list(QFLAT), end_marker=False))
    assert o.opened and o["vmcoreinfo"] == "ok"
    with vmcoreinfo.open(p) as d:
        assert d.details()["flattened_end_marker"] is False
        assert {s: d.read_phys(s, len(b)) for s, b in want.items()} == want


@pytest.mark.parametrize("n", [1, 1000, 100_000])  # 1: one record per byte of the first
def test_flattened_many_tiny_records_and_zero_size_records(tmp_path: pathlib.Path, n: int) -> None:
    """Many records (one byte each, or empty) index in bounded time and memory."""
    recs = record_list(QFLAT)
    first_off, first = recs[0]
    tiny = [(first_off + i % len(first), first[i % len(first) : i % len(first) + 1]) for i in range(max(n, len(first)))]
    empties = [(2**40 + i, b"") for i in range(3)]  # zero-size records still extend the file
    p, o = run_case(tmp_path, flatten(tiny + recs[1:] + empties))
    assert o.opened
    with vmcoreinfo.open(p) as d:
        assert d.details()["flattened_logical_size"] == 2**40 + 2


def test_flattened_after_end_marker_is_ignored(tmp_path: pathlib.Path) -> None:
    p, o = run_case(tmp_path, QFLAT + struct.pack(">qq", 0, 8) + b"garbage!" + bytes(100))
    assert o.opened and o["vmcoreinfo"] == "ok"


def test_flattened_record_claiming_a_terabyte_of_holes(tmp_path: pathlib.Path) -> None:
    """A record far out makes the reassembled file 'huge' but its holes are never materialised."""
    recs = record_list(QFLAT) + [(2**40, b"x")]
    p, o = run_case(tmp_path, flatten(recs))
    assert o.opened and o["vmcoreinfo"] == "ok"


# --------------------------------------------------------------------------- compressed pages


def first_desc(lay: KdumpLayout, codec: int) -> tuple[int, tuple[int, int, int, int]]:
    """Index and value of the first descriptor using `codec` (0 = raw), not a shared block."""
    uses: dict[int, int] = {}
    for d in lay.descs:
        uses[d[0]] = uses.get(d[0], 0) + 1
    for i, d in enumerate(lay.descs):
        if (d[2] & 0x27) == codec and uses[d[0]] == 1:
            return i, d
    raise AssertionError(f"no page with codec {codec:#x}")


def pfn_of_desc(lay: KdumpLayout, i: int) -> int:
    half = lay.bs * lay.bitmap_blocks // 2
    bm2 = lay.data[lay.bm_off + half : lay.bm_off + 2 * half]
    seen = -1
    for pfn in range(len(bm2) * 8):
        if bm2[pfn >> 3] >> (pfn & 7) & 1:
            seen += 1
            if seen == i:
                return pfn
    raise AssertionError


CODECS = {
    "zlib": ("md-x86_64-zlib-d31.kdump", 1),
    "lzo": ("md-x86_64-lzo-d31.kdump", 2),
    "snappy": ("md-x86_64-snappy-d31.kdump", 4),
    "zstd": ("md-x86_64-zstd-d31.kdump", 0x20),
    "raw": ("md-x86_64-none-d31.kdump", 0),
}


def damaged_page(codec: str, how: str) -> tuple[bytes, int, int]:
    """(file, physical address of the damaged page, descriptor file offset)."""
    name, flag = CODECS[codec]
    data = (KD / name).read_bytes()
    lay = KdumpLayout.of(data)
    i, (off, size, flags, pf) = first_desc(lay, flag)
    doff = lay.desc_off + 24 * i
    b = bytearray(data)
    if how == "garbage":
        b[off : off + size] = bytes((x * 7 + 13) & 0xFF for x in range(size))
    elif how == "flip-tail":
        b[off + size - 4 : off + size] = bytes(x ^ 0xFF for x in b[off + size - 4 : off + size])
    elif how == "short":
        struct.pack_into("<I", b, doff + 8, max(1, size // 2))
    elif how == "wrong-size":
        small = {"zlib": lambda: zlib.compress(bytes(2048))}.get(codec)
        if small is None:
            # The codec flag swapped for another (its data then fails to decode or is the wrong size).
            struct.pack_into("<I", b, doff + 12, (flags & ~0x27) | (1 if flag != 1 else 4))
        else:
            z = small()
            b[off : off + len(z)] = z
            struct.pack_into("<I", b, doff + 8, len(z))
    elif how == "two-codecs":
        struct.pack_into("<I", b, doff + 12, flags | 0x5)
    elif how == "size-over-block":
        struct.pack_into("<I", b, doff + 8, lay.bs + 1)
    elif how == "negative-offset":
        struct.pack_into("<q", b, doff, -4096)
    elif how == "offset-past-eof":
        struct.pack_into("<q", b, doff, len(data) - 10)
    return bytes(b), pfn_of_desc(lay, i) * lay.bs, doff


HOWS = ["garbage", "flip-tail", "short", "wrong-size", "two-codecs", "size-over-block", "negative-offset", "offset-past-eof"]


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("how", HOWS)
def test_damaged_pages(tmp_path: pathlib.Path, codec: str, how: str) -> None:
    data, addr, doff = damaged_page(codec, how)
    p, o = run_case(tmp_path, data)
    assert o.opened and o["vmcoreinfo"] == "ok"
    with vmcoreinfo.open(p) as d, bounded():
        try:
            page = d.read_phys(addr, 4096)
        except vmcoreinfo.Error as e:
            check_error(e, p)
            # Named at the page's descriptor (or, for data past the end, where the file ends).
            assert isinstance(e, (vmcoreinfo.DecompressError, vmcoreinfo.FormatError))
            assert e.offset in (doff, len(data)), (e, doff)
            if how in ("garbage", "short", "wrong-size") and codec != "raw":
                assert isinstance(e, (vmcoreinfo.DecompressError, vmcoreinfo.UnsupportedFormatError))
            return
        # Only possible for damage a codec cannot see (e.g. flipped raw bytes).
        assert (codec, how) in {("raw", "garbage"), ("raw", "flip-tail")}, (codec, how)
        assert len(page) == 4096


# --------------------------------------------------------------------------- files that change


@pytest.mark.parametrize(
    "name", ["qemu-x86_64-zlib.kdump", "md-x86_64-none-d31.kdump", "qemu-x86_64-zlib.flat", "md-x86_64-zlib-d31.flat"]
)
def test_file_shrinks_after_open(tmp_path: pathlib.Path, name: str) -> None:
    data = (KD / name).read_bytes()
    p = tmp_path / name
    p.write_bytes(data)
    with vmcoreinfo.open(p) as d, bounded():
        ranges = d.memory_ranges()
        os.truncate(p, 5 * 4096)  # keeps the headers, loses the descriptors and pages
        failures = 0
        for s, e in ranges:
            try:
                d.read_phys(s, min(e - s, 8192))
            except vmcoreinfo.TruncatedError as err:
                check_error(err, p)
                failures += 1
        assert failures > 0
        os.truncate(p, 0)
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.read_phys(ranges[-1][0], 4096)
        check_error(ei.value, p)


def test_elf_file_grows_after_open_reads_as_opened(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "grow.core"
    p.write_bytes(ELF)
    with vmcoreinfo.open(p) as d:
        before = d.read_phys(0x18DC000, 4096)
        with p.open("ab") as f:
            f.write(bytes(1 << 16))
        assert d.read_phys(0x18DC000, 4096) == before


# --------------------------------------------------------------------------- hostile kernel logs and symbols


def _log_case(name: str, patch_ring: Callable[[object], None], extra: str = "") -> Callable[[pathlib.Path], pathlib.Path]:
    def make(tmp_path: pathlib.Path) -> pathlib.Path:
        import test_kview_log as kl

        keys = kl.RING_KEYS.replace(extra.split("=")[0] + "=", "X=") + extra if extra else kl.RING_KEYS
        p, mem = kl.guest(tmp_path, extra_text=keys)
        kl.write_ring(mem, kl.MSGS)
        patch_ring(mem)
        kl.rewrite(p, mem)
        return p

    return make


def _rb(off: int, fmt: str, value: int) -> Callable[[object], None]:
    import test_kview_log as kl

    return lambda mem: mem.write(kl.pa(kl.RB + off), struct.pack(fmt, value))  # type: ignore[attr-defined]


def _sym_case(patch_tables: Callable[[object], None]) -> Callable[[pathlib.Path], pathlib.Path]:
    def make(tmp_path: pathlib.Path) -> pathlib.Path:
        import test_kview_log as kl

        p, mem = kl.guest(tmp_path)
        extra = kl.write_kallsyms(mem)
        patch_tables(mem)
        kl.rewrite(p, mem, extra)
        return p

    return make


def _ks(off: int, data: bytes) -> Callable[[object], None]:
    import test_kview_log as kl

    return lambda mem: mem.write(kl.pa(kl.KS + off), data)  # type: ignore[attr-defined]


# (name, builder, what, allowed outcomes)
KVIEW_CASES: list[tuple[str, Callable[[pathlib.Path], pathlib.Path], str, tuple[type[vmcoreinfo.Error], ...]]] = [
    ("log-count-bits-62", _log_case("a", _rb(0, "<I", 62)), "log", (vmcoreinfo.FormatError,)),
    ("log-count-bits-28", _log_case("a", _rb(0, "<I", 28)), "log", (vmcoreinfo.LimitError,)),
    ("log-data-8gib", _log_case("a", _rb(48, "<I", 33)), "log", (vmcoreinfo.LimitError,)),
    ("log-head-far-past-tail", _log_case("a", _rb(24, "<Q", 1 << 40)), "log", (vmcoreinfo.FormatError,)),
    ("log-descs-unmapped", _log_case("a", _rb(8, "<Q", 0xFFFF800000000000)), "log", (vmcoreinfo.UnmappedError,)),
    (
        "log-prb-null",
        _log_case(
            "a",
            lambda m: m.write(  # type: ignore[attr-defined]
                __import__("test_kview_log").pa(__import__("test_kview_log").PRB_PTR), bytes(8)
            ),
        ),
        "log",
        (vmcoreinfo.UnmappedError,),
    ),
    ("log-printk-info-size-0", _log_case("a", lambda m: None, "SIZE(printk_info)=0\n"), "log", (vmcoreinfo.FormatError,)),
    ("log-atomic-long-3", _log_case("a", lambda m: None, "SIZE(atomic_long_t)=3\n"), "log", (vmcoreinfo.FormatError,)),
    ("sym-num-syms-4g", _sym_case(_ks(0x1008, struct.pack("<I", 0xFFFFFFFF))), "sym", (vmcoreinfo.LimitError,)),
    (
        "sym-num-syms-past-names",
        _sym_case(_ks(0x1008, struct.pack("<I", 3_000_000))),
        "sym",
        (vmcoreinfo.UnmappedError, vmcoreinfo.AbsentMemoryError, vmcoreinfo.FormatError),
    ),
    ("sym-three-byte-length", _sym_case(_ks(0x1010, b"\x80\x80\x80")), "sym", (vmcoreinfo.FormatError,)),
    (
        "sym-token-without-end",
        _sym_case(_ks(0x3000, b"a" * 0x800)),
        "sym",
        (vmcoreinfo.FormatError, vmcoreinfo.UnmappedError, vmcoreinfo.AbsentMemoryError, vmcoreinfo.LimitError),
    ),
    ("sym-stext-not-reproduced", _sym_case(_ks(0x0, b"\xff\xff\xff\x7f" * 8)), "sym", (vmcoreinfo.FormatError,)),
]


@pytest.mark.parametrize("case", KVIEW_CASES, ids=[c[0] for c in KVIEW_CASES])
def test_hostile_kernel_log_and_symbols(tmp_path: pathlib.Path, case: tuple) -> None:  # type: ignore[type-arg]
    """A hostile printk ring or kallsyms table ends in the expected typed error, naming the file
    and a place (a file offset for VMCOREINFO values, else the kernel virtual address), within
    the time and memory bound."""
    name, make, what, allowed = case
    p = make(tmp_path)
    with bounded(), vmcoreinfo.open(p) as d:
        with pytest.raises(allowed) as ei:
            if what == "log":
                d.kernel_log()
            else:
                d.symbols
        e = ei.value
        assert e.path == str(p), e
        assert e.offset is not None or e.address is not None, f"{type(e).__name__} without a place: {e}"
        if what == "log":
            with pytest.raises(allowed):
                d.dmesg()


# --------------------------------------------------------------------------- memory bound, fresh process


def _probe(outdir: str) -> None:
    """Run every lying-size case in this (fresh) process; print baseline and peak RSS."""
    base = pathlib.Path(outdir)
    with vmcoreinfo.open(KD / "qemu-x86_64-zlib.kdump") as d:
        d.read_phys(0, 4096)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for name, _, data in LYING:
        p = base / name
        p.write_bytes(data)
        exercise(p)
        p.unlink()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(baseline, peak)


def test_lying_sizes_do_not_allocate(tmp_path: pathlib.Path) -> None:
    r = subprocess.run(
        [sys.executable, __file__, "--probe", str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert r.returncode == 0, r.stderr
    baseline, peak = map(int, r.stdout.split()[-2:])
    assert peak - baseline < RSS_GROWTH, f"peak RSS grew by {(peak - baseline) >> 20} MiB over {len(LYING)} cases"


if __name__ == "__main__" and sys.argv[1:2] == ["--probe"]:
    _probe(sys.argv[2])

# --------------------------------------------------------------------------- hand-picked ELF header cases
# (cuts at the real fixture's header boundaries, lying header fields, a note past the end,
# swapped byte order, non-dumps, a file that shrinks after it is opened)


def write_file(tmp_path: pathlib.Path, data: bytes, name: str = "bad.core") -> pathlib.Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def open_and_identify(p: pathlib.Path) -> None:
    with vmcoreinfo.open(p) as d:
        d.vmcoreinfo.osrelease


@pytest.mark.parametrize(
    "cut",
    [
        0,
        3,
        4,
        16,
        63,
        64,
        0x40 + 64,
        ELF_PHOFF,
        ELF_PHOFF + 56,
        ELF_PHOFF + 4 * 56 - 1,
        ELF_NOTE_OFF + 11,
        ELF_NOTE_OFF + 0x100,
        ELF_NOTE_OFF + 0x1007,
    ],
)
def test_truncation_at_header_boundaries(tmp_path: pathlib.Path, cut: int) -> None:
    p = write_file(tmp_path, ELF[:cut])
    with pytest.raises(vmcoreinfo.Error) as ei:
        open_and_identify(p)
    assert isinstance(ei.value, (vmcoreinfo.FormatError, vmcoreinfo.NoVmcoreinfoError))
    assert ei.value.path == str(p)
    assert ei.value.offset is not None or isinstance(ei.value, vmcoreinfo.NoVmcoreinfoError)


def test_truncated_memory_is_a_truncated_error_not_zeros(tmp_path: pathlib.Path) -> None:
    p = write_file(tmp_path, ELF[: len(ELF) - 0x3000])  # cut into the last PT_LOADs' data
    with vmcoreinfo.open(p) as d:
        assert d.vmcoreinfo.osrelease  # headers and notes are intact
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.read_phys(0x1000000, 4096)
        assert ei.value.offset is not None and ei.value.path == str(p)


@pytest.mark.parametrize(
    "field,fmt,value,exc",
    [
        ("e_phoff", "<Q", 2**64 - 8, vmcoreinfo.TruncatedError),
        ("e_phoff", "<Q", 2**32, vmcoreinfo.TruncatedError),
        ("e_phnum", "<H", 0xFFFE, vmcoreinfo.TruncatedError),
        ("e_phentsize", "<H", 57, vmcoreinfo.FormatError),
        ("p_offset", "<Q", 2**64 - 1, vmcoreinfo.FormatError),
        ("p_filesz", "<Q", 2**63, vmcoreinfo.LimitError),
        ("p_filesz", "<Q", 2**32 + 8, vmcoreinfo.LimitError),
    ],
)
def test_lying_elf_header_sizes(tmp_path: pathlib.Path, field: str, fmt: str, value: int, exc: type[Exception]) -> None:
    where = {"e_phoff": 0x20, "e_phnum": 0x38, "e_phentsize": 0x36, "p_offset": ELF_PHOFF + 8, "p_filesz": ELF_PHOFF + 32}[field]
    p = write_file(tmp_path, patch(ELF, where, fmt, value))
    with pytest.raises(exc) as ei:
        open_and_identify(p)
    assert ei.value.path == str(p)  # type: ignore[attr-defined]


XNUM = patch(ELF, 0x38, "<H", 0xFFFF)  # e_phnum = PN_XNUM: the count is section 0's sh_info


@pytest.mark.parametrize(
    "name,data,field_at",
    [
        ("e_phnum-0", patch(ELF, 0x38, "<H", 0), 0x38),
        ("e_phentsize-57", patch(ELF, 0x36, "<H", 57), 0x36),
        ("e_phentsize-0", patch(ELF, 0x36, "<H", 0), 0x36),
        ("pn_xnum-e_shoff-0", patch(XNUM, 0x28, "<Q", 0), 0x28),
        ("pn_xnum-sh_info-0", patch(XNUM, 0x40 + 44, "<I", 0), 0x40 + 44),
        ("e_phoff-0", patch(ELF, 0x20, "<Q", 0), 0x20),
    ],
)
def test_elf_header_errors_name_the_field_that_is_wrong(tmp_path: pathlib.Path, name: str, data: bytes, field_at: int) -> None:
    """B13: e_phnum, e_phentsize and the PN_XNUM fallback were reported at e_phoff's offset."""
    p = write_file(tmp_path, data, name)
    with pytest.raises(vmcoreinfo.FormatError) as ei:
        open_and_identify(p)
    assert (ei.value.offset, ei.value.location) == (field_at, "file"), ei.value


def test_pt_note_past_eof(tmp_path: pathlib.Path) -> None:
    p = write_file(tmp_path, patch(ELF, ELF_PHOFF + 8, "<Q", len(ELF) - 16))
    with pytest.raises(vmcoreinfo.TruncatedError) as ei:
        open_and_identify(p)
    assert ei.value.offset == len(ELF) - 16


def test_lying_descsz_in_the_vmcoreinfo_note(tmp_path: pathlib.Path) -> None:
    notes = vmcoreinfo.open(FIXTURES / "x86_64-qemu-elf.core").notes()
    vmci = notes[-1].offset
    for descsz in (2**32 - 1, 2**31, 0x1000_0000):
        p = write_file(tmp_path, patch(ELF, vmci + 4, "<I", descsz))
        with pytest.raises(vmcoreinfo.FormatError) as ei:
            open_and_identify(p)
        assert ei.value.offset == vmci


def test_swapped_byte_order_is_an_error_not_garbage(tmp_path: pathlib.Path) -> None:
    b = bytearray(ELF)
    b[5] = 2  # ELFDATA2MSB: every header field now reads byte-swapped
    p = write_file(tmp_path, bytes(b))
    with pytest.raises(vmcoreinfo.FormatError):
        open_and_identify(p)


@pytest.mark.parametrize("head", [b"", b"\x7fEL", b"MZ\x90\x00" + bytes(100), bytes(4096), b"\x7fELF\x03\x01\x01" + bytes(60)])
def test_not_a_dump(tmp_path: pathlib.Path, head: bytes) -> None:
    p = write_file(tmp_path, head)
    with pytest.raises(vmcoreinfo.FormatError) as ei:
        vmcoreinfo.open(p)
    assert ei.value.path == str(p) and ei.value.offset is not None


def test_elf_file_shrinks_after_open(tmp_path: pathlib.Path) -> None:
    p = write_file(tmp_path, ELF)
    with vmcoreinfo.open(p) as d:
        p.write_bytes(ELF[:0x2000])
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.read_phys(0x18DC000, 4096)
        assert "shrink" in str(ei.value)
