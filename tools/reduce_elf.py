#!/usr/bin/env python3
"""Reduce a real ELF core dump to a small fixture that keeps its real headers and notes.

    tools/reduce_elf.py IN.core OUT.core --keep PADDR[:LEN] [--keep ...] [--drop-vmcoreinfo]

What is kept verbatim: the ELF header (but e_phnum and e_shoff), the section headers and
.shstrtab bytes, the program header table's position (e_phoff) and every PT_NOTE segment's bytes
at their original file offsets. What changes: the PT_LOAD list is replaced by one PT_LOAD per
--keep window (physical range; LEN defaults to one 4 KiB page), each cut from the original
PT_LOAD that holds it (p_vaddr shifted by the same amount as p_paddr, p_filesz = p_memsz = LEN,
data copied verbatim); every other memory range is dropped, so the reduced dump reports it
absent. .shstrtab moves to the end of the file. With --drop-vmcoreinfo the VMCOREINFO note is
removed from the PT_NOTE segment (which shrinks accordingly), to model a guest without the
qemu_fw_cfg driver. The input is read with seeks, never whole.
"""

import argparse
import struct
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--keep", action="append", default=[], help="PADDR[:LEN] physical window to keep (hex ok)")
    ap.add_argument("--drop-vmcoreinfo", action="store_true")
    a = ap.parse_args()

    f = open(a.src, "rb")
    ident = f.read(16)
    if ident[:4] != b"\x7fELF":
        sys.exit(f"{a.src}: not ELF")
    c64 = ident[4] == 2
    e = "<" if ident[5] == 1 else ">"
    f.seek(0)
    if c64:
        ehdr_fmt, ph_fmt = e + "16sHHIQQQIHHHHHH", e + "IIQQQQQQ"
    else:
        ehdr_fmt, ph_fmt = e + "16sHHIIIIIHHHHHH", e + "IIIIIIII"
    ehdr = list(struct.unpack(ehdr_fmt, f.read(struct.calcsize(ehdr_fmt))))
    phoff, shoff = ehdr[5], ehdr[6]
    phentsize, phnum, shentsize, shnum = ehdr[9], ehdr[10], ehdr[11], ehdr[12]
    f.seek(phoff)
    phdrs = [struct.unpack(ph_fmt, f.read(phentsize)) for _ in range(phnum)]

    def fields(p):  # -> type, offset, vaddr, paddr, filesz, memsz, flags, align
        if c64:
            t, fl, off, va, pa, fs, ms, al = p
        else:
            t, off, va, pa, fs, ms, fl, al = p
        return t, off, va, pa, fs, ms, fl, al

    def pack(t, off, va, pa, fs, ms, fl, al):
        if c64:
            return struct.pack(ph_fmt, t, fl, off, va, pa, fs, ms, al)
        return struct.pack(ph_fmt, t, off, va, pa, fs, ms, fl, al)

    notes = [fields(p) for p in phdrs if fields(p)[0] == 4]
    loads = [fields(p) for p in phdrs if fields(p)[0] == 1]
    windows = []
    for k in a.keep:
        pa, _, ln = k.partition(":")
        windows.append((int(pa, 0), int(ln, 0) if ln else 4096))

    out_notes = []
    for t, off, va, pa, fs, _ms, fl, al in notes:
        f.seek(off)
        data = f.read(fs)
        if a.drop_vmcoreinfo:
            data = drop_vmcoreinfo(data, e)
        out_notes.append((off, data, (t, off, va, pa, len(data), len(data), fl, al)))

    new_phnum = len(out_notes) + len(windows)
    end_of_headers = phoff + new_phnum * phentsize
    for off, data, _ in out_notes:
        end_of_headers = max(end_of_headers, off + len(data))
    if shoff:
        end_of_headers = max(end_of_headers, shoff + shnum * shentsize)
    pos = (end_of_headers + 15) & ~15
    new_loads = []
    for wpa, wlen in windows:
        src = next((ld for ld in loads if ld[3] <= wpa and wpa + wlen <= ld[3] + ld[4]), None)
        if src is None:
            sys.exit(f"no PT_LOAD holds file bytes for physical {wpa:#x}+{wlen:#x}")
        t, off, va, pa, fs, ms, fl, al = src
        delta = wpa - pa
        f.seek(off + delta)
        new_loads.append(((1, pos, va + delta, wpa, wlen, wlen, fl, al), f.read(wlen)))
        pos += wlen

    out = bytearray(pos)
    ehdr[10] = new_phnum
    shstr = b""
    if shoff and shnum:
        f.seek(shoff)
        shdrs = bytearray(f.read(shnum * shentsize))
        # .shstrtab (e_shstrndx) moves to the end of the reduced file.
        idx = ehdr[13]
        so_fmt = e + ("Q" if c64 else "I")
        base = idx * shentsize + (24 if c64 else 16)
        size_at = idx * shentsize + (32 if c64 else 20)
        (str_off,) = struct.unpack_from(so_fmt, shdrs, base)
        (str_size,) = struct.unpack_from(so_fmt, shdrs, size_at)
        f.seek(str_off)
        shstr = f.read(str_size)
        struct.pack_into(so_fmt, shdrs, base, len(out))
        out[shoff : shoff + len(shdrs)] = shdrs
    out[: struct.calcsize(ehdr_fmt)] = struct.pack(ehdr_fmt, *ehdr)
    ph = b"".join(pack(*n[2]) for n in out_notes) + b"".join(pack(*ld[0]) for ld in new_loads)
    out[phoff : phoff + len(ph)] = ph
    for off, data, _ in out_notes:
        out[off : off + len(data)] = data
    for hdr, data in new_loads:
        out[hdr[1] : hdr[1] + len(data)] = data
    out += shstr
    with open(a.dst, "wb") as o:
        o.write(out)
    print(f"{a.dst}: {len(out)} bytes, {len(out_notes)} PT_NOTE, {len(new_loads)} PT_LOAD")
    return 0


def drop_vmcoreinfo(data: bytes, e: str) -> bytes:
    out, i = bytearray(), 0
    while i + 12 <= len(data):
        namesz, descsz, _ = struct.unpack_from(e + "III", data, i)
        end = i + 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
        if data[i + 12 : i + 12 + namesz] != b"VMCOREINFO\0":
            out += data[i:end]
        i = end
    return bytes(out)


if __name__ == "__main__":
    sys.exit(main())
