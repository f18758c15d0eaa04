//! KdumpFile::open over an in-memory file, then header accessors, page counts, ranges and page
//! reads; a multi-page read (the parallel path) must equal the same pages read one by one.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::kdump::{KdumpFile, PARALLEL_PAGES};
use vmcoreinfo::phys::PhysMemory;

/// Largest read the target makes (keeps each run fast whatever the block size).
const MAX_READ: u64 = 256 << 10;

fuzz_target!(|data: &[u8]| {
    let Ok(kd) = KdumpFile::open(Arc::new(data.to_vec())) else { return };
    exercise(&kd);
});

pub fn exercise(kd: &KdumpFile) {
    let _ = format!("{kd:?}");
    let _ = (kd.machine(), kd.release(), kd.timestamp(), kd.compression_flags(), kd.is_incomplete());
    let _ = (kd.max_mapnr(), kd.sub_header(), kd.vmcoreinfo_location(), kd.notes_location(), kd.eraseinfo_location());
    for a in kd.anomalies() {
        assert!(a.location.is_some());
    }
    if let Ok(c) = kd.page_counts() {
        assert!(c.excluded <= c.valid);
    }
    let _ = kd.compression_summary();
    let bs = u64::from(kd.block_size());
    let ranges = kd.ranges().unwrap_or_default();
    let mut page = vec![0u8; bs as usize];
    for r in ranges.iter().take(4) {
        assert!(r.start < r.end && r.start % bs == 0 && r.end % bs == 0);
        let pfn = r.start / bs;
        assert!(kd.pfn_present(pfn).unwrap());
        let one = kd.read_page(pfn, &mut page).map(|()| page.clone());
        let mut via_phys = vec![0u8; bs as usize];
        let two = kd.read_phys(r.start, &mut via_phys).map(|()| via_phys);
        assert_eq!(one.is_ok(), two.is_ok());
        if let (Ok(a), Ok(b)) = (&one, &two) {
            assert_eq!(a, b);
        }
        // Unaligned, crossing into the next page (or out of the range: Absent).
        let mut small = [0u8; 32];
        let _ = kd.read_phys(r.start + bs - 16, &mut small);
        // A run of pages large enough for the parallel path, against page-by-page reads.
        let n = ((r.end - r.start) / bs).min(PARALLEL_PAGES as u64 + 1).min(MAX_READ / bs);
        if n >= PARALLEL_PAGES as u64 {
            let mut big = vec![0u8; (n * bs) as usize];
            let res = kd.read_phys(r.start, &mut big);
            let mut serial = Ok(());
            for i in 0..n {
                serial = serial.and_then(|()| kd.read_page(pfn + i, &mut page));
                if let (Ok(()), Ok(())) = (&res, &serial) {
                    assert_eq!(&big[(i * bs) as usize..((i + 1) * bs) as usize], &page[..]);
                }
            }
            assert_eq!(res.is_ok(), serial.is_ok());
        }
    }
    // Absent addresses are errors naming an address, never zeros.
    for addr in [0u64, u64::MAX - 7, kd.max_mapnr().saturating_mul(bs)] {
        let mut b = [0u8; 8];
        if let Err(e) = kd.read_phys(addr, &mut b) {
            assert!(e.location.is_some());
        }
    }
}
