"""What every command line of the package shares: the format names, the exit codes, the progress
line and the parent parsers of the options several subcommands take.

The format names come from the native format table (``vmcoreinfo._native.FORMATS``), so a format
added there appears in every ``--format`` choices list, in :func:`vmcoreinfo.identify_many`'s
validation and in the memory-image checks without an edit here.
"""

from __future__ import annotations

import argparse
import enum
import os
import shutil
import sys
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING, TypeGuard, get_args

from ._native import FORMATS as _NATIVE_FORMATS
from ._native import HINTS as _NATIVE_HINTS
from ._types import FormatName

if TYPE_CHECKING:
    from ._native import Dump

# --- formats ----------------------------------------------------------------------------------

_LITERAL_NAMES = frozenset(get_args(FormatName))


def is_format_name(name: object) -> TypeGuard[FormatName]:
    """Whether ``name`` is one of the format names :func:`vmcoreinfo.open` accepts."""
    return isinstance(name, str) and name in _LITERAL_NAMES


#: Every format name, in detection order (raw last: it is never detected).
FORMAT_NAMES: tuple[FormatName, ...] = tuple(n for n, _ in _NATIVE_FORMATS if is_format_name(n))
#: The formats that are memory images (no notes, no machine: both come from a scan of memory).
MEMORY_IMAGES: frozenset[FormatName] = frozenset(n for n, image in _NATIVE_FORMATS if image and is_format_name(n))

if len(FORMAT_NAMES) != len(_NATIVE_FORMATS) or set(FORMAT_NAMES) != _LITERAL_NAMES:  # pragma: no cover
    raise ImportError(
        f"vmcoreinfo._types.FormatName {sorted(_LITERAL_NAMES)} and the native format table "
        f"{[n for n, _ in _NATIVE_FORMATS]} differ: the stub and the build are out of step"
    )


def format_name(name: str | None) -> FormatName | None:
    """``name`` as a :data:`FormatName` (None stays None: detect the format); ValueError otherwise."""
    if name is None or is_format_name(name):
        return name
    raise ValueError(f"format must be None or one of {', '.join(map(repr, FORMAT_NAMES))}, not {name!r}")


# --- exit codes -------------------------------------------------------------------------------


class ExitCode(enum.IntEnum):
    """The exit status of every ``vmcoreinfo`` command (README "Command line")."""

    OK = 0
    #: A file could not be read or is not a valid dump (or a symbol was not found).
    ERROR = 1
    USAGE = 2
    #: No VMCOREINFO note (the dump has none, a scan found none, or a converted file lacks one).
    NO_VMCOREINFO = 3
    #: ``show``: identified, but the file holds less memory than it declares (it was cut short).
    #: With several statuses, ERROR > NO_VMCOREINFO > CUT_SHORT > OK.
    CUT_SHORT = 4
    #: Ctrl-C (128 + SIGINT, as shells report it).
    INTERRUPTED = 130


#: Precedence of the statuses of several files: the first one any file has.
PRECEDENCE = (ExitCode.ERROR, ExitCode.NO_VMCOREINFO, ExitCode.CUT_SHORT)


def worst(codes: set[int]) -> ExitCode:
    """The status of several files: ERROR > NO_VMCOREINFO > CUT_SHORT > OK."""
    for rc in PRECEDENCE:
        if rc in codes:
            return rc
    return ExitCode.OK


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 range"``, ``"3 ranges"``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


# --- opening the one dump of a command --------------------------------------------------------


class UsageError(Exception):
    """A command line mistake found after parsing (the CLI prints it and exits with USAGE)."""


def check_dump_path(path: str) -> None:
    """What every command that reads one dump checks before opening it: a directory is a usage
    error (with the hint ``show -r`` has), as ``show DIR`` reports it."""
    if os.path.isdir(path):
        raise UsageError(directory_message(path))


def directory_message(path: str) -> str:
    return f"{path} is a directory: name a dump file (or use -r with show to read the files under it)"


def open_dump(path: str, format: FormatName | str | None = None) -> Dump:
    """Open the one dump of a command (``dmesg``, ``sym``, ``notes``, ``scan``, ``convert``, and the
    commands that read the kernel's objects): :func:`check_dump_path`, then :func:`vmcoreinfo.open`."""
    import vmcoreinfo

    check_dump_path(path)
    return vmcoreinfo.open(path, format=format_name(format))


# --- the command line's wording of error hints ------------------------------------------------

CLI_HINTS = {
    "use-raw-format": " (a raw physical memory image has none: use --format raw)",
    "scan-for-note": (
        ". QEMU writes one only for a guest run with `-device vmcoreinfo` whose kernel had loaded the "
        "`qemu_fw_cfg` driver (CONFIG_FW_CFG_SYSFS) before the dump. The guest's memory may still hold "
        "the note: `vmcoreinfo scan {path}` looks for it page by page"
    ),
}
"""How the command line words each error hint (``exc.hint``)."""


