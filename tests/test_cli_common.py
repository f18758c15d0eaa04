"""The CLI support module (vmcoreinfo._cli_common) and what every command shares through it: the
format names of the native table (B3: avml and flattened-kdump everywhere), the exit codes, one
progress line, the parent parsers; the one Identity schema; identify_many as a context manager."""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import re
import subprocess
import sys
import typing

import pytest
import vmcoreinfo
from helpers import FIXTURES
from vmcoreinfo import _batch, _cli_common, _schema, _types, cli

PKG = pathlib.Path(vmcoreinfo.__file__).parent
ELF = FIXTURES / "x86_64-qemu-elf.core"
ARM = FIXTURES / "arm64-qemu-elf.core"
LIME = FIXTURES / "x86_64-qemu.lime"
AVML = FIXTURES / "x86_64-qemu.avml"
FLAT = FIXTURES / "kdump" / "qemu-x86_64-zlib.flat"
NATIVE_NAMES = tuple(name for name, _ in vmcoreinfo.FORMATS)


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmcoreinfo", *map(str, args)], text=True, capture_output=True, timeout=120)


# --- formats (B3) ---------------------------------------------------------------------------------


def test_format_names_are_the_native_table() -> None:
    assert _cli_common.FORMAT_NAMES == NATIVE_NAMES
    assert set(_cli_common.FORMAT_NAMES) == set(typing.get_args(_types.FormatName))
    assert _cli_common.MEMORY_IMAGES == {name for name, image in vmcoreinfo.FORMATS if image}
    assert {"avml", "flattened-kdump"} <= set(_cli_common.FORMAT_NAMES)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "--format", "avml", AVML],
        ["show", "--json", "--format", "flattened-kdump", FLAT],
        ["scan", "--format", "avml", AVML],
        ["notes", "--format", "flattened-kdump", FLAT],
        ["convert", "--format", "avml", AVML, "{tmp}/out.core", "--to", "elf", "-q"],
        ["convert", "--format", "flattened-kdump", FLAT, "{tmp}/out.kdump", "--to", "kdump", "-q"],
    ],
    ids=lambda a: " ".join(str(x) for x in a[:3]),
)
def test_every_format_is_a_format_choice(argv: list[object], tmp_path: pathlib.Path) -> None:
    cp = run(*(str(a).format(tmp=tmp_path) for a in argv))
    assert "invalid choice" not in cp.stderr
    assert cp.returncode == 0, cp.stderr


@pytest.mark.parametrize("cmd", ["dmesg", "sym"])
def test_kview_commands_take_every_format(cmd: str) -> None:
    extra = ["init_uts_ns"] if cmd == "sym" else []
    cp = run(cmd, "--format", "avml", AVML, *extra)
    assert "invalid choice" not in cp.stderr and cp.returncode != 2, cp.stderr


def test_notes_on_an_avml_image_says_it_is_a_memory_image() -> None:
    cp = run("notes", AVML)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == f"{AVML}: no ELF notes (a avml image carries none)\n"


