"""The crate's structure: no import cycle in src/ (tools/check_modules.py), and the list of
format names spelled out in one place, the format table (src/format/registry.rs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import vmcoreinfo
from vmcoreinfo import _native

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
CHECK = ROOT / "tools" / "check_modules.py"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if not SRC.is_dir():  # the installed-wheel run (scripts/wheel-check.sh) has tests/ and tools/, no src/
    pytest.skip("needs the source tree (src/)", allow_module_level=True)

sys.path.insert(0, str(CHECK.parent))
import check_modules  # noqa: E402


def run_check(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), str(src)], capture_output=True, text=True, check=False)


def test_the_module_graph_has_no_cycle() -> None:
    r = run_check(SRC)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no cycle" in r.stdout


def test_the_check_finds_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "lib.rs").write_text("pub mod a;\npub mod b;\n")
    (tmp_path / "a" / "mod.rs").write_text("pub mod c;\nuse crate::b::B;\n")
    (tmp_path / "a" / "c.rs").write_text("use super::super::b;\n// use crate::nothing;\n")
    (tmp_path / "b.rs").write_text(
        'use crate::{x, a::c::{self, C}};\nconst S: &str = "crate::a";\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n'
    )
    r = run_check(tmp_path)
    assert r.returncode == 1, r.stdout
    assert "import cycle: a::c -> b -> a::c" in r.stdout
    # A use inside a #[cfg(test)] module, a comment or a string is no edge; a module's use of
    # its own submodule is none either.
    (tmp_path / "b.rs").write_text('const S: &str = "crate::a";\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n')
    (tmp_path / "a" / "mod.rs").write_text("pub mod c;\nuse crate::b::B;\nuse self::c::C;\n")
    r = run_check(tmp_path)
    assert r.returncode == 0, r.stdout


def test_the_check_sees_the_cycles_the_review_found() -> None:
    # The graph of the tree before the split (review 1.9) had dump <-> mmap, dump <-> kview, ...
    # here only the edges the split removed are checked to be gone.
    edges, formats = check_modules.graph(SRC)
    for a, b in [("mmap", "dump"), ("kview", "dump"), ("kview::printk", "dump"), ("textblob", "dump"), ("textblob", "kdump")]:
        assert b not in edges[a], f"{a} -> {b}"
    assert not edges["format"] & formats, edges["format"]
    assert {"elf", "kdump", "lime", "avml", "raw"} <= formats


def format_literals(path: Path, names: set[str]) -> set[str]:
    code = check_modules.drop_test_modules(check_modules.strip(path.read_text(), keep_strings=True))
    return {m for m in re.findall(r'"([a-z-]+)"', code) if m in names}


def test_the_format_names_are_spelled_out_once() -> None:
    names = {name for name, _ in _native.FORMATS}
    assert len(names) == 6
    spelled = {}
    for p in sorted(SRC.rglob("*.rs")):
        if p.name == "tests.rs":
            continue
        found = format_literals(p, names)
        # A file naming most formats is a list of them (one or two names is a use of a format).
        if len(found) >= 3:
            spelled[str(p.relative_to(ROOT))] = found
    assert spelled == {"src/format/registry.rs": names}


def test_identify_many_takes_every_format_open_takes() -> None:
    # identify_many accepted only elf/kdump/lime/raw; its check is the table's now.
    for name, _ in _native.FORMATS:
        assert list(vmcoreinfo.identify_many([], format=name)) == []  # type: ignore[arg-type]
    (r,) = vmcoreinfo.identify_many([str(FIXTURES / "x86_64-qemu.avml")], format="avml")  # type: ignore[arg-type]
    assert r.format == "avml" and r.error_type is None, r
