"""The kernel log and kernel symbols through the Python API and the CLI, on ELF dumps built here
(x86_64 page tables from test_kview.guest, with a printk ring and kallsyms tables written into
the kernel image), and on the committed fixtures. The real guests are covered by
tests/realguest/test_kview_log_realguest.py.
"""

from __future__ import annotations

import pathlib
import struct
import subprocess
import sys

import pytest
import vmcoreinfo

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from helpers import FIXTURES  # noqa: E402
from test_kview import EM_X86_64, PHYS_BASE, START_KERNEL_MAP, Mem, elf, guest  # noqa: E402

BASE = 0xFFFFFFFF84D00000  # inside the 2 MiB pages test_kview.guest maps
PRB_PTR, RB, DESCS, INFOS, DATA = BASE, BASE + 0x100, BASE + 0x1000, BASE + 0x2000, BASE + 0x3000
KS = BASE + 0x10000  # kallsyms tables
W = 8
ID_MASK = (1 << 62) - 1

RING_KEYS = f"""SYMBOL(prb)={PRB_PTR:x}
SIZE(printk_ringbuffer)=88
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)=24
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)=88
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
OFFSET(printk_info.caller_id)=20
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
SIZE(atomic_long_t)=8
OFFSET(atomic_long_t.counter)=0
"""


def pa(va: int) -> int:
    return va - START_KERNEL_MAP + PHYS_BASE


