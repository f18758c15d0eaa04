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
//! * `bitmap_blocks` blocks of bitmaps: bitmap 1 (pages that exist) then bitmap 2 (pages dumped).
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

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::phys::{normalize, PhysMemory, PhysRange};
use crate::source::{ReadAt, WithHead};

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

const UTS_LEN: usize = 65;
const UTS_OFF: usize = 12;
const HDR64_STATUS: usize = 424;
const HDR32_STATUS: usize = 412;
const HDR64_LEN: usize = 464;
const RANK_WORDS: usize = 8; // popcount prefix every 512 bits

/// Is this the start of a kdump-compressed file?
pub fn is_kdump(prefix: &[u8]) -> bool {
    prefix.len() >= 8 && &prefix[..8] == SIGNATURE
}

#[derive(Clone, Copy)]
struct Rd<'a> {
    b: &'a [u8],
    big: bool,
}

impl Rd<'_> {
    fn u32(&self, o: usize) -> u32 {
        let a: [u8; 4] = self.b[o..o + 4].try_into().unwrap();
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }
    fn u64(&self, o: usize) -> u64 {
        let a: [u8; 8] = self.b[o..o + 8].try_into().unwrap();
        if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }
    fn i32(&self, o: usize) -> i32 {
        self.u32(o) as i32
    }
    /// An unsigned long of the producer's width.
    fn ulong(&self, o: usize, wide: bool) -> u64 {
        if wide {
            self.u64(o)
        } else {
            u64::from(self.u32(o))
        }
    }
}

/// Sub-header layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubLayout {
    /// 64-bit producers (every 64-bit makedumpfile, QEMU for 64-bit targets).
    L64,
    /// 32-bit, `off_t` 4-byte aligned: QEMU's packed `KdumpSubHeader32`, i386 makedumpfile.
    Packed32,
    /// 32-bit, `off_t` 8-byte aligned: makedumpfile built for ARM/MIPS.
    Aligned32,
}

impl SubLayout {
    /// Field offsets: phys_base, dump_level, split, start_pfn, end_pfn, offset_vmcoreinfo,
    /// size_vmcoreinfo, offset_note, note_size, offset_eraseinfo, size_eraseinfo, start_pfn_64,
    /// end_pfn_64, max_mapnr_64; and the total size.
    fn offsets(self) -> ([usize; 14], usize) {
        match self {
            SubLayout::L64 => ([0, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96], 104),
            SubLayout::Packed32 => ([0, 4, 8, 12, 16, 20, 28, 32, 40, 44, 52, 56, 64, 72], 80),
            SubLayout::Aligned32 => ([0, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88], 96),
        }
    }
    fn wide(self) -> bool {
        self == SubLayout::L64
    }
}

/// The 32-bit fields of block 0 after utsname and timestamp.
#[derive(Debug, Clone, Copy, Default)]
struct HdrFields {
    status: u32,
    block_size: u32,
    sub_hdr_size: u32,
    bitmap_blocks: u32,
    max_mapnr: u32,
    total_ram_blocks: u32,
    device_blocks: u32,
    written_blocks: u32,
    current_cpu: u32,
    nr_cpus: i32,
    tv_sec: i64,
    tv_usec: i64,
    /// File offset of `status` (the other fields follow at +4 each).
    base: usize,
}

impl HdrFields {
    fn read(r: Rd, is32: bool) -> HdrFields {
        let base = if is32 { HDR32_STATUS } else { HDR64_STATUS };
        let (tv_sec, tv_usec) =
            if is32 { (i64::from(r.i32(404)), i64::from(r.i32(408))) } else { (r.u64(408) as i64, r.u64(416) as i64) };
        HdrFields {
            status: r.u32(base),
            block_size: r.u32(base + 4),
            sub_hdr_size: r.u32(base + 8),
            bitmap_blocks: r.u32(base + 12),
            max_mapnr: r.u32(base + 16),
            total_ram_blocks: r.u32(base + 20),
            device_blocks: r.u32(base + 24),
            written_blocks: r.u32(base + 28),
            current_cpu: r.u32(base + 32),
            nr_cpus: r.i32(base + 36),
            tv_sec,
            tv_usec,
            base,
        }
    }

    /// Check the fields that fix the file layout; the error names the field's offset.
    fn validate(&self, file_len: u64) -> Result<()> {
        let bs = self.block_size;
        let off_bs = (self.base + 4) as u64;
        if bs == 0 || !bs.is_power_of_two() {
            return Err(Error::format(off_bs, format!("kdump block_size {bs} is not a power of two")));
        }
        if bs > MAX_BLOCK_SIZE {
            return Err(Error::limit(off_bs, format!("kdump block_size {bs} is above the {MAX_BLOCK_SIZE}-byte limit")));
        }
        if bs < MIN_BLOCK_SIZE {
            return Err(Error::format(off_bs, format!("kdump block_size {bs} is below {MIN_BLOCK_SIZE}")));
        }
        if self.sub_hdr_size == 0 {
            return Err(Error::format((self.base + 8) as u64, "kdump sub_hdr_size is 0"));
        }
        let off_bb = (self.base + 12) as u64;
        if self.bitmap_blocks == 0 || self.bitmap_blocks % 2 != 0 {
            return Err(Error::format(
                off_bb,
                format!("kdump bitmap_blocks {} is not a positive even number (two bitmaps)", self.bitmap_blocks),
            ));
        }
        let bitmap_bytes = u64::from(self.bitmap_blocks) * u64::from(bs);
        if bitmap_bytes > MAX_BITMAP_BYTES {
            return Err(Error::limit(
                off_bb,
                format!("kdump bitmaps of {bitmap_bytes} bytes are above the {MAX_BITMAP_BYTES}-byte limit"),
            ));
        }
        let blocks = 1 + u64::from(self.sub_hdr_size) + u64::from(self.bitmap_blocks);
        let end = blocks * u64::from(bs); // < 2^33 * 2^20: no overflow
        if end > file_len {
            return Err(Error::truncated(
                off_bb,
                format!(
                    "kdump header, {} sub-header and {} bitmap blocks of {bs} bytes end at {end:#x}, past the end of the file ({file_len} bytes)",
                    self.sub_hdr_size, self.bitmap_blocks
                ),
            ));
        }
        Ok(())
    }
}

