#!/usr/bin/env bash
# The release artefacts, checked as a user gets them:
#   1. build the manylinux2014 (glibc 2.17) x86_64 abi3 wheel with maturin --zig (zig from PyPI's
#      `ziglang`, so no system cross toolchain is needed) and the sdist;
#   2. `auditwheel show` must find the wheel consistent with manylinux_2_17_x86_64;
#   3. install the wheel (with its dask and parquet extras) into a fresh venv and, with no Rust
#      toolchain on PATH, run the Python test suite from a copy of tests/ outside the repository
#      against the installed package (tests/test_installed.py asserts vmcoreinfo.__file__ lies in
#      that venv), plus `vmcoreinfo --version` and mypy.stubtest of the installed extension;
#   4. build the sdist in another fresh venv (a debug-profile build: it proves the sdist holds
#      everything a source build needs, without a second fat-LTO build) and run `vmcoreinfo demo`.
#
#   scripts/wheel-check.sh                   all of it
#   WHEEL=dist/x.whl scripts/wheel-check.sh  check that wheel instead of building one (step 1 skipped)
#   SKIP_SDIST=1 scripts/wheel-check.sh      leave out step 4
# env: PYTHON (default python3), WHEEL_WORK (default <repo>/target/wheel-check, git-ignored),
#      CARGO_TARGET_DIR (default <repo>/target/wheel-build: its own, the cdylib name would clash).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
W=${WHEEL_WORK:-$ROOT/target/wheel-check}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/wheel-build}
PIP=(--quiet --disable-pip-version-check)
t0=$(date +%s)
step() { printf '\n--- wheel-check: %s (t+%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }
rm -rf "$W/test-venv" "$W/sdist-venv" "$W/run"
mkdir -p "$W/dist" "$W/bin"

if [ -z "${WHEEL:-}" ]; then
  step "build venv (maturin, ziglang, auditwheel from PyPI)"
  [ -x "$W/build-venv/bin/python" ] || $PY -m venv "$W/build-venv"
  "$W/build-venv/bin/pip" install "${PIP[@]}" 'maturin>=1.9.4,<2' ziglang auditwheel
  # maturin looks for `zig` on PATH: the one inside the ziglang package.
  printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$W/build-venv/bin/python" > "$W/bin/zig"
  chmod +x "$W/bin/zig"
  step "maturin build --release --zig --compatibility manylinux2014 (fat LTO: minutes) and maturin sdist"
  rm -f "$W"/dist/vmcoreinfo-*
  PATH="$W/bin:$W/build-venv/bin:$PATH" maturin build --quiet --release --zig --compatibility manylinux2014 \
    --target x86_64-unknown-linux-gnu -i "$PY" -o "$W/dist"
  PATH="$W/build-venv/bin:$PATH" maturin sdist -o "$W/dist"
  WHEEL=$(ls "$W"/dist/vmcoreinfo-*-manylinux*.whl)
  SDIST=$(ls "$W"/dist/vmcoreinfo-*.tar.gz)
  AUDITWHEEL="$W/build-venv/bin/auditwheel"
else
  SDIST=${SDIST:-$(ls "$(dirname "$WHEEL")"/vmcoreinfo-*.tar.gz 2>/dev/null || true)}
  AUDITWHEEL=${AUDITWHEEL:-auditwheel}
fi
echo "wheel: $WHEEL ($(du -h "$WHEEL" | cut -f1))"
case "$(basename "$WHEEL")" in
  *-cp311-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl|*-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl) ;;
  *) echo "wheel-check: unexpected wheel tags: $(basename "$WHEEL")" >&2; exit 1 ;;
esac

step "auditwheel show"
"$AUDITWHEEL" show "$WHEEL" | tee "$W/auditwheel.txt"
tr -s '\n ' '  ' < "$W/auditwheel.txt" | grep -q 'consistent with the following platform tag: "manylinux_2_17_x86_64"' \
  || { echo "wheel-check: auditwheel does not find the wheel manylinux_2_17_x86_64" >&2; exit 1; }

