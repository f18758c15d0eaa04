//! Synthetic kallsyms tables laid out as scripts/kallsyms.c writes them.

use super::*;
use crate::kview::printk::tests::FakeMem;
use crate::text::Index;

const NUM: u64 = 0x1_0000;
const NAMES: u64 = 0x2_0000;
const TT: u64 = 0x4_0000;
const TI: u64 = 0x5_0000;
const OFFS: u64 = 0x8080_0000;
const BASE: u64 = 0x7_0000;
const ADDRS: u64 = 0x8_0000;

/// Tokens: byte b < 128 expands to the character b; 200 expands to "_s" and 201 to "text" (as
/// the kernel's token compression merges frequent pairs); other bytes to "?".
fn token_tables(big: bool) -> (Vec<u8>, Vec<u8>) {
    let mut table = Vec::new();
    let mut index = Vec::new();
    for b in 0..256u32 {
        let off = table.len() as u16;
        index.extend_from_slice(&if big { off.to_be_bytes() } else { off.to_le_bytes() });
        match b {
            1..=127 => table.push(b as u8),
            200 => table.extend_from_slice(b"_s"),
            201 => table.extend_from_slice(b"text"),
            _ => table.push(b'?'),
        }
        table.push(0);
    }
    (table, index)
}

fn encode(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = name.as_bytes();
    while !s.is_empty() {
        if s.starts_with(b"_s") {
            out.push(200);
            s = &s[2..];
        } else if s.starts_with(b"text") {
            out.push(201);
            s = &s[4..];
        } else {
            out.push(s[0]);
            s = &s[1..];
        }
    }
    let mut rec = Vec::new();
    if out.len() >= 0x80 {
        rec.push(0x80 | (out.len() & 0x7f) as u8);
        rec.push((out.len() >> 7) as u8);
    } else {
        rec.push(out.len() as u8);
    }
    rec.extend(out);
    rec
}

/// Symbols ("Tname", address) in one of the encodings; returns the memory and the text.
fn build(syms: &[(&str, u64)], mode: AddressMode, ptr: usize, big: bool) -> (FakeMem, String) {
    let mut mem = FakeMem::new(ptr, big);
    let (table, index) = token_tables(big);
    mem.add(TT, table);
    mem.add(TI, index);
    mem.add(NUM, mem.put(syms.len() as u64, 4));
    let names: Vec<u8> = syms.iter().flat_map(|(n, _)| encode(n)).collect();
    mem.add(NAMES, names);
    let base = syms.iter().map(|s| s.1).filter(|&a| a >= 0x1000_0000).min().unwrap_or(0);
    let stext = syms.iter().find(|s| &s.0[1..] == "_stext").map(|s| s.1).unwrap_or(0);
    let mut text = format!(
        "SYMBOL(kallsyms_num_syms)={NUM:x}\nSYMBOL(kallsyms_names)={NAMES:x}\nSYMBOL(kallsyms_token_table)={TT:x}\n\
         SYMBOL(kallsyms_token_index)={TI:x}\nSYMBOL(_stext)={stext:x}\n"
    );
    let mut offs = Vec::new();
    for (i, &(_, a)) in syms.iter().enumerate() {
        let o: u32 = match mode {
            AddressMode::BaseRelative => (a - base) as u32,
            AddressMode::AbsolutePercpu if a < 0x1000_0000 => a as u32,
            AddressMode::AbsolutePercpu => (-((a - base) as i64) - 1) as i32 as u32,
            AddressMode::PlaceRelative => (a as i64 - (OFFS + 4 * i as u64) as i64) as i32 as u32,
            AddressMode::Absolute => 0,
        };
        offs.extend_from_slice(&mem.put(u64::from(o), 4));
    }
    match mode {
        AddressMode::Absolute => {
            let v: Vec<u8> = syms.iter().flat_map(|s| mem.put(s.1, ptr)).collect();
            mem.add(ADDRS, v);
            text += &format!("SYMBOL(kallsyms_addresses)={ADDRS:x}\n");
        }
        _ => {
            mem.add(OFFS, offs);
            text += &format!("SYMBOL(kallsyms_offsets)={OFFS:x}\n");
            if mode != AddressMode::PlaceRelative {
                let b = mem.put(base, ptr);
                mem.add(BASE, b);
                text += &format!("SYMBOL(kallsyms_relative_base)={BASE:x}\n");
            }
        }
    }
    (mem, text)
}

fn decode(mem: &FakeMem, text: &str) -> Result<KernelSymbols> {
    let idx = Index::build(text.as_bytes());
    read_symbols(mem, &idx.view(text.as_bytes()), &SymLimits::default())
}

fn sample() -> Vec<(String, u64)> {
    let long = format!("Tlong_{}", "x".repeat(300));
    vec![
        ("Afixed_percpu".to_owned(), 0x1000),
        ("T_text".to_owned(), 0x8100_0000),
        ("T_stext".to_owned(), 0x8100_0000),
        ("tstatic_fn".to_owned(), 0x8100_0040),
        (long, 0x8100_0080),
        ("tstatic_fn".to_owned(), 0x8100_0100),
        ("Djiffies".to_owned(), 0x8200_0000),
    ]
}

