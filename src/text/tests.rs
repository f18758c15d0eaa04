//! Tests of the text index, its view and the value parsers.
use super::*;
use crate::error::ErrorKind;

const X86: &[u8] = include_bytes!("../../tests/fixtures/x86_64.VMCOREINFO.txt");
const ARM: &[u8] = include_bytes!("../../tests/fixtures/arm64.VMCOREINFO.txt");

fn kinds(ix: &Index) -> Vec<&'static str> {
    ix.diagnostics().iter().map(|d| d.kind.name()).collect()
}

#[test]
fn x86_64_fixture() {
    let ix = Index::build(X86);
    assert!(ix.diagnostics().is_empty(), "{:?}", ix.diagnostics());
    assert!(!ix.missing_final_newline());
    assert_eq!(ix.text_len(), X86.len());
    let v = ix.view(X86);
    assert_eq!(v.len(), 108);
    assert_eq!(v.osrelease().as_deref(), Some("6.1.0-56-cloud-amd64"));
    assert_eq!(v.build_id().as_deref(), Some("3b43fad5034874490492495d552c0af6a5fab235"));
    let id = v.build_id_bytes().unwrap().unwrap();
    assert_eq!(id.len(), 20);
    assert_eq!(&id[..3], &[0x3b, 0x43, 0xfa]);
    assert_eq!(v.page_size().unwrap(), Some(4096));
    assert_eq!(v.phys_base().unwrap(), Some(-205520896));
    assert_eq!(v.phys_base().unwrap(), Some(-0xc400000));
    assert_eq!(v.kernel_offset().unwrap(), Some(0x12800000));
    assert_eq!(v.symbol("_stext").unwrap(), Some(0xffffffff93800000));
    assert_eq!(v.symbol("init_uts_ns").unwrap(), Some(0xffffffff953f9b60));
    assert_eq!(v.offset("uts_namespace", "name").unwrap(), Some(0));
    assert_eq!(v.offset("page", "_refcount").unwrap(), Some(52));
    assert_eq!(v.size("pglist_data").unwrap(), Some(174208));
    assert_eq!(v.length("mem_section").unwrap(), Some(2048));
    assert_eq!(v.number("pgtable_l5_enabled").unwrap(), Some(0));
    assert_eq!(v.number("SECTION_SIZE_BITS").unwrap(), Some(27));
    assert_eq!(v.crashtime().unwrap(), None);
    assert_eq!(v.symbol("no_such_symbol").unwrap(), None);
    // Text order, first key first.
    let first = v.iter().next().unwrap();
    assert_eq!(first, (&b"OSRELEASE"[..], &b"6.1.0-56-cloud-amd64"[..]));
    let last = v.items().last().unwrap();
    assert_eq!(last.key, b"NUMBER(sme_mask)");
    assert_eq!(last.line, 108);
    // Offsets point into the text.
    let it = v.item_for("PAGESIZE").unwrap();
    assert_eq!(&X86[it.value_offset as usize..][..4], b"4096");
    assert_eq!(&X86[it.key_offset as usize..][..9], b"PAGESIZE=");
}

#[test]
fn arm64_fixture() {
    let ix = Index::build(ARM);
    assert!(ix.diagnostics().is_empty(), "{:?}", ix.diagnostics());
    let v = ix.view(ARM);
    assert_eq!(v.len(), 113);
    assert_eq!(v.osrelease().as_deref(), Some("6.1.0-56-cloud-arm64"));
    assert_eq!(v.page_size().unwrap(), Some(4096));
    assert_eq!(v.kernel_offset().unwrap(), Some(0x444d58600000));
    assert_eq!(v.symbol("swapper_pg_dir").unwrap(), Some(0xffffc44d6198f000));
    assert_eq!(v.number("VA_BITS").unwrap(), Some(48));
    assert_eq!(v.number("kimage_voffset").unwrap(), Some(0xffffc44d20400000));
    assert_eq!(v.number("PHYS_OFFSET").unwrap(), Some(0xffffa74000000000));
    assert_eq!(v.number("TCR_EL1_T1SZ").unwrap(), Some(0x10));
    assert_eq!(v.number("KERNELPACMASK").unwrap(), Some(0));
    assert_eq!(v.number("PAGE_BUDDY_MAPCOUNT_VALUE").unwrap(), Some(-129));
    assert_eq!(v.number("VMALLOC_END").unwrap(), Some(0xfffffbfff0000000));
    assert_eq!(v.offset("page", "flags").unwrap(), Some(0));
    assert_eq!(v.phys_base().unwrap(), None);
    assert_eq!(v.config("X86_PAE").unwrap(), None);
}

