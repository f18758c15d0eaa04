//! LiME images (Linux Memory Extractor, 504ensicsLabs; also written by AVML without compression).
//!
//! The file is a sequence of ranges, each a 32-byte little-endian header followed by the
//! range's bytes:
//!
//! | offset | field | value |
//! |---|---|---|
//! | 0 | `magic` u32 | `0x4C694D45` ("EMiL" on disk) |
//! | 4 | `version` u32 | 1 |
//! | 8 | `s_addr` u64 | first physical address |
//! | 16 | `e_addr` u64 | last physical address, INCLUSIVE |
//! | 24 | `reserved` [u8; 8] | ignored |
//! | 32 | data | `e_addr - s_addr + 1` bytes |
//!
//! At open we read every header (one 32-byte `pread` per range, at most [`MAX_RANGES`]), never
//! the data. Rules, each violation an error whose offset is the file offset of the offending
//! header (the message names the field):
//! bad magic → `Format` (an AVML block header, magic `AVML`, → `Unsupported`); version other
//! than 1 → `Unsupported`; `e_addr < s_addr` → `Format`; `e_addr = 2^64 - 1` (the exclusive end
//! wraps) → `Format`; data running past the end of the file → `Truncated`; a header cut short →
//! `Truncated`; more than [`MAX_RANGES`] ranges → `Limit`. Ranges may come in any order (LiME
//! writes them ascending) but must not overlap: an overlap is a `Format` error at the header of
//! the later range in file order, since there is no right answer for which copy to believe.
//! Memory between ranges is absent.

use crate::format::{DumpFormat, Format, Identity};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::extent::{Beyond, Extent, ExtentImage, ExtentMap, Labels};
use crate::source::ReadAt;

/// `magic` of a LiME range header (little-endian u32; the bytes "EMiL").
pub const LIME_MAGIC: u32 = 0x4C69_4D45;
/// `magic` of an AVML block header, which has the layout of a LiME range header (little-endian
/// u32; the bytes "AVML"). Defined here, with the layout, so that [`crate::avml`] depends on
/// this module and not the other way round.
pub const AVML_MAGIC: u32 = 0x4C4D_5641;
/// Size of a range header.
pub const HEADER_SIZE: u64 = 32;
/// Most ranges we index (real images hold one per "System RAM" region, a few dozen at most).
pub const MAX_RANGES: usize = 1 << 16;

/// True when `head` starts with a LiME range header magic. (AVML's blocks share the header
/// layout but not the magic: [`crate::avml::is_avml`] tests for theirs.)
pub fn is_lime(head: &[u8]) -> bool {
    head.get(..4).is_some_and(|m| u32_at(m, 0) == LIME_MAGIC)
}

/// The little-endian u32 at `b[at..at + 4]` (LiME's and AVML's headers).
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The little-endian u64 at `b[at..at + 8]`.
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// One indexed range: physical `[start, end)` whose bytes start at `data_offset` in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimeRange {
    pub start: u64,
    pub end: u64,
    pub data_offset: u64,
    /// File offset of the range's header.
    pub header_offset: u64,
}

/// Error words of the LiME map.
const LABELS: Labels = Labels {
    gap: "no LiME range holds this address",
    unstored: "no LiME range holds this address",
    data: "LiME range data for physical",
};

/// An opened LiME image: the extent map reads go through, and the index of its ranges.
pub type LimeImage = ExtentImage<LimeIndex>;

/// The ranges of a LiME image, sorted by address.
pub struct LimeIndex {
    ranges: Vec<LimeRange>,
}

impl std::fmt::Debug for LimeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimeIndex").field("ranges", &self.ranges.len()).finish()
    }
}

