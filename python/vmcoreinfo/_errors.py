"""The exception hierarchy. Every error names the file (``path``) and where in it: a byte offset
(``offset``) or an address (``address``), with ``location`` saying which kind, and may carry
machine-readable advice (``hint``).

The native layer builds them by keyword (``Error(message, path=..., offset=...)``), so the
attributes are a named contract, not a positional one. They pickle with every attribute
(``BaseException.__reduce__`` carries ``args`` and ``__dict__``).

OS errors stay built-in ``OSError`` subclasses (``FileNotFoundError``, ...) with two attributes
added: ``offset`` (the file offset the failed read or write concerned, or None) and ``path``
(the file, as ``filename`` also says).

For a file name that is not valid UTF-8, ``path`` (and the message) name the file with the
undecodable bytes replaced by U+FFFD; ``Dump.path`` keeps the exact name (``os.fsencode`` of it
gives the bytes back)."""

from __future__ import annotations

from ._types import LocationKind

__all__ = [
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
    "ClosedError",
    "UnmappedError",
    "CancelledError",
    "InternalError",
    "MissingTypeError",
    "NoBtfError",
    "MissingSymbolError",
]


class Error(Exception):
    """Root of every error this library raises (OS errors stay built-in ``OSError`` subclasses).

    Attributes:
        path: the file concerned, or None (for example, for :func:`vmcoreinfo.parse`).
        location: what kind of place the error concerns: ``"file"`` (``offset`` is a byte offset
            in the file), ``"text"`` (a byte offset in a text or buffer given on its own),
            ``"physical"`` or ``"virtual"`` (``address`` is a guest address); None when no
            particular place.
        offset: the byte offset concerned (file or text), else None. For a flattened kdump
            (``makedumpfile -F``) a file offset is in the reassembled file (what
            ``makedumpfile -R`` would write) when the kdump layer found the problem (header
            fields, bitmaps, notes, pages; the message of a flattened-layer error of that kind
            says "reassembled"), and in the file as written only for the flattened records
            themselves and for failed or short reads of the file.
        address: the guest-physical or kernel-virtual address concerned, else None (for
            :class:`AbsentMemoryError`, the first absent physical address).
        rule: for rule violations, the rule's stable name (for example ``"descsz-too-large"``).
        hint: machine-readable advice, or None: ``"use-raw-format"`` (the file has no known
            signature; a raw memory image must be opened with ``format="raw"``) or
            ``"scan-for-note"`` (the dump holds no VMCOREINFO note, but guest memory may: see
            ``Dump.scan_vmcoreinfo()``). The message ends with the same advice in words
            (``vmcoreinfo._native.HINTS`` maps each name to that text), so a program that words
            it otherwise (the CLI) replaces exactly that text instead of matching the message.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        offset: int | None = None,
        rule: str | None = None,
        address: int | None = None,
        location: LocationKind | None = None,
        hint: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.path = path
        self.offset = offset
        self.rule = rule
        self.address = address
        self.location: LocationKind | None = location
        self.hint = hint


class FormatError(Error, ValueError):
    """The bytes are not what the format requires (bad magic, impossible field)."""


class TruncatedError(FormatError):
    """The file ends before a structure it declares (or shrank after it was opened)."""


class BitnessError(FormatError):
    """The ELF class does not fit the machine, or a value does not fit the address width."""


class NoteRuleError(FormatError):
    """The VMCOREINFO note breaks one of QEMU's intake rules; ``rule`` names which."""


class DecompressError(FormatError):
    """A compressed page failed to decompress, or decompressed to the wrong size."""


class UnsupportedFormatError(Error):
    """A format or feature that is recognised but not supported."""


class LimitError(Error):
    """A declared size is larger than this library agrees to read (see ``max_note_size``)."""


class NoVmcoreinfoError(Error, LookupError):
    """The dump holds no usable VMCOREINFO note; the message says how to get one."""


class AbsentMemoryError(Error, LookupError):
    """The dump does not hold the requested physical memory; ``address`` is the first absent address."""


class UnmappedError(Error, LookupError):
    """The kernel does not map the requested virtual address; ``address`` is that address."""


class ClosedError(Error, ValueError):
    """The dump was closed."""


class CancelledError(Error):
    """The operation was cancelled: its ``progress`` callback returned ``False``. Not an
    ``OSError`` and not a ``KeyboardInterrupt`` (Ctrl-C during an operation raises
    ``KeyboardInterrupt`` itself); a cancelled write leaves no output file."""


class InternalError(Error, RuntimeError):
    """A failure of the library itself, not of the input (a helper thread stopped or
    panicked); worth a bug report."""


class MissingTypeError(Error, LookupError):
    """The kernel's types (its BTF) have no type, member or enumerator of that name; the message
    names it and the kernel release."""


class NoBtfError(MissingTypeError):
    """The kernel carries no type information to read objects with: it was built without
    ``CONFIG_DEBUG_INFO_BTF`` (Debian's 686 kernels), or its BTF could not be found in memory."""


class MissingSymbolError(Error, LookupError):
    """A kernel symbol or root object (``init_task``, ``modules``, ...) that neither kallsyms nor a
    search of the kernel's memory could find; the message says what was tried."""
