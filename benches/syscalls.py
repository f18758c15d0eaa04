#!/usr/bin/env python3
"""Syscalls and instructions per identify of ours, per input: strace -c, and instructions
counted by valgrind's callgrind (exact and load-independent; perf has no hardware counters in
this VM), on a process doing N identifies minus one doing 1 (start-up cancels out).
Writes JSON to argv[1] (default stdout). Needs strace; valgrind is optional."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import inputs  # noqa: E402

N = 200
NI = 20  # callgrind runs ~50x slower
LOOP = """
import sys, vmcoreinfo
p, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    with vmcoreinfo.open(p) as d:
        vi = d.vmcoreinfo
        vi.osrelease, vi.build_id, vi.kernel_offset, vi.phys_base, vi.page_size
"""


def strace_counts(path, n):
    p = subprocess.run(
        ["strace", "-f", "-c", "-U", "name,calls", sys.executable, "-c", LOOP, path, str(n)], capture_output=True, text=True
    )
    counts = {}
    for line in p.stderr.splitlines():
        m = re.match(r"^\s*([a-z_0-9]+)\s+(\d+)\s*$", line)
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def callgrind_instructions(path, n):
    p = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", LOOP, path, str(n)],
        capture_output=True,
        text=True,
    )
    m = re.search(r"Collected : (\d+)", p.stderr)
    return int(m.group(1)) if m else None


def main():
    out = []
    has_vg = shutil.which("valgrind") is not None
    for input_id, path, _fmt, _mem in inputs.inputs():
        a, b = strace_counts(path, 1), strace_counts(path, N + 1)
        per = {k: round((b.get(k, 0) - a.get(k, 0)) / N, 2) for k in sorted(set(a) | set(b))}
        per = {k: v for k, v in per.items() if v > 0.01}
        row = {"input": input_id, "syscalls_per_identify": per}
        if has_vg:
            ia, ib = callgrind_instructions(path, 1), callgrind_instructions(path, NI + 1)
            if ia is not None and ib is not None:
                row["user_instructions_per_identify"] = round((ib - ia) / NI)
        out.append(row)
        print(input_id, row, file=sys.stderr)
    text = json.dumps(out, indent=1)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
