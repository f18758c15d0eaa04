//! kdump-compressed and flattened readers on the committed fixtures (reduced from real QEMU 7.2
//! and makedumpfile 1.7.2 dumps by tools/reduce_kdump.py; see tests/fixtures/kdump/README.md),
//! and on hostile variants of them.

use std::io::Write;
use std::sync::Arc;

use vmcoreinfo::flattened::Flattened;
use vmcoreinfo::kdump::{KdumpFile, SubLayout};
use vmcoreinfo::phys::{PhysMemory, PhysRange};
use vmcoreinfo::source::ReadAt;
use vmcoreinfo::{Error, ErrorKind};

fn fixture(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/kdump/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn open_bytes(v: Vec<u8>) -> Result<KdumpFile, Error> {
    KdumpFile::open(Arc::new(v))
}

fn open(name: &str) -> KdumpFile {
    let v = fixture(name);
    if vmcoreinfo::flattened::is_flattened(&v) {
        KdumpFile::open(Arc::new(Flattened::open(Arc::new(v)).unwrap())).unwrap()
    } else {
        open_bytes(v).unwrap()
    }
}

const X86_MD: [&str; 6] = [
    "md-x86_64-zlib-d31.kdump",
    "md-x86_64-lzo-d31.kdump",
    "md-x86_64-zstd-d31.kdump",
    "md-x86_64-snappy-d31.kdump",
    "md-x86_64-none-d31.kdump",
    "md-x86_64-zlib-d31.flat",
];
const X86_QEMU: [&str; 2] = ["qemu-x86_64-zlib.kdump", "qemu-x86_64-zlib.flat"];
const ARM_QEMU: [&str; 2] = ["qemu-arm64-zlib.kdump", "qemu-arm64-zlib.flat"];
const X86_NOTE: u64 = 0x18dc000;
const ARM_NOTE: u64 = 0x4229_0000;

fn vmcoreinfo_text(kd: &KdumpFile) -> Vec<u8> {
    let (o, s) = kd.vmcoreinfo_location().unwrap();
    kd.source().read_vec(o, s, "vmcoreinfo").unwrap()
}

fn text_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines().find_map(|l| l.strip_prefix(key)).unwrap()
}

#[test]
fn headers_of_real_producers() {
    for name in X86_MD.iter().chain(&X86_QEMU).chain(&ARM_QEMU) {
        let kd = open(name);
        let qemu = name.starts_with("qemu");
        let arm = name.contains("arm64");
        assert_eq!(kd.header_version(), 6, "{name}");
        assert!(!kd.byteorder_big() && !kd.is_32bit_layout());
        assert_eq!(kd.sub_layout(), SubLayout::L64);
        assert_eq!(kd.machine(), if arm { "Unknown" } else { "x86_64" }, "{name}");
        // QEMU fills only utsname.machine; makedumpfile copies the kernel's utsname.
        if qemu {
            assert_eq!((kd.sysname(), kd.release()), ("", ""));
        } else {
            assert_eq!(kd.sysname(), "Linux");
            assert_eq!(kd.nodename(), "(none)");
            assert_eq!(kd.release(), "6.1.0-48-cloud-amd64");
            assert!(kd.version().starts_with("#1 SMP PREEMPT_DYNAMIC Debian 6.1.172-1"));
            assert_eq!(kd.domainname(), "(none)");
        }
        assert_eq!(kd.block_size(), if arm { 65536 } else { 4096 });
        assert_eq!(kd.nr_cpus(), 1);
        assert!(kd.anomalies().is_empty(), "{name}: {:?}", kd.anomalies());
        assert_eq!(kd.dump_level(), if qemu { 1 } else { 31 });
        // The VMCOREINFO location points at the text, inside the notes blob.
        let text = String::from_utf8(vmcoreinfo_text(&kd)).unwrap();
        let release = if arm { "6.1.0-56-cloud-arm64" } else { "6.1.0-48-cloud-amd64" };
        assert!(text.starts_with(&format!("OSRELEASE={release}\nBUILD-ID=")), "{name}");
        assert_eq!(text.len(), if arm { 3461 } else { 3262 });
        let (vo, vs) = kd.vmcoreinfo_location().unwrap();
        let (no, ns) = kd.notes_location().unwrap();
        assert!(no <= vo && vo + vs <= no + ns, "{name}: VMCOREINFO inside the notes");
        // phys_base: makedumpfile's is right; QEMU's x86_64 one is the known hex-parse of the
        // kernel's decimal value; arm64's PHYS_OFFSET is hex in the text, so QEMU gets it right.
        let hdr = kd.phys_base_header();
        if arm {
            let v = u64::from_str_radix(text_value(&text, "NUMBER(PHYS_OFFSET)=0x"), 16).unwrap();
            assert_eq!(hdr, v);
        } else {
            let v = text_value(&text, "NUMBER(phys_base)=").parse::<i64>().unwrap() as u64;
            assert_eq!(v, 0xffffffffe6400000);
            assert_eq!(hdr, if qemu { 0xfffffffbcdfeccee } else { v }, "{name}");
        }
    }
}