def cli_wording(msg: str, path: str | None, hint: str | None = None) -> str:
    """``msg`` (a library error's message) without the leading ``PATH: `` and with the advice of
    its hint in the command line's terms (``--format raw``, not ``format="raw"``). ``hint``: the
    error's ``hint`` name; None: any hint whose library wording ``msg`` holds."""
    if path and msg.startswith(f"{path}: "):
        msg = msg[len(path) + 2 :]
    for name, words in CLI_HINTS.items():
        if hint not in (None, name):
            continue
        lib = _NATIVE_HINTS[name]
        if lib in msg:
            msg = msg.replace(lib, words.format(path=path or "DUMP"))
    return msg


# --- the progress line ------------------------------------------------------------------------


def _isatty(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


def terminal_width(out: IO[str]) -> int:
    """Columns of the terminal ``out`` writes to: ``$COLUMNS`` when set, else the size of
    ``out``'s own terminal, else :func:`shutil.get_terminal_size` (stdout's, or 80). A terminal
    that reports 0 columns (a new pseudo-terminal nobody sized) counts as unknown."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns if columns > 0 else shutil.get_terminal_size().columns


class ProgressLine:
    """One status line, rewritten in place (``\\r``), on a terminal only.

    The CLI's one progress display: the scan percentage, ``[i/n] path`` of ``show``, the file rate
    of a batch and the bar of ``convert`` all go through it. Own and tiny rather than tqdm or rich:
    the package keeps no runtime dependency for one line.

    - Shown only when ``enabled`` and ``out`` is a terminal; otherwise every call does nothing.
    - Each line is cut to the terminal's width (less one column, so it never wraps) and padded over
      what the previous one left.
    - :meth:`update` draws at most once per ``interval`` seconds; ``final=True`` always draws.
      :meth:`due` says whether an update would draw, so callers can skip building the text.
    - :meth:`close` ends the line (a newline, or with ``clear=True`` a blank) if one was drawn;
      it is also what leaving a ``with`` block does.
    - :meth:`rate` is ``amount`` per second since the line was made.
    """

    def __init__(self, out: IO[str] | None = None, *, enabled: bool = True, interval: float = 0.1) -> None:
        self.out: IO[str] = sys.stderr if out is None else out
        self.enabled = enabled and _isatty(self.out)
        self.interval = interval
        self.start = time.monotonic()
        self._next = self.start  # the first update always draws
        self._drawn = 0  # length of the text on screen; 0: nothing to end

    def due(self) -> bool:
        """Whether a non-final :meth:`update` now would draw."""
        return self.enabled and time.monotonic() >= self._next

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def rate(self, amount: float) -> float:
        """``amount`` per second since the line was made."""
        return amount / max(self.elapsed(), 1e-9)

    def update(self, text: str, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now < self._next:
            return
        self._next = now + self.interval
        text = text[: max(terminal_width(self.out) - 1, 1)]
        self.out.write("\r" + text + " " * max(self._drawn - len(text), 0))
        self.out.flush()
        self._drawn = max(len(text), 1)

    def close(self, *, clear: bool = False) -> None:
        if not self._drawn:
            return
        self.out.write("\r" + " " * self._drawn + "\r" if clear else "\n")
        self.out.flush()
        self._drawn = 0

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --- parent parsers ---------------------------------------------------------------------------

JSON_HELP = "one JSON document on stdout"
SHOW_JSON_HELP = "one JSON document per file on stdout, one per line (JSON lines), the same keys for one file and for many"
FORMAT_HELP = "read the dump as this format instead of detecting it ('raw' is never detected)"
NO_PROGRESS_HELP = "no progress line on stderr (default: shown when stderr is a terminal)"


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


#: ``--format NAME``: every format of the native table.
FORMAT_OPTIONS = _parent()
FORMAT_OPTIONS.add_argument("--format", choices=FORMAT_NAMES, help=FORMAT_HELP)

#: ``--json``.
JSON_OPTIONS = _parent()
JSON_OPTIONS.add_argument("--json", action="store_true", help=JSON_HELP)

#: ``show``'s ``--json``: the same option, worded for one record per file.
SHOW_JSON_OPTIONS = _parent()
SHOW_JSON_OPTIONS.add_argument("--json", action="store_true", help=SHOW_JSON_HELP)

#: ``--no-progress``.
PROGRESS_OPTIONS = _parent()
PROGRESS_OPTIONS.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)

#: What a subcommand that reads one dump and prints results takes: ``--format`` and ``--json``.
DUMP_OPTIONS = (FORMAT_OPTIONS, JSON_OPTIONS)
