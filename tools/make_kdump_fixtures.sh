#!/bin/sh
# Regenerate tests/fixtures/kdump/ from the real dump set (REALDUMPS, default /work/realdumps).
# Needs python3; the zstd/snappy fixtures need `pip install zstandard cramjam`.
set -eu
R=${REALDUMPS:-/work/realdumps}
T=$(dirname "$0")/reduce_kdump.py
O=$(dirname "$0")/../tests/fixtures/kdump
mkdir -p "$O"
# x86_64: the VMCOREINFO note is at paddr 0x18dc000 (guest /sys/kernel/vmcoreinfo).
python3 "$T" reduce "$R/x86_64/qemu-kdump-zlib.kdump" "$O/qemu-x86_64-zlib.kdump" --paddr 0x18dc000 --per-kind 3 --run 20
python3 "$T" reduce "$R/x86_64/md-zlib-d31.kdump" "$O/md-x86_64-zlib-d31.kdump" --paddr 0x18dc000 --per-kind 3 --run 20
python3 "$T" reduce "$R/x86_64/md-lzo-d31.kdump" "$O/md-x86_64-lzo-d31.kdump" --paddr 0x18dc000 --per-kind 3 --run 20
python3 "$T" reduce "$R/x86_64/md-none-d31.kdump" "$O/md-x86_64-none-d31.kdump" --paddr 0x18dc000 --per-kind 3 --run 4
# arm64: note at paddr 0x42290000; 64 KiB blocks, machine "Unknown".
python3 "$T" reduce "$R/arm64/qemu-kdump-zlib.kdump" "$O/qemu-arm64-zlib.kdump" --paddr 0x42290000 --per-kind 2 --run 17 --budget 0
# Flattened twins, laid out like makedumpfile -F and QEMU write them.
python3 "$T" flatten "$O/md-x86_64-zlib-d31.kdump" "$O/md-x86_64-zlib-d31.flat" --style md
python3 "$T" flatten "$O/qemu-x86_64-zlib.kdump" "$O/qemu-x86_64-zlib.flat" --style qemu
python3 "$T" flatten "$O/qemu-arm64-zlib.kdump" "$O/qemu-arm64-zlib.flat" --style qemu
# Codecs no producer here writes: re-encoded from the reduced makedumpfile zlib fixture.
python3 "$T" recompress "$O/md-x86_64-zlib-d31.kdump" "$O/md-x86_64-zstd-d31.kdump" --codec zstd
python3 "$T" recompress "$O/md-x86_64-zlib-d31.kdump" "$O/md-x86_64-snappy-d31.kdump" --codec snappy
