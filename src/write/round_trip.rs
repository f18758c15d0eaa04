//! The writers' headers read back by the crate's own readers: kdump headers through
//! `kdump::header::read_headers` (the same layout structs) and `KdumpFile`, ELF headers through
//! `ElfDump::parse`, over both byte orders and every layout the writers emit (kdump: the 64-bit
//! and packed 32-bit layouts, header version 6, the only version written; ELF: class 64 and 32,
//! with and without PN_XNUM).

use std::sync::Arc;

use super::elf::{encode_headers as encode_elf, ElfPlan, Seg};
use super::kdump::{encode_chunk, encode_headers, set_bits, Compression, KdumpMeta, KdumpPlan, PageOut};
use super::notes::push_note;
use super::{endianness, NoteBuf};
use crate::elf::ElfDump;
use crate::kdump::header::read_headers;
use crate::kdump::{KdumpFile, SubLayout};
use crate::phys::{PhysMemory, PhysRange};
use crate::source::WithHead;

const TEXT: &[u8] = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nCRASHTIME=1700000000\n";

/// A CORE note, then the VMCOREINFO note.
fn notes(big: bool) -> NoteBuf {
    let e = endianness(big);
    let mut bytes = Vec::new();
    push_note(&mut bytes, e, b"CORE\0", 1, &[7u8; 40]);
    let at = push_note(&mut bytes, e, b"VMCOREINFO\0", 0, TEXT);
    NoteBuf { bytes, vmcoreinfo: Some((at, TEXT.len())) }
}

fn meta() -> KdumpMeta {
    KdumpMeta {
        phys_base: 0x1_2345_6000,
        uts: [
            "Linux".into(),
            "host".into(),
            "6.1.0-test".into(),
            // Longer than the field: cut to 64 bytes and a NUL.
            "#1 SMP PREEMPT_DYNAMIC ".repeat(4),
            "x86_64".into(),
            "(none)".into(),
        ],
        tv_sec: 1_700_000_000,
        tv_usec: 12,
        nr_cpus: 3,
        dump_level: 31,
    }
}

/// A whole kdump file as the writer lays it out, every page pointing at the zero page.
fn kdump_file(plan: &KdumpPlan, meta: &KdumpMeta, notes: &NoteBuf, comp: Compression) -> Vec<u8> {
    let bs = plan.bs as usize;
    let mut v = encode_headers(plan, meta, notes, comp).0;
    v.resize(plan.bitmap_off as usize, 0);
    let mut bitmap = vec![0u8; plan.bitmap_bytes as usize];
    for r in &plan.pfns {
        set_bits(&mut bitmap, r.start, r.end);
    }
    v.extend_from_slice(&bitmap);
    v.extend_from_slice(&bitmap);
    assert_eq!(v.len() as u64, plan.desc_off);
    let zeros = vec![0u8; plan.pages as usize * bs];
    let packed: Vec<PageOut> = (0..plan.pages).map(|_| PageOut::Zero).collect();
    let mut data = Vec::new();
    v.extend_from_slice(&encode_chunk(plan, comp.flag(), &zeros, &packed, plan.data_off, &mut data));
    assert!(data.is_empty());
    v.resize(plan.data_off as usize, 0); // the zero page
    v
}

