#!/usr/bin/env python3
"""Real-guest dump generator for the vmcoreinfo conformance tests (issue #4).

usage: generate.py OUTDIR [--guests x86_64,arm64,...] [--mem 256M]
                          [--cache DIR] [--boot-timeout S] [--no-install]

Boots real Debian guests under QEMU (TCG) with `-device vmcoreinfo`, lets the
guest's qemu_fw_cfg driver register its VMCOREINFO note, has the guest print its
own view on the serial port, and asks QEMU over QMP for `dump-guest-memory` in
every format it offers.  Then derives makedumpfile variants.  Stdlib only; needs
root (apt-get, /boot/vmlinuz-*).

Guests:
  x86_64           q35, TCG, KASLR on (default), qemu_fw_cfg loaded
  arm64            virt, cortex-a57, TCG, qemu_fw_cfg loaded
  x86_64-nodriver  as x86_64 but qemu_fw_cfg NOT loaded: QEMU has no guest note
  x86_64-la57      as x86_64 on a CPU with 5-level paging (TCG `-cpu qemu64,+la57`)
  i386             Debian's 32-bit non-PAE kernel (linux-image-686) under
                   qemu-system-i386, qemu_fw_cfg loaded
  i386-pae         the same with linux-image-686-pae (CONFIG_X86_PAE=y)

OUTDIR/<guest>/: the dumps, guest-report.txt (the guest's own serial lines),
guest-serial.log, makedumpfile.log, manifest.json; OUTDIR/timings.tsv;
OUTDIR/COMPLETE when every guest succeeded.

Env: VMCOREINFO_REALGUEST_MEM (guest RAM for every guest; default per guest, else 256M),
     VMCOREINFO_REALGUEST_CACHE (cache dir, default tests/realguest/cache).
Exit status: 0 when every required product of every guest exists; 1 otherwise
(with a message saying what is missing).  Never skips silently.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import elffix  # noqa: E402
from qmpclient import QMP, QMPError  # noqa: E402

HOST_PACKAGES = [
    "qemu-system-x86",
    "qemu-system-arm",
    "linux-image-cloud-amd64",
    "busybox-static",
    "makedumpfile",
    "cpio",
    "python3-libkdumpfile",
    "crash",
]
PREFIX = "RGUEST"  # every line the guest itself prints
READY = "RGUEST-READY-FOR-DUMP"
MARKER = "RGUEST-MARKER-DMESG-0xC0FFEE"
X86_START_KERNEL_MAP = 0xFFFFFFFF80000000
PANIC_END = "---[ end Kernel panic"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# small self-contained modules (no `depends=` in their .modinfo) built as modules in every
# kernel here (Debian 11 5.10, 12 6.1 amd64/arm64/686/686-pae, 13 6.12 amd64/arm64): the
# guest loads them after qemu_fw_cfg, so /proc/modules lists more than one module
EXTRA_MODULES = ["crc7", "crc-itu-t", "cordic", "nls_utf8"]
# the kernels' debug packages (drgn's oracle): only the vmlinux is kept, outside the clone
# (amd64 and arm64: the kernels with BTF, whose tasks and modules the tests compare)
DBG_ARCHES = ("x86_64", "arm64")
DBG_CACHE = Path(os.environ.get("VMCOREINFO_DBG_CACHE", "/var/cache/vmcoreinfo-dbg"))

# makedumpfile conversions of the header-fixed QEMU ELF: (output, args, stdout?)
MD_CONVERSIONS = [
    ("md-zlib-d31.kdump", ["-c", "-d", "31"], False),
    ("md-lzo-d31.kdump", ["-l", "-d", "31"], False),
    ("md-none-d31.kdump", ["-d", "31"], False),
    ("md-zlib-d0.kdump", ["-c", "-d", "0"], False),
    ("md-d31.elf", ["-E", "-d", "31"], False),
    ("md-zlib-d31.flat", ["-F", "-c", "-d", "31"], True),
]
MD_FILES = [c[0] for c in MD_CONVERSIONS]
EXTRA_FORMATS = ["kdump-zlib", "kdump-lzo", "kdump-snappy", "kdump-raw-zlib", "kdump-raw-lzo", "kdump-raw-snappy"]

# kernel: the Debian kernel metapackage (default per arch); cpu: -cpu for QEMU;
# mem: guest RAM (default --mem); vmcoreinfo: lines the guest's VMCOREINFO must hold
# (or, with a leading "!", must not hold) -- what makes the guest what it claims to be.
GUESTS = {
    "x86_64": {
        "arch": "x86_64",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "vmcoreinfo": ["NUMBER(pgtable_l5_enabled)=0"],
    },
    "arm64": {"arch": "arm64", "driver": True, "paging": True, "makedumpfile": True},
    "x86_64-nodriver": {"arch": "x86_64", "driver": False, "paging": False, "makedumpfile": False},
    "x86_64-la57": {
        "arch": "x86_64",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "cpu": "qemu64,+la57",
        "mem": "192M",
        "vmcoreinfo": ["NUMBER(pgtable_l5_enabled)=1"],
    },
    "i386": {
        "arch": "i386",
        "kernel": "linux-image-686",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "mem": "192M",
        "vmcoreinfo": ["!CONFIG_X86_PAE=y"],
    },
    "i386-pae": {
        "arch": "i386",
        "kernel": "linux-image-686-pae",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "mem": "192M",
        "vmcoreinfo": ["CONFIG_X86_PAE=y"],
    },
    # 2 vCPUs; after its report the guest panics (sysrq-c from the task `rg-panic`,
    # kernel command line rg.panic panic=0: the guest waits to be dumped)
    "x86_64-panic": {
        "arch": "x86_64",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "smp": 2,
        "panic": True,
        "mem": "192M",
        "vmcoreinfo": ["NUMBER(pgtable_l5_enabled)=0"],
    },
    "arm64-panic": {
        "arch": "arm64",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "smp": 2,
        "panic": True,
        "mem": "192M",
    },
    # Debian 13 (trixie) 6.12 and Debian 11 (bullseye) 5.10 cloud kernels, from their own
    # suites; bullseye's image is named (its metapackage could resolve to another suite's)
    "x86_64-k612": {
        "arch": "x86_64",
        "suite": "trixie",
        "kernel": "linux-image-cloud-amd64",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "smp": 2,
        "mem": "192M",
        "vmcoreinfo": ["SYMBOL(kallsyms_names)="],
    },
    "arm64-k612": {
        "arch": "arm64",
        "suite": "trixie",
        "kernel": "linux-image-cloud-arm64",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "smp": 2,
        "mem": "192M",
        "vmcoreinfo": ["SYMBOL(kallsyms_names)="],
    },
    "x86_64-k510": {
        "arch": "x86_64",
        "suite": "bullseye",
        "kernel": "linux-image-5.10.0-32-cloud-amd64",
        "driver": True,
        "paging": True,
        "makedumpfile": True,
        "smp": 2,
        "mem": "192M",
        # kallsyms keys entered VMCOREINFO in 6.0 (kernel commit 5fd8fea935a1)
        "vmcoreinfo": ["!SYMBOL(kallsyms_names)="],
    },
}
# a "vmcoreinfo" entry ending in "=" is a key: any value
# symbols the guest looks up in its own /proc/kallsyms (the kernel-view tests need them);
# data symbols are there only with CONFIG_KALLSYMS_ALL (Debian's 686 kernels lack it, and
# their System.map is a placeholder: the guest reports them "absent").
KALLSYMS = ["_stext", "_text", "init_uts_ns", "page_offset_base", "swapper_pg_dir", "init_top_pgt"]

# What each guest must yield (required) and what it may yield (optional: QEMU or
# the host's makedumpfile may refuse; the refusal is recorded in manifest.json).
# The tests are parametrized over this table.
PRODUCTS: dict[str, list[tuple[str, bool]]] = {
    "x86_64": [
        ("qemu-elf.core", True),
        ("qemu-elf-paging.core", True),
        ("qemu-kdump-zlib.flat", True),
        ("qemu-kdump-zlib.kdump", True),
    ]
    + [(f, True) for f in MD_FILES],
    # Debian's makedumpfile is built for the host architecture only: on an amd64
    # host it cannot filter an arm64 dump, so the md-* files are optional there.
    "arm64": [
        ("qemu-elf.core", True),
        ("qemu-elf-paging.core", False),
        ("qemu-kdump-zlib.flat", True),
        ("qemu-kdump-zlib.kdump", True),
    ]
    + [(f, False) for f in MD_FILES],
    "x86_64-nodriver": [("qemu-elf.core", True), ("qemu-kdump-zlib.flat", True), ("qemu-kdump-zlib.kdump", True)],
    "x86_64-la57": [
        ("qemu-elf.core", True),
        ("qemu-elf-paging.core", True),
        ("qemu-kdump-zlib.flat", True),
        ("qemu-kdump-zlib.kdump", True),
    ]
    + [(f, True) for f in MD_FILES],
    # QEMU writes every i386 PC guest as ELFCLASS64 + EM_386 (its BIOS ROM block ends at
    # 4 GiB); the paging=true ELF's PT_LOADs stay below 4 GiB.  Debian's amd64
    # makedumpfile is built for x86_64 targets only ("Can't convert a virtual address"
    # on an i386 dump): md-* are optional, their refusals recorded.
    "i386": [
        ("qemu-elf.core", True),
        ("qemu-elf-paging.core", True),
        ("qemu-kdump-zlib.flat", True),
        ("qemu-kdump-zlib.kdump", True),
    ]
    + [(f, False) for f in MD_FILES],
    "i386-pae": [
        ("qemu-elf.core", True),
        ("qemu-elf-paging.core", True),
        ("qemu-kdump-zlib.flat", True),
        ("qemu-kdump-zlib.kdump", True),
    ]
    + [(f, False) for f in MD_FILES],
}
for _g in ("x86_64-panic", "x86_64-k612", "x86_64-k510"):
    PRODUCTS[_g] = list(PRODUCTS["x86_64"])
for _g in ("arm64-panic", "arm64-k612"):
    PRODUCTS[_g] = list(PRODUCTS["arm64"])


class GenError(Exception):
    """A guest could not be produced."""


# ------------------------------------------------------------------ logging / timing
class Timings:
    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            path.write_text("guest\tphase\tseconds\tstatus\n")

    def add(self, guest: str, phase: str, seconds: float, status: str) -> None:
        with TIMINGS_LOCK, self.path.open("a") as f:
            f.write(f"{guest}\t{phase}\t{seconds:.3f}\t{status}\n")


TIMINGS: Timings | None = None
TIMINGS_LOCK = threading.Lock()
#: Guests run in parallel (--jobs) share the cache: fetching packages, building an initramfs and
#: fetching a -dbg vmlinux happen one guest at a time.
CACHE_LOCK = threading.Lock()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@contextlib.contextmanager
def phase(guest: str, name: str):
    """Time a phase; print it; record it in timings.tsv. Re-raises failures."""
    t0 = time.monotonic()
    status = "ok"
    box: dict = {}
    try:
        yield box
        status = box.get("status", "ok")
    except BaseException as e:
        status = "FAILED"
        box["error"] = e
        raise
    finally:
        dt = time.monotonic() - t0
        box["seconds"] = dt
        log(f"{guest:16s} {name:34s} {dt:7.2f} s  {status}")
        if TIMINGS:
            TIMINGS.add(guest, name, dt, status)


def run(cmd: list[str], *, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(cmd, timeout=timeout, text=True, capture_output=True, **kw)
    except subprocess.TimeoutExpired as e:
        raise GenError(f"timed out after {timeout} s: {' '.join(cmd)}") from e
    if check and cp.returncode != 0:
        raise GenError(
            f"command failed (rc={cp.returncode}): {' '.join(cmd)}\n{(cp.stderr or '')[-2000:]}{(cp.stdout or '')[-1000:]}"
        )
    return cp


# ------------------------------------------------------------------ host packages
def dpkg_installed(pkg: str) -> bool:
    cp = run(["dpkg-query", "-W", "-f", "${Status}", pkg], check=False)
    return cp.returncode == 0 and cp.stdout.strip().endswith(" installed")


def dpkg_version(pkg: str) -> str | None:
    cp = run(["dpkg-query", "-W", "-f", "${Version}", pkg], check=False)
    return cp.stdout.strip() or None if cp.returncode == 0 else None


def install_host_packages(workdir: Path) -> dict:
    missing = [p for p in HOST_PACKAGES if not dpkg_installed(p)]
    if missing:
        if os.geteuid() != 0:
            raise GenError(f"packages missing and not root (cannot apt-get): {missing}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        log(f"apt-get install {' '.join(missing)}")
        cp = run(cmd, timeout=1800, check=False, env=env)
        if cp.returncode != 0:
            log("apt-get install failed; running apt-get update and retrying")
            run(["apt-get", "update"], timeout=900, check=False, env=env)
            run(cmd, timeout=1800, env=env)
        still = [p for p in HOST_PACKAGES if not dpkg_installed(p)]
        if still:
            raise GenError(f"packages still missing after apt-get install: {still}")
    return {p: dpkg_version(p) for p in HOST_PACKAGES}


# ------------------------------------------------------------------ foreign-arch debs
class ForeignApt:
    """apt-get/apt-cache for a foreign Debian architecture, with its own package lists
    and archive cache under the cache dir; the host's apt state is not touched."""

    def __init__(self, arch: str, root: Path, suite: str | None = None):
        self.arch = arch
        self.root = root
        self.suite = suite
        (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (root / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (root / "debs").mkdir(parents=True, exist_ok=True)
        if suite:
            # another Debian suite from the same registry: its own sources list (and no
            # sources.list.d), so the host's suite never mixes in
            (root / "sources.list.d").mkdir(exist_ok=True)
            (root / "sources.list").write_text(f"deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {suite} main\n")

    def _opts(self) -> list[str]:
        src = []
        if self.suite:
            src = [
                "-o",
                f"Dir::Etc::SourceList={self.root / 'sources.list'}",
                "-o",
                f"Dir::Etc::SourceParts={self.root / 'sources.list.d'}",
            ]
        return src + [
            "-o",
            f"APT::Architecture={self.arch}",
            "-o",
            f"APT::Architectures={self.arch}",
            "-o",
            f"Dir::State::Lists={self.root / 'lists'}",
            "-o",
            f"Dir::Cache={self.root}",
            "-o",
            "Dir::Cache::pkgcache=",
            "-o",
            "Dir::Cache::srcpkgcache=",
            "-o",
            "Dir::State::status=/dev/null",
        ]

    def has_lists(self) -> bool:
        return any(p.name.endswith("_Packages") or "_Packages" in p.name for p in (self.root / "lists").iterdir())

    def update(self) -> None:
        log(f"apt-get update ({self.arch} lists under {self.root})")
        # partial failures (e.g. a source without this architecture) are tolerated
        run(["apt-get", "-q", *self._opts(), "update"], timeout=900, check=False)
        if not self.has_lists():
            raise GenError(f"apt-get update for {self.arch} fetched no package lists")

    def ensure_lists(self) -> None:
        if not self.has_lists():
            self.update()

    def candidate(self, pkg: str) -> str | None:
        cp = run(["apt-cache", *self._opts(), "policy", f"{pkg}:{self.arch}"], check=False)
        m = re.search(r"Candidate:\s*(\S+)", cp.stdout)
        return m.group(1) if m and m.group(1) != "(none)" else None

    def kernel_package(self, meta: str) -> str:
        cp = run(["apt-cache", *self._opts(), "depends", f"{meta}:{self.arch}"], check=False)
        m = re.search(r"Depends:\s*(linux-image-\d[^\s:]*)", cp.stdout)
        if not m:
            raise GenError(f"cannot resolve {meta} for {self.arch}: {cp.stdout}{cp.stderr}")
        return m.group(1)

    def fetch(self, pkg: str, dest_root: Path) -> tuple[str, Path]:
        """Download pkg (cached by version) and dpkg -x it; return (version, dir)."""
        ver = self.candidate(pkg)
        if ver is None:
            self.update()
            ver = self.candidate(pkg)
        if ver is None:
            raise GenError(f"{pkg}:{self.arch} has no candidate version")
        dest = dest_root / f"{pkg}_{ver.replace(':', '%3a')}_{self.arch}"
        if (dest / ".extracted").exists():
            return ver, dest
        debs = self.root / "debs"

        def find_deb():
            names = {pkg, pkg.replace("+", "%2b")}
            for p in (q for n in names for q in debs.glob(f"{n}_*_{self.arch}.deb")):
                v = run(["dpkg-deb", "-f", str(p), "Version"]).stdout.strip()
                if v == ver:
                    return p
            return None

        deb = find_deb()
        if deb is None:
            cp = run(["apt-get", "-q", *self._opts(), "download", f"{pkg}:{self.arch}={ver}"], timeout=900, check=False, cwd=debs)
            if cp.returncode != 0:
                self.update()
                ver2 = self.candidate(pkg)
                run(["apt-get", "-q", *self._opts(), "download", f"{pkg}:{self.arch}={ver2}"], timeout=900, cwd=debs)
                return self.fetch(pkg, dest_root)
            deb = find_deb()
            if deb is None:
                raise GenError(f"apt-get download {pkg}:{self.arch} left no .deb in {debs}")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(deb), str(dest)], timeout=600)
        (dest / ".extracted").write_text(ver + "\n")
        return ver, dest


