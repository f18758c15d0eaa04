//! Writing dumps: any dump this library reads, converted to a standard ELF core ([`elf`]) or a
//! kdump-compressed file ([`kdump`]) that drgn, crash, makedumpfile and libkdumpfile read.
//!
//! The writers read their input only through [`Dump`]'s public API (notes, physical ranges,
//! `read_phys`, the VMCOREINFO text, machine, class and byte order), so every input format
//! works the same way. Memory use is bounded by the chunk size, whatever the dump's size: pages
//! are read, (compressed and) written a chunk at a time.
//!
//! The output is complete or absent: it is written to a hidden temporary file in the
//! destination's directory, synced, and renamed over the destination only at the end. Any error
//! (including a cancelled progress callback, which is how Ctrl-C reaches us from Python) removes
//! the temporary file.
//!
//! Repair: a dump without a VMCOREINFO note (a QEMU dump of a guest without the fw_cfg driver, a
//! LiME, AVML or raw image) gets the note the page scan finds, flagged in the report.

pub mod elf;
pub mod kdump;
mod notes;
mod output;
#[cfg(test)]
mod round_trip;

use crate::dump::{Dump, TextBlob};
use crate::error::{Error, ErrorKind, Result};
use crate::phys::PhysRange;
use crate::text;

pub(crate) use notes::{build_notes, endianness, NoteBuf};
pub use output::Target;
pub(crate) use output::{finish, with_writer, Head, Writer};

/// Progress callback: `(bytes done, bytes in total)`; returning `false` cancels the write (the
/// writer then fails with a [`cancelled`] error and leaves no file).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64) -> bool;

/// Bytes of guest memory read (and written) per step.
pub const CHUNK_BYTES: u64 = 8 << 20;

/// The error a cancelled write returns (kind [`ErrorKind::Cancelled`]).
pub fn cancelled() -> Error {
    Error::cancelled("the conversion was cancelled")
}

/// Whether `e` is the error of a cancelled write.
pub fn is_cancelled(e: &Error) -> bool {
    e.kind == ErrorKind::Cancelled
}

/// Where the output's VMCOREINFO came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmcoreinfoSource {
    /// The input's own note (ELF note, kdump sub-header).
    Note,
    /// The page scan of guest memory: the input had no note (LiME, AVML, raw, or a dump taken without
    /// the guest's fw_cfg driver). `paddr` is the note's physical address.
    Scan { paddr: u64 },
    /// None at all: the output has no VMCOREINFO note.
    Absent,
}

impl VmcoreinfoSource {
    pub fn name(self) -> &'static str {
        match self {
            VmcoreinfoSource::Note => "note",
            VmcoreinfoSource::Scan { .. } => "scan",
            VmcoreinfoSource::Absent => "absent",
        }
    }
}

/// Something the writer repaired or could not carry over, for the user to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteDiagnostic {
    /// Stable name: `vmcoreinfo-from-scan`, `no-vmcoreinfo`, `phys-base-corrected`,
    /// `phys-base-from-header`, `partial-pages`.
    pub code: &'static str,
    pub message: String,
}

/// What a writer did.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub vmcoreinfo: VmcoreinfoSource,
    pub diagnostics: Vec<WriteDiagnostic>,
    /// Physical ranges (ELF: PT_LOAD segments) written.
    pub segments: u64,
    /// Pages (kdump blocks, or page-size units for ELF) written, zero pages included.
    pub pages: u64,
    /// Pages that were all zeros (kdump: stored once, shared; ELF with `exclude_zero`: pages left
    /// out of the file as p_filesz < p_memsz tails).
    pub zero_pages: u64,
    /// Bytes of guest memory covered.
    pub memory_bytes: u64,
    /// Size of the output file.
    pub file_bytes: u64,
    /// The page (kdump block) size used.
    pub page_size: u64,
}

impl WriteReport {
    fn new(vmcoreinfo: VmcoreinfoSource, diagnostics: Vec<WriteDiagnostic>, page_size: u64) -> Self {
        WriteReport { vmcoreinfo, diagnostics, segments: 0, pages: 0, zero_pages: 0, memory_bytes: 0, file_bytes: 0, page_size }
    }
}

/// The VMCOREINFO text the output carries, and where it came from.
pub(crate) struct Resolved {
    pub text: Option<TextBlob>,
    pub source: VmcoreinfoSource,
    pub diagnostics: Vec<WriteDiagnostic>,
}

