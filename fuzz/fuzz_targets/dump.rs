//! Dump::from_source end to end: detection, notes, the VMCOREINFO text and its accessors,
//! memory ranges and reads, and read_guest_note with entries pointing into the dump.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::bitness;
use vmcoreinfo::dump::{Dump, OpenOptions};
use vmcoreinfo::fwcfg::{FwCfgEntry, FORMAT_ELF};
use vmcoreinfo::text;

fuzz_target!(|data: &[u8]| {
    let name: Arc<str> = Arc::from("fuzz.core");
    // The last byte picks a note limit so the max_note_size paths are covered too.
    let max_note_size = match data.last() {
        Some(b) if b % 4 == 1 => 12,
        Some(b) if b % 4 == 2 => u32::MAX,
        _ => OpenOptions::default().max_note_size,
    };
    let Ok(d) = Dump::from_source(Arc::new(data.to_vec()), name, OpenOptions { max_note_size, ..OpenOptions::default() }) else {
        return;
    };
    let _ = (d.format().name(), d.machine(), d.class64(), d.big_endian(), d.path(), d.flattened());
    for (seg, n) in d.notes().take(1000) {
        let Ok(n) = n else { break };
        assert!(n.desc_offset + n.desc.len() <= seg.data.len());
        let _ = text::is_windows_dump_header(n.desc);
    }
    match d.vmcoreinfo() {
        Ok(blob) => {
            let t = blob.bytes();
            assert!(t.len() as u64 <= u64::from(max_note_size));
            let idx = text::Index::build(t);
            let v = idx.view(t);
            let _ = (v.osrelease(), v.page_size(), v.kernel_offset(), v.phys_base(), v.symbol("init_uts_ns"));
            let _ = bitness::check_text_address_width(&v, if d.class64() { 64 } else { 32 });
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let ranges = d.memory_ranges().unwrap_or_default();
    let mut buf = vec![0u8; 4096];
    let mut entries = Vec::new();
    for r in ranges.iter().take(4) {
        let _ = d.read_phys(r.start, &mut buf);
        let _ = d.read_phys(r.end.saturating_sub(8), &mut buf[..16]);
        entries.push(FwCfgEntry { host_format: 0, guest_format: FORMAT_ELF, size: 4132, paddr: r.start });
    }
    if data.len() >= 16 {
        if let Ok(e) = FwCfgEntry::from_bytes(&data[data.len() - 16..]) {
            entries.push(e);
        }
    }
    for e in &entries {
        if let Ok(blob) = d.read_guest_note(e) {
            assert!(blob.end <= blob.data.len() && blob.start <= blob.end);
            let _ = text::Index::build(blob.bytes());
        }
    }
});