#[test]
fn vmcoreinfo_note_page_reads_back() {
    for (names, paddr) in [(&X86_MD[..], X86_NOTE), (&X86_QEMU[..], X86_NOTE), (&ARM_QEMU[..], ARM_NOTE)] {
        for name in names {
            if name.contains("lzo") && !cfg!(feature = "lzo") {
                continue;
            }
            let kd = open(name);
            let text = vmcoreinfo_text(&kd);
            let mut note = vec![0u8; 24 + text.len()];
            kd.read_phys(paddr, &mut note).unwrap();
            assert_eq!(u32::from_le_bytes(note[0..4].try_into().unwrap()), 11);
            assert_eq!(u32::from_le_bytes(note[4..8].try_into().unwrap()) as usize, text.len());
            assert_eq!(&note[12..23], b"VMCOREINFO\0", "{name}");
            assert_eq!(&note[24..], &text[..], "{name}");
        }
    }
}

#[test]
fn every_codec_reads_the_same_pages() {
    let base = open("md-x86_64-zlib-d31.kdump");
    let bs = base.block_size() as usize;
    let pfns: Vec<u64> = base.ranges().unwrap().iter().flat_map(|r| r.start / 4096..r.end / 4096).collect();
    assert_eq!(pfns.len(), 30);
    let expect: Vec<Vec<u8>> = pfns
        .iter()
        .map(|&p| {
            let mut b = vec![0u8; bs];
            base.read_page(p, &mut b).unwrap();
            b
        })
        .collect();
    for (name, field) in [
        ("md-x86_64-lzo-d31.kdump", "lzo"),
        ("md-x86_64-zstd-d31.kdump", "zstd"),
        ("md-x86_64-snappy-d31.kdump", "snappy"),
        ("md-x86_64-zlib-d31.flat", "zlib"),
        ("qemu-x86_64-zlib.kdump", "zlib"),
        ("md-x86_64-none-d31.kdump", "raw"),
    ] {
        let kd = open(name);
        if field == "lzo" && !cfg!(feature = "lzo") {
            let mut b = vec![0u8; bs];
            let p = (0..).find(|&p| kd.pfn_present(p).unwrap() && kd.page_desc(p).unwrap().1.flags == 2).unwrap();
            assert_eq!(kd.read_page(p, &mut b).unwrap_err().kind, ErrorKind::Unsupported);
            continue;
        }
        let cs = kd.compression_summary().unwrap();
        let n = match field {
            "lzo" => cs.lzo,
            "zstd" => cs.zstd,
            "snappy" => cs.snappy,
            "zlib" => cs.zlib,
            _ => cs.raw,
        };
        assert!(n > 0, "{name}: {cs:?}");
        assert_eq!(cs.invalid, 0);
        let mut checked = 0;
        for (i, &p) in pfns.iter().enumerate() {
            if !kd.pfn_present(p).unwrap() {
                continue;
            }
            let mut b = vec![0u8; bs];
            kd.read_page(p, &mut b).unwrap();
            assert!(b == expect[i], "{name}: pfn {p} differs");
            checked += 1;
        }
        assert!(checked >= 6, "{name}: {checked}");
    }
    let st = open("md-x86_64-zstd-d31.kdump").status();
    assert_eq!(st & 0x3f, 0x20);
    assert_eq!(open("md-x86_64-snappy-d31.kdump").compression_flags(), 0x4);
    assert_eq!(open("md-x86_64-lzo-d31.kdump").compression_flags(), 0x2);
    assert_eq!(open("md-x86_64-none-d31.kdump").compression_flags(), 0);
}

#[test]
fn page_counts_and_ranges() {
    let kd = open("md-x86_64-zlib-d31.kdump");
    let pc = kd.page_counts().unwrap();
    assert_eq!(pc.dumped, 30);
    assert_eq!(pc.valid, pc.dumped + pc.excluded);
    assert!(pc.excluded > 1000, "{pc:?}");
    assert!(pc.zero >= 3, "{pc:?}");
    let r = kd.ranges().unwrap();
    assert_eq!(r[0], PhysRange { start: 0, end: 4 * 4096 });
    assert!(r.contains(&PhysRange { start: 192 * 4096, end: 212 * 4096 }));
    let q = open("qemu-x86_64-zlib.kdump").page_counts().unwrap();
    // QEMU dumps every page (excluded is 0 in the real file); the reduction cleared bitmap 2 only.
    assert_eq!((q.dumped, q.valid), (30, q.dumped + q.excluded));
    let a = open("qemu-arm64-zlib.kdump");
    let pa = a.page_counts().unwrap();
    assert!(pa.zero >= 2, "{pa:?}");
    assert!(a.ranges().unwrap().iter().all(|r| r.start % 65536 == 0 && r.end % 65536 == 0));
}