/// Read and check the range header at `off` (`off < file_len`): the range it declares, whose
/// data ends inside the file.
fn parse_range_header(src: &dyn ReadAt, off: u64, file_len: u64) -> Result<LimeRange> {
    if file_len - off < HEADER_SIZE {
        return Err(Error::truncated(
            off,
            format!(
                "LiME range header at {off:#x} is cut short: {} of {HEADER_SIZE} bytes before the end of the file",
                file_len - off
            ),
        ));
    }
    let mut h = [0u8; HEADER_SIZE as usize];
    src.read_exact_at(&mut h, off)?;
    let (magic, version, s_addr, e_addr) = (u32_at(&h, 0), u32_at(&h, 4), u64_at(&h, 8), u64_at(&h, 16));
    if magic == AVML_MAGIC {
        // A file that starts so is detected as AVML; this is an AVML block inside a LiME file,
        // or a LiME reading asked for on an AVML file.
        return Err(Error::unsupported(
            Some(off),
            format!(
                "LiME range header at {off:#x}: magic \"AVML\" is an AVML block header, which a LiME image \
                 does not hold (open an AVML file with format=\"avml\")"
            ),
        ));
    }
    if magic != LIME_MAGIC {
        return Err(Error::format(
            off,
            format!("LiME range header at {off:#x}: bad magic {magic:#010x} (expected {LIME_MAGIC:#010x})"),
        ));
    }
    if version != 1 {
        return Err(Error::unsupported(
            Some(off),
            format!("LiME range header at {off:#x}: version {version} (only 1 is defined)"),
        ));
    }
    if e_addr < s_addr {
        return Err(Error::format(off, format!("LiME range header at {off:#x}: end {e_addr:#x} is below start {s_addr:#x}")));
    }
    let Some(end) = e_addr.checked_add(1) else {
        return Err(Error::format(off, format!("LiME range header at {off:#x}: inclusive end {e_addr:#x} wraps past 2^64")));
    };
    let size = end - s_addr;
    let data_offset = off + HEADER_SIZE;
    if data_offset.checked_add(size).is_none_or(|e| e > file_len) {
        return Err(Error::truncated(
            off,
            format!(
                "LiME range header at {off:#x}: {size} bytes of data for {s_addr:#x}..={e_addr:#x} run past the end of the file ({file_len} bytes)"
            ),
        ));
    }
    Ok(LimeRange { start: s_addr, end, data_offset, header_offset: off })
}

/// `ranges` sorted by address; an overlap is an error at the later header in file order.
fn check_no_overlap(ranges: &[LimeRange]) -> Result<()> {
    for w in ranges.windows(2) {
        if w[1].start < w[0].end {
            let later = if w[0].header_offset > w[1].header_offset { w[0] } else { w[1] };
            let earlier = if later == w[0] { w[1] } else { w[0] };
            return Err(Error::format(
                later.header_offset,
                format!(
                    "LiME range {:#x}..{:#x} (header at {:#x}) overlaps range {:#x}..{:#x} (header at {:#x})",
                    later.start, later.end, later.header_offset, earlier.start, earlier.end, earlier.header_offset
                ),
            ));
        }
    }
    Ok(())
}

impl ExtentImage<LimeIndex> {
    /// Index the range headers of a LiME file.
    pub fn open(src: Arc<dyn ReadAt>) -> Result<LimeImage> {
        let file_len = src.size();
        if file_len == 0 {
            return Err(Error::truncated(0, "empty file: a LiME image starts with a 32-byte range header"));
        }
        let mut ranges: Vec<LimeRange> = Vec::new();
        let mut off = 0u64;
        while off < file_len {
            if ranges.len() >= MAX_RANGES {
                return Err(Error::limit(off, format!("LiME image has more than {MAX_RANGES} ranges")));
            }
            let r = parse_range_header(&*src, off, file_len)?;
            ranges.push(r);
            off = r.data_offset + (r.end - r.start);
        }
        ranges.sort_unstable_by_key(|r| r.start);
        check_no_overlap(&ranges)?;
        // Checked by parse_range_header: end <= u64::MAX and data_offset + size <= file_len.
        let extents =
            ranges.iter().filter_map(|r| Extent::new(r.start, r.end - r.start, r.data_offset, r.end - r.start)).collect();
        let (map, _) = ExtentMap::build(extents, Beyond::Absent, LABELS);
        Ok(ExtentImage::from_map(src, map, LimeIndex { ranges }))
    }

    /// The indexed ranges, sorted by physical address.
    pub fn lime_ranges(&self) -> &[LimeRange] {
        &self.info().ranges
    }
}

