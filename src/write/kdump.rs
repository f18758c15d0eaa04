//! kdump-compressed ("KDUMP   ") output, header version 6, as makedumpfile and QEMU write it.
//!
//! Layout, in `block_size` blocks (the guest's PAGESIZE from VMCOREINFO; else the input kdump's
//! block size; else 4096):
//! * block 0: `disk_dump_header`: utsname with sysname `Linux`, release = OSRELEASE,
//!   machine from the dump's machine (`x86_64`, `aarch64`, `i686`, ...: what the kernel's
//!   utsname says and what libkdumpfile and drgn take the architecture from), the compression
//!   flag in `status`, `max_mapnr` (capped at 2^32 - 1; the sub-header has the 64-bit value).
//! * block 1..: `kdump_sub_header`: phys_base from the VMCOREINFO text (x86_64 `NUMBER(phys_base)`,
//!   signed decimal, not QEMU's hex misreading; arm64 `NUMBER(PHYS_OFFSET)`), then the note
//!   buffer right after it: the input's notes, the VMCOREINFO note last; `offset_note`/`note_size`
//!   cover the buffer and `offset_vmcoreinfo`/`size_vmcoreinfo` point at the VMCOREINFO text in it
//!   (as QEMU does). 64-bit machines get the 64-bit header layouts, 32-bit ones the packed 32-bit
//!   layouts (QEMU's and i386 makedumpfile's).
//! * bitmap 1 then bitmap 2, equal: the pages the input holds.
//! * one 24-byte page descriptor per page, in pfn order, then the page data: first the one
//!   shared zero page (stored raw; every all-zero page's descriptor points at it), then each page
//!   compressed, or stored raw (flags 0, size = block size) when compression does not make it
//!   smaller.
//!
//! Pages are compressed in parallel (rayon) a chunk at a time and written in pfn order by a
//! writer thread, so the output is byte-for-byte deterministic and memory stays bounded.

use std::mem::size_of;
use std::path::Path;

use object::endian::{Endianness, I32, I64, U32, U64};
use object::pod::bytes_of;
use rayon::prelude::*;

use super::{
    build_notes, endianness, finish, read_covered, resolve_vmcoreinfo, text_page_size, tick, with_writer, Head, NoteBuf,
    Progress, Target, WriteDiagnostic, WriteReport, Writer, CHUNK_BYTES,
};
use crate::bitness;
use crate::dump::Dump;
use crate::error::{Error, ErrorKind, Result};
use crate::kdump::layout::{
    DiskDumpHeader32, DiskDumpHeader64, HeaderTail, PageDescRaw, SubHeader64, SubHeaderPacked32, UTS_LEN,
};
use crate::kdump::{
    DESC_SIZE, DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD,
    MAX_BITMAP_BYTES, SIGNATURE,
};
use crate::phys::{normalize, PhysRange};
use crate::text;

/// Page compression of a kdump file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zlib => "zlib",
            Compression::Lzo => "lzo",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
        }
    }
    pub fn from_name(name: &str) -> Option<Compression> {
        [Compression::None, Compression::Zlib, Compression::Lzo, Compression::Snappy, Compression::Zstd]
            .into_iter()
            .find(|c| c.name() == name)
    }
    /// The flag in the header's `status` and in each compressed page's descriptor.
    pub fn flag(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Zlib => DUMP_DH_COMPRESSED_ZLIB,
            Compression::Lzo => DUMP_DH_COMPRESSED_LZO,
            Compression::Snappy => DUMP_DH_COMPRESSED_SNAPPY,
            Compression::Zstd => DUMP_DH_COMPRESSED_ZSTD,
        }
    }
    /// Whether this build can write it (LZO needs the GPL-2.0 `lzo` feature).
    pub fn available(self) -> bool {
        self != Compression::Lzo || cfg!(feature = "lzo")
    }
}

/// Options for [`write_kdump`].
#[derive(Debug, Clone, Copy)]
pub struct KdumpOptions {
    pub compression: Compression,
}

impl Default for KdumpOptions {
    fn default() -> Self {
        KdumpOptions { compression: Compression::Zlib }
    }
}

const HEADER_VERSION: i32 = 6;

/// A page after compression.
pub(super) enum PageOut {
    Zero,
    Raw,
    Packed(Vec<u8>),
}

