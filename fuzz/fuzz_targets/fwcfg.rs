//! fw_cfg `etc/vmcoreinfo`: entry decoding, QEMU's guest-note rules over arbitrary note bytes,
//! and the device's write model driven by a sequence of writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::fwcfg::{self, FwCfgDevice, FwCfgEntry, WriteOutcome};

fuzz_target!(|data: &[u8]| {
    // The entry as given, of any length.
    match FwCfgEntry::from_bytes(data) {
        Ok(e) => assert_eq!(e.to_bytes().as_slice(), data),
        Err(e) => assert!(data.len() != 16 && e.offset().is_some()),
    }
    if data.len() < 16 {
        return;
    }
    let e = FwCfgEntry::from_bytes(&data[..16]).unwrap();
    let note = &data[16..];
    for big in [false, true] {
        for limit in [fwcfg::MAX_GUEST_NOTE_SIZE, 12, u32::MAX] {
            if let Ok(s) = fwcfg::check_guest_note(e.size, e.guest_format, note, big, limit) {
                assert!(s.padded_size <= u64::from(e.size));
                assert!(s.desc_range().end as u64 <= s.padded_size);
                let _ = s.name_range();
            }
        }
    }
    // Writes: (offset byte, length byte, bytes...) records.
    let mut dev = FwCfgDevice::new();
    let mut rest = note;
    while rest.len() >= 2 {
        let (off, len) = (u64::from(rest[0]) | if rest[0] & 0x80 != 0 { u64::MAX << 8 } else { 0 }, usize::from(rest[1] % 24));
        rest = &rest[2..];
        let n = len.min(rest.len());
        let before = dev.entry();
        let out = dev.write(off, &rest[..n]);
        let _ = out.name();
        match out {
            WriteOutcome::Accepted => assert!(dev.has_vmcoreinfo()),
            WriteOutcome::Ignored { .. } => assert_eq!(dev.entry(), before),
            _ => {}
        }
        rest = &rest[n..];
        if rest.first() == Some(&0xff) {
            dev.reset();
            assert!(!dev.has_vmcoreinfo());
            rest = &rest[1..];
        }
    }
});
