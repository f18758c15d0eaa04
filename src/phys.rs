//! Physical memory as a dump presents it: which ranges it holds, and reads from them.

use crate::error::{Error, Result};

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
    /// Check that the memory holds all of `[addr, addr + len)`, without reading it: the answer
    /// and the error are those of [`check_covered`] over [`ranges`](PhysMemory::ranges) (the
    /// first address not held). Formats answer from their index instead of building the list
    /// (a kdump bitmap test, an extent map's binary search).
    fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        check_covered(&self.ranges()?, addr, len)
    }
}

/// Check that sorted, merged `ranges` cover all of `[addr, addr + len)`: the error names the
/// first address they do not hold.
pub fn check_covered(ranges: &[PhysRange], addr: u64, len: u64) -> Result<()> {
    let end = addr.checked_add(len);
    let mut at = addr;
    // One pass from the range holding `addr`.
    let first = ranges.partition_point(|r| r.end <= addr);
    for r in &ranges[first..] {
        if r.start > at {
            break;
        }
        at = r.end;
        if end.is_some_and(|e| at >= e) {
            return Ok(());
        }
    }
    Err(not_covered(at, end))
}

/// The error of [`check_covered`]: `at`, the first address not held, of a range ending at `end`
/// (`None`: past 2^64).
pub fn not_covered(at: u64, end: Option<u64>) -> Error {
    let why = if end.is_none() {
        "the range runs past the top of the physical address space"
    } else {
        "the dump does not hold this memory"
    };
    Error::absent(at, why)
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

    #[test]
    fn check_covered_names_the_first_absent_address() {
        let r = |s, e| PhysRange { start: s, end: e };
        let m = [r(0, 0x1000), r(0x1000, 0x3000), r(0x4000, 0x5000)];
        assert!(check_covered(&m, 0x800, 0x2000).is_ok());
        assert_eq!(check_covered(&m, 0x800, 0x3000).unwrap_err().address(), Some(0x3000));
        assert_eq!(check_covered(&m, 0x3800, 1).unwrap_err().address(), Some(0x3800));
        assert_eq!(check_covered(&m, 0x4000, u64::MAX).unwrap_err().address(), Some(0x5000));
    }
}
