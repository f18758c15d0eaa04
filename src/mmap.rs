//! A dump file read through a read-only shared mapping, and the SIGBUS guard that makes a file
//! shrinking under the mapping an error instead of a crash. This module holds the core's only
//! `unsafe` code.
//!
//! # The contract
//!
//! A mapping of a file is only as stable as the file. Two things can happen to it while mapped:
//!
//! 1. **The file shrinks** (truncated, or replaced in place by a writer that truncates first).
//!    Touching a mapped page past the new end raises `SIGBUS`. The guard below catches that
//!    signal for addresses inside our live mappings, maps an anonymous zero page over the faulting
//!    page (`MAP_FIXED`), marks the mapping *poisoned* and returns, so the interrupted copy
//!    finishes (with zeros where the file was gone). Every read checks the poisoned flag *after*
//!    its copy, and a poisoned mapping fails that read and every later one with
//!    [`ErrorKind::Truncated`](crate::error::ErrorKind::Truncated). Zeros read from a replaced
//!    page therefore never reach a caller as data. The flag is per mapping and sticky: the file is
//!    no longer the one that was opened.
//! 2. **The file's bytes change in place** (another process writes into it). The mapping shows
//!    the new bytes, possibly halfway through a copy. We never hand Rust code a `&[u8]` into the
//!    mapping that it could rely on being immutable: bytes leave the mapping only by a raw copy
//!    into a buffer we own ([`MmapSource::read_exact_at`]), after which they are ordinary data
//!    and are validated as any file data is (the parsers trust nothing). A torn copy is the same
//!    hazard as a `pread` racing a writer; the result is wrong bytes, not undefined behaviour of
//!    the parsers. Views handed to Python ([`PhysView`]) are read-only buffers
//!    whose bytes may change under the reader in the same way.
//!
//! Faults the guard does not own (any address outside our live mappings, or a failure to place
//! the zero page) go to the handler that was installed before ours: it is called if it is a
//! function, and if it was the default action, that action is restored and the faulting
//! instruction runs again, so the process dies of `SIGBUS` exactly as it would have without us.
//!
//! Live mappings are recorded in a fixed table of [`MAX_MAPPINGS`] slots that the handler reads
//! with atomic loads only (no locks, no allocation: async-signal-safe). When the table is full a
//! dump is read with `pread` instead of being mapped.
//!
//! Mapping is optional everywhere: [`OpenOptions::mmap`](crate::dump::OpenOptions::mmap) `false`
//! (Python `open(..., mmap=False)`) reads every byte with `pread`.

#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Once;

use crate::error::{Error, Result};
use crate::source::ReadAt;

/// Live mappings the SIGBUS guard can recognise at once.
pub const MAX_MAPPINGS: usize = 256;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;

struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    end: AtomicUsize,
    poisoned: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot =
    Slot { state: AtomicU8::new(FREE), start: AtomicUsize::new(0), end: AtomicUsize::new(0), poisoned: AtomicBool::new(false) };
static SLOTS: [Slot; MAX_MAPPINGS] = [EMPTY; MAX_MAPPINGS];
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The `sigaction` that was in place before ours (written once, before ours is installed).
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// Install the process-wide SIGBUS handler (once). Returns whether it is in place.
fn install_guard() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: plain libc calls with valid pointers; PREVIOUS is written here only, before
        // our handler can run (it is installed by the same sigaction call that fills it, and
        // the handler reads it only after INSTALLED is set below).
        unsafe {
            let ps = libc::sysconf(libc::_SC_PAGESIZE);
            if ps > 0 {
                PAGE_SIZE.store(ps as usize, Ordering::Relaxed);
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            let prev = &raw mut PREVIOUS;
            if libc::sigaction(libc::SIGBUS, &sa, (*prev).as_mut_ptr()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
    INSTALLED.load(Ordering::Acquire)
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers. Only atomics, mmap and
    // sigaction are used below (async-signal-safe).
    unsafe {
        let addr = (*info).si_addr() as usize;
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        for slot in &SLOTS {
            if slot.state.load(Ordering::Acquire) != LIVE {
                continue;
            }
            let (start, end) = (slot.start.load(Ordering::Acquire), slot.end.load(Ordering::Acquire));
            if addr >= start && addr < end {
                let at = addr & !(page - 1);
                let r = libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
                if r != libc::MAP_FAILED {
                    slot.poisoned.store(true, Ordering::Release);
                    return;
                }
                break;
            }
        }
        // Not ours: hand it to whoever was there before.
        let prev: &libc::sigaction = &*(&raw const PREVIOUS).cast::<libc::sigaction>();
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            // Restore the previous disposition; returning re-runs the faulting access, which
            // now gets the default action (a synchronous SIGBUS cannot be ignored).
            libc::sigaction(libc::SIGBUS, prev, std::ptr::null_mut());
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(sig);
        }
    }
}

/// A registered slot; unregisters on drop.
struct Registration(usize);

impl Registration {
    fn new(start: usize, len: usize) -> Option<Registration> {
        for (i, slot) in SLOTS.iter().enumerate() {
            if slot.state.compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                slot.start.store(start, Ordering::Release);
                slot.end.store(start + len, Ordering::Release);
                slot.poisoned.store(false, Ordering::Release);
                slot.state.store(LIVE, Ordering::Release);
                return Some(Registration(i));
            }
        }
        None
    }
    fn poisoned(&self) -> bool {
        SLOTS[self.0].poisoned.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Before the mapping goes away (the field order of MmapSource guarantees it).
        SLOTS[self.0].state.store(FREE, Ordering::Release);
    }
}