/// Per-thread compression state.
enum Packer {
    None,
    Zlib(flate2::Compress),
    Zstd(Box<zstd::bulk::Compressor<'static>>),
    Snappy(Box<snap::raw::Encoder>),
    #[cfg(feature = "lzo")]
    Lzo,
}

impl Packer {
    fn new(c: Compression) -> Packer {
        match c {
            Compression::None => Packer::None,
            Compression::Zlib => Packer::Zlib(flate2::Compress::new(flate2::Compression::fast(), true)),
            // Level 1: a zstd compressor can only fail to be created on allocation failure.
            Compression::Zstd => {
                Packer::Zstd(Box::new(zstd::bulk::Compressor::new(1).expect("zstd compressor (allocation failure)")))
            }
            Compression::Snappy => Packer::Snappy(Box::new(snap::raw::Encoder::new())),
            #[cfg(feature = "lzo")]
            Compression::Lzo => Packer::Lzo,
            #[cfg(not(feature = "lzo"))]
            Compression::Lzo => Packer::None,
        }
    }

    /// Compress one page; `Raw` when compression does not make it smaller.
    fn pack(&mut self, page: &[u8]) -> PageOut {
        if super::is_zero(page) {
            return PageOut::Zero;
        }
        let n = page.len();
        let out = match self {
            Packer::None => return PageOut::Raw,
            Packer::Zlib(z) => {
                z.reset();
                let mut out = Vec::with_capacity(n - 1);
                match z.compress_vec(page, &mut out, flate2::FlushCompress::Finish) {
                    Ok(flate2::Status::StreamEnd) => out,
                    _ => return PageOut::Raw,
                }
            }
            Packer::Zstd(z) => {
                let mut out = Vec::with_capacity(n - 1);
                match z.compress_to_buffer(page, &mut out) {
                    Ok(_) => out,
                    Err(_) => return PageOut::Raw,
                }
            }
            Packer::Snappy(s) => {
                let mut out = vec![0u8; snap::raw::max_compress_len(n)];
                match s.compress(page, &mut out) {
                    Ok(k) => {
                        out.truncate(k);
                        out
                    }
                    Err(_) => return PageOut::Raw,
                }
            }
            #[cfg(feature = "lzo")]
            Packer::Lzo => lzo1x::compress(page, lzo1x::CompressLevel::new(1)),
        };
        if out.len() < n {
            PageOut::Packed(out)
        } else {
            PageOut::Raw
        }
    }
}

/// `utsname.machine` for a machine, as the kernel's `uname -m` spells it.
fn uts_machine(dump: &Dump) -> String {
    let m = dump.e_machine();
    let s = match m {
        bitness::EM_386 => "i686",
        bitness::EM_ARM => "armv7l",
        bitness::EM_PPC64 if !dump.big_endian() => "ppc64le",
        0 => return dump.kdump().map(|k| k.machine().to_owned()).unwrap_or_default(),
        _ => bitness::machine_name(m, dump.class64()),
    };
    s.to_owned()
}

/// The kernel's `init_uts_ns.name` read from guest memory (sysname, nodename, release, version,
/// machine, domainname), when VMCOREINFO says where it is and the kernel image's virtual to
/// physical mapping is a fixed offset that VMCOREINFO gives (x86_64: `__START_KERNEL_map` and
/// `phys_base`; arm64: `kimage_voffset`). Only accepted when its sysname is `Linux` and its
/// release is the text's OSRELEASE.
fn guest_utsname(dump: &Dump, text: &[u8], release: &str) -> Option<[String; 6]> {
    let idx = text::Index::build(text);
    let v = idx.view(text);
    let vaddr = v.symbol("init_uts_ns").ok()?? + v.offset("uts_namespace", "name").ok()?.unwrap_or(0);
    let paddr = match dump.e_machine() {
        bitness::EM_X86_64 => {
            let phys_base = v.phys_base().ok()??;
            vaddr.checked_sub(0xffff_ffff_8000_0000)?.wrapping_add(phys_base as u64)
        }
        bitness::EM_AARCH64 => vaddr.wrapping_sub(v.number("kimage_voffset").ok()?? as u64),
        _ => return None,
    };
    let mut buf = [0u8; 6 * UTS_LEN];
    dump.read_phys(paddr, &mut buf).ok()?;
    let field = |i: usize| {
        let f = &buf[i * UTS_LEN..(i + 1) * UTS_LEN];
        let end = f.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&f[..end]).ok().map(str::to_owned)
    };
    let u: [String; 6] = [field(0)?, field(1)?, field(2)?, field(3)?, field(4)?, field(5)?];
    (u[0] == "Linux" && u[2] == release && !u[3].is_empty() && !u[4].is_empty()).then_some(u)
}

