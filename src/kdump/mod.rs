//! kdump-compressed ("KDUMP   ", a.k.a. diskdump) files, as written by makedumpfile and by
//! QEMU's `dump-guest-memory -z`/`kdump-*` formats.
//!
//! Layout (all in `block_size` blocks):
//! * block 0: `disk_dump_header` — signature, header_version, utsname (6 × 65 bytes), timestamp
//!   (a `struct timeval`: 2 × 8 bytes from 64-bit producers, 2 × 4 from 32-bit ones; QEMU's packed
//!   32-bit header puts a 10-byte timestamp at the same place, so `status` is at 412 in every
//!   32-bit layout and at 424 in the 64-bit one), then status, block_size, sub_hdr_size,
//!   bitmap_blocks, max_mapnr (32-bit), total_ram_blocks, device_blocks, written_blocks,
//!   current_cpu, nr_cpus.
//! * block 1..: `kdump_sub_header` (three layouts: 64-bit; packed 32-bit as QEMU and i386
//!   makedumpfile write it; 32-bit with 8-byte-aligned `off_t`, as makedumpfile built for ARM or
//!   MIPS writes it — crash's `arm_kdump_header_adjust`), plus the notes/VMCOREINFO it points to.
//! * `bitmap_blocks` blocks of bitmaps: bitmap 1 (pages that exist) then bitmap 2 (pages dumped);
//!   an area whose half does not cover max_mapnr, or of an odd number of blocks, holds bitmap 2
//!   only (libkdumpfile's rule).
//! * one 24-byte page descriptor `{i64 offset; u32 size; u32 flags; u64 page_flags}` per bit set
//!   in bitmap 2, in pfn order; then page data.
//!
//! How the layout is decided, never from `utsname.machine` (QEMU writes "i686" for an i386 guest
//! with the 64-bit layout and "Unknown" on ARM):
//! * byte order: `header_version` must be a small positive number (1..=255) in exactly one order;
//!   little-endian wins a tie.
//! * 32- vs 64-bit header: the candidate whose block_size is a sane power of two, whose
//!   sub_hdr_size and bitmap_blocks are non-zero, and whose header + sub-header + bitmaps fit in
//!   the file; if both fit, the one whose sub-header locations (VMCOREINFO, notes) are inside the
//!   file; if still both, 64-bit.
//! * 32-bit sub-header: packed unless only the ARM-aligned reading gives in-file locations.
//!
//! Reading pages: a pfn (in `block_size` units, which may differ from the guest's PAGESIZE:
//! QEMU on arm64 uses 64 KiB blocks) is present iff its bit in bitmap 2 is set and it is below
//! max_mapnr. Its descriptor index is its rank in bitmap 2, found with a popcount prefix every
//! 512 bits built at open; descriptors are read only when a page is read. Absent pages are
//! [`ErrorKind::Absent`] errors, never zeros.
//!
//! Hostile input: every size and offset in the headers is checked against the file length with
//! checked arithmetic before anything is allocated; errors carry the file offset of the field
//! (or of the page descriptor) at fault. No page allocation exceeds `block_size`, which is capped
//! at [`MAX_BLOCK_SIZE`].

mod backend;
mod codec;
pub(crate) mod header;
mod index;
pub(crate) mod layout;
mod pages;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use object::Endianness;

use crate::bitness::fixed_class;
use crate::elf::{NoteSegment, MAX_TABLE_BYTES};
use crate::error::{Error, Result};
use crate::machine::{machine_from_uname, machine_from_vmcoreinfo};
use crate::notes;
use crate::source::{ReadAt, WithHead};

pub use backend::KdumpDump;
pub use codec::{codec_names, CODECS};
use header::{tail_at, HdrFields, Headers};
pub use header::{PageDesc, SubHeader, SubLayout};
use index::{bit, DescStats, PageIndex};
pub use index::{CompressionSummary, PageCounts};

/// Compression flags, in the header's `status` and in each page descriptor's `flags`.
pub const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
pub const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
pub const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
pub const DUMP_DH_COMPRESSED_INCOMPLETE: u32 = 0x8;
pub const DUMP_DH_EXCLUDED_VMEMMAP: u32 = 0x10;
pub const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;
const CODEC_BITS: u32 = DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD;

