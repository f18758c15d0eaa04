#!/usr/bin/python3
"""libkdumpfile's reading of one dump's VMCOREINFO and of physical memory, as one JSON object.

Runs under the Debian interpreter (/usr/bin/python3), where python3-libkdumpfile installs the
`kdumpfile` module; the tests call it in a subprocess (a bad file can crash libkdumpfile 0.5.x).
Unlike kdumpfile_probe.py it never sets arch.name: the dump must say what it is.

usage: kdumpfile_read_probe.py DUMP PADDR SIZE
Output keys: ok, error, format, arch, release, raw_hex (linux.vmcoreinfo.raw), data_hex (SIZE
bytes of machine-physical memory at PADDR (no translation set-up needed), or null with read_error).
"""

import json
import sys


def main() -> int:
    path, paddr, size = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3], 0)
    out = {"ok": False, "error": None, "data_hex": None, "read_error": None}
    try:
        import kdumpfile

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
    rel = get("linux.uts.release")
    out["release"] = str(rel) if rel is not None else None
    raw = get("linux.vmcoreinfo.raw")
    out["raw_hex"] = bytes(raw).hex() if raw is not None else None
    try:
        out["data_hex"] = bytes(k.read(kdumpfile.KDUMP_MACHPHYSADDR, paddr, size)).hex()
    except Exception as e:  # noqa: BLE001
        out["read_error"] = f"{type(e).__name__}: {e}"
    out["ok"] = raw is not None and out["data_hex"] is not None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
