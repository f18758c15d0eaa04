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
//! LiME or raw image) gets the note the page scan finds, flagged in the report.

pub mod elf;
pub mod kdump;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::dump::{Dump, TextBlob};
use crate::error::{Error, ErrorKind, Result};
use crate::phys::PhysRange;
use crate::text;

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
    /// The page scan of guest memory: the input had no note (LiME, raw, or a dump taken without
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

/// Where a text lies in a buffer: (offset, length).
pub(crate) type TextAt = (usize, usize);

/// A note buffer in the dump's byte order: the input's notes (CPU states included) in their
/// order, then the VMCOREINFO note last. Returns the buffer and the offset of the VMCOREINFO
/// desc in it.
pub(crate) fn build_notes(dump: &Dump, vmcoreinfo: Option<&[u8]>) -> Result<(Vec<u8>, Option<TextAt>)> {
    let big = dump.big_endian();
    let mut out = Vec::new();
    for (seg, n) in dump.notes() {
        let n = n?;
        // Every VMCOREINFO note of the input is replaced by the one text we carry.
        if vmcoreinfo.is_some() && n.is_vmcoreinfo() {
            continue;
        }
        // A zero header (padding at the end of a note area) is not a note.
        if n.namesz == 0 && n.desc.is_empty() && n.n_type == 0 {
            continue;
        }
        let name_start = n.offset + 12;
        let name = &seg.data[name_start..name_start + n.namesz as usize];
        push_note(&mut out, big, name, n.n_type, n.desc);
    }
    let at = vmcoreinfo.map(|t| {
        let start = out.len() + 12 + 12; // header + "VMCOREINFO\0" padded to 12
        push_note(&mut out, big, b"VMCOREINFO\0", 0, t);
        (start, t.len())
    });
    Ok((out, at))
}

fn push_note(out: &mut Vec<u8>, big: bool, name: &[u8], n_type: u32, desc: &[u8]) {
    let mut w = Endian { big, buf: out };
    w.u32(name.len() as u32);
    w.u32(desc.len() as u32);
    w.u32(n_type);
    out.extend_from_slice(name);
    pad4(out);
    out.extend_from_slice(desc);
    pad4(out);
}

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}

/// Little helper that appends integers in a byte order.
pub(crate) struct Endian<'a> {
    pub big: bool,
    pub buf: &'a mut Vec<u8>,
}

impl Endian<'_> {
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&if self.big { v.to_be_bytes() } else { v.to_le_bytes() });
    }
    /// An unsigned long of the given width.
    pub fn ulong(&mut self, v: u64, wide: bool) {
        if wide {
            self.u64(v)
        } else {
            self.u32(v as u32)
        }
    }
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

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where a writer's output goes.
pub enum Target<'a> {
    /// A file: written under a hidden temporary name beside it and renamed over it when
    /// complete (complete or absent).
    File(&'a Path),
    /// makedumpfile's flattened format on a stream (a pipe, stdout): every positioned write
    /// becomes a `{be64 offset, be64 size, data}` record after the 4096-byte header, and the
    /// `-1/-1` end marker closes it. `makedumpfile -R` (or this library) reassembles it. What
    /// was written to a stream cannot be taken back: after an error the stream ends without
    /// its end marker, which readers report as incomplete. `name` is used in errors.
    Flattened { stream: Box<dyn std::io::Write + Send + 'a>, name: &'a str },
}

/// The output: a file written under a temporary name and renamed over the destination by
/// [`Output::commit`] (removed when dropped uncommitted), or a flattened stream.
pub(crate) struct Output<'a> {
    kind: OutKind<'a>,
    name: Arc<str>,
}

enum OutKind<'a> {
    File { file: File, tmp: PathBuf, dest: PathBuf, committed: bool },
    Stream(std::sync::Mutex<Box<dyn std::io::Write + Send + 'a>>),
}

