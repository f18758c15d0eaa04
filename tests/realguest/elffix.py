"""Header fix-up for QEMU 7.2 ELF dumps, so that makedumpfile 1.7.2 can read them.

QEMU 7.2's dump-guest-memory ELF puts a section header table right after the ELF
header and the program headers after it (e_phoff 0xc0 for ELF64), and writes
e_ehsize as sizeof(pointer) (8 / 4).  makedumpfile 1.7.2 ignores e_phoff and reads
the program headers at sizeof(Ehdr), so it fails with "Can't get the number of
PT_LOAD".  fix_copy() writes a COPY whose program headers sit right after the ELF
header (e_phoff = e_ehsize = sizeof(Ehdr)) and which has no section headers; all
segment and note data stay at their original file offsets.  The input is streamed,
never loaded whole.  The result is derived data, not QEMU's bytes.
"""

from __future__ import annotations

import os
import struct
import sys

_CHUNK = 8 << 20
PN_XNUM = 0xFFFF


class FixupError(Exception):
    pass


def fix_copy(src: str, dst: str) -> dict:
    """Write the fixed copy of `src` to `dst`; return what was changed."""
    with open(src, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            raise FixupError(f"{src}: not an ELF file")
        cls, data = ident[4], ident[5]
        if data not in (1, 2):
            raise FixupError(f"{src}: bad EI_DATA {data}")
        bo = "<" if data == 1 else ">"
        if cls == 2:
            rest_fmt, ehsize, phent = bo + "HHIQQQIHHHHHH", 64, 56
            ph_fmt = bo + "IIQQQQQQ"  # type flags offset vaddr paddr filesz memsz align
        elif cls == 1:
            rest_fmt, ehsize, phent = bo + "HHIIIIIHHHHHH", 52, 32
            ph_fmt = bo + "IIIIIIII"  # type offset vaddr paddr filesz memsz flags align
        else:
            raise FixupError(f"{src}: bad EI_CLASS {cls}")
        rest = f.read(struct.calcsize(rest_fmt))
        (
            e_type,
            e_machine,
            e_version,
            e_entry,
            e_phoff,
            e_shoff,
            e_flags,
            e_ehsize,
            e_phentsize,
            e_phnum,
            e_shentsize,
            e_shnum,
            e_shstrndx,
        ) = struct.unpack(rest_fmt, rest)
        if e_phnum == PN_XNUM:
            raise FixupError(f"{src}: e_phnum is PN_XNUM; the real count lives in section 0, which this fix-up would drop")
        if e_phentsize != phent:
            raise FixupError(f"{src}: e_phentsize {e_phentsize} != {phent}")
        f.seek(e_phoff)
        table = f.read(e_phnum * phent)
        if len(table) != e_phnum * phent:
            raise FixupError(f"{src}: program header table truncated")
        new_end = ehsize + len(table)
        for i in range(e_phnum):
            ph = struct.unpack_from(ph_fmt, table, i * phent)
            off, filesz = (ph[2], ph[5]) if cls == 2 else (ph[1], ph[4])
            if filesz and off < new_end:
                raise FixupError(f"{src}: segment {i} data at {off:#x} overlaps the moved program headers (end {new_end:#x})")
        header = ident + struct.pack(
            rest_fmt, e_type, e_machine, e_version, e_entry, ehsize, 0, e_flags, ehsize, e_phentsize, e_phnum, e_shentsize, 0, 0
        )
        size = os.fstat(f.fileno()).st_size
        with open(dst, "wb") as out:
            out.write(header)
            out.write(table)
            f.seek(new_end)
            pos = new_end
            while pos < size:
                buf = f.read(min(_CHUNK, size - pos))
                if not buf:
                    raise FixupError(f"{src}: short read at {pos:#x}")
                out.write(buf)
                pos += len(buf)
    return {"e_phoff": (e_phoff, ehsize), "e_ehsize": (e_ehsize, ehsize), "e_shnum": (e_shnum, 0), "e_phnum": e_phnum}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: elffix.py IN OUT")
    print(fix_copy(sys.argv[1], sys.argv[2]))
