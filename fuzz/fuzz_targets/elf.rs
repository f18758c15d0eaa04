//! ElfDump::parse over arbitrary bytes, then physical reads around every PT_LOAD and a walk of
//! every note segment. Any error is fine; a panic, hang or huge allocation is a bug.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::elf::{ElfDump, HEAD_READ};
use vmcoreinfo::notes;
use vmcoreinfo::phys::PhysMemory;

fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(HEAD_READ)];
    let Ok(d) = ElfDump::parse(Arc::new(data.to_vec()), head) else { return };
    let _ = d.max_phys_end();
    let ranges = d.ranges().expect("ELF ranges never fail");
    for w in ranges.windows(2) {
        assert!(w[0].end < w[1].start, "ranges not sorted and merged: {ranges:?}");
    }
    let mut buf = vec![0u8; 4096 + 16];
    for l in d.loads.iter().take(8) {
        let len = l.memsz.max(l.filesz);
        for (addr, n) in [(l.paddr, 64usize), (l.paddr.wrapping_add(len).wrapping_sub(8), 16), (l.paddr, buf.len())] {
            let _ = d.read_phys(addr, &mut buf[..n]);
        }
    }
    for r in ranges.iter().take(8) {
        if d.read_phys(r.start, &mut buf[..1]).is_err() {
            continue;
        }
        // The last byte of a held range is held too (it may still fail: file truncated).
        let _ = d.read_phys(r.end - 1, &mut buf[..1]);
    }
    let _ = d.read_phys(u64::MAX - 3, &mut buf[..16]);
    for seg in &d.notes {
        for n in notes::notes(&seg.data, d.big_endian, seg.align, seg.file_offset) {
            let Ok(n) = n else { break };
            assert!(n.desc_offset + n.desc.len() <= seg.data.len());
            let _ = n.is_vmcoreinfo();
        }
    }
});
