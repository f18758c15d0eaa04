#!/usr/bin/env bash
# Benchmarks side by side with the peers; writes BENCHMARKS.md.
#   scripts/bench.sh                 everything: venv + release build, inputs, benches, RSS, syscalls, report
#   BENCH_SET=fixtures scripts/bench.sh    only the small committed fixtures (quick; no big inputs)
#   SKIP_SETUP=1 scripts/bench.sh    reuse $BENCH_DATA/venv as it is (no pip, no rebuild)
#   BENCH_K='identify or bulk or batch' scripts/bench.sh   only the benches pytest -k selects (no RSS
#                                    and syscall phases); the report says which were run
# env: BENCH_DATA (default <repo>/bench-data, git-ignored), BENCH_VENV (default $BENCH_DATA/venv), PYTHON (default python3),
#      BENCH_OUT (default <repo>/BENCHMARKS.md)
# Needs root for apt-get (libkdumpfile-dev, python3-libkdumpfile, strace, valgrind) and, the first
# time, for booting the 8 GiB guest that makes the inputs (scripts/make-bench-data.sh) and the
# real guests of the kernel-view benches (tests/realguest/generate.py into $BENCH_DATA/realguest,
# or VMCOREINFO_REALGUEST_DIR when set).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export BENCH_DATA=${BENCH_DATA:-$ROOT/bench-data}
PY=${PYTHON:-python3}
V=${BENCH_VENV:-$BENCH_DATA/venv}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
RES=$BENCH_DATA/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"
GIT_STATE="$(git describe --always --dirty) (at the start; the release build is of this working tree)"
t0=$(date +%s)
phase() { printf '\n=== %s (t+%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  phase "system packages (libkdumpfile-dev, python3-libkdumpfile, strace, valgrind)"
  need=()
  for p in libkdumpfile-dev python3-libkdumpfile strace valgrind; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
  fi
  phase "venv $V: bench requirements, pykdumpfile (patched for libkdumpfile 0.5.1)"
  [ -x "$V/bin/python" ] || $PY -m venv "$V"
  "$V/bin/pip" install --quiet --disable-pip-version-check -r benches/requirements.txt
  "$V/bin/python" -c "import kdumpfile; kdumpfile.Context" 2>/dev/null || "$V/bin/python" benches/install_pykdumpfile.py
  phase "release build of the working tree (maturin build --release, fat LTO) into the venv"
  rm -rf "$BENCH_DATA/wheels"
  CARGO_TARGET_DIR=$BENCH_DATA/target "$V/bin/maturin" build --quiet --release -o "$BENCH_DATA/wheels" -i "$V/bin/python"
  "$V/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$BENCH_DATA"/wheels/vmcoreinfo-*.whl
fi

if [ "${BENCH_SET:-}" != fixtures ]; then
  phase "inputs (scripts/make-bench-data.sh)"
  PYTHON="$V/bin/python" scripts/make-bench-data.sh
fi

# The kernel-view benches (benches/test_kview*.py) read the real-guest dumps of every guest the
# test suite boots (x86_64, arm64, la57, i386, i386-pae): made once by tests/realguest/generate.py.
export VMCOREINFO_REALGUEST_DIR=${VMCOREINFO_REALGUEST_DIR:-$BENCH_DATA/realguest}
if [ "${BENCH_SET:-}" != fixtures ] && [ ! -e "$VMCOREINFO_REALGUEST_DIR/COMPLETE" ]; then
  phase "real-guest dumps for the kernel-view benches (tests/realguest/generate.py; boots QEMU guests)"
  "$V/bin/python" tests/realguest/generate.py "$VMCOREINFO_REALGUEST_DIR"
fi

# Is the machine quiet? Other processes' CPU use over 5 s, before and after the benches.
busy() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat); sleep 5
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat)
  echo "$a $b" | awk '{u=$3-$1; i=$4-$2; printf "%.0f%%", 100*u/(u+i)}'
}
top_procs() { ps -eo pcpu,comm --sort=-pcpu --no-headers | awk '$1>20{printf "%s(%s%%) ", $2, $1}'; }
phase "quiet check"
q_before="CPU busy $(busy) over 5 s before the run; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg); busy processes: $(top_procs)"
echo "$q_before"

# Sample other processes' CPU use every 5 s for the whole run (anything not started by this script
# above 20% CPU): the report names them, so a noisy run is visible.
( while :; do ps -eo pid,ppid,pcpu,comm --no-headers | awk -v me=$$ '$3>20 && $2!=me {print $4}'; sleep 5; done ) \
  > "$RES/foreign-cpu.txt" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT
export BENCH_RESULTS=$RES
phase "benches (pytest-benchmark; groups: identify/full per file, bulk per file)"
"$V/bin/python" -m pytest benches -p no:cacheprovider -q -rxs ${BENCH_K:+-k "$BENCH_K"} \
  --benchmark-json="$RES/bench.json" --benchmark-sort=name --benchmark-columns=min,median,max,rounds \
  --benchmark-min-rounds=20 --benchmark-max-time=0.5 2>&1 | tee "$RES/pytest.log" | tail -40

if [ -z "${BENCH_K:-}" ]; then
  phase "peak RSS per reader and file (benches/rss.py)"
  "$V/bin/python" benches/rss.py "$RES/rss.json"

  phase "syscalls and instructions per identify (benches/syscalls.py)"
  "$V/bin/python" benches/syscalls.py "$RES/syscalls.json" || true
fi

kill $SAMPLER 2>/dev/null || true
foreign=$( { grep -v -x -E 'python3?|strace|valgrind|callgrind-amd64|memcheck-amd64|ps|awk|maturin' "$RES/foreign-cpu.txt" || true; } \
  | sort | uniq -c | sort -rn | awk '{printf "%s (%d samples) ", $2, $1}')
q_after="CPU busy $(busy) over 5 s after; load $(cut -d' ' -f1-3 /proc/loadavg); busy processes: $(top_procs). Other processes above 20% CPU during the run (5 s samples): ${foreign:-none}"
cpu=$(awk -F: '/model name/{sub(/^ /,"",$2); print $2; exit}' /proc/cpuinfo)
"$V/bin/python" - "$RES/env.json" <<PYEOF
import json, sys, platform, subprocess
json.dump({
  "command": "scripts/bench.sh" + (" (BENCH_SET=fixtures)" if "${BENCH_SET:-}" == "fixtures" else "")
  + (""" (BENCH_K='${BENCH_K:-}': only those benches, no RSS or syscall phases)""" if """${BENCH_K:-}""" else ""),
  "date": subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip(),
  "git": """$GIT_STATE""",
  "nproc": "$(nproc)", "cpu": """$cpu""", "mem": "$(free -h | awk '/^Mem:/{print $2}')",
  "kernel": platform.release(), "python": platform.python_implementation() + " " + platform.python_version(),
  "quiet": """Before: $q_before. After: $q_after.""",
}, open(sys.argv[1], "w"), indent=1)
PYEOF

phase "report -> $OUT"
"$V/bin/python" benches/report.py "$RES" "$OUT"
echo "results: $RES"
