//! One extent map: where each address of a dump (a physical address, or an offset in a
//! reassembled file) comes from in the file, with one read loop and one file-offset lookup.
//!
//! An [`Extent`] covers addresses `[start, end)`. Its first `stored` bytes are in the file at
//! `file_offset`, byte for byte; the rest of it (`[start + stored, end)`) is not in the file and
//! reads by the map's [`Beyond`] policy: zeros (an ELF `p_filesz < p_memsz` tail as the format
//! defines it, a hole in a flattened file) or absent (memory the producer did not save).
//! Addresses outside every extent are absent. The model is drgn's memory segment list
//! (`file_offset`, `file_size`, `zerofill`).
//!
//! Every format that stores memory uncompressed uses it: ELF PT_LOADs, LiME ranges, raw images
//! (one extent from 0) and the flattened format's index (offset in the reassembled file -> the
//! record's data).
//!
//! The map is sorted and non-overlapping. [`ExtentMap::build`] makes it so by one rule: extents
//! are sorted by `(start, file_offset)` and the first wins; a later extent loses the part an
//! earlier one already covers. Extents that continue one another in both address and file are
//! joined, so that [`ExtentMap::file_offset`] answers for a whole stored run.
//!
//! [`ExtentImage`] is a dump that is nothing but one map over one file (LiME, raw): the one
//! [`PhysMemory`] implementation of such formats.

use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::phys::{normalize, PhysMemory, PhysRange};
use crate::source::ReadAt;

/// How the part of an extent past its stored bytes reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beyond {
    /// Zeros (the format defines them).
    Zeros,
    /// Absent: the file does not hold this memory.
    Absent,
}

/// Addresses `[start, end)`; `[start, start + stored)` is in the file at `file_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
    /// Bytes stored in the file, at most `end - start`.
    pub stored: u64,
}

impl Extent {
    /// `len` addresses from `start`, the first `stored` of them in the file at `file_offset`
    /// (`stored` larger than `len` counts as `len`). `None` when the address range or the file
    /// range would run past 2^64.
    pub fn new(start: u64, len: u64, file_offset: u64, stored: u64) -> Option<Extent> {
        let stored = stored.min(len);
        file_offset.checked_add(stored)?;
        Some(Extent { start, end: start.checked_add(len)?, file_offset, stored })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// End of the stored part (an address).
    pub fn stored_end(&self) -> u64 {
        self.start + self.stored
    }
}

/// Words for errors, so that a message names the format's own structures.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// Why an address outside every extent is absent.
    pub gap: &'static str,
    /// Why an address past an extent's stored bytes is absent (policy [`Beyond::Absent`]).
    pub unstored: &'static str,
    /// What the stored bytes are, for a file that ends before them (e.g. "PT_LOAD data").
    pub data: &'static str,
}

/// How many pieces of the map one extent's overlap is compared with, at most (a bound for
/// hostile tables of many nested extents; real overlaps touch one or two pieces).
const MAX_OVERLAP_PIECES: usize = 64;

/// Bytes of `e` that the pieces already in `out` (sorted, non-overlapping) cover with other file
/// bytes than `e` would give. Overlaps of unstored bytes count too: which extent wins decides
/// whether they read as file bytes or not.
fn conflicting_bytes(out: &[Extent], e: &Extent) -> u64 {
    let mut n = 0u64;
    for o in out.iter().rev().take_while(|o| o.end > e.start).take(MAX_OVERLAP_PIECES) {
        let overlap = o.end.min(e.end).saturating_sub(o.start.max(e.start));
        if e.file_offset.wrapping_sub(e.start) != o.file_offset.wrapping_sub(o.start) {
            n = n.saturating_add(overlap);
        }
    }
    n
}

/// A sorted, non-overlapping list of extents with one read policy for unstored bytes.
#[derive(Debug, Clone)]
pub struct ExtentMap {
    extents: Vec<Extent>,
    beyond: Beyond,
    labels: Labels,
}

