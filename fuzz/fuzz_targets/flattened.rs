//! Flattened::open over arbitrary bytes; reads of the reassembled view must equal a naive
//! reassembly (what `makedumpfile -R` writes); then the kdump reader on top of it.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::flattened::{Flattened, HEADER_SIZE};
use vmcoreinfo::kdump::KdumpFile;
use vmcoreinfo::phys::PhysMemory;
use vmcoreinfo::source::ReadAt;

/// The reassembled file written naively, record by record; None when it would be large.
fn naive(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = HEADER_SIZE as usize;
    while pos + 16 <= data.len() {
        let off = i64::from_be_bytes(data[pos..pos + 8].try_into().unwrap());
        let size = i64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap());
        if off == -1 && size == -1 {
            break;
        }
        let (off, size) = (usize::try_from(off).ok()?, usize::try_from(size).ok()?);
        let end = off.checked_add(size)?;
        if end > 4 << 20 {
            return None;
        }
        let body = data.get(pos + 16..pos + 16 + size)?;
        if out.len() < end {
            out.resize(end, 0);
        }
        out[off..end].copy_from_slice(body);
        pos += 16 + size;
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(f) = Flattened::open(Arc::new(data.to_vec())) else { return };
    let _ = (f.record_count(), f.has_end_marker(), f.hole_bytes(), f.segment_count(), format!("{f:?}"));
    assert!(f.hole_bytes() <= f.logical_len());
    if let Some(expect) = naive(data) {
        assert_eq!(f.size(), expect.len() as u64);
        let mut all = vec![0u8; expect.len()];
        f.read_exact_at(&mut all, 0).unwrap();
        assert!(all == expect, "reassembled view differs from a naive reassembly");
        // Reads at every record boundary-ish offset, short and across segments.
        let n = expect.len();
        for start in (0..n).step_by((n / 61).max(1)) {
            let len = (n - start).min(777);
            let mut b = vec![0u8; len];
            f.read_exact_at(&mut b, start as u64).unwrap();
            assert_eq!(&b[..], &expect[start..start + len]);
        }
        if n > 0 {
            let mut b = [0u8; 2];
            assert!(f.read_exact_at(&mut b, n as u64 - 1).is_err(), "read past the reassembled end");
        }
    }
    let mut b = [0u8; 8];
    assert!(f.read_exact_at(&mut b, u64::MAX - 3).is_err());
    let src: Arc<dyn ReadAt> = Arc::new(f);
    if let Ok(kd) = KdumpFile::open(src) {
        let mut page = vec![0u8; kd.block_size() as usize];
        for r in kd.ranges().unwrap_or_default().iter().take(4) {
            let _ = kd.read_phys(r.start, &mut page);
        }
        let _ = kd.page_counts();
    }
});
