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

from __future__ import annotations as _annotations

import os as _os
from collections import abc as _abc
from collections.abc import Iterator as _Iterator
from collections.abc import Mapping as _Mapping
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import Literal as _Literal

from ._batch import IdentifyIter, Identity, identify_many
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
    MAX_READ_PHYS,
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
from ._types import FormatName as _FormatName

_Mapping.register(VmcoreInfo)


class _KeysView(_abc.KeysView[str]):
    """``VmcoreInfo.keys()``: a ``KeysView`` iterated in text order in one call."""

    __slots__ = ()

    def __iter__(self) -> _Iterator[str]:
        return iter(self._mapping._key_list())  # type: ignore[attr-defined]


class _ValuesView(_abc.ValuesView[str]):
    """``VmcoreInfo.values()``: a ``ValuesView`` iterated in text order in one call."""

    __slots__ = ()

    def __iter__(self) -> _Iterator[str]:
        return iter(self._mapping._value_list())  # type: ignore[attr-defined]


class _ItemsView(_abc.ItemsView[str, str]):
    """``VmcoreInfo.items()``: an ``ItemsView`` iterated in text order in one call."""

    __slots__ = ()

    def __iter__(self) -> _Iterator[tuple[str, str]]:
        return iter(self._mapping._item_list())  # type: ignore[attr-defined]


try:
    __version__ = _version("vmcoreinfo")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "MAX_READ_PHYS",
    "open",
    "parse",
    "identify_many",
    "Identity",
    "IdentifyIter",
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
    path: str | _os.PathLike[str],
    *,
    max_note_size: int = MAX_GUEST_NOTE_SIZE,
    elf_tails: _Literal["absent", "zeros"] = "absent",
    format: _FormatName | None = None,
    mmap: bool | _Literal["always"] = True,
) -> Dump:
    """Open a dump file and read its headers and notes (never the whole file).

    ``max_note_size`` is the largest VMCOREINFO note accepted; QEMU's own limit (1 MiB) unless
    raised explicitly. ``elf_tails`` says how to read the part of an ELF PT_LOAD past
    ``p_filesz`` (up to ``p_memsz``): ``"absent"`` (the default, the forensic view: data is never
    invented) raises :class:`AbsentMemoryError` there, since producers use these tails for memory
    they did not save (makedumpfile ``-E`` for the pages it excluded; QEMU and /proc/vmcore never
    write them); ``"zeros"`` reads them as zeros, as the ELF format defines (and crash and gdb
    read them). ``format`` is detected from the file's signature
    when None (ELF, kdump, flattened kdump, LiME); every value ``Dump.format`` reports is accepted
    (``"kdump"`` and ``"flattened-kdump"`` each accept both kdump forms); ``"raw"`` (physical memory from address 0, no
    header) is never detected and must be asked for; asking for a format whose signature is
    missing raises :class:`FormatError`. LiME and raw images carry no notes: their
    ``vmcoreinfo`` comes from a scan of their memory (run once, on first use). The returned
    :class:`Dump` is a context manager.

    ``mmap`` (default True) maps a regular file read-only (guarded: a file that shrinks under
    the mapping gives :class:`TruncatedError`, never SIGBUS) so that :meth:`Dump.view_phys` is
    zero-copy; reads and scans still use ``pread``, which measured faster. ``"always"`` also
    reads and scans through the mapping; ``False`` never maps (views are copies).
    """
    return _open_dump(_os.fspath(path), max_note_size, elf_tails, format, mmap)


def __dir__() -> list[str]:
    """The public API only (``dir(vmcoreinfo)``)."""
    return sorted([*__all__, "__version__"])


def sample_path() -> str:
    """Path of the small sample dump that ships with the package (used by ``vmcoreinfo demo``).

    It is a real QEMU ``dump-guest-memory`` ELF file of an x86_64 guest, reduced by
    ``tools/reduce_elf.py`` to its headers, notes and the pages that hold the VMCOREINFO note.
    """
    from importlib.resources import files

    return str(files(__name__).joinpath("data", "sample-x86_64.core"))
