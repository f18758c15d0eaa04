//! makedumpfile's flattened format (`makedumpfile -F`, QEMU `kdump-*` before 8.2): a reassembled
//! view of the file without copying it.
//!
//! Layout: a 4096-byte header whose first 16 bytes are `"makedumpfile"` (NUL-padded), followed by
//! big-endian `i64 type = 1` and `i64 version = 1`; then records `{be64 offset; be64 size; data}`,
//! ended by a record with `offset = size = -1`. `makedumpfile -R` reassembles the file by writing
//! each record's data at its offset, in file order.
//!
//! [`Flattened`] indexes every record in one pass at open (record headers are read through a small
//! window buffer; the data is never copied) and answers reads of the *reassembled* file through
//! an [`ExtentMap`] (logical offset -> the record's data in the file; holes are the unstored,
//! zero-read tail of the extent before them). The semantics are exactly those of `-R`:
//!
//! * **Overlap:** a later record overwrites the bytes of earlier ones it covers. The map is built
//!   at index time (earlier intervals are trimmed or split when a later record covers them), so a
//!   read never has to consider more than one source for a byte.
//! * **Holes:** bytes below [`Flattened::logical_len`] (the highest end of any record) that no
//!   record wrote are read as zeros, because that is what `-R` leaves there (it seeks past them;
//!   real files have such holes, e.g. the unused tail of the kdump header block). The number of
//!   such bytes is [`Flattened::hole_bytes`]. Reads at or beyond `logical_len` are a `Truncated`
//!   error: those bytes do not exist in the reassembled file.
//! * **Missing end marker:** if the file ends exactly at a record boundary without the
//!   `-1/-1` record (a writer that was stopped), the records seen are indexed and
//!   [`Flattened::has_end_marker`] is `false`. A file that ends inside a record header or inside a
//!   record's data is a `Truncated` error at the offset of that record's header. Bytes after the
//!   end marker are ignored.
//! * **Hostile records:** a negative offset, a negative size (other than the `-1/-1` marker),
//!   or an `offset + size` that overflows `i64` is a `Format` error at the record header's file
//!   offset. More than [`MAX_RECORDS`] records is a `Limit` error (the index costs 32 bytes per
//!   piece and at most three intervals per record while it is built).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::extent::{Beyond, Extent, ExtentMap, Labels};
use crate::source::ReadAt;

/// Size of the flattened-format file header.
pub const HEADER_SIZE: u64 = 4096;
/// Size of one record header (`be64 offset; be64 size`).
pub const RECORD_HEADER_SIZE: u64 = 16;
/// The most records we index (about 2 GiB of index). Real files have one record per
/// write of makedumpfile's buffers: a few thousand for a 40 MB dump.
pub const MAX_RECORDS: u64 = 1 << 26;

const SIGNATURE: &[u8] = b"makedumpfile";
const WINDOW: usize = 256 * 1024;

/// Is this the start of a flattened-format file? Needs the first 32 bytes.
pub fn is_flattened(prefix: &[u8]) -> bool {
    if prefix.len() < 32 || &prefix[..SIGNATURE.len()] != SIGNATURE {
        return false;
    }
    if prefix[SIGNATURE.len()..16].iter().any(|&b| b != 0) {
        return false;
    }
    let ty = i64::from_be_bytes(prefix[16..24].try_into().unwrap());
    let ver = i64::from_be_bytes(prefix[24..32].try_into().unwrap());
    ty == 1 && ver == 1
}

/// One piece of the reassembled file: logical `[start, end)` comes from file offset `src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: u64,
    end: u64,
    src: u64,
}

/// Error words of the reassembled view (offsets in it, not physical addresses).
const LABELS: Labels = Labels {
    gap: "no flattened record covers this offset of the reassembled file",
    unstored: "no flattened record covers this offset of the reassembled file",
    data: "flattened record data for reassembled offset",
};

/// A flattened-format file seen as the file `makedumpfile -R` would write.
pub struct Flattened {
    inner: Arc<dyn ReadAt>,
    /// `[0, logical_len)`: each piece a record wrote, followed by the hole up to the next piece.
    map: ExtentMap,
    logical_len: u64,
    records: u64,
    end_marker: bool,
    hole_bytes: u64,
}

impl std::fmt::Debug for Flattened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flattened")
            .field("records", &self.records)
            .field("segments", &self.map.extents().len())
            .field("logical_len", &self.logical_len)
            .field("end_marker", &self.end_marker)
            .field("hole_bytes", &self.hole_bytes)
            .finish()
    }
}

