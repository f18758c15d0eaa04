#!/usr/bin/python3
"""libkdumpfile's kernel-address translation and virtual reads, timed in its own process (Debian's
python3-libkdumpfile imports only under /usr/bin/python3).

usage: kview_kdumpfile.py DUMP ARCH translate ADDRS_FILE     (ADDRS_FILE: little-endian u64s)
       kview_kdumpfile.py DUMP ARCH read VADDR_HEX TOTAL CHUNK
Prints one JSON object: {"ok", "error", "seconds", "count", "checksum"}.
"""

import json
import struct
import sys
import time


def main() -> int:
    path, arch, op = sys.argv[1:4]
    out = {"ok": False, "error": None}
    try:
        import addrxlat
        import kdumpfile

        k = kdumpfile.kdumpfile(path)
        if k.attr.get("arch.name") is None and arch != "-":
            k.attr["arch.name"] = arch
        k.attr["addrxlat.ostype"] = "linux"
        ctx, system = k.get_addrxlat_ctx(), k.get_addrxlat_sys()
        if op == "translate":
            data = open(sys.argv[4], "rb").read()
            addrs = struct.unpack(f"<{len(data) // 8}Q", data)
            fa_cls, kv, kp = addrxlat.FullAddress, addrxlat.KVADDR, addrxlat.KPHYSADDR
            acc = 0
            t0 = time.perf_counter()
            for a in addrs:
                fa = fa_cls(kv, a)
                fa.conv(kp, ctx, system)
                acc ^= fa.addr
            out["seconds"] = time.perf_counter() - t0
            out["count"], out["checksum"] = len(addrs), acc
        else:
            va, total, chunk = int(sys.argv[4], 16), int(sys.argv[5]), int(sys.argv[6])
            acc = 0
            t0 = time.perf_counter()
            for off in range(0, total, chunk):
                b = k.read(addrxlat.KVADDR, va + off, chunk)
                acc ^= b[0]
            out["seconds"] = time.perf_counter() - t0
            out["count"], out["checksum"] = total, acc
        out["ok"] = True
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
