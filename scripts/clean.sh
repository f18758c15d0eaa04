#!/usr/bin/env bash
# Remove what scripts/test.sh (and scripts/bench.sh) leave in the tree:
#   tests/realguest/out, tests/realguest/cache, fuzz/target, fuzz/artifacts, target/, dist/,
#   bench-data/, the built extension (python/vmcoreinfo/_native*.so) and Python caches.
#   scripts/clean.sh          the tree only
#   scripts/clean.sh --all    also uninstall what the tests installed into this Python
#                             (the package, drgn, pyelftools, lief, cffi, pykdumpfile) and
#                             cargo-fuzz from ~/.cargo/bin
#   scripts/clean.sh -n       print what would be removed, remove nothing
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
dry=0 all=0
for a in "$@"; do
  case $a in
    -n|--dry-run) dry=1 ;;
    --all) all=1 ;;
    *) echo "usage: $0 [-n] [--all]" >&2; exit 2 ;;
  esac
done
run() { if [ $dry = 1 ]; then echo "would run: $*"; else "$@"; fi; }

paths=(tests/realguest/out tests/realguest/cache fuzz/target fuzz/artifacts target dist bench-data .benchmarks)
for p in "${paths[@]}"; do
  if [ -e "$p" ]; then
    echo "$(du -sh "$p" 2>/dev/null | cut -f1)	$p"
    run rm -rf -- "$p"
  fi
done
while IFS= read -r -d '' f; do run rm -rf -- "$f"; done < <(
  find python tests benches tools -name __pycache__ -prune -print0 -o -name '_native*.so' -print0 2>/dev/null)

if [ $all = 1 ]; then
  run "$PY" -m pip uninstall --yes --quiet vmcoreinfo drgn pyelftools lief cffi pykdumpfile || true
  if command -v cargo-fuzz >/dev/null; then run cargo uninstall cargo-fuzz || true; fi
fi