#[test]
fn absent_pages_are_errors_naming_the_first_absent_address() {
    let kd = open("md-x86_64-zlib-d31.kdump");
    // pfn 4 is valid (bitmap 1) but was not kept: reading 0x3ff0..0x4010 fails at 0x4000.
    assert!(kd.pfn_valid(4).unwrap() && !kd.pfn_present(4).unwrap());
    let mut b = [0u8; 32];
    let e = kd.read_phys(0x3ff0, &mut b).unwrap_err();
    assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(0x4000)));
    assert!(e.message.contains("excluded"), "{e}");
    let e = kd.read_phys(0x4008, &mut b).unwrap_err();
    assert_eq!(e.address(), Some(0x4008));
    // Beyond max_mapnr.
    let end = kd.max_mapnr() * 4096;
    let e = kd.read_phys(end + 5, &mut b).unwrap_err();
    assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(end + 5)));
    let e = kd.read_phys(u64::MAX - 3, &mut b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Absent);
    // An arm64 64 KiB block boundary.
    let a = open("qemu-arm64-zlib.kdump");
    let mut b = vec![0u8; 65536 * 2];
    let last = a.ranges().unwrap().last().unwrap().end;
    let e = a.read_phys(last - 65536, &mut b).unwrap_err();
    assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(last)));
}

#[test]
fn parallel_and_sequential_reads_agree() {
    for name in ["md-x86_64-zlib-d31.kdump", "qemu-x86_64-zlib.flat", "qemu-arm64-zlib.kdump"] {
        let kd = open(name);
        let bs = kd.block_size() as u64;
        let run = kd.ranges().unwrap().into_iter().max_by_key(|r| r.end - r.start).unwrap();
        assert!((run.end - run.start) / bs >= 17, "{name}");
        // Unaligned start and end so partial first/last pages go through the scratch path.
        let start = run.start + 100;
        let len = (run.end - run.start - 300) as usize;
        let mut big = vec![0u8; len];
        kd.read_phys(start, &mut big).unwrap();
        let mut small = vec![0u8; len];
        for (i, chunk) in small.chunks_mut(1000).enumerate() {
            kd.read_phys(start + i as u64 * 1000, chunk).unwrap();
        }
        assert!(big == small, "{name}");
    }
}

#[test]
fn flattened_reads_exactly_like_reassembled() {
    for (flat, plain) in [
        ("md-x86_64-zlib-d31.flat", "md-x86_64-zlib-d31.kdump"),
        ("qemu-x86_64-zlib.flat", "qemu-x86_64-zlib.kdump"),
        ("qemu-arm64-zlib.flat", "qemu-arm64-zlib.kdump"),
    ] {
        let f = Flattened::open(Arc::new(fixture(flat))).unwrap();
        let p = fixture(plain);
        assert_eq!(f.logical_len(), p.len() as u64);
        assert!(f.has_end_marker() && f.record_count() > 5 && f.hole_bytes() > 0);
        let mut all = vec![0u8; p.len()];
        f.read_exact_at(&mut all, 0).unwrap();
        assert!(all == p, "{flat}");
        // Odd-sized reads at odd offsets.
        let mut off = 0usize;
        while off < p.len() {
            let n = (off % 4099 + 1).min(p.len() - off);
            let mut b = vec![0u8; n];
            f.read_exact_at(&mut b, off as u64).unwrap();
            assert!(b == p[off..off + n], "{flat} at {off}");
            off += n + 7;
        }
    }
}

// ---------------------------------------------------------------- hostile input

const ALLOWED: [ErrorKind; 5] =
    [ErrorKind::Format, ErrorKind::Truncated, ErrorKind::Limit, ErrorKind::Absent, ErrorKind::Decompress];

/// Open, then read every page; any error must be typed, nothing may panic.
fn exercise(v: Vec<u8>) -> Result<(), Error> {
    let kd = open_bytes(v)?;
    let _ = kd.page_counts();
    let _ = kd.compression_summary();
    let bs = kd.block_size() as u64;
    for r in kd.ranges()? {
        let mut b = vec![0u8; (r.end - r.start).min(64 * bs) as usize];
        kd.read_phys(r.start, &mut b)?;
    }
    Ok(())
}

