//! Physical memory as a dump presents it: which ranges it holds, and reads from them.

use crate::error::Result;

/// A half-open range `[start, end)` of guest-physical addresses held by a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

/// Physical memory of one dump.
///
/// `read_phys` fills the whole buffer or fails: an address the dump does not hold is an
/// [`ErrorKind::Absent`](crate::error::ErrorKind::Absent) error naming the first absent address;
/// it is never filled with invented zeros. (Zeros the format itself records, such as an ELF
/// segment's `p_filesz < p_memsz` tail or a kdump zero page, are real data and are returned.)
pub trait PhysMemory: Send + Sync {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()>;
    /// The ranges held, sorted, non-overlapping, adjacent ranges merged. (Fallible: a kdump
    /// file reads its bitmaps on first use.)
    fn ranges(&self) -> Result<Vec<PhysRange>>;
}

/// Sort and merge ranges (helper for implementations of [`PhysMemory::ranges`]).
pub fn normalize(mut v: Vec<PhysRange>) -> Vec<PhysRange> {
    v.retain(|r| r.start < r.end);
    v.sort_unstable();
    let mut out: Vec<PhysRange> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn normalize_merges_overlaps_and_adjacency() {
        let r = |s, e| PhysRange { start: s, end: e };
        assert_eq!(normalize(vec![r(10, 20), r(0, 5), r(5, 8), r(15, 30), r(40, 40)]), vec![r(0, 8), r(10, 30)]);
    }
}