#[test]
fn kdump_headers_read_back_through_the_reader() {
    let layouts = [(true, SubLayout::L64), (false, SubLayout::Packed32)];
    let memories: [(u64, &[PhysRange]); 3] = [
        (4096, &[PhysRange { start: 0, end: 3 << 12 }]),
        (4096, &[PhysRange { start: 0x1000, end: 0xa_0000 }, PhysRange { start: 0x10_0000, end: 0x10_2800 }]),
        (65536, &[PhysRange { start: 0x4000_0000, end: 0x4004_0000 }]),
    ];
    for big in [false, true] {
        for (class64, sub_layout) in layouts {
            for (bs, ranges) in memories {
                let what = format!("big={big} class64={class64} bs={bs} {ranges:?}");
                let (notes, meta, comp) = (notes(big), meta(), Compression::Zstd);
                let plan = KdumpPlan::new(ranges, bs, class64, big, notes.bytes.len() as u64).unwrap();
                let file = kdump_file(&plan, &meta, &notes, comp);

                let h = read_headers(&WithHead { src: &file, head: &[] }, file.len() as u64).unwrap();
                assert_eq!(
                    (h.endian, h.is32, h.header_version, h.sub_layout),
                    (endianness(big), !class64, 6, sub_layout),
                    "{what}"
                );
                assert!(h.anomalies.is_empty(), "{what}: {:?}", h.anomalies);
                let mut uts = meta.uts.clone();
                uts[3].truncate(64);
                assert_eq!(h.uts, uts, "{what}");
                let f = &h.hdr;
                assert_eq!((f.status, u64::from(f.block_size), u64::from(f.sub_hdr_size)), (comp.flag(), bs, plan.sub_hdr_size));
                assert_eq!(u64::from(f.bitmap_blocks), plan.bitmap_blocks(), "{what}");
                assert_eq!((u64::from(f.max_mapnr), u64::from(f.total_ram_blocks)), (plan.max_mapnr, plan.pages), "{what}");
                assert_eq!((f.device_blocks, f.written_blocks, f.current_cpu, f.nr_cpus), (0, 0, 0, 3), "{what}");
                assert_eq!((f.tv_sec, f.tv_usec), (meta.tv_sec, meta.tv_usec), "{what}");
                let s = &h.sub;
                let phys_base = if class64 { meta.phys_base } else { meta.phys_base as u32 as u64 };
                assert_eq!((s.phys_base, s.dump_level, s.split), (phys_base, 31, Some(0)), "{what}");
                assert_eq!((s.start_pfn, s.end_pfn), (Some(0), Some(plan.max_mapnr)), "{what}");
                let (at, len) = notes.vmcoreinfo.unwrap();
                assert_eq!(s.offset_vmcoreinfo, Some(plan.notes_off + at as u64), "{what}");
                assert_eq!(s.size_vmcoreinfo, Some(len as u64), "{what}");
                assert_eq!((s.offset_note, s.note_size), (Some(plan.notes_off), Some(notes.bytes.len() as u64)), "{what}");
                assert_eq!((s.offset_eraseinfo, s.size_eraseinfo), (Some(0), Some(0)), "{what}");
                let pfn64 = (s.start_pfn_64, s.end_pfn_64, s.max_mapnr_64);
                assert_eq!(pfn64, (Some(0), Some(plan.max_mapnr), Some(plan.max_mapnr)), "{what}");

                // The whole file through KdumpFile: notes, VMCOREINFO, bitmaps, descriptors.
                let kd = KdumpFile::open(Arc::new(file.clone())).unwrap();
                let (o, n) = kd.vmcoreinfo_location().unwrap();
                assert_eq!(&file[o as usize..(o + n) as usize], TEXT, "{what}");
                let seg = kd.note_segment(&[]).unwrap().unwrap();
                assert_eq!(&*seg.data, &notes.bytes[..], "{what}");
                let want: Vec<PhysRange> = plan.pfns.iter().map(|r| PhysRange { start: r.start * bs, end: r.end * bs }).collect();
                assert_eq!(kd.ranges().unwrap(), want, "{what}");
                assert_eq!(kd.stored_pages().unwrap(), (plan.pages, plan.pages), "{what}");
                assert_eq!(kd.page_counts().unwrap().zero, plan.pages, "{what}");
                let mut page = vec![1u8; bs as usize];
                kd.read_page(plan.pfns[0].start, &mut page).unwrap();
                assert!(page.iter().all(|&b| b == 0), "{what}");
            }
        }
    }
}