/// A regular file mapped read-only and shared, guarded against shrinking (see the module docs).
pub struct MmapSource {
    // Dropped first: the slot is freed while the mapping is still in place.
    reg: Registration,
    map: memmap2::Mmap,
}

impl std::fmt::Debug for MmapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapSource").field("len", &self.map.len()).field("poisoned", &self.reg.poisoned()).finish()
    }
}

impl MmapSource {
    /// Map `path` if it is a non-empty regular file that fits the address space and the guard
    /// is in place with a free slot; `Ok(None)` when it cannot be mapped (read it with `pread`).
    pub fn open(path: &Path) -> Result<Option<MmapSource>> {
        let file = File::open(path).map_err(|e| Error::io(&e, None, "cannot open"))?;
        Self::from_file(&file)
    }

    pub fn from_file(file: &File) -> Result<Option<MmapSource>> {
        let meta = file.metadata().map_err(|e| Error::io(&e, None, "cannot stat"))?;
        if !meta.is_file() || meta.len() == 0 || usize::try_from(meta.len()).is_err() || !install_guard() {
            return Ok(None);
        }
        // SAFETY: see the module contract: the mapping is read only by raw copies into owned
        // buffers (or exposed read-only to Python), and a shrinking file is caught by the guard.
        let map = match unsafe { memmap2::MmapOptions::new().len(meta.len() as usize).map(file) } {
            Ok(m) => m,
            Err(_) => return Ok(None),
        };
        let Some(reg) = Registration::new(map.as_ptr() as usize, map.len()) else { return Ok(None) };
        Ok(Some(MmapSource { reg, map }))
    }

    /// Whether a read has found the file shorter than when it was mapped.
    pub fn poisoned(&self) -> bool {
        self.reg.poisoned()
    }

    /// A zero-copy view of file bytes `[offset, offset + len)` (bounds and poison checked).
    pub fn view(self: &std::sync::Arc<Self>, offset: u64, len: usize) -> Result<PhysView> {
        self.check(offset, len as u64)?;
        self.check_poison(offset)?;
        Ok(PhysView::Mapped { map: self.clone(), offset, len })
    }

    /// Hint the kernel about the access pattern of `[offset, offset+len)` (best effort).
    pub fn advise_sequential(&self) {
        let _ = self.map.advise(memmap2::Advice::Sequential);
    }

    fn check(&self, offset: u64, len: u64) -> Result<()> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.map.len() as u64) {
            return Err(Error::truncated(
                offset,
                format!("{len} bytes at {offset:#x} run past the end of the file ({} bytes)", self.map.len()),
            ));
        }
        Ok(())
    }

    fn check_poison(&self, offset: u64) -> Result<()> {
        if self.reg.poisoned() {
            return Err(Error::truncated(
                offset,
                format!(
                    "the file shrank below the {} bytes it had when it was opened (a mapped page past its new end was read)",
                    self.map.len()
                ),
            ));
        }
        Ok(())
    }
}

impl ReadAt for MmapSource {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.check(offset, buf.len() as u64)?;
        self.check_poison(offset)?;
        // SAFETY: in bounds (checked); the source is a live mapping and `buf` is ours. A page
        // that disappears mid-copy is replaced by zeros by the guard; the flag check below then
        // turns the read into an error.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.as_ptr().add(offset as usize), buf.as_mut_ptr(), buf.len());
        }
        self.check_poison(offset)
    }
}

