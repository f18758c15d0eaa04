"""The rough edges issue 22 found, each through the command line or the API (each of these failed
before its fix)."""

from __future__ import annotations

import json
import pathlib
import shutil
import struct
import subprocess
import sys

import pytest
import vmcoreinfo
from vmcoreinfo import _schema

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
ELF = FIX / "x86_64-qemu-elf.core"
ARM = FIX / "arm64-qemu-elf.core"
KD = FIX / "kdump" / "qemu-x86_64-zlib.kdump"
FLAT = FIX / "kdump" / "qemu-x86_64-zlib.flat"


def run(*args: str | pathlib.Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmcoreinfo", *map(str, args)],
        input=None if stdin is None else stdin.decode("latin-1"),
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
        encoding="latin-1",
    )


def cut_elf(tmp_path: pathlib.Path) -> pathlib.Path:
    """The ELF fixture without the last 8 KiB of its PT_LOAD data (identified, but cut short)."""
    data = ELF.read_bytes()
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    phdrs = [struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i) for i in range(phnum)]
    end = max(ph[2] + ph[5] for ph in phdrs if ph[0] == 1)
    cut = tmp_path / "cut.core"
    cut.write_bytes(data[: end - 8192])
    return cut


# --- 4: one show --json schema -----------------------------------------------------------------


def test_show_json_has_the_same_keys_for_one_file_and_for_two(tmp_path: pathlib.Path) -> None:
    one = run("show", "--json", ELF)
    two = run("show", "--json", ELF, KD)
    assert one.returncode == two.returncode == 0, (one.stderr, two.stderr)
    (a,) = [json.loads(x) for x in one.stdout.splitlines()]
    b, c = [json.loads(x) for x in two.stdout.splitlines()]
    assert tuple(a) == tuple(b) == tuple(c) == _schema.SHOW_RECORD_KEYS
    assert {k: v for k, v in a.items()} == b  # the same values too
    # Failures: the same keys, the error object the same shape, the message without the path.
    missing = tmp_path / "nope.core"
    (e1,) = [json.loads(x) for x in run("show", "--json", missing).stdout.splitlines()]
    e2, _ = [json.loads(x) for x in run("show", "--json", missing, ELF).stdout.splitlines()]
    assert tuple(e1) == tuple(e2) == _schema.SHOW_RECORD_KEYS
    assert e1["error"] == e2["error"] == {"type": "FileNotFoundError", "message": "No such file or directory", "offset": None}
    # -v adds its keys after the record's, one file or two.
    v1 = json.loads(run("show", "-v", "--json", ELF).stdout)
    v2 = [json.loads(x) for x in run("show", "-v", "--json", ELF, ARM).stdout.splitlines()]
    assert tuple(v1) == tuple(v2[0]) == tuple(v2[1]) == _schema.SHOW_RECORD_KEYS + _schema.SHOW_VERBOSE_KEYS


# --- 10: show -r over a directory with side files ----------------------------------------------------


def test_show_r_skips_side_files_and_words_failures_once(tmp_path: pathlib.Path) -> None:
    d = tmp_path / "dumps"
    d.mkdir()
    shutil.copy(ELF, d / "a.core")
    shutil.copy(ARM, d / "b.core")
    for i in range(5):
        (d / f"log{i}.txt").write_text("kdump: saving vmcore\n" * 10)
    (d / "z.broken").write_bytes(ELF.read_bytes()[:100])  # a dump signature, but broken
    p = run("show", "-r", d)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines[0].split("\t") == [
        "path",
        "format",
        "machine",
        "osrelease",
        "build_id",
        "kernel_offset",
        "phys_base",
        "page_size",
    ]
    assert len(lines) == 3 and all("=" not in ln and "None" not in ln for ln in lines)
    assert lines[2].split("\t")[6] == ""  # arm64 has no phys_base: an empty cell
    err = p.stderr.splitlines()
    assert len(err) == 2, err  # one line for the broken file, one summary line
    assert err[0].startswith(f"vmcoreinfo: {d / 'z.broken'}: error: ") and err[0].count(str(d / "z.broken")) == 1
    assert err[1] == "vmcoreinfo: 3 files, 1 failed, 5 skipped (no dump signature: not dumps)"
    # A file named on the command line is never skipped; the advice is the CLI's.
    p = run("show", d / "a.core", d / "log0.txt")
    assert "use --format raw" in p.stderr and 'format="raw"' not in p.stderr
    assert p.stderr.count(str(d / "log0.txt")) == 1
    # --jsonl and --csv end with the same summary line --parquet prints.
    for mode in ("--jsonl", "--csv"):
        p = run("show", "-r", mode, d)
        assert p.stderr.splitlines()[-1] == "vmcoreinfo: 3 files, 1 failed, 5 skipped (no dump signature: not dumps)", mode
    p = run("show", "-r", "--csv", d)
    assert "None" not in p.stdout


