//! notes::notes over arbitrary bytes in both byte orders and every p_align the reader knows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::fwcfg;
use vmcoreinfo::notes;

fuzz_target!(|data: &[u8]| {
    for big in [false, true] {
        for align in [0u64, 4, 8, 3, u64::MAX] {
            let mut last_end = 0usize;
            let mut count = 0usize;
            for n in notes::notes(data, big, align, 0x1000) {
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        assert!(e.offset().is_some_and(|o| o >= 0x1000 && o <= 0x1000 + data.len() as u64));
                        break;
                    }
                };
                count += 1;
                assert!(count <= data.len() / 12 + 1, "more notes than the bytes can hold");
                assert!(n.offset >= last_end, "notes go backwards");
                assert!(n.desc_offset >= n.offset + 12);
                assert!(n.desc_offset + n.desc.len() <= data.len());
                if !n.desc.is_empty() {
                    assert_eq!(n.desc.as_ptr(), data[n.desc_offset..].as_ptr());
                }
                // The offset we report is where this note's header really is.
                let w: [u8; 4] = data[n.offset..n.offset + 4].try_into().unwrap();
                assert_eq!(if big { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) }, n.namesz);
                last_end = n.desc_offset + n.desc.len();
                let _ = n.padded_len();
                let _ = n.is_vmcoreinfo();
                let _ =
                    fwcfg::check_dump_note(n.namesz, n.desc.len() as u32, n.offset as u64, u64::from(fwcfg::MAX_GUEST_NOTE_SIZE));
            }
        }
    }
});