#[test]
fn nul_padding_ends_text_silently() {
    let mut t = X86.to_vec();
    t.extend_from_slice(&[0; 37]);
    let ix = Index::build(&t);
    assert!(ix.diagnostics().is_empty());
    assert_eq!(ix.text_len(), X86.len());
    assert_eq!(ix.len(), 108);
    assert_eq!(ix.view(&t).text(), X86);
}

#[test]
fn nul_inside_text_ends_it_with_diagnostic() {
    let t = b"A=1\nB=2\0C=3\nD=4\n";
    let ix = Index::build(t);
    assert_eq!(kinds(&ix), ["nul-in-text"]);
    let d = &ix.diagnostics()[0];
    assert_eq!((d.offset, d.line), (7, 2));
    assert_eq!(ix.text_len(), 7);
    let v = ix.view(t);
    assert_eq!(v.get("B"), Some(&b"2"[..]));
    assert_eq!(v.get("C"), None);
    assert!(ix.missing_final_newline());
}

#[test]
fn missing_final_newline_is_flagged_not_diagnosed() {
    let ix = Index::build(b"A=1\nB=2");
    assert!(ix.diagnostics().is_empty());
    assert!(ix.missing_final_newline());
    assert_eq!(ix.view(b"A=1\nB=2").get("B"), Some(&b"2"[..]));
    assert!(!Index::build(b"A=1\n").missing_final_newline());
    assert!(!Index::build(b"").missing_final_newline());
    assert!(Index::build(b"").is_empty());
}

#[test]
fn lines_without_equals_and_empty_lines() {
    let t = b"\n\nA=1\njunk\n\n=nokey\nB=\n";
    let ix = Index::build(t);
    assert_eq!(kinds(&ix), ["no-equals", "empty-key"]);
    assert_eq!(ix.diagnostics()[0].line, 4);
    assert_eq!(ix.diagnostics()[0].offset, 6);
    let v = ix.view(t);
    assert_eq!(v.len(), 2);
    assert_eq!(v.get("B"), Some(&b""[..]));
    assert_eq!(v.get_udec("B").unwrap_err().kind, ErrorKind::Format);
}

#[test]
fn long_line_diagnostic_boundary() {
    // 78 content bytes + '\n' = 79: what the kernel can write.
    let ok = format!("K={}\n", "x".repeat(76));
    assert!(Index::build(ok.as_bytes()).diagnostics().is_empty());
    let long = format!("K={}\n", "x".repeat(77));
    let ix = Index::build(long.as_bytes());
    assert_eq!(kinds(&ix), ["long-line"]);
    assert_eq!(ix.view(long.as_bytes()).get("K").map(|v| v.len()), Some(77));
    // Without a newline, 79 bytes is a possible (cut) kernel line; 80 is not.
    let cut = format!("K={}", "x".repeat(77));
    assert!(Index::build(cut.as_bytes()).diagnostics().is_empty());
    let over = format!("K={}", "x".repeat(78));
    assert_eq!(kinds(&Index::build(over.as_bytes())), ["long-line"]);
}

