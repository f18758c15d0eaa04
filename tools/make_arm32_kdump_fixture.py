#!/usr/bin/env python3
"""Make tests/fixtures/kdump/qemu-arm-zlib.kdump: a real QEMU kdump-zlib of a 32-bit ARM guest.

No guest kernel runs: QEMU (`qemu-system-arm -M virt -cpu cortex-a15 -m 2M -S`) starts paused
with a pattern page put into RAM at 0x40101000 by its generic loader (the page starts
"KDUMP32 ARM TEST", then little-endian u16 values 2*i; a second page follows), and
`dump-guest-memory` writes a kdump-zlib file over QMP. QEMU 7.2 writes it flattened;
`makedumpfile -R` reassembles it. QEMU writes the 32-bit header layout (packed sub-header) and
utsname.machine "Unknown" on ARM; with no guest driver there is no VMCOREINFO.

    tools/make_arm32_kdump_fixture.py [OUT]     (needs qemu-system-arm and makedumpfile)
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def pattern() -> bytes:
    words = b"".join((2 * i).to_bytes(2, "little") for i in range(2048))
    return b"KDUMP32 ARM TEST" + words[16:] + words


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/kdump/qemu-arm-zlib.kdump"
    with tempfile.TemporaryDirectory() as tmp:
        sock, pat, flat = (os.path.join(tmp, n) for n in ("qmp.sock", "pattern.bin", "dump.flat"))
        with open(pat, "wb") as f:
            f.write(pattern())
        qemu = subprocess.Popen(
            ["qemu-system-arm", "-M", "virt", "-cpu", "cortex-a15", "-m", "2M", "-display", "none", "-S",
             "-device", "vmcoreinfo", "-device", f"loader,file={pat},addr=0x40101000,force-raw=on",
             "-qmp", f"unix:{sock},server=on,wait=off"]
        )  # fmt: skip
        try:
            for _ in range(100):
                if os.path.exists(sock):
                    break
                time.sleep(0.1)
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            f = s.makefile("rw")
            f.readline()

            def cmd(name: str, **args: object) -> dict:
                f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
                f.flush()
                while True:
                    r = json.loads(f.readline())
                    if "return" in r or "error" in r:
                        return r

            cmd("qmp_capabilities")
            r = cmd("dump-guest-memory", paging=False, protocol=f"file:{flat}", format="kdump-zlib")
            if "error" in r:
                sys.exit(f"dump-guest-memory: {r['error']}")
            cmd("quit")
        finally:
            qemu.wait(timeout=30)
        with open(flat, "rb") as src:
            subprocess.run(["makedumpfile", "-R", out], stdin=src, check=True)
    os.chmod(out, 0o644)
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
