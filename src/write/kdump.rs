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

use std::path::Path;

use rayon::prelude::*;

use super::{
    build_notes, read_covered, resolve_vmcoreinfo, text_page_size, tick, with_writer, Endian, Output, Progress, Target,
    WriteDiagnostic, WriteReport, CHUNK_BYTES,
};
use crate::bitness;
use crate::dump::Dump;
use crate::error::{Error, ErrorKind, Result};
use crate::kdump::{
    DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD, MAX_BITMAP_BYTES,
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

const HEADER_VERSION: u32 = 6;
const UTS_LEN: usize = 65;

/// A page after compression.
enum PageOut {
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

/// [`write_kdump`] to a file or, flattened, to a stream (see [`Target`]).
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
    let (notes, vmci_at) = build_notes(dump, text)?;
    let mut diagnostics = resolved.diagnostics;
    let input_kdump = dump.kdump();
    let bs = text_page_size(resolved.text.as_ref()).or_else(|| input_kdump.map(|k| u64::from(k.block_size()))).unwrap_or(4096);

    let ranges = dump.memory_ranges()?;
    let pfns = normalize(ranges.iter().map(|r| PhysRange { start: r.start / bs, end: r.end.div_ceil(bs) }).collect());
    let pages: u64 = pfns.iter().map(|r| r.end - r.start).sum();
    let max_mapnr = pfns.last().map_or(0, |r| r.end);
    let memory: u64 = ranges.iter().map(|r| r.end - r.start).sum();

    // Sizes and offsets.
    let class64 = dump.class64();
    let big = dump.big_endian();
    let sub_len: u64 = if class64 { 104 } else { 80 };
    let notes_off = bs + sub_len.next_multiple_of(8);
    let sub_hdr_size = (notes_off - bs + notes.len() as u64).div_ceil(bs).max(1);
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
        return Err(Error::new(ErrorKind::Limit, None, "kdump header and bitmaps need more blocks than a 32-bit count holds"));
    }
    let bitmap_off = (1 + sub_hdr_size) * bs;
    let desc_off = bitmap_off + bitmap_blocks * bs;
    let zero_off = desc_off + pages * 24;
    let data_off = zero_off + bs;

    // phys_base: the text's value; QEMU's header misreads x86_64's decimal as hex.
    let header_pb = input_kdump.and_then(|k| k.phys_base_header());
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
    let phys_base = match (text_pb, header_pb) {
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
    };

    // Block 0: disk_dump_header.
    let idx = text.map(text::Index::build);
    let view = idx.as_ref().zip(text).map(|(i, t)| i.view(t));
    let release = view
        .as_ref()
        .and_then(|v| v.osrelease().map(|s| s.into_owned()))
        .or_else(|| input_kdump.map(|k| k.release().to_owned()))
        .unwrap_or_default();
    let crashtime = view.as_ref().and_then(|v| v.crashtime().ok().flatten());
    let (tv_sec, tv_usec) = match (crashtime, input_kdump) {
        (Some(t), _) => (t, 0),
        (None, Some(k)) => k.timestamp(),
        (None, None) => (0, 0),
    };
    let nr_prstatus = dump.notes().filter(|(_, n)| n.as_ref().is_ok_and(|n| n.name == b"CORE" && n.n_type == 1)).count();
    let nr_cpus = if nr_prstatus > 0 { nr_prstatus as u32 } else { input_kdump.map_or(1, |k| k.nr_cpus().max(1) as u32) };
    // The guest's own utsname when its memory holds it (libkdumpfile, and drgn through it, ignore
    // a header whose release, version or machine is empty).
    let uts = match text.and_then(|t| guest_utsname(dump, t, &release)) {
        Some(u) => u,
        None => [
            "Linux".to_owned(),
            input_kdump.map(|k| k.nodename().to_owned()).unwrap_or_default(),
            release,
            input_kdump.map(|k| k.version().to_owned()).filter(|v| !v.is_empty()).unwrap_or_else(|| "unknown".to_owned()),
            uts_machine(dump),
            input_kdump.map(|k| k.domainname().to_owned()).unwrap_or_default(),
        ],
    };
    let mut head = Vec::with_capacity(bitmap_off as usize);
    {
        let mut w = Endian { big, buf: &mut head };
        w.buf.extend_from_slice(crate::kdump::SIGNATURE);
        w.u32(HEADER_VERSION);
        for s in &uts {
            let b = s.as_bytes();
            let n = b.len().min(UTS_LEN - 1);
            w.buf.extend_from_slice(&b[..n]);
            w.buf.resize(w.buf.len() + UTS_LEN - n, 0);
        }
        if class64 {
            w.buf.resize(408, 0);
            w.u64(tv_sec as u64);
            w.u64(tv_usec as u64);
        } else {
            w.buf.resize(404, 0);
            w.u32(tv_sec as u32);
            w.u32(tv_usec as u32);
        }
        w.u32(comp.flag()); // status
        w.u32(bs as u32); // block_size
        w.u32(sub_hdr_size as u32);
        w.u32(bitmap_blocks as u32);
        w.u32(max_mapnr.min(u64::from(u32::MAX)) as u32);
        w.u32(pages.min(u64::from(u32::MAX)) as u32); // total_ram_blocks
        w.u32(0); // device_blocks
        w.u32(0); // written_blocks
        w.u32(0); // current_cpu
        w.u32(nr_cpus);
    }
    head.resize(bs as usize, 0);
    // Block 1: kdump_sub_header, then the notes.
    let (vmci_off, vmci_size) = vmci_at.map_or((0, 0), |(o, n)| (notes_off + o as u64, n as u64));
    let (note_off, note_size) = if notes.is_empty() { (0, 0) } else { (notes_off, notes.len() as u64) };
    let dump_level = input_kdump.map_or(0, |k| k.dump_level());
    {
        let mut w = Endian { big, buf: &mut head };
        w.ulong(phys_base, class64);
        w.u32(dump_level as u32);
        w.u32(0); // split
        w.ulong(0, class64); // start_pfn
        w.ulong(max_mapnr, class64); // end_pfn (truncated on 32-bit)
        w.u64(vmci_off);
        w.ulong(vmci_size, class64);
        w.u64(note_off);
        w.ulong(note_size, class64);
        w.u64(0); // offset_eraseinfo
        w.ulong(0, class64); // size_eraseinfo
        w.u64(0); // start_pfn_64
        w.u64(max_mapnr); // end_pfn_64
        w.u64(max_mapnr); // max_mapnr_64
        debug_assert_eq!(w.buf.len() as u64, bs + sub_len);
    }
    head.resize(notes_off as usize, 0);
    head.extend_from_slice(&notes);
    head.resize(bitmap_off as usize, 0);

    let output = Output::open(out)?;
    output.write_at(0, &head)?;
    drop(head);

    let total = pages * bs;
    let flag = comp.flag();
    let chunk_pages = (CHUNK_BYTES / bs).max(1);
    let mut uncovered = 0u64;
    let mut zero_pages = 0u64;
    let mut written = data_off;
    with_writer(&output, |w| {
        // Bitmaps, a block at a time; bitmap 2 equals bitmap 1.
        let bits_per_block = bs * 8;
        let mut ri = 0;
        for j in 0..bitmap_bytes / bs {
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
            w.send(vec![(bitmap_off + j * bs, buf), (bitmap_off + bitmap_bytes + j * bs, copy)])?;
        }
        w.send(vec![(zero_off, w.buffer(bs as usize))])?;

        // Pages, a chunk at a time, across ranges.
        let mut desc_index = 0u64;
        let mut done = 0u64;
        let mut it = pfns.iter().flat_map(|r| {
            let mut p = r.start;
            std::iter::from_fn(move || {
                (p < r.end).then(|| {
                    let n = (r.end - p).min(chunk_pages);
                    let piece = (p, n);
                    p += n;
                    piece
                })
            })
        });
        let mut pending: Option<(u64, u64)> = it.next();
        while pending.is_some() {
            // Gather pieces up to chunk_pages.
            let mut pieces = Vec::new();
            let mut count = 0;
            while let Some((p, n)) = pending {
                if count + n > chunk_pages && count > 0 {
                    break;
                }
                pieces.push((p, n));
                count += n;
                pending = it.next();
            }
            let mut buf = w.buffer((count * bs) as usize);
            let mut at = 0usize;
            for &(p, n) in &pieces {
                let len = (n * bs) as usize;
                uncovered += read_covered(dump, &ranges, p * bs, &mut buf[at..at + len])?;
                at += len;
            }
            let packed: Vec<PageOut> =
                buf.par_chunks(bs as usize).map_init(|| Packer::new(comp), |pk, page| pk.pack(page)).collect();
            let mut data = w.empty();
            let mut descs = Vec::with_capacity(packed.len() * 24);
            {
                let mut d = Endian { big, buf: &mut descs };
                let mut page_iter = buf.chunks(bs as usize);
                for p in &packed {
                    let page = page_iter.next().expect("one page per result");
                    let (off, size, fl) = match p {
                        PageOut::Zero => {
                            zero_pages += 1;
                            (zero_off, bs, 0)
                        }
                        PageOut::Raw => {
                            let o = written + data.len() as u64;
                            data.extend_from_slice(page);
                            (o, bs, 0)
                        }
                        PageOut::Packed(v) => {
                            let o = written + data.len() as u64;
                            data.extend_from_slice(v);
                            (o, v.len() as u64, flag)
                        }
                    };
                    d.u64(off);
                    d.u32(size as u32);
                    d.u32(fl);
                    d.u64(0);
                }
            }
            let data_len = data.len() as u64;
            w.send(vec![(desc_off + desc_index * 24, descs), (written, data)])?;
            written += data_len;
            desc_index += count;
            done += count * bs;
            tick(&mut progress, done, total)?;
        }
        Ok(())
    })?;
    output.set_len(written)?;
    tick(&mut progress, total, total)?;
    output.commit()?;
    if uncovered > 0 {
        diagnostics.push(WriteDiagnostic {
            code: "partial-pages",
            message: format!(
                "{uncovered} bytes of pages only partly held by the input were written as zeros (kdump stores whole {bs}-byte blocks)"
            ),
        });
    }
    let mut report = WriteReport::new(resolved.source, diagnostics, bs);
    report.segments = pfns.len() as u64;
    report.pages = pages;
    report.zero_pages = zero_pages;
    report.memory_bytes = memory;
    report.file_bytes = written;
    Ok(report)
}

/// Set bits `[lo, hi)` of a bitmap (bit n is bit n % 8 of byte n / 8).
fn set_bits(buf: &mut [u8], mut lo: u64, hi: u64) {
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
