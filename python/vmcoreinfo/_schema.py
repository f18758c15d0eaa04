"""The columns of an :class:`vmcoreinfo.Identity`, defined once: their names (the order of
``Identity.FIELDS`` and ``Identity.as_dict()``), and from each column's kind its Arrow type (the
``show --parquet`` file) and its pandas dtype (``vmcoreinfo.dask``). CSV output writes the same
names as its header. tests/test_batch.py checks this list against the native one. The
``show --json`` record (one file or many) is built from the same list: :data:`SHOW_RECORD_KEYS`.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

Kind = Literal["str", "u64", "i64"]


class Column(NamedTuple):
    name: str
    #: ``str`` (nullable string), ``u64`` / ``i64`` (nullable 64-bit integers).
    kind: Kind


IDENTITY_COLUMNS: tuple[Column, ...] = (
    Column("path", "str"),
    Column("format", "str"),
    Column("machine", "str"),
    Column("osrelease", "str"),
    Column("build_id", "str"),
    Column("kernel_offset", "u64"),
    Column("phys_base", "i64"),
    Column("page_size", "u64"),
    Column("vmcoreinfo_offset", "u64"),
    Column("vmcoreinfo_size", "u64"),
    Column("note_paddr", "u64"),
    Column("memory_declared_bytes", "u64"),
    Column("memory_stored_bytes", "u64"),
    Column("error_type", "str"),
    Column("error_message", "str"),
    Column("error_offset", "u64"),
)

#: The column names, in order.
IDENTITY_FIELDS: tuple[str, ...] = tuple(c.name for c in IDENTITY_COLUMNS)

#: The keys of the ``error`` object of a ``show --json`` record (null when the file was identified).
ERROR_KEYS: tuple[str, ...] = ("type", "message", "offset")

#: The keys of a ``show --json`` record, for one file and for many (README "Command line"): the
#: columns, the three ``error_*`` ones as one ``error`` object of :data:`ERROR_KEYS`.
SHOW_RECORD_KEYS: tuple[str, ...] = (*(n for n in IDENTITY_FIELDS if not n.startswith("error_")), "error")

#: What ``show -v --json`` adds after them (a file whose VMCOREINFO was read).
SHOW_VERBOSE_KEYS: tuple[str, ...] = (
    "elf_class",
    "byteorder",
    "crashtime",
    "keys",
    "diagnostics",
    "details",
    "vmcoreinfo",
    "memory_ranges",
    "notes",
)

#: pandas dtype per kind: integers nullable, strings as object (None stays None).
PANDAS_DTYPES: dict[Kind, str] = {"str": "object", "u64": "UInt64", "i64": "Int64"}


def arrow_schema(pa: Any) -> Any:
    """The ``pyarrow.schema`` of the columns (``pa`` is the imported ``pyarrow`` module)."""
    types = {"str": pa.string(), "u64": pa.uint64(), "i64": pa.int64()}
    return pa.schema([(c.name, types[c.kind]) for c in IDENTITY_COLUMNS])


def pandas_dtypes() -> dict[str, str]:
    """Column name → pandas dtype, in column order."""
    return {c.name: PANDAS_DTYPES[c.kind] for c in IDENTITY_COLUMNS}
