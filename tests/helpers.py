"""Shared helpers for the tests (imported as `helpers`; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pathlib

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def guest_report(name: str) -> dict[str, object]:
    """Parse a real guest's own report (what it printed on its serial port before the dump)."""
    lines = (FIXTURES / name).read_text().splitlines()
    out: dict[str, object] = {}
    raw = b""
    for ln in lines:
        # tests/realguest/generate.py reports: "RGUEST key value..."
        if ln.startswith("RGUEST "):
            key, _, val = ln[len("RGUEST ") :].partition(" ")
            if key == "sys-kernel-vmcoreinfo":
                addr, size = val.split()
                out["sys_addr"] = int(addr, 16)
                out["sys_size"] = int(size, 16)
            elif key == "uname-r":
                out["release"] = val
            elif key == "fwcfg-raw" and val != "absent":
                raw = bytes.fromhex(val)
            elif key == "kallsyms":
                name, _, addr = val.partition(" ")
                syms = out.setdefault("kallsyms", {})
                assert isinstance(syms, dict)
                syms[name] = None if addr == "absent" else int(addr, 16)
            elif key == "marker-written":
                out["marker"] = val
            continue
        if ln.startswith("RD: /sys/kernel/vmcoreinfo:"):
            addr, size = ln.split(":", 2)[2].split()
            out["sys_addr"] = int(addr, 16)
            out["sys_size"] = int(size, 16)
        elif ln.startswith("RD: kernel "):
            out["release"] = ln.split()[2]
        elif ln.startswith("RD:   00000000 "):
            hexpart = ln.split("|")[0].split()[2:]
            raw = bytes(int(h, 16) for h in hexpart)
    out["fwcfg_raw"] = raw
    return out