/// Write `dump` as a kdump-compressed file at `out` (see the module documentation).
pub fn write_kdump(dump: &Dump, out: &Path, options: KdumpOptions, progress: Option<Progress<'_>>) -> Result<WriteReport> {
    write_kdump_to(dump, Target::File(out), options, progress)
}

/// [`write_kdump`] to a file or, flattened, to a stream (see [`Target`]): plan, resolve the
/// header values, encode the headers, then stream the bitmaps and the pages.
pub fn write_kdump_to(
    dump: &Dump,
    out: Target<'_>,
    options: KdumpOptions,
    progress: Option<Progress<'_>>,
) -> Result<WriteReport> {
    let mut progress = progress;
    let comp = options.compression;
    if !comp.available() {
        return Err(Error::unsupported(
            None,
            "LZO output needs the `lzo` cargo feature (the only LZO1X encoder on crates.io is GPL-2.0); \
             this build has it off: use zlib, zstd, snappy or none",
        ));
    }
    let resolved = resolve_vmcoreinfo(dump)?;
    let text = resolved.text.as_ref().map(|t| t.bytes());
    let notes = build_notes(dump, text)?;
    let input_bs = dump.kdump().map(|k| u64::from(k.block_size()));
    let bs = text_page_size(resolved.text.as_ref()).or(input_bs).unwrap_or(4096);
    let ranges = dump.memory_ranges()?;
    // The identity itself, not the accessors' unknown-machine default: a failed scan is an error
    // (and once it has succeeded, the accessors `KdumpMeta::resolve` uses give the same answer).
    let id = dump.identity()?;
    let plan = KdumpPlan::new(&ranges, bs, id.class64, id.big_endian, notes.bytes.len() as u64)?;
    let (meta, meta_diagnostics) = KdumpMeta::resolve(dump, text);
    let mut diagnostics = resolved.diagnostics;
    diagnostics.extend(meta_diagnostics);

    let output = encode_headers(&plan, &meta, &notes, comp).write_to(out, plan.bitmap_off)?;
    let streamed = with_writer(&output, |w| {
        stream_bitmaps(w, &plan)?;
        stream_pages(w, dump, &ranges, &plan, comp, &mut progress)
    })?;
    finish(output, streamed.file_bytes, &mut progress, plan.pages * bs)?;
    if streamed.uncovered > 0 {
        diagnostics.push(WriteDiagnostic {
            code: "partial-pages",
            message: format!(
                "{} bytes of pages only partly held by the input were written as zeros (kdump stores whole {bs}-byte blocks)",
                streamed.uncovered
            ),
        });
    }
    let mut report = WriteReport::new(resolved.source, diagnostics, bs);
    report.segments = plan.pfns.len() as u64;
    report.pages = plan.pages;
    report.zero_pages = streamed.zero_pages;
    report.memory_bytes = ranges.iter().map(|r| r.end - r.start).sum();
    report.file_bytes = streamed.file_bytes;
    Ok(report)
}

/// Where everything goes in the output, in `bs`-byte blocks, decided from the input's ranges
/// and the notes' size before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KdumpPlan {
    pub bs: u64,
    /// 64-bit header layouts (else the packed 32-bit ones).
    pub class64: bool,
    pub big: bool,
    /// The pfns written (sorted, merged): every block the input's ranges touch.
    pub pfns: Vec<PhysRange>,
    pub pages: u64,
    pub max_mapnr: u64,
    /// Blocks of sub-header and notes.
    pub sub_hdr_size: u64,
    pub notes_off: u64,
    /// Bytes of each of the two (equal) bitmaps.
    pub bitmap_bytes: u64,
    pub bitmap_off: u64,
    pub desc_off: u64,
    /// The shared zero page, the first data block.
    pub zero_off: u64,
    /// The first compressed (or raw) page.
    pub data_off: u64,
}