#[test]
fn duplicate_key_first_wins() {
    let t = b"A=1\nB=2\nA=3\nC=4\nA=5\n";
    let ix = Index::build(t);
    assert_eq!(kinds(&ix), ["duplicate-key", "duplicate-key"]);
    assert_eq!(ix.diagnostics()[0].line, 3);
    assert!(ix.diagnostics()[0].message.contains("key A on line 3 repeats line 1"), "{}", ix.diagnostics()[0].message);
    let v = ix.view(t);
    assert_eq!(v.get("A"), Some(&b"1"[..]));
    let keys: Vec<_> = v.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [&b"A"[..], b"B", b"C"]);
    assert_eq!(v.get("C"), Some(&b"4"[..]));
}

#[test]
fn diagnostics_stay_in_text_order_with_duplicates() {
    let t = b"A=1\nA=2\njunk\n";
    let ix = Index::build(t);
    assert_eq!(kinds(&ix), ["duplicate-key", "no-equals"]);
}

#[test]
fn non_utf8_kept_as_bytes() {
    let t = b"OSRELEASE=6.1\xff\nB=\xc3\xa9\n";
    let ix = Index::build(t);
    assert_eq!(kinds(&ix), ["non-utf8"]);
    let v = ix.view(t);
    assert_eq!(v.get("OSRELEASE"), Some(&b"6.1\xff"[..]));
    assert_eq!(v.osrelease().as_deref(), Some("6.1\u{fffd}"));
    assert_eq!(v.get_str("B").as_deref(), Some("é"));
}

#[test]
fn carriage_return_stripped() {
    let t = b"A=1\r\nB=2\r";
    let ix = Index::build(t);
    assert_eq!(kinds(&ix), ["carriage-return", "carriage-return"]);
    let v = ix.view(t);
    assert_eq!(v.get_udec("A").unwrap(), Some(1));
    assert_eq!(v.get_udec("B").unwrap(), Some(2));
    // '\r' alone on a line: stripped, then an empty line.
    let ix = Index::build(b"\r\nA=1\n");
    assert_eq!(kinds(&ix), ["carriage-return"]);
    assert_eq!(ix.len(), 1);
}

#[test]
fn key_splits_at_first_equals() {
    let t = b"A=b=c\n";
    let v_ix = Index::build(t);
    let v = v_ix.view(t);
    assert_eq!(v.get("A"), Some(&b"b=c"[..]));
    assert_eq!(v.get("A=b"), None);
}

#[test]
fn phys_base_is_signed_decimal_not_hex() {
    let t = b"NUMBER(phys_base)=-167772160\n";
    let ix = Index::build(t);
    assert_eq!(ix.view(t).phys_base().unwrap(), Some(-0xa000000));
    let t = b"NUMBER(phys_base)=0\n";
    let ix = Index::build(t);
    assert_eq!(ix.view(t).phys_base().unwrap(), Some(0)); // present and zero
    let t = b"NUMBER(phys_base)=0xfffffffff6000000\n";
    let ix = Index::build(t);
    assert_eq!(ix.view(t).phys_base().unwrap(), Some(-0xa000000));
    let t = b"NUMBER(phys_base)=1000000\n";
    let ix = Index::build(t);
    assert_eq!(ix.view(t).phys_base().unwrap(), Some(1_000_000));
    let t = b"NUMBER(phys_base)=ff\n";
    let ix = Index::build(t);
    let e = ix.view(t).phys_base().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert_eq!(e.offset(), Some(18));
}

