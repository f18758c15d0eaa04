//! Find VMCOREINFO notes in physical memory itself, for dumps that carry none in their headers
//! (raw and LiME images; ELF or kdump files written without `-device vmcoreinfo`).
//!
//! The kernel keeps its VMCOREINFO note in a page-aligned buffer (`vmcoreinfo_note`, allocated
//! page by page since Linux 4.15), so the scan looks only at page starts (4 KiB steps): a
//! candidate is a page whose first bytes are a note header `{namesz 11, descsz 1..=1 MiB, type 0}`
//! in the wanted byte order, the name `VMCOREINFO\0`, and a desc starting `OSRELEASE=` (the same
//! test volatility3 applies). Each candidate is then held to QEMU's intake rules
//! ([`check_dump_note`](crate::fwcfg::check_dump_note)) with the caller's note limit.
//!
//! Memory is read in [`CHUNK`]-byte reads through [`PhysMemory::read_phys`], one buffer reused, so
//! memory use is bounded whatever the dump's size. A chunk that cannot be read whole (absent
//! pages, a truncated file, a page that fails to decompress) is probed page by page, and pages
//! that still cannot be read are counted, not fatal; an operating-system error stops the scan.

use crate::error::{Error, ErrorKind, Location, Result};
use crate::fwcfg;
use crate::notes;
use crate::phys::PhysMemory;

/// Step between probes: the note buffer is page-aligned.
pub const PAGE: u64 = 4096;
/// Bytes read per `read_phys` call.
pub const CHUNK: usize = 4 << 20;
/// Bytes a probe looks at: header (12) + name padded to 12 + `OSRELEASE=`.
pub const PROBE_LEN: usize = notes::VMCOREINFO_DESC_OFFSET + TEXT_START.len();
/// Offset of the desc (the text) in a VMCOREINFO note.
pub const DESC_OFFSET: u64 = notes::VMCOREINFO_DESC_OFFSET as u64;
/// Most candidates a report keeps (more are only counted): a hostile image could make every
/// page a candidate, and each may later be read (up to 1 MiB of text each).
pub const MAX_CANDIDATES: usize = 256;
const NAME: &[u8; 11] = notes::VMCOREINFO_NAME_NUL;
const TEXT_START: &[u8; 10] = b"OSRELEASE=";
const NAMESZ: u32 = notes::VMCOREINFO_NAMESZ;
const NAME_AT: usize = notes::NAME_OFFSET;
const DESC_AT: usize = notes::VMCOREINFO_DESC_OFFSET;

/// Which byte orders to accept for the note header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
    /// Either (raw and LiME images do not say).
    Any,
}

impl ByteOrder {
    pub fn from_big_endian(big: bool) -> Self {
        if big {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }
}

/// One page that starts with a VMCOREINFO note header.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Physical address of the note header (page-aligned).
    pub paddr: u64,
    pub namesz: u32,
    pub descsz: u32,
    /// Byte order the header was read in.
    pub big_endian: bool,
    /// Which of QEMU's intake rules the note breaks, if any (then it is not used).
    pub rejected: Option<Error>,
}

impl Candidate {
    /// Physical address of the text.
    pub fn desc_addr(&self) -> u64 {
        self.paddr + DESC_OFFSET
    }
}

/// What a scan found and how far it got.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Every candidate, in address order (the first [`MAX_CANDIDATES`]).
    pub candidates: Vec<Candidate>,
    /// Candidates found past [`MAX_CANDIDATES`], counted but not kept.
    pub candidates_dropped: u64,
    /// Bytes in the dump's memory ranges.
    pub total: u64,
    /// Bytes of those ranges walked (equals `total` unless cancelled).
    pub scanned: u64,
    /// The progress callback asked to stop.
    pub cancelled: bool,
    /// Page starts that could not be read (absent inside a range, truncated, undecompressable).
    pub unreadable_pages: u64,
    /// The first of those errors.
    pub first_unreadable: Option<Error>,
}