pub const SIGNATURE: &[u8; 8] = b"KDUMP   ";
/// Largest block size accepted (a `Limit` error above it).
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
/// Smallest block size accepted (block 0 must hold the header).
pub const MIN_BLOCK_SIZE: u32 = 512;
/// Largest pair of bitmaps we read (2 × 512 MiB: 2^32 blocks, 16 TiB of 4 KiB pages); a
/// `Limit` error above it. Bitmaps are also bounded by the file's length.
pub const MAX_BITMAP_BYTES: u64 = 1 << 30;
/// Size of one page descriptor.
pub const DESC_SIZE: u64 = 24;
/// Reads of at least this many pages decompress in parallel.
pub const PARALLEL_PAGES: usize = 16;

const RANK_WORDS: usize = 8; // popcount prefix every 512 bits

/// Is this the start of a kdump-compressed file?
pub fn is_kdump(prefix: &[u8]) -> bool {
    prefix.len() >= 8 && &prefix[..8] == SIGNATURE
}

/// Where the bitmaps lie in the bitmap area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bitmaps {
    /// File offset of bitmap 1 (pages that exist); `None` when the area holds one bitmap only.
    valid: Option<u64>,
    /// File offset of bitmap 2 (pages dumped), or of the only bitmap.
    dumped: u64,
    /// Bytes of each bitmap.
    len: u64,
}

impl Bitmaps {
    /// The bitmaps of an area of `blocks` blocks (`area` bytes at `off`). Producers write two
    /// equal bitmaps, each covering max_mapnr. As in libkdumpfile, an area whose half does not
    /// cover max_mapnr holds one bitmap (the dumped pages), and so does an odd number of blocks.
    /// A max_mapnr past even the whole area is a lie: the two-bitmap reading is kept.
    fn of_area(off: u64, area: u64, blocks: u32, max_mapnr: u64) -> Bitmaps {
        let half = area / 2;
        let one = blocks % 2 != 0 || (max_mapnr > half * 8 && max_mapnr <= area * 8);
        if one {
            Bitmaps { valid: None, dumped: off, len: area }
        } else {
            Bitmaps { valid: Some(off), dumped: off + half, len: half }
        }
    }
}

/// An open kdump-compressed file.
pub struct KdumpFile {
    src: Arc<dyn ReadAt>,
    endian: Endianness,
    is32: bool,
    sub_layout: SubLayout,
    header_version: i32,
    uts: [String; 6],
    hdr: HdrFields,
    sub: SubHeader,
    max_mapnr: u64,
    /// pfns below this may be present (min of max_mapnr and the bitmap's size).
    pfn_limit: u64,
    /// Where the bitmaps are.
    bitmaps: Bitmaps,
    desc_base: u64,
    anomalies: Vec<Error>,
    /// The bitmaps and what is derived from them, read on first use: opening reads only the
    /// header blocks, so identifying a dump costs the same whatever the guest's memory size.
    index: OnceLock<Result<PageIndex>>,
    stats: OnceLock<DescStats>,
}

impl std::fmt::Debug for KdumpFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdumpFile")
            .field("header_version", &self.header_version)
            .field("endian", &self.endian)
            .field("is_32bit_layout", &self.is32)
            .field("sub_layout", &self.sub_layout)
            .field("machine", &self.uts[4])
            .field("release", &self.uts[2])
            .field("block_size", &self.hdr.block_size)
            .field("max_mapnr", &self.max_mapnr)
            .field("index_loaded", &self.index.get().is_some())
            .finish()
    }
}

impl KdumpFile {
    /// Open a kdump-compressed file (a plain file, or a reassembled [`Flattened`](crate::flattened::Flattened) view).
    pub fn open(src: Arc<dyn ReadAt>) -> Result<KdumpFile> {
        Self::open_with_head(src, &[])
    }