# --- 11: pipes and devices -----------------------------------------------------------------------------


def test_a_pipe_is_refused_with_what_to_do() -> None:
    p = run("show", "/dev/stdin", stdin=ELF.read_bytes())
    assert p.returncode == 1
    assert "Illegal seek" not in p.stderr
    assert "a pipe, not a seekable regular file" in p.stderr and "save the stream to a file first" in p.stderr
    p = run("dmesg", "/dev/stdin", stdin=FLAT.read_bytes())
    assert p.returncode == 1 and "makedumpfile -R" in p.stderr, p.stderr


def test_a_pipe_is_an_oserror_espipe_naming_the_file() -> None:
    import errno
    import os

    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as ei:
            vmcoreinfo.open(f"/dev/fd/{r}")
    finally:
        os.close(r)
        os.close(w)
    assert ei.value.errno == errno.ESPIPE and ei.value.filename == f"/dev/fd/{r}"
    assert "not a seekable regular file" in str(ei.value)


# --- 12: a distinct exit status for a file cut short -------------------------------------------------------


def test_cut_short_has_its_own_exit_status(tmp_path: pathlib.Path) -> None:
    from vmcoreinfo._cli_common import ExitCode

    cut = cut_elf(tmp_path)
    assert ExitCode.CUT_SHORT == 4
    assert run("show", cut).returncode == 4
    assert run("show", "--json", cut).returncode == 4
    assert run("show", cut, ELF).returncode == 4  # several files: the batch path
    assert run("show", "-v", cut, ELF).returncode == 4  # several files, one by one
    assert run("show", "--jsonl", cut, FIX / "x86_64-qemu-elf-no-vmcoreinfo.core").returncode == 3  # precedence
    assert run("show", ELF).returncode == 0
    (r,) = vmcoreinfo.identify_many([cut])
    assert r.ok and r.cut_short and r.memory_stored_bytes == r.memory_declared_bytes - 8192  # type: ignore[operator]
    p = run("show", cut, ELF)
    assert "warning: the file holds only" in p.stderr and "1 cut short" in p.stderr
    assert "4  show: identified, but the file is cut short" in run("--help").stdout


# --- 13: one behaviour for a directory -------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["dmesg"], ["sym", "{d}", "_stext"], ["notes"], ["scan"], ["convert", "{d}", "{d}/out", "--to", "elf"], ["show"]]
)
def test_a_directory_is_a_usage_error_with_the_hint_for_every_command(tmp_path: pathlib.Path, argv: list[str]) -> None:
    args = [a.format(d=tmp_path) for a in argv]
    if len(args) == 1:
        args.append(str(tmp_path))
    p = run(*args)
    assert p.returncode == 2, p.stderr
    assert (
        p.stderr
        == f"vmcoreinfo: error: {tmp_path} is a directory: name a dump file (or use -r with show to read the files under it)\n"
    )


# --- 14: arm64 shows its own keys --------------------------------------------------------------------------


def test_arm64_show_prints_the_keys_that_place_its_kernel() -> None:
    with vmcoreinfo.open(ARM) as d:
        vi = d.vmcoreinfo
        want = {k: vi.get(f"NUMBER({k})") for k in ("PHYS_OFFSET", "kimage_voffset", "VA_BITS")}
    p = run("show", ARM)
    assert p.returncode == 0
    assert "phys_base     absent" not in p.stdout
    for k, v in want.items():
        assert v is not None and f"  {k:<13} {v}" in p.stdout, (k, p.stdout)
    v = run("show", "-v", KD)  # the kdump header check: hex on both sides, no decimal
    line = next(ln for ln in v.stdout.splitlines() if "kdump header" in ln)
    assert "0x" in line.split("VMCOREINFO ")[1].split(";")[0] and "header 0x" in line, line
    flat = run("show", "-v", FIX / "kdump" / "qemu-arm64-zlib.flat")
    line = next(ln for ln in flat.stdout.splitlines() if "kdump header" in ln)
    assert line.startswith("  PHYS_OFFSET ") and str(int(want["PHYS_OFFSET"] or "0", 16)) not in line, line