# ------------------------------------------------------------------ guest kernels
def kernel_config_fw_cfg(config: Path) -> str:
    for line in config.read_text(errors="replace").splitlines():
        if line.startswith("CONFIG_FW_CFG_SYSFS="):
            return line.split("=", 1)[1]
    return "n"


def find_module(moddir: Path, name: str = "qemu_fw_cfg") -> Path | None:
    if name == "qemu_fw_cfg":
        pats = ["kernel/drivers/firmware/qemu_fw_cfg.ko*"]
    else:
        pats = [f"kernel/**/{name}.ko", f"kernel/**/{name}.ko.*"]
    for pat in pats:
        for p in sorted(moddir.glob(pat)):
            return p
    return None


def module_depends(data: bytes) -> list[str]:
    """The `depends=` of a module's .modinfo (what insmod would need loaded first)."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", data)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def extra_modules(moddir: Path, kver: str) -> list[Path]:
    """EXTRA_MODULES of this kernel; each must exist and be self-contained."""
    found = []
    for name in EXTRA_MODULES:
        p = find_module(moddir, name)
        if p is None:
            raise GenError(f"kernel {kver}: module {name}.ko* not found under {moddir}")
        deps = module_depends(module_bytes(p))
        if deps:
            raise GenError(f"kernel {kver}: {p.name} depends on {deps}; the initramfs carries no dependencies")
        found.append(p)
    return found


def modules_dir(root: Path, kver: str) -> Path:
    # Debian 13 ships the modules under /usr/lib/modules (merged /usr)
    for d in (root / "lib" / "modules" / kver, root / "usr" / "lib" / "modules" / kver):
        if d.is_dir():
            return d
    return root / "lib" / "modules" / kver


def setup_arch(arch: str, cache: Path, kernel_meta: str | None = None, suite: str | None = None) -> dict:
    """Kernel, modules, busybox and QEMU profile for an architecture.

    kernel_meta: a metapackage ("linux-image-cloud-amd64", resolved in the suite's lists)
    or an image package ("linux-image-5.10.0-32-cloud-amd64", taken as named: a metapackage
    of an old suite may resolve to a newer kernel the host has).  suite: another Debian
    suite (trixie, bullseye) with its own sources list and lists under the cache dir."""
    apt = None  # the apt that knows the kernel (for its -dbg package); None = the host's
    if arch == "x86_64" and suite is None:
        meta = "linux-image-cloud-amd64"
        deps = run(["dpkg-query", "-W", "-f", "${Depends}", meta]).stdout
        m = re.search(r"(linux-image-(\d[^\s,()]*))", deps)
        if not m:
            raise GenError(f"cannot resolve {meta} -> linux-image-<version>: {deps!r}")
        kpkg, kver = m.group(1), m.group(2)
        root = Path("/")
        busybox = Path("/bin/busybox")
        versions = {kpkg: dpkg_version(kpkg), "busybox-static": dpkg_version("busybox-static")}
    elif arch == "x86_64":
        apt = ForeignApt("amd64", cache / f"apt-amd64-{suite}", suite)
        apt.ensure_lists()
        kpkg = image_package(apt, kernel_meta or "linux-image-cloud-amd64")
        kver = kpkg[len("linux-image-") :]
        kv, root = apt.fetch(kpkg, cache / "debs")
        busybox = Path("/bin/busybox")
        versions = {f"{kpkg} ({suite})": kv, "busybox-static": dpkg_version("busybox-static")}
    elif arch in ("arm64", "i386"):
        # Debian's foreign kernels and busybox (host apt untouched); qemu-system-i386 so
        # that QEMU's kdump header says "i686", not "x86_64"
        bb_apt = ForeignApt(arch, cache / f"apt-{arch}")
        bb_apt.ensure_lists()
        apt = bb_apt if suite is None else ForeignApt(arch, cache / f"apt-{arch}-{suite}", suite)
        apt.ensure_lists()
        default = {"arm64": "linux-image-cloud-arm64", "i386": "linux-image-686"}[arch]
        kpkg = image_package(apt, kernel_meta or default)
        kver = kpkg[len("linux-image-") :]
        kv, root = apt.fetch(kpkg, cache / "debs")
        bv, broot = bb_apt.fetch("busybox-static", cache / "debs")
        busybox = broot / "bin" / "busybox"
        versions = {kpkg + (f" ({suite})" if suite else ""): kv, f"busybox-static:{arch}": bv}
    else:
        raise GenError(f"unknown architecture {arch}")
    prof = {
        "x86_64": {"qemu": "qemu-system-x86_64", "machine": ["-machine", "q35", "-accel", "tcg"], "console": "ttyS0"},
        "arm64": {
            "qemu": "qemu-system-aarch64",
            "machine": ["-machine", "virt", "-accel", "tcg", "-cpu", "cortex-a57"],
            "console": "ttyAMA0",
        },
        "i386": {"qemu": "qemu-system-i386", "machine": ["-machine", "q35", "-accel", "tcg"], "console": "ttyS0"},
    }[arch]
    prof["elf_arch"] = {"x86_64": "x86_64", "arm64": "aarch64", "i386": "i386"}[arch]
    kernel = root / "boot" / f"vmlinuz-{kver}"
    config = root / "boot" / f"config-{kver}"
    for p in (kernel, config, busybox):
        if not p.exists():
            raise GenError(f"{arch}: {p} missing")
    moddir = modules_dir(root, kver)
    fw = kernel_config_fw_cfg(config)
    module = None
    if fw == "m":
        module = find_module(moddir)
        if module is None:
            raise GenError(f"{arch}: CONFIG_FW_CFG_SYSFS=m but qemu_fw_cfg.ko* not found")
    elif fw != "y":
        raise GenError(f"{arch}: kernel {kver} lacks CONFIG_FW_CFG_SYSFS; the guest cannot write etc/vmcoreinfo")
    return dict(
        prof,
        arch=arch,
        kver=kver,
        kernel=kernel,
        config=config,
        busybox=busybox,
        module=module,
        extra_modules=extra_modules(moddir, kver),
        fw_cfg_sysfs=fw,
        versions=versions,
        apt=apt,
        suite=suite,
    )


def image_package(apt: ForeignApt, name: str) -> str:
    """An image package as named, or the one a metapackage depends on."""
    if re.fullmatch(r"linux-image-\d+\.\d+.*", name):  # not linux-image-686: a metapackage
        return name
    return apt.kernel_package(name)


# ------------------------------------------------------------------ the kernels' debug info
def dbg_vmlinux(kver: str, dbg_cache: Path = DBG_CACHE) -> Path:
    """Where the vmlinux of linux-image-<kver>-dbg is cached (it may not exist)."""
    return dbg_cache / f"vmlinux-{kver}"


def fetch_dbg(guest: str, prof: dict, dbg_cache: Path = DBG_CACHE) -> Path:
    """apt-get download linux-image-<kver>-dbg (from the suite and architecture the kernel
    came from), keep only ./usr/lib/debug/boot/vmlinux-<kver>, drop the .deb."""
    kver = prof["kver"]
    out = dbg_vmlinux(kver, dbg_cache)
    if out.exists():
        return out
    pkg = f"linux-image-{kver}-dbg"
    apt: ForeignApt | None = prof["apt"]
    work = dbg_cache / f".download-{kver}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with phase(guest, f"dbg download {pkg}") as ph:
            if apt is None:
                run(["apt-get", "-q", "download", pkg], timeout=3600, cwd=work)
            else:
                run(["apt-get", "-q", *apt._opts(), "download", f"{pkg}:{apt.arch}"], timeout=3600, cwd=work)
            debs = list(work.glob("*.deb"))
            if len(debs) != 1:
                raise GenError(f"apt-get download {pkg} left {debs} in {work}")
            ph["status"] = f"ok {debs[0].stat().st_size / 1e6:.0f} MB"
        member = f"./usr/lib/debug/boot/vmlinux-{kver}"
        with phase(guest, "dbg extract vmlinux") as ph:
            dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
            tar = subprocess.run(["tar", "-x", "-C", str(work), member], stdin=dpkg.stdout, capture_output=True, timeout=1800)
            dpkg.stdout.close()
            if dpkg.wait(timeout=60) != 0 or tar.returncode != 0:
                raise GenError(f"extracting {member} from {debs[0].name}: {tar.stderr.decode(errors='replace')[-500:]}")
            (work / member).rename(out)
            ph["status"] = f"ok {out.stat().st_size / 1e6:.0f} MB"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def drgn_python(dbg_cache: Path = DBG_CACHE) -> Path:
    return Path(os.environ.get("VMCOREINFO_DRGN_PYTHON", str(dbg_cache / "drgn-venv" / "bin" / "python")))


def ensure_drgn(dbg_cache: Path = DBG_CACHE) -> Path:
    """drgn from PyPI in its own venv under the dbg cache (never the global python)."""
    py = drgn_python(dbg_cache)
    if run([str(py), "-c", "import drgn"], check=False).returncode == 0 if py.exists() else False:
        return py
    venv = dbg_cache / "drgn-venv"
    with phase("all", "drgn venv (pip install drgn)"):
        run([sys.executable, "-m", "venv", str(venv)], timeout=600)
        run([str(venv / "bin" / "pip"), "install", "-q", "drgn"], timeout=1800)
    return venv / "bin" / "python"


def drgn_oracle(guest: str, gd: Path, vmlinux: Path, manifest: dict, dbg_cache: Path = DBG_CACHE) -> None:
    """drgn.json: drgn's reading of qemu-elf.core with the kernel's vmlinux."""
    py = drgn_python(dbg_cache)
    with phase(guest, "drgn oracle") as ph:
        cp = run([str(py), str(HERE / "drgn_oracle.py"), str(gd / "qemu-elf.core"), str(vmlinux)], timeout=900, check=False)
        if cp.returncode != 0 or not cp.stdout.strip():
            ph["status"] = "failed"
            manifest["failed"].append({"file": "drgn.json", "error": (cp.stderr or "")[-2000:]})
            log(f"{guest}: drgn oracle FAILED: {(cp.stderr or '')[-500:]}")
            return
        (gd / "drgn.json").write_text(cp.stdout)
        manifest["drgn"] = {"vmlinux": str(vmlinux), "dump": "qemu-elf.core", "seconds": round(ph.get("seconds", 0), 3)}


# ------------------------------------------------------------------ initramfs
INIT_SCRIPT = r"""#!/bin/busybox sh
# vmcoreinfo real-guest init: report the guest's own view, then wait to be dumped.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
P=@PREFIX@
say() { echo "$P $*"; }
say begin
say uname-r $(uname -r)
say uname-m $(uname -m)
say cmdline $(cat /proc/cmdline)
case " $(cat /proc/cmdline) " in
  *" rg.nodriver "*) say driver not-loaded-by-request ;;
  *) if [ -e /lib/modules/qemu_fw_cfg.ko ]; then
       if insmod /lib/modules/qemu_fw_cfg.ko; then say driver module-loaded
       else say driver module-insmod-FAILED; fi
     else say driver built-in; fi ;;