/// Reads record headers through a window so that a file of small records costs few preads.
struct Window<'a> {
    src: &'a dyn ReadAt,
    base: u64,
    buf: Vec<u8>,
}

/// After a record at least this long, the next header is read with a small read instead of a
/// full window: copying a long record's data through the window costs more than one more read
/// (here a pread costs about as much as copying 25 KiB). makedumpfile -F writes 64 KiB
/// page-data records between small ones; QEMU writes 16 KiB records. Measured on 8 GiB guests'
/// files, open + identify: makedumpfile's 3.3 ms -> 0.38 ms, QEMU's 12.4 ms -> 6.6 ms.
const LONG_SPAN: u64 = 8 * 1024;
const SMALL_READ: u64 = 4096;

impl Window<'_> {
    /// The 16 bytes at `off`, or fewer if the file ends first. After a long record (`after_long`)
    /// a refill reads [`SMALL_READ`] bytes, else a whole window.
    fn header_at(&mut self, off: u64, after_long: bool) -> Result<&[u8]> {
        let len = self.src.size();
        let in_window = off >= self.base && off + RECORD_HEADER_SIZE <= self.base + self.buf.len() as u64;
        if !in_window {
            let cap = if after_long { SMALL_READ } else { WINDOW as u64 };
            let want = (len.saturating_sub(off)).min(cap) as usize;
            self.buf.resize(want, 0);
            self.src.read_exact_at(&mut self.buf, off)?;
            self.base = off;
        }
        let start = (off - self.base) as usize;
        let end = (start + RECORD_HEADER_SIZE as usize).min(self.buf.len());
        Ok(&self.buf[start..end])
    }
}

/// Insert `new` into the interval map, trimming or splitting what it covers.
fn insert(map: &mut BTreeMap<u64, (u64, u64)>, new: Segment) {
    if new.start == new.end {
        return;
    }
    // Fast path: entirely past everything so far (records mostly come in increasing order).
    if let Some((_, &(last_end, _))) = map.iter().next_back() {
        if new.start >= last_end {
            map.insert(new.start, (new.end, new.src));
            return;
        }
    }
    // A segment starting before new.start may overlap it: trim it, keep its tail past new.end.
    if let Some((&s, &(e, src))) = map.range(..new.start).next_back() {
        if e > new.start {
            map.insert(s, (new.start, src));
            if e > new.end {
                map.insert(new.end, (e, src + (new.end - s)));
            }
        }
    }
    // Segments starting inside [new.start, new.end): remove, keeping any tail past new.end.
    let inside: Vec<u64> = map.range(new.start..new.end).map(|(&s, _)| s).collect();
    for s in inside {
        let (e, src) = map.remove(&s).unwrap();
        if e > new.end {
            map.insert(new.end, (e, src + (new.end - s)));
        }
    }
    map.insert(new.start, (new.end, new.src));
}

/// What the flattened layer found.
#[derive(Debug, Clone, Copy)]
pub struct FlattenedInfo {
    pub records: u64,
    pub logical_len: u64,
    pub has_end_marker: bool,
}

impl Flattened {
    /// The facts the flattened layer found (records, reassembled size, end marker).
    pub fn info(&self) -> FlattenedInfo {
        FlattenedInfo { records: self.record_count(), logical_len: self.logical_len(), has_end_marker: self.has_end_marker() }
    }

