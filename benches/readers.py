"""The readers compared: ours (vmcoreinfo) and its peers, each behind the same three calls.

    identify(path) -> dict   open, then osrelease, build_id, kernel_offset, phys_base, page_size
    full(path)     -> dict   every VMCOREINFO key -> value (str), first occurrence wins
    bulk(path, ranges) -> (bytes_read, crc)   read every page of `ranges` (physical, half-open)

A peer only offers the raw note text (or a key tree); the bench then does what a user of that
peer would do: split the text into a dict and convert the five values in the kernel's bases
(KERNELOFFSET hex, PAGESIZE decimal, NUMBER signed decimal or 0x hex). Each reader is a class
so the bench can list unavailable ones (import error) instead of failing, except ours.
"""

from __future__ import annotations

import importlib
import os
import sys
import zlib

CHUNK = 1 << 20  # bulk reads: 1 MiB per call for every reader
DEBIAN_DIST = "/usr/lib/python3/dist-packages"


def _num(v: str | None) -> int | None:
    if v is None:
        return None
    v = v.strip()
    return int(v, 16) if v[:2].lower() in ("0x",) or v[:3].lower() == "-0x" else int(v, 10)


def text_to_dict(raw: bytes) -> dict[str, str]:
    """What a peer's user writes: NULs end the text, lines without '=' skipped, first key wins."""
    raw = raw.split(b"\0", 1)[0]
    d: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition("=")
        if sep and k not in d:
            d[k] = v
    return d


def five_from_dict(d: dict[str, str]) -> dict:
    ko = d.get("KERNELOFFSET")
    return {
        "osrelease": d.get("OSRELEASE"),
        "build_id": d.get("BUILD-ID"),
        "kernel_offset": int(ko, 16) if ko is not None else None,
        "phys_base": _num(d.get("NUMBER(phys_base)")),
        "page_size": int(d["PAGESIZE"]) if "PAGESIZE" in d else None,
    }


class Reader:
    name = "?"
    formats = ("elf", "kdump", "flattened-kdump")  # what the reader claims to open
    does_bulk = False

    def __init__(self):
        self.mod = self.load()

    def load(self):
        raise NotImplementedError

    def version(self) -> str:
        return getattr(self.mod, "__version__", "?")

    def raw(self, path: str) -> bytes:
        raise NotImplementedError

    def identify(self, path: str) -> dict:
        return five_from_dict(text_to_dict(self.raw(path)))

    def full(self, path: str) -> dict:
        return text_to_dict(self.raw(path))


class Ours(Reader):
    name = "vmcoreinfo"
    does_bulk = True

    def load(self):
        import vmcoreinfo

        return vmcoreinfo

    def version(self):
        from importlib.metadata import version

        return version("vmcoreinfo")

    def identify(self, path):
        with self.mod.open(path) as d:
            vi = d.vmcoreinfo
            return {
                "osrelease": vi.osrelease,
                "build_id": vi.build_id,
                "kernel_offset": vi.kernel_offset,
                "phys_base": vi.phys_base,
                "page_size": vi.page_size,
            }

    def full(self, path):
        with self.mod.open(path) as d:
            return dict(d.vmcoreinfo)

    def raw(self, path):
        with self.mod.open(path) as d:
            return d.vmcoreinfo.raw

    def ranges(self, path):
        with self.mod.open(path) as d:
            return d.memory_ranges()

    def bulk(self, path, ranges=None):
        buf = bytearray(CHUNK)
        mv = memoryview(buf)
        total, crc = 0, 0
        with self.mod.open(path) as d:
            for start, end in ranges if ranges is not None else d.memory_ranges():
                a = start
                while a < end:
                    n = min(CHUNK, end - a)
                    d.read_phys_into(a, mv[:n])
                    crc = zlib.crc32(mv[:n], crc)
                    total += n
                    a += n
        return total, crc


class Drgn(Reader):
    name = "drgn"

    def load(self):
        return importlib.import_module("drgn")

    def raw(self, path):
        p = self.mod.Program()
        p.set_core_dump(path)
        return p["VMCOREINFO"].string_()


class PyElfTools(Reader):
    name = "pyelftools"
    formats = ("elf",)

    def load(self):
        importlib.import_module("elftools.elf.elffile")
        return importlib.import_module("elftools")

    def raw(self, path):
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            raw = None
            for seg in ELFFile(f).iter_segments("PT_NOTE"):
                for n in seg.iter_notes():
                    if n["n_name"] == "VMCOREINFO":
                        raw = n["n_desc"]  # the last one wins, as in QEMU dumps
            if raw is None:
                raise LookupError("no VMCOREINFO note")
            return raw


class Lief(Reader):
    name = "lief"
    formats = ("elf",)

    def load(self):
        return importlib.import_module("lief")

    def version(self):
        return str(self.mod.__version__)

    def raw(self, path):
        b = self.mod.ELF.parse(path)
        if b is None:
            raise ValueError("lief.ELF.parse returned None")
        raw = None
        for n in b.notes:
            if n.name.rstrip("\0") == "VMCOREINFO":
                raw = bytes(n.description)
        if raw is None:
            raise LookupError("no VMCOREINFO note")
        return raw


