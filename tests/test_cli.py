"""The command line as a user meets it: through a subprocess, checking stdout, stderr and the exit
status; and the package surface a new user sees (dir(), reprs, views, metadata)."""

from __future__ import annotations

import collections.abc
import gzip
import json
import pathlib
import re
import struct
import subprocess
import sys

import pytest
import vmcoreinfo

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
ELF = FIX / "x86_64-qemu-elf.core"
ARM = FIX / "arm64-qemu-elf.core"
NOVI = FIX / "x86_64-qemu-elf-no-vmcoreinfo.core"
MD_ELF = FIX / "x86_64-makedumpfile-d31.elf"
LIME = FIX / "x86_64-qemu.lime"
KD = FIX / "kdump" / "qemu-x86_64-zlib.kdump"
KD_MD = FIX / "kdump" / "md-x86_64-zlib-d31.kdump"
ALL = [ELF, ARM, NOVI, MD_ELF, LIME, KD, KD_MD, FIX / "kdump" / "qemu-arm64-zlib.flat"]


def run(*args: str | pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmcoreinfo", *map(str, args)], text=True, capture_output=True, timeout=60, check=False
    )


# --- 1 and 9: --json is JSON, one document per file, hints on stderr -----------------------------


def test_demo_json_is_one_json_document_and_the_banner_goes_to_stderr() -> None:
    cp = run("demo", "--json")
    assert cp.returncode == 0, cp.stderr
    doc = json.loads(cp.stdout)  # the whole stdout is one document
    assert doc["osrelease"] == "6.1.0-48-cloud-amd64"
    assert cp.stdout.count("\n") == 1
    assert "Sample:" in cp.stderr and "Sample:" not in cp.stdout


@pytest.mark.parametrize("cmd", [["notes", ELF], ["scan", LIME], ["notes", LIME], ["show", KD_MD], ["show", "-v", ELF]])
def test_every_json_output_is_exactly_one_document(cmd: list[object]) -> None:
    cp = run(*cmd, "--json")  # type: ignore[arg-type]
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.count("\n") == 1
    json.loads(cp.stdout)


def test_show_json_is_json_lines_one_object_per_file() -> None:
    one = run("show", "--json", ELF)
    assert one.returncode == 0
    assert isinstance(json.loads(one.stdout), dict)
    two = run("show", "--json", ELF, KD)
    lines = two.stdout.splitlines()
    assert len(lines) == 2
    assert [json.loads(x)["path"] for x in lines] == [str(ELF), str(KD)]


# --- 2: show -v prints what it promises -------------------------------------------------------------


def test_show_verbose_lists_keys_notes_and_ranges_in_human_mode() -> None:
    cp = run("show", "-v", ELF)
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout
    assert "  key           OSRELEASE=6.1.0-48-cloud-amd64\n" in out
    assert out.count("  key           ") == 108
    assert re.search(r"  note          VMCOREINFO\s+VMCOREINFO \(0x0\)\s+3262 bytes, header at file offset 1288\n", out)
    with vmcoreinfo.open(ELF) as d:
        ranges = d.memory_ranges()
    assert out.count("  range         ") == len(ranges)
    lo, hi = ranges[0]
    assert f"  range         {lo:#018x}-{hi:#018x} ({hi - lo} bytes)\n" in out


def test_show_verbose_caps_long_range_lists() -> None:
    from vmcoreinfo.cli import VERBOSE_LIST_MAX

    with vmcoreinfo.open(KD_MD) as d:
        n = len(d.memory_ranges())
    cp = run("show", "-v", KD_MD)
    assert cp.returncode == 0
    if n > VERBOSE_LIST_MAX:
        assert f"... {n - VERBOSE_LIST_MAX} more (--json -v lists all)" in cp.stdout
    assert cp.stdout.count("  range         0x") == min(n, VERBOSE_LIST_MAX)


# --- 3: a file cut short before it was opened ----------------------------------------------------------


