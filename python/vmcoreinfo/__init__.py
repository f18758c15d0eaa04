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

from collections import abc as _abc
from collections.abc import Iterator as _Iterator
from collections.abc import Mapping as _Mapping
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._batch import IdentifyIter, Identity, identify_many
from ._errors import (
    AbsentMemoryError,
    BitnessError,
    CancelledError,
    ClosedError,
    DecompressError,
    Error,
    FormatError,
    InternalError,
    LimitError,
    MissingSymbolError,
    MissingTypeError,
    NoBtfError,
    NoteRuleError,
    NoVmcoreinfoError,
    TruncatedError,
    UnmappedError,
    UnsupportedFormatError,
)
from ._native import (
    FORMATS,
    MAX_GUEST_NOTE_SIZE,
    MAX_READ_PHYS,
    Cpu,
    Details,
    Diagnostic,
    Dump,
    FwCfgDevice,
    FwCfgEntry,
    KernelLayout,
    KernelSymbols,
    LogRecord,
    Member,
    Module,
    Note,
    PageCodecDetails,
    PageCountDetails,
    PanicInfo,
    PhysBaseDetails,
    ScanDetails,
    Symbol,
    Task,
    Type,
    Types,
    UtsnameDetails,
    Value,
    VmcoreInfo,
    WriteDiagnostic,
    WriteReport,
    check_guest_note,
    container_of,
    list_for_each_entry,
    parse,
)
from ._native import open as open

# The typed shapes of values, for annotating code that uses them (defined in _types); the
# result classes (Details, PhysBaseDetails, ...) are the native ones above.
from ._types import (
    ByteOrder,
    DetailsDict,
    ElfTails,
    FormatName,
    LocationKind,
)

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
    "FORMATS",
    "MAX_READ_PHYS",
    "open",
    "parse",
    "identify_many",
    "Identity",
    "IdentifyIter",
    "Dump",
    "Note",
    "LogRecord",
    "Cpu",
    "PanicInfo",
    "Member",
    "Type",
    "Types",
    "Value",
    "container_of",
    "list_for_each_entry",
    "KernelSymbols",
    "Task",
    "Module",
    "Symbol",
    "VmcoreInfo",
    "Diagnostic",
    "Details",
    "PhysBaseDetails",
    "ScanDetails",
    "UtsnameDetails",
    "PageCountDetails",
    "PageCodecDetails",
    "KernelLayout",
    "WriteReport",
    "WriteDiagnostic",
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
    "CancelledError",
    "InternalError",
    "MissingTypeError",
    "NoBtfError",
    "MissingSymbolError",
    "sample_path",
    # typing: Literal aliases and the TypedDict of Details.as_dict() (vmcoreinfo._types)
    "FormatName",
    "ByteOrder",
    "ElfTails",
    "LocationKind",
    "DetailsDict",
]


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