    /// Index every record of a flattened file (one pass; see the module docs for the rules).
    pub fn open(inner: Arc<dyn ReadAt>) -> Result<Flattened> {
        let len = inner.size();
        let head = inner.read_prefix(0, 32)?;
        if head.len() < 32 {
            return Err(Error::truncated(0, "flattened header: file shorter than 32 bytes"));
        }
        if !is_flattened(&head) {
            return Err(Error::format(0, "not a makedumpfile flattened file (signature, type 1, version 1)"));
        }
        if len < HEADER_SIZE {
            return Err(Error::truncated(len, format!("flattened header is {HEADER_SIZE} bytes; file has {len}")));
        }
        let mut map: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut win = Window { src: &*inner, base: 0, buf: Vec::new() };
        let mut pos = HEADER_SIZE;
        let mut records = 0u64;
        let mut end_marker = false;
        let mut logical_len = 0u64;
        let mut last_span = 0u64;
        while pos < len {
            let h = win.header_at(pos, last_span >= LONG_SPAN)?;
            if h.len() < RECORD_HEADER_SIZE as usize {
                return Err(Error::truncated(
                    pos,
                    format!("flattened record header at {pos:#x}: file ends after {} of 16 bytes", h.len()),
                ));
            }
            let off = i64::from_be_bytes(h[0..8].try_into().unwrap());
            let size = i64::from_be_bytes(h[8..16].try_into().unwrap());
            if off == -1 && size == -1 {
                end_marker = true;
                break;
            }
            if off < 0 {
                return Err(Error::format(pos, format!("flattened record at {pos:#x}: negative offset {off}")));
            }
            if size < 0 {
                return Err(Error::format(pos, format!("flattened record at {pos:#x}: negative size {size}")));
            }
            let end = off.checked_add(size).ok_or_else(|| {
                Error::format(pos, format!("flattened record at {pos:#x}: offset {off:#x} + size {size:#x} overflows"))
            })? as u64;
            let data = pos + RECORD_HEADER_SIZE;
            let next = data.checked_add(size as u64).filter(|&n| n <= len).ok_or_else(|| {
                Error::truncated(
                    pos,
                    format!("flattened record at {pos:#x}: {size} bytes of data run past the end of the file ({len} bytes)"),
                )
            })?;
            records += 1;
            if records > MAX_RECORDS {
                return Err(Error::limit(pos, format!("flattened file has more than {MAX_RECORDS} records")));
            }
            insert(&mut map, Segment { start: off as u64, end, src: data });
            logical_len = logical_len.max(end);
            last_span = next - pos;
            pos = next;
        }
        // Each piece, stored, then the hole up to the next piece (or the end) as its unstored
        // tail; a hole at the start is an extent that stores nothing. Offsets are below 2^63.
        let mut extents = Vec::with_capacity(map.len() + 1);
        let first = map.keys().next().copied().unwrap_or(logical_len);
        extents.extend(Extent::new(0, first, 0, 0));
        let mut pieces = map.into_iter().peekable();
        while let Some((start, (end, src))) = pieces.next() {
            let next = pieces.peek().map_or(logical_len, |&(s, _)| s);
            extents.extend(Extent::new(start, next - start, src, end - start));
        }
        let (map, _) = ExtentMap::build(extents, Beyond::Zeros, LABELS);
        let hole_bytes = map.unstored_bytes();
        Ok(Flattened { inner, map, logical_len, records, end_marker, hole_bytes })
    }

    /// Number of data records indexed (the end marker not counted).
    pub fn record_count(&self) -> u64 {
        self.records
    }
    /// Length of the reassembled file: the highest end of any record.
    pub fn logical_len(&self) -> u64 {
        self.logical_len
    }
    /// Whether the `-1/-1` end record was found.
    pub fn has_end_marker(&self) -> bool {
        self.end_marker
    }
    /// Bytes below `logical_len` that no record wrote (read as zeros, as `-R` leaves them).
    pub fn hole_bytes(&self) -> u64 {
        self.hole_bytes
    }
    /// Where the bytes at reassembled `[offset, offset + len)` are in the file as written, when
    /// one record's data holds them all; `None` for bytes in a hole (no record wrote them), past
    /// the end, or split between two records. Translates the reassembled offsets of the kdump
    /// layer (see [`Location::File`](crate::error::Location::File)).
    pub fn offset_as_written(&self, offset: u64, len: u64) -> Option<u64> {
        self.map.file_offset(offset, len)
    }
    /// Number of non-overlapping pieces in the index: a diagnostic for callers (the library does
    /// not use it itself; the fuzz target exercises it).
    pub fn segment_count(&self) -> usize {
        self.map.extents().len()
    }
}

impl ReadAt for Flattened {
    fn size(&self) -> u64 {
        self.logical_len
    }

    /// The bytes records wrote: holes are not stored.
    fn stored_len(&self) -> u64 {
        self.logical_len - self.hole_bytes
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let want_end = offset.checked_add(buf.len() as u64).ok_or_else(|| Error::truncated(offset, "read range overflows"))?;
        if want_end > self.logical_len {
            return Err(Error::truncated(
                offset.max(self.logical_len).min(want_end),
                format!("reassembled flattened file ends at {:#x}", self.logical_len),
            ));
        }
        // Every offset below logical_len is in an extent (stored or a zero-read hole).
        self.map.read(&*self.inner, offset, buf).map_err(|e| match (e.kind, e.address()) {
            (ErrorKind::Absent, Some(at)) => Error::truncated(at, e.message),
            _ => e,
        })
    }
}