impl DumpFormat for LimeImage {
    fn format(&self) -> Format {
        Format::Lime
    }
    fn identity(&self) -> Option<Identity> {
        None
    }
    fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        ExtentImage::file_offset(self, addr, len)
    }
    fn source(&self) -> &Arc<dyn ReadAt> {
        ExtentImage::source(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::phys::{PhysMemory, PhysRange};

    /// A LiME header for `[s, e]` (inclusive).
    pub fn header(magic: u32, version: u32, s: u64, e: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(32);
        v.extend_from_slice(&magic.to_le_bytes());
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&s.to_le_bytes());
        v.extend_from_slice(&e.to_le_bytes());
        v.extend_from_slice(&[0u8; 8]);
        v
    }

    /// A LiME image of `(start, data)` ranges in the given order.
    pub fn build(ranges: &[(u64, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (s, d) in ranges {
            v.extend(header(LIME_MAGIC, 1, *s, s + d.len() as u64 - 1));
            v.extend_from_slice(d);
        }
        v
    }

    fn open(v: Vec<u8>) -> Result<LimeImage> {
        LimeImage::open(Arc::new(v))
    }

    #[test]
    fn reads_ranges_and_reports_gaps_absent() {
        let a = [1u8; 16];
        let b = [2u8; 8];
        let img = open(build(&[(0x1000, &a), (0x2000, &b)])).unwrap();
        assert_eq!(
            img.ranges().unwrap(),
            vec![PhysRange { start: 0x1000, end: 0x1010 }, PhysRange { start: 0x2000, end: 0x2008 }]
        );
        let mut buf = [0u8; 4];
        img.read_phys(0x100c, &mut buf).unwrap();
        assert_eq!(buf, [1; 4]);
        img.read_phys(0x2004, &mut buf).unwrap();
        assert_eq!(buf, [2; 4]);
        let e = img.read_phys(0x100e, &mut buf).unwrap_err();
        assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(0x1010)));
        assert_eq!(img.read_phys(0x0, &mut buf).unwrap_err().address(), Some(0));
        assert_eq!(img.file_offset(0x2000, 8), Some(32 + 16 + 32));
        assert_eq!(img.file_offset(0x2000, 9), None);
    }

    #[test]
    fn adjacent_ranges_read_across_and_merge() {
        let img = open(build(&[(0x10, &[7u8; 16]), (0x0, &[6u8; 16])])).unwrap();
        assert_eq!(img.ranges().unwrap(), vec![PhysRange { start: 0, end: 0x20 }]);
        let mut buf = [0u8; 4];
        img.read_phys(0xe, &mut buf).unwrap();
        assert_eq!(buf, [6, 6, 7, 7]);
    }

    #[test]
    fn hostile_headers_are_typed_errors_at_the_header() {
        let good = build(&[(0, &[0u8; 16])]);
        let with = |h: Vec<u8>, data: usize| {
            let mut v = good.clone();
            v.extend(h);
            v.extend(vec![0u8; data]);
            open(v).unwrap_err()
        };
        let e = with(header(0xdeadbeef, 1, 0x100, 0x10f), 16);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(48)));
        let e = with(header(LIME_MAGIC, 2, 0x100, 0x10f), 16);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Unsupported, Some(48)));
        let e = with(header(LIME_MAGIC, 1, 0x200, 0x1ff), 0);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(48)));
        let e = with(header(LIME_MAGIC, 1, 0, u64::MAX), 0);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(48)));
        let e = with(header(LIME_MAGIC, 1, 0x100, 0x100 + (1 << 40)), 16);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(48)));
        let mut top = good.clone();
        top.extend(header(LIME_MAGIC, 1, u64::MAX - 1, u64::MAX - 1));
        top.push(9);
        let img = open(top).unwrap();
        let mut b = [0u8; 1];
        img.read_phys(u64::MAX - 1, &mut b).unwrap();
        assert_eq!(b, [9], "the last byte below 2^64 - 1 is addressable");
        let e = with(vec![0x45, 0x4d, 0x69], 0);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(48)));
        let e = with(header(AVML_MAGIC, 2, 0x100, 0x10f), 16);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Unsupported, Some(48)));
        let e = with(header(LIME_MAGIC, 1, 0x8, 0x17), 16);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(48)), "overlap names the later header");
        assert_eq!(open(Vec::new()).unwrap_err().kind, ErrorKind::Truncated);
    }

    #[test]
    fn range_count_is_capped() {
        let mut v = Vec::new();
        for i in 0..=MAX_RANGES as u64 {
            v.extend(header(LIME_MAGIC, 1, i * 2, i * 2));
            v.push(0);
        }
        let e = open(v).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Limit, Some(MAX_RANGES as u64 * 33)));
    }

    #[test]
    fn an_avml_file_asked_for_as_lime_is_a_clear_error() {
        use crate::format::OpenOptions;
        let avml = crate::avml::tests::build(&[(0x1000, &[7u8; 64])]);
        // Through the dump: the signature check names what the file is.
        let o = OpenOptions { format: Some(Format::Lime), ..OpenOptions::default() };
        let e = crate::dump::Dump::from_source(Arc::new(avml.clone()), Arc::from("x.avml"), o).err().unwrap();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(0)));
        assert!(e.message.contains("format \"lime\" was asked for") && e.message.contains("avml"), "{}", e.message);
        // The reader itself, on the same bytes: the header is named as AVML's.
        let e = open(avml).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Unsupported, Some(0)));
        assert!(e.message.contains("AVML block header") && e.message.contains("format=\"avml\""), "{}", e.message);
    }

    #[test]
    fn detects_magic() {
        assert!(is_lime(b"EMiL\x01\0\0\0"));
        assert!(!is_lime(b"AVML"), "the AVML magic is AVML's, not LiME's");
        assert!(!is_lime(b"\x7fELF"));
        assert!(!is_lime(b"EMi"));
    }
}