#[test]
fn truncated_at_every_boundary() {
    for name in ["md-x86_64-zlib-d31.kdump", "qemu-arm64-zlib.kdump"] {
        let v = fixture(name);
        let kd = open_bytes(v.clone()).unwrap();
        let bs = kd.block_size() as usize;
        let desc = kd.descriptors_offset() as usize;
        let mut cuts = vec![0, 7, 8, 12, 100, 423, 463, 464, bs - 1, bs, bs + 50, bs + 103, 2 * bs, desc - 1, desc, desc + 5];
        cuts.extend((desc..desc + 24 * 30).step_by(24).map(|c| c + 11));
        cuts.extend((desc..v.len()).step_by(997));
        cuts.push(v.len() - 1);
        for c in cuts {
            match exercise(v[..c].to_vec()) {
                Ok(()) => panic!("{name} cut at {c} read fine"),
                Err(e) => assert!(ALLOWED.contains(&e.kind), "{name} cut at {c}: {e}"),
            }
        }
        // Cut inside the VMCOREINFO text: the bitmaps are missing too, so the open fails.
        let (vo, _) = kd.vmcoreinfo_location().unwrap();
        let e = open_bytes(v[..vo as usize + 10].to_vec()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
    }
}

fn put32(v: &mut [u8], o: usize, x: u32) {
    v[o..o + 4].copy_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut [u8], o: usize, x: u64) {
    v[o..o + 8].copy_from_slice(&x.to_le_bytes());
}

#[test]
fn lying_header_fields_are_typed_errors_at_the_field() {
    let v = fixture("md-x86_64-zlib-d31.kdump");
    let with = |o: usize, x: u32| {
        let mut w = v.clone();
        put32(&mut w, o, x);
        open_bytes(w).unwrap_err()
    };
    for bs in [0u32, 3, 4095, 6000, u32::MAX] {
        let e = with(428, bs);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(428)), "block_size {bs}: {e}");
    }
    for bs in [1u32 << 21, 1 << 31] {
        let e = with(428, bs);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Limit, Some(428)));
    }
    let e = with(428, 256);
    assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(428)));
    let e = with(432, 0);
    assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(432)));
    let e = with(432, u32::MAX);
    assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(436)));
    // An odd bitmap_blocks is one bitmap (B16), no longer a format error.
    let e = with(436, 0);
    assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(436)), "bitmap_blocks 0");
    for bb in [0xFFFF_FFFEu32, 1 << 31, u32::MAX] {
        let e = with(436, bb);
        assert_eq!((e.kind, e.offset()), (ErrorKind::Limit, Some(436)), "bitmap_blocks {bb}");
    }
    let e = with(436, 0x10000);
    assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(436)));
    let e = with(8, 0x7fff_ffff);
    assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(8)));
    let mut w = v.clone();
    w[0] = b'X';
    assert_eq!(open_bytes(w).unwrap_err().kind, ErrorKind::Format);
}

/// The QEMU x86_64 fixture rewritten so that its bitmap area holds one bitmap (the dumped
/// pages, bitmap 2 of the original) in `blocks` blocks, with max_mapnr `max_mapnr`; the
/// descriptors and page data follow, moved as needed. `moves` lists (pfn, new pfn) bits to move.
fn one_bitmap(blocks: usize, max_mapnr: u64, moves: &[(u64, u64)]) -> Vec<u8> {
    let v = fixture("qemu-x86_64-zlib.kdump");
    let bs = 4096;
    let (bm_off, desc) = (3 * bs, 5 * bs); // sub_hdr_size 2, bitmap_blocks 2
    let mut area = vec![0u8; blocks * bs];
    area[..bs].copy_from_slice(&v[bm_off + bs..bm_off + 2 * bs]);
    for &(from, to) in moves {
        assert!(area[(from / 8) as usize] & 1 << (from % 8) != 0);
        area[(from / 8) as usize] &= !(1 << (from % 8));
        area[(to / 8) as usize] |= 1 << (to % 8);
    }
    let shift = (blocks * bs) as u64 - 2 * bs as u64;
    let mut out = v[..bm_off].to_vec();
    out.extend_from_slice(&area);
    out.extend_from_slice(&v[desc..]);
    for i in 0..30 {
        let d = bm_off + blocks * bs + i * 24;
        let off = u64::from_le_bytes(out[d..d + 8].try_into().unwrap());
        put64(&mut out, d, off + shift);
    }
    put32(&mut out, 436, blocks as u32);
    put32(&mut out, 440, max_mapnr as u32);
    put64(&mut out, bs + 96, max_mapnr);
    out
}

