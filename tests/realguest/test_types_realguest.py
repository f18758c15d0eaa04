"""Real-guest conformance of the kernel's own types (its in-memory BTF): on every guest whose
kernel has BTF, in every dump format it produced, ``dump.types`` is found (kallsyms
``__start_BTF``, or a scan of the kernel image where kallsyms has no data symbols: Debian 12
arm64, and 5.10 whose VMCOREINFO has no kallsyms keys) and gives the same layouts in every
format; where the kernel's ``-dbg`` vmlinux and drgn are cached (VMCOREINFO_DBG_CACHE, see
README), sizes and offsets equal drgn's reading of the DWARF. Debian's 686 kernels have no BTF:
``NoBtfError`` naming CONFIG_DEBUG_INFO_BTF.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest

try:
    import vmcoreinfo
except ImportError:  # collected even under -m "not realguest"
    vmcoreinfo = None
from realguest_support import generator, record

pytestmark = pytest.mark.realguest

DRIVER_GUESTS = [g for g, s in generator.GUESTS.items() if s["driver"]]
CASES = [pytest.param(g, f, req, id=f"{g}/{f}") for g in DRIVER_GUESTS for f, req in generator.PRODUCTS[g]]
DBG = Path(os.environ.get("VMCOREINFO_DBG_CACHE", "/var/cache/vmcoreinfo-dbg"))

#: (type, member path) pairs the object walkers read; checked against drgn where it can run.
LAYOUT = [
    ("struct task_struct", "tasks"),
    ("struct task_struct", "pid"),
    ("struct task_struct", "tgid"),
    ("struct task_struct", "comm"),
    ("struct task_struct", "flags"),
    ("struct task_struct", "real_parent"),
    ("struct task_struct", "signal"),
    ("struct task_struct", "thread"),
    ("struct task_struct", "stack"),
    ("struct module", "list"),
    ("struct module", "name"),
    ("struct list_head", "prev"),
]
SIZES = ["struct task_struct", "struct module", "struct list_head", "struct signal_struct", "pid_t", "unsigned long"]


def has_btf(g: str) -> bool:
    return generator.GUESTS[g]["arch"] != "i386"


def ours(path: Path) -> dict:
    with vmcoreinfo.open(path) as d:
        t = d.types
        return {
            "source": t.source,
            "sizes": {n: t.sizeof(n) for n in SIZES},
            "offsets": {f"{ty}.{m}": t.offsetof(ty, m) for ty, m in LAYOUT},
        }


@functools.cache
def elf_reading(guest_dir: str) -> dict:
    return ours(Path(guest_dir) / "qemu-elf.core")


DRGN_SNIPPET = r"""
import json, sys, drgn
prog = drgn.Program()
prog.set_core_dump(sys.argv[4])
prog.load_debug_info([sys.argv[1]])
sizes, offsets = {}, {}
for n in json.loads(sys.argv[2]):
    sizes[n] = drgn.sizeof(prog.type(n))
for ty, m in json.loads(sys.argv[3]):
    offsets[f"{ty}.{m}"] = drgn.offsetof(prog.type(ty), m)
print(json.dumps({"sizes": sizes, "offsets": offsets}))
"""


@functools.cache
def drgn_layout(release: str, core: str) -> dict | None:
    py = DBG / "drgn-venv" / "bin" / "python"
    vmlinux = DBG / f"vmlinux-{release}"
    if not (py.exists() and vmlinux.exists()):
        return None
    cp = subprocess.run(
        [str(py), "-c", DRGN_SNIPPET, str(vmlinux), json.dumps(SIZES), json.dumps(LAYOUT), core],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cp.returncode == 0, f"drgn on {vmlinux}: {cp.stderr[-800:]}"
    return json.loads(cp.stdout)


@pytest.mark.parametrize("g,fname,required", CASES)
def test_types_agree_in_every_format(guests, g, fname, required):
    path = guests[g].path(fname, required)
    if not has_btf(g):
        with vmcoreinfo.open(path) as d, pytest.raises(vmcoreinfo.NoBtfError) as ei:
            d.types  # noqa: B018
        assert "CONFIG_DEBUG_INFO_BTF" in str(ei.value)
        record(path, "no BTF: NoBtfError")
        return
    got = ours(path)
    want = elf_reading(str(guests[g].dir))
    assert got == want, f"{path}: layouts differ from the guest's ELF dump"
    assert got["sizes"]["struct list_head"] == 2 * got["sizes"]["unsigned long"]
    assert got["offsets"]["struct list_head.prev"] == got["sizes"]["unsigned long"]
    record(path, f"BTF ({got['source']}): task_struct {got['sizes']['struct task_struct']} bytes")


@pytest.mark.parametrize("g", [g for g in DRIVER_GUESTS if has_btf(g)])
def test_types_equal_drgn_with_debug_info(guests, g):
    path = guests[g].path("qemu-elf.core", True)
    with vmcoreinfo.open(path) as d:
        release = d.vmcoreinfo.osrelease
    want = drgn_layout(release, str(path))
    if want is None:
        pytest.skip(f"drgn or vmlinux-{release} not cached in {DBG} (generate.py --dbg fetches them)")
    got = ours(path)
    assert got["sizes"] == want["sizes"]
    assert got["offsets"] == want["offsets"]
    record(path, f"BTF layouts equal drgn's DWARF ({len(SIZES)} sizes, {len(LAYOUT)} offsets)")


@pytest.mark.guests("arm64-panic")
def test_arm64_without_kallsyms_all_finds_btf_by_scan(guests):
    """Debian 12's arm64 kernel has no CONFIG_KALLSYMS_ALL: no __start_BTF in kallsyms."""
    path = guests["arm64-panic"].path("qemu-elf.core", True)
    with vmcoreinfo.open(path) as d:
        assert "__start_BTF" not in d.symbols
        assert d.types.source == "scan"