impl KdumpPlan {
    /// The layout for `ranges` (physical, sorted) in `bs`-byte blocks with `notes_len` bytes of
    /// notes; a `Limit` error when the bitmaps or block counts exceed what readers accept.
    pub fn new(ranges: &[PhysRange], bs: u64, class64: bool, big: bool, notes_len: u64) -> Result<KdumpPlan> {
        let pfns = normalize(ranges.iter().map(|r| PhysRange { start: r.start / bs, end: r.end.div_ceil(bs) }).collect());
        let pages: u64 = pfns.iter().map(|r| r.end - r.start).sum();
        let max_mapnr = pfns.last().map_or(0, |r| r.end);
        let sub_len = if class64 { size_of::<SubHeader64<Endianness>>() } else { size_of::<SubHeaderPacked32<Endianness>>() };
        let notes_off = bs + (sub_len as u64).next_multiple_of(8);
        let sub_hdr_size = (notes_off - bs + notes_len).div_ceil(bs).max(1);
        let bitmap_bytes = max_mapnr.div_ceil(8).next_multiple_of(bs).max(bs);
        if 2 * bitmap_bytes > MAX_BITMAP_BYTES {
            return Err(Error::new(
                ErrorKind::Limit,
                None,
                format!(
                    "guest memory up to {:#x} needs {} bytes of kdump bitmaps, above the {} byte limit readers accept",
                    max_mapnr * bs,
                    2 * bitmap_bytes,
                    MAX_BITMAP_BYTES
                ),
            ));
        }
        let bitmap_blocks = 2 * bitmap_bytes / bs;
        if 1 + sub_hdr_size + bitmap_blocks > u64::from(u32::MAX) {
            return Err(Error::new(
                ErrorKind::Limit,
                None,
                "kdump header and bitmaps need more blocks than a 32-bit count holds",
            ));
        }
        let bitmap_off = (1 + sub_hdr_size) * bs;
        let desc_off = bitmap_off + bitmap_blocks * bs;
        let zero_off = desc_off + pages * DESC_SIZE;
        let data_off = zero_off + bs;
        Ok(KdumpPlan {
            bs,
            class64,
            big,
            pfns,
            pages,
            max_mapnr,
            sub_hdr_size,
            notes_off,
            bitmap_bytes,
            bitmap_off,
            desc_off,
            zero_off,
            data_off,
        })
    }

    /// Blocks of the two bitmaps.
    pub fn bitmap_blocks(&self) -> u64 {
        2 * self.bitmap_bytes / self.bs
    }
}

/// The header values that come from the input rather than from the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KdumpMeta {
    pub phys_base: u64,
    /// sysname, nodename, release, version, machine, domainname.
    pub uts: [String; 6],
    pub tv_sec: i64,
    pub tv_usec: i64,
    pub nr_cpus: u32,
    pub dump_level: i32,
}

impl KdumpMeta {
    /// From the VMCOREINFO text, the guest's memory and, where those say nothing, the input's
    /// kdump header; with what the user should know about the choices made.
    pub fn resolve(dump: &Dump, text: Option<&[u8]>) -> (KdumpMeta, Vec<WriteDiagnostic>) {
        let mut diagnostics = Vec::new();
        let input = dump.kdump();
        let phys_base = resolve_phys_base(dump, text, &mut diagnostics);
        let idx = text.map(text::Index::build);
        let view = idx.as_ref().zip(text).map(|(i, t)| i.view(t));
        let release = view
            .as_ref()
            .and_then(|v| v.osrelease().map(|s| s.into_owned()))
            .or_else(|| input.map(|k| k.release().to_owned()))
            .unwrap_or_default();
        let crashtime = view.as_ref().and_then(|v| v.crashtime().ok().flatten());
        let (tv_sec, tv_usec) = match (crashtime, input) {
            (Some(t), _) => (t, 0),
            (None, Some(k)) => k.timestamp(),
            (None, None) => (0, 0),
        };
        let nr_prstatus = dump.notes().filter(|(_, n)| n.as_ref().is_ok_and(|n| n.name == b"CORE" && n.n_type == 1)).count();
        let nr_cpus = if nr_prstatus > 0 { nr_prstatus as u32 } else { input.map_or(1, |k| k.nr_cpus().max(1) as u32) };
        // The guest's own utsname when its memory holds it (libkdumpfile, and drgn through it,
        // ignore a header whose release, version or machine is empty).
        let uts = match text.and_then(|t| guest_utsname(dump, t, &release)) {
            Some(u) => u,
            None => [
                "Linux".to_owned(),
                input.map(|k| k.nodename().to_owned()).unwrap_or_default(),
                release,
                input.map(|k| k.version().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| "unknown".to_owned()),
                uts_machine(dump),
                input.map(|k| k.domainname().to_owned()).unwrap_or_default(),
            ],
        };
        let dump_level = input.map_or(0, |k| k.dump_level());
        (KdumpMeta { phys_base, uts, tv_sec, tv_usec, nr_cpus, dump_level }, diagnostics)
    }
}