impl ScanReport {
    /// Candidates that pass QEMU's intake rules.
    pub fn valid(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates.iter().filter(|c| c.rejected.is_none())
    }
}

/// Test the first [`PROBE_LEN`] bytes of a page; `Some((descsz, big_endian))` for a candidate.
pub fn probe(b: &[u8], order: ByteOrder) -> Option<(u32, bool)> {
    if b.len() < PROBE_LEN || &b[NAME_AT..NAME_AT + NAME.len()] != NAME || &b[DESC_AT..PROBE_LEN] != TEXT_START {
        return None;
    }
    let orders: &[bool] = match order {
        ByteOrder::Little => &[false],
        ByteOrder::Big => &[true],
        ByteOrder::Any => &[false, true],
    };
    orders.iter().copied().find_map(|big| {
        let (namesz, descsz, n_type) = notes::note_header(b, big)?;
        (namesz == NAMESZ && n_type == 0 && (1..=fwcfg::MAX_GUEST_NOTE_SIZE).contains(&descsz)).then_some((descsz, big))
    })
}

fn page_errors_are_skippable(e: &Error) -> bool {
    matches!(e.kind, ErrorKind::Absent | ErrorKind::Truncated | ErrorKind::Decompress | ErrorKind::Unsupported)
}

/// Scan `mem` for VMCOREINFO notes at page starts. `limit` is the largest padded note accepted
/// (the dump's `max_note_size`). `progress(done, total)` is called after each chunk with the
/// bytes walked so far; returning `false` stops the scan (the report says `cancelled`).
pub fn scan<M: PhysMemory + ?Sized>(
    mem: &M,
    order: ByteOrder,
    limit: u64,
    progress: &mut dyn FnMut(u64, u64) -> bool,
) -> Result<ScanReport> {
    let ranges = mem.ranges()?;
    let mut rep = ScanReport { total: ranges.iter().map(|r| r.end - r.start).sum(), ..ScanReport::default() };
    let mut buf = vec![0u8; CHUNK];
    let found = |rep: &mut ScanReport, paddr: u64, descsz: u32, big: bool| {
        if rep.candidates.len() >= MAX_CANDIDATES {
            rep.candidates_dropped += 1;
            return;
        }
        let rejected = fwcfg::check_dump_note(NAMESZ, descsz, 0, limit).err().map(|e| Error {
            location: Some(Location::Phys(paddr)),
            message: format!("note at physical {paddr:#x}: {}", e.message),
            ..e
        });
        rep.candidates.push(Candidate { paddr, namesz: NAMESZ, descsz, big_endian: big, rejected });
    };
    for r in ranges {
        // First page start in the range (none when aligning up passes its end or 2^64).
        let first = r.start.checked_next_multiple_of(PAGE).filter(|&p| p < r.end);
        let Some(mut p) = first else {
            rep.scanned += r.end - r.start;
            continue;
        };
        rep.scanned += p - r.start;
        while p < r.end {
            let n = (r.end - p).min(CHUNK as u64) as usize;
            let chunk = &mut buf[..n];
            match mem.read_phys(p, chunk) {
                Ok(()) => {
                    for off in (0..n).step_by(PAGE as usize) {
                        if let Some(b) = chunk.get(off..off + PROBE_LEN) {
                            if let Some((descsz, big)) = probe(b, order) {
                                found(&mut rep, p + off as u64, descsz, big);
                            }
                        }
                    }
                }
                Err(e) if page_errors_are_skippable(&e) => {
                    // Probe page by page; only the probe bytes are needed.
                    for off in (0..n).step_by(PAGE as usize) {
                        if n - off < PROBE_LEN {
                            break;
                        }
                        let mut b = [0u8; PROBE_LEN];
                        match mem.read_phys(p + off as u64, &mut b) {
                            Ok(()) => {
                                if let Some((descsz, big)) = probe(&b, order) {
                                    found(&mut rep, p + off as u64, descsz, big);
                                }
                            }
                            Err(e) if page_errors_are_skippable(&e) => {
                                rep.unreadable_pages += 1;
                                rep.first_unreadable.get_or_insert(e);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
            p += n as u64;
            rep.scanned += n as u64;
            if !progress(rep.scanned, rep.total) {
                rep.cancelled = rep.scanned < rep.total;
                return Ok(rep);
            }
        }
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phys::PhysRange;
    use std::collections::BTreeMap;

    /// Sparse memory: pages present in a map; everything in `ranges` outside it is absent.
    struct Mem {
        pages: BTreeMap<u64, Vec<u8>>,
        ranges: Vec<PhysRange>,
    }

    impl PhysMemory for Mem {
        fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
            let mut done = 0usize;
            while done < buf.len() {
                let a = addr + done as u64;
                let page = self.pages.get(&(a & !(PAGE - 1))).ok_or_else(|| Error::absent(a, "absent"))?;
                let at = (a % PAGE) as usize;
                let n = (PAGE as usize - at).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&page[at..at + n]);
                done += n;
            }
            Ok(())
        }
        fn ranges(&self) -> Result<Vec<PhysRange>> {
            Ok(self.ranges.clone())
        }
    }

    fn note_page(descsz: u32, big: bool, text: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; PAGE as usize];
        let w = |x: u32| if big { x.to_be_bytes() } else { x.to_le_bytes() };
        p[0..4].copy_from_slice(&w(11));
        p[4..8].copy_from_slice(&w(descsz));
        p[8..12].copy_from_slice(&w(0));
        p[12..23].copy_from_slice(NAME);
        p[24..24 + text.len()].copy_from_slice(text);
        p
    }

    fn all_present(pages: &[(u64, Vec<u8>)], end: u64) -> Mem {
        let mut m: BTreeMap<u64, Vec<u8>> = (0..end / PAGE).map(|i| (i * PAGE, vec![0u8; PAGE as usize])).collect();
        for (a, p) in pages {
            m.insert(*a, p.clone());
        }
        Mem { pages: m, ranges: vec![PhysRange { start: 0, end }] }
    }

    #[test]
    fn finds_every_candidate_at_page_starts_only() {
        let mut off_page = vec![0u8; PAGE as usize];
        off_page[8..8 + 34].copy_from_slice(&note_page(100, false, b"OSRELEASE=6.1")[..34]);
        let m = all_present(
            &[
                (0x3000, note_page(100, false, b"OSRELEASE=6.1\n")),
                (0x5000, off_page),
                (0x9000, note_page(7, false, b"OSRELEASE=")),
            ],
            0x10000,
        );
        let rep = scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| true).unwrap();
        let at: Vec<u64> = rep.candidates.iter().map(|c| c.paddr).collect();
        assert_eq!(at, vec![0x3000, 0x9000]);
        assert_eq!((rep.scanned, rep.total, rep.cancelled), (0x10000, 0x10000, false));
        assert_eq!(rep.candidates[0].descsz, 100);
    }

    #[test]
    fn candidates_are_capped() {
        let pages: Vec<(u64, Vec<u8>)> =
            (0..MAX_CANDIDATES as u64 + 5).map(|i| (i * PAGE, note_page(4, false, b"OSRELEASE="))).collect();
        let m = all_present(&pages, pages.len() as u64 * PAGE);
        let rep = scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| true).unwrap();
        assert_eq!((rep.candidates.len(), rep.candidates_dropped), (MAX_CANDIDATES, 5));
    }

    #[test]
    fn byte_orders() {
        let m = all_present(&[(0x1000, note_page(50, true, b"OSRELEASE=x"))], 0x4000);
        assert!(scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| true).unwrap().candidates.is_empty());
        let rep = scan(&m, ByteOrder::Any, 1 << 20, &mut |_, _| true).unwrap();
        assert!(rep.candidates[0].big_endian);
        assert_eq!(scan(&m, ByteOrder::Big, 1 << 20, &mut |_, _| true).unwrap().candidates.len(), 1);
    }

    #[test]
    fn header_filter_and_intake_rules() {
        // descsz 0 and > 1 MiB are not candidates; a note over the caller's limit is rejected.
        let m = all_present(
            &[
                (0x0, note_page(0, false, b"OSRELEASE=")),
                (0x1000, note_page((1 << 20) + 1, false, b"OSRELEASE=")),
                (0x2000, note_page(5000, false, b"OSRELEASE=")),
            ],
            0x3000,
        );
        let rep = scan(&m, ByteOrder::Little, 4096, &mut |_, _| true).unwrap();
        assert_eq!(rep.candidates.len(), 1);
        let e = rep.candidates[0].rejected.as_ref().unwrap();
        assert_eq!(e.rule(), Some(crate::Rule::SizeAboveLimit));
        assert_eq!(rep.valid().count(), 0);
    }

    #[test]
    fn absent_pages_inside_ranges_are_skipped_and_counted() {
        let mut m = all_present(&[(0x2000, note_page(20, false, b"OSRELEASE=1"))], 0x4000);
        m.pages.remove(&0x1000);
        let rep = scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| true).unwrap();
        assert_eq!(rep.candidates.len(), 1);
        assert_eq!(rep.unreadable_pages, 1);
        assert_eq!(rep.first_unreadable.unwrap().address(), Some(0x1000));
    }

    #[test]
    fn unaligned_ranges_and_short_tails() {
        // Range starts mid-page: the first probe is at the next page start; a range ending
        // fewer than PROBE_LEN bytes after a page start has no probe there.
        let mut m = all_present(&[(0x2000, note_page(20, false, b"OSRELEASE=1"))], 0x3000);
        m.ranges = vec![PhysRange { start: 0x1800, end: 0x2000 + PROBE_LEN as u64 }];
        assert_eq!(scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| true).unwrap().candidates.len(), 1);
        m.ranges = vec![PhysRange { start: 0x1800, end: 0x2000 + PROBE_LEN as u64 - 1 }];
        let rep = scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| true).unwrap();
        assert!(rep.candidates.is_empty());
        assert_eq!(rep.scanned, rep.total);
        m.ranges = vec![PhysRange { start: u64::MAX - 10, end: u64::MAX }];
        assert_eq!(scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| true).unwrap().scanned, 10);
    }

    #[test]
    fn progress_and_cancellation() {
        let end = 3 * CHUNK as u64;
        let m = Mem {
            pages: (0..end / PAGE).map(|i| (i * PAGE, vec![0u8; PAGE as usize])).collect(),
            ranges: vec![PhysRange { start: 0, end }],
        };
        let mut calls = Vec::new();
        let rep = scan(&m, ByteOrder::Little, 1 << 20, &mut |d, t| {
            calls.push((d, t));
            true
        })
        .unwrap();
        assert_eq!(calls, vec![(CHUNK as u64, end), (2 * CHUNK as u64, end), (end, end)]);
        assert!(!rep.cancelled);
        let rep = scan(&m, ByteOrder::Little, 1 << 20, &mut |_, _| false).unwrap();
        assert!(rep.cancelled);
        assert_eq!(rep.scanned, CHUNK as u64);
    }

    fn dump_of(bytes: Vec<u8>, format: Option<crate::dump::Format>) -> Result<crate::dump::Dump> {
        let opts = crate::dump::OpenOptions { format, ..Default::default() };
        crate::dump::Dump::from_source(std::sync::Arc::new(bytes), std::sync::Arc::from("mem"), opts)
    }

    const X86_TEXT: &[u8] =
        b"OSRELEASE=6.1.0-test-amd64\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff8e00a000\nNUMBER(phys_base)=0\n";

    fn image_with_notes(at: &[u64], len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        for &a in at {
            let p = note_page(X86_TEXT.len() as u32, false, X86_TEXT);
            v[a as usize..a as usize + PAGE as usize].copy_from_slice(&p);
        }
        v
    }

    #[test]
    fn raw_dump_scans_for_its_text_and_machine() {
        use crate::dump::Format;
        let img = image_with_notes(&[0x3000, 0x7000], 0x9000);
        // A raw image is never detected.
        assert_eq!(dump_of(img.clone(), None).err().unwrap().kind, ErrorKind::Format);
        let d = dump_of(img, Some(Format::Raw)).unwrap();
        assert!(d.machine_if_known().is_none());
        let blob = d.vmcoreinfo().unwrap();
        assert_eq!(blob.bytes(), X86_TEXT);
        assert_eq!((blob.phys_addr, blob.file_offset), (Some(0x3000), Some(0x3000 + DESC_OFFSET)));
        assert_eq!(d.machine(), "x86_64");
        assert!(!d.big_endian());
        assert_eq!(d.image_scan().unwrap().report.candidates.len(), 2);
    }

    #[test]
    fn lime_dump_is_detected_and_scanned() {
        use crate::dump::Format;
        let img = image_with_notes(&[0x1000], 0x2000);
        let lime = crate::lime::tests::build(&[(0x10_0000, &img[..0x1000]), (0x20_0000, &img[0x1000..])]);
        let d = dump_of(lime.clone(), None).unwrap();
        assert_eq!(d.format(), Format::Lime);
        let blob = d.vmcoreinfo().unwrap();
        assert_eq!(blob.phys_addr, Some(0x20_0000));
        assert_eq!(blob.file_offset, Some(32 + 0x1000 + 32 + DESC_OFFSET));
        // Forcing another format on a LiME file is a format error; forcing raw is allowed.
        assert_eq!(dump_of(lime.clone(), Some(Format::Elf)).err().unwrap().kind, ErrorKind::Format);
        assert_eq!(dump_of(lime.clone(), Some(Format::Raw)).unwrap().format(), Format::Raw);
        // No note anywhere: NoVmcoreinfo that says a scan ran.
        let d = dump_of(crate::lime::tests::build(&[(0, &[0u8; 0x2000])]), Some(Format::Lime)).unwrap();
        let e = d.vmcoreinfo().unwrap_err();
        assert_eq!(e.kind, ErrorKind::NoVmcoreinfo);
        assert!(e.message.contains("scan"), "{e}");
        assert_eq!(d.machine(), "unknown");
    }

    #[test]
    fn explicit_scan_fills_the_image_cache_unless_cancelled() {
        use crate::dump::Format;
        let d = dump_of(image_with_notes(&[0x1000], 0x2000), Some(Format::Raw)).unwrap();
        let rep = d.scan_vmcoreinfo(&mut |_, _| false).unwrap();
        assert!(!rep.cancelled, "a one-chunk scan has finished when the callback runs");
        assert!(d.image_scan_if_done().is_some());
        let d = dump_of(vec![0u8; CHUNK + 0x1000], Some(Format::Raw)).unwrap();
        assert!(d.scan_vmcoreinfo(&mut |_, _| false).unwrap().cancelled);
        assert!(d.image_scan_if_done().is_none());
    }

    #[test]
    fn os_errors_stop_the_scan() {
        struct Broken;
        impl PhysMemory for Broken {
            fn read_phys(&self, _: u64, _: &mut [u8]) -> Result<()> {
                Err(Error::io(&std::io::Error::from_raw_os_error(5), Some(0), "read failed"))
            }
            fn ranges(&self) -> Result<Vec<PhysRange>> {
                Ok(vec![PhysRange { start: 0, end: 4096 }])
            }
        }
        assert!(matches!(scan(&Broken, ByteOrder::Any, 1 << 20, &mut |_, _| true).unwrap_err().kind, ErrorKind::Io { .. }));
    }
}
