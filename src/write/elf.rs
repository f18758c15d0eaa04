//! ELF core output: the standard layout every reader expects.
//!
//! * ELF header (`e_ehsize` 64, or 52 for ELF32), program headers right after it (`e_phoff` =
//!   `e_ehsize`); with 65535 or more program headers, `e_phnum` = PN_XNUM and the count in
//!   section header 0's `sh_info` (the only section header, after the program headers).
//! * One PT_NOTE: the input's notes in their order (CPU states included), the VMCOREINFO note
//!   last (QEMU's order; readers that take the last VMCOREINFO note and readers that take the
//!   first find the same one, since there is only one).
//! * One PT_LOAD per physical range, `p_paddr` = `p_vaddr` = the physical address (as QEMU
//!   writes a dump taken without paging; readers translate kernel addresses through
//!   VMCOREINFO, never through `p_vaddr`). With `exclude_zero`, zero pages at the end of a range,
//!   and runs of at least [`ZERO_RUN_PAGES`] zero pages inside one, are left out of the file as
//!   `p_filesz < p_memsz` tails (a run inside a range starts a new PT_LOAD), as makedumpfile
//!   `-E` writes pages it excludes. That needs one extra read pass to plan the segments.
//! * The note data, then the memory, starting at a page-aligned file offset.
//!
//! The ELF class is the input's, except that memory or a file reaching past 4 GiB needs ELF64
//! (as QEMU writes i386 guests with more than 4 GiB). The byte order and `e_machine` are the
//! input's (for LiME and raw images, those the scanned VMCOREINFO implies).

use std::path::Path;

use rayon::prelude::*;

use super::{
    build_notes, read_covered, resolve_vmcoreinfo, text_page_size, tick, with_writer, Endian, Output, Progress, WriteReport,
    CHUNK_BYTES,
};
use crate::dump::Dump;
use crate::error::{Error, Result};
use crate::phys::PhysRange;

/// Inside a range, a run of at least this many zero pages starts a new PT_LOAD when zero pages
/// are excluded (makedumpfile `-E` uses the same threshold); shorter runs are written.
pub const ZERO_RUN_PAGES: u64 = 256;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PN_XNUM: u32 = 0xffff;

/// Options for [`write_elf`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ElfOptions {
    /// Leave zero pages out of the file as `p_filesz < p_memsz` tails.
    pub exclude_zero: bool,
}

/// One PT_LOAD: `memsz` bytes of memory at `paddr`, the first `filesz` of them stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seg {
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

