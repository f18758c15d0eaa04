//! Block 0 (`disk_dump_header`) and the sub-header: layouts and field reads.

use super::*;

#[derive(Clone, Copy)]
pub(super) struct Rd<'a> {
    pub(super) b: &'a [u8],
    pub(super) big: bool,
}

impl Rd<'_> {
    pub(super) fn u32(&self, o: usize) -> u32 {
        let a: [u8; 4] = self.b[o..o + 4].try_into().unwrap();
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }
    pub(super) fn u64(&self, o: usize) -> u64 {
        let a: [u8; 8] = self.b[o..o + 8].try_into().unwrap();
        if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }
    pub(super) fn i32(&self, o: usize) -> i32 {
        self.u32(o) as i32
    }
    /// An unsigned long of the producer's width.
    pub(super) fn ulong(&self, o: usize, wide: bool) -> u64 {
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
    pub(super) fn offsets(self) -> ([usize; 14], usize) {
        match self {
            SubLayout::L64 => ([0, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96], 104),
            SubLayout::Packed32 => ([0, 4, 8, 12, 16, 20, 28, 32, 40, 44, 52, 56, 64, 72], 80),
            SubLayout::Aligned32 => ([0, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88], 96),
        }
    }
    pub(super) fn wide(self) -> bool {
        self == SubLayout::L64
    }
}

/// The 32-bit fields of block 0 after utsname and timestamp.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HdrFields {
    pub(super) status: u32,
    pub(super) block_size: u32,
    pub(super) sub_hdr_size: u32,
    pub(super) bitmap_blocks: u32,
    pub(super) max_mapnr: u32,
    pub(super) total_ram_blocks: u32,
    pub(super) device_blocks: u32,
    pub(super) written_blocks: u32,
    pub(super) current_cpu: u32,
    pub(super) nr_cpus: i32,
    pub(super) tv_sec: i64,
    pub(super) tv_usec: i64,
    /// File offset of `status` (the other fields follow at +4 each).
    pub(super) base: usize,
}

impl HdrFields {
    pub(super) fn read(r: Rd, is32: bool) -> HdrFields {
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
    pub(super) fn validate(&self, file_len: u64) -> Result<()> {
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
    pub(super) fn read(r: Rd, layout: SubLayout, version: i32) -> SubHeader {
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
    pub(super) fn locations(&self, layout: SubLayout) -> [(&'static str, Option<u64>, Option<u64>, usize); 3] {
        let (o, _) = layout.offsets();
        [
            ("VMCOREINFO", self.offset_vmcoreinfo, self.size_vmcoreinfo, o[5]),
            ("notes", self.offset_note, self.note_size, o[7]),
            ("eraseinfo", self.offset_eraseinfo, self.size_eraseinfo, o[9]),
        ]
    }

    /// Do all its locations lie in `[min, file_len)` (or are 0/0)?
    pub(super) fn locations_plausible(&self, layout: SubLayout, min: u64, file_len: u64) -> bool {
        self.locations(layout).iter().all(|&(_, off, size, _)| match (off, size) {
            (Some(0), Some(0)) | (None, _) | (_, None) => true,
            (Some(o), Some(s)) => o >= min && o.checked_add(s).is_some_and(|e| e <= file_len),
        })
    }
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
    pub(super) fn parse(b: &[u8], big: bool) -> PageDesc {
        let r = Rd { b, big };
        PageDesc { offset: r.u64(0) as i64, size: r.u32(8), flags: r.u32(12), page_flags: r.u64(16) }
    }
}