#[test]
fn every_address_mode_is_found_from_stext() {
    let owned = sample();
    for (mode, ptr, big) in [
        (AddressMode::BaseRelative, 8, false),
        (AddressMode::AbsolutePercpu, 8, false),
        (AddressMode::PlaceRelative, 8, false),
        (AddressMode::Absolute, 8, false),
        (AddressMode::BaseRelative, 4, false),
        (AddressMode::BaseRelative, 8, true),
    ] {
        // base-relative cannot hold the per-CPU symbol at 0x1000 below the base: leave it out.
        let syms: Vec<(&str, u64)> = owned
            .iter()
            .filter(|s| mode == AddressMode::AbsolutePercpu || mode == AddressMode::Absolute || s.1 >= 0x1000_0000)
            .map(|(n, a)| (n.as_str(), *a))
            .collect();
        let (mem, text) = build(&syms, mode, ptr, big);
        let k = decode(&mem, &text).unwrap_or_else(|e| panic!("{mode:?} ptr={ptr} big={big}: {e}"));
        assert_eq!(k.mode(), mode);
        assert_eq!(k.len(), syms.len());
        let got: Vec<(String, u64, u8)> = k.iter().map(|(n, a, t)| (String::from_utf8(n.to_vec()).unwrap(), a, t)).collect();
        let want: Vec<(String, u64, u8)> = syms.iter().map(|(n, a)| (n[1..].to_owned(), *a, n.as_bytes()[0])).collect();
        assert_eq!(got, want, "{mode:?}");
        assert_eq!(k.address(b"_stext"), Some(0x8100_0000));
        assert_eq!(k.address(b"tstatic_fn"), None, "the type character is not part of the name");
        assert_eq!(k.address(b"static_fn"), Some(0x8100_0040), "the first of duplicate names");
        assert_eq!(k.address(b"nope"), None);
        // _text and _stext share an address: the first in table order is the one reported.
        let (i, off) = k.lookup(0x8100_0010).unwrap();
        assert_eq!((k.name(i), off), (&b"_text"[..], 0x10));
        let (i, off) = k.lookup(0x8100_0100).unwrap();
        assert_eq!((k.name(i), off), (&b"static_fn"[..], 0));
        let (i, off) = k.lookup(u64::from(u32::MAX)).unwrap();
        assert_eq!((k.name(i), off), (&b"jiffies"[..], u64::from(u32::MAX) - 0x8200_0000));
        assert!(k.lookup(0x10).is_none() || mode == AddressMode::AbsolutePercpu || mode == AddressMode::Absolute);
        assert_eq!(k.iter().find(|s| s.0.starts_with(b"long_")).unwrap().0.len(), 305, "a 2-byte (big symbol) length");
    }
}

#[test]
fn hostile_tables_are_typed_errors() {
    let owned = sample();
    let syms: Vec<(&str, u64)> = owned.iter().skip(1).map(|(n, a)| (n.as_str(), *a)).collect();
    let (mem, text) = build(&syms, AddressMode::BaseRelative, 8, false);
    let set = |mem: &mut FakeMem, base: u64, off: usize, bytes: &[u8]| {
        let r = &mut mem.regions.iter_mut().find(|(a, _)| *a == base).unwrap().1;
        r[off..off + bytes.len()].copy_from_slice(bytes);
    };
    // An absurd symbol count.
    let mut m = build(&syms, AddressMode::BaseRelative, 8, false).0;
    set(&mut m, NUM, 0, &u32::MAX.to_le_bytes());
    assert_eq!(decode(&m, &text).unwrap_err().kind, ErrorKind::Limit);
    // More symbols than the names table holds: the read runs off the mapped names.
    let mut m = build(&syms, AddressMode::BaseRelative, 8, false).0;
    set(&mut m, NUM, 0, &1000u32.to_le_bytes());
    assert_eq!(decode(&m, &text).unwrap_err().kind, ErrorKind::Unmapped);
    // A three-byte length.
    let mut m = build(&syms, AddressMode::BaseRelative, 8, false).0;
    set(&mut m, NAMES, 0, &[0x80, 0x80]);
    assert_eq!(decode(&m, &text).unwrap_err().kind, ErrorKind::Format);
    // A token with no terminator within the table.
    let mut m = build(&syms, AddressMode::BaseRelative, 8, false).0;
    let r = &mut m.regions.iter_mut().find(|(a, _)| *a == TT).unwrap().1;
    r.iter_mut().for_each(|b| *b = b'a');
    assert_eq!(decode(&m, &text).unwrap_err().kind, ErrorKind::Unmapped);
    // SYMBOL(_stext) that no encoding reproduces.
    let e = decode(&mem, &text.replace("SYMBOL(_stext)=81000000", "SYMBOL(_stext)=81000004")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format, "{e}");
    assert!(e.to_string().contains("_stext"), "{e}");
    // Missing keys name the key.
    let e = decode(&mem, &text.replace("SYMBOL(kallsyms_token_index)", "X")).unwrap_err();
    assert!(e.to_string().contains("SYMBOL(kallsyms_token_index)"), "{e}");
    assert_eq!(e.kind, ErrorKind::Unsupported);
    // No _stext in the table.
    let no_stext: Vec<(&str, u64)> = syms.iter().filter(|s| s.0 != "T_stext").copied().collect();
    let (m, t) = build(&no_stext, AddressMode::BaseRelative, 8, false);
    let e = decode(&m, &format!("{t}SYMBOL(_stext)=81000000\n")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format, "{e}");
}