#[test]
fn kdump_plan_offsets() {
    let ranges = [PhysRange { start: 0x1000, end: 0x3800 }, PhysRange { start: 0x10_0000, end: 0x10_1000 }];
    let p = KdumpPlan::new(&ranges, 4096, true, false, 5000).unwrap();
    // Blocks 1..=3 (partly held) and 256.
    assert_eq!(p.pfns, [PhysRange { start: 1, end: 4 }, PhysRange { start: 256, end: 257 }]);
    assert_eq!((p.pages, p.max_mapnr), (4, 257));
    // The 104-byte 64-bit sub-header, then 5000 bytes of notes: two blocks.
    assert_eq!((p.notes_off, p.sub_hdr_size), (4096 + 104, 2));
    assert_eq!((p.bitmap_bytes, p.bitmap_blocks(), p.bitmap_off), (4096, 2, 3 * 4096));
    assert_eq!((p.desc_off, p.zero_off, p.data_off), (5 * 4096, 5 * 4096 + 4 * 24, 6 * 4096 + 4 * 24));
    // The packed 32-bit sub-header is 80 bytes.
    let p32 = KdumpPlan::new(&ranges, 4096, false, true, 0).unwrap();
    assert_eq!((p32.notes_off, p32.sub_hdr_size), (4096 + 80, 1));
    // No memory: one block of each bitmap, no descriptors.
    let p0 = KdumpPlan::new(&[], 4096, true, false, 0).unwrap();
    assert_eq!((p0.pages, p0.max_mapnr, p0.bitmap_blocks(), p0.zero_off), (0, 0, 2, p0.desc_off));
    // Bitmaps past the readers' limit.
    let huge = [PhysRange { start: 0, end: 1 << 46 }];
    let e = KdumpPlan::new(&huge, 512, true, false, 0).unwrap_err();
    assert_eq!(e.kind, crate::ErrorKind::Limit, "{e}");
}

#[test]
fn elf_headers_read_back_through_the_reader() {
    let small: Vec<Seg> =
        vec![Seg { paddr: 0x1000, filesz: 0x9f000, memsz: 0x9f000 }, Seg { paddr: 0x10_0000, filesz: 0x1000, memsz: 0x4000 }];
    // 65535 PT_LOADs and the PT_NOTE: e_phnum is PN_XNUM, the count in section header 0.
    let many: Vec<Seg> = (0..65535u64).map(|i| Seg { paddr: i * 0x2000, filesz: 0x10, memsz: 0x1000 }).collect();
    for big in [false, true] {
        for class64 in [true, false] {
            for segs in [&small, &many] {
                let what = format!("big={big} class64={class64} segs={}", segs.len());
                let notes = notes(big);
                let max_addr = segs.last().map_or(0, |s| s.paddr + s.memsz);
                let plan = ElfPlan::new(segs.clone(), max_addr, notes.bytes.len() as u64, class64, big, 62, 4096);
                assert_eq!(plan.class64, class64, "{what}");
                let mut head = encode_elf(&plan);
                head.place(plan.notes_off, &notes.bytes);
                head.place(plan.data_off, &[]);
                let mut file = head.0;
                let stored: u64 = segs.iter().map(|s| s.filesz).sum();
                file.extend((0..stored).map(|i| i as u8));

                let elf = ElfDump::parse(Arc::new(file.clone()), &file).unwrap();
                assert_eq!((elf.class64, elf.big_endian, elf.e_machine), (class64, big, 62), "{what}");
                assert_eq!(u64::from(elf.phnum), segs.len() as u64 + 1, "{what}");
                assert_eq!(elf.notes.len(), 1, "{what}");
                assert_eq!((elf.notes[0].file_offset, &*elf.notes[0].data), (plan.notes_off, &notes.bytes[..]), "{what}");
                assert_eq!(elf.loads.len(), segs.len(), "{what}");
                let mut off = plan.data_off;
                for (l, s) in elf.loads.iter().zip(segs.iter()) {
                    assert_eq!((l.paddr, l.vaddr, l.offset, l.filesz, l.memsz), (s.paddr, s.paddr, off, s.filesz, s.memsz));
                    off += s.filesz;
                }
                assert_eq!(off, file.len() as u64, "{what}");
                assert_eq!(elf.stored_memory(), (stored, stored), "{what}");
            }
        }
    }
}