step "fresh venv: the wheel with its extras, pytest, mypy (no Rust toolchain on PATH from here on)"
$PY -m venv "$W/test-venv"
TV=$W/test-venv
"$TV/bin/pip" install "${PIP[@]}" "$WHEEL[dask,parquet]" pytest mypy
# PATH without cargo, rustc or maturin: only the venv and the system's own directories.
NORUST_PATH="$TV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
for tool in cargo rustc rustup maturin; do
  if PATH=$NORUST_PATH command -v "$tool" >/dev/null; then
    echo "wheel-check: $tool is still on PATH ($(PATH=$NORUST_PATH command -v $tool)); cannot prove a Rust-free install" >&2
    exit 1
  fi
done
version=$("$TV/bin/python" -c 'import importlib.metadata as m; print(m.version("vmcoreinfo"))')
[ "$(PATH=$NORUST_PATH vmcoreinfo --version)" = "vmcoreinfo $version" ]
echo "vmcoreinfo --version: vmcoreinfo $version"

step "pytest on a copy of tests/ outside the repository, against the installed wheel"
RUN=$(mktemp -d /tmp/vmcoreinfo-wheel-check.XXXXXX)
trap 'rm -rf "$RUN"' EXIT
mkdir -p "$RUN/benches"
# Everything but the real-guest stage (it boots QEMU guests; scripts/test.sh runs it on the source tree).
tar -C "$ROOT" --exclude=tests/realguest --exclude=__pycache__ -cf - tests | tar -C "$RUN" -xf -
cp benches/make_corpus.py "$RUN/benches/"   # the corpus maker tests/test_batch.py and test_dask.py use
cp -r tools "$RUN/tools"                     # tests/test_lime_raw.py runs tools/make_lime_fixture.py
# tests/test_readme.py and test_cli.py check the README's examples and the package metadata files.
mkdir -p "$RUN/scripts" && cp README.md LICENSE-MIT LICENSE-APACHE pyproject.toml Cargo.toml "$RUN/" && cp scripts/clean.sh "$RUN/scripts/"
printf '[pytest]\naddopts = -ra\nmarkers =\n    realguest: real-guest stage (not run here)\n' > "$RUN/pytest.ini"
(
  cd "$RUN"
  export PATH=$NORUST_PATH VMCOREINFO_EXPECT_INSTALLED_IN=$TV VMCOREINFO_EXPECT_VERSION=$version
  env -u PYTHONPATH "$TV/bin/python" -c 'import sys, vmcoreinfo; print("testing", vmcoreinfo.__file__); assert sys.prefix in vmcoreinfo.__file__'
  env -u PYTHONPATH "$TV/bin/python" -m pytest tests -p no:cacheprovider -q
  env -u PYTHONPATH "$TV/bin/python" -m mypy.stubtest vmcoreinfo._native --allowlist "$ROOT/tools/stubtest-allowlist.txt"
)

if [ "${SKIP_SDIST:-0}" != 1 ] && [ -n "$SDIST" ]; then
  step "sdist $(basename "$SDIST") builds in a fresh venv (needs a Rust toolchain; debug profile here)"
  $PY -m venv "$W/sdist-venv"
  MATURIN_PEP517_ARGS="--profile dev" CARGO_TARGET_DIR="$W/sdist-target" \
    "$W/sdist-venv/bin/pip" install "${PIP[@]}" "$SDIST"
  (cd "$RUN" && "$W/sdist-venv/bin/python" -c '
import vmcoreinfo
(r,) = vmcoreinfo.identify_many([vmcoreinfo.sample_path()])
with vmcoreinfo.open(vmcoreinfo.sample_path()) as d:
    assert r.ok and r.osrelease == d.vmcoreinfo.osrelease and r.machine == "x86_64", r
print("sdist build works:", vmcoreinfo.__file__, r)')
fi
step "done: $(basename "$WHEEL") installs and passes without Rust"