/// A kernel image at 0x8100_0000 laid out as scripts/kallsyms.c before 6.4 writes it (offsets,
/// relative_base, num_syms, names, markers, token table, token index), `n` symbols, with a decoy
/// digit string in the text before it; `num` overrides the stored count. Returns the memory, the
/// VMCOREINFO text (no kallsyms keys) and the symbols.
fn image(n: usize, num: Option<u32>, cut: Option<usize>) -> (FakeMem, String, Vec<(String, u64)>) {
    const IMG: u64 = 0x8100_0000;
    let mut syms = vec![("T_stext".to_owned(), IMG)];
    syms.extend((1..n).map(|i| (format!("tsym_{i}"), IMG + 0x40 * i as u64)));
    let mut img = vec![0u8; 0x1000];
    img[0x100..0x114].copy_from_slice(b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00");
    let align = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(8), 0);
    for (_, a) in &syms {
        img.extend_from_slice(&((a - IMG) as u32).to_le_bytes());
    }
    align(&mut img);
    img.extend_from_slice(&IMG.to_le_bytes());
    img.extend_from_slice(&num.unwrap_or(n as u32).to_le_bytes());
    align(&mut img);
    let names_at = img.len();
    let mut markers = Vec::new();
    for (i, (name, _)) in syms.iter().enumerate() {
        if i % 256 == 0 {
            markers.push((img.len() - names_at) as u32);
        }
        img.extend(encode(name));
    }
    align(&mut img);
    markers.iter().for_each(|m| img.extend_from_slice(&m.to_le_bytes()));
    align(&mut img);
    let (table, index) = token_tables(false);
    img.extend(table);
    align(&mut img);
    img.extend(index);
    if let Some(c) = cut {
        img.truncate(c);
    }
    // Mapped memory before the image (the fake's reads must lie in one region).
    let mut mem = FakeMem::new(8, false);
    let mut all = vec![0u8; 0x40000];
    all.extend(img);
    all.resize(all.len() + 0x2000, 0);
    mem.add(IMG - 0x40000, all);
    let text = format!(
        "SYMBOL(_stext)={IMG:x}\nSYMBOL(sym_5)={:x}\nSYMBOL(sym_100)={:x}\nSYMBOL(mem_section)=ffff888000001000\n",
        IMG + 0x40 * 5,
        IMG + 0x40 * 100
    );
    (mem, text, syms)
}

#[test]
fn the_scan_finds_tables_vmcoreinfo_does_not_name() {
    for n in [300, 256, 40] {
        let (mem, text, want) = image(n, None, None);
        let k = decode(&mem, &text).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(k.source(), SymbolSource::Scan);
        assert_eq!(k.mode(), AddressMode::BaseRelative);
        let got: Vec<(String, u64)> =
            k.iter().map(|(nm, a, t)| (format!("{}{}", t as char, String::from_utf8_lossy(nm)), a)).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn the_scan_refuses_what_does_not_fit() {
    // Too few VMCOREINFO symbols agree: only _stext.
    let (mem, text, _) = image(300, None, None);
    let only_stext = text.lines().next().unwrap().to_owned() + "\nSYMBOL(sym_5)=1\nSYMBOL(sym_6)=2\n";
    let e = decode(&mem, &only_stext).unwrap_err();
    assert!(e.to_string().contains("SYMBOL(kallsyms_names)") && e.to_string().contains("agree"), "{e}");
    // A hostile count, a count one off, a truncated image: no tables, a typed error.
    for (num, cut) in [(Some(u32::MAX), None), (Some(301), None), (Some(299), None), (None, Some(0x1000 + 1200 + 900))] {
        let (mem, text, _) = image(300, num, cut);
        let e = decode(&mem, &text).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{num:?} {cut:?}: {e}");
        assert!(e.to_string().contains("scan"), "{e}");
    }
    // The decoy alone is checked and refused.
    let (mem, text, _) = image(300, None, Some(0x1000));
    let idx = Index::build(text.as_bytes());
    let e = read_symbols_from(&mem, &idx.view(text.as_bytes()), &SymLimits::default(), Some(SymbolSource::Scan)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingSymbol, "{e}");
    assert!(e.to_string().contains("checked 1 candidate"), "{e}");
}