#[test]
fn a_bitmap_area_holding_one_bitmap_is_read_as_one() {
    let base = open("qemu-x86_64-zlib.kdump");
    let pfns: Vec<u64> = base.ranges().unwrap().iter().flat_map(|r| r.start / 4096..r.end / 4096).collect();
    assert_eq!(pfns.len(), 30);
    let last = *pfns.last().unwrap();
    let page = |kd: &KdumpFile, pfn: u64| {
        let mut b = vec![0u8; 4096];
        kd.read_page(pfn, &mut b).map(|()| b)
    };
    // (bitmap_blocks, max_mapnr, the last page's new pfn): an even area whose half does not
    // cover max_mapnr (libkdumpfile's rule), and an odd one.
    for (blocks, max_mapnr, moved) in [(2, 65536, last + 32768), (2, 40000, 32768 + 7), (3, 32768, last), (3, 90000, 80000)] {
        let what = format!("bitmap_blocks {blocks}, max_mapnr {max_mapnr}");
        let kd = open_bytes(one_bitmap(blocks, max_mapnr, &[(last, moved)])).unwrap();
        assert!(kd.anomalies().is_empty(), "{what}: {:?}", kd.anomalies());
        assert_eq!(kd.max_mapnr(), max_mapnr);
        let counts = kd.page_counts().unwrap();
        assert_eq!((counts.valid, counts.dumped, counts.excluded), (30, 30, 0), "{what}");
        assert_eq!(kd.stored_pages().unwrap(), (30, 30), "{what}");
        for &p in &pfns[..29] {
            assert_eq!(page(&kd, p).unwrap(), page(&base, p).unwrap(), "{what} pfn {p}");
        }
        assert_eq!(page(&kd, moved).unwrap(), page(&base, last).unwrap(), "{what}");
        if moved != last {
            assert_eq!(page(&kd, last).unwrap_err().kind, ErrorKind::Absent, "{what}");
        }
    }
}

#[test]
fn lying_sub_header_values_are_contained() {
    let v = fixture("md-x86_64-zlib-d31.kdump");
    // max_mapnr_64 near 2^64: opens (bitmaps bound what is read), pages past the bitmap absent.
    for big in [u64::MAX, 1 << 63, 1 << 32] {
        let mut w = v.clone();
        put64(&mut w, 4096 + 96, big);
        let kd = open_bytes(w).unwrap();
        assert_eq!(kd.max_mapnr(), big);
        assert_eq!(kd.anomalies().len(), 1);
        let mut b = [0u8; 8];
        assert_eq!(kd.read_phys(1 << 40, &mut b).unwrap_err().kind, ErrorKind::Absent);
        kd.read_phys(X86_NOTE, &mut b).unwrap();
    }
    // VMCOREINFO / notes pointing outside the file: dropped, reported with the field offset.
    for (field, size_field) in [(4096 + 32, 4096 + 40), (4096 + 48, 4096 + 56)] {
        for (o, s) in [(u64::MAX - 10, 100u64), (1 << 40, 10), (0x13b0, 1 << 33), (0x10, 5)] {
            let mut w = v.clone();
            put64(&mut w, field, o);
            put64(&mut w, size_field, s);
            let kd = open_bytes(w).unwrap();
            assert_eq!(kd.anomalies().len(), 1, "{o:#x}+{s:#x}");
            assert_eq!(kd.anomalies()[0].offset(), Some(field as u64));
            if field == 4096 + 32 {
                assert!(kd.vmcoreinfo_location().is_none());
            } else {
                assert!(kd.notes_location().is_none());
            }
        }
    }
}