/// The kdump sub-header (block 1). Fields a header version does not have are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubHeader {
    pub phys_base: u64,
    pub dump_level: i32,
    pub split: Option<i32>,
    pub start_pfn: Option<u64>,
    pub end_pfn: Option<u64>,
    pub offset_vmcoreinfo: Option<u64>,
    pub size_vmcoreinfo: Option<u64>,
    pub offset_note: Option<u64>,
    pub note_size: Option<u64>,
    pub offset_eraseinfo: Option<u64>,
    pub size_eraseinfo: Option<u64>,
    pub start_pfn_64: Option<u64>,
    pub end_pfn_64: Option<u64>,
    pub max_mapnr_64: Option<u64>,
}

impl SubHeader {
    fn read(r: Rd, layout: SubLayout, version: i32) -> SubHeader {
        let (o, _) = layout.offsets();
        let w = layout.wide();
        let mut s = SubHeader { phys_base: r.ulong(o[0], w), dump_level: r.i32(o[1]), ..Default::default() };
        if version >= 2 {
            s.split = Some(r.i32(o[2]));
            s.start_pfn = Some(r.ulong(o[3], w));
            s.end_pfn = Some(r.ulong(o[4], w));
        }
        if version >= 3 {
            s.offset_vmcoreinfo = Some(r.u64(o[5]));
            s.size_vmcoreinfo = Some(r.ulong(o[6], w));
        }
        if version >= 4 {
            s.offset_note = Some(r.u64(o[7]));
            s.note_size = Some(r.ulong(o[8], w));
        }
        if version >= 5 {
            s.offset_eraseinfo = Some(r.u64(o[9]));
            s.size_eraseinfo = Some(r.ulong(o[10], w));
        }
        if version >= 6 {
            s.start_pfn_64 = Some(r.u64(o[11]));
            s.end_pfn_64 = Some(r.u64(o[12]));
            s.max_mapnr_64 = Some(r.u64(o[13]));
        }
        s
    }

    /// The (offset, size) pairs it points at, with the sub-header-relative field offset.
    fn locations(&self, layout: SubLayout) -> [(&'static str, Option<u64>, Option<u64>, usize); 3] {
        let (o, _) = layout.offsets();
        [
            ("VMCOREINFO", self.offset_vmcoreinfo, self.size_vmcoreinfo, o[5]),
            ("notes", self.offset_note, self.note_size, o[7]),
            ("eraseinfo", self.offset_eraseinfo, self.size_eraseinfo, o[9]),
        ]
    }

    /// Do all its locations lie in `[min, file_len)` (or are 0/0)?
    fn locations_plausible(&self, layout: SubLayout, min: u64, file_len: u64) -> bool {
        self.locations(layout).iter().all(|&(_, off, size, _)| match (off, size) {
            (Some(0), Some(0)) | (None, _) | (_, None) => true,
            (Some(o), Some(s)) => o >= min && o.checked_add(s).is_some_and(|e| e <= file_len),
        })
    }
}

/// Page counts from the bitmaps (and, for `zero`, the descriptors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// Pages set in bitmap 1 (pages that exist in the guest, as the producer saw it).
    pub valid: u64,
    /// Pages set in bitmap 2 (pages with a descriptor).
    pub dumped: u64,
    /// Pages in bitmap 1 but not in bitmap 2 (excluded by the producer's dump level).
    pub excluded: u64,
    /// Dumped pages whose descriptor points at a shared all-zero block (QEMU's and makedumpfile's
    /// zero page).
    pub zero: u64,
}

/// How many page descriptors use each codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompressionSummary {
    pub zlib: u64,
    pub lzo: u64,
    pub snappy: u64,
    pub zstd: u64,
    /// Stored uncompressed (no codec flag).
    pub raw: u64,
    /// More than one codec flag (malformed).
    pub invalid: u64,
}

#[derive(Debug, Clone, Copy)]
struct DescStats {
    zero: u64,
    summary: CompressionSummary,
}

/// One page descriptor, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageDesc {
    pub offset: i64,
    pub size: u32,
    pub flags: u32,
    pub page_flags: u64,
}

impl PageDesc {
    fn parse(b: &[u8], big: bool) -> PageDesc {
        let r = Rd { b, big };
        PageDesc { offset: r.u64(0) as i64, size: r.u32(8), flags: r.u32(12), page_flags: r.u64(16) }
    }
}

/// An open kdump-compressed file.
pub struct KdumpFile {
    src: Arc<dyn ReadAt>,
    big: bool,
    is32: bool,
    sub_layout: SubLayout,
    header_version: i32,
    uts: [String; 6],
    hdr: HdrFields,
    sub: SubHeader,
    max_mapnr: u64,
    /// pfns below this may be present (min of max_mapnr and the bitmap's size).
    pfn_limit: u64,
    /// File offset and size of each bitmap (bitmap 2 follows bitmap 1).
    bm_off: u64,
    half: u64,
    desc_base: u64,
    anomalies: Vec<Error>,
    /// The bitmaps and what is derived from them, read on first use: opening reads only the
    /// header blocks, so identifying a dump costs the same whatever the guest's memory size.
    index: OnceLock<Result<PageIndex>>,
    stats: OnceLock<DescStats>,
}

/// What the bitmaps say (see [`KdumpFile::index`]).
struct PageIndex {
    bitmap1: Vec<u64>,
    bitmap2: Vec<u64>,
    /// Set bits of bitmap 2 before each block of `RANK_WORDS` words.
    rank: Vec<u64>,
    /// Split dumps: the pfn range this file holds, and the rank of its first pfn.
    split_range: Option<(u64, u64)>,
    rank_base: u64,
    ndesc: u64,
    anomalies: Vec<Error>,
    /// The descriptor table runs past the end of a file that is not marked incomplete: every
    /// page read reports this error ([`KdumpFile::stored_pages`] still counts what is there).
    table_cut: Option<Error>,
}

impl PageIndex {
    /// Number of set bits in bitmap 2 below `pfn`.
    fn rank_of(&self, pfn: u64) -> u64 {
        let w = (pfn / 64) as usize;
        if w >= self.bitmap2.len() {
            return self.rank.last().copied().unwrap_or(0)
                + self.bitmap2[(self.rank.len().saturating_sub(1)) * RANK_WORDS..]
                    .iter()
                    .map(|w| u64::from(w.count_ones()))
                    .sum::<u64>();
        }
        let blk = w / RANK_WORDS;
        let mut r = self.rank[blk];
        for x in &self.bitmap2[blk * RANK_WORDS..w] {
            r += u64::from(x.count_ones());
        }
        let rem = pfn % 64;
        if rem > 0 {
            r += u64::from((self.bitmap2[w] & ((1u64 << rem) - 1)).count_ones());
        }
        r
    }

