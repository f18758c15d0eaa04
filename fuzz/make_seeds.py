#!/usr/bin/env python3
"""Seed inputs for the fuzz targets, all derived from the real fixtures in tests/fixtures/.

    python3 fuzz/make_seeds.py [OUTDIR]      (default: fuzz/seeds/<target>/)

* elf: the ELF fixtures (*.core, *.elf).
* notes: their PT_NOTE segments, and the kdump fixtures' note blobs.
* text: the *.VMCOREINFO.txt fixtures.
* fwcfg: the real 16-byte etc/vmcoreinfo entries from *guest-report.txt, alone and followed by
  the real VMCOREINFO note bytes (what the entry points at).
* kdump: the kdump fixtures, plus smaller copies keeping 1-3 real pages (tools/reduce_kdump.py
  `build`, so headers, notes and page data stay verbatim) and a 512-byte-block file made here.
* flattened: the .flat fixtures and the small copies flattened in both producers' styles.
* dump: all of the above dumps.
`scripts/fuzz-smoke.sh` and `cargo fuzz cmin` turn seeds into the committed fuzz/corpus/.
"""

import argparse
import contextlib
import io
import pathlib
import struct
import sys
import tempfile
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tools"))
import reduce_kdump as rk  # noqa: E402


def pt_notes(data):
    """PT_NOTE segment bytes of an ELF64/ELF32 little-endian core."""
    c64 = data[4] == 2
    if c64:
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    else:
        phoff, = struct.unpack_from("<I", data, 0x1C)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x2A)
    out = []
    for i in range(phnum):
        o = phoff + i * phentsize
        if c64:
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, o)
        else:
            p_type, p_offset, _, _, p_filesz = struct.unpack_from("<IIIII", data, o)
        if p_type == 4:
            out.append(data[p_offset:p_offset + p_filesz])
    return out


def note(name, ntype, desc):
    n = name + b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)
    return struct.pack("<III", len(n), len(desc), ntype) + pad(n) + pad(desc)


def tiny_kdump():
    """A little-endian v6 kdump with 512-byte blocks: raw, zlib and shared zero pages, notes."""
    bs = 512
    text = b"OSRELEASE=6.1.0-48-cloud-amd64\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff8f00a000\nNUMBER(phys_base)=-167772160\n"
    notes = note(b"VMCOREINFO", 0, text)
    hdr = bytearray(bs)
    hdr[:8] = b"KDUMP   "
    struct.pack_into("<i", hdr, 8, 6)
    for i, s in enumerate([b"Linux", b"tiny", b"6.1.0-48-cloud-amd64", b"#1 SMP", b"x86_64", b"(none)"]):
        hdr[12 + 65 * i:12 + 65 * i + len(s)] = s
    struct.pack_into("<IIIIII", hdr, 424, rk.ZLIB, bs, 2, 2, 16, 16)
    sub = bytearray(2 * bs)
    notes_off = bs + 104
    text_off = notes_off + 12 + 12  # the desc of the note
    struct.pack_into("<QiiQQQQQQQQQQQ", sub, 0, 0, 31, 0, 0, 0, text_off, len(text), notes_off, len(notes), 0, 0, 0, 0, 16)
    sub[104:104 + len(notes)] = notes
    bm1 = bytearray(bs)
    bm2 = bytearray(bs)
    present = [0, 1, 2, 3, 5]
    for p in present + [4, 6]:
        bm1[p >> 3] |= 1 << (p & 7)
    for p in present:
        bm2[p >> 3] |= 1 << (p & 7)
    desc_off = bs * 5
    data_off = desc_off + 24 * len(present)
    zero = bytes(bs)
    raw = bytes(range(256)) * 2
    comp = zlib.compress(bytes([7]) * bs)
    blocks = [zero, raw, comp]
    offs = []
    pos = data_off
    for b in blocks:
        offs.append(pos)
        pos += len(b)
    descs = b""
    for p, (blk, flags) in zip(present, [(0, 0), (1, 0), (2, rk.ZLIB), (0, 0), (2, rk.ZLIB)]):
        descs += rk.DESC.pack(offs[blk], len(blocks[blk]), flags, 0)
    out = bytes(hdr) + bytes(sub) + bytes(bm1) + bytes(bm2) + descs + b"".join(blocks)
    return out


def flatten(data, style):
    with tempfile.TemporaryDirectory() as d:
        i, o = pathlib.Path(d, "in"), pathlib.Path(d, "out")
        i.write_bytes(data)
        with contextlib.redirect_stdout(io.StringIO()):
            rk.cmd_flatten(argparse.Namespace(input=str(i), output=str(o), style=style))
        return o.read_bytes()