/// phys_base: the text's value; QEMU's header misreads x86_64's decimal as hex.
fn resolve_phys_base(dump: &Dump, text: Option<&[u8]>, diagnostics: &mut Vec<WriteDiagnostic>) -> u64 {
    let header_pb = dump.kdump().map(|k| k.phys_base_header());
    let text_pb = match (text, dump.e_machine()) {
        (Some(t), bitness::EM_X86_64) => {
            let idx = text::Index::build(t);
            idx.view(t).phys_base().ok().flatten().map(|v| v as u64)
        }
        (Some(t), bitness::EM_AARCH64) => {
            let idx = text::Index::build(t);
            idx.view(t).number("PHYS_OFFSET").ok().flatten().map(|v| v as u64)
        }
        _ => None,
    };
    match (text_pb, header_pb) {
        (Some(t), Some(h)) if t != h => {
            diagnostics.push(WriteDiagnostic {
                code: "phys-base-corrected",
                message: format!(
                    "the input's kdump header says phys_base {h:#x}; the VMCOREINFO text says {:#x} ({}), which was written",
                    t, t as i64
                ),
            });
            t
        }
        (Some(t), _) => t,
        (None, Some(h)) => {
            diagnostics.push(WriteDiagnostic {
                code: "phys-base-from-header",
                message: format!("no phys_base in the VMCOREINFO text; the input's kdump header value {h:#x} was kept"),
            });
            h
        }
        (None, None) => 0,
    }
}

/// Block 0 (`disk_dump_header`), the sub-header and the notes, built from the reader's own
/// layout structs: the 64-bit layouts for 64-bit machines, the packed 32-bit ones otherwise.
pub(crate) fn encode_headers(plan: &KdumpPlan, meta: &KdumpMeta, notes: &NoteBuf, comp: Compression) -> Head {
    let e = endianness(plan.big);
    let mut utsname = [[0u8; UTS_LEN]; 6];
    for (field, s) in utsname.iter_mut().zip(&meta.uts) {
        let n = s.len().min(UTS_LEN - 1);
        field[..n].copy_from_slice(&s.as_bytes()[..n]);
    }
    let u32_ = |v: u64| U32::new(e, v.min(u64::from(u32::MAX)) as u32);
    let tail = HeaderTail {
        status: U32::new(e, comp.flag()),
        block_size: u32_(plan.bs),
        sub_hdr_size: u32_(plan.sub_hdr_size),
        bitmap_blocks: u32_(plan.bitmap_blocks()),
        max_mapnr: u32_(plan.max_mapnr),
        total_ram_blocks: u32_(plan.pages),
        device_blocks: U32::new(e, 0),
        written_blocks: U32::new(e, 0),
        current_cpu: U32::new(e, 0),
        nr_cpus: I32::new(e, meta.nr_cpus as i32),
    };
    let (signature, header_version) = (*SIGNATURE, I32::new(e, HEADER_VERSION));
    let mut head = Head(Vec::with_capacity(plan.bitmap_off as usize));
    if plan.class64 {
        let (tv_sec, tv_usec) = (I64::new(e, meta.tv_sec), I64::new(e, meta.tv_usec));
        let h = DiskDumpHeader64 { signature, header_version, utsname, _pad: [0; 6], tv_sec, tv_usec, tail };
        head.0.extend_from_slice(bytes_of(&h));
    } else {
        let (tv_sec, tv_usec) = (I32::new(e, meta.tv_sec as i32), I32::new(e, meta.tv_usec as i32));
        let h = DiskDumpHeader32 { signature, header_version, utsname, _pad: [0; 2], tv_sec, tv_usec, tail };
        head.0.extend_from_slice(bytes_of(&h));
    }
    head.place(plan.bs, &encode_sub_header(plan, meta, notes));
    head.place(plan.notes_off, &notes.bytes);
    head
}

