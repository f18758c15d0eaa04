"""The kernel view's translation through the Python API, on ELF dumps built here with
synthetic x86_64 page tables (the real guests are covered by tests/realguest/), and on the
committed real fixtures, which keep no page tables: there every kernel read must raise
AbsentMemoryError, never return invented bytes.

Hostile page tables (self-loops, present entries everywhere, lying roots) must end in a typed
error or a documented success within CASE_SECONDS.
"""

from __future__ import annotations

import pathlib
import struct
import sys
import time
from collections.abc import Callable

import pytest
import vmcoreinfo

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers import FIXTURES  # noqa: E402

EM_X86_64, EM_PPC64 = 62, 21
START_KERNEL_MAP = 0xFFFFFFFF80000000
CASE_SECONDS = 1.0
PRESENT = 0x63
PS = 0x80


class Mem:
    """Sparse guest-physical memory, 4 KiB pages."""

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.next_table = 0x200000

    def page(self, pa: int) -> bytearray:
        return self.pages.setdefault(pa & ~0xFFF, bytearray(4096))

    def write(self, pa: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.page(pa + i)[(pa + i) & 0xFFF] = b

    def w64(self, pa: int, v: int) -> None:
        self.write(pa, struct.pack("<Q", v))

    def r64(self, pa: int) -> int:
        return int(struct.unpack_from("<Q", self.page(pa), pa & 0xFFF)[0])

    def alloc(self) -> int:
        a = self.next_table
        self.next_table += 0x1000
        self.page(a)
        return a

    def map(self, root: int, va: int, pa: int, leaf_level: int = 1, levels: int = 4) -> None:
        table = root
        for level in range(levels, leaf_level - 1, -1):
            slot = table + ((va >> (12 + 9 * (level - 1))) & 511) * 8
            if level == leaf_level:
                self.w64(slot, pa | PRESENT | (PS if level > 1 else 0))
                return
            e = self.r64(slot)
            if not e & 1:
                t = self.alloc()
                self.w64(slot, t | PRESENT)
                e = t
            table = e & 0x000FFFFFFFFFF000


def elf(machine: int, text: bytes, mem: Mem) -> bytes:
    """An ELF64 core: one PT_NOTE with the VMCOREINFO note, one PT_LOAD per run of pages."""
    runs: list[list[int]] = []
    for pa in sorted(mem.pages):
        if runs and runs[-1][1] == pa:
            runs[-1][1] += 4096
        else:
            runs.append([pa, pa + 4096])
    note = struct.pack("<III", 11, len(text), 0) + b"VMCOREINFO\0\0" + text + b"\0" * (-len(text) % 4)
    phnum = 1 + len(runs)
    off = 64 + 56 * phnum
    ph = struct.pack("<IIQQQQQQ", 4, 0, off, 0, 0, len(note), len(note), 0)
    data = note
    cur = off + len(note)
    for s, e in runs:
        ph += struct.pack("<IIQQQQQQ", 1, 7, cur, 0, s, e - s, e - s, 0)
        data += b"".join(bytes(mem.pages[p]) for p in range(s, e, 4096))
        cur += e - s
    ehdr = (
        b"\x7fELF"
        + bytes([2, 1, 1])
        + bytes(9)
        + struct.pack("<HHIQQQIHHHHHH", 4, machine, 1, 0, 64, 0, 0, 64, 56, phnum, 0, 0, 0)
    )
    return ehdr + ph + data


PHYS_BASE = -0x2000000
INIT_TOP_PGT = 0xFFFFFFFF84A0A000
ROOT = INIT_TOP_PGT - START_KERNEL_MAP + PHYS_BASE  # 0x2a0a000
POB = 0xFFFF9B0C40000000  # a KASLR-style page_offset_base
UTS = 0xFFFFFFFF84C11000 + 0x1FF0  # release string across a page end


def guest(
    tmp_path: pathlib.Path, extra_text: str = "", add: Callable[[Mem], None] | None = None, **kw: object
) -> tuple[pathlib.Path, Mem]:
    """A synthetic x86_64 guest; `add(mem)` maps more before the dump is written."""
    mem = Mem()
    mem.page(ROOT)
    # kernel image: 2 MiB pages around init_top_pgt and the release string
    for va in range(0xFFFFFFFF84A00000, 0xFFFFFFFF84E00000, 0x200000):
        mem.map(ROOT, va, va - START_KERNEL_MAP + PHYS_BASE, 2)
    mem.write(UTS - START_KERNEL_MAP + PHYS_BASE, b"6.1.0-test\0")
    # direct map: 4 KiB pages for the first 2 MiB, 2 MiB pages after, a 1 GiB page far up
    for pa in range(0, 0x10000, 0x1000):
        mem.map(ROOT, POB + pa, pa)
        mem.page(pa)
    mem.map(ROOT, POB + 0x2A00000, 0x2A00000, 2)
    mem.map(ROOT, POB + 0x2C00000, 0x2C00000, 2)
    mem.map(ROOT, 0xFFFFC90000000000, 0x40000000, 3)
    if add is not None:
        add(mem)
    text = (
        f"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(init_top_pgt)={INIT_TOP_PGT:x}\n"
        f"SYMBOL(init_uts_ns)={UTS - 130 - 4:x}\nOFFSET(uts_namespace.name)=4\n"
        f"NUMBER(phys_base)={PHYS_BASE}\nNUMBER(pgtable_l5_enabled)=0\nNUMBER(sme_mask)=0\n{extra_text}"
    )
    p = tmp_path / "synthetic.core"
    p.write_bytes(elf(int(kw.get("machine", EM_X86_64)), text.encode(), mem))  # type: ignore[call-overload]
    return p, mem


def test_translate_and_read_virt(tmp_path: pathlib.Path) -> None:
    p, mem = guest(tmp_path)
    with vmcoreinfo.open(p) as d:
        lay = d.kernel_layout()
        assert lay["arch"] == "x86_64" and lay["levels"] == 4 and lay["root"] == ROOT
        assert lay["page_offset"] == POB, lay["page_offset_error"]
        assert d.translate(INIT_TOP_PGT) == ROOT
        assert d.translate(POB + 0x1234) == 0x1234  # 4 KiB page
        assert d.translate(POB + 0x2A0A008) == ROOT + 8  # 2 MiB page
        assert d.translate(0xFFFFC90012345678) == 0x52345678  # 1 GiB page
        vi = d.vmcoreinfo
        addr = vi.symbol("init_uts_ns") + vi.offset("uts_namespace", "name") + 130
        assert d.read_virt(addr, 11) == b"6.1.0-test\0"  # crosses a page end
        buf = bytearray(11)
        d.read_virt_into(addr, buf)
        assert buf == b"6.1.0-test\0"
        mv = memoryview(bytearray(22))[::2]  # not contiguous
        d.read_virt_into(addr, mv)
        assert mv.tobytes() == b"6.1.0-test\0"
        with pytest.raises(ValueError):
            d.read_virt_into(addr, b"readonly")
        assert d.read_virt(addr, 0) == b""
        # the same bytes through the direct map
        assert d.read_virt(POB + (addr - START_KERNEL_MAP + PHYS_BASE), 10) == b"6.1.0-test"


def test_unmapped_error(tmp_path: pathlib.Path) -> None:
    p, _ = guest(tmp_path)
    with vmcoreinfo.open(p) as d:
        for va in (POB + 0x10000, 0xFFFF800000000000, 0x8000000000000000, 0x1000):
            with pytest.raises(vmcoreinfo.UnmappedError) as ei:
                d.translate(va)
            e = ei.value
            assert isinstance(e, LookupError) and isinstance(e, vmcoreinfo.Error)
            assert (e.address, e.location, e.path, e.offset) == (va, "virtual", str(p), None)
            assert f"{va:#x}" in str(e)
        # a read that runs into an unmapped page names the first unmapped address
        with pytest.raises(vmcoreinfo.UnmappedError) as ei:
            d.read_virt(POB + 0xFFF8, 16)
        assert ei.value.address == POB + 0x10000


def test_closed_dump(tmp_path: pathlib.Path) -> None:
    p, _ = guest(tmp_path)
    d = vmcoreinfo.open(p)
    d.translate(INIT_TOP_PGT)
    d.close()
    with pytest.raises(vmcoreinfo.ClosedError):
        d.translate(INIT_TOP_PGT)
    with pytest.raises(vmcoreinfo.ClosedError):
        d.read_virt(INIT_TOP_PGT, 8)


def test_other_architectures_are_unsupported(tmp_path: pathlib.Path) -> None:
    p, _ = guest(tmp_path, machine=EM_PPC64)
    with vmcoreinfo.open(p) as d:
        with pytest.raises(vmcoreinfo.UnsupportedFormatError, match="ppc64"):
            d.translate(INIT_TOP_PGT)


@pytest.mark.parametrize("drop", ["SYMBOL(init_top_pgt)", "NUMBER(phys_base)"])
def test_missing_key_is_named(tmp_path: pathlib.Path, drop: str) -> None:
    mem = Mem()
    text = "\n".join(
        ln
        for ln in (f"OSRELEASE=6.1.0\nSYMBOL(init_top_pgt)={INIT_TOP_PGT:x}\nNUMBER(phys_base)={PHYS_BASE}").splitlines()
        if not ln.startswith(drop)
    )
    mem.page(0)
    p = tmp_path / "k.core"
    p.write_bytes(elf(EM_X86_64, text.encode() + b"\n", mem))
    with vmcoreinfo.open(p) as d:
        with pytest.raises(vmcoreinfo.UnsupportedFormatError, match=drop.replace("(", r"\(").replace(")", r"\)")):
            d.read_virt(INIT_TOP_PGT, 8)


# ----------------------------------------------------------------------------- hostile tables


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        assert time.monotonic() - t0 < CASE_SECONDS


def test_lying_phys_base_is_a_format_error_at_the_symbol(tmp_path: pathlib.Path) -> None:
    """phys_base off by 2 MiB: the root read is another page, whose walk does not come back."""
    p, mem = guest(tmp_path)
    data = p.read_bytes().replace(f"NUMBER(phys_base)={PHYS_BASE}".encode(), f"NUMBER(phys_base)={PHYS_BASE + 0x10000}".encode())
    p.write_bytes(data)
    with vmcoreinfo.open(p) as d:
        with pytest.raises((vmcoreinfo.FormatError, vmcoreinfo.AbsentMemoryError)) as ei:
            timed(lambda: d.translate(INIT_TOP_PGT))
        e = ei.value
        assert e.path == str(p)
        if isinstance(e, vmcoreinfo.FormatError):
            sym = data.index(b"SYMBOL(init_top_pgt)=") + len("SYMBOL(init_top_pgt)=")
            assert e.offset == sym, e


def test_self_loops_and_present_everywhere_are_bounded(tmp_path: pathlib.Path) -> None:
    """Every entry of the root points at the root (a loop at every level), then every entry
    points at an empty table: walks stay fixed-depth and discovery stays within its budget."""
    for fill in ("loop", "empty"):
        mem = Mem()
        root = INIT_TOP_PGT - START_KERNEL_MAP  # phys_base 0
        empty = mem.alloc()
        target = root if fill == "loop" else empty
        for i in range(512):
            mem.w64(root + 8 * i, target | PRESENT)
        text = f"OSRELEASE=6.1\nSYMBOL(init_top_pgt)={INIT_TOP_PGT:x}\nNUMBER(phys_base)=0\n"
        p = tmp_path / f"{fill}.core"
        p.write_bytes(elf(EM_X86_64, text.encode(), mem))
        with vmcoreinfo.open(p) as d:
            try:
                lay = timed(d.kernel_layout)
            except vmcoreinfo.FormatError as e:  # "empty": init_top_pgt is unmapped
                assert fill == "empty" and e.offset is not None, e
                continue
            assert fill == "loop"
            # a loop maps every address onto the root page; discovery still ends
            assert lay["page_offset"] is not None or lay["page_offset_error"]
            assert timed(lambda: d.translate(0xFFFF888000000000)) == root


def test_absurd_entries_point_outside_memory(tmp_path: pathlib.Path) -> None:
    """Entries whose addresses lie past the dump: AbsentMemoryError naming that address."""
    p, mem = guest(tmp_path)
    # the direct map's PUD table: make the 2 MiB entry point at 0x000f_ffff_ffe0_0000
    data = bytearray(p.read_bytes())
    with vmcoreinfo.open(p) as d:
        lay = d.kernel_layout()
    mem2 = Mem()
    mem2.pages = dict(mem.pages)
    # walk by hand to the PMD entry of POB + 0x2A00000 and corrupt it
    t = lay["root"]
    va = POB + 0x2A00000
    for level in (4, 3):
        t = mem2.r64(t + ((va >> (12 + 9 * (level - 1))) & 511) * 8) & 0x000FFFFFFFFFF000
    mem2.w64(t + ((va >> 21) & 511) * 8, 0x000FFFFFFFE00000 | PRESENT | PS)
    del data
    p2 = tmp_path / "absurd.core"
    text = p.read_bytes()
    start = text.index(b"OSRELEASE=")
    end = text.index(b"\0", start)
    p2.write_bytes(elf(EM_X86_64, text[start:end], mem2))
    with vmcoreinfo.open(p2) as d:
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            timed(lambda: d.read_virt(va + 0x10, 8))
        assert ei.value.address == 0x000FFFFFFFE00010


# ----------------------------------------------------------------------------- real fixtures


@pytest.mark.parametrize(
    "name",
    [
        "x86_64-qemu-elf.core",
        "x86_64-makedumpfile-d31.elf",
        "arm64-qemu-elf.core",
        "kdump/qemu-x86_64-zlib.kdump",
        "kdump/qemu-arm64-zlib.flat",
    ],
)
def test_reduced_fixtures_lack_the_page_tables(name: str) -> None:
    """The committed fixtures keep only the pages the identify tests need: a kernel read must say
    which physical page is missing, not return zeros."""
    with vmcoreinfo.open(FIXTURES / name) as d:
        vi = d.vmcoreinfo
        addr = vi.symbol("init_uts_ns") + vi.offset("uts_namespace", "name") + 130
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            d.read_virt(addr, 65)
        assert ei.value.path == str(FIXTURES / name) and ei.value.address is not None


def test_threads_share_one_dump(tmp_path: pathlib.Path) -> None:
    """Translations from many threads at once (the caches are shared and lock-free) agree with
    the single-threaded answers."""
    import concurrent.futures

    p, _ = guest(tmp_path)
    vas = [POB + pa + off for pa in range(0, 0x10000, 0x1000) for off in (0, 8, 0xFF8)]
    vas += [0xFFFFC90000000000 + i * 0x201000 for i in range(64)] + [INIT_TOP_PGT + i for i in range(0, 4096, 512)]
    with vmcoreinfo.open(p) as d:
        want = [d.translate(v) for v in vas]
    with vmcoreinfo.open(p) as d:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            results = list(ex.map(lambda k: [d.translate(v) for v in vas[k:] + vas[:k]], range(32)))
    for k, got in enumerate(results):
        assert got == want[k:] + want[:k]


# ----------------------------------------------------------------------------- read_virt_into

VMAP = 0xFFFFC88000000000  # a 4 KiB-mapped range, physically in reverse page order
VMAP_PA = 0x10000000
INTO_CHUNK = 8 << 20  # Dump.read_phys_into's private chunk, which read_virt_into shares


def reversed_pages(pages: int) -> Callable[[Mem], None]:
    """Map VMAP page i onto physical page pages-1-i, whose first byte is 1 + i % 255: every
    page is a separate physical read, and each page's first byte says whether it was written."""

    def add(mem: Mem) -> None:
        for i in range(pages):
            pa = VMAP_PA + (pages - 1 - i) * 4096
            mem.map(ROOT, VMAP + i * 4096, pa)
            mem.page(pa)[0] = 1 + i % 255

    return add


def test_read_virt_into_accepts_what_read_phys_into_accepts(tmp_path: pathlib.Path) -> None:
    """Any writable C-contiguous buffer, whatever its item type (B4: a buffer of 4-byte items
    was refused with a BufferError)."""
    import array

    p, _ = guest(tmp_path, add=reversed_pages(4))
    with vmcoreinfo.open(p) as d:
        want = d.read_virt(VMAP, 4 * 4096)
        assert want[::4096] == bytes([1, 2, 3, 4])
        ints = array.array("I", bytes(4 * 4096))
        d.read_virt_into(VMAP, ints)
        assert ints.tobytes() == want
        phys = array.array("I", bytes(4096))
        d.read_phys_into(VMAP_PA, phys)  # the same buffer type through read_phys_into
        assert phys.tobytes() == want[3 * 4096 :]
        words = memoryview(bytearray(4 * 4096)).cast("Q")
        d.read_virt_into(VMAP, words)
        assert words.tobytes() == want
        with pytest.raises(ValueError):
            d.read_virt_into(VMAP, memoryview(bytes(8)))
        with pytest.raises(vmcoreinfo.UnmappedError):
            d.read_virt_into(VMAP + 4 * 4096, bytearray(8))


def test_read_virt_into_never_writes_while_other_threads_run(tmp_path: pathlib.Path) -> None:
    """B4: the caller's buffer is written only with the GIL held, one whole private chunk at a
    time, so another thread never sees it part-way through a chunk (before, the dump was read
    straight into it with the GIL released, page by page)."""
    import threading

    pages = 2 * INTO_CHUNK // 4096
    p, _ = guest(tmp_path, add=reversed_pages(pages))
    buf = bytearray(pages * 4096)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(bytes(buf[::4096]).count(0))  # pages not yet written

    with vmcoreinfo.open(p) as d:
        d.translate(VMAP)
        w = threading.Thread(target=watch)
        w.start()
        try:
            while not seen:
                time.sleep(0.001)
            d.read_virt_into(VMAP, buf)
        finally:
            done.set()
            w.join()
        assert buf == d.read_virt(VMAP, len(buf))
    per_chunk = INTO_CHUNK // 4096
    assert len(seen) > 1
    torn = sorted({n for n in seen if n % per_chunk})
    assert not torn, f"the buffer was seen with {torn[:5]} pages unwritten, not a whole number of chunks"