/// The 4096-byte header of a flattened file: the signature, type 1, version 1 (what a writer
/// puts before its records).
pub(crate) fn file_header() -> Vec<u8> {
    let mut v = vec![0u8; HEADER_SIZE as usize];
    v[..SIGNATURE.len()].copy_from_slice(SIGNATURE);
    v[16..24].copy_from_slice(&1i64.to_be_bytes());
    v[24..32].copy_from_slice(&1i64.to_be_bytes());
    v
}

/// Builders for tests and fixtures (this crate's, its integration tests', the fuzz seeds'); not
/// part of the library's API.
#[doc(hidden)]
pub mod testing {
    /// A flattened file of `(offset, data)` records, with the `-1/-1` end marker if asked.
    pub fn flatten(records: &[(u64, &[u8])], end_marker: bool) -> Vec<u8> {
        let mut v = super::file_header();
        for (off, data) in records {
            v.extend_from_slice(&off.to_be_bytes());
            v.extend_from_slice(&(data.len() as u64).to_be_bytes());
            v.extend_from_slice(data);
        }
        if end_marker {
            v.extend_from_slice(&(-1i64).to_be_bytes());
            v.extend_from_slice(&(-1i64).to_be_bytes());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::testing::flatten;
    use super::*;
    use crate::error::ErrorKind;

    fn open(v: Vec<u8>) -> Result<Flattened> {
        Flattened::open(Arc::new(v))
    }

    /// What `makedumpfile -R` would write, computed naively.
    fn reassemble(records: &[(u64, &[u8])]) -> Vec<u8> {
        let len = records.iter().map(|(o, d)| *o as usize + d.len()).max().unwrap_or(0);
        let mut out = vec![0u8; len];
        for (o, d) in records {
            out[*o as usize..*o as usize + d.len()].copy_from_slice(d);
        }
        out
    }

    fn check_all_reads(f: &Flattened, expect: &[u8]) {
        assert_eq!(f.size(), expect.len() as u64);
        for start in 0..expect.len() {
            for len in [1usize, 2, 3, 7, 64] {
                if start + len > expect.len() {
                    continue;
                }
                let mut b = vec![0xeeu8; len];
                f.read_exact_at(&mut b, start as u64).unwrap();
                assert_eq!(b, &expect[start..start + len], "read {len} at {start}");
            }
        }
        let mut all = vec![0u8; expect.len()];
        f.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all, expect);
    }

    #[test]
    fn reassembled_offsets_translate_to_the_file_as_written() {
        // Record 0 writes [0, 8) from file offset 4096 + 16, record 1 writes [100, 104) after it;
        // [8, 100) is a hole.
        let f = open(flatten(&[(0, b"abcdefgh"), (100, b"wxyz")], true)).unwrap();
        let first = HEADER_SIZE + RECORD_HEADER_SIZE;
        assert_eq!(f.offset_as_written(3, 2), Some(first + 3));
        assert_eq!(f.offset_as_written(101, 3), Some(first + 8 + RECORD_HEADER_SIZE + 1));
        assert_eq!(f.offset_as_written(50, 1), None, "a hole has no offset in the file");
        assert_eq!(f.offset_as_written(6, 4), None, "runs into the hole");
        assert_eq!(f.offset_as_written(104, 1), None, "past the reassembled end");
    }

    #[test]
    fn detects_header() {
        let v = flatten(&[], true);
        assert!(is_flattened(&v));
        let mut bad = v.clone();
        bad[31] = 2;
        assert!(!is_flattened(&bad));
        assert!(!is_flattened(&v[..20]));
        assert!(!is_flattened(b"KDUMP   "));
    }

    #[test]
    fn in_order_backwards_overlap_and_holes_match_reassembly() {
        let a: Vec<u8> = (0..40u8).collect();
        let b = vec![0xbbu8; 10];
        let c = vec![0xccu8; 30];
        let d = vec![0xddu8; 3];
        let e = vec![0xeeu8; 5];
        let recs: Vec<(u64, &[u8])> = vec![
            (100, &a), // 100..140
            (10, &b),  // backwards: 10..20, hole 0..10 and 20..100
            (120, &c), // overlaps the tail of a, extends to 150
            (105, &d), // inside a: splits it
            (0, &e),   // fills part of the first hole
            (130, &b), // inside c
            (150, &d), // adjacent
        ];
        let f = open(flatten(&recs, true)).unwrap();
        assert_eq!(f.record_count(), 7);
        assert!(f.has_end_marker());
        let expect = reassemble(&recs);
        check_all_reads(&f, &expect);
        assert_eq!(f.hole_bytes(), (5..10).len() as u64 + (20..100).len() as u64);
        // Past the end.
        let mut x = [0u8; 4];
        let e = f.read_exact_at(&mut x, 152).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert_eq!(e.offset(), Some(153));
    }

    #[test]
    fn many_random_records_match_reassembly() {
        // Deterministic pseudo-random records, many overlaps.
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut datas = Vec::new();
        for i in 0..300 {
            let off = next() % 2000;
            let len = (next() % 120) as usize;
            datas.push((off, vec![(i % 251) as u8 + 1; len]));
        }
        let recs: Vec<(u64, &[u8])> = datas.iter().map(|(o, d)| (*o, d.as_slice())).collect();
        let f = open(flatten(&recs, true)).unwrap();
        let expect = reassemble(&recs);
        let mut all = vec![0u8; expect.len()];
        f.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all, expect);
        for s in 0..expect.len().saturating_sub(33) {
            let mut b = [0u8; 33];
            f.read_exact_at(&mut b, s as u64).unwrap();
            assert_eq!(&b[..], &expect[s..s + 33]);
        }
    }