    /// [`open`](Self::open), given the file's first bytes as already read (the headers inside
    /// them are not read again).
    pub fn open_with_head(src: Arc<dyn ReadAt>, head: &[u8]) -> Result<KdumpFile> {
        let file_len = src.size();
        let Headers { endian, is32, header_version, uts, hdr, sub_layout, sub, mut anomalies } =
            header::read_headers(&WithHead { src: &*src, head }, file_len)?;
        let bs = u64::from(hdr.block_size);
        let max_mapnr = sub.max_mapnr_64.unwrap_or(u64::from(hdr.max_mapnr));

        // Bitmaps (validate() checked they fit in the file).
        let bm_off = bs * (1 + u64::from(hdr.sub_hdr_size));
        let area = bs * u64::from(hdr.bitmap_blocks);
        // Producers write every bitmap block. A view with holes (a flattened file with a record
        // far out) must not turn a few bytes into gigabytes of zero bitmaps.
        let stored = src.stored_len();
        if area > stored {
            return Err(Error::limit(
                tail_at!(hdr.base, bitmap_blocks),
                format!("kdump bitmaps of {area} bytes are more than the {stored} bytes the file stores"),
            ));
        }
        let bitmaps = Bitmaps::of_area(bm_off, area, hdr.bitmap_blocks, max_mapnr);
        let bits = bitmaps.len * 8;
        if max_mapnr > bits {
            anomalies.push(Error::format(
                tail_at!(hdr.base, max_mapnr),
                format!("kdump max_mapnr {max_mapnr} exceeds the {bits} pages the bitmaps cover; pages past them are absent"),
            ));
        }
        let pfn_limit = max_mapnr.min(bits);
        Ok(KdumpFile {
            src,
            endian,
            is32,
            sub_layout,
            header_version,
            uts,
            hdr,
            sub,
            max_mapnr,
            pfn_limit,
            bitmaps,
            desc_base: bm_off + area,
            anomalies,
            index: OnceLock::new(),
            stats: OnceLock::new(),
        })
    }

    // ---- header accessors ----

    pub fn header_version(&self) -> i32 {
        self.header_version
    }
    pub fn sysname(&self) -> &str {
        &self.uts[0]
    }
    pub fn nodename(&self) -> &str {
        &self.uts[1]
    }
    pub fn release(&self) -> &str {
        &self.uts[2]
    }
    pub fn version(&self) -> &str {
        &self.uts[3]
    }
    pub fn machine(&self) -> &str {
        &self.uts[4]
    }
    pub fn domainname(&self) -> &str {
        &self.uts[5]
    }
    /// `(tv_sec, tv_usec)` as stored (QEMU writes zeros).
    pub fn timestamp(&self) -> (i64, i64) {
        (self.hdr.tv_sec, self.hdr.tv_usec)
    }
    /// The header's `status` (compression and INCOMPLETE/EXCLUDED_VMEMMAP flags).
    pub fn status(&self) -> u32 {
        self.hdr.status
    }
    /// The codec the header announces (`status & (ZLIB|LZO|SNAPPY|ZSTD)`; 0 for none).
    pub fn compression_flags(&self) -> u32 {
        self.hdr.status & CODEC_BITS
    }
    pub fn is_incomplete(&self) -> bool {
        self.hdr.status & DUMP_DH_COMPRESSED_INCOMPLETE != 0
    }
    pub fn block_size(&self) -> u32 {
        self.hdr.block_size
    }
    pub fn sub_hdr_size(&self) -> u32 {
        self.hdr.sub_hdr_size
    }
    pub fn bitmap_blocks(&self) -> u32 {
        self.hdr.bitmap_blocks
    }
    /// max_mapnr: the sub-header's 64-bit value from version 6 on, else the header's 32-bit one.
    pub fn max_mapnr(&self) -> u64 {
        self.max_mapnr
    }
    pub fn total_ram_blocks(&self) -> u32 {
        self.hdr.total_ram_blocks
    }
    pub fn device_blocks(&self) -> u32 {
        self.hdr.device_blocks
    }
    pub fn written_blocks(&self) -> u32 {
        self.hdr.written_blocks
    }
    pub fn current_cpu(&self) -> u32 {
        self.hdr.current_cpu
    }
    pub fn nr_cpus(&self) -> i32 {
        self.hdr.nr_cpus
    }
    pub fn sub_header(&self) -> &SubHeader {
        &self.sub
    }
    pub fn sub_layout(&self) -> SubLayout {
        self.sub_layout
    }
    /// The sub-header's phys_base, as the producer wrote it. QEMU computes it wrongly for x86_64
    /// guests with KASLR (it parses the kernel's decimal `NUMBER(phys_base)` as hex): prefer the
    /// VMCOREINFO text.
    pub fn phys_base_header(&self) -> u64 {
        self.sub.phys_base
    }
    pub fn dump_level(&self) -> i32 {
        self.sub.dump_level
    }
    /// `(offset, size)` of the VMCOREINFO text (header version >= 3, inside the file, non-empty).
    pub fn vmcoreinfo_location(&self) -> Option<(u64, u64)> {
        match (self.sub.offset_vmcoreinfo, self.sub.size_vmcoreinfo) {
            (Some(o), Some(s)) if s > 0 => Some((o, s)),
            _ => None,
        }
    }
    /// `(offset, size)` of the ELF notes blob (header version >= 4, inside the file, non-empty).
    pub fn notes_location(&self) -> Option<(u64, u64)> {
        match (self.sub.offset_note, self.sub.note_size) {
            (Some(o), Some(s)) if s > 0 => Some((o, s)),
            _ => None,
        }
    }
    /// `(offset, size)` of the eraseinfo text (header version >= 5, inside the file, non-empty).
    pub fn eraseinfo_location(&self) -> Option<(u64, u64)> {
        match (self.sub.offset_eraseinfo, self.sub.size_eraseinfo) {
            (Some(o), Some(s)) if s > 0 => Some((o, s)),
            _ => None,
        }
    }
    pub fn byteorder_big(&self) -> bool {
        self.endian == Endianness::Big
    }
    pub fn is_32bit_layout(&self) -> bool {
        self.is32
    }
    /// Problems that did not stop the open (e.g. a VMCOREINFO location outside the file) and,
    /// once the page index is loaded, its own (e.g. a descriptor table cut short).
    pub fn anomalies(&self) -> Vec<Error> {
        let mut v = self.anomalies.clone();
        if let Some(Ok(ix)) = self.index.get() {
            v.extend(ix.anomalies.iter().cloned());
            v.extend(ix.table_cut.iter().cloned());
        }
        v
    }
    /// The byte source (for reading the VMCOREINFO text and notes at their locations).
    pub fn source(&self) -> &Arc<dyn ReadAt> {
        &self.src
    }
    /// File offset of the first page descriptor.
    pub fn descriptors_offset(&self) -> u64 {
        self.desc_base
    }
    /// Number of page descriptors.
    pub fn descriptor_count(&self) -> Result<u64> {
        Ok(self.index()?.ndesc)
    }

