#!/usr/bin/env python3
"""Make the i386 fixtures from a real-guest generator run (tests/realguest/generate.py).

    tools/make_i386_fixture.py GUESTDIR [OUTDIR]     (GUESTDIR: OUT/i386; OUTDIR: tests/fixtures)

Writes, from the guest's own report and QEMU's `dump-guest-memory paging=true` ELF:
  i386-qemu-elf-paging.core        tools/reduce_elf.py of qemu-elf-paging.core: the real ELF
                                   header (ELFCLASS64 + EM_386, as QEMU writes every PC guest),
                                   notes and PT_LOAD flags/vaddrs, keeping the two pages of the
                                   VMCOREINFO note and the page holding init_uts_ns
                                   (SYMBOL(init_uts_ns) - PAGE_OFFSET 0xc0000000)
  i386-qemu-elf.VMCOREINFO.txt     the note text the guest read through /proc/kcore
  i386-qemu-elf.guest-report.txt   the guest's own serial lines (RGUEST ...)
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

PAGE_OFFSET = 0xC0000000  # Debian 686 / 686-pae: CONFIG_VMSPLIT_3G


def main() -> int:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    gd = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) == 3 else Path(__file__).resolve().parents[1] / "tests" / "fixtures"
    view = json.loads((gd / "manifest.json").read_text())["guest_view"]
    text = view["note_text"]
    m = re.search(r"^SYMBOL\(init_uts_ns\)=([0-9a-f]+)$", text, re.M)
    if not m:
        sys.exit("no SYMBOL(init_uts_ns) in the guest's VMCOREINFO")
    uts_page = (int(m.group(1), 16) - PAGE_OFFSET) & ~0xFFF
    note = view["note_paddr"]
    reduce = Path(__file__).resolve().parent / "reduce_elf.py"
    subprocess.run(
        [
            sys.executable,
            str(reduce),
            str(gd / "qemu-elf-paging.core"),
            str(out / "i386-qemu-elf-paging.core"),
            "--keep",
            f"{note:#x}:0x2000",
            "--keep",
            f"{uts_page:#x}",
        ],
        check=True,
    )
    (out / "i386-qemu-elf.VMCOREINFO.txt").write_bytes(text.encode("latin-1"))
    shutil.copyfile(gd / "guest-report.txt", out / "i386-qemu-elf.guest-report.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