/// Offsets of the descriptors of `kd`, with their contents.
fn descs(kd: &KdumpFile) -> Vec<(usize, i64, u32, u32)> {
    let v = kd.source().read_vec(kd.descriptors_offset(), kd.descriptor_count().unwrap() * 24, "d").unwrap();
    (0..kd.descriptor_count().unwrap() as usize)
        .map(|i| {
            let d = &v[i * 24..];
            (
                kd.descriptors_offset() as usize + i * 24,
                i64::from_le_bytes(d[0..8].try_into().unwrap()),
                u32::from_le_bytes(d[8..12].try_into().unwrap()),
                u32::from_le_bytes(d[12..16].try_into().unwrap()),
            )
        })
        .collect()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

#[test]
fn bad_page_descriptors_and_data() {
    let v = fixture("md-x86_64-zlib-d31.kdump");
    let kd = open_bytes(v.clone()).unwrap();
    let ds = descs(&kd);
    let pfns: Vec<u64> = kd.ranges().unwrap().iter().flat_map(|r| r.start / 4096..r.end / 4096).collect();
    let (zi, &(zoff, zdata, zsize, _)) = ds.iter().enumerate().find(|(_, d)| d.3 == 1).unwrap();
    let zpfn = pfns[zi];
    let read = |w: Vec<u8>| {
        let kd = open_bytes(w).unwrap();
        let mut b = vec![0u8; 4096];
        kd.read_page(zpfn, &mut b).unwrap_err()
    };
    let case = |f: &dyn Fn(&mut Vec<u8>), kind: ErrorKind, what: &str| {
        let mut w = v.clone();
        f(&mut w);
        let e = read(w);
        assert_eq!((e.kind, e.offset()), (kind, Some(zoff as u64)), "{what}: {e}");
    };
    case(&|w| put32(w, zoff + 8, 4097), ErrorKind::Format, "size > block size");
    case(&|w| put32(w, zoff + 8, 0), ErrorKind::Format, "size 0");
    case(&|w| put64(w, zoff, (-5i64) as u64), ErrorKind::Format, "negative offset");
    case(&|w| put64(w, zoff, u64::MAX / 2), ErrorKind::Truncated, "offset past EOF");
    case(
        &|w| {
            let n = w.len() as u64;
            put64(w, zoff, n - 10)
        },
        ErrorKind::Truncated,
        "data past EOF",
    );
    case(&|w| put32(w, zoff + 12, 0x3), ErrorKind::Format, "two codecs");
    case(&|w| put32(w, zoff + 12, 0), ErrorKind::Decompress, "raw with short size");
    case(
        &|w| {
            for b in &mut w[zdata as usize + 2..zdata as usize + zsize as usize] {
                *b ^= 0x5a;
            }
        },
        ErrorKind::Decompress,
        "corrupt zlib",
    );
    // zlib data that decompresses to the wrong size (100 bytes, then 8192 bytes).
    for n in [100usize, 8192] {
        case(
            &|w| {
                let z = zlib(&vec![0x41u8; n]);
                let at = zdata as usize;
                w[at..at + z.len()].copy_from_slice(&z);
                put32(w, zoff + 8, z.len() as u32);
            },
            ErrorKind::Decompress,
            "zlib wrong size",
        );
    }
    // zstd / snappy / lzo data that is corrupt or of the wrong size.
    let zs = zstd::bulk::compress(&vec![7u8; 5000], 1).unwrap();
    case(
        &|w| {
            let at = zdata as usize;
            w[at..at + zs.len()].copy_from_slice(&zs);
            put32(w, zoff + 8, zs.len() as u32);
            put32(w, zoff + 12, 0x20);
        },
        ErrorKind::Decompress,
        "zstd wrong size",
    );
    let sn = snap::raw::Encoder::new().compress_vec(&vec![7u8; 4000]).unwrap();
    case(
        &|w| {
            let at = zdata as usize;
            w[at..at + sn.len()].copy_from_slice(&sn);
            put32(w, zoff + 8, sn.len() as u32);
            put32(w, zoff + 12, 0x4);
        },
        ErrorKind::Decompress,
        "snappy wrong size",
    );
    case(&|w| put32(w, zoff + 12, 0x4), ErrorKind::Decompress, "zlib data read as snappy");
    case(&|w| put32(w, zoff + 12, 0x20), ErrorKind::Decompress, "zlib data read as zstd");
    #[cfg(feature = "lzo")]
    case(&|w| put32(w, zoff + 12, 0x2), ErrorKind::Decompress, "zlib data read as lzo");
    // Every byte of one compressed page flipped in turn: typed errors or (rarely) success.
    for i in 0..zsize as usize {
        let mut w = v.clone();
        w[zdata as usize + i] ^= 0xff;
        let kd = open_bytes(w).unwrap();
        let mut b = vec![0u8; 4096];
        if let Err(e) = kd.read_page(zpfn, &mut b) {
            assert_eq!(e.kind, ErrorKind::Decompress);
        }
    }
}

#[test]
fn lzo_pages_are_fuzzed_without_panic() {
    let v = fixture("md-x86_64-lzo-d31.kdump");
    let kd = open_bytes(v.clone()).unwrap();
    let pfns: Vec<u64> = kd.ranges().unwrap().iter().flat_map(|r| r.start / 4096..r.end / 4096).collect();
    let (i, &(_, data, size, _)) = descs(&kd).iter().enumerate().find(|(_, d)| d.3 == 2).unwrap();
    for k in 0..size as usize {
        for x in [0x01u8, 0xff, 0x80] {
            let mut w = v.clone();
            w[data as usize + k] ^= x;
            let kd = open_bytes(w).unwrap();
            let mut b = vec![0u8; 4096];
            if let Err(e) = kd.read_page(pfns[i], &mut b) {
                assert!(matches!(e.kind, ErrorKind::Decompress | ErrorKind::Unsupported), "{e}");
            }
        }
    }
}

// ---------------------------------------------------------------- other layouts

/// Rewrite a little-endian 64-bit fixture in another layout: big-endian and/or the 32-bit
/// header with a packed or aligned 32-bit sub-header. Page data is byte-order independent.
fn relayout(v: &[u8], big: bool, sub32: Option<SubLayout>) -> Vec<u8> {
    let kd = open_bytes(v.to_vec()).unwrap();
    let bs = kd.block_size() as usize;
    let mut w = v.to_vec();
    let p32 =
        |w: &mut Vec<u8>, o: usize, x: u32| w[o..o + 4].copy_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
    let p64 =
        |w: &mut Vec<u8>, o: usize, x: u64| w[o..o + 8].copy_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
    let g32 = |o: usize| u32::from_le_bytes(v[o..o + 4].try_into().unwrap());
    let g64 = |o: usize| u64::from_le_bytes(v[o..o + 8].try_into().unwrap());
    p32(&mut w, 8, g32(8));
    let hdr: Vec<u32> = (0..10).map(|i| g32(424 + 4 * i)).collect();
    let base = if sub32.is_some() { 412 } else { 424 };
    w[402..464].fill(0);
    for (i, x) in hdr.iter().enumerate() {
        p32(&mut w, base + 4 * i, *x);
    }
    let s = kd.sub_header().clone();
    w[bs..bs + 104].fill(0);
    let vals = [
        s.phys_base,
        s.dump_level as u32 as u64,
        s.split.unwrap() as u32 as u64,
        s.start_pfn.unwrap(),
        s.end_pfn.unwrap(),
        s.offset_vmcoreinfo.unwrap(),
        s.size_vmcoreinfo.unwrap(),
        s.offset_note.unwrap(),
        s.note_size.unwrap(),
        s.offset_eraseinfo.unwrap(),
        s.size_eraseinfo.unwrap(),
        s.start_pfn_64.unwrap(),
        s.end_pfn_64.unwrap(),
        s.max_mapnr_64.unwrap(),
    ];
    // (offset, width) per field.
    let layout: [(usize, usize); 14] = match sub32 {
        None => [
            (0, 8),
            (8, 4),
            (12, 4),
            (16, 8),
            (24, 8),
            (32, 8),
            (40, 8),
            (48, 8),
            (56, 8),
            (64, 8),
            (72, 8),
            (80, 8),
            (88, 8),
            (96, 8),
        ],
        Some(SubLayout::Packed32) => [
            (0, 4),
            (4, 4),
            (8, 4),
            (12, 4),
            (16, 4),
            (20, 8),
            (28, 4),
            (32, 8),
            (40, 4),
            (44, 8),
            (52, 4),
            (56, 8),
            (64, 8),
            (72, 8),
        ],
        Some(_) => [
            (0, 4),
            (4, 4),
            (8, 4),
            (12, 4),
            (16, 4),
            (24, 8),
            (32, 4),
            (40, 8),
            (48, 4),
            (56, 8),
            (64, 4),
            (72, 8),
            (80, 8),
            (88, 8),
        ],
    };
    for ((o, width), x) in layout.iter().zip(vals) {
        if *width == 4 {
            p32(&mut w, bs + o, x as u32);
        } else {
            p64(&mut w, bs + o, x);
        }
    }
    for i in 0..kd.descriptor_count().unwrap() as usize {
        let o = kd.descriptors_offset() as usize + 24 * i;
        p64(&mut w, o, g64(o));
        p32(&mut w, o + 8, g32(o + 8));
        p32(&mut w, o + 12, g32(o + 12));
        p64(&mut w, o + 16, g64(o + 16));
    }
    w
}

#[test]
fn big_endian_and_32bit_layouts_read_the_same() {
    let v = fixture("md-x86_64-zlib-d31.kdump");
    let base = open_bytes(v.clone()).unwrap();
    let mut expect = vec![0u8; 30 * 4096];
    let pfns: Vec<u64> = base.ranges().unwrap().iter().flat_map(|r| r.start / 4096..r.end / 4096).collect();
    for (i, &p) in pfns.iter().enumerate() {
        base.read_page(p, &mut expect[i * 4096..(i + 1) * 4096]).unwrap();
    }
    for (big, sub32) in [
        (true, None),
        (false, Some(SubLayout::Packed32)),
        (false, Some(SubLayout::Aligned32)),
        (true, Some(SubLayout::Packed32)),
        (true, Some(SubLayout::Aligned32)),
    ] {
        let kd = open_bytes(relayout(&v, big, sub32)).unwrap();
        let what = format!("big={big} sub={sub32:?}");
        assert_eq!(kd.byteorder_big(), big, "{what}");
        assert_eq!(kd.is_32bit_layout(), sub32.is_some(), "{what}");
        assert_eq!(kd.sub_layout(), sub32.unwrap_or(SubLayout::L64), "{what}");
        assert_eq!(kd.release(), "6.1.0-48-cloud-amd64");
        assert_eq!(kd.block_size(), 4096);
        assert_eq!(kd.max_mapnr(), base.max_mapnr());
        assert_eq!(kd.vmcoreinfo_location(), base.vmcoreinfo_location(), "{what}");
        assert_eq!(kd.notes_location(), base.notes_location(), "{what}");
        let pb = if sub32.is_some() { base.phys_base_header() as u32 as u64 } else { base.phys_base_header() };
        assert_eq!(kd.phys_base_header(), pb);
        assert_eq!(kd.ranges().unwrap(), base.ranges().unwrap());
        let mut got = vec![0u8; 30 * 4096];
        for (i, &p) in pfns.iter().enumerate() {
            kd.read_page(p, &mut got[i * 4096..(i + 1) * 4096]).unwrap();
        }
        assert!(got == expect, "{what}");
    }
}

/// Descriptors of a 30-page x86_64 fixture whose descriptor and data a cut at `cut` keeps.
fn held_after_cut(v: &[u8], desc: usize, cut: usize) -> u64 {
    (0..30)
        .filter(|i| {
            let d = desc + i * 24;
            d + 24 <= cut && {
                let off = u64::from_le_bytes(v[d..d + 8].try_into().unwrap()) as usize;
                let size = u32::from_le_bytes(v[d + 8..d + 12].try_into().unwrap()) as usize;
                off + size <= cut
            }
        })
        .count() as u64
}

#[test]
fn stored_pages_counts_what_a_cut_file_still_holds() {
    for name in ["md-x86_64-zlib-d31.kdump", "qemu-x86_64-zlib.kdump", "md-x86_64-zlib-d31.flat"] {
        assert_eq!(open(name).stored_pages().unwrap(), (30, 30), "{name}");
    }
    // QEMU and makedumpfile write the shared zero page first, right after the descriptor table,
    // and point every zero page at it: a dump whose highest pfn is a zero page has its last
    // descriptor pointing at the first data block (B1). The QEMU fixture's last page made one.
    let qemu = fixture("qemu-x86_64-zlib.kdump");
    let desc = open_bytes(qemu.clone()).unwrap().descriptors_offset() as usize;
    let zero_desc = (0..30).map(|i| desc + i * 24).find(|&d| qemu[d..d + 8] == ((desc + 30 * 24) as u64).to_le_bytes()).unwrap();
    let mut last_zero = qemu.clone();
    let last = desc + 29 * 24;
    let orphan = u64::from_le_bytes(qemu[last..last + 8].try_into().unwrap()) as usize;
    last_zero.copy_within(zero_desc..zero_desc + 24, last);
    last_zero.truncate(orphan); // the page's data, now unused, was the file's last bytes
    assert_eq!(open_bytes(last_zero.clone()).unwrap().stored_pages().unwrap(), (30, 30));
    for (name, v) in [
        ("md-x86_64-zlib-d31.kdump", fixture("md-x86_64-zlib-d31.kdump")),
        ("qemu-x86_64-zlib.kdump", qemu),
        ("qemu-x86_64-zlib.kdump, last page zero", last_zero),
    ] {
        let desc = open_bytes(v.clone()).unwrap().descriptors_offset() as usize;
        let data = desc + 24 * 30;
        for cut in [desc, desc + 24 * 10 + 5, data, data + 1, data + 4096, v.len() - 1, (data + v.len()) / 2] {
            let kd = open_bytes(v[..cut].to_vec()).unwrap();
            let held = held_after_cut(&v, desc, cut);
            assert_eq!(kd.stored_pages().unwrap(), (30, held), "{name} cut at {cut}");
            assert!(held < 30, "{name} cut at {cut}");
        }
        // The descriptor table itself is cut: pages still say so, with the table's offset.
        let kd = open_bytes(v[..desc + 100].to_vec()).unwrap();
        let e = kd.page_counts().unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(desc as u64)), "{name}: {e}");
    }
}

#[test]
fn kdump_note_area_in_flattened_holes_is_refused_not_allocated() {
    use vmcoreinfo::dump::{Dump, OpenOptions};
    // The real QEMU kdump fixture, flattened, with the sub-header's note area moved to a
    // 200 MiB hole that an empty record at 1 TiB makes part of the reassembled file.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kdump/qemu-x86_64-zlib.kdump");
    let mut v = std::fs::read(path).unwrap();
    let bs = 4096;
    v[bs + 48..bs + 56].copy_from_slice(&(1u64 << 39).to_le_bytes());
    v[bs + 56..bs + 64].copy_from_slice(&(200u64 << 20).to_le_bytes());
    let flat = vmcoreinfo::flattened::testing::flatten(&[(0, &v), (1 << 40, &[])], true);
    let name: Arc<str> = Arc::from("t.flat");
    let err = Dump::from_source(Arc::new(flat), name, OpenOptions::default()).err().expect("must be refused");
    assert_eq!((err.kind, err.offset()), (ErrorKind::Limit, Some(1 << 39)), "{err}");
}