    /// Is this pfn held by this file (bitmap 2, below the limit, inside a split range)?
    fn present(&self, pfn: u64, pfn_limit: u64) -> bool {
        pfn < pfn_limit && !self.split_range.is_some_and(|(s, e)| pfn < s || pfn >= e) && bit(&self.bitmap2, pfn)
    }
}

impl std::fmt::Debug for KdumpFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdumpFile")
            .field("header_version", &self.header_version)
            .field("big_endian", &self.big)
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

fn uts_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn words_from_bytes(b: &[u8]) -> Vec<u64> {
    b.chunks(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(a)
        })
        .collect()
}

fn bit(words: &[u64], n: u64) -> bool {
    words.get((n / 64) as usize).is_some_and(|w| w >> (n % 64) & 1 == 1)
}

impl KdumpFile {
    /// Open a kdump-compressed file (a plain file, or a reassembled [`Flattened`](crate::flattened::Flattened) view).
    pub fn open(src: Arc<dyn ReadAt>) -> Result<KdumpFile> {
        Self::open_with_head(src, &[])
    }

    /// [`open`](Self::open), given the file's first bytes as already read (the headers inside
    /// them are not read again).
    pub fn open_with_head(src: Arc<dyn ReadAt>, head: &[u8]) -> Result<KdumpFile> {
        let file_len = src.len();
        let hsrc = WithHead { src: &*src, head };
        let head = hsrc.read_prefix(0, HDR64_LEN)?;
        if !is_kdump(&head) {
            return Err(Error::format(0, "not a kdump-compressed file (no \"KDUMP   \" signature)"));
        }
        if head.len() < HDR64_LEN {
            return Err(Error::truncated(
                head.len() as u64,
                format!("kdump header needs {HDR64_LEN} bytes; the file has {file_len}"),
            ));
        }
        // Byte order from header_version.
        let v_le = i32::from_le_bytes(head[8..12].try_into().unwrap());
        let v_be = i32::from_be_bytes(head[8..12].try_into().unwrap());
        let plausible = |v: i32| (1..=255).contains(&v);
        let big = match (plausible(v_le), plausible(v_be)) {
            (true, _) => false,
            (false, true) => true,
            (false, false) => {
                return Err(Error::format(8, format!("kdump header_version {v_le:#x} is implausible in either byte order")))
            }
        };
        let r = Rd { b: &head, big };
        let header_version = r.i32(8);

        // 32- or 64-bit header layout, from the consistency of the fields.
        let h64 = HdrFields::read(r, false);
        let h32 = HdrFields::read(r, true);
        let v64 = h64.validate(file_len);
        let v32 = h32.validate(file_len);
        let is32 = match (&v64, &v32) {
            (Ok(()), Err(_)) => false,
            (Err(_), Ok(())) => true,
            (Ok(()), Ok(())) => {
                // Both fit: prefer the one whose sub-header points inside the file.
                let fits = |h: &HdrFields, is32: bool| -> bool {
                    let layouts: &[SubLayout] =
                        if is32 { &[SubLayout::Packed32, SubLayout::Aligned32] } else { &[SubLayout::L64] };
                    let bs = u64::from(h.block_size);
                    let Ok(b) = hsrc.read_prefix(bs, 104) else { return false };
                    layouts.iter().any(|&l| {
                        b.len() >= l.offsets().1 && {
                            let s = SubHeader::read(Rd { b: &b, big }, l, header_version);
                            s.locations_plausible(l, bs, file_len)
                        }
                    })
                };
                !fits(&h64, false) && fits(&h32, true)
            }
            (Err(e64), Err(e32)) => {
                // Blame the layout whose block_size at least looks like one.
                let e = if !h64.block_size.is_power_of_two() && h32.block_size.is_power_of_two() { e32 } else { e64 };
                return Err(e.clone());
            }
        };
        let hdr = if is32 { h32 } else { h64 };
        let bs = u64::from(hdr.block_size);

        let uts: [String; 6] = std::array::from_fn(|i| uts_string(&head[UTS_OFF + i * UTS_LEN..UTS_OFF + (i + 1) * UTS_LEN]));

        // Sub-header.
        let sub_bytes = hsrc.read_prefix(bs, 104)?;
        let mut anomalies = Vec::new();
        let candidates: &[SubLayout] = if is32 { &[SubLayout::Packed32, SubLayout::Aligned32] } else { &[SubLayout::L64] };
        let mut chosen: Option<(SubLayout, SubHeader)> = None;
        for &l in candidates {
            if sub_bytes.len() < l.offsets().1 {
                continue;
            }
            let s = SubHeader::read(Rd { b: &sub_bytes, big }, l, header_version);
            if chosen.is_none() {
                chosen = Some((l, s.clone()));
            }
            if s.locations_plausible(l, bs, file_len) {
                chosen = Some((l, s));
                break;
            }
        }
        let Some((sub_layout, mut sub)) = chosen else {
            return Err(Error::truncated(bs, "kdump sub-header runs past the end of the file"));
        };
        // Locations that point outside the file are dropped and reported.
        let min_loc = bs;
        let locs = sub.locations(sub_layout);
        for (i, &(what, off, size, field)) in locs.iter().enumerate() {
            let (Some(o), Some(s)) = (off, size) else { continue };
            if o == 0 && s == 0 {
                continue;
            }
            let bad = o < min_loc || o.checked_add(s).map_or(true, |e| e > file_len);
            if bad {
                anomalies.push(Error::new(
                    if o.checked_add(s).is_none() { ErrorKind::Format } else { ErrorKind::Truncated },
                    Some(bs + field as u64),
                    format!("kdump sub-header {what} location {o:#x}+{s:#x} is outside the file ({file_len} bytes); ignored"),
                ));
                match i {
                    0 => (sub.offset_vmcoreinfo, sub.size_vmcoreinfo) = (None, None),
                    1 => (sub.offset_note, sub.note_size) = (None, None),
                    _ => (sub.offset_eraseinfo, sub.size_eraseinfo) = (None, None),
                }
            }
        }

        let max_mapnr = sub.max_mapnr_64.unwrap_or(u64::from(hdr.max_mapnr));

        // Bitmaps (validate() checked they fit in the file).
        let bm_off = bs * (1 + u64::from(hdr.sub_hdr_size));
        let half = bs * u64::from(hdr.bitmap_blocks) / 2;
        // Producers write every bitmap block. A view with holes (a flattened file with a record
        // far out) must not turn a few bytes into gigabytes of zero bitmaps.
        let stored = src.stored_len();
        if half * 2 > stored {
            return Err(Error::limit(
                (hdr.base + 12) as u64,
                format!("kdump bitmaps of {} bytes are more than the {stored} bytes the file stores", half * 2),
            ));
        }
        let bits = half * 8;
        if max_mapnr > bits {
            anomalies.push(Error::format(
                (hdr.base + 16) as u64,
                format!("kdump max_mapnr {max_mapnr} exceeds the {bits} pages the bitmaps cover; pages past them are absent"),
            ));
        }
        let pfn_limit = max_mapnr.min(bits);
        Ok(KdumpFile {
            src,
            big,
            is32,
            sub_layout,
            header_version,
            uts,
            hdr,
            sub,
            max_mapnr,
            pfn_limit,
            bm_off,
            half,
            desc_base: bm_off + half * 2,
            anomalies,
            index: OnceLock::new(),
            stats: OnceLock::new(),
        })
    }

