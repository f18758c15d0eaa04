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
//! input's (for LiME, AVML and raw images, those the scanned VMCOREINFO implies).

use std::mem::size_of;
use std::path::Path;

use object::elf::{
    FileHeader32, FileHeader64, Ident, ProgramFlags, ProgramHeader32, ProgramHeader64, ProgramType, SectionHeader32,
    SectionHeader64, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, ELFMAG, ELFOSABI_NONE, ET_CORE, EV_CURRENT, PF_R, PF_W,
    PF_X, PN_XNUM, PT_LOAD, PT_NOTE,
};
use object::endian::{Endianness, U16, U32, U64};
use object::pod::bytes_of;
use rayon::prelude::*;

use super::{
    build_notes, endianness, finish, read_covered, resolve_vmcoreinfo, text_page_size, tick, with_writer, Head, Progress, Target,
    WriteReport, Writer, CHUNK_BYTES,
};
use crate::dump::Dump;
use crate::error::Result;
use crate::phys::PhysRange;

/// Inside a range, a run of at least this many zero pages starts a new PT_LOAD when zero pages
/// are excluded (makedumpfile `-E` uses the same threshold); shorter runs are written.
pub const ZERO_RUN_PAGES: u64 = 256;

/// Options for [`write_elf`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ElfOptions {
    /// Leave zero pages out of the file as `p_filesz < p_memsz` tails.
    pub exclude_zero: bool,
}

/// One PT_LOAD: `memsz` bytes of memory at `paddr`, the first `filesz` of them stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seg {
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// Where everything goes in the output, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ElfPlan {
    pub class64: bool,
    pub big: bool,
    pub machine: u16,
    pub segs: Vec<Seg>,
    /// Program headers: the PT_NOTE, then one PT_LOAD per segment.
    pub nphdr: u64,
    /// `e_phnum` = PN_XNUM, the count in section header 0 (at `shoff`).
    pub xnum: bool,
    pub phoff: u64,
    pub shoff: u64,
    pub notes_off: u64,
    pub notes_len: u64,
    /// The first segment's data (page-aligned); the others follow without gaps.
    pub data_off: u64,
}

impl ElfPlan {
    /// The layout for `segs` (memory up to `max_addr`) and `notes_len` bytes of notes. The class
    /// is the input's (`class64`), except that ELF32 is used only when everything fits in 32
    /// bits (memory, and the file with generous headroom).
    pub fn new(segs: Vec<Seg>, max_addr: u64, notes_len: u64, class64: bool, big: bool, machine: u16, page: u64) -> ElfPlan {
        let stored: u64 = segs.iter().map(|s| s.filesz).sum();
        let nphdr = segs.len() as u64 + 1;
        let phentsize32 = size_of::<ProgramHeader32<Endianness>>() as u64;
        let class64 = class64 || max_addr > 1 << 32 || stored + notes_len + nphdr * phentsize32 + (1 << 20) >= 1 << 32;
        let (ehsize, phentsize, shentsize) = Self::sizes(class64);
        let xnum = nphdr >= u64::from(PN_XNUM);
        let phoff = ehsize;
        let shoff = phoff + nphdr * phentsize;
        let notes_off = (shoff + if xnum { shentsize } else { 0 }).next_multiple_of(8);
        let data_off = (notes_off + notes_len).next_multiple_of(page.min(4096));
        ElfPlan { class64, big, machine, segs, nphdr, xnum, phoff, shoff, notes_off, notes_len, data_off }
    }

    /// `(e_ehsize, e_phentsize, e_shentsize)` of a class.
    fn sizes(class64: bool) -> (u64, u64, u64) {
        fn sz<T>() -> u64 {
            size_of::<T>() as u64
        }
        if class64 {
            (sz::<FileHeader64<Endianness>>(), sz::<ProgramHeader64<Endianness>>(), sz::<SectionHeader64<Endianness>>())
        } else {
            (sz::<FileHeader32<Endianness>>(), sz::<ProgramHeader32<Endianness>>(), sz::<SectionHeader32<Endianness>>())
        }
    }

