//! text::Index::build over arbitrary bytes, then every accessor; lookups must agree with the
//! index's own entries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::bitness;
use vmcoreinfo::text;

fuzz_target!(|data: &[u8]| {
    let idx = text::Index::build(data);
    let v = idx.view(data);
    let _ = (idx.len(), idx.is_empty(), idx.text_len(), idx.missing_final_newline());
    assert!(idx.text_len() <= data.len());
    for d in idx.diagnostics() {
        let _ = d.to_string();
    }
    assert!(idx.diagnostics().len() <= text::MAX_DIAGNOSTICS + 1);
    let _ = v.text();
    assert_eq!(v.iter().len(), v.len());
    for (i, item) in v.items().enumerate() {
        if i >= 256 {
            break;
        }
        // A key found by the index is found again by lookup, at its first occurrence.
        let again = v.item_bytes(item.key).expect("indexed key not found");
        assert_eq!(again.key, item.key);
        assert!(again.key_offset <= item.key_offset);
        let _ = (v.get_udec("x"), item.value_offset);
        if let Ok(k) = std::str::from_utf8(item.key) {
            let _ = (v.get_udec(k), v.get_hex(k), v.get_number(k), v.get_str(k), v.contains(k));
        }
    }
    let _ = (v.osrelease(), v.build_id(), v.build_id_bytes(), v.page_size(), v.kernel_offset());
    let _ = (v.phys_base(), v.crashtime(), v.symbol("init_uts_ns"), v.symbol("_stext"));
    let _ = (v.size("page"), v.length("mem_section"), v.offset("uts_namespace", "name"));
    let _ = (v.number("VA_BITS"), v.number("phys_base"), v.config("X86_PAE"), v.config("CONFIG_SPARSEMEM"));
    let long = "x".repeat(200);
    let _ = (v.symbol(&long), v.offset(&long, &long));
    for bits in [32, 64] {
        let _ = bitness::check_text_address_width(&v, bits);
    }
    let _ = text::is_windows_dump_header(data);
});