/// `kdump_sub_header` (version 6): `offset_note`/`note_size` cover the note buffer, which
/// starts at `plan.notes_off`; `offset_vmcoreinfo`/`size_vmcoreinfo` point at the text in it.
fn encode_sub_header(plan: &KdumpPlan, meta: &KdumpMeta, notes: &NoteBuf) -> Vec<u8> {
    let e = endianness(plan.big);
    let (vmci_off, vmci_size) = notes.vmcoreinfo.map_or((0, 0), |(o, n)| (plan.notes_off + o as u64, n as u64));
    let (note_off, note_size) = if notes.bytes.is_empty() { (0, 0) } else { (plan.notes_off, notes.bytes.len() as u64) };
    let (dump_level, split) = (I32::new(e, meta.dump_level), I32::new(e, 0));
    let u64_ = |v: u64| U64::new(e, v);
    // The 32-bit layout's `unsigned long` fields take the low 32 bits (as a 32-bit producer's).
    let ul32 = |v: u64| U32::new(e, v as u32);
    if plan.class64 {
        bytes_of(&SubHeader64 {
            phys_base: u64_(meta.phys_base),
            dump_level,
            split,
            start_pfn: u64_(0),
            end_pfn: u64_(plan.max_mapnr),
            offset_vmcoreinfo: u64_(vmci_off),
            size_vmcoreinfo: u64_(vmci_size),
            offset_note: u64_(note_off),
            note_size: u64_(note_size),
            offset_eraseinfo: u64_(0),
            size_eraseinfo: u64_(0),
            start_pfn_64: u64_(0),
            end_pfn_64: u64_(plan.max_mapnr),
            max_mapnr_64: u64_(plan.max_mapnr),
        })
        .to_vec()
    } else {
        bytes_of(&SubHeaderPacked32 {
            phys_base: ul32(meta.phys_base),
            dump_level,
            split,
            start_pfn: ul32(0),
            end_pfn: ul32(plan.max_mapnr),
            offset_vmcoreinfo: u64_(vmci_off),
            size_vmcoreinfo: ul32(vmci_size),
            offset_note: u64_(note_off),
            note_size: ul32(note_size),
            offset_eraseinfo: u64_(0),
            size_eraseinfo: ul32(0),
            start_pfn_64: u64_(0),
            end_pfn_64: u64_(plan.max_mapnr),
            max_mapnr_64: u64_(plan.max_mapnr),
        })
        .to_vec()
    }
}

/// Bitmap 1 then bitmap 2 (equal: the pages written), a block at a time.
fn stream_bitmaps(w: &Writer, plan: &KdumpPlan) -> Result<()> {
    let (bs, pfns) = (plan.bs, &plan.pfns);
    let bits_per_block = bs * 8;
    let mut ri = 0;
    for j in 0..plan.bitmap_bytes / bs {
        let lo = j * bits_per_block;
        let hi = lo + bits_per_block;
        let mut buf = w.buffer(bs as usize);
        while ri < pfns.len() && pfns[ri].end <= lo {
            ri += 1;
        }
        for r in pfns[ri..].iter().take_while(|r| r.start < hi) {
            set_bits(&mut buf, r.start.max(lo) - lo, r.end.min(hi) - lo);
        }
        let copy = buf.clone();
        w.send(vec![(plan.bitmap_off + j * bs, buf), (plan.bitmap_off + plan.bitmap_bytes + j * bs, copy)])?;
    }
    Ok(())
}

/// What streaming the pages did.
struct Streamed {
    /// Bytes of written pages the input does not hold (written as zeros).
    uncovered: u64,
    zero_pages: u64,
    file_bytes: u64,
}

