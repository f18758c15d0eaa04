#!/usr/bin/python3
"""libkdumpfile's translation of kernel virtual addresses in one dump, as JSON on stdout.

Runs under the Debian interpreter (/usr/bin/python3), where python3-libkdumpfile installs the
`kdumpfile` and `addrxlat` modules; the tests call it in a subprocess (a wrong arch.name can
crash libkdumpfile 0.5.x).

usage: kdumpfile_translate.py DUMP ARCH VADDR_HEX...
  ARCH  value for arch.name when libkdumpfile cannot tell it from the file ("-" for none)

Output: {"ok": bool, "error": str|null, "pa": {"<vaddr hex>": int|null},
         "errors": {"<vaddr hex>": "<exception>"}}
"""

import json
import sys


def main() -> int:
    path, arch, vaddrs = sys.argv[1], sys.argv[2], sys.argv[3:]
    out = {"ok": False, "error": None, "pa": {}, "errors": {}}
    try:
        import addrxlat
        import kdumpfile

        k = kdumpfile.kdumpfile(path)
        if k.attr.get("arch.name") is None and arch != "-":
            k.attr["arch.name"] = arch
        k.attr["addrxlat.ostype"] = "linux"
        ctx, system = k.get_addrxlat_ctx(), k.get_addrxlat_sys()
    except Exception as e:  # noqa: BLE001
        out["error"] = f"setup: {type(e).__name__}: {e}"
        print(json.dumps(out))
        return 0
    for v in vaddrs:
        try:
            fa = addrxlat.FullAddress(addrxlat.KVADDR, int(v, 16))
            fa.conv(addrxlat.KPHYSADDR, ctx, system)
            out["pa"][v] = fa.addr
        except Exception as e:  # noqa: BLE001
            out["pa"][v] = None
            out["errors"][v] = f"{type(e).__name__}: {e}"
    out["ok"] = any(p is not None for p in out["pa"].values())
    if not out["ok"]:
        out["error"] = next(iter(out["errors"].values()), "no addresses")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