impl ExtentMap {
    /// Sort `extents` by `(start, file_offset)`, drop what an earlier extent already covers
    /// (the first wins), drop empty extents and join extents that continue one another in the
    /// file. Also returns the number of bytes dropped where the later extent would have read
    /// other file bytes than the earlier one (overlaps that map an address to the same file
    /// byte are duplicates, not conflicts).
    pub fn build(mut extents: Vec<Extent>, beyond: Beyond, labels: Labels) -> (ExtentMap, u64) {
        extents.retain(|e| !e.is_empty());
        extents.sort_unstable_by_key(|e| (e.start, e.file_offset));
        // Compact in place: `extents[..w]` is the map built so far (a large index, such as a
        // flattened file's, is never held twice).
        let mut w = 0usize;
        let mut conflicts = 0u64;
        for r in 0..extents.len() {
            let mut e = extents[r];
            if w > 0 {
                let last_end = extents[w - 1].end;
                if e.start < last_end {
                    conflicts = conflicts.saturating_add(conflicting_bytes(&extents[..w], &e));
                    if e.end <= last_end {
                        continue;
                    }
                    let skip = last_end - e.start;
                    e.start = last_end;
                    // Past the stored part the file offset is never used; keep it in range.
                    e.file_offset += skip.min(e.stored);
                    e.stored = e.stored.saturating_sub(skip);
                }
                let last = &mut extents[w - 1];
                if last.end == e.start && last.stored == last.len() && last.file_offset + last.stored == e.file_offset {
                    last.end = e.end;
                    last.stored += e.stored;
                    continue;
                }
            }
            extents[w] = e;
            w += 1;
        }
        extents.truncate(w);
        extents.shrink_to_fit();
        (ExtentMap { extents, beyond, labels }, conflicts)
    }

