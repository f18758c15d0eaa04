#!/usr/bin/env bash
# Fuzz smoke run: build every fuzz target in fuzz/ (cargo-fuzz: libFuzzer, AddressSanitizer, debug
# assertions) and run each for a few seconds over the committed corpus (fuzz/corpus/<target>/) and
# seeds made from the real fixtures (fuzz/make_seeds.py). Fails on any crash, timeout or OOM; the
# input that caused it is left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-smoke.sh                     every target, 5 s each
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh     longer
#   scripts/fuzz-smoke.sh kdump text          only these targets
#
# Needs cargo-fuzz (installed here if missing). Only the stable toolchain is assumed:
# RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags to it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
PY=${PYTHON:-python3}
secs=${FUZZ_SECONDS:-5}
export RUSTC_BOOTSTRAP=1
t0=$(date +%s)

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo fuzz build -O -a
bin=target/x86_64-unknown-linux-gnu/release

declare -A max_len=([kview]=8192 [elf]=32768 [notes]=16384 [text]=16384 [kdump]=8192 [flattened]=8192 [fwcfg]=4096 [dump]=12288)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
# kview_translate: guest-physical memory holding page tables (64 pages)
max_len[kview_translate]=262144

seeds=$(mktemp -d)
scratch=$(mktemp -d)
trap 'rm -rf "$seeds" "$scratch"' EXIT
$PY make_seeds.py "$seeds" >/dev/null

failed=()
for t in "${targets[@]}"; do
  mkdir -p "artifacts/$t" "$scratch/$t" "corpus/$t" "$seeds/$t"   # a target may have no seeds
  # New inputs go to a scratch directory: the committed corpus is only read.
  if "$bin/$t" "$scratch/$t" "corpus/$t" "$seeds/$t" -max_total_time="$secs" -max_len="${max_len[$t]:-16384}" \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
      >"$scratch/$t.log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$scratch/$t.log")
    printf 'fuzz %-10s ok   %9s runs\n' "$t" "$runs"
  else
    printf 'fuzz %-10s FAIL (see below; input in fuzz/artifacts/%s/)\n' "$t" "$t"
    grep -a -A30 -E "ERROR|panicked|SUMMARY" "$scratch/$t.log" | head -60 || tail -20 "$scratch/$t.log"
    failed+=("$t")
  fi
done
echo "fuzz smoke: ${#targets[@]} targets in $(( $(date +%s) - t0 )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke FAILED: ${failed[*]}"
  exit 1
fi
