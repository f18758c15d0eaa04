use super::*;
use crate::bitness::{EM_AARCH64, EM_RISCV};
use crate::error::ErrorKind;
use crate::phys::{normalize, PhysMemory, PhysRange};

/// A little-endian 64-bit v6 kdump with `block_size` 512, raw pages, bitmap 2 = `present`.
fn synth(max_mapnr: u64, present: &[u64]) -> Vec<u8> {
    let bs = 512usize;
    let half_blocks = (max_mapnr as usize).div_ceil(8).div_ceil(bs).max(1);
    let mut v = vec![0u8; bs * 2];
    v[..8].copy_from_slice(SIGNATURE);
    v[8..12].copy_from_slice(&6i32.to_le_bytes());
    v[12 + 4 * 65..12 + 4 * 65 + 6].copy_from_slice(b"x86_64");
    for (i, x) in [0u32, bs as u32, 1, 2 * half_blocks as u32, max_mapnr as u32, 0, 0, 0, 0, 1].iter().enumerate() {
        v[424 + 4 * i..428 + 4 * i].copy_from_slice(&x.to_le_bytes());
    }
    v[bs + 96..bs + 104].copy_from_slice(&max_mapnr.to_le_bytes());
    let mut bm1 = vec![0u8; half_blocks * bs];
    let mut bm2 = vec![0u8; half_blocks * bs];
    for p in 0..max_mapnr {
        bm1[(p / 8) as usize] |= 1 << (p % 8);
    }
    for &p in present {
        bm2[(p / 8) as usize] |= 1 << (p % 8);
    }
    v.extend_from_slice(&bm1);
    v.extend_from_slice(&bm2);
    let data0 = v.len() + 24 * present.len();
    for (i, &p) in present.iter().enumerate() {
        let _ = p;
        v.extend_from_slice(&((data0 + i * bs) as i64).to_le_bytes());
        v.extend_from_slice(&(bs as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
    }
    for &p in present {
        let mut page = vec![0u8; bs];
        page[..8].copy_from_slice(&p.to_le_bytes());
        v.extend_from_slice(&page);
    }
    v
}

#[test]
fn rank_index_and_reads_match_a_naive_count() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut present = Vec::new();
    for p in 0..10_000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Runs of all-set and all-clear words as well as mixed ones.
        let set = match (p / 1000) % 3 {
            0 => seed % 3 == 0,
            1 => true,
            _ => false,
        };
        if set {
            present.push(p);
        }
    }
    let kd = KdumpFile::open(Arc::new(synth(10_000, &present))).unwrap();
    assert_eq!(kd.descriptor_count().unwrap(), present.len() as u64);
    for (i, &p) in present.iter().enumerate() {
        assert_eq!(kd.index().unwrap().rank_of(p), i as u64);
        let mut b = [0u8; 8];
        kd.read_phys(p * 512, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), p);
    }
    assert_eq!(kd.index().unwrap().rank_of(1 << 40), present.len() as u64);
    let mut naive = Vec::new();
    for &p in &present {
        naive.push(PhysRange { start: p * 512, end: (p + 1) * 512 });
    }
    assert_eq!(kd.ranges().unwrap(), normalize(naive));
    let pc = kd.page_counts().unwrap();
    assert_eq!((pc.valid, pc.dumped, pc.excluded), (10_000, present.len() as u64, 10_000 - present.len() as u64));
    assert_eq!(kd.compression_summary().unwrap().raw, present.len() as u64);
}

#[test]
fn max_mapnr_not_a_multiple_of_64_and_empty_dumps() {
    let kd = KdumpFile::open(Arc::new(synth(70, &[0, 63, 64, 69]))).unwrap();
    assert_eq!(kd.ranges().unwrap().len(), 3);
    assert!(!kd.pfn_present(70).unwrap() && !kd.pfn_present(u64::MAX).unwrap());
    let mut b = [0u8; 1];
    assert_eq!(kd.read_phys(70 * 512, &mut b).unwrap_err().kind, ErrorKind::Absent);
    let kd = KdumpFile::open(Arc::new(synth(70, &[]))).unwrap();
    assert!(kd.ranges().unwrap().is_empty());
    assert_eq!(kd.read_phys(0, &mut b).unwrap_err().address(), Some(0));
    assert_eq!(kd.page_counts().unwrap().zero, 0);
}

