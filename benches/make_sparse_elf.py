#!/usr/bin/env python3
"""Make a huge *sparse* QEMU ELF dump from a real one, keeping its real headers and notes.

    python3 benches/make_sparse_elf.py SRC.core DST.core --size 64G [--real 512M]

What it does (ELF64 little-endian QEMU dumps, the layout QEMU's dump-guest-memory writes):
  * The ELF header, the program header table, the section header table (QEMU puts it right
    after the ELF header) and the PT_NOTE segment are copied byte for byte to the same file
    offsets, so the VMCOREINFO note and every other note are verbatim.
  * The PT_LOAD segments keep their order, p_paddr/p_vaddr and p_flags; the PT_LOAD with the
    highest physical address at or above 4 GiB (QEMU's "above 4G" RAM block, so SRC must come
    from a guest with more RAM than fits below 4 GiB, e.g. MEM=8G) is grown so that the
    PT_LOADs together cover SIZE bytes of guest memory (no two may overlap). p_offset values
    are re-laid contiguously after the notes, as QEMU does.
  * The first REAL bytes of guest memory (in PT_LOAD order) are copied from SRC at their new
    offsets (all-zero 8 MiB chunks are left as holes); everything else is a hole: the file is
    made with ftruncate(), so it takes at most REAL + a few KiB of disk while stat() reports
    ~SIZE. Holes read as zero pages.
  * The string table QEMU puts at the very end (section 1, .shstrtab) is moved to the new end
    and its sh_offset updated; no other byte of the headers changes.
Readers therefore see a real guest's headers and VMCOREINFO and a SIZE-byte memory map.
"""

import argparse
import os
import struct
import sys

PT_LOAD, PT_NOTE = 1, 4


def parse_size(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--size", default="64G", help="guest memory the PT_LOADs cover (default 64G)")
    ap.add_argument("--real", default="512M", help="bytes of real guest memory copied from SRC (default 512M)")
    a = ap.parse_args()
    size, real_budget = parse_size(a.size), parse_size(a.real)

    with open(a.src, "rb") as f:
        src = f.fileno()
        eh = os.pread(src, 64, 0)
        if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
            sys.exit("only ELF64 little-endian dumps are supported")
        (e_phoff, e_shoff) = struct.unpack_from("<QQ", eh, 32)
        (e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHHHH", eh, 54)
        if e_phnum == 0xFFFF:
            sys.exit("PN_XNUM dumps are not supported by this tool")
        ph_raw = bytearray(os.pread(src, e_phentsize * e_phnum, e_phoff))
        phdrs = [list(struct.unpack_from("<IIQQQQQQ", ph_raw, i * e_phentsize)) for i in range(e_phnum)]
        # p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
        notes = [p for p in phdrs if p[0] == PT_NOTE]
        loads = [p for p in phdrs if p[0] == PT_LOAD]
        if not loads:
            sys.exit("no PT_LOAD")
        head_end = max(
            [e_phoff + e_phentsize * e_phnum, 64]
            + [p[2] + p[5] for p in notes]
            + ([e_shoff + e_shentsize * e_shnum] if e_shnum else [])
        )
        head = os.pread(src, head_end, 0)  # ELF header, section headers, phdrs, notes: verbatim
        orig = [(p[2], p[5]) for p in loads]  # (offset, filesz) in SRC
        high = [p for p in loads if p[4] >= 1 << 32]
        if not high:
            sys.exit(
                "SRC has no PT_LOAD at or above 4 GiB: use the dump of a guest with more RAM than fits below 4 GiB (e.g. MEM=8G)"
            )
        grow = max(high, key=lambda p: p[4])
        others = sum(p[6] for p in loads if p is not grow)
        if size <= others:
            sys.exit(f"--size must exceed the other PT_LOADs ({others} bytes)")
        grow[5] = grow[6] = size - others
        spans = sorted((p[4], p[4] + p[6]) for p in loads)
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            sys.exit("grown PT_LOADs would overlap")
        off = min(p[2] for p in loads)  # QEMU: data starts right after the headers and notes
        off = max(off, head_end)
        for p in loads:
            p[2] = off
            off += p[5]
        for i, p in enumerate(phdrs):
            struct.pack_into("<IIQQQQQQ", ph_raw, i * e_phentsize, *p)
        shstr = None
        if e_shnum > e_shstrndx > 0:
            shoff_field = e_shoff + e_shstrndx * e_shentsize + 24
            old_shstr_off, shstr_size = struct.unpack_from("<QQ", os.pread(src, 16, shoff_field), 0)
            shstr = os.pread(src, shstr_size, old_shstr_off)
        with open(a.dst, "wb") as g:
            out = g.fileno()
            os.pwrite(out, head, 0)
            os.pwrite(out, bytes(ph_raw), e_phoff)
            end = off
            if shstr is not None:
                os.pwrite(out, struct.pack("<Q", end), shoff_field)
                os.pwrite(out, shstr, end)
                end += len(shstr)
            copied = 0
            for p, (o_off, o_filesz) in zip(loads, orig):
                n = min(o_filesz, p[5], real_budget - copied)
                pos = 0
                while pos < n:
                    chunk = os.pread(src, min(8 << 20, n - pos), o_off + pos)
                    if not chunk:
                        break
                    if chunk.count(0) != len(chunk):  # keep zero chunks as holes
                        os.pwrite(out, chunk, p[2] + pos)
                    pos += len(chunk)
                copied += n
            os.ftruncate(out, end)
    st = os.stat(a.dst)
    print(
        f"{a.dst}: {st.st_size} bytes, {st.st_blocks * 512} on disk, {len(loads)} PT_LOADs, "
        f"{size} bytes of guest memory, {copied} real bytes copied"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