class _Kdumpfile(Reader):
    does_bulk = True

    def _ctx(self, path):
        raise NotImplementedError

    def _release(self, k):
        pass

    def raw(self, path):
        k = self._ctx(path)
        try:
            return self._raw(k)
        finally:
            self._release(k)

    def bulk(self, path, ranges):
        """Read `ranges` in CHUNK-sized kdump_read calls (MACHPHYSADDR: no translation set-up
        needed). A chunk libkdumpfile refuses is re-read page by page; refused pages are skipped."""
        k = self._ctx(path)
        try:
            return self._bulk(k, ranges)
        finally:
            self._release(k)

    def _bulk(self, k, ranges):
        total, crc = 0, 0
        for start, end in ranges:
            a = start
            while a < end:
                n = min(CHUNK, end - a)
                try:
                    b = self._read(k, a, n)
                except Exception:
                    b = bytearray()
                    for pa in range(a, a + n, 4096):
                        try:
                            b += self._read(k, pa, min(4096, a + n - pa))
                        except Exception:
                            pass
                crc = zlib.crc32(b, crc)
                total += len(b)
                a += n
        return total, crc


class LibkdumpfilePyPI(_Kdumpfile):
    """PyPI pykdumpfile (cffi) built against Debian's libkdumpfile-dev (scripts/bench.sh)."""

    name = "libkdumpfile"

    def load(self):
        m = importlib.import_module("kdumpfile")
        if not hasattr(m, "Context"):
            raise ImportError("the installed kdumpfile module is not pykdumpfile")
        return m

    def version(self):
        from importlib.metadata import version

        return "pykdumpfile " + version("pykdumpfile") + " / libkdumpfile " + _lib_version()

    def _ctx(self, path):
        c = self.mod.Context()
        c.open(path)
        return c

    def _raw(self, c):
        return bytes(c.attr["linux.vmcoreinfo.raw"].get())

    def _read(self, c, addr, n):
        return c.read(self.mod.MACHPHYSADDR, addr, n)


class LibkdumpfileDebian(_Kdumpfile):
    """Debian's python3-libkdumpfile (libkdumpfile's own C bindings), loaded from the Debian
    dist-packages under private module names so it can sit beside pykdumpfile."""

    name = "libkdumpfile-debian"

    def load(self):
        saved = {
            k: sys.modules.pop(k)
            for k in list(sys.modules)
            if k.split(".")[0] in ("kdumpfile", "_kdumpfile", "addrxlat", "_addrxlat")
        }
        sys.path.insert(0, DEBIAN_DIST)
        try:
            m = importlib.import_module("kdumpfile")
            if not hasattr(m, "kdumpfile"):
                raise ImportError("Debian python3-libkdumpfile not found")
            return m
        finally:
            sys.path.remove(DEBIAN_DIST)
            for k in [k for k in sys.modules if k.split(".")[0] in ("kdumpfile", "_kdumpfile", "addrxlat", "_addrxlat")]:
                sys.modules["_debian_" + k] = sys.modules.pop(k)
            sys.modules.update(saved)

    def version(self):
        return "python3-libkdumpfile " + _lib_version()

    def _ctx(self, path):
        # python3-libkdumpfile 0.5.1 opens the file itself and never closes the descriptor (one
        # fd leaked per kdumpfile object; a benchmark loop runs out of descriptors). It gets the
        # lowest free descriptor, so learn which one that is (dup/close, ~1 µs) and close it in
        # _release.
        fd = os.dup(0)
        os.close(fd)
        k = self.mod.kdumpfile(path)
        k._bench_fd = fd if self._owns(fd, path) else None
        return k

    _checked: dict = {}

    def _owns(self, fd, path):
        key = (fd, path)
        if key not in self._checked:  # verify the prediction once per (fd, path)
            try:
                self._checked[key] = os.path.samestat(os.fstat(fd), os.stat(path))
            except OSError:
                self._checked[key] = False
        return self._checked[key]

    def _release(self, k):
        fd = getattr(k, "_bench_fd", None)
        del k
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _raw(self, k):
        return bytes(k.attr["linux.vmcoreinfo.raw"])

    def _read(self, k, addr, n):
        return k.read(self.mod.KDUMP_MACHPHYSADDR, addr, n)


def _lib_version() -> str:
    try:
        import subprocess

        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "libkdumpfile10"], capture_output=True, text=True, timeout=10
        ).stdout
        return out or "?"
    except Exception:
        return "?"


ALL = [Ours, Drgn, PyElfTools, Lief, LibkdumpfilePyPI, LibkdumpfileDebian]


def get(name: str) -> Reader:
    for cls in ALL:
        if cls.name == name:
            return cls()
    raise KeyError(name)


def available() -> tuple[dict[str, Reader], dict[str, str]]:
    """(name -> reader, name -> why unavailable). Ours must load."""
    ok, missing = {}, {}
    for cls in ALL:
        try:
            ok[cls.name] = cls()
        except Exception as e:  # ImportError, OSError from a missing shared library, ...
            if cls is Ours:
                raise
            missing[cls.name] = f"{type(e).__name__}: {e}"
    return ok, missing