    #[test]
    fn missing_end_marker_is_accepted_with_flag() {
        let d = vec![1u8; 8];
        let f = open(flatten(&[(0, &d), (8, &d)], false)).unwrap();
        assert!(!f.has_end_marker());
        assert_eq!(f.logical_len(), 16);
        // Data after the end marker is ignored.
        let mut v = flatten(&[(0, &d)], true);
        v.extend_from_slice(&flatten(&[(100, &d)], true)[4096..]);
        let f = open(v).unwrap();
        assert_eq!(f.logical_len(), 8);
        assert_eq!(f.record_count(), 1);
    }

    #[test]
    fn hostile_records_are_typed_errors_at_the_record_header() {
        let d = vec![1u8; 8];
        let good = flatten(&[(0, &d)], false);
        let second = good.len() as u64; // offset of the next record header
        let with = |off: i64, size: i64, data: &[u8]| {
            let mut v = good.clone();
            v.extend_from_slice(&off.to_be_bytes());
            v.extend_from_slice(&size.to_be_bytes());
            v.extend_from_slice(data);
            open(v).unwrap_err()
        };
        let e = with(-5, 8, &d);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(second)));
        let e = with(0, -2, &[]);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(second)));
        let e = with(-1, 0, &[]);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(second)));
        let e = with(i64::MAX - 3, 8, &d);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(second)));
        let e = with(0, 9, &d); // runs past EOF by one byte
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(second)));
        let e = with(0, i64::MAX, &d);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(second)));
        // Torn record header.
        let mut v = good.clone();
        v.extend_from_slice(&[0u8; 9]);
        let e = open(v).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(second)));
        // Torn file header.
        let e = open(flatten(&[], true)[..100].to_vec()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        let e = open(b"KDUMP   xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_vec()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format);
    }

    #[test]
    fn zero_size_records_and_empty_file() {
        let f = open(flatten(&[(50, &[])], true)).unwrap();
        assert_eq!(f.logical_len(), 50);
        assert_eq!(f.hole_bytes(), 50);
        let f = open(flatten(&[], true)).unwrap();
        assert_eq!(f.logical_len(), 0);
        let mut b = [0u8; 1];
        assert_eq!(f.read_exact_at(&mut b, 0).unwrap_err().kind, ErrorKind::Truncated);
        assert!(f.read_exact_at(&mut [], 0).is_ok());
    }

    #[test]
    fn large_windowed_file_crosses_windows() {
        // Records large enough that headers fall in different windows, and small ones in between.
        let big = vec![7u8; WINDOW + 100];
        let small = vec![9u8; 10];
        let recs: Vec<(u64, &[u8])> = vec![(0, &small), (10, &big), (20, &small), (WINDOW as u64 + 110, &small)];
        let f = open(flatten(&recs, true)).unwrap();
        let expect = reassemble(&recs);
        let mut all = vec![0u8; expect.len()];
        f.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all, expect);
    }
}