/// The input's VMCOREINFO, or the one the page scan finds when the input has no note.
pub(crate) fn resolve_vmcoreinfo(dump: &Dump) -> Result<Resolved> {
    let mut diagnostics = Vec::new();
    let from_scan = |blob: TextBlob, diagnostics: &mut Vec<WriteDiagnostic>, why: &str| {
        let paddr = blob.phys_addr.unwrap_or(0);
        diagnostics.push(WriteDiagnostic {
            code: "vmcoreinfo-from-scan",
            message: format!("{why}; the VMCOREINFO note found in guest memory at physical address {paddr:#x} was written"),
        });
        Resolved { text: Some(blob), source: VmcoreinfoSource::Scan { paddr }, diagnostics: std::mem::take(diagnostics) }
    };
    if dump.format().is_memory_image() {
        return match dump.vmcoreinfo() {
            Ok(blob) => Ok(from_scan(blob, &mut diagnostics, &format!("a {} image holds no notes", dump.format().name()))),
            Err(e) if e.kind == ErrorKind::NoVmcoreinfo => Ok(absent(diagnostics, &e)),
            Err(e) => Err(e),
        };
    }
    match dump.vmcoreinfo() {
        Ok(blob) => Ok(Resolved { text: Some(blob), source: VmcoreinfoSource::Note, diagnostics }),
        Err(e) if e.kind == ErrorKind::NoVmcoreinfo => {
            let scan = dump.image_scan()?;
            match &scan.chosen {
                Some((_, blob)) => Ok(from_scan(blob.clone(), &mut diagnostics, "the dump has no VMCOREINFO note")),
                None => Ok(absent(diagnostics, &e)),
            }
        }
        Err(e) => Err(e),
    }
}

fn absent(mut diagnostics: Vec<WriteDiagnostic>, e: &Error) -> Resolved {
    diagnostics.push(WriteDiagnostic {
        code: "no-vmcoreinfo",
        message: format!("the output has no VMCOREINFO: the input has no note and the page scan found none ({})", e.message),
    });
    Resolved { text: None, source: VmcoreinfoSource::Absent, diagnostics }
}

/// The guest's page size from the VMCOREINFO text, if it gives a usable one.
pub(crate) fn text_page_size(text: Option<&TextBlob>) -> Option<u64> {
    let t = text?.bytes();
    let idx = text::Index::build(t);
    let ps = idx.view(t).page_size().ok()??;
    (ps.is_power_of_two() && (512..=1 << 20).contains(&ps)).then_some(ps)
}

/// All bytes zero?
pub(crate) fn is_zero(b: &[u8]) -> bool {
    let mut it = b.chunks_exact(16);
    it.all(|c| u128::from_ne_bytes(c.try_into().unwrap()) == 0) && it.remainder().iter().all(|&x| x == 0)
}

/// Read physical `[addr, addr + buf.len())` into `buf`, taking only what `ranges` (the input's
/// ranges, sorted) hold and leaving the rest of `buf` as it is (zeros, by the caller). Returns
/// how many bytes were outside the ranges.
pub(crate) fn read_covered(dump: &Dump, ranges: &[PhysRange], addr: u64, buf: &mut [u8]) -> Result<u64> {
    let end = addr + buf.len() as u64;
    let mut covered = 0u64;
    let first = ranges.partition_point(|r| r.end <= addr);
    for r in &ranges[first..] {
        if r.start >= end {
            break;
        }
        let s = r.start.max(addr);
        let e = r.end.min(end);
        dump.read_phys(s, &mut buf[(s - addr) as usize..(e - addr) as usize])?;
        covered += e - s;
    }
    Ok(buf.len() as u64 - covered)
}

/// Progress throttled to whole chunks, with cancellation.
pub(crate) fn tick(progress: &mut Option<Progress<'_>>, done: u64, total: u64) -> Result<()> {
    if let Some(p) = progress {
        if !p(done, total) {
            return Err(cancelled());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_check() {
        let mut v = vec![0u8; 4099];
        assert!(is_zero(&v));
        for i in [0, 17, 4098] {
            v[i] = 1;
            assert!(!is_zero(&v[1..]) || i == 0);
            assert!(!is_zero(&v));
            v[i] = 0;
        }
    }
}