    fn stored(&self) -> u64 {
        self.segs.iter().map(|s| s.filesz).sum()
    }

    fn file_bytes(&self) -> u64 {
        self.data_off + self.stored()
    }

    /// Every program header: the PT_NOTE, then the PT_LOADs with their file offsets.
    fn phdrs(&self) -> Vec<Phdr> {
        let mut v = Vec::with_capacity(self.nphdr as usize);
        let n = self.notes_len;
        v.push(Phdr { p_type: PT_NOTE, flags: ProgramFlags(0), offset: self.notes_off, paddr: 0, filesz: n, memsz: n, align: 4 });
        let mut off = self.data_off;
        for s in &self.segs {
            let flags = PF_R | PF_W | PF_X;
            v.push(Phdr { p_type: PT_LOAD, flags, offset: off, paddr: s.paddr, filesz: s.filesz, memsz: s.memsz, align: 0 });
            off += s.filesz;
        }
        v
    }
}

/// One program header, class-independent (`p_vaddr` = `p_paddr`).
struct Phdr {
    p_type: ProgramType,
    flags: ProgramFlags,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

/// The ELF header, the program headers and (with PN_XNUM) section header 0, from object's
/// `elf` Pod types. ELF32 fields take the low 32 bits ([`ElfPlan::new`] keeps them in range).
pub(super) fn encode_headers(plan: &ElfPlan) -> Head {
    let e = endianness(plan.big);
    let (ehsize, phentsize, shentsize) = ElfPlan::sizes(plan.class64);
    let e_ident = Ident {
        magic: ELFMAG,
        class: if plan.class64 { ELFCLASS64 } else { ELFCLASS32 },
        data: if plan.big { ELFDATA2MSB } else { ELFDATA2LSB },
        version: EV_CURRENT,
        os_abi: ELFOSABI_NONE,
        abi_version: 0,
        padding: [0; 7],
    };
    let phnum = if plan.xnum { PN_XNUM } else { plan.nphdr as u16 };
    let (shoff, shentsize, shnum) = if plan.xnum { (plan.shoff, shentsize as u16, 1) } else { (0, 0, 0) };
    let u16_ = |v: u64| U16::new(e, v as u16);
    let mut head = Head(Vec::with_capacity(plan.data_off as usize));
    macro_rules! file_header {
        ($t:ident, $w:ident) => {
            $t {
                e_ident,
                e_type: U16::new(e, ET_CORE),
                e_machine: U16::new(e, object::elf::Machine(plan.machine)),
                e_version: U32::new(e, u32::from(EV_CURRENT.0)),
                e_entry: $w(e, 0),
                e_phoff: $w(e, plan.phoff),
                e_shoff: $w(e, shoff),
                e_flags: U32::new(e, Default::default()),
                e_ehsize: u16_(ehsize),
                e_phentsize: u16_(phentsize),
                e_phnum: U16::new(e, phnum),
                e_shentsize: U16::new(e, shentsize),
                e_shnum: U16::new(e, shnum),
                e_shstrndx: U16::new(e, Default::default()),
            }
        };
    }
    if plan.class64 {
        head.0.extend_from_slice(bytes_of(&file_header!(FileHeader64, w64)));
    } else {
        head.0.extend_from_slice(bytes_of(&file_header!(FileHeader32, w32)));
    }
    debug_assert_eq!(head.0.len() as u64, plan.phoff);
    for p in plan.phdrs() {
        push_phdr(&mut head.0, e, plan.class64, &p);
    }
    if plan.xnum {
        debug_assert_eq!(head.0.len() as u64, plan.shoff);
        push_xnum_section(&mut head.0, e, plan.class64, plan.nphdr);
    }
    head
}

fn w64(e: Endianness, v: u64) -> U64<Endianness> {
    U64::new(e, v)
}

fn w32(e: Endianness, v: u64) -> U32<Endianness> {
    U32::new(e, v as u32)
}

fn push_phdr(out: &mut Vec<u8>, e: Endianness, class64: bool, p: &Phdr) {
    macro_rules! phdr {
        ($t:ident, $w:ident) => {
            $t {
                p_type: U32::new(e, p.p_type),
                p_flags: U32::new(e, p.flags),
                p_offset: $w(e, p.offset),
                p_vaddr: $w(e, p.paddr),
                p_paddr: $w(e, p.paddr),
                p_filesz: $w(e, p.filesz),
                p_memsz: $w(e, p.memsz),
                p_align: $w(e, p.align),
            }
        };
    }
    if class64 {
        out.extend_from_slice(bytes_of(&phdr!(ProgramHeader64, w64)));
    } else {
        out.extend_from_slice(bytes_of(&phdr!(ProgramHeader32, w32)));
    }
}

/// Section header 0 of a PN_XNUM file: all zeros but `sh_info`, the real program header count.
fn push_xnum_section(out: &mut Vec<u8>, e: Endianness, class64: bool, nphdr: u64) {
    macro_rules! shdr {
        ($t:ident, $w:ident) => {
            $t {
                sh_name: U32::new(e, 0),
                sh_type: U32::new(e, Default::default()),
                sh_flags: Default::default(),
                sh_addr: $w(e, 0),
                sh_offset: $w(e, 0),
                sh_size: $w(e, 0),
                sh_link: U32::new(e, 0),
                sh_info: U32::new(e, nphdr as u32),
                sh_addralign: $w(e, 0),
                sh_entsize: $w(e, 0),
            }
        };
    }
    if class64 {
        out.extend_from_slice(bytes_of(&shdr!(SectionHeader64, w64)));
    } else {
        out.extend_from_slice(bytes_of(&shdr!(SectionHeader32, w32)));
    }
}

/// Write `dump` as an ELF core at `out` (see the module documentation).
pub fn write_elf(dump: &Dump, out: &Path, options: ElfOptions, progress: Option<Progress<'_>>) -> Result<WriteReport> {
    let mut progress = progress;
    let resolved = resolve_vmcoreinfo(dump)?;
    let notes = build_notes(dump, resolved.text.as_ref().map(|t| t.bytes()))?;
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
    let max_addr = ranges.last().map_or(0, |r| r.end);
    // The identity itself, not the accessors' unknown-machine default: a failed scan is an error.
    let id = dump.identity()?;
    let (class64, big, machine) = (id.class64, id.big_endian, id.e_machine);
    let plan = ElfPlan::new(segs, max_addr, notes.bytes.len() as u64, class64, big, machine, page);

    let mut head = encode_headers(&plan);
    head.place(plan.notes_off, &notes.bytes);
    let output = head.write_to(Target::File(out), plan.data_off)?;
    let base_done = if options.exclude_zero { memory } else { 0 };
    with_writer(&output, |w| stream_segments(w, dump, &plan, &mut progress, base_done, total))?;
    finish(output, plan.file_bytes(), &mut progress, total)?;
    let stored = plan.stored();
    report.segments = plan.segs.len() as u64;
    report.memory_bytes = memory;
    report.pages = memory.div_ceil(page);
    report.zero_pages = (memory - stored) / page;
    report.file_bytes = plan.file_bytes();
    Ok(report)
}

/// The segments' stored bytes, a chunk at a time, at their planned offsets.
fn stream_segments(
    w: &Writer,
    dump: &Dump,
    plan: &ElfPlan,
    progress: &mut Option<Progress<'_>>,
    base_done: u64,
    total: u64,
) -> Result<()> {
    let mut done = 0u64;
    let mut off = plan.data_off;
    for s in &plan.segs {
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
            tick(progress, base_done + done, total)?;
        }
        // Memory left out (zero tails) still counts as converted.
        done += s.memsz - s.filesz;
    }
    Ok(())
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
            read_covered(dump, std::slice::from_ref(r), a, &mut buf)?;
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