def test_cut_elf_names_the_declared_offset_and_show_warns(tmp_path: pathlib.Path) -> None:
    data = ELF.read_bytes()
    with vmcoreinfo.open(ELF) as d:
        full = d.details()
        note_page = 0x18DC000
    assert full["memory_declared_bytes"] == full["memory_stored_bytes"] > 0
    # Keep the headers, notes and the PT_LOADs' data but for their last 8 KiB.
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    phdrs = [struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i) for i in range(phnum)]
    end = max(ph[2] + ph[5] for ph in phdrs if ph[0] == 1)  # PT_LOAD p_offset + p_filesz
    cut = tmp_path / "cut.core"
    cut.write_bytes(data[: end - 8192])
    with vmcoreinfo.open(cut) as d:
        det = d.details()
        assert det["memory_declared_bytes"] == full["memory_declared_bytes"]
        assert det["memory_stored_bytes"] == full["memory_declared_bytes"] - 8192
        last = max((ph for ph in phdrs if ph[0] == 1), key=lambda ph: ph[2] + ph[5])
        with pytest.raises(vmcoreinfo.TruncatedError) as ei:
            d.read_phys(last[4] + last[5] - 4096, 4096)
        e = ei.value
        # Where the missing page was declared: its PT_LOAD's data offset, inside the old file.
        assert e.offset == end - 4096, e
        assert "shr" not in str(e) and "declared at file offset" in str(e)
        assert d.read_phys(note_page, 16)  # what the file holds still reads
    cp = run("show", cut)
    assert cp.returncode == 4  # ExitCode.CUT_SHORT: identified, but cut short
    stored, declared = det["memory_stored_bytes"], det["memory_declared_bytes"]
    assert f"  stored        {stored} of {declared} bytes of declared memory are in the file (CUT SHORT)\n" in cp.stdout
    assert cp.stderr.startswith(f"vmcoreinfo: {cut}: warning: the file holds only {stored} of the {declared} bytes")
    whole = run("show", ELF)
    assert whole.stderr == ""
    assert f"  stored        {declared} of {declared} bytes of declared memory are in the file\n" in whole.stdout
    js = json.loads(run("show", "--json", cut).stdout)
    assert (js["memory_stored_bytes"], js["memory_declared_bytes"]) == (stored, declared)


def test_cut_kdump_reports_pages_it_lacks(tmp_path: pathlib.Path) -> None:
    data = KD_MD.read_bytes()
    cut = tmp_path / "cut.kdump"
    cut.write_bytes(data[: len(data) - 20000])
    with vmcoreinfo.open(KD_MD) as d:
        whole = d.details()
    with vmcoreinfo.open(cut) as d:
        det = d.details()
    assert whole["memory_declared_bytes"] == whole["memory_stored_bytes"] == 30 * 4096
    assert det["memory_declared_bytes"] == 30 * 4096 > det["memory_stored_bytes"]
    cp = run("show", cut)
    assert cp.returncode == 4 and "(CUT SHORT)" in cp.stdout and "warning: the file holds only" in cp.stderr


def test_lime_and_raw_have_no_declared_memory_line() -> None:
    cp = run("show", LIME)
    assert cp.returncode == 0 and "stored " not in cp.stdout and cp.stderr == ""
    with vmcoreinfo.open(LIME) as d:
        assert d.details()["memory_declared_bytes"] is None


# --- 4 and 5: error lines and hints speak the command line's language ------------------------------