esac
# a few more modules (self-contained ones: EXTRA_MODULES), loaded after qemu_fw_cfg
for m in /lib/modules/extra/*.ko; do
  [ -e "$m" ] || continue
  n=${m##*/}; n=${n%.ko}
  if insmod "$m"; then say insmod $n ok; else say insmod $n FAILED; fi
done
# "<physical address of the whole note> <note size in hex>"
say sys-kernel-vmcoreinfo $(cat /sys/kernel/vmcoreinfo 2>&1)
R=/sys/firmware/qemu_fw_cfg/by_name/etc/vmcoreinfo/raw
if [ -r $R ]; then say fwcfg-raw $(od -A n -t x1 -v $R | tr -d ' \n')
else say fwcfg-raw absent; fi
echo 0 > /proc/sys/kernel/kptr_restrict
say kallsyms-text $(grep -m1 ' _text$' /proc/kallsyms | cut -d' ' -f1)
# "kallsyms NAME ADDRESS" (or "absent": data symbols need CONFIG_KALLSYMS_ALL)
for s in @KALLSYMS@; do
  a=$(grep -m1 " $s\$" /proc/kallsyms | cut -d' ' -f1); say kallsyms $s ${a:-absent}
done
say iomem-kernel-code $(sed -n 's/^ *\([0-9a-f]*\)-[0-9a-f]* : Kernel code$/\1/p' /proc/iomem | head -1)
# /proc/kcore: ELF64 on 64-bit kernels, ELF32 on i386. PT_LOAD p_paddr = physical
# (RAM), p_vaddr = the kernel's virtual address. Shell arithmetic is signed 64-bit:
# kernel addresses read back negative, consistently (od -t d8).
K=/proc/kcore
u() { od -A n -t u$2 -j $1 -N $2 $K | tr -d ' \n'; }
d() { od -A n -t d$2 -j $1 -N $2 $K | tr -d ' \n'; }
if [ "$(u 4 1)" = 2 ]; then W=8; phoff=$(u 32 8); phnum=$(u 56 2); PH=56; OO=8; OV=16; OP=24; OS=32
else W=4; phoff=$(u 28 4); phnum=$(u 44 2); PH=32; OO=4; OV=8; OP=12; OS=16; fi
say kcore-class $((W * 8))
# kcore file offset of kernel virtual address $1 (hex, no 0x), or nothing
kva() {
  v=$((0x$1)); j=0
  while [ $j -lt $phnum ]; do
    o=$((phoff + j * PH)); j=$((j + 1))
    [ "$(u $o 4)" = 1 ] || continue
    va=$(d $((o + OV)) $W); [ $W = 8 ] || va=$(u $((o + OV)) 4)
    sz=$(u $((o + OS)) $W)
    if [ $va -le $v ] && [ $v -lt $((va + sz)) ]; then
      echo $(($(u $((o + OO)) $W) + v - va)); return
    fi
  done
}
# the value of a kernel variable (W bytes, hex) read at its kallsyms address
for s in page_offset_base; do
  a=$(grep -m1 " $s\$" /proc/kallsyms | cut -d' ' -f1)
  [ -n "$a" ] || continue
  o=$(kva $a)
  if [ -n "$o" ]; then say kvar $s $(od -A n -t x$W -j $o -N $W $K | tr -d ' \n')
  else say kvar $s not-in-kcore; fi