    /// The page index, read on first use (then kept): the bitmaps, the rank index over bitmap 2,
    /// the split range and the descriptor count, with the checks that need them.
    fn index(&self) -> Result<&PageIndex> {
        let ix = self.index_even_if_cut()?;
        match &ix.table_cut {
            Some(e) => Err(e.clone()),
            None => Ok(ix),
        }
    }

    /// The page index, also when its descriptor table is cut short.
    fn index_even_if_cut(&self) -> Result<&PageIndex> {
        self.index.get_or_init(|| self.load_index()).as_ref().map_err(Clone::clone)
    }

    fn load_index(&self) -> Result<PageIndex> {
        let (bm_off, half) = (self.bm_off, self.half);
        let bs = u64::from(self.hdr.block_size);
        let file_len = self.src.len();
        let raw = self.src.read_vec(bm_off, half * 2, "kdump bitmaps")?;
        let bitmap1 = words_from_bytes(&raw[..half as usize]);
        let bitmap2 = words_from_bytes(&raw[half as usize..]);
        drop(raw);
        let mut rank = Vec::with_capacity(bitmap2.len() / RANK_WORDS + 1);
        let mut acc = 0u64;
        for chunk in bitmap2.chunks(RANK_WORDS) {
            rank.push(acc);
            acc += chunk.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }
        let mut ix = PageIndex {
            bitmap1,
            bitmap2,
            rank,
            split_range: None,
            rank_base: 0,
            ndesc: acc,
            anomalies: Vec::new(),
            table_cut: None,
        };

        // Split dumps hold [start_pfn, end_pfn) and number descriptors from start_pfn.
        if self.sub.split.unwrap_or(0) != 0 {
            let start = self.sub.start_pfn_64.or(self.sub.start_pfn).unwrap_or(0);
            let end = self.sub.end_pfn_64.or(self.sub.end_pfn).unwrap_or(0);
            if start > end || start > self.pfn_limit {
                return Err(Error::format(
                    bs + self.sub_layout.offsets().0[3] as u64,
                    format!("kdump split range {start}..{end} is inconsistent"),
                ));
            }
            let end = end.min(self.pfn_limit);
            ix.rank_base = ix.rank_of(start);
            ix.ndesc = ix.rank_of(end) - ix.rank_base;
            ix.split_range = Some((start, end));
        }

        // The descriptor table must fit (an incomplete dump may be cut short: its missing pages
        // are absent).
        let table = ix.ndesc.checked_mul(DESC_SIZE).and_then(|t| t.checked_add(self.desc_base));
        match table {
            Some(end) if end <= file_len => {}
            _ if self.is_incomplete() => ix.anomalies.push(Error::truncated(
                self.desc_base,
                "kdump page descriptor table runs past the end of this incomplete dump; missing pages are absent",
            )),
            _ => {
                ix.table_cut = Some(Error::truncated(
                    self.desc_base,
                    format!(
                        "kdump page descriptor table ({} descriptors at {:#x}) runs past the end of the file ({file_len} bytes)",
                        ix.ndesc, self.desc_base
                    ),
                ))
            }
        }
        Ok(ix)
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
    /// The header's 32-bit max_mapnr (obsolete from version 6).
    pub fn max_mapnr_32(&self) -> u32 {
        self.hdr.max_mapnr
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
    pub fn phys_base_header(&self) -> Option<u64> {
        Some(self.sub.phys_base)
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
        self.big
    }
    pub fn is_32bit_layout(&self) -> bool {
        self.is32
    }
    /// Problems that did not stop the open (e.g. a VMCOREINFO location outside the file).
    /// Problems that did not stop the open (and, once pages were read, the page index's).
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

    // ---- bitmaps ----

    /// Is this pfn (in block_size units) held by the dump?
    pub fn pfn_present(&self, pfn: u64) -> Result<bool> {
        Ok(self.index()?.present(pfn, self.pfn_limit))
    }

    /// Is this pfn marked as existing (bitmap 1)?
    pub fn pfn_valid(&self, pfn: u64) -> Result<bool> {
        Ok(pfn < self.pfn_limit && bit(&self.index()?.bitmap1, pfn))
    }

    /// Counts from the bitmaps; `zero` needs one scan of the descriptors (done once, cached).
    pub fn page_counts(&self) -> Result<PageCounts> {
        let ix = self.index()?;
        let lim = self.pfn_limit;
        let full = (lim / 64) as usize;
        let mask_last = |words: &[u64]| -> u64 {
            let rem = lim % 64;
            if rem == 0 {
                0
            } else {
                words.get(full).map_or(0, |w| w & ((1u64 << rem) - 1))
            }
        };
        let count = |a: &[u64]| -> u64 {
            a[..full.min(a.len())].iter().map(|w| u64::from(w.count_ones())).sum::<u64>() + u64::from(mask_last(a).count_ones())
        };
        let valid = count(&ix.bitmap1);
        let dumped = match ix.split_range {
            Some(_) => ix.ndesc,
            None => count(&ix.bitmap2),
        };
        let mut excluded = 0u64;
        for i in 0..full.min(ix.bitmap1.len()) {
            excluded += u64::from((ix.bitmap1[i] & !ix.bitmap2[i]).count_ones());
        }
        excluded += u64::from((mask_last(&ix.bitmap1) & !mask_last(&ix.bitmap2)).count_ones());
        let zero = self.desc_stats()?.zero;
        Ok(PageCounts { valid, dumped, excluded, zero })
    }

    /// Pages the bitmaps declare stored (set in bitmap 2, within this file's split range), and
    /// how many of them the file holds: descriptor and page data inside the file as opened.
    /// Producers (QEMU, makedumpfile) write page data in descriptor order, so when the last
    /// descriptor and its data are in the file, all pages are taken as held (one read);
    /// otherwise the descriptors the file holds are counted in one pass.
    pub fn stored_pages(&self) -> Result<(u64, u64)> {
        let ix = self.index_even_if_cut()?;
        let declared = ix.ndesc;
        let len = self.src.len();
        let in_table = (len.saturating_sub(self.desc_base) / DESC_SIZE).min(declared);
        if in_table == 0 {
            return Ok((declared, 0));
        }
        let held = |d: &PageDesc| {
            d.size > 0 && d.offset > 0 && (d.offset as u64).checked_add(u64::from(d.size)).is_some_and(|e| e <= len)
        };
        if in_table == declared {
            let mut b = [0u8; DESC_SIZE as usize];
            self.src.read_exact_at(&mut b, self.desc_base + (in_table - 1) * DESC_SIZE)?;
            if held(&PageDesc::parse(&b, self.big)) {
                return Ok((declared, declared));
            }
        }
        let mut stored = 0u64;
        self.for_each_desc(|_, d| stored += u64::from(held(&d)))?;
        Ok((declared, stored))
    }

    /// Descriptors per codec (one scan of the descriptors, done once, cached).
    pub fn compression_summary(&self) -> Result<CompressionSummary> {
        Ok(self.desc_stats()?.summary)
    }

    /// Visit every descriptor in order, reading the table in large chunks.
    fn for_each_desc(&self, mut f: impl FnMut(u64, PageDesc)) -> Result<()> {
        const CHUNK: u64 = 1 << 16; // descriptors per read (1.5 MiB)
        let avail = (self.src.len().saturating_sub(self.desc_base) / DESC_SIZE).min(self.index_even_if_cut()?.ndesc);
        let mut i = 0u64;
        let mut buf = Vec::new();
        while i < avail {
            let n = (avail - i).min(CHUNK);
            buf.resize((n * DESC_SIZE) as usize, 0);
            let off = self.desc_base + i * DESC_SIZE;
            self.src.read_exact_at(&mut buf, off)?;
            for (k, d) in buf.chunks_exact(DESC_SIZE as usize).enumerate() {
                f(off + k as u64 * DESC_SIZE, PageDesc::parse(d, self.big));
            }
            i += n;
        }
        Ok(())
    }

    fn desc_stats(&self) -> Result<DescStats> {
        if let Some(s) = self.stats.get() {
            return Ok(*s);
        }
        // Pass 1: codecs, and data blocks referenced again after later data (shared blocks).
        let mut summary = CompressionSummary::default();
        let mut max_end = 0u64;
        let mut shared: std::collections::BTreeMap<(i64, u32, u32), (u64, bool)> = Default::default();
        self.for_each_desc(|off, d| {
            match d.flags & CODEC_BITS {
                0 => summary.raw += 1,
                DUMP_DH_COMPRESSED_ZLIB => summary.zlib += 1,
                DUMP_DH_COMPRESSED_LZO => summary.lzo += 1,
                DUMP_DH_COMPRESSED_SNAPPY => summary.snappy += 1,
                DUMP_DH_COMPRESSED_ZSTD => summary.zstd += 1,
                _ => summary.invalid += 1,
            }
            let end = (d.offset as u64).saturating_add(u64::from(d.size));
            if d.offset >= 0 && end <= max_end && shared.len() < 4096 {
                shared.entry((d.offset, d.size, d.flags)).or_insert((off, false));
            }
            max_end = max_end.max(end);
        })?;
        // Which shared blocks are all zeros?
        let mut scratch = vec![0u8; self.hdr.block_size as usize];
        for ((_, _, _), (desc_off, is_zero)) in shared.iter_mut() {
            let mut db = [0u8; DESC_SIZE as usize];
            self.src.read_exact_at(&mut db, *desc_off)?;
            let d = PageDesc::parse(&db, self.big);
            if self.decode(&d, *desc_off, u64::MAX, &mut scratch).is_ok() {
                *is_zero = scratch.iter().all(|&b| b == 0);
            }
        }
        // Pass 2: count descriptors pointing at shared zero blocks.
        let mut zero = 0u64;
        if shared.values().any(|v| v.1) {
            self.for_each_desc(|_, d| {
                if let Some((_, true)) = shared.get(&(d.offset, d.size, d.flags)) {
                    zero += 1;
                }
            })?;
        }
        let s = DescStats { zero, summary };
        let _ = self.stats.set(s);
        Ok(s)
    }

    // ---- pages ----

    /// The descriptor of a present pfn, and its file offset.
    pub fn page_desc(&self, pfn: u64) -> Result<(u64, PageDesc)> {
        let bs = u64::from(self.hdr.block_size);
        let ix = self.index()?;
        if !ix.present(pfn, self.pfn_limit) {
            return Err(self.absent_error(ix, pfn.saturating_mul(bs), pfn));
        }
        let idx = ix.rank_of(pfn) - ix.rank_base;
        let off = self.desc_base + idx * DESC_SIZE;
        let mut b = [0u8; DESC_SIZE as usize];
        match self.src.read_exact_at(&mut b, off) {
            Ok(()) => Ok((off, PageDesc::parse(&b, self.big))),
            Err(e) if e.kind == ErrorKind::Truncated && self.is_incomplete() => Err(Error::absent(
                pfn * bs,
                format!("pfn {pfn}: its page descriptor at {off:#x} was never written (incomplete dump)"),
            )),
            Err(e) => Err(e),
        }
    }

    fn absent_error(&self, ix: &PageIndex, addr: u64, pfn: u64) -> Error {
        let why = if pfn >= self.max_mapnr {
            format!("beyond the dump's max_mapnr {} (block size {})", self.max_mapnr, self.hdr.block_size)
        } else if pfn >= self.pfn_limit {
            "beyond the dump's bitmaps".to_string()
        } else if ix.split_range.is_some_and(|(s, e)| pfn < s || pfn >= e) {
            "in another file of this split dump".to_string()
        } else if bit(&ix.bitmap1, pfn) {
            format!("excluded by the producer (dump level {})", self.sub.dump_level)
        } else {
            "not in the producer's memory map".to_string()
        };
        Error::absent(addr, format!("pfn {pfn} is not in the kdump file: {why}"))
    }

    /// Decompress one page into `out` (exactly block_size bytes).
    fn decode(&self, d: &PageDesc, desc_off: u64, pfn: u64, out: &mut [u8]) -> Result<()> {
        let (off, size) = self.check_desc(d, desc_off, pfn)?;
        if d.flags & CODEC_BITS == 0 {
            return self.src.read_exact_at(out, off);
        }
        let mut data = vec![0u8; size];
        self.src.read_exact_at(&mut data, off)?;
        self.decompress(d, desc_off, pfn, &data, out)
    }

    /// Check a descriptor before its data is read; gives the data's file offset and size.
    fn check_desc(&self, d: &PageDesc, desc_off: u64, pfn: u64) -> Result<(u64, usize)> {
        let bs = self.hdr.block_size;
        let pfn_s = if pfn == u64::MAX { String::new() } else { format!("pfn {pfn}: ") };
        if d.size == 0 || d.offset <= 0 {
            if self.is_incomplete() && pfn != u64::MAX {
                return Err(Error::absent(
                    pfn * u64::from(bs),
                    format!("pfn {pfn}: page was never written (incomplete dump; descriptor at {desc_off:#x})"),
                ));
            }
            return Err(Error::format(desc_off, format!("{pfn_s}page descriptor has offset {} and size {}", d.offset, d.size)));
        }
        if d.size > bs {
            return Err(Error::format(desc_off, format!("{pfn_s}compressed size {} exceeds the block size {bs}", d.size)));
        }
        let off = d.offset as u64;
        if off.checked_add(u64::from(d.size)).map_or(true, |e| e > self.src.len()) {
            return Err(Error::truncated(
                desc_off,
                format!(
                    "{pfn_s}the page descriptor at {desc_off:#x} declares page data at {off:#x}+{}, past the end of the file \
                     ({} bytes)",
                    d.size,
                    self.src.len()
                ),
            ));
        }
        if d.flags & CODEC_BITS == 0 && d.size != bs {
            return Err(Error::decompress(
                desc_off,
                format!("{pfn_s}uncompressed page has size {} instead of the block size {bs}", d.size),
            ));
        }
        Ok((off, d.size as usize))
    }

    /// Turn a page's stored bytes (`data`, as [`check_desc`](Self::check_desc) located them)
    /// into the page (`out`, block_size bytes).
    fn decompress(&self, d: &PageDesc, desc_off: u64, pfn: u64, data: &[u8], out: &mut [u8]) -> Result<()> {
        let bs = self.hdr.block_size;
        let pfn_s = if pfn == u64::MAX { String::new() } else { format!("pfn {pfn}: ") };
        let off = d.offset as u64;
        let codec = d.flags & CODEC_BITS;
        if codec == 0 {
            out.copy_from_slice(data);
            return Ok(());
        }
        let fail = |what: &str, detail: String| {
            Error::decompress(desc_off, format!("{pfn_s}{what} page data at {off:#x} ({} bytes): {detail}", d.size))
        };
        match codec {
            DUMP_DH_COMPRESSED_ZLIB => {
                let mut z = flate2::Decompress::new(true);
                match z.decompress(data, out, flate2::FlushDecompress::Finish) {
                    Ok(flate2::Status::StreamEnd) if z.total_out() == u64::from(bs) => Ok(()),
                    Ok(_) => Err(fail("zlib", format!("does not decompress to exactly {bs} bytes"))),
                    Err(e) => Err(fail("zlib", e.to_string())),
                }
            }
            DUMP_DH_COMPRESSED_LZO => decode_lzo(data, out).map_err(|e| match e {
                LzoError::Unsupported => Error::unsupported(
                    Some(desc_off),
                    format!("{pfn_s}LZO page data: this build has no LZO support (cargo feature `lzo`)"),
                ),
                LzoError::Bad(m) => fail("lzo", m),
            }),
            DUMP_DH_COMPRESSED_SNAPPY => {
                match snap::raw::decompress_len(data) {
                    Ok(n) if n == bs as usize => {}
                    Ok(n) => return Err(fail("snappy", format!("declares {n} bytes, not {bs}"))),
                    Err(e) => return Err(fail("snappy", e.to_string())),
                }
                match snap::raw::Decoder::new().decompress(data, out) {
                    Ok(n) if n == bs as usize => Ok(()),
                    Ok(n) => Err(fail("snappy", format!("gave {n} bytes, not {bs}"))),
                    Err(e) => Err(fail("snappy", e.to_string())),
                }
            }
            DUMP_DH_COMPRESSED_ZSTD => match zstd::bulk::decompress_to_buffer(data, out) {
                Ok(n) if n == bs as usize => Ok(()),
                Ok(n) => Err(fail("zstd", format!("gave {n} bytes, not {bs}"))),
                Err(e) => Err(fail("zstd", e.to_string())),
            },
            _ => Err(Error::format(desc_off, format!("{pfn_s}page descriptor flags {:#x} name several codecs", d.flags))),
        }
    }

    /// Read one whole page (block) into `out` (`block_size` bytes).
    pub fn read_page(&self, pfn: u64, out: &mut [u8]) -> Result<()> {
        if out.len() != self.hdr.block_size as usize {
            return Err(Error::new(ErrorKind::Format, None, "read_page buffer must be block_size bytes"));
        }
        let (off, d) = self.page_desc(pfn)?;
        self.decode(&d, off, pfn, out)
    }

    /// Read `[addr, addr+buf.len())` from pages `first..`, each into its slice.
    fn read_piece(&self, pfn: u64, in_page: usize, out: &mut [u8], scratch: &mut Vec<u8>) -> Result<()> {
        let bs = self.hdr.block_size as usize;
        if in_page == 0 && out.len() == bs {
            return self.read_page(pfn, out);
        }
        scratch.resize(bs, 0);
        self.read_page(pfn, scratch)?;
        out.copy_from_slice(&scratch[in_page..in_page + out.len()]);
        Ok(())
    }
}

enum LzoError {
    #[allow(dead_code)]
    Unsupported,
    #[allow(dead_code)]
    Bad(String),
}

#[cfg(feature = "lzo")]
fn decode_lzo(data: &[u8], out: &mut [u8]) -> std::result::Result<(), LzoError> {
    lzo1x::decompress(data, out).map_err(|e| LzoError::Bad(format!("{e:?}")))
}

#[cfg(not(feature = "lzo"))]
fn decode_lzo(_data: &[u8], _out: &mut [u8]) -> std::result::Result<(), LzoError> {
    Err(LzoError::Unsupported)
}

impl PhysMemory for KdumpFile {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let bs = u64::from(self.hdr.block_size);
        let end =
            addr.checked_add(buf.len() as u64).ok_or_else(|| Error::absent(addr, "read range overflows the address space"))?;
        // Every page must be present; name the first absent address.
        let first = addr / bs;
        let last = (end - 1) / bs;
        let ix = self.index()?;
        for pfn in first..=last {
            if !ix.present(pfn, self.pfn_limit) {
                return Err(self.absent_error(ix, (pfn * bs).max(addr), pfn));
            }
        }
        // Split the buffer into per-page pieces.
        let mut pieces: Vec<(u64, usize, &mut [u8])> = Vec::with_capacity((last - first + 1) as usize);
        let mut rest = buf;
        let mut pos = addr;
        while !rest.is_empty() {
            let pfn = pos / bs;
            let in_page = (pos % bs) as usize;
            let n = ((bs as usize) - in_page).min(rest.len());
            let (a, b) = rest.split_at_mut(n);
            pieces.push((pfn, in_page, a));
            rest = b;
            pos += n as u64;
        }
        if pieces.len() < PARALLEL_PAGES {
            let mut scratch = Vec::new();
            for (pfn, in_page, out) in pieces {
                self.read_piece(pfn, in_page, out, &mut scratch)?;
            }
            return Ok(());
        }
        // Many pages: their descriptors are consecutive (every pfn is present), so read them in
        // one go, then the pages' data in a few large reads, then decompress in parallel.
        let idx0 = ix.rank_of(first) - ix.rank_base;
        let mut table = vec![0u8; pieces.len() * DESC_SIZE as usize];
        let table_off = self.desc_base + idx0 * DESC_SIZE;
        if self.src.read_exact_at(&mut table, table_off).is_err() {
            // A cut table (incomplete dump): the per-page path names each missing page.
            return pieces
                .into_par_iter()
                .map_init(Vec::new, |scratch, (pfn, in_page, out)| self.read_piece(pfn, in_page, out, scratch))
                .collect();
        }
        let descs: Vec<(u64, PageDesc)> = table
            .chunks_exact(DESC_SIZE as usize)
            .enumerate()
            .map(|(i, b)| (table_off + i as u64 * DESC_SIZE, PageDesc::parse(b, self.big)))
            .collect();
        let runs = self.read_runs(&descs, pieces.iter().map(|p| p.0))?;
        // Pages that share their stored data (QEMU and makedumpfile point every zero page at one
        // block) are decompressed once per call, then copied.
        let mut uses: std::collections::HashMap<(i64, u32, u32), u32> = std::collections::HashMap::new();
        for (_, d) in &descs {
            *uses.entry((d.offset, d.size, d.flags)).or_default() += 1;
        }
        let shared: std::collections::HashMap<(i64, u32, u32), Vec<u8>> = descs
            .iter()
            .zip(pieces.iter().map(|p| p.0))
            .filter(|((_, d), _)| uses[&(d.offset, d.size, d.flags)] > 1)
            .map(|((desc_off, d), pfn)| ((d.offset, d.size, d.flags), (*desc_off, *d, pfn)))
            .collect::<std::collections::HashMap<_, _>>()
            .into_iter()
            .filter_map(|(key, (desc_off, d, pfn))| {
                let (off, size) = self.check_desc(&d, desc_off, pfn).ok()?;
                let mut page = vec![0u8; bs as usize];
                self.decompress(&d, desc_off, pfn, runs.slice(off, size), &mut page).ok()?;
                Some((key, page))
            })
            .collect();
        let results: Vec<Result<()>> = pieces
            .into_par_iter()
            .zip(descs.par_iter())
            .map_init(Vec::new, |scratch: &mut Vec<u8>, ((pfn, in_page, out), (desc_off, d))| {
                if let Some(page) = shared.get(&(d.offset, d.size, d.flags)) {
                    out.copy_from_slice(&page[in_page..in_page + out.len()]);
                    return Ok(());
                }
                let (off, size) = self.check_desc(d, *desc_off, pfn)?;
                let data = runs.slice(off, size);
                if in_page == 0 && out.len() == bs as usize {
                    return self.decompress(d, *desc_off, pfn, data, out);
                }
                scratch.resize(bs as usize, 0);
                self.decompress(d, *desc_off, pfn, data, scratch)?;
                out.copy_from_slice(&scratch[in_page..in_page + out.len()]);
                Ok(())
            })
            .collect();
        results.into_iter().collect()
    }

    fn ranges(&self) -> Result<Vec<PhysRange>> {
        let ix = self.index()?;
        let bs = u64::from(self.hdr.block_size);
        let (lo, hi) = ix.split_range.unwrap_or((0, self.pfn_limit));
        let mut out = Vec::new();
        let mut run: Option<u64> = None;
        let mut pfn = lo;
        while pfn < hi {
            let w = ix.bitmap2[(pfn / 64) as usize];
            let word_start = pfn % 64 == 0 && pfn + 64 <= hi;
            if word_start && (w == 0 || w == u64::MAX) {
                match (w == u64::MAX, run) {
                    (true, None) => run = Some(pfn),
                    (false, Some(s)) => {
                        out.push(PhysRange { start: s * bs, end: pfn * bs });
                        run = None;
                    }
                    _ => {}
                }
                pfn += 64;
                continue;
            }
            match (w >> (pfn % 64) & 1 == 1, run) {
                (true, None) => run = Some(pfn),
                (false, Some(s)) => {
                    out.push(PhysRange { start: s * bs, end: pfn * bs });
                    run = None;
                }
                _ => {}
            }
            pfn += 1;
        }
        if let Some(s) = run {
            out.push(PhysRange { start: s * bs, end: hi * bs });
        }
        Ok(normalize(out))
    }
}

/// Page data read in a few large reads: `(file offset, bytes)` runs, sorted by offset.
struct Runs(Vec<(u64, Vec<u8>)>);

impl Runs {
    /// The `size` bytes at file offset `off` (which a run holds: see `read_runs`).
    fn slice(&self, off: u64, size: usize) -> &[u8] {
        let i = self.0.partition_point(|(o, _)| *o <= off) - 1;
        let (o, b) = &self.0[i];
        let at = (off - o) as usize;
        &b[at..at + size]
    }
}

/// Runs are merged across gaps up to this size, and never grow past `MAX_RUN` bytes.
const RUN_GAP: u64 = 64 * 1024;
const MAX_RUN: u64 = 8 << 20;

impl KdumpFile {
    /// Read the data of every page whose descriptor checks out, merged into large reads.
    /// Pages whose descriptor is bad are skipped here; their error comes when they are decoded.
    fn read_runs(&self, descs: &[(u64, PageDesc)], pfns: impl Iterator<Item = u64>) -> Result<Runs> {
        let mut spans: Vec<(u64, u64)> = descs
            .iter()
            .zip(pfns)
            .filter_map(|((desc_off, d), pfn)| self.check_desc(d, *desc_off, pfn).ok())
            .map(|(off, size)| (off, off + size as u64))
            .collect();
        spans.sort_unstable();
        spans.dedup();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 + RUN_GAP && e.max(last.1) - last.0 <= MAX_RUN => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut runs = Vec::with_capacity(merged.len());
        for (s, e) in merged {
            let mut b = vec![0u8; (e - s) as usize];
            self.src.read_exact_at(&mut b, s)?;
            runs.push((s, b));
        }
        Ok(Runs(runs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian 64-bit v6 kdump with `block_size` 512, raw pages, bitmap 2 = `present`.
    fn synth(max_mapnr: u64, present: &[u64]) -> Vec<u8> {
        let bs = 512usize;
        let half_blocks = (max_mapnr as usize).div_ceil(8).div_ceil(bs).max(1);
        let mut v = vec![0u8; bs * 2];
        v[..8].copy_from_slice(SIGNATURE);
        v[8..12].copy_from_slice(&6i32.to_le_bytes());
        v[12 + 4 * 65..12 + 4 * 65 + 6].copy_from_slice(b"x86_64");
        for (i, x) in [0u32, bs as u32, 1, 2 * half_blocks as u32, max_mapnr as u32, 0, 0, 0, 0, 1].iter().enumerate() {
            v[424 + 4 * i..428 + 4 * i].copy_from_slice(&x.to_le_bytes());
        }
        v[bs + 96..bs + 104].copy_from_slice(&max_mapnr.to_le_bytes());
        let mut bm1 = vec![0u8; half_blocks * bs];
        let mut bm2 = vec![0u8; half_blocks * bs];
        for p in 0..max_mapnr {
            bm1[(p / 8) as usize] |= 1 << (p % 8);
        }
        for &p in present {
            bm2[(p / 8) as usize] |= 1 << (p % 8);
        }
        v.extend_from_slice(&bm1);
        v.extend_from_slice(&bm2);
        let data0 = v.len() + 24 * present.len();
        for (i, &p) in present.iter().enumerate() {
            let _ = p;
            v.extend_from_slice(&((data0 + i * bs) as i64).to_le_bytes());
            v.extend_from_slice(&(bs as u32).to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&0u64.to_le_bytes());
        }
        for &p in present {
            let mut page = vec![0u8; bs];
            page[..8].copy_from_slice(&p.to_le_bytes());
            v.extend_from_slice(&page);
        }
        v
    }

    #[test]
    fn rank_index_and_reads_match_a_naive_count() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut present = Vec::new();
        for p in 0..10_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Runs of all-set and all-clear words as well as mixed ones.
            let set = match (p / 1000) % 3 {
                0 => seed % 3 == 0,
                1 => true,
                _ => false,
            };
            if set {
                present.push(p);
            }
        }
        let kd = KdumpFile::open(Arc::new(synth(10_000, &present))).unwrap();
        assert_eq!(kd.descriptor_count().unwrap(), present.len() as u64);
        for (i, &p) in present.iter().enumerate() {
            assert_eq!(kd.index().unwrap().rank_of(p), i as u64);
            let mut b = [0u8; 8];
            kd.read_phys(p * 512, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), p);
        }
        assert_eq!(kd.index().unwrap().rank_of(1 << 40), present.len() as u64);
        let mut naive = Vec::new();
        for &p in &present {
            naive.push(PhysRange { start: p * 512, end: (p + 1) * 512 });
        }
        assert_eq!(kd.ranges().unwrap(), normalize(naive));
        let pc = kd.page_counts().unwrap();
        assert_eq!((pc.valid, pc.dumped, pc.excluded), (10_000, present.len() as u64, 10_000 - present.len() as u64));
        assert_eq!(kd.compression_summary().unwrap().raw, present.len() as u64);
    }