    /// The extents, sorted and non-overlapping.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    pub fn beyond(&self) -> Beyond {
        self.beyond
    }

    pub fn set_beyond(&mut self, beyond: Beyond) {
        self.beyond = beyond;
    }

    /// End of the last extent (0 when there is none).
    pub fn end(&self) -> u64 {
        self.extents.last().map_or(0, |e| e.end)
    }

    /// Bytes covered by extents but not stored.
    pub fn unstored_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len() - e.stored).sum()
    }

    /// Index of the first extent whose end is past `addr`.
    fn first_ending_after(&self, addr: u64) -> usize {
        self.extents.partition_point(|e| e.end <= addr)
    }

    /// The ranges that read without error, sorted, adjacent ranges merged.
    pub fn ranges(&self) -> Vec<PhysRange> {
        let end = |e: &Extent| if self.beyond == Beyond::Absent { e.stored_end() } else { e.end };
        normalize(self.extents.iter().map(|e| PhysRange { start: e.start, end: end(e) }).collect())
    }

    /// Whether the map holds all of `[addr, addr + len)` (what [`ExtentMap::read`] reads
    /// without an absent error): [`check_covered`](crate::phys::check_covered) over
    /// [`ExtentMap::ranges`], by a binary search and a walk of the extents the range touches.
    pub fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len);
        let mut at = addr;
        for e in &self.extents[self.first_ending_after(addr)..] {
            let e_end = if self.beyond == Beyond::Absent { e.stored_end() } else { e.end };
            if e.start > at || e_end <= at {
                // A gap before `e`, or `e`'s readable part ends before `at` (the extents do not
                // overlap, so the next one starts after `at` too).
                break;
            }
            at = e_end;
            if end.is_some_and(|x| at >= x) {
                return Ok(());
            }
        }
        Err(crate::phys::not_covered(at, end))
    }

    /// The file offset of `[addr, addr + len)` when the file stores all of it in one run;
    /// `None` otherwise (a gap, unstored bytes, or two runs that are not contiguous in the file).
    pub fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        let e = self.extents.get(self.first_ending_after(addr)).filter(|e| e.start <= addr)?;
        (addr.checked_add(len)? <= e.stored_end()).then(|| e.file_offset + (addr - e.start))
    }

    /// Fill `buf` with the bytes at `[addr, addr + buf.len())`, from `src` (the file). An address
    /// outside every extent, or unstored with the [`Beyond::Absent`] policy, is an
    /// [`ErrorKind::Absent`] error naming the first such address (a range that would run past
    /// 2^64 is absent at the first address no extent holds). The file's own errors pass through;
    /// a file that ends before stored bytes names them.
    pub fn read(&self, src: &dyn ReadAt, addr: u64, buf: &mut [u8]) -> Result<()> {
        let mut i = self.first_ending_after(addr);
        let mut a = addr;
        let mut out = buf;
        while !out.is_empty() {
            // Invariant: every extent before `i` ends at or before `a`, and extents end at most
            // at u64::MAX, so `a` never wraps.
            let Some(e) = self.extents.get(i).filter(|e| e.start <= a) else {
                return Err(Error::absent(a, self.labels.gap));
            };
            let rel = a - e.start;
            let n = (e.end - a).min(out.len() as u64) as usize;
            let (chunk, rest) = out.split_at_mut(n);
            let from_file = e.stored.saturating_sub(rel).min(n as u64) as usize;
            if from_file > 0 {
                let at = e.file_offset + rel;
                if at + from_file as u64 > src.size() {
                    return Err(self.cut_short(src.size(), a, at));
                }
                src.read_exact_at(&mut chunk[..from_file], at).map_err(|err| self.missing(err, a))?;
            }
            if from_file < n {
                if self.beyond == Beyond::Absent {
                    return Err(Error::absent(a + from_file as u64, self.labels.unstored));
                }
                chunk[from_file..].fill(0);
            }
            a += n as u64;
            out = rest;
            i += 1;
        }
        Ok(())
    }

    /// Bytes the extents declare stored, and how many of them lie inside a file of `file_len`
    /// bytes.
    pub fn stored_within(&self, file_len: u64) -> (u64, u64) {
        self.extents.iter().fold((0, 0), |(declared, held), e| {
            (declared + e.stored, held + file_len.saturating_sub(e.file_offset).min(e.stored))
        })
    }

    /// The file was cut short before it was opened: name where the data was declared.
    #[cold]
    fn cut_short(&self, file_len: u64, a: u64, at: u64) -> Error {
        let (declared, held) = self.stored_within(file_len);
        Error::truncated(
            at,
            format!(
                "{} {a:#x} is declared at file offset {at:#x}, but the file ends at {file_len:#x} \
                 ({file_len} bytes): it holds {held} of the {declared} bytes of memory it declares",
                self.labels.data
            ),
        )
    }

    #[cold]
    fn missing(&self, err: Error, a: u64) -> Error {
        if err.kind == ErrorKind::Truncated {
            Error { message: format!("{} {a:#x} is missing: {}", self.labels.data, err.message), ..err }
        } else {
            err
        }
    }
}

/// A memory image whose memory is one [`ExtentMap`] over one byte source, with `info`, what the
/// format itself keeps (LiME's range index; nothing for raw). The memory-image formats are
/// instances of it ([`RawImage`](crate::raw::RawImage), [`LimeImage`](crate::lime::LimeImage)):
/// reads, ranges, coverage and file offsets are the map's, written once here.
pub struct ExtentImage<I> {
    src: Arc<dyn ReadAt>,
    map: ExtentMap,
    info: I,
}

impl<I> ExtentImage<I> {
    pub fn from_map(src: Arc<dyn ReadAt>, map: ExtentMap, info: I) -> ExtentImage<I> {
        ExtentImage { src, map, info }
    }

    /// What the format keeps besides the map.
    pub fn info(&self) -> &I {
        &self.info
    }

