"""Best-of-30 timings of open + dmesg() and open + symbols on the dumps named on the command line."""
import time, sys, vmcoreinfo
def best(fn, n=30):
    b = 1e9
    for _ in range(n):
        t = time.perf_counter(); fn(); b = min(b, time.perf_counter() - t)
    return b * 1e3
for path in sys.argv[1:]:
    d = vmcoreinfo.open(path); d.kernel_layout()  # translator built once
    def dm():
        with vmcoreinfo.open(path) as x: x.dmesg()
    def sy():
        with vmcoreinfo.open(path) as x: x.symbols
    print(f"{path}: open+dmesg {best(dm):.2f} ms, open+symbols {best(sy):.2f} ms, dmesg on an open dump {best(d.dmesg):.2f} ms")