def kview_seeds():
    """Kernel memory in the kview target's layout (input byte 0: flags; memory at 0x1000): a
    small printk ring (or legacy log_buf) and kallsyms tables that decode."""
    B = 0x1000
    m = bytearray(0x1000)
    # lockless ring, 8-byte longs: 4 descriptors, 128 data bytes, 2 records
    struct.pack_into("<Q", m, 0, B + 0x10)
    struct.pack_into("<IxxxxQQQQ", m, 0x10, 2, B + 0x80, B + 0x100, 1, 0)
    struct.pack_into("<IxxxxQ", m, 0x10 + 48, 7, B + 0x280)
    for i, (text, begin) in enumerate([(b"Linux version fuzz", 0), (b"second\nline", 32)]):
        nxt = begin + (8 + len(text) + 7) // 8 * 8
        struct.pack_into("<QQQ", m, 0x80 + 24 * i, i | (2 << 62), begin, nxt)
        struct.pack_into("<QQHBBI", m, 0x100 + 88 * i, i, 1_000_000 * i, len(text), 0, 6 << 5, 1 + i)
        struct.pack_into("<Q", m, 0x280 + begin, i)
        m[0x280 + begin + 8:0x280 + begin + 8 + len(text)] = text
    # legacy log_buf at 0xa00 (128 bytes): one record
    struct.pack_into("<QIII", m, 0x900, B + 0xA00, 128, 0, 24)
    struct.pack_into("<QHHH", m, 0xA00, 5, 24, 4, 0)
    m[0xA10:0xA14] = b"boot"
    # kallsyms: 3 symbols, base-relative from 0x10000 (SYMBOL(_stext) is 0x11000)
    names = [b"T_stext", b"tfoo", b"Dbar"]
    struct.pack_into("<IxxxxQ", m, 0x300, len(names), B + 0x10000)
    struct.pack_into("<3I", m, 0x310, 0, 0x10, 0x20)
    pos = 0x340
    for n in names:
        m[pos] = len(n)
        m[pos + 1:pos + 1 + len(n)] = n
        pos += 1 + len(n)
    table = bytearray()
    for b in range(256):
        struct.pack_into("<H", m, 0x400 + 2 * b, len(table))
        table += bytes([b if 0 < b < 128 else 63]) + b"\0"
    m[0x600:0x600 + len(table)] = table
    return {"ring64": bytes([0]) + bytes(m), "legacy64": bytes([4]) + bytes(m), "zeros": bytes(0x1001)}


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "seeds"
    seeds = {t: {} for t in ["elf", "notes", "text", "kdump", "flattened", "fwcfg", "dump", "kview"]}
    seeds["kview"].update(kview_seeds())
    elves = sorted(FIX.glob("*.core")) + sorted(FIX.glob("*.elf"))
    for p in elves:
        b = p.read_bytes()
        seeds["elf"][p.name] = b
        seeds["dump"][p.name] = b
        for i, n in enumerate(pt_notes(b)):
            seeds["notes"][f"{p.stem}.note{i}"] = n
    for p in sorted(FIX.glob("*.VMCOREINFO.txt")):
        seeds["text"][p.name] = p.read_bytes()
    real_note = pt_notes((FIX / "x86_64-qemu-elf.core").read_bytes())[0]
    vmci = real_note[real_note.rindex(b"VMCOREINFO\0") - 12:]
    for p in sorted(FIX.glob("*guest-report.txt")):
        for ln in p.read_text().splitlines():
            if ln.startswith("RD:   00000000 "):
                raw = bytes(int(h, 16) for h in ln.split("|")[0].split()[2:])
                seeds["fwcfg"][p.stem] = raw
                seeds["fwcfg"][p.stem + ".with-note"] = raw + vmci
    kdumps = sorted((FIX / "kdump").glob("*.kdump"))
    small = {}
    for p in kdumps:
        b = p.read_bytes()
        seeds["kdump"][p.name] = b
        seeds["dump"][p.name] = b
        try:
            kd = rk.Kdump(b)
        except SystemExit:  # tools/reduce_kdump.py reads the 64-bit layout only: the ARM32 fixture is seeded whole
            continue
        _, _, no, ns = kd.sub_locations()
        if ns:
            seeds["notes"][p.stem + ".notes"] = b[no:no + ns]
        for k in (1, 3):
            if "snappy" in p.name or "lzo" in p.name or "zstd" in p.name or k == 3:
                small[f"{p.stem}.keep{k}"] = rk.build(kd, kd.present[:k])
    small["tiny512"] = tiny_kdump()
    for name, b in small.items():
        seeds["kdump"][name] = b
        seeds["dump"][name] = b
    for p in sorted((FIX / "kdump").glob("*.flat")):
        seeds["flattened"][p.name] = p.read_bytes()
        seeds["dump"][p.name] = p.read_bytes()
    for name, b in small.items():
        for style in ("md", "qemu"):
            f = flatten(b, style)
            seeds["flattened"][f"{name}.{style}.flat"] = f
            seeds["dump"][f"{name}.{style}.flat"] = f
    for t, files in seeds.items():
        d = out / t
        d.mkdir(parents=True, exist_ok=True)
        for name, b in files.items():
            (d / name).write_bytes(b)
        print(f"{t}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


if __name__ == "__main__":
    main()
