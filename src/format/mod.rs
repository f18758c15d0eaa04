//! The container formats, and the one trait each format module implements: what the container
//! says of the machine, its note segments, where it points at the VMCOREINFO text, and where a
//! physical range lies in the file. This module names no format module: which formats exist,
//! how each is detected and opened, is the table in [`registry`].

use std::any::Any;
use std::sync::Arc;

use crate::error::Result;
use crate::fwcfg;
use crate::notes::NoteSegment;
use crate::phys::PhysMemory;
use crate::source::ReadAt;
use crate::textblob::TextBlob;

pub mod registry;

/// Options for [`Dump::open`](crate::dump::Dump::open).
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Largest VMCOREINFO note accepted (QEMU's MAX_GUEST_NOTE_SIZE, 1 MiB, unless raised).
    pub max_note_size: u32,
    /// ELF: report `p_filesz < p_memsz` tails as absent instead of zeros (see
    /// [`ElfDump::set_tails_absent`](crate::elf::ElfDump::set_tails_absent)).
    pub elf_tails_absent: bool,
    /// `None`: detect the format from the file's magic (a raw image has none and is never
    /// detected). `Some(f)`: read the file as `f`; a format whose magic is missing is a `Format`
    /// error (`Raw` needs none). `Kdump` accepts the flattened variant too.
    pub format: Option<Format>,
    /// Map the file (read-only, guarded: see [`crate::mmap`]) when it can be mapped, for
    /// zero-copy [`Dump::view_phys`](crate::dump::Dump::view_phys); `false` never maps it (views are copies).
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
/// The names, detection order and constructors are the rows of [`registry::FORMATS`]; `Format::name`,
/// `from_name`, `ALL` and `is_memory_image` are derived from it (see [`registry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
pub trait DumpFormat: PhysMemory + AsAny {
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
    /// the file holds what it declares by construction (the memory images).
    fn stored_memory(&self) -> Result<Option<(u64, u64)>> {
        Ok(None)
    }
    /// The bytes the format reads (for a flattened file, the reassembled view).
    fn source(&self) -> &Arc<dyn ReadAt>;
}

/// `&dyn Any` of a format, for the accessors that reach one format's own reader
/// ([`Dump::kdump`](crate::dump::Dump::kdump) and the like). Implemented for every `'static`
/// type: a format does nothing for it.
pub trait AsAny {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl dyn DumpFormat {
    /// This format as its concrete reader type `T`, if it is one.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        AsAny::as_any(self).downcast_ref()
    }
}