#[test]
fn numeric_errors_carry_value_offset() {
    let t = b"PAGESIZE=4096\nSYMBOL(x)=zz\n";
    let ix = Index::build(t);
    let e = ix.view(t).symbol("x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert_eq!(e.offset(), Some(24));
    assert!(e.message.contains("SYMBOL(x)=zz"), "{}", e.message);
    assert_eq!(e.shifted(1000).offset(), Some(1024));
}

#[test]
fn symbol_tolerates_0x() {
    let t = b"SYMBOL(a)=0xffffffff81000000\nSYMBOL(b)=0X10\nKERNELOFFSET=0\n";
    let ix = Index::build(t);
    let v = ix.view(t);
    assert_eq!(v.symbol("a").unwrap(), Some(0xffffffff81000000));
    assert_eq!(v.symbol("b").unwrap(), Some(0x10));
    assert_eq!(v.kernel_offset().unwrap(), Some(0));
}

#[test]
fn number_forms_and_limits() {
    assert_eq!(parse_number(b"-129"), Ok(-129));
    assert_eq!(parse_number(b"0x0"), Ok(0));
    assert_eq!(parse_number(b"0xffffffffffffffff"), Ok(u64::MAX as i128));
    assert_eq!(parse_number(b"18446744073709551615"), Ok(u64::MAX as i128));
    assert!(parse_number(b"18446744073709551616").is_err());
    assert!(parse_number(b"0x10000000000000000").is_err());
    assert_eq!(parse_number(b"-9223372036854775808"), Ok(i64::MIN as i128));
    assert!(parse_number(b"-9223372036854775809").is_err());
    for bad in [&b""[..], b"-", b"0x", b"-0x", b"+1", b" 1", b"1 ", b"1e3", b"--1", b"0x-1"] {
        assert!(parse_number(bad).is_err(), "{:?}", bad);
    }
    assert_eq!(parse_udec(b"18446744073709551615"), Ok(u64::MAX));
    assert!(parse_udec(b"18446744073709551616").is_err());
    assert!(parse_udec(b"-1").is_err());
    assert!(parse_udec(b"").is_err());
    assert!(parse_hex(b"0x").is_err());
    assert!(parse_hex(b"").is_err());
    assert!(parse_hex(b"1ffffffffffffffff").is_err());
    assert_eq!(parse_hex(b"FFFFffffFFFFffff"), Ok(u64::MAX));
    assert_eq!(parse_idec(b"-5"), Ok(-5));
    assert!(parse_idec(b"9223372036854775808").is_err());
    let long = vec![b'9'; 10_000];
    assert!(parse_number(&long).is_err());
    assert!(parse_udec(&long).is_err());
    assert!(parse_hex(&long).is_err());
}

#[test]
fn config_values() {
    let t = b"CONFIG_X86_PAE=y\nCONFIG_A=n\nCONFIG_B=m\nCONFIG_C=\n";
    let ix = Index::build(t);
    let v = ix.view(t);
    assert_eq!(v.config("X86_PAE").unwrap(), Some(true));
    assert_eq!(v.config("CONFIG_X86_PAE").unwrap(), Some(true));
    assert_eq!(v.config("A").unwrap(), Some(false));
    assert_eq!(v.config("B").unwrap_err().kind, ErrorKind::Format);
    assert_eq!(v.config("C").unwrap_err().kind, ErrorKind::Format);
    assert_eq!(v.config("D").unwrap(), None);
}

#[test]
fn crashtime_and_build_id_errors() {
    let t = b"CRASHTIME=1700000000\nBUILD-ID=abc\n";
    let ix = Index::build(t);
    let v = ix.view(t);
    assert_eq!(v.crashtime().unwrap(), Some(1_700_000_000));
    assert_eq!(v.build_id().as_deref(), Some("abc"));
    assert_eq!(v.build_id_bytes().unwrap_err().kind, ErrorKind::Format);
    let t = b"BUILD-ID=zz\n";
    let ix = Index::build(t);
    assert!(ix.view(t).build_id_bytes().is_err());
    let t = b"OSRELEASE=x\n";
    let ix = Index::build(t);
    assert_eq!(ix.view(t).build_id_bytes().unwrap(), None);
}

#[test]
fn long_keys_lookup_uses_heap_path() {
    let name = "n".repeat(300);
    let t = format!("SYMBOL({name})=10\n");
    let ix = Index::build(t.as_bytes());
    assert_eq!(ix.view(t.as_bytes()).symbol(&name).unwrap(), Some(0x10));
}

#[test]
fn windows_header_detection() {
    assert!(is_windows_dump_header(b"PAGEDU64\0\0\0\0"));
    assert!(is_windows_dump_header(b"PAGEDUMP"));
    assert!(!is_windows_dump_header(b"PAGEDU6"));
    assert!(!is_windows_dump_header(b"OSRELEASE=6.1\n"));
    assert!(!is_windows_dump_header(b""));
}

#[test]
fn view_with_wrong_text_does_not_panic() {
    let ix = Index::build(X86);
    let v = ix.view(b"short");
    let _ = v.osrelease();
    let _ = v.page_size();
    assert_eq!(v.items().count(), 108);
    let _ = v.text();
}

#[test]
fn hostile_inputs_do_not_panic() {
    // 1 MiB of pseudo-random bytes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let garbage: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let ix = Index::build(&garbage);
    assert!(ix.diagnostics().len() <= MAX_DIAGNOSTICS + 1);
    let v = ix.view(&garbage);
    for it in v.items() {
        let _ = parse_number(it.value);
    }
    // The same with no NULs.
    let nonul: Vec<u8> = garbage.iter().map(|&c| c.max(1)).collect();
    let ix = Index::build(&nonul);
    assert_eq!(ix.text_len(), nonul.len());
    assert_eq!(ix.diagnostics().last().map(|d| d.kind), Some(DiagKind::TooManyDiagnostics));

    // 100k lines, many distinct, many duplicates.
    let mut t = Vec::new();
    for i in 0..100_000u32 {
        t.extend_from_slice(format!("SYMBOL(s{})={:x}\n", i % 60_000, i).as_bytes());
    }
    let ix = Index::build(&t);
    assert_eq!(ix.len(), 60_000);
    let v = ix.view(&t);
    assert_eq!(v.symbol("s59999").unwrap(), Some(59_999));
    assert_eq!(v.symbol("s1").unwrap(), Some(1));

    // All '=', all '\n', all '\r'.
    let eq = vec![b'='; 1 << 20];
    let ix = Index::build(&eq);
    assert_eq!(ix.len(), 0);
    assert_eq!(kinds(&ix), ["long-line", "empty-key"]);
    let nl = vec![b'\n'; 1 << 20];
    assert!(Index::build(&nl).diagnostics().is_empty());
    let cr = vec![b'\r'; 1 << 16];
    let ix = Index::build(&cr);
    assert_eq!(ix.len(), 0);
    assert_eq!(kinds(&ix), ["carriage-return", "long-line", "no-equals"]);
    let lines = b"=\n".repeat(100_000);
    let ix = Index::build(&lines);
    assert_eq!(ix.diagnostics().len(), MAX_DIAGNOSTICS + 1);
    let keys = b"K=\n".repeat(100_000);
    let ix = Index::build(&keys);
    assert_eq!(ix.len(), 1);

    // Very long numbers.
    let t = format!("PAGESIZE={}\nNUMBER(x)=-{}\n", "9".repeat(5000), "1".repeat(5000));
    let ix = Index::build(t.as_bytes());
    let v = ix.view(t.as_bytes());
    assert!(v.page_size().is_err());
    assert!(v.number("x").is_err());
    let t = b"PAGESIZE=18446744073709551616\nNUMBER(a)=-\nNUMBER(b)=0x\nSYMBOL(c)=\n";
    let ix = Index::build(t);
    let v = ix.view(t);
    assert!(v.page_size().is_err());
    assert!(v.number("a").is_err());
    assert!(v.number("b").is_err());
    assert!(v.symbol("c").is_err());
}

#[test]
#[ignore = "timing; run with --release -- --ignored --nocapture"]
fn bench_build() {
    let n = 200_000;
    let t0 = std::time::Instant::now();
    let mut total = 0;
    for _ in 0..n {
        total += std::hint::black_box(Index::build(std::hint::black_box(X86))).len();
    }
    let per = t0.elapsed() / n;
    println!("Index::build x86_64 fixture ({} bytes): {per:?} per build ({total})", X86.len());
    let ix = Index::build(X86);
    let v = ix.view(X86);
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(v.symbol(std::hint::black_box("_stext")).ok());
    }
    println!("symbol lookup: {:?}", t0.elapsed() / n);
}