/// Write `dump` as an ELF core at `out` (see the module documentation).
pub fn write_elf(dump: &Dump, out: &Path, options: ElfOptions, progress: Option<Progress<'_>>) -> Result<WriteReport> {
    let mut progress = progress;
    let resolved = resolve_vmcoreinfo(dump)?;
    let (notes, _) = build_notes(dump, resolved.text.as_ref().map(|t| t.bytes()))?;
    let ranges = dump.memory_ranges()?;
    let page = text_page_size(resolved.text.as_ref()).unwrap_or(4096);
    let mut report = WriteReport::new(resolved.source, resolved.diagnostics, page);
    let memory: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let passes = if options.exclude_zero { 2 } else { 1 };
    let total = memory * passes;

    let segs = if options.exclude_zero {
        plan_zero_tails(dump, &ranges, page, &mut progress, total)?
    } else {
        ranges.iter().map(|r| Seg { paddr: r.start, filesz: r.end - r.start, memsz: r.end - r.start }).collect()
    };
    let stored: u64 = segs.iter().map(|s| s.filesz).sum();

    let max_addr = ranges.last().map_or(0, |r| r.end);
    let nphdr = segs.len() as u64 + 1;
    // ELF32 only when everything fits in 32 bits (memory, and the file with generous headroom).
    let class64 = dump.class64() || max_addr > 1 << 32 || stored + notes.len() as u64 + nphdr * 32 + (1 << 20) >= 1 << 32;
    let (ehsize, phentsize, shentsize) = if class64 { (64u64, 56u64, 64u64) } else { (52, 32, 40) };
    let xnum = nphdr >= u64::from(PN_XNUM);
    let phoff = ehsize;
    let shoff = phoff + nphdr * phentsize;
    let notes_off = (shoff + if xnum { shentsize } else { 0 }).next_multiple_of(8);
    let data_off = (notes_off + notes.len() as u64).next_multiple_of(page.min(4096));

    let big = dump.big_endian();
    let mut head = Vec::with_capacity((data_off) as usize);
    {
        let mut w = Endian { big, buf: &mut head };
        w.buf.extend_from_slice(&[0x7f, b'E', b'L', b'F', if class64 { 2 } else { 1 }, if big { 2 } else { 1 }, 1, 0]);
        w.buf.extend_from_slice(&[0; 8]);
        w.u16(4); // ET_CORE
        w.u16(dump.e_machine());
        w.u32(1); // EV_CURRENT
        w.ulong(0, class64); // e_entry
        w.ulong(phoff, class64);
        w.ulong(if xnum { shoff } else { 0 }, class64);
        w.u32(0); // e_flags
        w.u16(ehsize as u16);
        w.u16(phentsize as u16);
        w.u16(if xnum { PN_XNUM as u16 } else { nphdr as u16 });
        w.u16(if xnum { shentsize as u16 } else { 0 });
        w.u16(u16::from(xnum)); // e_shnum
        w.u16(0); // e_shstrndx
        debug_assert_eq!(w.buf.len() as u64, ehsize);
        let phdr =
            |w: &mut Endian, p_type: u32, flags: u32, off: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64, align: u64| {
                if class64 {
                    w.u32(p_type);
                    w.u32(flags);
                    for v in [off, vaddr, paddr, filesz, memsz, align] {
                        w.u64(v);
                    }
                } else {
                    for v in [u64::from(p_type), off, vaddr, paddr, filesz, memsz, u64::from(flags), align] {
                        w.u32(v as u32);
                    }
                }
            };
        phdr(&mut w, PT_NOTE, 0, notes_off, 0, 0, notes.len() as u64, notes.len() as u64, 4);
        let mut off = data_off;
        for s in &segs {
            phdr(&mut w, PT_LOAD, 7, off, s.paddr, s.paddr, s.filesz, s.memsz, 0);
            off += s.filesz;
        }
        if xnum {
            // Section header 0: sh_info holds the real program header count.
            if class64 {
                w.buf.extend_from_slice(&[0; 44]);
                w.u32(nphdr as u32);
                w.buf.extend_from_slice(&[0; 16]);
            } else {
                w.buf.extend_from_slice(&[0; 28]);
                w.u32(nphdr as u32);
                w.buf.extend_from_slice(&[0; 8]);
            }
        }
    }
    head.resize(notes_off as usize, 0);
    head.extend_from_slice(&notes);
    head.resize(data_off as usize, 0);

    let output = Output::create(out)?;
    output.write_at(0, &head)?;
    drop(head);
    let base_done = if options.exclude_zero { memory } else { 0 };
    let mut done = 0u64;
    with_writer(&output, |w| {
        let mut off = data_off;
        for s in &segs {
            let mut a = s.paddr;
            let end = s.paddr + s.filesz;
            while a < end {
                let n = (end - a).min(CHUNK_BYTES);
                let mut buf = w.buffer(n as usize);
                dump.read_phys(a, &mut buf)?;
                w.send(vec![(off, buf)])?;
                off += n;
                a += n;
                done += n;
                tick(&mut progress, base_done + done, total)?;
            }
            // Memory left out (zero tails) still counts as converted.
            done += s.memsz - s.filesz;
        }
        Ok(())
    })?;
    let file_bytes = data_off + stored;
    output.set_len(file_bytes)?;
    tick(&mut progress, total, total)?;
    output.commit()?;
    report.segments = segs.len() as u64;
    report.memory_bytes = memory;
    report.pages = memory.div_ceil(page);
    report.zero_pages = (memory - stored) / page;
    report.file_bytes = file_bytes;
    Ok(report)
}

/// First pass of `exclude_zero`: split the ranges into PT_LOADs whose zero pages at the end are
/// left out of the file.
fn plan_zero_tails(
    dump: &Dump,
    ranges: &[PhysRange],
    page: u64,
    progress: &mut Option<Progress<'_>>,
    total: u64,
) -> Result<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut done = 0u64;
    let mut buf = Vec::new();
    for r in ranges {
        let mut seg_start = r.start;
        let mut zero_from: Option<u64> = None;
        let mut a = r.start;
        while a < r.end {
            // Chunks end on page boundaries (except at the range's end).
            let mut b = (a + CHUNK_BYTES).min(r.end);
            if b < r.end {
                b = (b / page * page).max(a + 1);
            }
            buf.clear();
            buf.resize((b - a) as usize, 0);
            read_covered(dump, std::slice::from_ref(r), a, &mut buf).map_err(|e: Error| e)?;
            // Pieces: the parts of pages inside [a, b).
            let mut bounds = Vec::new();
            let mut p = a;
            while p < b {
                let q = ((p / page + 1) * page).min(b);
                bounds.push((p, q));
                p = q;
            }
            let zero: Vec<bool> =
                bounds.par_iter().map(|&(p, q)| super::is_zero(&buf[(p - a) as usize..(q - a) as usize])).collect();
            for (&(p, _), z) in bounds.iter().zip(zero) {
                if z {
                    zero_from.get_or_insert(p);
                } else if let Some(zf) = zero_from.take() {
                    if p - zf >= ZERO_RUN_PAGES * page {
                        segs.push(Seg { paddr: seg_start, filesz: zf - seg_start, memsz: p - seg_start });
                        seg_start = p;
                    }
                }
            }
            done += b - a;
            a = b;
            tick(progress, done, total)?;
        }
        let stored_end = zero_from.unwrap_or(r.end);
        segs.push(Seg { paddr: seg_start, filesz: stored_end - seg_start, memsz: r.end - seg_start });
    }
    Ok(segs)
}
