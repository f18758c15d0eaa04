#!/usr/bin/env bash
# Make the bench inputs under $BENCH_DATA (default <repo>/bench-data, git-ignored). Never committed.
#   256M/  QEMU + makedumpfile dumps of a 256 MiB x86_64 guest: symlinks into $REALDUMPS/x86_64
#          (default /work/realdumps), or a fresh generator run when that is missing
#   8G/    the same from an 8 GiB guest: MEM=8G GUESTS=x86_64 make-real-dumps.sh (boots a real
#          guest under QEMU; ~4 min under TCG; needs root). Its qemu-elf-paging.core (8 GiB) is
#          deleted afterwards to keep the real bytes on disk down (~9 GiB in all).
#   64G/   qemu-elf-sparse.core: 8G/qemu-elf.core's real ELF header, program/section headers
#          and notes, its PT_LOADs grown to 64 GiB of guest memory, as a sparse file
#          (benches/make_sparse_elf.py; 512 MiB of real guest memory, the rest holes).
# env: BENCH_DATA, REALDUMPS, GENERATOR (default /work/shared/realdumps/make-real-dumps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BD=${BENCH_DATA:-$ROOT/bench-data}
REALDUMPS=${REALDUMPS:-/work/realdumps}
GEN=${GENERATOR:-/work/shared/realdumps/make-real-dumps.sh}
PY=${PYTHON:-python3}
NAMES="qemu-elf.core qemu-kdump-zlib.kdump qemu-kdump-zlib.flat md-zlib-d31.kdump md-zlib-d31.flat md-d31.elf"
mkdir -p "$BD/256M" "$BD/8G" "$BD/64G"
log() { printf '[make-bench-data %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

link_set() { # link_set SRCDIR DESTDIR
  for n in $NAMES; do
    if [ -e "$1/$n" ]; then ln -sfn "$1/$n" "$2/$n"; fi  # (a bare `[ ] &&` ends a set -e script)
  done
}

# --- 256 MiB guest
if [ -e "$REALDUMPS/x86_64/DONE" ]; then
  link_set "$REALDUMPS/x86_64" "$BD/256M"
else
  [ -e "$BD/gen-256M/x86_64/DONE" ] || { log "generating 256M dumps"; GUESTS=x86_64 MEM=256M "$GEN" "$BD/gen-256M" > "$BD/gen-256M.log" 2>&1; }
  link_set "$BD/gen-256M/x86_64" "$BD/256M"
fi

# --- 8 GiB guest
if [ ! -e "$BD/gen-8G/x86_64/DONE" ]; then
  log "generating 8G dumps (boots an 8 GiB guest; a few minutes)"
  GUESTS=x86_64 MEM=8G WORK=/tmp/realdumps-work-8g "$GEN" "$BD/gen-8G" > "$BD/gen-8G.log" 2>&1
fi
rm -f "$BD/gen-8G/x86_64/qemu-elf-paging.core"
# makedumpfile's outputs need an 8 GiB phdr-layout fix-up copy of the ELF dump (the generator's
# step 3), which the generator skips when the disk cannot hold it: derive them here the same way
# (its elf-phdr-fixup.py, then makedumpfile -c -d 31 and -F -c -d 31), the copy deleted after.
G8=$BD/gen-8G/x86_64
if [ ! -s "$G8/md-zlib-d31.kdump" ] || [ ! -s "$G8/md-zlib-d31.flat" ]; then
  log "making the 8G makedumpfile dumps (needs ~8.1 GiB of free disk for a while)"
  fx=$BD/gen-8G/fixed.core
  $PY "$(dirname "$GEN")/elf-phdr-fixup.py" "$G8/qemu-elf.core" "$fx" >&2
  makedumpfile -c -d 31 "$fx" "$G8/md-zlib-d31.kdump.tmp" > "$BD/gen-8G/md.log" 2>&1 && mv "$G8/md-zlib-d31.kdump.tmp" "$G8/md-zlib-d31.kdump"
  makedumpfile -F -c -d 31 "$fx" > "$G8/md-zlib-d31.flat.tmp" 2>> "$BD/gen-8G/md.log" && mv "$G8/md-zlib-d31.flat.tmp" "$G8/md-zlib-d31.flat"
  rm -f "$fx"
fi
link_set "$BD/gen-8G/x86_64" "$BD/8G"

# --- 64 GiB sparse ELF from the 8 GiB guest's real headers and notes
if [ ! -e "$BD/64G/qemu-elf-sparse.core" ] || [ "$BD/8G/qemu-elf.core" -nt "$BD/64G/qemu-elf-sparse.core" ]; then
  log "making the 64 GiB sparse ELF"
  $PY benches/make_sparse_elf.py "$BD/8G/qemu-elf.core" "$BD/64G/qemu-elf-sparse.core" --size 64G --real 512M
fi
log "inputs under $BD:"
for f in "$BD"/256M/* "$BD"/8G/* "$BD"/64G/*; do
  printf '  %-40s %14s bytes  %8s on disk\n' "${f#$BD/}" "$(stat -L -c %s "$f")" "$(du -L -h "$f" | cut -f1)" >&2
done
