"""Conversion on real guests' dumps: every dump the generator wrote (QEMU ELF with and without
paging, QEMU kdump and flattened kdump, makedumpfile's outputs), plus a LiME and a raw image made
from each guest's QEMU ELF dump (of the later kernel and panic guests: their QEMU ELF dump only),
is written as an ELF core and as a kdump-compressed file, and then

* the output's physical pages equal the input's (every byte of every input range),
* our reader reads the guest's own VMCOREINFO text from it (for the guest without the fw_cfg
  driver: the note the page scan found, which is the guest's own note),
* the peers read it: drgn opens it and reads VMCOREINFO; libkdumpfile reads VMCOREINFO and the
  note's page without being told the architecture; crash --osrelease names the release (x86_64:
  Debian's crash is built for the host); makedumpfile --dump-dmesg prints the x86_64 kernel log
  (with the marker the guest wrote into it).

Run:  VMCOREINFO_REALGUEST_DIR=tests/realguest/out pytest -m realguest tests/realguest/test_convert_realguest.py
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

try:
    import vmcoreinfo
except ImportError:  # collected even under -m "not realguest"
    vmcoreinfo = None
from realguest_support import DEBIAN_PYTHON, HERE, crash_osrelease, generator, note, record

pytestmark = pytest.mark.realguest

LIME_MAGIC = 0x4C694D45
RAW_LIMIT = 0x1000_0000  # raw images hold the x86_64 guests' RAM below 256 MiB (the rest would be holes)
# Every input of the guests that cover the paging modes and architectures; of the guests added
# for other kernels and for panics (the writers do not depend on the kernel version), their QEMU
# ELF dump only -- every input there costs CI ~85 s more (VMCOREINFO_REALGUEST_CONVERT_ALL=1 runs them).
EVERY_INPUT = {"x86_64", "x86_64-nodriver", "x86_64-la57", "arm64", "i386", "i386-pae"}
_ALL = os.environ.get("VMCOREINFO_REALGUEST_CONVERT_ALL") == "1"


def _every_input(g: str) -> bool:
    return _ALL or g in EVERY_INPUT


INPUTS = [(g, f, req) for g in generator.GUESTS for f, req in generator.PRODUCTS[g] if _every_input(g) or f == "qemu-elf.core"]
INPUTS += [(g, "derived.lime", True) for g in generator.GUESTS if _every_input(g)]
INPUTS += [(g, "derived.raw", True) for g, s in generator.GUESTS.items() if s["arch"] == "x86_64" and _every_input(g)]
CASES = [pytest.param(g, f, req, to, id=f"{g}/{f}->{to}") for g, f, req in INPUTS for to in ("elf", "kdump")]


@pytest.fixture(autouse=True)
def _need_vmcoreinfo():
    if vmcoreinfo is None:
        pytest.fail("the vmcoreinfo extension is not importable", pytrace=False)


@pytest.fixture(scope="session")
def derived_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("derived")


def _derive(src: Path, dest: Path, kind: str) -> None:
    """A LiME image, or a raw image, of the real pages of `src` (written a chunk at a time)."""
    with vmcoreinfo.open(src) as d, open(dest, "wb") as f:
        for start, end in d.memory_ranges():
            if kind == "raw":
                end = min(end, RAW_LIMIT)
                if start >= end:
                    continue
                f.seek(start)
            else:
                f.write(struct.pack("<IIQQQ", LIME_MAGIC, 1, start, end - 1, 0))
            for p in range(start, end, 16 << 20):
                f.write(d.read_phys(p, min(16 << 20, end - p)))


def _input(guests, derived_dir: Path, g: str, fname: str, required: bool) -> tuple[Path, str | None]:
    gu = guests[g]
    if not fname.startswith("derived."):
        return gu.path(fname, required), None
    kind = fname.split(".")[1]
    dest = derived_dir / f"{g}.{kind}"
    if not dest.exists():
        _derive(gu.path("qemu-elf.core", True), dest, kind)
    return dest, ("raw" if kind == "raw" else None)


def _same_pages(a, b) -> int:
    n = 0
    for start, end in a.memory_ranges():
        for p in range(start, end, 4 << 20):
            size = min(4 << 20, end - p)
            if a.read_phys(p, size) != b.read_phys(p, size):
                for q in range(p, p + size, 4096):  # name the first page that differs
                    s = min(4096, p + size - q)
                    assert a.read_phys(q, s) == b.read_phys(q, s), f"physical page {q:#x} differs"
            n += size
    return n


def _drgn_vmcoreinfo(path: Path) -> bytes:
    import drgn  # installed with the bench peers (benches/requirements.txt)

    prog = drgn.Program()
    prog.set_core_dump(str(path))
    return prog["VMCOREINFO"].string_()


def _libkdumpfile(path: Path, paddr: int, size: int) -> dict:
    cp = subprocess.run(
        [DEBIAN_PYTHON, str(HERE / "kdumpfile_read_probe.py"), str(path), hex(paddr), str(size)],
        text=True,
        capture_output=True,
        timeout=300,
    )
    if cp.returncode != 0 or not cp.stdout.strip():
        return {"ok": False, "error": f"probe crashed rc={cp.returncode}: {cp.stderr[-500:]}"}
    return json.loads(cp.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("g,fname,required,to", CASES)
def test_converted_dump_is_read_by_everyone(guests, derived_dir, tmp_path, g, fname, required, to):
    gu = guests[g]
    src, fmt = _input(guests, derived_dir, g, fname, required)
    out = tmp_path / f"out.{to}"
    text = gu.text
    release = gu.view["uname_r"]
    with vmcoreinfo.open(src, format=fmt) as d:
        if to == "elf":
            report = d.write_elf(out)
        else:
            report = d.write_kdump(out, "zlib")
        expected_source = "scan" if fmt == "raw" or fname.endswith(".lime") or not gu.manifest["driver"] else "note"
        assert report["vmcoreinfo"] == expected_source, report["diagnostics"]
        with vmcoreinfo.open(out) as o:
            assert o.format == to
            assert o.vmcoreinfo.raw == text, "our reader: VMCOREINFO of the output is not the guest's"
            assert o.machine == {"aarch64": "aarch64", "i386": "i386"}.get(gu.elf_arch, "x86_64")
            assert _same_pages(d, o) > 0
            note_paddr = gu.view["note_paddr"]
            note_page = o.read_phys(note_paddr, 4096)
    tag = f"{g}/{fname} -> {to}"
    record(f"converted {tag}", "pages== vmcoreinfo==")

    # drgn
    assert _drgn_vmcoreinfo(out) == text.rstrip(b"\0"), f"{tag}: drgn's VMCOREINFO"

    # libkdumpfile, not told the architecture
    peer = _libkdumpfile(out, note_paddr, 4096)
    assert peer["ok"], f"{tag}: libkdumpfile: {peer}"
    # libkdumpfile calls i386 "ia32"
    assert peer["arch"] == {"i386": "ia32"}.get(gu.elf_arch, gu.elf_arch), f"{tag}: libkdumpfile arch {peer['arch']}"
    assert bytes.fromhex(peer["raw_hex"]) == text
    assert bytes.fromhex(peer["data_hex"]) == note_page, f"{tag}: libkdumpfile's note page"
    assert peer["release"] == release

    # crash --osrelease
    rc, crash_out = crash_osrelease(str(out))
    if gu.elf_arch == "x86_64":
        assert (rc, crash_out) == (0, release), f"{tag}: crash --osrelease: rc={rc} {crash_out!r}"
    else:
        note(f"{tag}: crash --osrelease n/a on the host's crash (rc={rc}, {crash_out!r})")
    record(f"converted {tag}", "drgn== libkdumpfile== crash" + ("==" if gu.elf_arch == "x86_64" else " n/a"))

    # makedumpfile --dump-dmesg (Debian's makedumpfile reads the host's architecture only)
    if gu.elf_arch == "x86_64":
        log = tmp_path / "dmesg.txt"
        cp = subprocess.run(["makedumpfile", "--dump-dmesg", str(out), str(log)], capture_output=True, text=True, timeout=300)
        assert cp.returncode == 0, f"{tag}: makedumpfile --dump-dmesg: {cp.stdout[-800:]} {cp.stderr[-800:]}"
        dmesg = log.read_text(errors="replace")
        assert f"Linux version {release}" in dmesg
        assert gu.view["marker-written"] in dmesg, f"{tag}: the guest's marker is not in the log"
        record(f"converted {tag}", "makedumpfile-dmesg")
    out.unlink()


@pytest.mark.guests("x86_64")  # reads guests["x86_64"]
def test_ctrl_c_leaves_a_complete_file_or_none(guests, tmp_path):
    """SIGINT to `vmcoreinfo convert` while it writes (once its temporary file exists, then a
    little later): it stops with status 130 and leaves nothing; a run left alone leaves a
    complete, readable file and no temporary."""
    import signal
    import sys
    import time

    src = guests["x86_64"].path("qemu-elf.core", True)
    outcomes = []
    for delay in (0.0, 0.3, None):
        d = tmp_path / f"run-{delay}"
        d.mkdir()
        p = subprocess.Popen(
            [sys.executable, "-m", "vmcoreinfo", "convert", str(src), str(d / "o.kdump"), "--to", "kdump"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if delay is not None:
            deadline = time.monotonic() + 120
            while not any(x.name.endswith(".tmp") for x in d.iterdir()) and p.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=600)
        left = sorted(x.name for x in d.iterdir())
        if p.returncode == 130:
            assert left == [], f"interrupted {delay} s into the write but left {left}"
        else:
            assert p.returncode == 0 and left == ["o.kdump"], (p.returncode, left, err[-500:])
            with vmcoreinfo.open(d / "o.kdump") as o:
                assert o.vmcoreinfo.raw == guests["x86_64"].text
        outcomes.append(p.returncode)
    assert outcomes[0] == 130, f"the run interrupted as soon as it wrote did not stop: {outcomes}"
    assert outcomes[-1] == 0


@pytest.mark.guests("x86_64")  # reads guests["x86_64"]
def test_flattened_stream_through_a_pipe_is_reassembled_by_makedumpfile(guests, tmp_path):
    """`vmcoreinfo convert IN - --to kdump | makedumpfile -R OUT`: the flattened stream through a
    real pipe, reassembled by makedumpfile, read by us, libkdumpfile and crash."""
    import sys

    gu = guests["x86_64"]
    src = gu.path("qemu-elf.core", True)
    out = tmp_path / "reassembled.kdump"
    conv = subprocess.Popen(
        [sys.executable, "-m", "vmcoreinfo", "convert", str(src), "-", "--to", "kdump"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    md = subprocess.run(["makedumpfile", "-R", str(out)], stdin=conv.stdout, capture_output=True, text=True, timeout=600)
    conv.stdout.close()
    err = conv.stderr.read()
    assert conv.wait(timeout=600) == 0, err[-500:]
    assert md.returncode == 0, md.stdout[-500:] + md.stderr[-500:]
    with vmcoreinfo.open(src) as d, vmcoreinfo.open(out) as o:
        assert o.format == "kdump"
        assert o.vmcoreinfo.raw == gu.text
        assert _same_pages(d, o) > 0
    peer = _libkdumpfile(out, gu.view["note_paddr"], 4096)
    assert peer["ok"] and peer["arch"] == "x86_64" and bytes.fromhex(peer["raw_hex"]) == gu.text, peer
    assert crash_osrelease(str(out)) == (0, gu.view["uname_r"])
    record("converted x86_64/qemu-elf.core -> flattened | makedumpfile -R", "pages== vmcoreinfo== libkdumpfile== crash==")
