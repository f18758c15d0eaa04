"""Find and parse the Linux VMCOREINFO note in guest memory dumps.

>>> import vmcoreinfo
>>> with vmcoreinfo.open("guest.core") as dump:             # doctest: +SKIP
...     vi = dump.vmcoreinfo
...     print(vi.osrelease, hex(vi.kernel_offset), vi.phys_base)

Reads QEMU ``dump-guest-memory`` ELF files, ``virsh dump`` output, makedumpfile output,
copies of /proc/vmcore, LiME images and raw physical memory images (``format="raw"``).
Opening reads only the headers and notes; physical memory is read on demand with
:meth:`Dump.read_phys`. :meth:`Dump.scan_vmcoreinfo` finds the note in memory itself.
"""

from __future__ import annotations

import os
from typing import Literal
from importlib.metadata import PackageNotFoundError, version as _version

from ._errors import (
    AbsentMemoryError,
    BitnessError,
    ClosedError,
    DecompressError,
    Error,
    FormatError,
    LimitError,
    NoteRuleError,
    NoVmcoreinfoError,
    TruncatedError,
    UnmappedError,
    UnsupportedFormatError,
)
from ._native import (
    MAX_GUEST_NOTE_SIZE,
    Diagnostic,
    Dump,
    FwCfgDevice,
    FwCfgEntry,
    KernelSymbols,
    LogRecord,
    Note,
    VmcoreInfo,
    check_guest_note,
    parse,
)
from ._native import open_dump as _open_dump

from collections.abc import Mapping as _Mapping

_Mapping.register(VmcoreInfo)

try:
    __version__ = _version("vmcoreinfo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "open",
    "parse",
    "Dump",
    "Note",
    "LogRecord",
    "KernelSymbols",
    "VmcoreInfo",
    "Diagnostic",
    "FwCfgEntry",
    "FwCfgDevice",
    "check_guest_note",
    "MAX_GUEST_NOTE_SIZE",
    "Error",
    "FormatError",
    "TruncatedError",
    "BitnessError",
    "NoteRuleError",
    "DecompressError",
    "UnsupportedFormatError",
    "LimitError",
    "NoVmcoreinfoError",
    "AbsentMemoryError",
    "UnmappedError",
    "ClosedError",
    "sample_path",
]


def open(
    path: str | os.PathLike[str],
    *,
    max_note_size: int = MAX_GUEST_NOTE_SIZE,
    elf_tails: Literal["zeros", "absent"] = "zeros",
    format: Literal["elf", "kdump", "lime", "raw"] | None = None,
) -> Dump:
    """Open a dump file and read its headers and notes (never the whole file).

    ``max_note_size`` is the largest VMCOREINFO note accepted; QEMU's own limit (1 MiB) unless
    raised explicitly. ``elf_tails`` says how to read the part of an ELF PT_LOAD past
    ``p_filesz``: ``"zeros"`` as the ELF format defines it (and crash and gdb read it), or
    ``"absent"``, the forensic view, since producers use these tails for memory they did not save
    (makedumpfile ``-E`` for excluded pages). ``format`` is detected from the file's signature
    when None (ELF, kdump, flattened kdump, LiME); ``"raw"`` (physical memory from address 0, no
    header) is never detected and must be asked for; asking for a format whose signature is
    missing raises :class:`FormatError`. LiME and raw images carry no notes: their
    ``vmcoreinfo`` comes from a scan of their memory (run once, on first use). The returned
    :class:`Dump` is a context manager.
    """
    return _open_dump(os.fspath(path), max_note_size, elf_tails, format)


def sample_path() -> str:
    """Path of the small sample dump that ships with the package (used by ``vmcoreinfo demo``).

    It is a real QEMU ``dump-guest-memory`` ELF file of an x86_64 guest, reduced by
    ``tools/reduce_elf.py`` to its headers, notes and the pages that hold the VMCOREINFO note.
    """
    from importlib.resources import files

    return str(files(__name__).joinpath("data", "sample-x86_64.core"))
