"""Dump.write_elf / Dump.write_kdump and `vmcoreinfo convert` on the committed fixtures (real QEMU
7.2 and makedumpfile 1.7.2 dumps, reduced; LiME images of their real pages): every output reads
back with the input's physical pages and VMCOREINFO; errors and Ctrl-C leave no file."""

from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import vmcoreinfo
from vmcoreinfo.cli import main

FIX = pathlib.Path(__file__).parent / "fixtures"
INPUTS = sorted(
    [p for p in FIX.glob("*") if p.suffix in (".core", ".elf", ".lime") and "no-vmcoreinfo" not in p.name]
    + list((FIX / "kdump").glob("*.kdump"))
    + list((FIX / "kdump").glob("*.flat"))
)
ids = [str(p.relative_to(FIX)) for p in INPUTS]


def same_memory(a: vmcoreinfo.Dump, b: vmcoreinfo.Dump) -> int:
    n = 0
    for start, end in a.memory_ranges():
        for p in range(start, end, 1 << 16):
            size = min(1 << 16, end - p)
            assert a.read_phys(p, size) == b.read_phys(p, size), f"pages differ at {p:#x}"
            n += size
    return n


def leftovers(d: pathlib.Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


UNAME_MACHINE = {"i386": "i686", "arm": "armv7l"}  # utsname.machine as the kernel spells it


@pytest.mark.parametrize("src", INPUTS, ids=ids)
@pytest.mark.parametrize("to", ["elf", "elf-exclude-zero", "kdump-zlib", "kdump-zstd", "kdump-snappy"])
def test_round_trip(tmp_path, src, to):
    out = tmp_path / "out"
    with vmcoreinfo.open(src) as d:
        try:
            want = d.vmcoreinfo.raw
        except vmcoreinfo.NoVmcoreinfoError:  # a guest without the note: the scan's, or none
            found = d.scan_vmcoreinfo()
            want = found[0].raw if found else None
        if to.startswith("elf"):
            r = d.write_elf(out, exclude_zero=to == "elf-exclude-zero")
        else:
            r = d.write_kdump(str(out), to.split("-")[1])
        # what exclude_zero leaves out are zero pages: read p_filesz < p_memsz tails as zeros
        with vmcoreinfo.open(out, elf_tails="zeros") as o:
            assert o.format == to.split("-")[0]
            assert same_memory(d, o) > 0
            assert o.machine == d.machine
            if want is None:
                assert r["vmcoreinfo"] == "absent"
                with pytest.raises(vmcoreinfo.NoVmcoreinfoError):
                    o.vmcoreinfo
            else:
                assert o.vmcoreinfo.raw == want
                assert o.notes()[-1].name == "VMCOREINFO"
            assert [n.name for n in o.notes()].count("CORE") == [n.name for n in d.notes()].count("CORE")
            if o.format == "kdump":
                det = o.details(pages=True)
                assert det["header_version"] == 6 and det["compression"] == [to.split("-")[1]]
                if want is not None:
                    assert det["utsname"]["machine"] == UNAME_MACHINE.get(d.machine, d.machine)
                    assert det["utsname"]["release"] == o.vmcoreinfo.osrelease
                assert det["phys_base"]["agree"] is not False
        if want is not None:
            assert r["vmcoreinfo"] == ("scan" if d.format == "lime" else "note")
        assert r["file_bytes"] == out.stat().st_size
        assert r["memory_bytes"] == sum(e - b for b, e in d.memory_ranges())
    assert leftovers(tmp_path) == ["out"]


def test_lzo_written_or_typed_unsupported(tmp_path):
    out = tmp_path / "o"
    with vmcoreinfo.open(FIX / "kdump" / "md-x86_64-zlib-d31.kdump") as d:
        try:
            d.write_kdump(out, "lzo")
        except vmcoreinfo.UnsupportedFormatError as e:
            assert "lzo" in str(e).lower()
            assert leftovers(tmp_path) == []
            return
        with vmcoreinfo.open(out) as o:
            assert o.details(pages=True)["page_codecs"]["lzo"] > 0
            assert same_memory(d, o) > 0


def test_bad_compression_name(tmp_path):
    with vmcoreinfo.open(FIX / "x86_64-qemu-elf.core") as d, pytest.raises(ValueError):
        d.write_kdump(tmp_path / "o", "gzip")


def test_progress_reaches_total(tmp_path):
    calls: list[tuple[int, int]] = []
    with vmcoreinfo.open(FIX / "kdump" / "qemu-arm64-zlib.kdump") as d:
        d.write_kdump(tmp_path / "o", progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


@pytest.mark.parametrize("method", ["write_elf", "write_kdump"])
def test_keyboard_interrupt_leaves_no_file(tmp_path, method):
    def cb(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with vmcoreinfo.open(FIX / "x86_64-qemu-elf.core") as d, pytest.raises(KeyboardInterrupt):
        getattr(d, method)(tmp_path / "o", progress=cb)
    assert leftovers(tmp_path) == []


def test_unwritable_output_is_oserror_with_filename(tmp_path):
    with vmcoreinfo.open(FIX / "x86_64-qemu-elf.core") as d:
        target = tmp_path / "missing" / "o.core"
        with pytest.raises(FileNotFoundError) as ei:
            d.write_elf(target)
        assert ei.value.filename == str(target)
        with pytest.raises(IsADirectoryError) as ei2:
            d.write_kdump(tmp_path)
        assert ei2.value.filename == str(tmp_path)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("method", ["write_elf", "write_kdump"])
def test_write_failure_midway_is_oserror_and_leaves_no_file(tmp_path, method):
    """A write that fails after the output was created (here EFBIG from RLIMIT_FSIZE in a child
    process, as a full disk gives ENOSPC) is an OSError naming OUT, and OUT never appears."""
    code = textwrap.dedent(
        f"""
        import resource, signal, sys, vmcoreinfo
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
        with vmcoreinfo.open({str(FIX / "kdump" / "qemu-arm64-zlib.kdump")!r}) as d:
            try:
                d.{method}({str(tmp_path / "o")!r})
            except OSError as e:
                print(type(e).__name__, e.errno, e.filename)
                sys.exit(0)
        sys.exit("no error")
        """
    )
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stderr
    name, err, filename = cp.stdout.split()
    assert int(err) == errno.EFBIG and filename == str(tmp_path / "o"), cp.stdout
    assert leftovers(tmp_path) == []


def test_corrupt_page_is_typed_and_leaves_no_file(tmp_path):
    # A real zlib page of the QEMU kdump fixture with its compressed bytes garbled.
    data = bytearray((FIX / "kdump" / "qemu-x86_64-zlib.kdump").read_bytes())
    src = tmp_path / "bad.kdump"
    with vmcoreinfo.open(FIX / "kdump" / "qemu-x86_64-zlib.kdump") as d:
        k = d.details(pages=True)
    # the last 2 KiB of the file are compressed page data
    data[-2048:-1024] = bytes(1024)
    src.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with vmcoreinfo.open(src) as d:
        with pytest.raises(vmcoreinfo.DecompressError) as ei:
            d.write_kdump(out_dir / "o")
        assert ei.value.path == str(src)
        with pytest.raises(vmcoreinfo.DecompressError):
            d.write_elf(out_dir / "o")
    assert leftovers(out_dir) == []
    assert k  # the original reads


def test_truncated_input_is_typed_and_leaves_no_file(tmp_path):
    data = (FIX / "x86_64-qemu-elf.core").read_bytes()
    src = tmp_path / "short.core"
    src.write_bytes(data[: len(data) - 4096])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with vmcoreinfo.open(src) as d:
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.write_kdump(out_dir / "o")
        assert ei.value.path == str(src)
    assert leftovers(out_dir) == []


def test_missing_note_is_repaired_from_the_scan(tmp_path):
    with vmcoreinfo.open(FIX / "x86_64-qemu-elf-no-vmcoreinfo.core") as d:
        found = d.scan_vmcoreinfo()
        r = d.write_elf(tmp_path / "o")
    if found:
        assert r["vmcoreinfo"] == "scan" and r["vmcoreinfo_paddr"] == found[0].note_paddr
        assert any(x["code"] == "vmcoreinfo-from-scan" for x in r["diagnostics"])
        with vmcoreinfo.open(tmp_path / "o") as o:
            assert o.vmcoreinfo.raw == found[0].raw
    else:
        assert r["vmcoreinfo"] == "absent"
        assert any(x["code"] == "no-vmcoreinfo" for x in r["diagnostics"])


def test_raw_image_round_trip(tmp_path):
    """A raw image made from the real pages of the LiME fixture (holes are zeros)."""
    with vmcoreinfo.open(FIX / "x86_64-qemu.lime") as lime:
        raw = tmp_path / "mem.raw"
        with open(raw, "wb") as f:
            for start, end in lime.memory_ranges():
                f.seek(start)
                f.write(lime.read_phys(start, end - start))
        with vmcoreinfo.open(raw, format="raw") as d:
            r = d.write_kdump(tmp_path / "o.kdump", "zstd")
            assert r["vmcoreinfo"] == "scan"
            with vmcoreinfo.open(tmp_path / "o.kdump") as o:
                assert o.vmcoreinfo.raw == lime.vmcoreinfo.raw
                assert same_memory(lime, o) > 0
                assert o.machine == "x86_64"


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_convert(tmp_path, capsys):
    out = tmp_path / "o.kdump"
    assert (
        main(["convert", str(FIX / "kdump" / "qemu-x86_64-zlib.flat"), str(out), "--to", "kdump", "--compression", "zstd"]) == 0
    )
    with vmcoreinfo.open(out) as o:
        assert o.details()["compression"] == ["zstd"]
    cap = capsys.readouterr()
    assert "phys-base-corrected" in cap.err  # QEMU's hex misreading of phys_base
    assert main(["convert", str(FIX / "x86_64-qemu.lime"), str(tmp_path / "o.elf"), "--to", "elf", "--exclude-zero"]) == 0
    assert "vmcoreinfo-from-scan" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["--to", "elf", "--compression", "zlib"], ["--to", "kdump", "--exclude-zero"], ["--to", "tar"], []],
)
def test_cli_usage_errors_exit_2(tmp_path, args):
    with pytest.raises(SystemExit) as ei:
        main(["convert", str(FIX / "x86_64-qemu-elf.core"), str(tmp_path / "o"), *args])
    assert ei.value.code == 2
    assert leftovers(tmp_path) == []


def test_cli_unreadable_input_exits_1(tmp_path):
    bad = tmp_path / "junk"
    bad.write_bytes(b"not a dump" * 100)
    assert main(["convert", str(bad), str(tmp_path / "o"), "--to", "elf"]) == 1
    assert main(["convert", str(tmp_path / "absent"), str(tmp_path / "o"), "--to", "elf"]) == 1
    assert leftovers(tmp_path) == ["junk"]


def test_cli_no_vmcoreinfo_exits_3(tmp_path):
    raw = tmp_path / "zeros.raw"
    raw.write_bytes(bytes(1 << 20))
    out = tmp_path / "o.kdump"
    assert main(["convert", str(raw), str(out), "--to", "kdump", "--format", "raw"]) == 3
    with vmcoreinfo.open(out) as o:
        with pytest.raises(vmcoreinfo.NoVmcoreinfoError):
            o.vmcoreinfo
        assert o.read_phys(0, 4096) == bytes(4096)


def test_cli_run_as_module(tmp_path):
    out = tmp_path / "o.core"
    cp = subprocess.run(
        [sys.executable, "-m", "vmcoreinfo", "convert", str(FIX / "arm64-qemu-elf.core"), str(out), "--to", "elf"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert cp.returncode == 0, cp.stderr
    assert "ELF" in cp.stdout and out.exists()


def test_flattened_output(tmp_path):
    src = FIX / "kdump" / "qemu-arm64-zlib.kdump"
    with vmcoreinfo.open(src) as d:
        r = d.write_kdump(tmp_path / "o.flat", "zstd", flattened=True)
        assert r["flattened"] is True
        with vmcoreinfo.open(tmp_path / "o.flat") as o:
            assert o.format == "flattened-kdump"
            assert o.vmcoreinfo.raw == d.vmcoreinfo.raw
            assert same_memory(d, o) > 0


def test_cli_flattened_to_stdout_pipe(tmp_path):
    """`vmcoreinfo convert IN - --to kdump | ...`: the flattened stream through a real pipe."""
    out = tmp_path / "piped.flat"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmcoreinfo", "convert", str(FIX / "x86_64-qemu-elf.core"), "-", "--to", "kdump"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    data, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"stdout: flattened kdump" in err
    out.write_bytes(data)
    with vmcoreinfo.open(out) as o, vmcoreinfo.open(FIX / "x86_64-qemu-elf.core") as d:
        assert o.format == "flattened-kdump"
        assert o.vmcoreinfo.raw == d.vmcoreinfo.raw
        assert same_memory(d, o) > 0
    with pytest.raises(SystemExit) as ei:
        main(["convert", str(FIX / "x86_64-qemu-elf.core"), "-", "--to", "elf"])
    assert ei.value.code == 2


def test_sigint_during_write_leaves_no_file(tmp_path):
    """A real SIGINT (Ctrl-C) while the GIL is released: the write stops at the next check and
    KeyboardInterrupt propagates; nothing is left behind."""
    import signal

    def cb(done: int, total: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    with vmcoreinfo.open(FIX / "kdump" / "qemu-arm64-zlib.kdump") as d, pytest.raises(KeyboardInterrupt):
        d.write_elf(tmp_path / "o", progress=cb)
    assert leftovers(tmp_path) == []
