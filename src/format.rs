//! The container formats, and the one trait each format module implements: what the container
//! says of the machine, its note segments, where it points at the VMCOREINFO text, and where a
//! physical range lies in the file. [`Backend`] is the enum that forwards to the format.

use std::sync::Arc;

use crate::avml::{self, AvmlImage};
use crate::elf::{self, ElfDump, NoteSegment};
use crate::error::{Error, Result};
use crate::flattened;
use crate::fwcfg;
use crate::kdump::{self, KdumpDump};
use crate::lime::{self, LimeImage};
use crate::phys::PhysMemory;
use crate::raw::RawImage;
use crate::source::ReadAt;
use crate::textblob::TextBlob;

/// Options for [`Dump::open`].
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Largest VMCOREINFO note accepted (QEMU's MAX_GUEST_NOTE_SIZE, 1 MiB, unless raised).
    pub max_note_size: u32,
    /// ELF: report `p_filesz < p_memsz` tails as absent instead of zeros (see
    /// [`ElfDump::set_tails_absent`]).
    pub elf_tails_absent: bool,
    /// `None`: detect the format from the file's magic (a raw image has none and is never
    /// detected). `Some(f)`: read the file as `f`; a format whose magic is missing is a `Format`
    /// error (`Raw` needs none). `Kdump` accepts the flattened variant too.
    pub format: Option<Format>,
    /// Map the file (read-only, guarded: see [`crate::mmap`]) when it can be mapped, for
    /// zero-copy [`Dump::view_phys`]; `false` never maps it (views are copies).
    pub mmap: bool,
    /// Also read through the mapping (`read_phys`, scans). Off by default: `pread` measured
    /// faster on every copying path (benches/MMAP.md).
    pub mapped_reads: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_note_size: fwcfg::MAX_GUEST_NOTE_SIZE,
            elf_tails_absent: true,
            format: None,
            mmap: true,
            mapped_reads: false,
        }
    }
}

/// The container format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Elf,
    Kdump,
    FlattenedKdump,
    /// LiME (Linux Memory Extractor) ranges; detected by its magic.
    Lime,
    /// AVML (v1, or v2 Snappy-compressed) ranges; detected by its magic.
    Avml,
    /// Physical memory from address 0, byte for byte; only when asked for.
    Raw,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Elf => "elf",
            Format::Kdump => "kdump",
            Format::FlattenedKdump => "flattened-kdump",
            Format::Lime => "lime",
            Format::Avml => "avml",
            Format::Raw => "raw",
        }
    }

    /// Every format, in the order [`detect`] tries their signatures (raw last: it has none).
    pub const ALL: [Format; 6] = [Format::Elf, Format::FlattenedKdump, Format::Kdump, Format::Avml, Format::Lime, Format::Raw];

    /// The format named `name` (as [`Format::name`] spells it).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Memory images (LiME, AVML, raw) carry no notes and no machine: both come from a scan.
    pub fn is_memory_image(self) -> bool {
        matches!(self, Format::Lime | Format::Avml | Format::Raw)
    }
}

/// The format a file's first bytes announce (a raw image announces none).
pub fn detect(head: &[u8]) -> Option<Format> {
    if elf::is_elf(head) {
        Some(Format::Elf)
    } else if flattened::is_flattened(head) {
        Some(Format::FlattenedKdump)
    } else if kdump::is_kdump(head) {
        Some(Format::Kdump)
    } else if avml::is_avml(head) {
        // Before LiME: the LiME check accepts the AVML magic too.
        Some(Format::Avml)
    } else if lime::is_lime(head) {
        Some(Format::Lime)
    } else {
        None
    }
}

/// The format to read a file as: the one asked for (checked against the file's signature; raw
/// needs none, and either kdump form accepts both) or the one detected.
pub fn choose(requested: Option<Format>, detected: Option<Format>) -> Result<Format> {
    match (requested, detected) {
        (None, Some(f)) => Ok(f),
        (None, None) => Err(Error::hinted(
            crate::error::ErrorKind::Format,
            Some(0),
            "not a dump this library detects: no ELF, KDUMP, makedumpfile, LiME or AVML signature at offset 0",
            crate::error::Hint::UseRawFormat,
        )),
        (Some(Format::Raw), _) => Ok(Format::Raw),
        (Some(Format::Kdump | Format::FlattenedKdump), Some(f @ (Format::Kdump | Format::FlattenedKdump))) => Ok(f),
        (Some(want), Some(f)) if want == f => Ok(f),
        (Some(want), got) => Err(Error::format(
            0,
            format!(
                "format {:?} was asked for, but the file does not start with its signature ({})",
                want.name(),
                got.map_or_else(|| "no known signature at offset 0".to_owned(), |g| format!("it looks like {}", g.name()))
            ),
        )),
    }
}

/// What is known of the guest's machine, and from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// ELF `e_machine` (0 when unknown).
    pub e_machine: u16,
    /// The class of the container's ELF structures (ELF header; kdump header layout), or, for a
    /// memory image, of the machine the text implies.
    pub class64: bool,
    pub big_endian: bool,
    /// Where the machine comes from: `"elf-header"`, `"kdump-header"` (utsname.machine),
    /// `"kdump-layout+vmcoreinfo"` (a header naming no machine), `"scan"` (a memory image's
    /// scanned text), or `"unknown"`.
    pub source: &'static str,
}

/// One container format.
pub trait DumpFormat: PhysMemory {
    fn format(&self) -> Format;
    /// What the container says of the machine; `None` for memory images (they say nothing).
    fn identity(&self) -> Option<Identity>;
    /// The note segments (ELF PT_NOTEs, the kdump note area), read at open.
    fn note_segments(&self) -> &[NoteSegment] {
        &[]
    }
    /// The VMCOREINFO text, when the format points straight at it (kdump's sub-header);
    /// `None` when it is to be found among the notes.
    fn vmcoreinfo_text(&self, _max_note_size: u32) -> Option<Result<TextBlob>> {
        None
    }
    /// File offset of physical `[addr, addr + len)` when the file stores it uncompressed in one
    /// piece; `None` otherwise.
    fn file_offset(&self, addr: u64, len: u64) -> Option<u64>;
    /// Bytes of memory the format declares stored, and how many the file holds; `None` when
    /// the file holds what it declares by construction (LiME, raw).
    fn stored_memory(&self) -> Result<Option<(u64, u64)>> {
        Ok(None)
    }
    /// The bytes the format reads (for a flattened file, the reassembled view).
    fn source(&self) -> &Arc<dyn ReadAt>;
}

/// The format behind a dump: an enum that forwards to each format's [`DumpFormat`].
pub enum Backend {
    Elf(ElfDump),
    Kdump(Box<KdumpDump>),
    Lime(LimeImage),
    Avml(AvmlImage),
    Raw(RawImage),
}

impl Backend {
    /// The format as the trait (one dispatch point, as object's `with_inner!`).
    pub fn inner(&self) -> &dyn DumpFormat {
        match self {
            Backend::Elf(x) => x,
            Backend::Kdump(x) => &**x,
            Backend::Lime(x) => x,
            Backend::Avml(x) => x,
            Backend::Raw(x) => x,
        }
    }
}
