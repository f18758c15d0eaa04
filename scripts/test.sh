#!/usr/bin/env bash
# The one test command: installs what the tests need, builds the extension, runs every test.
#   scripts/test.sh            everything (Rust, Python, type checks, real-guest stage, benches as tests, fuzz smoke)
#   SKIP_REALGUEST=1 scripts/test.sh   without the real-guest stage (it boots QEMU guests; needs root for apt-get)
#   SKIP_FUZZ=1 scripts/test.sh        without the fuzz smoke run (builds cargo-fuzz targets)
#   SKIP_WHEEL=1 scripts/test.sh       without the wheel stage (scripts/wheel-check.sh: a fat-LTO manylinux build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
t0=$(date +%s)
phase() { printf '\n=== %s (t+%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }

phase "install test requirements and build the extension (pip install -e '.[test,dask,parquet]'), and the peers the benches compare with"
$PY -m pip install --quiet --disable-pip-version-check -e '.[test,dask,parquet]'
$PY -m pip install --quiet --disable-pip-version-check -r benches/requirements.txt

phase "lint: cargo fmt --check, cargo clippy -D warnings (core alone and with the python feature), ruff check + ruff format --check"
cargo fmt --all --check
cargo clippy --locked --quiet --all-targets -- -D warnings
cargo clippy --locked --quiet --all-targets --features python -- -D warnings
$PY -m ruff check python tests benches tools
$PY -m ruff format --check python tests benches tools
$PY tools/check_modules.py

phase "cargo test (pyo3-free core)"
cargo test --locked --quiet

phase "type checks (mypy.stubtest of the extension stub, mypy --strict of the package)"
$PY -m mypy.stubtest vmcoreinfo._native --allowlist tools/stubtest-allowlist.txt
$PY -m mypy --strict python/vmcoreinfo

markers=()
if [ "${SKIP_REALGUEST:-0}" = 1 ]; then
  markers=(-m "not realguest")
else
  phase "real-guest stage: boot real Linux guests under QEMU with -device vmcoreinfo and dump them"
  rg_out=${VMCOREINFO_REALGUEST_DIR:-tests/realguest/out}
  $PY tests/realguest/generate.py "$rg_out"
  echo "--- phase timings (seconds) from $rg_out/timings.tsv"
  column -t -s $'\t' "$rg_out/timings.tsv" 2>/dev/null || cat "$rg_out/timings.tsv"
  export VMCOREINFO_REALGUEST_DIR=$rg_out
fi

phase "pytest: tests/, and benches/ as plain tests on the committed fixtures (the real-guest tests list every dump they checked at the end)"
# pytest exits 5 when it collects nothing; `set -e` turns that (like any failure) into a failed run.
# (Two runs: each directory's conftest.py is imported as `conftest`.)
$PY -m pytest tests "${markers[@]}" -p no:cacheprovider
$PY -m pytest benches --benchmark-disable -p no:cacheprovider

if [ "${SKIP_WHEEL:-0}" != 1 ]; then
  phase "wheel stage: manylinux2014 abi3 wheel + sdist, auditwheel, the test suite against the installed wheel without Rust (scripts/wheel-check.sh)"
  scripts/wheel-check.sh
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  phase "fuzz smoke run (every cargo-fuzz target, a few seconds each, over the committed corpus)"
  scripts/fuzz-smoke.sh
fi

phase "done"