def test_show_shows_scan_progress_for_avml(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _record(monkeypatch)
    assert cli.summarize(str(AVML), progress=True).vmcoreinfo is not None
    assert any("scanning for VMCOREINFO" in t for t in lines)


def test_identify_many_takes_every_format() -> None:
    (r,) = vmcoreinfo.identify_many([AVML], format="avml")
    assert r.error_type is None, r.error_message
    assert (r.format, r.machine) == ("avml", "x86_64") and r.osrelease
    (r,) = vmcoreinfo.identify_many([FLAT], format="flattened-kdump")
    assert r.error_type is None and r.format == "flattened-kdump"
    (r,) = vmcoreinfo.identify_many([ELF], format="avml")  # forced: not an AVML file
    assert r.error_type is not None and r.format is None
    with pytest.raises(ValueError, match="'avml'.*'raw'"):
        vmcoreinfo.identify_many([ELF], format="bogus")  # type: ignore[arg-type]


def test_identify_many_is_a_context_manager() -> None:
    with vmcoreinfo.identify_many([ELF, ARM, ELF], threads=1) as it:
        assert isinstance(it, vmcoreinfo.IdentifyIter)
        assert next(it).machine == "x86_64"
        assert it.threads == 1
    assert list(it) == []  # closed on leaving the block
    with vmcoreinfo.identify_many([ELF, ARM]) as it:
        assert [r.machine for r in it] == ["x86_64", "aarch64"]


def test_no_cast_for_formats_and_no_second_format_list() -> None:
    for f in PKG.glob("*.py"):
        text = f.read_text()
        assert not re.search(r"cast\(\s*\"[^\"]*(Format|Literal\[)", text), f
        assert '"elf", "kdump", "lime", "raw"' not in text, f


# --- exit codes -------------------------------------------------------------------------------------


def test_exit_codes_are_one_named_set() -> None:
    E = _cli_common.ExitCode
    assert [int(E.OK), int(E.ERROR), int(E.USAGE), int(E.NO_VMCOREINFO), int(E.INTERRUPTED)] == [0, 1, 2, 3, 130]
    for f in ("cli.py", "_batch.py", "_convert_cli.py", "_kview_cli.py"):
        text = (PKG / f).read_text()
        assert not re.search(r"^EXIT_\w+ = \d", text, re.M), f
        assert not re.search(r"return [1-9]\d*\b", text), f


def test_kview_help_has_json_and_exit_status() -> None:
    for cmd in ("dmesg", "sym"):
        cp = run(cmd, "--help")
        assert cp.returncode == 0
        assert re.search(r"--json\s+one JSON document", cp.stdout), cp.stdout
        assert "exit status:" in cp.stdout and "3  the dump has no VMCOREINFO note" in cp.stdout


def test_sym_and_dmesg_json(tmp_path: pathlib.Path) -> None:
    from test_kview_log import log_guest, sym_guest

    p = sym_guest(tmp_path)
    cp = run("sym", "--json", p, "_stext", "0xffffffff84a00041", "no_such_symbol")
    assert cp.returncode == 1, cp.stderr
    rows = json.loads(cp.stdout)
    assert [(r["name"], r["address"], r["offset"]) for r in rows[:2]] == [
        ("_stext", 0xFFFFFFFF84A00000, 0),
        ("static_fn", 0xFFFFFFFF84A00041, 1),
    ]
    assert rows[2]["address"] is None and "no_such_symbol" in rows[2]["error"]
    (tmp_path / "log").mkdir()
    p, _ = log_guest(tmp_path / "log", count_bits=4, size_bits=9)
    cp = run("dmesg", "--json", p)
    assert cp.returncode == 0, cp.stderr
    recs = json.loads(cp.stdout)
    assert recs[0]["text"] == "Linux version 6.1.0-test" and set(recs[0]) == {
        "seq",
        "timestamp_ns",
        "level",
        "facility",
        "caller_id",
        "text",
    }


# --- parent parsers ---------------------------------------------------------------------------------


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    raise AssertionError("no subcommands")


def _option(p: argparse.ArgumentParser, flag: str) -> tuple[object, ...] | None:
    for a in p._actions:
        if flag in a.option_strings:
            return (tuple(a.option_strings), a.dest, a.choices and tuple(a.choices), a.default, a.help, a.nargs, a.const)
    return None


@pytest.mark.parametrize(
    ("flag", "commands"),
    [
        ("--format", {"show", "scan", "notes", "convert", "dmesg", "sym", "ps", "lsmod", "cpus"}),
        ("--json", {"show", "scan", "notes", "demo", "dmesg", "sym", "ps", "lsmod", "cpus"}),
        ("--no-progress", {"show", "scan", "convert"}),
    ],
)
def test_shared_options_are_identical_across_subcommands(flag: str, commands: set[str]) -> None:
    subs = _subparsers(cli.build_parser())
    found = {name: _option(p, flag) for name, p in subs.items()}
    have = {name for name, o in found.items() if o is not None}
    assert have == commands
    if flag == "--json":  # show words its help for one record per file; the rest is the same
        assert "per file" in str(found["show"][4])  # type: ignore[index]
        found = {n: o[:4] + o[5:] for n, o in found.items() if o is not None}  # type: ignore[misc]
    assert len({found[n] for n in have}) == 1, found
    if flag == "--format":
        assert found["show"][2] == NATIVE_NAMES  # type: ignore[index]


def test_demo_runs_the_real_show_parser(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[argparse.Namespace] = []
    real = cli.cmd_show
    monkeypatch.setattr(cli, "cmd_show", lambda a: seen.append(a) or real(a))
    assert cli.main(["demo", "--json"]) == 0
    (ns,) = seen
    want = cli.build_parser().parse_args(["show", "--json", vmcoreinfo.sample_path()])
    assert vars(ns) == vars(want)
    assert json.loads(capsys.readouterr().out)["osrelease"]


# --- one progress line ------------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(monkeypatch: pytest.MonkeyPatch, columns: int = 50) -> list[str]:
    """Every text a ProgressLine draws, with sys.stderr a fake terminal of ``columns``."""
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    drawn: list[str] = []
    real = _cli_common.ProgressLine.update

    def update(self: _cli_common.ProgressLine, text: str, *, final: bool = False) -> None:
        if self.enabled:
            drawn.append(text)
        real(self, text, final=final)

    monkeypatch.setattr(_cli_common.ProgressLine, "update", update)
    return drawn


def _screen_lines(err: str) -> list[str]:
    return [seg for ln in err.split("\n") for seg in ln.split("\r") if seg]


@pytest.mark.parametrize(
    ("argv", "shape"),
    [
        (["scan", LIME], r"^.*x86_64-qemu\.lime: scanning for VMCOREINFO, \d+ of \d+ MiB \(100%\)$"),
        (["show", "-v", ELF, ARM], r"^\[2/2\] .*arm64-qemu-elf\.core$"),
        (["show", "--jsonl", ELF, ARM], r"^vmcoreinfo: 2/2 files, [\d,]+/s$"),
        (["convert", ELF, "{out}", "--to", "elf"], r"\[#{30}\] 100% \d+/\d+ MiB \d+ MB/s$"),
    ],
    ids=["scan-percent", "show-i-of-n", "batch-rate", "convert-bar"],
)
def test_every_progress_line_goes_through_one_class(
    argv: list[object], shape: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    drawn = _record(monkeypatch, columns=500)
    err = sys.stderr
    assert cli.main([str(a).format(out=tmp_path / "out.core") for a in argv]) in (0, 3)
    assert drawn, "no progress line drawn"
    assert re.search(shape, drawn[-1]), drawn
    text = err.getvalue()
    assert text.startswith("\r") and "\n" in text  # drawn in place, the line ended at the end
    capsys.readouterr()


def test_progress_lines_fit_the_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["scan", str(LIME)], ["show", "-v", str(ELF), str(ARM)], ["show", "--jsonl", str(ELF), str(ARM)]):
        drawn = _record(monkeypatch, columns=30)
        err = sys.stderr
        cli.main(argv)
        assert drawn
        progress = err.getvalue()
        lines = _screen_lines(progress)
        assert lines and all(len(ln) <= 29 for ln in lines), lines
        capsys.readouterr()


def test_no_progress_and_no_terminal_draw_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    drawn = _record(monkeypatch)
    cli.main(["scan", "--no-progress", str(LIME)])
    cli.main(["show", "--no-progress", "--jsonl", str(ELF), str(ARM)])
    assert drawn == [] and sys.stderr.getvalue() == "vmcoreinfo: 2 files, 0 failed\n"  # the summary, no progress
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    cli.main(["scan", str(LIME)])
    assert drawn == [] and sys.stderr.getvalue() == ""
    capsys.readouterr()


def test_progress_line_throttles_pads_and_ends() -> None:
    out = FakeTTY()
    line = _cli_common.ProgressLine(out, interval=3600)
    line.update("a long first line")
    line.update("dropped: too soon")
    line.update("short", final=True)
    assert out.getvalue() == "\ra long first line\rshort" + " " * 12
    line.close()
    line.close()  # once
    assert out.getvalue().endswith(" " * 12 + "\n") and out.getvalue().count("\n") == 1
    quiet = io.StringIO()
    q = _cli_common.ProgressLine(quiet)
    q.update("x", final=True)
    q.close()
    assert quiet.getvalue() == "" and not q.enabled
    assert q.rate(0) == 0


def test_an_unsized_terminal_gets_the_fallback_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new pseudo-terminal reports 0 columns: the line is not cut to nothing."""
    import os
    import pty

    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as out:
            assert os.get_terminal_size(slave).columns == 0
            assert _cli_common.terminal_width(out) >= 80 or _cli_common.terminal_width(out) == os.get_terminal_size().columns
            line = _cli_common.ProgressLine(out)
            line.update("vmcoreinfo: 4 files, 1,000/s", final=True)
            line.close()
        got = b""
        while not got.endswith(b"\n"):  # a pty may hand the bytes over in pieces
            got += os.read(master, 4096)
        assert got == b"\rvmcoreinfo: 4 files, 1,000/s\r\n"
    finally:
        os.close(slave)
        os.close(master)


def test_only_the_support_module_draws_progress() -> None:
    for f in PKG.glob("*.py"):
        if f.name != "_cli_common.py":
            text = f.read_text()
            assert "\\r" not in text, f
            assert "stderr.isatty" not in text, f
            assert "get_terminal_size" not in text, f


# --- the summary dataclass --------------------------------------------------------------------------


def test_summary_is_a_frozen_dataclass_with_the_json_of_before() -> None:
    s = cli.summarize(str(ELF), verbose=True)
    assert isinstance(s, cli.Summary)
    with pytest.raises(AttributeError):
        s.path = "x"  # type: ignore[misc]
    doc = s.as_json()
    assert tuple(doc) == _schema.SHOW_RECORD_KEYS + _schema.SHOW_VERBOSE_KEYS
    assert json.loads(run("show", "-v", "--json", ELF).stdout) == json.loads(json.dumps(doc))
    novi = cli.summarize(str(FIXTURES / "x86_64-qemu-elf-no-vmcoreinfo.core")).as_json()
    assert tuple(novi) == _schema.SHOW_RECORD_KEYS and novi["error"]["type"] == "NoVmcoreinfoError"
    assert tuple(novi["error"]) == _schema.ERROR_KEYS


# --- one Identity schema ----------------------------------------------------------------------------


def test_one_identity_schema() -> None:
    (r,) = vmcoreinfo.identify_many([ELF])
    assert _schema.IDENTITY_FIELDS == vmcoreinfo.Identity.FIELDS == tuple(r.as_dict())
    batch_rs = pathlib.Path(__file__).parent.parent / "src" / "python" / "batch.rs"
    if batch_rs.exists():  # (the installed-wheel run has no src/)
        native = batch_rs.read_text()
        block = native[native.index("const FIELDS") : native.index("];", native.index("const FIELDS"))]
        assert tuple(re.findall(r'"(\w+)"', block)) == _schema.IDENTITY_FIELDS
    # Integers where the native values are integers, strings where they are strings.
    for c in _schema.IDENTITY_COLUMNS:
        v = getattr(r, c.name)
        assert v is None or isinstance(v, int if c.kind != "str" else str), c
    assert _schema.pandas_dtypes()["phys_base"] == "Int64" and _schema.pandas_dtypes()["kernel_offset"] == "UInt64"


def test_csv_header_is_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", "--csv", str(ELF)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == ",".join(_schema.IDENTITY_FIELDS)


def test_arrow_and_pandas_use_the_schema() -> None:
    pa = pytest.importorskip("pyarrow")
    assert tuple(_schema.arrow_schema(pa).names) == _schema.IDENTITY_FIELDS
    sink = _batch._ParquetSink.__init__  # the sink builds its schema from _schema
    assert "arrow_schema" in sink.__code__.co_names
    pytest.importorskip("dask")
    pytest.importorskip("pandas")
    import vmcoreinfo.dask as vd

    assert tuple(vd.META.columns) == _schema.IDENTITY_FIELDS
    assert {k: str(v) for k, v in vd.META.dtypes.items()} == _schema.pandas_dtypes()


def test_bench_corpus_columns_come_from_the_schema() -> None:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benches"))
    import make_corpus

    assert set(make_corpus.COLUMNS) <= set(_schema.IDENTITY_FIELDS)
    assert [c for c in _schema.IDENTITY_FIELDS if c in make_corpus.COLUMNS] == list(make_corpus.COLUMNS)


# --- the public typing names ------------------------------------------------------------------------


def test_typing_names_are_public() -> None:
    for name in ("FormatName", "ByteOrder", "ElfTails", "LocationKind", "DetailsDict"):
        assert name in vmcoreinfo.__all__
        assert getattr(vmcoreinfo, name) is getattr(_types, name)
    # The result classes of details() are the native ones, not the TypedDicts of their as_dict().
    for name in ("Details", "PhysBaseDetails", "ScanDetails", "UtsnameDetails", "PageCountDetails", "PageCodecDetails"):
        assert name in vmcoreinfo.__all__
        assert getattr(vmcoreinfo, name) is getattr(vmcoreinfo._native, name)