    #[test]
    fn max_mapnr_not_a_multiple_of_64_and_empty_dumps() {
        let kd = KdumpFile::open(Arc::new(synth(70, &[0, 63, 64, 69]))).unwrap();
        assert_eq!(kd.ranges().unwrap().len(), 3);
        assert!(!kd.pfn_present(70).unwrap() && !kd.pfn_present(u64::MAX).unwrap());
        let mut b = [0u8; 1];
        assert_eq!(kd.read_phys(70 * 512, &mut b).unwrap_err().kind, ErrorKind::Absent);
        let kd = KdumpFile::open(Arc::new(synth(70, &[]))).unwrap();
        assert!(kd.ranges().unwrap().is_empty());
        assert_eq!(kd.read_phys(0, &mut b).unwrap_err().address(), Some(0));
        assert_eq!(kd.page_counts().unwrap().zero, 0);
    }

    #[test]
    fn big_parallel_read_reports_the_first_failure() {
        let present: Vec<u64> = (0..64).collect();
        let mut v = synth(64, &present);
        let kd = KdumpFile::open(Arc::new(v.clone())).unwrap();
        // Break the descriptors of pfns 40 and 20 (size > block size).
        for p in [40u64, 20] {
            let o = kd.descriptors_offset() as usize + 24 * p as usize + 8;
            v[o..o + 4].copy_from_slice(&9999u32.to_le_bytes());
        }
        let kd = KdumpFile::open(Arc::new(v)).unwrap();
        let mut b = vec![0u8; 64 * 512];
        let e = kd.read_phys(0, &mut b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format);
        assert_eq!(e.offset(), Some(kd.descriptors_offset() + 24 * 20));
    }

    #[test]
    fn bitmaps_in_flattened_holes_are_refused_not_allocated() {
        // Header and sub-header in one record, bitmap_blocks claiming 1 GiB, and an empty record
        // at 1 TiB: the reassembled view is long enough, but the bitmaps are holes.
        let mut head = synth(64, &[0])[..1024].to_vec();
        head[436..440].copy_from_slice(&((1u32 << 30) / 512).to_le_bytes());
        let flat = crate::flattened::flatten(&[(0, &head), (1 << 40, &[])], true);
        let f = crate::flattened::Flattened::open(Arc::new(flat)).unwrap();
        let e = KdumpFile::open(Arc::new(f)).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Limit, Some(436)), "{e}");
        // The same bitmaps really stored open fine.
        let v = synth(64, &[0]);
        let flat = crate::flattened::flatten(&[(0, &v)], true);
        let f = crate::flattened::Flattened::open(Arc::new(flat)).unwrap();
        assert!(KdumpFile::open(Arc::new(f)).is_ok());
    }
}
