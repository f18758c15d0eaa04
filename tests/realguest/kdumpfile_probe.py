#!/usr/bin/python3
"""libkdumpfile's reading of one dump, as one JSON object on stdout.

Runs under the Debian interpreter (/usr/bin/python3), where python3-libkdumpfile
installs the `kdumpfile` module; the tests call it in a subprocess because a wrong
arch.name can crash libkdumpfile 0.5.x.

usage: kdumpfile_probe.py DUMP [ARCH]
  ARCH  value for arch.name when libkdumpfile cannot tell it from the file
        (QEMU's kdump files: "x86_64", "aarch64")

Output keys: ok, error, format, arch, arch_set_by_probe, phys_base, release,
raw_hex (the VMCOREINFO text libkdumpfile holds, hex-encoded).
"""

import json
import sys


def main() -> int:
    path = sys.argv[1]
    arch = sys.argv[2] if len(sys.argv) > 2 else None
    out = {"ok": False, "error": None}
    try:
        import kdumpfile
    except Exception as e:  # noqa: BLE001
        out["error"] = f"import kdumpfile: {type(e).__name__}: {e}"
        print(json.dumps(out))
        return 0
    try:
        k = kdumpfile.kdumpfile(path)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"open: {type(e).__name__}: {e}"
        print(json.dumps(out))
        return 0
    a = k.attr

    def get(key):
        try:
            return a[key]
        except Exception:  # noqa: BLE001
            return None

    out["format"] = get("file.format")
    out["arch"] = get("arch.name")
    out["arch_set_by_probe"] = False
    if out["arch"] is None and arch:
        a["arch.name"] = arch
        out["arch"] = arch
        out["arch_set_by_probe"] = True
    pb = get("linux.phys_base")
    out["phys_base"] = int(pb) if pb is not None else None
    rel = get("linux.uts.release")
    out["release"] = str(rel) if rel is not None else None
    raw = get("linux.vmcoreinfo.raw")
    if raw is None:
        out["error"] = "no linux.vmcoreinfo.raw"
        out["raw_hex"] = None
    else:
        out["raw_hex"] = bytes(raw).hex()
        out["ok"] = True
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