/// The shared zero page, then the pages, a chunk at a time across ranges: read, compressed in
/// parallel, and sent with their descriptors in pfn order.
fn stream_pages(
    w: &Writer,
    dump: &Dump,
    ranges: &[PhysRange],
    plan: &KdumpPlan,
    comp: Compression,
    progress: &mut Option<Progress<'_>>,
) -> Result<Streamed> {
    let bs = plan.bs;
    w.send(vec![(plan.zero_off, w.buffer(bs as usize))])?;
    let mut st = Streamed { uncovered: 0, zero_pages: 0, file_bytes: plan.data_off };
    let mut desc_index = 0u64;
    for pieces in page_chunks(&plan.pfns, (CHUNK_BYTES / bs).max(1)) {
        let count: u64 = pieces.iter().map(|&(_, n)| n).sum();
        let mut buf = w.buffer((count * bs) as usize);
        let mut at = 0usize;
        for &(p, n) in &pieces {
            let len = (n * bs) as usize;
            st.uncovered += read_covered(dump, ranges, p * bs, &mut buf[at..at + len])?;
            at += len;
        }
        let packed: Vec<PageOut> = buf.par_chunks(bs as usize).map_init(|| Packer::new(comp), |pk, page| pk.pack(page)).collect();
        let mut data = w.empty();
        let descs = encode_chunk(plan, comp.flag(), &buf, &packed, st.file_bytes, &mut data);
        st.zero_pages += packed.iter().filter(|p| matches!(p, PageOut::Zero)).count() as u64;
        let data_len = data.len() as u64;
        w.send(vec![(plan.desc_off + desc_index * DESC_SIZE, descs), (st.file_bytes, data)])?;
        st.file_bytes += data_len;
        desc_index += count;
        tick(progress, desc_index * bs, plan.pages * bs)?;
    }
    Ok(st)
}

/// The pages of `pfns` as `(first pfn, count)` pieces, grouped so that each group holds at most
/// `chunk_pages` pages (a range larger than that is cut).
fn page_chunks(pfns: &[PhysRange], chunk_pages: u64) -> impl Iterator<Item = Vec<(u64, u64)>> + '_ {
    let mut it = pfns
        .iter()
        .flat_map(move |r| {
            let mut p = r.start;
            std::iter::from_fn(move || {
                (p < r.end).then(|| {
                    let n = (r.end - p).min(chunk_pages);
                    let piece = (p, n);
                    p += n;
                    piece
                })
            })
        })
        .peekable();
    std::iter::from_fn(move || {
        let mut pieces = Vec::new();
        let mut count = 0;
        while let Some(&(p, n)) = it.peek() {
            if count + n > chunk_pages && count > 0 {
                break;
            }
            pieces.push((p, n));
            count += n;
            it.next();
        }
        (!pieces.is_empty()).then_some(pieces)
    })
}

/// The descriptors of one chunk of pages (`buf`, compressed as `packed`), appending the stored
/// data to `data`, which goes at file offset `data_at`.
pub(super) fn encode_chunk(
    plan: &KdumpPlan,
    flag: u32,
    buf: &[u8],
    packed: &[PageOut],
    data_at: u64,
    data: &mut Vec<u8>,
) -> Vec<u8> {
    let e = endianness(plan.big);
    let bs = plan.bs;
    let mut descs = Vec::with_capacity(packed.len() * DESC_SIZE as usize);
    for (p, page) in packed.iter().zip(buf.chunks(bs as usize)) {
        let (off, size, flags) = match p {
            PageOut::Zero => (plan.zero_off, bs, 0),
            PageOut::Raw => {
                let o = data_at + data.len() as u64;
                data.extend_from_slice(page);
                (o, bs, 0)
            }
            PageOut::Packed(v) => {
                let o = data_at + data.len() as u64;
                data.extend_from_slice(v);
                (o, v.len() as u64, flag)
            }
        };
        let d = PageDescRaw {
            offset: I64::new(e, off as i64),
            size: U32::new(e, size as u32),
            flags: U32::new(e, flags),
            page_flags: U64::new(e, 0),
        };
        descs.extend_from_slice(bytes_of(&d));
    }
    descs
}

/// Set bits `[lo, hi)` of a bitmap (bit n is bit n % 8 of byte n / 8).
pub(super) fn set_bits(buf: &mut [u8], mut lo: u64, hi: u64) {
    while lo < hi && lo % 8 != 0 {
        buf[(lo / 8) as usize] |= 1 << (lo % 8);
        lo += 1;
    }
    if hi - lo >= 8 {
        let n = (hi - lo) / 8;
        buf[(lo / 8) as usize..(lo / 8 + n) as usize].fill(0xff);
        lo += n * 8;
    }
    while lo < hi {
        buf[(lo / 8) as usize] |= 1 << (lo % 8);
        lo += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        let mut b = vec![0u8; 4];
        set_bits(&mut b, 3, 21);
        assert_eq!(b, [0xf8, 0xff, 0x1f, 0]);
        let mut b = vec![0u8; 2];
        set_bits(&mut b, 1, 2);
        assert_eq!(b, [2, 0]);
    }
}