impl<'a> Output<'a> {
    pub fn open(target: Target<'a>) -> Result<Output<'a>> {
        match target {
            Target::File(p) => Self::create(p),
            Target::Flattened { stream, name } => {
                let out = Output { kind: OutKind::Stream(std::sync::Mutex::new(stream)), name: Arc::from(name) };
                let mut head = vec![0u8; crate::flattened::HEADER_SIZE as usize];
                head[..12].copy_from_slice(b"makedumpfile");
                head[16..24].copy_from_slice(&1i64.to_be_bytes());
                head[24..32].copy_from_slice(&1i64.to_be_bytes());
                out.stream_write(&head)?;
                Ok(out)
            }
        }
    }

    pub fn create(dest: &Path) -> Result<Output<'a>> {
        let name: Arc<str> = Arc::from(dest.to_string_lossy().as_ref());
        let err = |e: std::io::Error, what: &str| Error::io(&e, None, what).in_file(&name);
        let file_name = dest
            .file_name()
            .ok_or_else(|| err(std::io::Error::from(std::io::ErrorKind::InvalidInput), "the output path names no file"))?;
        if dest.is_dir() {
            return Err(err(std::io::Error::from_raw_os_error(21), "the output path is a directory"));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        // Memory dumps hold secrets: readable by the owner only (as makedumpfile creates them).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err(e, "cannot create the output file"))?;
        Ok(Output { kind: OutKind::File { file, tmp, dest: dest.to_path_buf(), committed: false }, name })
    }

    fn stream_write(&self, data: &[u8]) -> Result<()> {
        let OutKind::Stream(s) = &self.kind else { unreachable!("stream_write on a file") };
        let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
        s.write_all(data).map_err(|e| Error::io(&e, None, "cannot write the output stream").in_file(&self.name))
    }

    pub fn write_at(&self, off: u64, data: &[u8]) -> Result<()> {
        match &self.kind {
            OutKind::File { file, .. } => file
                .write_all_at(data, off)
                .map_err(|e| Error::io(&e, Some(off), "cannot write the output file").in_file(&self.name)),
            OutKind::Stream(_) if data.is_empty() => Ok(()),
            OutKind::Stream(_) => {
                let mut rec = Vec::with_capacity(16);
                rec.extend_from_slice(&off.to_be_bytes());
                rec.extend_from_slice(&(data.len() as u64).to_be_bytes());
                self.stream_write(&rec)?;
                self.stream_write(data)
            }
        }
    }

    /// Set the final length (a file may end in a hole; a stream's length is its last record's end).
    pub fn set_len(&self, len: u64) -> Result<()> {
        match &self.kind {
            OutKind::File { file, .. } => {
                file.set_len(len).map_err(|e| Error::io(&e, Some(len), "cannot size the output file").in_file(&self.name))
            }
            OutKind::Stream(_) => Ok(()),
        }
    }

    /// File: sync the data, rename the temporary over the destination, sync the directory.
    /// Stream: the end marker, then flush.
    pub fn commit(mut self) -> Result<()> {
        let name = self.name.clone();
        let io = |e: std::io::Error, what: &str| Error::io(&e, None, what).in_file(&name);
        match &mut self.kind {
            OutKind::File { file, tmp, dest, committed } => {
                file.sync_all().map_err(|e| io(e, "cannot sync the output file"))?;
                std::fs::rename(&*tmp, &*dest).map_err(|e| io(e, "cannot rename the output file into place"))?;
                *committed = true;
                if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if let Ok(d) = File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
            OutKind::Stream(s) => {
                let s = s.get_mut().unwrap_or_else(|p| p.into_inner());
                let mut end = (-1i64).to_be_bytes().to_vec();
                end.extend_from_slice(&(-1i64).to_be_bytes());
                s.write_all(&end).and_then(|()| s.flush()).map_err(|e| io(e, "cannot write the output stream"))
            }
        }
    }
}

impl Drop for Output<'_> {
    fn drop(&mut self) {
        if let OutKind::File { tmp, committed: false, .. } = &self.kind {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// One batch of positioned writes for the writer thread.
pub(crate) type Job = Vec<(u64, Vec<u8>)>;

/// The producer's side of [`with_writer`]: sends batches of writes and recycles buffers.
pub(crate) struct Writer {
    tx: Option<std::sync::mpsc::SyncSender<Job>>,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Writer {
    /// A buffer of `len` zero bytes, recycled from an earlier write when one is free.
    pub fn buffer(&self, len: usize) -> Vec<u8> {
        let mut v = self.free.try_recv().unwrap_or_default();
        v.clear();
        v.resize(len, 0);
        v
    }
    /// An empty buffer (recycled when possible) to append to.
    pub fn empty(&self) -> Vec<u8> {
        let mut v = self.free.try_recv().unwrap_or_default();
        v.clear();
        v
    }
    pub fn send(&self, job: Job) -> Result<()> {
        let tx = self.tx.as_ref().expect("writer open");
        tx.send(job).map_err(|_| Error::internal("the output writer stopped"))
    }
}

/// Run `produce` on this thread while a second thread performs its writes in order (reading and
/// compressing the next chunk overlaps writing the last one). At most two batches wait in the
/// queue, so memory stays bounded. A write error wins over the producer's error (the producer
/// only sees that the writer stopped).
pub(crate) fn with_writer<R>(out: &Output<'_>, produce: impl FnOnce(&Writer) -> Result<R>) -> Result<R> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(2);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let handle = s.spawn(move || -> Result<()> {
            for job in rx {
                for (off, buf) in job {
                    out.write_at(off, &buf)?;
                    let _ = free_tx.send(buf);
                }
            }
            Ok(())
        });
        let mut w = Writer { tx: Some(tx), free: free_rx };
        let r = produce(&w);
        w.tx = None;
        drop(w);
        let written = handle.join().unwrap_or_else(|_| Err(Error::internal("the output writer panicked")));
        match (r, written) {
            (_, Err(e)) => Err(e),
            (r, Ok(())) => r,
        }
    })
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

    #[test]
    fn output_is_absent_until_commit_and_removed_when_dropped() {
        let dir = std::env::temp_dir().join(format!("vmci-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("a.core");
        {
            let o = Output::create(&dest).unwrap();
            o.write_at(0, b"abc").unwrap();
            assert!(!dest.exists());
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "temporary removed on drop");
        let o = Output::create(&dest).unwrap();
        o.write_at(0, b"abc").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let e = Output::create(&dir.join("no/such/dir/x")).err().unwrap();
        assert!(matches!(e.kind, ErrorKind::Io { errno: Some(2) }), "{e:?}");
        assert!(e.path.as_deref().unwrap().ends_with("no/such/dir/x"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
