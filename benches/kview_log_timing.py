"""Best-of-N timings of open + dmesg() and open + symbols on the dumps named on the command line:
wall time and the process's CPU time (all threads) (on a loaded machine the CPU time is the one to trust: the
wall time includes the time the process waited for a core)."""

import sys
import time

import vmcoreinfo


def best(fn, n=30):
    wall = cpu = 1e9
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - t)
    return f"{wall * 1e3:.2f} ms wall / {cpu * 1e3:.2f} ms CPU"


for path in sys.argv[1:]:

    def dm(path=path):
        with vmcoreinfo.open(path) as x:
            x.dmesg()

    def sy(path=path):
        with vmcoreinfo.open(path) as x:
            x.symbols

    print(f"{path}: open+dmesg {best(dm)}; open+symbols {best(sy)}")