    // ---- what a dump reader needs from the headers ----

    /// The ELF notes blob the sub-header points at, read whole as a note segment (4-byte
    /// padding, as QEMU and makedumpfile write it); `None` when the header has none. `head` is
    /// the file's first bytes if already read, as for [`open_with_head`](Self::open_with_head).
    /// A `Limit` error when the blob is larger than [`MAX_TABLE_BYTES`](crate::elf::MAX_TABLE_BYTES)
    /// or than the bytes the file stores (a flattened file's holes read as zeros: never allocate
    /// for what the file does not hold).
    pub fn note_segment(&self, head: &[u8]) -> Result<Option<NoteSegment>> {
        let Some((off, size)) = self.notes_location() else { return Ok(None) };
        if size > MAX_TABLE_BYTES {
            return Err(Error::limit(off, format!("kdump note area of {size} bytes exceeds the {MAX_TABLE_BYTES} byte limit")));
        }
        let stored = self.src.stored_len();
        if size > stored {
            return Err(Error::limit(
                off,
                format!("kdump note area of {size} bytes is more than the {stored} bytes the file stores"),
            ));
        }
        let data = WithHead { src: &*self.src, head }.read_vec(off, size, "kdump note area")?;
        Ok(Some(NoteSegment { file_offset: off, align: notes::NOTE_ALIGN, data: Arc::from(data) }))
    }

    /// `(e_machine, 64-bit)`: the header's `utsname.machine` when it names a machine. Otherwise
    /// (QEMU writes "Unknown" on arm and riscv) the machine the VMCOREINFO text implies
    /// (`vmcoreinfo` is called only then; 0 when it says none), with the class of the header
    /// layout, unless that machine has one class only ([`fixed_class`]): a 32-bit layout is a
    /// 32-bit producer.
    pub fn machine_guess<T: AsRef<[u8]>>(&self, vmcoreinfo: impl FnOnce() -> Option<T>) -> (u16, bool) {
        if let Some(m) = machine_from_uname(self.machine()) {
            return m;
        }
        let layout64 = !self.is32;
        match vmcoreinfo().and_then(|t| machine_from_vmcoreinfo(t.as_ref())) {
            Some((m, _)) => (m, fixed_class(m).unwrap_or(layout64)),
            None => (0, layout64),
        }
    }
}