    pub fn map(&self) -> &ExtentMap {
        &self.map
    }

    /// The bytes the map reads.
    pub fn source(&self) -> &Arc<dyn ReadAt> {
        &self.src
    }

    /// File offset of `[addr, addr + len)` when the file stores all of it in one run.
    pub fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        self.map.file_offset(addr, len)
    }
}

impl<I: std::fmt::Debug> std::fmt::Debug for ExtentImage<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtentImage").field("info", &self.info).field("extents", &self.map.extents().len()).finish()
    }
}

impl<I: Send + Sync> PhysMemory for ExtentImage<I> {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.map.read(&*self.src, addr, buf)
    }

    fn ranges(&self) -> Result<Vec<PhysRange>> {
        Ok(self.map.ranges())
    }

    fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        self.map.check_covered(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;

    const L: Labels = Labels { gap: "gap", unstored: "unstored", data: "test data for physical" };

    fn x(start: u64, len: u64, file_offset: u64, stored: u64) -> Extent {
        Extent::new(start, len, file_offset, stored).unwrap()
    }

    fn map(v: Vec<Extent>, beyond: Beyond) -> ExtentMap {
        ExtentMap::build(v, beyond, L).0
    }

    /// A file whose byte at offset `o` is `o % 251`.
    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|o| (o % 251) as u8).collect()
    }

    fn at(o: u64) -> u8 {
        (o % 251) as u8
    }

    fn read(m: &ExtentMap, f: &dyn ReadAt, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut b = vec![0xeeu8; len];
        m.read(f, addr, &mut b).map(|()| b)
    }

    #[test]
    fn gaps_are_absent_at_the_first_absent_address() {
        let f = file(0x400);
        let m = map(vec![x(0x1000, 0x10, 0x100, 0x10), x(0x2000, 0x10, 0x200, 0x10)], Beyond::Zeros);
        assert_eq!(read(&m, &f, 0x1008, 8).unwrap(), (0x108..0x110).map(at).collect::<Vec<_>>());
        let e = read(&m, &f, 0x1008, 9).unwrap_err();
        assert_eq!((e.kind, e.location), (ErrorKind::Absent, Some(Location::Phys(0x1010))));
        assert_eq!(e.message, "gap");
        for addr in [0, 0xfff, 0x1010, 0x1fff, 0x2010, u64::MAX] {
            assert_eq!(read(&m, &f, addr, 1).unwrap_err().address(), Some(addr));
        }
        assert!(read(&m, &f, 0x5000, 0).is_ok(), "an empty read needs no memory");
        assert_eq!(m.ranges(), vec![PhysRange { start: 0x1000, end: 0x1010 }, PhysRange { start: 0x2000, end: 0x2010 }]);
        assert_eq!(ExtentMap::build(Vec::new(), Beyond::Zeros, L).0.ranges(), Vec::new());
    }

    #[test]
    fn unstored_bytes_read_by_policy() {
        let f = file(0x400);
        let mut m = map(vec![x(0x1000, 0x20, 0x100, 0x8), x(0x1020, 0x10, 0x300, 0x10)], Beyond::Zeros);
        assert_eq!(m.unstored_bytes(), 0x18);
        let mut want: Vec<u8> = (0x104..0x108).map(at).collect();
        want.extend([0u8; 0x18]);
        want.extend((0x300..0x304).map(at));
        assert_eq!(read(&m, &f, 0x1004, 0x20).unwrap(), want, "zeros, then the next extent");
        assert_eq!(m.ranges(), vec![PhysRange { start: 0x1000, end: 0x1030 }]);
        m.set_beyond(Beyond::Absent);
        let e = read(&m, &f, 0x1004, 0x20).unwrap_err();
        assert_eq!((e.kind, e.address(), e.message.as_str()), (ErrorKind::Absent, Some(0x1008), "unstored"));
        assert_eq!(read(&m, &f, 0x1004, 4).unwrap(), &want[..4]);
        assert_eq!(read(&m, &f, 0x1020, 0x10).unwrap(), (0x300..0x310).map(at).collect::<Vec<_>>());
        assert_eq!(m.ranges(), vec![PhysRange { start: 0x1000, end: 0x1008 }, PhysRange { start: 0x1020, end: 0x1030 }]);
        // An extent that stores nothing.
        let m = map(vec![x(0, 0x10, 0, 0)], Beyond::Zeros);
        assert_eq!(read(&m, &f, 0, 0x10).unwrap(), vec![0u8; 0x10]);
        assert_eq!(m.file_offset(0, 1), None);
    }

    #[test]
    fn overlaps_first_in_start_then_file_order_wins() {
        let f = file(0x1000);
        // Given in the opposite order: (0x100, file 0x800) sorts after (0x100, file 0x200).
        let (m, conflicts) = ExtentMap::build(
            vec![x(0x100, 0x40, 0x800, 0x40), x(0x100, 0x20, 0x200, 0x20), x(0x110, 0x10, 0x210, 0x10)],
            Beyond::Absent,
            L,
        );
        // The second (file 0x200) wins for 0x100..0x120; the first gives 0x120..0x140 from 0x820.
        // The third duplicates the second exactly: no conflict.
        assert_eq!(conflicts, 0x20);
        assert_eq!(m.extents(), &[x(0x100, 0x20, 0x200, 0x20), x(0x120, 0x20, 0x820, 0x20)]);
        let mut want: Vec<u8> = (0x200..0x220).map(at).collect();
        want.extend((0x820..0x840).map(at));
        assert_eq!(read(&m, &f, 0x100, 0x40).unwrap(), want);
        assert_eq!(m.file_offset(0x108, 8), Some(0x208));
        assert_eq!(m.file_offset(0x120, 0x20), Some(0x820));
        // An extent wholly inside an earlier one is dropped; a trimmed one keeps its unstored tail.
        let (m, conflicts) = ExtentMap::build(
            vec![x(0, 0x100, 0, 0x100), x(0x10, 0x10, 0x500, 0x10), x(0x80, 0x100, 0x80, 0x90)],
            Beyond::Zeros,
            L,
        );
        assert_eq!(conflicts, 0x10);
        assert_eq!(m.extents(), &[x(0, 0x180, 0, 0x110)]);
        assert_eq!(m.unstored_bytes(), 0x70);
    }

    #[test]
    fn adjacent_extents_read_across_and_join_when_the_file_continues() {
        let f = file(0x1000);
        let m = map(vec![x(0x10, 0x10, 0x500, 0x10), x(0, 0x10, 0x100, 0x10), x(0x20, 0x10, 0x510, 0x10)], Beyond::Absent);
        // 0..0x10 -> 0x100; 0x10..0x30 -> 0x500 (joined: the file continues).
        assert_eq!(m.extents(), &[x(0, 0x10, 0x100, 0x10), x(0x10, 0x20, 0x500, 0x20)]);
        let mut want: Vec<u8> = (0x108..0x110).map(at).collect();
        want.extend((0x500..0x520).map(at));
        assert_eq!(read(&m, &f, 8, 0x28).unwrap(), want);
        assert_eq!(m.ranges(), vec![PhysRange { start: 0, end: 0x30 }]);
        assert_eq!(m.file_offset(0x18, 0x18), Some(0x508), "one run across the joined extents");
        // Not joined after unstored bytes, even when the offsets would line up.
        let m = map(vec![x(0, 0x10, 0x100, 0x8), x(0x10, 0x10, 0x110, 0x10)], Beyond::Zeros);
        assert_eq!(m.extents().len(), 2);
    }

    #[test]
    fn file_offset_needs_one_stored_run() {
        let m = map(vec![x(0x1000, 0x100, 0x40, 0x100), x(0x1100, 0x100, 0x400, 0x80)], Beyond::Zeros);
        assert_eq!(m.file_offset(0x1000, 0x100), Some(0x40));
        assert_eq!(m.file_offset(0x10f0, 0x20), None, "spans two extents not contiguous in the file");
        assert_eq!(m.file_offset(0x1100, 0x80), Some(0x400));
        assert_eq!(m.file_offset(0x1100, 0x81), None, "runs into unstored bytes");
        assert_eq!(m.file_offset(0x1190, 1), None, "unstored");
        assert_eq!(m.file_offset(0xfff, 1), None, "before every extent");
        assert_eq!(m.file_offset(0x1200, 0), None, "past every extent");
        assert_eq!(m.file_offset(0x10ff, u64::MAX), None, "length overflows");
    }

    #[test]
    fn top_of_the_address_space() {
        let f = file(0x100);
        assert_eq!(Extent::new(u64::MAX - 1, 2, 0, 2), None, "end 2^64 + 1 does not fit");
        assert_eq!(Extent::new(0, 1, u64::MAX, 1), None, "file range past 2^64");
        let m = map(vec![x(u64::MAX - 0x10, 0x10, 0x20, 0x10)], Beyond::Zeros);
        assert_eq!(m.end(), u64::MAX);
        assert_eq!(read(&m, &f, u64::MAX - 4, 4).unwrap(), (0x2c..0x30).map(at).collect::<Vec<_>>());
        // Reads that run to or past 2^64: absent at u64::MAX, the first address no extent holds.
        for (addr, len) in [(u64::MAX - 4, 5), (u64::MAX - 4, 64), (u64::MAX, 1)] {
            let e = read(&m, &f, addr, len).unwrap_err();
            assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(u64::MAX)), "{addr:#x}+{len}");
        }
        assert_eq!(m.file_offset(u64::MAX - 4, 4), Some(0x2c));
        assert_eq!(m.file_offset(u64::MAX - 4, 5), None);
        assert_eq!(m.ranges(), vec![PhysRange { start: u64::MAX - 0x10, end: u64::MAX }]);
    }

    #[test]
    fn many_nested_overlaps_compare_a_bounded_number_of_pieces() {
        // Each extent starts one byte after the previous and ends 1 byte later than it: every one
        // is trimmed to one byte, and each overlaps all earlier pieces (a hostile table). Without
        // a bound the overlap count would compare each extent with every earlier piece, n^2 / 2.
        let n = 5_000u64;
        let v: Vec<Extent> = (0..n).map(|i| x(i, n, i * 3, n)).collect();
        let (m, conflicts) = ExtentMap::build(v, Beyond::Absent, L);
        assert_eq!(m.end(), 2 * n - 1);
        assert_eq!(m.ranges(), vec![PhysRange { start: 0, end: 2 * n - 1 }]);
        // Extent i (from 1) conflicts with the first extent's n - i bytes and with the one byte
        // of each of the i - 1 pieces after it, all with other file bytes. The first
        // MAX_OVERLAP_PIECES extents reach every piece (n - 1 bytes each); each later one reaches
        // only the last MAX_OVERLAP_PIECES one-byte pieces: the count says how far each looked.
        let k = MAX_OVERLAP_PIECES as u64;
        assert_eq!(conflicts, k * (n - 1) + (n - 1 - k) * k);
    }

    #[test]
    fn a_file_that_ends_early_is_truncated_naming_the_address() {
        let f = file(0x20);
        let m = map(vec![x(0x1000, 0x40, 0x10, 0x40)], Beyond::Zeros);
        let e = read(&m, &f, 0x1000, 0x40).unwrap_err();
        // Cut short before it was opened: the error names where the data was declared.
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(0x10)));
        assert!(e.message.starts_with("test data for physical 0x1000 is declared at file offset 0x10"), "{}", e.message);
        assert!(e.message.contains("it holds 16 of the 64 bytes"), "{}", e.message);
    }
}
