"""Types of the values the API returns that have a fixed set of forms (used by the stub of
``vmcoreinfo._native`` and by the package)."""

from __future__ import annotations

from typing import Literal, TypedDict

FormatName = Literal["elf", "kdump", "flattened-kdump", "lime", "avml", "raw"]
#: The kinds of BTF types (``Type.kind``), as ``include/uapi/linux/btf.h`` numbers them 1-19, plus void.
TypeKind = Literal[
    "void",
    "int",
    "ptr",
    "array",
    "struct",
    "union",
    "enum",
    "fwd",
    "typedef",
    "volatile",
    "const",
    "restrict",
    "func",
    "func_proto",
    "var",
    "datasec",
    "float",
    "decl_tag",
    "type_tag",
    "enum64",
]
#: How a kernel root (the BTF blob, ``init_task``, ...) was found.
RootSourceName = Literal["symbol", "vmcoreinfo", "scan", "derived"]
"""A dump's container format, as ``Dump.format`` reports it and ``open(format=...)`` accepts it."""

ByteOrder = Literal["little", "big"]
ElfTails = Literal["zeros", "absent"]
LocationKind = Literal["file", "text", "physical", "virtual"]


class PhysBaseDetails(TypedDict):
    """phys_base from the VMCOREINFO text and from a kdump header, side by side."""

    key: str | None
    vmcoreinfo: int | None
    header: int | None
    agree: bool | None


class ScanDetails(TypedDict):
    """The scan that stands in for notes in a LiME, AVML or raw image."""

    bytes: int
    candidates: list[int]
    valid: list[int]
    unreadable_pages: int
    distinct_texts: int
    byteorder: ByteOrder


class UtsnameDetails(TypedDict):
    sysname: str
    nodename: str
    release: str
    version: str
    machine: str
    domainname: str


class PageCountDetails(TypedDict):
    valid: int
    dumped: int
    excluded: int
    zero: int


class PageCodecDetails(TypedDict):
    zlib: int
    lzo: int
    snappy: int
    zstd: int
    raw: int
    invalid: int


class DetailsDict(TypedDict, total=False):
    """``Dump.details().as_dict()`` (and what ``details()`` returned before it became the frozen
    class ``vmcoreinfo.Details``): the keys present depend on the format (ELF, kdump, LiME, ...)."""

    format: FormatName
    machine: str
    identity_source: Literal["elf-header", "kdump-header", "kdump-layout+vmcoreinfo", "scan", "unknown"]
    e_machine: int
    address_bits: Literal[32, 64]
    class_note: str
    memory_declared_bytes: int | None
    memory_stored_bytes: int | None
    phys_base: PhysBaseDetails
    # ELF
    phnum: int
    pt_load: int
    pt_note: int
    conflicting_overlap_bytes: int
    tail_bytes: int
    # LiME
    lime_ranges: int
    # LiME, AVML and raw (once scanned)
    scan: ScanDetails
    # flattened
    flattened_records: int
    flattened_logical_size: int
    flattened_end_marker: bool
    # kdump
    header_version: int
    block_size: int
    header_layout: Literal["32-bit", "64-bit"]
    compression: list[Literal["zlib", "lzo", "snappy", "zstd"]]
    incomplete: bool
    dump_level: int
    max_mapnr: int
    nr_cpus: int
    utsname: UtsnameDetails
    anomalies: list[str]
    pages: PageCountDetails
    page_codecs: PageCodecDetails


Details = DetailsDict
"""The former name of :class:`DetailsDict` (``details()`` returns ``vmcoreinfo.Details`` now)."""