/// `Index::build_only` answers every lookup of its keys exactly as the full index does (item,
/// line, offsets, typed values and their errors), on real texts, edge cases and mutations.
#[test]
fn build_only_matches_the_full_index_for_its_keys() {
    const KEYS: [&[u8]; 6] = [b"OSRELEASE", b"BUILD-ID", b"KERNELOFFSET", b"NUMBER(phys_base)", b"PAGESIZE", b"SYMBOL(_stext)"];
    let item = |v: &View<'_>, k: &[u8]| {
        v.item_for(std::str::from_utf8(k).unwrap())
            .map(|i| (i.key.to_vec(), i.value.to_vec(), i.key_offset, i.value_offset, i.line))
    };
    let err = |e: crate::error::Error| format!("{e:?}");
    let set = KeySet::new(&[&KEYS[..], &[b"", b"A=B", b"A\nB", b"PAGESIZE"]].concat());
    let check = |t: &[u8]| {
        let full = Index::build(t);
        let only = Index::build_only(t, &set);
        let (f, o) = (full.view(t), only.view(t));
        for k in KEYS {
            assert_eq!(item(&f, k), item(&o, k), "key {:?} in {:?}", String::from_utf8_lossy(k), String::from_utf8_lossy(t));
        }
        assert_eq!(f.osrelease(), o.osrelease());
        assert_eq!(f.build_id(), o.build_id());
        assert_eq!(f.kernel_offset().map_err(err), o.kernel_offset().map_err(err));
        assert_eq!(f.phys_base().map_err(err), o.phys_base().map_err(err));
        assert_eq!(f.page_size().map_err(err), o.page_size().map_err(err));
        assert_eq!((full.text_len(), full.missing_final_newline()), (only.text_len(), only.missing_final_newline()));
        assert!(o.get("CRASHTIME").is_none() && only.diagnostics().is_empty());
    };
    let edge: &[&[u8]] = &[
        b"",
        b"\n\n",
        b"OSRELEASE=6.1\n",
        b"OSRELEASE=6.1",
        b"OSRELEASE=6.1\r\nPAGESIZE=4096\r",
        b"OSRELEASE=\r\nPAGESIZE=\n",
        b"XOSRELEASE=1\nOSRELEASE=2\nOSRELEASE=3\n",
        b"OSRELEASE\nOSRELEASE=a=b\n",
        b"PAGESIZE=4096\0PAGESIZE=8192\n",
        b"\0OSRELEASE=x\n",
        b"A=OSRELEASE=no\nOSRELEASE=yes\n",
        b"NUMBER(phys_base)=-167772160\nNUMBER(phys_base)=1\n",
        b"NUMBER(phys_base)=zz\nKERNELOFFSET=g\nPAGESIZE=-1\n",
        b"=OSRELEASE=no\n OSRELEASE=no\nOSRELEASE =no\n",
        b"KERNELOFFSET=\xff\xfe\nBUILD-ID=\xc3\n",
        b"SYMBOL(_stext)=ffffffff81000000\r\n\r\n\n",
    ];
    for t in edge {
        check(t);
    }
    // Mutations of the real texts: each byte replaced by a byte that changes line structure.
    for real in [X86, ARM] {
        check(real);
        let mut seed = 0x9e37_79b9_u64;
        for _ in 0..3000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let mut t = real.to_vec();
            let at = (seed >> 33) as usize % t.len();
            t[at] = [b'\n', b'\r', b'=', 0, b'O', b'x'][(seed >> 20) as usize % 6];
            if seed & 1 == 0 {
                t.truncate(at + 1);
            }
            check(&t);
        }
    }
}
