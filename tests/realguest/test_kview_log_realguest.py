"""Real-guest conformance of the kernel log and kernel symbols: on every guest and every dump
format each produced, the log read from VMCOREINFO alone holds the marker line the guest wrote to
/dev/kmsg; on x86_64 ``dmesg()`` equals ``makedumpfile --dump-dmesg`` byte for byte; kallsyms
decoded from VMCOREINFO give ``_stext`` (and ``_text``) as the guest's own /proc/kallsyms does.

Run:  VMCOREINFO_REALGUEST_DIR=... pytest -m realguest tests/realguest/test_kview_log_realguest.py
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path

import pytest

try:
    import vmcoreinfo
except ImportError as e:  # collected even under -m "not realguest": fail only when run
    vmcoreinfo = None
    _IMPORT_ERROR = e
from realguest_support import generator, record

pytestmark = pytest.mark.realguest

DRIVER_GUESTS = [g for g, s in generator.GUESTS.items() if s["driver"]]
CASES = [pytest.param(g, f, req, id=f"{g}/{f}") for g in DRIVER_GUESTS for f, req in generator.PRODUCTS[g]]
MARKER_LINE = f"{generator.MARKER} guest marker line"


@pytest.fixture(autouse=True)
def _need_vmcoreinfo():
    if vmcoreinfo is None:
        pytest.fail(
            f"the vmcoreinfo extension is not importable ({_IMPORT_ERROR}); build it with `maturin develop`", pytrace=False
        )


@functools.cache
def makedumpfile_dmesg(guest_dir: str) -> str:
    """`makedumpfile --dump-dmesg` of the guest's makedumpfile kdump file (makedumpfile cannot
    read QEMU's ELF files' log: "Can't get the number of PT_LOAD")."""
    src = Path(guest_dir) / "md-zlib-d31.kdump"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dmesg.txt"
        cp = subprocess.run(["makedumpfile", "--dump-dmesg", str(src), str(out)], capture_output=True, text=True, timeout=300)
        assert cp.returncode == 0, f"makedumpfile --dump-dmesg {src} failed: {cp.stderr[-500:]}"
        return out.read_text(encoding="ascii", errors="surrogateescape")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_log_holds_the_marker(guests, g, fname, required):
    path = guests[g].path(fname, required)
    with vmcoreinfo.open(path) as dump:
        log = dump.kernel_log()
        text = dump.dmesg()
        with_caller = dump.dmesg(caller_id=True)
    marker = [r for r in log if r.text == MARKER_LINE]
    assert len(marker) == 1, f"{path}: {len(log)} records, no marker line"
    m = marker[0]
    # written as "<5>..." to /dev/kmsg: level 5 (notice), facility 1 (user)
    assert (m.level, m.facility) == (5, 1)
    assert m.caller_id is not None and m.caller_id & 0x80000000 == 0, "written by a task"
    assert any(r.text.startswith("Linux version ") for r in log[:3]), log[:3]
    assert all(b.seq == a.seq + 1 for a, b in zip(log, log[1:])), "consecutive sequence numbers"
    # (timestamps are not monotonic: the clock is switched during boot)
    assert f"] {MARKER_LINE}\n" in text
    assert f"] [{'T' + str(m.caller_id):>8}] {MARKER_LINE}\n" in with_caller
    assert sum(1 for ln in text.splitlines() if ln.startswith("[")) == len(log)
    record(path, f"log marker ({len(log)} records)")


@pytest.mark.parametrize("g,fname,required", [c for c in CASES if generator.GUESTS[c.values[0]]["arch"] == "x86_64"])
def test_x86_64_dmesg_equals_makedumpfile(guests, g, fname, required):
    gu = guests[g]
    path = gu.path(fname, required)
    want = makedumpfile_dmesg(str(gu.dir))
    with vmcoreinfo.open(path) as dump:
        got = dump.dmesg()
    assert got == want
    record(path, "dmesg == makedumpfile --dump-dmesg")


@pytest.mark.parametrize("g,fname,required", CASES)
def test_kallsyms_match_the_guest(guests, g, fname, required):
    gu = guests[g]
    path = gu.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        vi = dump.vmcoreinfo
        # the kallsyms keys (SYMBOL(kallsyms_names) & co.) entered VMCOREINFO in Linux 6.0
        # (commit 5fd8fea935a1): a 5.10 guest registers none, and its kallsyms is found by
        # scanning the image (symbols.source "scan") -- or, until that reader exists, the
        # dump says it needs the key
        keys = "SYMBOL(kallsyms_names)" in vi
        assert keys == (gu.kernel_version >= (6, 0)), gu.view["uname_r"]
        if not keys and not hasattr(vmcoreinfo.KernelSymbols, "source"):
            with pytest.raises(vmcoreinfo.UnsupportedFormatError, match=r"SYMBOL\(kallsyms_names\)"):
                dump.symbols  # noqa: B018
            record(path, "no kallsyms keys (< 6.0): symbols refused, naming the key")
            return
        syms = dump.symbols
        if hasattr(syms, "source"):
            assert syms.source == ("vmcoreinfo" if keys else "scan")
        assert len(syms) > 10_000
        stext = syms.address("_stext")
        assert stext == vi.symbol("_stext")
        if dump.machine == "x86_64":
            assert stext == 0xFFFFFFFF81000000 + vi.kernel_offset
            assert syms.encoding == "absolute-percpu"
        # the guest's own /proc/kallsyms
        ks = gu.view.get("kallsyms") or {}
        if ks.get("_stext") is not None:
            assert stext == ks["_stext"]
            record(path, "kallsyms _stext == guest /proc/kallsyms")
        if gu.view.get("kallsyms-text"):
            assert syms.address("_text") == int(gu.view["kallsyms-text"], 16)
            record(path, "kallsyms _text == guest /proc/kallsyms")
        # every SYMBOL() in VMCOREINFO that kallsyms holds agrees (data symbols need KALLSYMS_ALL),
        # except SYMBOL(mem_section), which the kernel writes as the pointer's value
        # (VMCOREINFO_SYMBOL_ARRAY under SPARSEMEM_EXTREME), not its address
        checked = 0
        for key in vi:
            if key.startswith("SYMBOL(") and key != "SYMBOL(mem_section)" and key[7:-1] in syms:
                assert syms.address(key[7:-1]) == vi.symbol(key[7:-1]), key
                checked += 1
        assert checked >= (5 if dump.machine == "x86_64" else 1)
        name, off = syms.lookup(stext + 3)
        assert off == 3 and syms.address(name) == stext
        assert len(list(syms)) == len(syms)
    record(path, f"kallsyms {len(syms)} symbols ({syms.encoding}), {checked} VMCOREINFO symbols agree")