# --- 15: addresses outside 0..2**64 -----------------------------------------------------------------------------


@pytest.mark.parametrize("addr", [2**64, 2**100, -1])
def test_an_address_outside_the_64_bit_space_is_a_vmcoreinfo_error(addr: int) -> None:
    with vmcoreinfo.open(ELF) as d:
        virt = [lambda: d.read_virt(addr, 1), lambda: d.translate(addr), lambda: d.read_virt_into(addr, bytearray(1))]
        phys = [lambda: d.read_phys(addr, 1), lambda: d.view_phys(addr, 1), lambda: d.read_phys_into(addr, bytearray(1))]
        for call in virt:
            with pytest.raises(vmcoreinfo.UnmappedError, match=f"virtual address {addr:#x} is outside"):
                call()
        for call in phys:
            with pytest.raises(vmcoreinfo.AbsentMemoryError, match=f"physical address {addr:#x} is outside"):
                call()
        with pytest.raises(TypeError):
            d.read_phys("0x10", 1)  # type: ignore[arg-type]


# --- 17: help texts ----------------------------------------------------------------------------------------------


def test_help_texts_speak_of_their_own_command() -> None:
    def json_help(cmd: str) -> str:
        h = " ".join(run(cmd, "--help").stdout.split())
        return h[h.index("--json ") :].split(" -")[0].split(" exit status")[0]

    for cmd in ("demo", "notes", "dmesg", "sym", "scan"):
        h = json_help(cmd)
        assert h.startswith("--json one JSON document on stdout") and "show" not in h and "per file" not in h, (cmd, h)
    assert "per file" in json_help("show")
    for cmd in ("dmesg", "sym"):
        h = run(cmd, "--help").stdout
        assert h.split("\n\n")[1].strip(), h  # a description under the usage
    v = run("show", "-v", ARM).stdout
    assert "  memory        1 range, 8192 bytes\n" in v and "1 ranges" not in v


# --- 18: note type names and bytes ----------------------------------------------------------------------------------


def test_notes_are_named_and_json_gives_their_bytes() -> None:
    with vmcoreinfo.open(ARM) as d:
        notes = d.notes()
    assert [(n.name, n.type, n.type_name) for n in notes] == [
        ("CORE", 1, "NT_PRSTATUS"),
        ("CORE", 2, "NT_PRFPREG"),
        ("VMCOREINFO", 0, "VMCOREINFO"),
    ]
    with vmcoreinfo.open(ELF) as d:
        assert [n.type_name for n in d.notes()] == ["NT_PRSTATUS", "QEMU_CPUSTATE", "VMCOREINFO"]
    assert vmcoreinfo.Note("LINUX", 0x202, 0, b"").type_name == "NT_X86_XSTATE"
    assert vmcoreinfo.Note("CORE", 0x999, 0, b"").type_name is None
    p = run("notes", ARM)
    assert "NT_PRSTATUS" in p.stdout and "NT_PRFPREG" in p.stdout and "type 1 " not in p.stdout
    rows = json.loads(run("notes", "--json", ARM).stdout)
    assert [r["type_name"] for r in rows] == ["NT_PRSTATUS", "NT_PRFPREG", "VMCOREINFO"]
    for r, n in zip(rows, notes):
        assert bytes.fromhex(r["desc"]) == bytes(n.desc) and len(r["desc"]) == 2 * n.size


# --- 19: the demo is a summary and a tour ----------------------------------------------------------------------------


def test_demo_is_short_and_demo_v_has_the_keys() -> None:
    p = run("demo")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert len(lines) < 40, len(lines)
    assert not any(ln.startswith("  key ") for ln in lines)
    assert "osrelease     6.1.0-48-cloud-amd64" in p.stdout and "vmcoreinfo dmesg DUMP" in p.stdout
    v = run("demo", "-v")
    assert sum(ln.startswith("  key ") for ln in v.stdout.splitlines()) == 108
    assert run("demo", "--json").stdout.count("\n") == 1