def write_ring(
    mem: Mem,
    msgs: list[bytes],
    states: dict[int, int] | None = None,
    count_bits: int = 2,
    size_bits: int = 7,
    first_id: int = ID_MASK - 2,
) -> list[tuple[int, bytes, int, int]]:
    """Write `msgs` as the kernel's printk ring would hold them (blocks that would reach the end
    of the data ring stored at 0; the oldest records dropped); return the expected records as
    (seq, text, level, caller_id)."""
    count, dsize = 1 << count_bits, 1 << size_bits
    live: list[tuple[int, int, int, int, bytes]] = []  # id, begin, next, index, text
    lpos, rid = 0, first_id
    data = bytearray(b"\xee" * dsize)
    for i, m in enumerate(msgs):
        size = -(-(W + len(m)) // W) * W
        begin, nxt = lpos, lpos + size
        wraps = begin // dsize != nxt // dsize
        if wraps:
            nxt = nxt // dsize * dsize + size
        lpos = nxt
        while len(live) >= count or (live and live[0][1] + dsize < nxt):
            live.pop(0)
        at = 0 if wraps else begin % dsize
        data[at : at + W] = struct.pack("<Q", rid)
        data[at + W : at + W + len(m)] = m
        live.append((rid, begin, nxt, i, m))
        rid = (rid + 1) & ID_MASK
    descs, infos = bytearray(24 * count), bytearray(88 * count)
    states = states or {}
    want = []
    for rid, begin, nxt, i, m in live:
        slot = rid % count
        st = states.get(i, 2)
        struct.pack_into("<QQQ", descs, slot * 24, rid | (st << 62), begin, nxt)
        caller = (0x80000000 | i) if i % 2 else 100 + i
        struct.pack_into("<QQHBBI", infos, slot * 88, 7000 + i, 1_000_000_000 * i + 999_999, len(m), 0, (i % 8) << 5, caller)
        if st in (1, 2):
            want.append((7000 + i, m, i % 8, caller))
    rb = bytearray(88)
    struct.pack_into("<IxxxxQQQQ", rb, 0, count_bits, DESCS, INFOS, live[-1][0], live[0][0])
    struct.pack_into("<IxxxxQ", rb, 48, size_bits, DATA)
    mem.write(pa(PRB_PTR), struct.pack("<Q", RB))
    mem.write(pa(RB), rb)
    mem.write(pa(DESCS), descs)
    mem.write(pa(INFOS), infos)
    mem.write(pa(DATA), data)
    return want


def rewrite(p: pathlib.Path, mem: Mem, extra: str = "") -> None:
    with vmcoreinfo.open(p) as d:
        text = d.vmcoreinfo.raw
    p.write_bytes(elf(EM_X86_64, bytes(text) + extra.encode(), mem))


MSGS = [b"Linux version 6.1.0-test", b"second", b"multi\nline", b"ctrl\x07 \xc3\xa9", b"fifth message", b"sixth"]


def log_guest(tmp_path: pathlib.Path, **kw: object) -> tuple[pathlib.Path, list[tuple[int, bytes, int, int]]]:
    p, mem = guest(tmp_path, extra_text=RING_KEYS)
    want = write_ring(mem, MSGS, **kw)  # type: ignore[arg-type]
    rewrite(p, mem)
    return p, want


def test_kernel_log_records(tmp_path: pathlib.Path) -> None:
    p, want = log_guest(tmp_path, states={4: 0})
    texts = [w[1] for w in want]
    assert texts[0] != MSGS[0] and texts[-1] == b"sixth" and b"ctrl\x07 \xc3\xa9" in texts, "the ring wrapped"
    assert b"fifth message" not in texts, "record 4 is reserved"
    with vmcoreinfo.open(p) as d:
        log = d.kernel_log()
    assert [(r.seq, r.text.encode(), r.level, r.caller_id) for r in log] == want
    r = next(r for r in log if r.seq == 7003)
    assert isinstance(r, vmcoreinfo.LogRecord)
    assert (r.timestamp_ns, r.facility, r.text) == (3_000_999_999, 0, "ctrl\x07 é")
    assert "LogRecord(seq=7003" in repr(r)
    with pytest.raises(AttributeError):
        r.seq = 1  # type: ignore[misc]


def test_dmesg_format_and_caller_column(tmp_path: pathlib.Path) -> None:
    p, _ = log_guest(tmp_path, count_bits=4, size_bits=9)
    with vmcoreinfo.open(p) as d:
        plain, cid = d.dmesg(), d.dmesg(caller_id=True)
    assert plain.splitlines(keepends=True)[:5] == [
        "[    0.000999] Linux version 6.1.0-test\n",
        "[    1.000999] second\n",
        "[    2.000999] multi\n",
        "               line\n",
        "[    3.000999] ctrl\\x07 \\xc3\\xa9\n",
    ]
    assert cid.splitlines()[:4] == [
        "[    0.000999] [    T100] Linux version 6.1.0-test",
        "[    1.000999] [      C1] second",
        "[    2.000999] [    T102] multi",
        "                          line",
    ]


def test_cli_dmesg_and_exit_codes(tmp_path: pathlib.Path) -> None:
    p, _ = log_guest(tmp_path, count_bits=4, size_bits=9)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vmcoreinfo", *args], capture_output=True, text=True, timeout=60)

    cp = run("dmesg", str(p))
    assert cp.returncode == 0 and cp.stdout.startswith("[    0.000999] Linux version 6.1.0-test\n"), cp.stderr
    cp = run("dmesg", "--caller-id", str(p))
    assert cp.stdout.startswith("[    0.000999] [    T100] Linux"), cp.stderr
    assert run("dmesg", str(FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core")).returncode == 3
    assert run("dmesg", str(tmp_path / "missing.core")).returncode == 1
    assert run("dmesg").returncode == 2
    assert run("sym", str(p)).returncode == 2


def test_reduced_fixture_has_no_log_pages(tmp_path: pathlib.Path) -> None:
    """The committed fixture keeps only the note's pages: the log is absent, never invented."""
    with vmcoreinfo.open(FIXTURES / "x86_64-qemu-elf.core") as d:
        with pytest.raises((vmcoreinfo.AbsentMemoryError, vmcoreinfo.UnmappedError)):
            d.kernel_log()
        with pytest.raises((vmcoreinfo.AbsentMemoryError, vmcoreinfo.UnmappedError)):
            d.symbols


def test_missing_log_keys_are_named(tmp_path: pathlib.Path) -> None:
    p, mem = guest(tmp_path)
    with vmcoreinfo.open(p) as d:
        with pytest.raises(vmcoreinfo.UnsupportedFormatError, match=r"SYMBOL\(prb\) or SYMBOL\(log_buf\)"):
            d.kernel_log()
        with pytest.raises(vmcoreinfo.UnsupportedFormatError, match=r"SYMBOL\(kallsyms_names\)"):
            d.symbols


# ----------------------------------------------------------------------------- kallsyms

SYMS = [
    ("Afixed_percpu_data", 0),
    ("T_text", 0xFFFFFFFF84A00000),
    ("T_stext", 0xFFFFFFFF84A00000),
    ("tstatic_fn", 0xFFFFFFFF84A00040),
    ("Tbig_" + "y" * 200, 0xFFFFFFFF84A00100),
    ("tstatic_fn", 0xFFFFFFFF84A00200),
    ("Djiffies", 0xFFFFFFFF84B00000),
]


def write_kallsyms(mem: Mem, syms: list[tuple[str, int]] = SYMS, num: int | None = None) -> str:
    """Tables as scripts/kallsyms.c lays them out (absolute-percpu offsets, as x86_64 6.1 has);
    one-character tokens plus "_s" (200) and "text" (201)."""
    table, index = bytearray(), bytearray()
    for b in range(256):
        index += struct.pack("<H", len(table))
        table += (bytes([b]) if 0 < b < 128 else b"_s" if b == 200 else b"text" if b == 201 else b"?") + b"\0"
    names = bytearray()
    for n, _ in syms:
        codes = n.encode().replace(b"_s", b"\xc8").replace(b"text", b"\xc9")
        names += bytes([0x80 | len(codes) & 0x7F, len(codes) >> 7]) if len(codes) >= 0x80 else bytes([len(codes)])
        names += codes
    base = min(a for _, a in syms if a)
    offs = b"".join(struct.pack("<i", a if a < 0x80000000 else base - 1 - a) for _, a in syms)
    addrs = {
        "offsets": KS,
        "relative_base": KS + 0x1000,
        "num_syms": KS + 0x1008,
        "names": KS + 0x1010,
        "token_table": KS + 0x3000,
        "token_index": KS + 0x3800,
    }
    mem.write(pa(addrs["offsets"]), offs)
    mem.write(pa(addrs["relative_base"]), struct.pack("<Q", base))
    mem.write(pa(addrs["num_syms"]), struct.pack("<I", len(syms) if num is None else num))
    mem.write(pa(addrs["names"]), names)
    mem.write(pa(addrs["token_table"]), table)
    mem.write(pa(addrs["token_index"]), index)
    return "".join(f"SYMBOL(kallsyms_{k})={v:x}\n" for k, v in addrs.items()) + "SYMBOL(_stext)=ffffffff84a00000\n"


def sym_guest(tmp_path: pathlib.Path, **kw: object) -> pathlib.Path:
    p, mem = guest(tmp_path)
    rewrite(p, mem, write_kallsyms(mem, **kw))  # type: ignore[arg-type]
    return p


def test_symbols(tmp_path: pathlib.Path) -> None:
    p = sym_guest(tmp_path)
    with vmcoreinfo.open(p) as d:
        s = d.symbols
        assert d.symbols is s, "decoded once, then cached"
    assert isinstance(s, vmcoreinfo.KernelSymbols)
    assert len(s) == len(SYMS) and s.encoding == "absolute-percpu"
    assert list(s) == [(n[1:], a, n[0]) for n, a in SYMS]
    assert s.address("_stext") == 0xFFFFFFFF84A00000
    assert s.address("static_fn") == 0xFFFFFFFF84A00040, "the first of two symbols of one name"
    assert s.address("big_" + "y" * 200) == 0xFFFFFFFF84A00100, "a 2-byte name length"
    with pytest.raises(KeyError):
        s.address("no_such_symbol")
    assert "jiffies" in s and "nope" not in s
    assert s.lookup(0xFFFFFFFF84A00000) == ("_text", 0), "the first of the symbols at one address"
    assert s.lookup(0xFFFFFFFF84A00041) == ("static_fn", 1)
    assert s.lookup(0xFFFFFFFF84AFFFFF) == ("static_fn", 0xFFFFF - 0x200)
    assert s.lookup(5) == ("fixed_percpu_data", 5)
    it = iter(s)
    assert next(it) == ("fixed_percpu_data", 0, "A")
    assert len(list(it)) == len(SYMS) - 1


def test_cli_sym(tmp_path: pathlib.Path) -> None:
    p = sym_guest(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vmcoreinfo", "sym", str(p), *args], capture_output=True, text=True, timeout=60
        )

    cp = run("_stext", "0xffffffff84a00041")
    assert (cp.returncode, cp.stdout) == (0, "ffffffff84a00000 _stext\nffffffff84a00041 static_fn+0x1\n"), cp.stderr
    cp = run("no_such_symbol")
    assert cp.returncode == 1 and "no_such_symbol" in cp.stderr
    assert run("0xnothex").returncode == 2