done
NOTE=$(cut -d' ' -f1 /sys/kernel/vmcoreinfo); NOTE=$((NOTE))
LEN=$((0x$(cut -d' ' -f2 /sys/kernel/vmcoreinfo)))
i=0; found=0
while [ $found = 0 ] && [ $i -lt $phnum ]; do
  o=$((phoff + i * PH)); i=$((i + 1))
  [ "$(u $o 4)" = 1 ] || continue
  pa=$(u $((o + OP)) $W); [ ${#pa} -lt 19 ] || continue
  sz=$(u $((o + OS)) $W); [ ${#sz} -lt 19 ] || continue
  off=$(u $((o + OO)) $W); [ ${#off} -lt 19 ] || continue
  if [ $pa -le $NOTE ] && [ $((NOTE + LEN)) -le $((pa + sz)) ]; then
    found=1
    say note-kcore-offset $((off + NOTE - pa))
    timeout 60 dd if=$K bs=$LEN count=1 iflag=skip_bytes,fullblock \
      skip=$((off + NOTE - pa)) 2>/dev/null | od -A n -t x1 -v | tr -d ' \n' | fold -w 128 | \
      while read -r h || [ -n "$h" ]; do say note-hex $h; done
  fi
done
[ $found = 1 ] || say note-kcore not-found
echo "<5>@MARKER@ guest marker line" > /dev/kmsg
say marker-written @MARKER@
sync
# sleeping tasks with known names (one with a space and parentheses in its comm); each
# renames itself (the write is the shell's own: /proc/self is that task) and waits on a
# child `sleep`.  Shell builtins only from here on, so that every task listed below is
# still there when the guest is dumped.
rg_sleeper() { echo -n "$1" > /proc/self/comm; sleep 1000000; }
rg_sleeper rg-sleeper-1 &
rg_sleeper "rg sl(eep)er 2" &
rg_sleeper rg-sleeper-3 &
sleep 1
# "task TID TGID PPID STATE CPU KTHREAD COMM" for every thread; /proc/TID/stat is
# "pid (comm) state ppid ...": comm runs to the LAST ")" and may hold spaces and parens;
# after it, field 3 (state) is $1, ppid $2, flags (field 9) $7, processor (field 39) ${37}
rg_tasks() {
  for d in /proc/[0-9]*/task/[0-9]*; do
    read -r line < $d/stat || continue
    t=${d##*/}; g=${d#/proc/}; g=${g%%/*}
    c=${line#*\(}; c=${c%\)*}
    set -- ${line##*\) }
    say task $t $g $2 $1 ${37} $(( ($7 & 0x200000) != 0 )) "$c"
  done
}
# "stack TID SYMBOL+0xOFF/0xSIZE [MODULE]": /proc/TID/stack, the kernel's own unwinder
rg_stacks() {
  for d in /proc/[0-9]*/task/[0-9]*; do
    t=${d##*/}
    while read -r a b; do say stack $t $b; done < $d/stack
  done
}
# "module NAME SIZE REFCOUNT STATE 0xBASE [TAINTS]" from /proc/modules (kptr_restrict 0)
rg_modules() {
  while read -r l; do set -- $l; say module $1 $2 $3 $5 $6 $7; done < /proc/modules
}
rg_state() { rg_modules; rg_stacks; rg_tasks; }
case " $(cat /proc/cmdline) " in
  *" rg.panic "*)
    # the panic from a known task: a subshell that names itself, reports, then writes
    # `c` to /proc/sysrq-trigger (init waits for it; panic=0: the guest stays to be dumped)
    (
      echo -n rg-panic > /proc/self/comm
      read -r me rest < /proc/self/stat
      rg_state
      say panic-task $me rg-panic
      say end
      echo @READY@
      echo c > /proc/sysrq-trigger
    )
    ;;
  *)
    rg_state
    say end
    echo @READY@
    ;;
esac
wait
while true; do sleep 3600; done
"""


def init_script() -> bytes:
    return (
        INIT_SCRIPT.replace("@PREFIX@", PREFIX)
        .replace("@MARKER@", MARKER)
        .replace("@READY@", READY)
        .replace("@KALLSYMS@", " ".join(KALLSYMS))
    ).encode()


def module_bytes(mod: Path) -> bytes:
    data = mod.read_bytes()
    if mod.name.endswith(".xz"):
        return lzma.decompress(data)
    if mod.name.endswith(".gz"):
        return gzip.decompress(data)
    if mod.name.endswith(".zst"):
        if not shutil.which("zstd"):
            raise GenError(f"{mod} is zstd-compressed and zstd is not installed")
        return subprocess.run(["zstd", "-dc", str(mod)], check=True, capture_output=True).stdout
    return data


def cpio_newc(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """entries: (name, mode, data, (rdevmajor, rdevminor)). Returns a newc archive."""
    out = bytearray()

    def pad4():
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate(entries + [("TRAILER!!!", 0, b"", (0, 0))], 1):
        nb = name.encode() + b"\0"
        fields = [
            ino if name != "TRAILER!!!" else 0,
            mode,
            0,
            0,
            2 if (mode & 0o170000) == 0o040000 else 1,
            0,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(nb),
            0,
        ]
        out += b"070701" + b"".join(b"%08X" % v for v in fields)
        out += nb
        pad4()
        out += data
        pad4()
    return bytes(out)


def build_initramfs(prof: dict, cache: Path) -> Path:
    init = init_script()
    mod = module_bytes(prof["module"]) if prof["module"] else b""
    extra = [(p.name.split(".ko")[0], module_bytes(p)) for p in prof["extra_modules"]]
    bb = prof["busybox"].read_bytes()
    h = hashlib.sha256(b"v2\0" + init + b"\0" + hashlib.sha256(mod).digest() + hashlib.sha256(bb).digest())
    for n, data in extra:
        h.update(n.encode() + b"\0" + hashlib.sha256(data).digest())
    key = h.hexdigest()[:16]
    ver = "_".join(f"{k}={v}" for k, v in sorted(prof["versions"].items()))
    # keyed on the kernel package version and the content (init, module, busybox)
    out = cache / "initramfs" / f"{prof['arch']}-{prof['kver']}-{key}.cpio.gz"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    DIR, REG, CHR = 0o040755, 0o100755, 0o020600
    entries = [
        ("bin", DIR, b"", (0, 0)),
        ("dev", DIR, b"", (0, 0)),
        ("dev/console", CHR, b"", (5, 1)),
        ("proc", DIR, b"", (0, 0)),
        ("sys", DIR, b"", (0, 0)),
        ("tmp", DIR, b"", (0, 0)),
        ("lib", DIR, b"", (0, 0)),
        ("lib/modules", DIR, b"", (0, 0)),
        ("bin/busybox", REG, bb, (0, 0)),
        ("init", REG, init, (0, 0)),
    ]
    if mod:
        entries.append(("lib/modules/qemu_fw_cfg.ko", 0o100644, mod, (0, 0)))
    entries.append(("lib/modules/extra", DIR, b"", (0, 0)))
    entries += [(f"lib/modules/extra/{n}.ko", 0o100644, data, (0, 0)) for n, data in extra]
    tmp = out.with_suffix(".tmp")
    with gzip.open(tmp, "wb", compresslevel=1) as f:
        f.write(cpio_newc(entries))
    tmp.rename(out)
    (out.parent / (out.name + ".versions")).write_text(ver + "\n")
    return out


# ------------------------------------------------------------------ guest report
def parse_report(lines: list[str], arch: str) -> dict:
    g: dict = {"lines": lines, "kallsyms": {}, "kvar": {}}
    hexparts = []
    for line in lines:
        parts = line.split(" ", 2)
        if len(parts) < 2 or parts[0] != PREFIX:
            continue
        key, val = parts[1], (parts[2] if len(parts) > 2 else "")
        if key in ("task", "stack", "module", "panic-task"):
            continue  # many per guest: realguest_support.guest_tasks() & co. parse them
        if key == "insmod":
            n, _, st = val.strip().partition(" ")
            g.setdefault("insmod", {})[n] = st
        elif key == "note-hex":
            hexparts.append(val.strip())
        elif key in ("kallsyms", "kvar"):
            # "kallsyms NAME HEX|absent", "kvar NAME HEX|not-in-kcore": int or None
            name, _, v = val.strip().partition(" ")
            g[key][name] = int(v, 16) if re.fullmatch(r"[0-9a-f]+", v) else None
        else:
            g[key] = val.strip()
    m = re.match(r"(0x[0-9a-fA-F]+)\s+([0-9a-fA-F]+)$", g.get("sys-kernel-vmcoreinfo", ""))
    if m:
        g["note_paddr"] = int(m.group(1), 16)
        g["note_size"] = int(m.group(2), 16)
    raw = g.get("fwcfg-raw", "absent")
    g["fwcfg_raw_hex"] = raw if re.fullmatch(r"[0-9a-f]{32}", raw) else None
    g["uname_r"] = g.get("uname-r")
    if hexparts:
        note = bytes.fromhex("".join(hexparts))
        g["note_hex"] = note.hex()
        if len(note) >= 12:
            namesz, descsz, ntype = (int.from_bytes(note[i : i + 4], "little") for i in (0, 4, 8))
            name_end = 12 + (namesz + 3) // 4 * 4
            g["note_header"] = {
                "namesz": namesz,
                "descsz": descsz,
                "type": ntype,
                "name": note[12 : 12 + namesz].decode("latin-1"),
            }
            g["note_text"] = note[name_end : name_end + descsz].decode("latin-1")
            pm = re.search(r"^NUMBER\(phys_base\)=(-?\d+)$", g["note_text"], re.M)
            g["phys_base_text"] = pm.group(1) if pm else None
    if arch == "x86_64" and g.get("kallsyms-text") and g.get("iomem-kernel-code"):
        text_v = int(g["kallsyms-text"], 16)
        code_p = int(g["iomem-kernel-code"], 16)
        # __pa_symbol(_text) = _text - __START_KERNEL_map + phys_base
        pb = code_p - (text_v - X86_START_KERNEL_MAP)
        g["phys_base_from_kallsyms_iomem"] = pb
    return g


# ------------------------------------------------------------------ one guest
def sniff_format(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(16)
    if head[:4] == b"\x7fELF":
        return "elf"
    if head[:8] == b"KDUMP   ":
        return "kdump"
    if head[:12] == b"makedumpfile":
        return "flattened-kdump"
    return "unknown"


def qemu_dump_name(fmt: str, paging: bool) -> str:
    if fmt == "elf":
        return "qemu-elf-paging.core" if paging else "qemu-elf.core"
    if fmt == "win-dmp":
        return "qemu-win-dmp.dmp"
    return f"qemu-{fmt}.dump"  # renamed after the dump by what QEMU wrote


def run_guest(name: str, spec: dict, out: Path, cache: Path, mem: str, boot_timeout: float, dbg: bool = False) -> dict:
    gd = out / name
    shutil.rmtree(gd, ignore_errors=True)
    gd.mkdir(parents=True)
    mem = mem or spec.get("mem") or "256M"
    manifest: dict = {
        "guest": name,
        "arch": spec["arch"],
        "driver": spec["driver"],
        "mem": mem,
        "files": {},
        "refused": [],
        "failed": [],
        "products": PRODUCTS[name],
    }

    with CACHE_LOCK:
        with phase(name, "setup (kernel, busybox)"):
            prof = setup_arch(spec["arch"], cache, spec.get("kernel"), spec.get("suite"))
        with phase(name, "initramfs"):
            initrd = build_initramfs(prof, cache)
    manifest.update(
        kernel=str(prof["kernel"]),
        kernel_release_pkg=prof["kver"],
        module=str(prof["module"]) if prof["module"] else None,
        extra_modules=[str(p) for p in prof["extra_modules"]],
        suite=prof["suite"] or "host",
        smp=spec.get("smp", 1),
        panic=bool(spec.get("panic")),
        fw_cfg_sysfs=prof["fw_cfg_sysfs"],
        package_versions=prof["versions"],
        initramfs=str(initrd),
        elf_arch=prof["elf_arch"],
    )

    machine = list(prof["machine"]) + ["-smp", str(spec.get("smp", 1))]
    if spec.get("cpu"):
        machine += ["-cpu", spec["cpu"]]
    if spec.get("panic"):
        append = f"console={prof['console']} panic=0 quiet rg.panic"
    else:
        append = f"console={prof['console']} panic=-1 quiet"
    if not spec["driver"]:
        append += " rg.nodriver"
        if prof["fw_cfg_sysfs"] == "y":
            append += " initcall_blacklist=fw_cfg_sysfs_init"
    tmpd = Path(tempfile.mkdtemp(prefix="rg-qmp-"))
    sock = tmpd / "qmp.sock"
    serial = gd / "guest-serial.log"
    cmd = [
        prof["qemu"],
        *machine,
        "-m",
        mem,
        "-display",
        "none",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
        str(prof["kernel"]),
        "-initrd",
        str(initrd),
        "-append",
        append,
        "-device",
        "vmcoreinfo",
        "-qmp",
        f"unix:{sock},server=on,wait=off",
        "-serial",
        f"file:{serial}",
        "-monitor",
        "none",
    ]
    manifest["qemu_cmdline"] = cmd
    qemu_err = (gd / "qemu-stderr.log").open("w")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_err, stderr=qemu_err)
    try:
        with phase(name, "boot-to-ready"):
            deadline = time.monotonic() + boot_timeout
            while True:
                text = serial.read_text(errors="replace") if serial.exists() else ""
                # a panicking guest: wait for the end of the panic (panic=0: it stays)
                if READY in text and (not spec.get("panic") or PANIC_END in text):
                    break
                if proc.poll() is not None:
                    raise GenError(
                        f"{name}: QEMU exited (rc={proc.returncode}) before the "
                        f"guest was ready; see {serial} and {gd / 'qemu-stderr.log'}"
                    )
                if time.monotonic() > deadline:
                    raise GenError(f"{name}: guest not ready within {boot_timeout} s; see {serial}")
                time.sleep(0.2)
        if spec.get("panic"):
            time.sleep(1)  # the other CPUs stop after the panic's last line
            text = serial.read_text(errors="replace")
        lines = [ln.rstrip("\r") for ln in text.splitlines() if ln.startswith(PREFIX + " ")]
        (gd / "guest-report.txt").write_text("\n".join(lines) + "\n")
        guest = parse_report(lines, spec["arch"])
        manifest["guest_view"] = {k: v for k, v in guest.items() if k != "lines"}
        check_guest_view(name, spec, guest, prof)

        with QMP(str(sock)) as q:
            manifest["qemu_version"] = q.version
            caps = q.execute("query-dump-guest-memory-capability")
            formats = [f for f in caps.get("formats", [])]
            manifest["qemu_dump_formats"] = formats
            # freeze the guest: every dump (and every conversion) shows the same memory
            q.execute("stop")
            plan = [("elf", False)]
            if spec["paging"]:
                plan.append(("elf", True))
            if spec["driver"]:
                # every format QEMU lists, plus the kdump ones it may lack (to record
                # the refusal) and QEMU >= 8.2's non-flattened kdump-raw-*
                wanted = [f for f in formats if f != "elf"]
                wanted += [f for f in EXTRA_FORMATS if f not in wanted]
                plan += [(f, False) for f in wanted]
            else:
                plan += [("kdump-zlib", False)]
            for fmt, paging in plan:
                fname = qemu_dump_name(fmt, paging)
                target = gd / fname
                label = f"qemu-dump {fmt}{' paging' if paging else ''}"
                with phase(name, label) as ph:
                    try:
                        q.execute(
                            "dump-guest-memory", {"paging": paging, "protocol": f"file:{target}", "format": fmt}, timeout=1800
                        )
                        ok = target.exists() and target.stat().st_size > 0
                        err = None if ok else "QEMU reported success but wrote nothing"
                    except QMPError as e:
                        ok, err = False, e.desc
                    if not ok:
                        ph["status"] = "refused"
                with contextlib.suppress(FileNotFoundError):
                    if not ok:
                        target.unlink()
                if not ok:
                    manifest["refused"].append({"format": fmt, "paging": paging, "error": err})
                    continue
                os.chmod(target, 0o644)
                kind = sniff_format(target)
                if fname.endswith(".dump"):
                    ext = {"flattened-kdump": ".flat", "kdump": ".kdump"}.get(kind, ".bin")
                    newp = target.with_suffix(ext)
                    target.rename(newp)
                    target, fname = newp, newp.name
                manifest["files"][fname] = {
                    "format": kind,
                    "producer": f"qemu dump-guest-memory format={fmt} paging={str(paging).lower()}",
                    "size": target.stat().st_size,
                    "seconds": round(ph["seconds"], 3),
                }
            q.quit()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log(f"{name}: QEMU did not quit; terminating pid {proc.pid}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        qemu_err.close()
        shutil.rmtree(tmpd, ignore_errors=True)

    derive(name, spec, gd, manifest)
    # drgn's reading with the kernel's vmlinux: where it is cached (--dbg fetches it)
    vmlinux = dbg_vmlinux(prof["kver"])
    if dbg and spec["arch"] in DBG_ARCHES:
        with CACHE_LOCK:
            vmlinux = fetch_dbg(name, prof)
            ensure_drgn()
    if not spec["driver"]:
        manifest["drgn"] = None  # drgn finds the kernel through the VMCOREINFO note: none here
    elif vmlinux.exists() and drgn_python().exists() and "qemu-elf.core" in manifest["files"]:
        drgn_oracle(name, gd, vmlinux, manifest)
    else:
        manifest["drgn"] = None
        log(f"{name}: no drgn.json ({vmlinux} or {drgn_python()} missing; --dbg fetches them)")
    # what is missing?
    missing = [f for f, req in PRODUCTS[name] if req and f not in manifest["files"]]
    manifest["missing_required"] = missing
    (gd / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if missing:
        raise GenError(
            f"{name}: required products missing: {missing}; see "
            f"{gd / 'manifest.json'} (refused/failed) and {gd / 'makedumpfile.log'}"
        )
    return manifest


def check_guest_view(name: str, spec: dict, g: dict, prof: dict | None = None) -> None:
    """Fail loudly when the guest did not do what the run needs."""
    problems = []
    if not g.get("uname_r"):
        problems.append("no uname -r line")
    elif prof is not None and g["uname_r"] != prof["kver"]:
        problems.append(f"uname -r {g['uname_r']!r} is not the kernel package's {prof['kver']!r}")
    if prof is not None:
        want = {p.name.split(".ko")[0] for p in prof["extra_modules"]}
        got = g.get("insmod", {})
        bad = sorted(n for n in want if got.get(n) != "ok")
        if bad:
            problems.append(f"modules not loaded: {bad} ({got})")
    lines = g["lines"]
    if not any(ln.startswith(f"{PREFIX} task ") for ln in lines):
        problems.append("no task lines")
    if spec.get("panic") and not any(ln.startswith(f"{PREFIX} panic-task ") for ln in lines):
        problems.append("no panic-task line")
    if "note_paddr" not in g:
        problems.append(f"/sys/kernel/vmcoreinfo unreadable: {g.get('sys-kernel-vmcoreinfo')!r}")
    nh = g.get("note_header") or {}
    if (
        len(g.get("note_hex", "")) != 2 * g.get("note_size", -1)
        or nh.get("namesz") != 11
        or nh.get("name") != "VMCOREINFO\0"
        or nh.get("type") != 0
    ):
        problems.append(
            f"the guest could not read its note through /proc/kcore ({len(g.get('note_hex', '')) // 2} bytes, header {nh})"
        )
    if spec["driver"]:
        if g.get("driver") not in ("module-loaded", "built-in"):
            problems.append(f"qemu_fw_cfg not active: {g.get('driver')!r}")
        if not g.get("fwcfg_raw_hex"):
            problems.append(f"fw_cfg etc/vmcoreinfo not readable: {g.get('fwcfg-raw')!r}")
    else:
        if g.get("fwcfg_raw_hex"):
            problems.append("driver was meant to stay unloaded but fw_cfg is readable")
    if g["kallsyms"].get("_stext") is None:
        problems.append("no _stext in the guest's /proc/kallsyms")
    if not g.get("marker-written"):
        problems.append("the guest did not write its /dev/kmsg marker")
    text = g.get("note_text", "")
    for want in spec.get("vmcoreinfo", []):
        line = want.lstrip("!")
        have = [t for t in text.splitlines() if t == line or (line.endswith("=") and t.startswith(line))]
        if bool(have) == want.startswith("!"):
            problems.append(f"VMCOREINFO {'holds' if want.startswith('!') else 'lacks'} {line!r}")
    if problems:
        raise GenError(f"{name}: guest report incomplete: " + "; ".join(problems))


# ------------------------------------------------------------------ makedumpfile
def md_run(args: list[str], logf, *, stdin=None, stdout_path: Path | None = None, timeout: float = 600) -> tuple[int, str]:
    cmd = ["makedumpfile", *args]
    logf.write("$ " + " ".join(cmd) + (f" > {stdout_path.name}" if stdout_path else "") + "\n")
    out_f = stdout_path.open("wb") if stdout_path else subprocess.PIPE
    try:
        cp = subprocess.run(
            cmd, stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=out_f, stderr=subprocess.PIPE, timeout=timeout
        )
        rc, err = cp.returncode, cp.stderr.decode(errors="replace")
        if not stdout_path and cp.stdout:
            err = cp.stdout.decode(errors="replace") + err
    except subprocess.TimeoutExpired:
        rc, err = -9, f"timed out after {timeout} s"
    finally:
        if stdout_path:
            out_f.close()
    text = "\n".join(
        ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and not re.match(r"^(Checking|Excluding|Copying)", ln)
    )
    logf.write(text + f"\nrc={rc}\n\n")
    logf.flush()
    last = [ln for ln in text.splitlines() if ln.strip()]
    return rc, " | ".join(last[-3:])


def derive(name: str, spec: dict, gd: Path, manifest: dict) -> None:
    files = manifest["files"]
    with (gd / "makedumpfile.log").open("w") as logf:
        # 1. QEMU's flattened kdump -> reassembled with makedumpfile -R
        for fname in sorted(files):
            if files[fname]["format"] != "flattened-kdump" or not fname.startswith("qemu-"):
                continue
            src = gd / fname
            dst = gd / (fname[: -len(".flat")] + ".kdump")
            if src.stat().st_size == 0:  # -R on empty stdin spins forever
                manifest["failed"].append({"file": dst.name, "error": "empty input"})
                continue
            with phase(name, f"makedumpfile -R {fname}") as ph, src.open("rb") as fin:
                rc, err = md_run(["-R", str(dst)], logf, stdin=fin, timeout=300)
                ph["status"] = "ok" if rc == 0 else f"rc={rc}"
            record_md(manifest, gd, dst.name, rc, err, f"makedumpfile -R < {fname}", ph, "kdump")
        if not spec["makedumpfile"]:
            return
        # 2. header-fixed copy of QEMU's ELF, then the conversions
        src = gd / "qemu-elf.core"
        fixed = gd / ".fixed-qemu-elf.core"
        try:
            with phase(name, "elf header fix-up copy") as ph:
                try:
                    info = elffix.fix_copy(str(src), str(fixed))
                    logf.write(f"elf header fix-up: {info}\n\n")
                except elffix.FixupError as e:
                    ph["status"] = "failed"
                    manifest["failed"].append({"file": "(fixed ELF)", "error": str(e)})
                    return
            for out_name, args, to_stdout in MD_CONVERSIONS:
                dst = gd / out_name
                with phase(name, f"makedumpfile {' '.join(args)}") as ph:
                    if to_stdout:
                        rc, err = md_run([*args, str(fixed)], logf, stdout_path=dst)
                    else:
                        rc, err = md_run([*args, str(fixed), str(dst)], logf)
                    ph["status"] = "ok" if rc == 0 else f"rc={rc}"
                record_md(
                    manifest, gd, out_name, rc, err, f"makedumpfile {' '.join(args)} (header-fixed qemu-elf.core)", ph, None
                )
        finally:
            with contextlib.suppress(FileNotFoundError):
                fixed.unlink()


def record_md(manifest, gd, fname, rc, err, producer, ph, expect):
    p = gd / fname
    if rc == 0 and p.exists() and p.stat().st_size > 0:
        os.chmod(p, 0o644)
        manifest["files"][fname] = {
            "format": sniff_format(p),
            "producer": producer,
            "size": p.stat().st_size,
            "seconds": round(ph["seconds"], 3),
        }
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        manifest["failed"].append({"file": fname, "producer": producer, "rc": rc, "error": err})


# ------------------------------------------------------------------ main
def tool_versions() -> dict:
    v = {}
    cp = run(["qemu-system-x86_64", "--version"], check=False)
    v["qemu"] = cp.stdout.splitlines()[0] if cp.stdout else None
    cp = run(["makedumpfile", "-v"], check=False)
    v["makedumpfile"] = (cp.stdout + cp.stderr).splitlines()[0] if (cp.stdout + cp.stderr) else None
    return v


def main(argv: list[str] | None = None) -> int:
    global TIMINGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--guests", default=",".join(GUESTS))
    ap.add_argument(
        "--mem",
        default=os.environ.get("VMCOREINFO_REALGUEST_MEM"),
        help="guest RAM for every guest (default: the guest's own, else 256M)",
    )
    ap.add_argument("--cache", default=os.environ.get("VMCOREINFO_REALGUEST_CACHE", str(HERE / "cache")))
    ap.add_argument("--boot-timeout", type=float, default=300.0)
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install host packages (fail if missing)")
    ap.add_argument(
        "--dbg",
        action="store_true",
        help="fetch the kernels' -dbg vmlinux (~300 MB each) into VMCOREINFO_DBG_CACHE and drgn into a venv "
        "there; without it drgn.json is written only where both are cached already",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("VMCOREINFO_REALGUEST_JOBS", "1")),
        help="guests run at once (default 1; each TCG guest keeps a CPU busy)",
    )
    a = ap.parse_args(argv)
    out = Path(a.outdir).resolve()
    cache = Path(a.cache).resolve()
    guests = [g for g in a.guests.split(",") if g]
    for g in guests:
        if g not in GUESTS:
            print(f"generate.py: unknown guest {g!r} (known: {', '.join(GUESTS)})", file=sys.stderr)
            return 2
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (out / "COMPLETE").unlink()
    (out / "timings.tsv").unlink(missing_ok=True)
    TIMINGS = Timings(out / "timings.tsv")
    log(f"output {out}  cache {cache}  guests {','.join(guests)}  mem {a.mem or 'per guest'}")
    t0 = time.monotonic()
    failures = []
    try:
        with phase("all", "host packages"):
            if a.no_install:
                missing = [p for p in HOST_PACKAGES if not dpkg_installed(p)]
                if missing:
                    raise GenError(f"--no-install but packages missing: {missing}")
                host_versions = {p: dpkg_version(p) for p in HOST_PACKAGES}
            else:
                host_versions = install_host_packages(cache)
    except GenError as e:
        print(f"generate.py: FAILED: {e}", file=sys.stderr)
        return 1
    summary = {"host_packages": host_versions, "tools": tool_versions(), "guests": {}}

    def one(g: str) -> None:
        try:
            m = run_guest(g, GUESTS[g], out, cache, a.mem, a.boot_timeout, a.dbg)
            summary["guests"][g] = {"files": sorted(m["files"]), "refused": m["refused"], "failed": m["failed"]}
        except (GenError, OSError, QMPError, TimeoutError, EOFError) as e:
            failures.append(f"{g}: {e}")
            log(f"{g}: FAILED: {e}")

    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        list(pool.map(one, guests))
    failures.sort()
    TIMINGS.add("all", "total", time.monotonic() - t0, "ok" if not failures else "FAILED")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    if failures:
        print("generate.py: FAILED to produce guest(s):\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    (out / "COMPLETE").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
    log(f"done in {time.monotonic() - t0:.1f} s; see {out}/*/manifest.json and {out}/timings.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