#[test]
fn big_parallel_read_reports_the_first_failure() {
    let present: Vec<u64> = (0..64).collect();
    let mut v = synth(64, &present);
    let kd = KdumpFile::open(Arc::new(v.clone())).unwrap();
    // Break the descriptors of pfns 40 and 20 (size > block size).
    for p in [40u64, 20] {
        let o = kd.descriptors_offset() as usize + 24 * p as usize + 8;
        v[o..o + 4].copy_from_slice(&9999u32.to_le_bytes());
    }
    let kd = KdumpFile::open(Arc::new(v)).unwrap();
    let mut b = vec![0u8; 64 * 512];
    let e = kd.read_phys(0, &mut b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format);
    assert_eq!(e.offset(), Some(kd.descriptors_offset() + 24 * 20));
}

#[test]
fn bitmaps_in_flattened_holes_are_refused_not_allocated() {
    // Header and sub-header in one record, bitmap_blocks claiming 1 GiB, and an empty record
    // at 1 TiB: the reassembled view is long enough, but the bitmaps are holes.
    let mut head = synth(64, &[0])[..1024].to_vec();
    head[436..440].copy_from_slice(&((1u32 << 30) / 512).to_le_bytes());
    let flat = crate::flattened::testing::flatten(&[(0, &head), (1 << 40, &[])], true);
    let f = crate::flattened::Flattened::open(Arc::new(flat)).unwrap();
    let e = KdumpFile::open(Arc::new(f)).unwrap_err();
    assert_eq!((e.kind, e.offset()), (ErrorKind::Limit, Some(436)), "{e}");
    // The same bitmaps really stored open fine.
    let v = synth(64, &[0]);
    let flat = crate::flattened::testing::flatten(&[(0, &v)], true);
    let f = crate::flattened::Flattened::open(Arc::new(flat)).unwrap();
    assert!(KdumpFile::open(Arc::new(f)).is_ok());
}

/// A real QEMU 7.2 kdump-zlib of a 32-bit ARM guest (`-M virt -cpu cortex-a15`, 2 MiB, no guest
/// kernel, a pattern page loaded at 0x40101000; reassembled with `makedumpfile -R`; see
/// tests/fixtures/kdump/README.md): 32-bit header layout, QEMU's packed sub-header, machine
/// "Unknown", no VMCOREINFO.
const ARM32_QEMU: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kdump/qemu-arm-zlib.kdump");

#[test]
fn real_arm32_qemu_kdump_is_32bit_whatever_its_machine_says() {
    let kd = KdumpFile::open(Arc::new(std::fs::read(ARM32_QEMU).unwrap())).unwrap();
    assert!(kd.is_32bit_layout() && !kd.byteorder_big());
    assert_eq!(kd.sub_layout(), SubLayout::Packed32);
    assert_eq!((kd.machine(), kd.block_size(), kd.max_mapnr()), ("Unknown", 4096, 0x40200));
    assert_eq!(kd.vmcoreinfo_location(), None);
    // QEMU's per-CPU notes, from the packed sub-header's note location.
    let seg = kd.note_segment(&[]).unwrap().unwrap();
    let names: Vec<Vec<u8>> =
        crate::notes::notes(&seg.data, false, seg.align, seg.file_offset).map(|n| n.unwrap().name.to_vec()).collect();
    assert_eq!(names.first().map(Vec::as_slice), Some(&b"CORE"[..]));
    // Neither the header nor a text names the machine: the class is the header layout's.
    assert_eq!(kd.machine_guess(|| None::<&[u8]>), (0, false));
    // A text that names a machine of either class (riscv) does not override the layout; one
    // whose machine has one class only (aarch64) does.
    assert_eq!(kd.machine_guess(|| Some(&b"OSRELEASE=6.1\nNUMBER(phys_ram_base)=0x80000000\n"[..])), (EM_RISCV, false));
    assert_eq!(kd.machine_guess(|| Some(&b"OSRELEASE=6.1-arm64\n"[..])), (EM_AARCH64, true));
    let d = crate::dump::Dump::open(std::path::Path::new(ARM32_QEMU), Default::default()).unwrap();
    assert_eq!((d.e_machine(), d.class64(), d.machine()), (0, false, "unknown"));
    // The page QEMU's loader put in guest memory reads back.
    let mut page = vec![0u8; 4096];
    kd.read_phys(0x4010_1000, &mut page).unwrap();
    assert_eq!(&page[..16], b"KDUMP32 ARM TEST");
    assert_eq!(u16::from_le_bytes([page[4094], page[4095]]), 4094);
    kd.read_phys(0x4010_2000, &mut page).unwrap();
    assert_eq!(u16::from_le_bytes([page[2], page[3]]), 2);
}