def test_unknown_file_gets_the_cli_hint_and_the_path_once(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "text.txt"
    p.write_text("hello\n")
    cp = run("show", p)
    assert cp.returncode == 1 and cp.stdout == ""
    assert cp.stderr.count(str(p)) == 1, cp.stderr
    assert "--format raw" in cp.stderr and 'format="raw"' not in cp.stderr
    cp = run("notes", p)
    assert cp.returncode == 1 and cp.stderr.count(str(p)) == 1 and "--format raw" in cp.stderr


@pytest.mark.parametrize(
    "name,compress,tool",
    [
        ("gzip", lambda b: gzip.compress(b), "gunzip"),
        ("xz", lambda b: __import__("lzma").compress(b), "unxz"),
        ("zstd", lambda b: b"\x28\xb5\x2f\xfd" + b[:100], "unzstd"),
        ("bzip2", lambda b: __import__("bz2").compress(b), "bunzip2"),
    ],
)
def test_compressed_dump_is_told_to_decompress(tmp_path: pathlib.Path, name: str, compress, tool: str) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "guest.core.x"
    p.write_bytes(compress(ELF.read_bytes()))
    cp = run("show", p)
    assert cp.returncode == 1
    assert f"not a dump: it is {name}-compressed: decompress it first (`{tool} {p}`)" in cp.stderr, cp.stderr
    assert "--format raw" not in cp.stderr


def test_os_errors_read_like_the_os_and_empty_files_are_called_empty(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nope.core"
    cp = run("show", missing)
    assert cp.returncode == 1
    assert cp.stderr == f"vmcoreinfo: {missing}: error: No such file or directory\n"
    cp = run("show", tmp_path)  # a directory is a usage error without -r, with the hint
    assert cp.returncode == 2 and f"{tmp_path} is a directory" in cp.stderr and "use -r" in cp.stderr, cp.stderr
    empty = tmp_path / "empty.core"
    empty.write_bytes(b"")
    cp = run("show", empty)
    assert cp.returncode == 1
    assert cp.stderr == f"vmcoreinfo: {empty}: error: not a dump: the file is empty\n"
    cp = run("show", "/dev/null")  # a device: not read at offsets
    assert cp.returncode == 1 and "a character device, not a seekable regular file" in cp.stderr, cp.stderr


def test_no_arguments_print_the_commands() -> None:
    cp = run()
    assert cp.returncode == 2 and cp.stdout == ""
    for c in ("show", "scan", "notes", "demo"):
        assert c in cp.stderr
    assert "cmd" not in cp.stderr and "required" not in cp.stderr


# --- 6: no Python None in human output; labelled offsets ----------------------------------------------


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_human_output_never_shows_none(path: pathlib.Path) -> None:
    for args in (["show", path], ["show", "-v", path], ["notes", path]):
        cp = run(*args)
        assert cp.returncode in (0, 3), cp.stderr
        assert "None" not in cp.stdout, cp.stdout


def test_absent_values_read_absent(tmp_path: pathlib.Path) -> None:
    data = bytearray(ELF.read_bytes())
    at = data.index(b"\nBUILD-ID=")
    data[at + 1 : at + 9] = b"XUILD-ID"  # the key is gone
    f = tmp_path / "no-build-id.core"
    f.write_bytes(bytes(data))
    cp = run("show", f)
    assert cp.returncode == 0
    assert "  build-id      absent\n" in cp.stdout


def test_demo_prints_phys_base_once_and_labels_the_offsets() -> None:
    cp = run("demo")
    assert cp.returncode == 0
    assert cp.stdout.count("phys_base     ") == 1
    assert "3262 bytes, text at file offset 1312" in cp.stdout
    assert "header at file offset 1288" in cp.stdout


# --- 8: notes on images, --format, help texts -------------------------------------------------------


def test_notes_on_a_lime_image_says_there_are_none() -> None:
    cp = run("notes", LIME)
    assert cp.returncode == 0
    assert cp.stdout == f"{LIME}: no ELF notes (a lime image carries none)\n"
    assert json.loads(run("notes", "--json", LIME).stdout) == []


def test_notes_takes_format(tmp_path: pathlib.Path) -> None:
    cp = run("notes", "--format", "kdump", ELF)
    assert cp.returncode == 1 and "does not start with its signature" in cp.stderr
    cp = run("notes", "--format", "elf", ELF)
    assert cp.returncode == 0 and "VMCOREINFO" in cp.stdout


@pytest.mark.parametrize("cmd", ["show", "notes", "scan", "demo"])
def test_every_json_flag_has_help(cmd: str) -> None:
    cp = run(cmd, "--help")
    assert cp.returncode == 0
    assert re.search(r"--json\s+one JSON document", cp.stdout), cp.stdout


# --- 12: exit codes ---------------------------------------------------------------------------------------


def test_exit_codes_are_distinct_and_documented(tmp_path: pathlib.Path) -> None:
    assert run("show", ELF).returncode == 0
    cp = run("show", NOVI)
    assert cp.returncode == 3 and "  vmcoreinfo    none: offset 472 (0x1d8): the dump has no VMCOREINFO note" in cp.stdout
    assert f"vmcoreinfo scan {NOVI}" in cp.stdout and "scan_vmcoreinfo()" not in cp.stdout
    bad = tmp_path / "bad.core"
    bad.write_bytes(b"\x7fELF" + b"\0" * 60)
    assert run("show", bad).returncode == 1
    assert run("show", "--no-such-option", ELF).returncode == 2
    assert run("show").returncode == 2
    # several files: an error wins over a missing note, which wins over success
    assert run("show", ELF, NOVI).returncode == 3
    assert run("show", ELF, NOVI, bad).returncode == 1
    zeros = tmp_path / "z.raw"
    zeros.write_bytes(bytes(1 << 20))
    cp = run("scan", "--format", "raw", zeros)
    assert cp.returncode == 3 and "0 VMCOREINFO notes" in cp.stdout
    help_ = run("--help").stdout
    for line in ("0  ok", "1  a file could not be read", "2  usage error", "3  no VMCOREINFO note"):
        assert line in help_
    readme = (ROOT / "README.md").read_text()
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in readme


# --- 11: ELF tails are absent unless asked for as zeros --------------------------------------------------


def test_elf_tails_are_absent_by_default_and_zeros_on_request(tmp_path: pathlib.Path) -> None:
    # The real QEMU dump with its last PT_LOAD's final page turned into a p_filesz < p_memsz
    # tail, as makedumpfile -E writes excluded pages.
    data = bytearray(ELF.read_bytes())
    phoff, phnum = struct.unpack_from("<Q", data, 32)[0], struct.unpack_from("<H", data, 56)[0]
    i, ph = max(
        ((i, struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i)) for i in range(phnum)),
        key=lambda x: x[1][2] if x[1][0] == 1 else -1,
    )
    struct.pack_into("<Q", data, phoff + 56 * i + 32, ph[5] - 4096)  # p_filesz
    p = tmp_path / "tail.core"
    p.write_bytes(bytes(data))
    tail = ph[4] + ph[5] - 4096
    with vmcoreinfo.open(p, elf_tails="zeros") as z, vmcoreinfo.open(p) as a:
        assert z.details()["tail_bytes"] == 4096
        assert z.read_phys(tail, 16) == bytes(16)
        with pytest.raises(vmcoreinfo.AbsentMemoryError) as ei:
            a.read_phys(tail, 16)
        assert (getattr(ei.value, "address", None) or ei.value.offset) == tail  # the first absent address
        assert a.read_phys(0x18DC000, 4096) == z.read_phys(0x18DC000, 4096)  # saved memory reads alike
    cp = run("show", "-v", p)
    assert "4096 bytes in p_filesz < p_memsz tails (absent: not saved by the producer" in cp.stdout


# --- 13: the package surface ---------------------------------------------------------------------------


def test_dir_shows_the_public_api_only() -> None:
    public = [n for n in dir(vmcoreinfo) if not n.startswith("_")]
    assert sorted(public) == sorted(vmcoreinfo.__all__)
    for leaked in ("Literal", "os", "annotations", "PackageNotFoundError"):
        assert leaked not in dir(vmcoreinfo)
    for name in vmcoreinfo.__all__:
        assert getattr(vmcoreinfo, name) is not None


def test_note_repr_names_real_attributes() -> None:
    with vmcoreinfo.open(ELF) as d:
        for n in d.notes():
            fields = dict(re.findall(r"(\w+)=([^,)]+)", repr(n)))
            assert set(fields) == {"name", "type", "offset", "size"}
            for k, v in fields.items():
                assert repr(getattr(n, k)).replace("'", '"') == v
            assert n.size == len(n.desc)


def test_mapping_views() -> None:
    with vmcoreinfo.open(ELF) as d:
        vi = d.vmcoreinfo
    assert isinstance(vi.keys(), collections.abc.KeysView)
    assert isinstance(vi.values(), collections.abc.ValuesView)
    assert isinstance(vi.items(), collections.abc.ItemsView)
    assert list(vi.keys())[0] == "OSRELEASE" and len(vi.keys()) == len(vi) == 108
    assert "OSRELEASE" in vi.keys() and ("OSRELEASE", "6.1.0-48-cloud-amd64") in vi.items()
    assert list(vi.items()) == list(zip(vi.keys(), vi.values()))
    assert vi.keys() & {"OSRELEASE", "nope"} == {"OSRELEASE"}
    assert dict(vi) == dict(vi.items())


# --- 14 and 15: metadata, licences, cleanup --------------------------------------------------------------


def test_licence_files_and_expression() -> None:
    import tomllib

    assert "MIT License" in (ROOT / "LICENSE-MIT").read_text()
    assert "Apache License" in (ROOT / "LICENSE-APACHE").read_text()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "(MIT OR Apache-2.0) AND GPL-2.0-only"
    assert set(meta["license-files"]) == {"LICENSE-MIT", "LICENSE-APACHE"}
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert "lzo" in cargo["features"]["default"]  # the expression is the default build's
    readme = (ROOT / "README.md").read_text()
    assert "--no-default-features --features python" in readme


def test_clean_script_exists_and_readme_says_what_the_tests_leave() -> None:
    clean = ROOT / "scripts" / "clean.sh"
    assert clean.stat().st_mode & 0o111
    readme = (ROOT / "README.md").read_text()
    assert "scripts/clean.sh" in readme
    for leaves in ("tests/realguest/out", "fuzz/target", "cargo-fuzz"):
        assert leaves in readme
    cp = subprocess.run(["bash", "-n", str(clean)], capture_output=True, text=True, check=False)
    assert cp.returncode == 0, cp.stderr


def test_clean_script_removes_what_the_tests_leave_and_nothing_else(tmp_path: pathlib.Path) -> None:
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    (tree / "scripts" / "clean.sh").write_bytes((ROOT / "scripts" / "clean.sh").read_bytes())
    left = ["tests/realguest/out/x86_64/qemu-elf.core", "fuzz/target/x", "target/debug/x", "python/vmcoreinfo/_native.abi3.so"]
    kept = ["tests/test_x.py", "python/vmcoreinfo/cli.py", "fuzz/fuzz_targets/t.rs"]
    for f in left + kept:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        (tree / f).write_text("x")
    dry = subprocess.run(["bash", str(tree / "scripts" / "clean.sh"), "-n"], capture_output=True, text=True, check=False)
    assert dry.returncode == 0 and all((tree / f).exists() for f in left), dry.stderr
    cp = subprocess.run(["bash", str(tree / "scripts" / "clean.sh")], capture_output=True, text=True, check=False)
    assert cp.returncode == 0, cp.stderr
    assert not any((tree / f).exists() for f in left)
    assert all((tree / f).exists() for f in kept)
    assert "tests/realguest/out" in cp.stdout


def test_bench_skip_reasons_say_how_to_enable_the_peer() -> None:
    if not (ROOT / "benches" / "test_identify.py").exists():
        pytest.skip("benches/ is not in this tree (the installed-wheel run copies tests/ only)")
    cp = subprocess.run(
        [sys.executable, "-m", "pytest", "benches/test_identify.py", "--benchmark-disable", "-p", "no:cacheprovider"]
        + ["-q", "-rs", "-k", "libkdumpfile and not debian"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert cp.returncode == 0, cp.stdout[-2000:]
    skipped = [ln for ln in cp.stdout.splitlines() if ln.startswith("SKIPPED")]
    for ln in skipped:  # none when pykdumpfile is installed
        assert "python benches/install_pykdumpfile.py" in ln, ln