/// Guest-physical bytes handed out by [`crate::dump::Dump::view_phys`]: a range of the file's
/// mapping (zero-copy; keeps the mapping alive) or, where the dump does not store the range as
/// one run of plain file bytes (kdump pages are compressed; ranges spanning two stored runs;
/// files read with `pread`), a copy in an owned buffer.
pub enum PhysView {
    Mapped { map: std::sync::Arc<MmapSource>, offset: u64, len: usize },
    Owned(Vec<u8>),
}

impl PhysView {
    pub fn len(&self) -> usize {
        match self {
            PhysView::Mapped { len, .. } => *len,
            PhysView::Owned(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the view points into the mapping (no copy was made).
    pub fn is_mapped(&self) -> bool {
        matches!(self, PhysView::Mapped { .. })
    }
    /// Start address of the view's bytes, for foreign read-only buffers (Python's buffer
    /// protocol). The bytes stay valid as long as `self` lives; mapped bytes may change or read
    /// as zeros if the file changes under the mapping (module docs).
    pub fn as_ptr(&self) -> *const u8 {
        match self {
            PhysView::Mapped { map, offset, .. } => map.map.as_ptr().wrapping_add(*offset as usize),
            PhysView::Owned(v) => v.as_ptr(),
        }
    }
}

/// How a dump file is (or can be) mapped.
pub(crate) enum MapPlan {
    /// Not mapped, and never will be (`mmap: false`, or the file cannot be mapped).
    Never,
    /// Mapped at open (`mapped_reads`: reads go through the mapping).
    Now(std::sync::Arc<MmapSource>),
    /// Mapped on first need (the first [`Dump::view_phys`](crate::dump::Dump::view_phys)) from this open file: opening and
    /// identifying never pay for `mmap`/`munmap` (and, with threads, the TLB shootdown of the
    /// `munmap`), which measured more than the rest of an identification (benches/BATCH.md).
    Lazy(std::sync::Arc<crate::source::FileSource>),
}

/// A dump file's byte source (pread, or with `mapped_reads` the mapping) and its mapping plan.
/// One open file serves both (the mapping and the pread source are the same inode).
/// `mmap: false` never maps it; `mapped_reads` maps it now and reads through the mapping.
pub(crate) fn open_sources(
    path: &std::path::Path,
    mmap: bool,
    mapped_reads: bool,
) -> Result<(std::sync::Arc<dyn ReadAt>, MapPlan)> {
    use std::sync::Arc;
    let file = Arc::new(crate::source::FileSource::open(path)?);
    if !mmap {
        return Ok((file, MapPlan::Never));
    }
    if mapped_reads {
        if let Some(m) = MmapSource::from_file(file.file())? {
            let m = Arc::new(m);
            return Ok((m.clone(), MapPlan::Now(m)));
        }
        return Ok((file, MapPlan::Never));
    }
    Ok((file.clone(), MapPlan::Lazy(file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::io::Write;

    #[test]
    fn reads_like_pread_and_survives_truncation() {
        let dir = std::env::temp_dir().join(format!("vmcoreinfo-mmap-{}", std::process::id()));
        let data: Vec<u8> = (0..4 * 65536u32).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&dir).unwrap().write_all(&data).unwrap();
        let m = MmapSource::open(&dir).unwrap().expect("mapped");
        let mut b = vec![0u8; 1000];
        m.read_exact_at(&mut b, 70000).unwrap();
        assert_eq!(&b[..], &data[70000..71000]);
        assert_eq!(m.read_exact_at(&mut b, data.len() as u64 - 10).unwrap_err().kind, ErrorKind::Truncated);
        // Shrink the file under the mapping: a read past the new end must be an error, not SIGBUS.
        std::fs::OpenOptions::new().write(true).open(&dir).unwrap().set_len(65536).unwrap();
        let mut big = vec![0u8; 3 * 65536];
        let e = m.read_exact_at(&mut big, 65536).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert!(m.poisoned());
        // Sticky: even bytes still in the file fail now.
        assert_eq!(m.read_exact_at(&mut b, 0).unwrap_err().kind, ErrorKind::Truncated);
        drop(m);
        std::fs::remove_file(&dir).unwrap();
    }
}
