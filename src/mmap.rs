//! A dump file read through a read-only shared mapping, and the SIGBUS guard that makes a file
//! shrinking under the mapping an error instead of a crash. This module holds the core's
//! file-mapping and signal-handling `unsafe` code (the crate's other exceptions are listed in
//! the crate docs).
//!
//! # The contract
//!
//! A mapping of a file is only as stable as the file. Two things can happen to it while mapped:
//!
//! 1. **The file shrinks** (truncated, or replaced in place by a writer that truncates first).
//!    Touching a mapped page past the new end raises `SIGBUS`. The guard below catches that
//!    signal for addresses inside our live mappings, maps an anonymous zero page over the faulting
//!    page (`MAP_FIXED`), marks the mapping *poisoned* and returns, so the interrupted copy
//!    finishes (with zeros where the file was gone). Every read through [`MmapSource`] checks
//!    the poisoned flag *after* its copy, and a poisoned mapping fails that read and every later
//!    one with [`ErrorKind::Truncated`](crate::error::ErrorKind::Truncated): the zeros of a copy
//!    never reach a caller of the core as data. Views handed to Python ([`PhysView`], as
//!    `memoryview`s) are different: Python reads their bytes directly, so after the file shrinks
//!    they read as zeros where the file was gone (and the next read through the dump fails). The
//!    flag is per mapping and sticky: the file is no longer the one that was opened.
//! 2. **The file's bytes change in place** (another process writes into it). The mapping shows
//!    the new bytes, possibly halfway through a copy. We never hand Rust code a `&[u8]` into the
//!    mapping that it could rely on being immutable: bytes leave the mapping only by a raw copy
//!    into a buffer we own ([`MmapSource::read_exact_at`]), after which they are ordinary data
//!    and are validated as any file data is (the parsers trust nothing). memmap2's precondition
//!    for `Mmap::map` ("the file is not modified while mapped") is thus not met, by design: the
//!    copy itself is a data race with the writer, accepted as for any shared mapping of a file
//!    that others may write (a `pread` racing a writer gives torn bytes the same way). The
//!    parsers only ever see the owned copy, so the outcome is wrong bytes, not undefined
//!    behaviour of the parsers. Views handed to Python ([`PhysView`]) are read-only buffers
//!    whose bytes may change under the reader in the same way.
//!
//! # The guard
//!
//! The handler owns a `SIGBUS` only when the kernel raised it for a memory access
//! (`si_code == BUS_ADRERR`, which Linux uses for a mapped page past the file's end) at an
//! address inside one of our live mappings. Everything else is foreign and goes to the
//! disposition that was in place before ours: a signal sent by a process (`kill`, `si_code <=
//! 0`, whose `si_addr` aliases the sender's pid and uid), a machine-check (`BUS_MCEERR_*`), a
//! misaligned access, or a fault outside our mappings. The handler hands it over by restoring
//! that disposition and then either returning (a synchronous fault: the faulting access runs
//! again and faults into the restored handler, with the kernel's own siginfo) or re-queueing
//! the same siginfo to its thread (a signal that returning would not re-raise). The process
//! thus dies of `SIGBUS`, or the previous handler runs, exactly as without us. A foreign signal
//! that comes back to us after a hand-over (a previous handler that re-installs ours and
//! re-raises) ends in the default action, so two handlers can never bounce a signal forever.
//! An ignored (`SIG_IGN`) signal sent by a process stays ignored.
//!
//! The disposition is checked each time a file is mapped (`sigaction(SIGBUS, NULL, &cur)`):
//! code that installed its own `SIGBUS` handler after ours (Python's `faulthandler.enable()`,
//! or its `disable()` restoring the `SIG_DFL` it saved before we ran) replaces ours for the
//! process, so we install ours again, keeping what is there now as the previous disposition.
//! Between such an installation and the next mapping, a shrinking file under an existing
//! mapping goes to that other handler (for Python's `faulthandler`: a traceback, then death by
//! `SIGBUS`).
//!
//! # The slot protocol
//!
//! Live mappings are recorded in a fixed table of [`MAX_MAPPINGS`] slots (when it is full a dump
//! is read with `pread` instead of being mapped). The handler uses atomics only (no locks, no
//! allocation) plus the `mmap`, `sigaction`, `getpid`, `gettid` and `rt_tgsigqueueinfo` system
//! calls. `mmap` is not on POSIX's list of async-signal-safe functions; on Linux (the only
//! target) glibc's and musl's `mmap` are a plain system call wrapper, which is safe here.
//!
//! A slot is `FREE`, `CLAIMED` (being filled), `LIVE`, or `DRAINING` (being removed). The range
//! `(start, end)` is written only while the slot is `CLAIMED`, and published by the `LIVE`
//! store. Handlers count themselves in flight (`in_flight`) for their whole run, before they
//! look at any slot. Removing a mapping stores `DRAINING`, then waits until no handler is in
//! flight, then frees the slot, and only after that is the mapping unmapped. With sequentially
//! consistent accesses on both sides (the store of `DRAINING` then the load of `in_flight`; the
//! increment of `in_flight` then the load of `state`), a handler that saw the slot `LIVE` is
//! one that removal waits for. So while a handler runs, a range it found cannot be freed,
//! reclaimed for another mapping (no torn `(start, end)`), or unmapped: its `MAP_FIXED` zero page
//! lands on the mapping it was meant for, never on a mapping made later at the same address.
//! The disposition saved as "previous" is published the same way: two buffers and an index,
//! and a writer waits for the handlers in flight before it overwrites the buffer not in use.
//!
//! Mapping is optional everywhere: [`OpenOptions::mmap`](crate::dump::OpenOptions::mmap) `false`
//! (Python `open(..., mmap=False)`) reads every byte with `pread`.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::fs::File;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, Once};

use crate::error::{Error, ErrorKind, Result};
use crate::source::ReadAt;

/// Live mappings the SIGBUS guard can recognise at once.
pub const MAX_MAPPINGS: usize = 256;

// si_code values of SIGBUS (asm-generic/siginfo.h, the same on every Linux architecture; the
// libc crate does not export them for Linux).
const BUS_ADRALN: libc::c_int = 1;
const BUS_ADRERR: libc::c_int = 2;
const BUS_OBJERR: libc::c_int = 3;
const BUS_MCEERR_AR: libc::c_int = 4;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;
const DRAINING: u8 = 3;

struct Slot {
    state: AtomicU8,
    start: AtomicUsize,
    end: AtomicUsize,
    poisoned: AtomicBool,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU8::new(FREE),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }
}

/// The live mappings and the handlers in flight (module docs, "The slot protocol").
struct Table<const N: usize> {
    slots: [Slot; N],
    in_flight: AtomicUsize,
}

impl<const N: usize> Table<N> {
    const fn new() -> Self {
        Table { slots: [const { Slot::new() }; N], in_flight: AtomicUsize::new(0) }
    }

    /// Record `[start, start + len)` in a free slot; `None` when the table is full.
    fn register(&self, start: usize, len: usize) -> Option<usize> {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.state.compare_exchange(FREE, CLAIMED, SeqCst, SeqCst).is_ok() {
                slot.start.store(start, SeqCst);
                slot.end.store(start.saturating_add(len), SeqCst);
                slot.poisoned.store(false, SeqCst);
                slot.state.store(LIVE, SeqCst);
                return Some(i);
            }
        }
        None
    }

    /// Remove slot `i`: when this returns, no handler can be using its range (the caller
    /// unmaps the range only after).
    fn unregister(&self, i: usize) {
        let slot = &self.slots[i];
        slot.state.store(DRAINING, SeqCst);
        self.drain();
        slot.state.store(FREE, SeqCst);
    }

    /// Wait until no handler is in flight (normal context only, never in the handler).
    fn drain(&self) {
        while self.in_flight.load(SeqCst) != 0 {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }

    /// Handler side: count a handler in flight; every `enter` is followed by one `exit`.
    fn enter(&self) {
        self.in_flight.fetch_add(1, SeqCst);
    }
    fn exit(&self) {
        self.in_flight.fetch_sub(1, SeqCst);
    }

    /// Handler side, between `enter` and `exit`: the live slot whose range holds `addr`. Its
    /// range stays the same until `exit`.
    fn find(&self, addr: usize) -> Option<usize> {
        self.slots.iter().position(|s| s.state.load(SeqCst) == LIVE && addr >= s.start.load(SeqCst) && addr < s.end.load(SeqCst))
    }

    fn poisoned(&self, i: usize) -> bool {
        self.slots[i].poisoned.load(SeqCst)
    }
}

static TABLE: Table<MAX_MAPPINGS> = Table::new();
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
static PAGE_SIZE_ONCE: Once = Once::new();
/// Serialises (re)installation of the handler and writes of [`PREVIOUS`].
static INSTALL_LOCK: Mutex<()> = Mutex::new(());
/// A foreign signal was handed over since the handler was last installed (a second one that
/// reaches us ends in the default action: module docs).
static HANDED_OVER: AtomicBool = AtomicBool::new(false);

/// The disposition that was in place before ours, double-buffered: `bufs[index]` is the one in
/// use. Writers hold [`INSTALL_LOCK`], wait for the handlers in flight ([`Table::drain`]), write
/// the other buffer and then publish it by storing `index`; a handler reads `index` and copies
/// the buffer while counted in flight, so the buffer it copies is never being written.
struct Previous {
    bufs: [UnsafeCell<MaybeUninit<libc::sigaction>>; 2],
    index: AtomicUsize,
}

// SAFETY: access to `bufs` follows the protocol above (one writer at a time, on the buffer no
// handler can be reading).
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous {
    bufs: [UnsafeCell::new(MaybeUninit::uninit()), UnsafeCell::new(MaybeUninit::uninit())],
    index: AtomicUsize::new(0),
};

fn is_ours(sa: &libc::sigaction) -> bool {
    sa.sa_flags & libc::SA_SIGINFO != 0 && sa.sa_sigaction == on_sigbus as *const () as usize
}

/// Make sure our SIGBUS handler is the one installed (installing it, again if someone replaced
/// it since). Returns whether it is in place.
fn ensure_guard() -> bool {
    let _lock = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    PAGE_SIZE_ONCE.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if ps > 0 {
            PAGE_SIZE.store(ps as usize, SeqCst);
        }
    });
    // SAFETY: plain libc calls with valid pointers. The buffer written is the one not in use,
    // after every handler that could have read it has finished (the `Previous` protocol), and
    // it is published before our handler is installed, so a handler always finds a filled one.
    unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut cur) != 0 {
            return false;
        }
        if is_ours(&cur) {
            return true;
        }
        TABLE.drain();
        let spare = 1 - PREVIOUS.index.load(SeqCst);
        (*PREVIOUS.bufs[spare].get()).write(cur);
        PREVIOUS.index.store(spare, SeqCst);
        HANDED_OVER.store(false, SeqCst);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) == 0
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers. The handler is counted
    // in flight while it reads the table and PREVIOUS (module docs, "The slot protocol"), so the
    // slot it finds stays registered and mapped until it has placed the zero page, and the
    // PREVIOUS buffer it copies is not written meanwhile. Only atomics and the system calls
    // listed in the module docs are used.
    unsafe {
        let code = (*info).si_code;
        TABLE.enter();
        if code == BUS_ADRERR {
            let addr = (*info).si_addr() as usize;
            if let Some(i) = TABLE.find(addr) {
                let page = PAGE_SIZE.load(SeqCst);
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
                    TABLE.slots[i].poisoned.store(true, SeqCst);
                    TABLE.exit();
                    return;
                }
            }
        }
        let prev: libc::sigaction = (*PREVIOUS.bufs[PREVIOUS.index.load(SeqCst)].get()).assume_init_read();
        TABLE.exit();
        hand_over(sig, code, info, &prev);
    }
}

/// A foreign signal: give it to `prev` (module docs, "The guard").
///
/// # Safety
/// Called from the handler only, with the kernel's `info` and a copy of the saved disposition.
unsafe fn hand_over(sig: libc::c_int, code: libc::c_int, info: *mut libc::siginfo_t, prev: &libc::sigaction) {
    let sent = code <= 0; // SI_USER, SI_QUEUE, SI_TKILL, ...: sent by a process
    if sent && prev.sa_flags & libc::SA_SIGINFO == 0 && prev.sa_sigaction == libc::SIG_IGN {
        return; // ignored, as it would have been without us
    }
    // SAFETY: sigaction with valid pointers; the syscall re-queues the kernel's
    // siginfo to this very thread (allowed for any si_code when sending to oneself).
    unsafe {
        if HANDED_OVER.swap(true, SeqCst) {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
        } else {
            libc::sigaction(libc::SIGBUS, prev, std::ptr::null_mut());
        }
        if matches!(code, BUS_ADRALN | BUS_ADRERR | BUS_OBJERR | BUS_MCEERR_AR) {
            // A synchronous fault: returning runs the faulting access again, and it faults into
            // the restored disposition (SIG_DFL and SIG_IGN alike end the process).
            return;
        }
        // Returning would not raise it again: queue it (blocked until we return) as it was.
        let r = libc::syscall(libc::SYS_rt_tgsigqueueinfo, libc::getpid(), libc::gettid(), sig, info);
        if r != 0 {
            libc::raise(sig);
        }
    }
}

/// A registered slot; unregisters on drop.
struct Registration(usize);

impl Registration {
    fn new(start: usize, len: usize) -> Option<Registration> {
        TABLE.register(start, len).map(Registration)
    }
    fn poisoned(&self) -> bool {
        TABLE.poisoned(self.0)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Before the mapping goes away (the field order of MmapSource guarantees it); waits for
        // any handler that may be placing a zero page in it.
        TABLE.unregister(self.0);
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
    /// Map the file at `path` ([`MmapSource::from_file`]).
    #[cfg(test)]
    pub fn open(path: &std::path::Path) -> Result<Option<MmapSource>> {
        let file = File::open(path).map_err(|e| Error::io(&e, None, "cannot open"))?;
        Self::from_file(&file)
    }

    /// Map `file` if it is a non-empty regular file that fits the address space and the guard
    /// is in place (installed again if another handler replaced it) with a free slot;
    /// `Ok(None)` when it cannot be mapped (read it with `pread`).
    pub fn from_file(file: &File) -> Result<Option<MmapSource>> {
        let meta = file.metadata().map_err(|e| Error::io(&e, None, "cannot stat"))?;
        if !meta.is_file() || meta.len() == 0 || usize::try_from(meta.len()).is_err() || !ensure_guard() {
            return Ok(None);
        }
        // SAFETY: memmap2's precondition (the file is not modified while mapped) is not met by
        // design; see the module contract: the mapping is read only by raw copies into owned
        // buffers (or exposed read-only to Python), a copy racing a writer is an accepted data
        // race on the shared mapping, and a shrinking file is caught by the guard.
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
    fn size(&self) -> u64 {
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

/// A pipe, socket or character device cannot be read at offsets: say so, and what to do, instead
/// of the first read's bare "Illegal seek" (`ESPIPE`, an `OSError` in Python).
fn refuse_streams(file: &File) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(t) = file.metadata().map(|m| m.file_type()) else { return Ok(()) };
    let what = if t.is_fifo() {
        "a pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else {
        return Ok(());
    };
    let msg = format!(
        "{what}, not a seekable regular file: dumps are read at offsets, so save the stream to a file \
         first (a flattened kdump stream: `makedumpfile -R FILE < STREAM` reassembles it)"
    );
    Err(Error::new(ErrorKind::Io { errno: Some(rustix::io::Errno::SPIPE.raw_os_error()) }, None, msg))
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
    refuse_streams(file.file())?;
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

    #[test]
    fn unregistering_waits_for_the_handlers_in_flight() {
        let t: Table<4> = Table::new();
        let i = t.register(0x10000, 0x1000).unwrap();
        t.enter(); // a handler is running and finds the slot
        assert_eq!(t.find(0x10800), Some(i));
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                t.unregister(i);
                done.store(true, SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(!done.load(SeqCst), "a slot was freed (and its mapping could go) under a handler in flight");
            // Meanwhile the slot is neither found by new handlers nor reclaimed by a new mapping.
            assert_eq!(t.find(0x10800), None);
            let j = t.register(0x20000, 0x1000).unwrap();
            assert_ne!(i, j, "a draining slot was reclaimed");
            assert_eq!((t.slots[i].start.load(SeqCst), t.slots[i].end.load(SeqCst)), (0x10000, 0x11000));
            t.exit();
        });
        assert!(done.load(SeqCst));
        assert_eq!(t.find(0x10800), None);
        assert_eq!(t.register(0x30000, 0x1000), Some(i), "freed once no handler is in flight");
    }

    #[test]
    fn a_range_found_by_a_handler_is_whole_and_stays_put() {
        // Registrars churn through ranges whose length is a function of their start; a checker
        // acting as the handler must always find a whole (start, end) pair holding its address,
        // unchanged until it exits.
        fn len_of(start: usize) -> usize {
            ((start >> 12) % 7 + 1) << 12
        }
        let t: Table<8> = Table::new();
        let stop = AtomicBool::new(false);
        let hits = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for k in 0..3usize {
                let (t, stop) = (&t, &stop);
                s.spawn(move || {
                    // Two ranges live at a time: register one, remove the older.
                    let mut live = std::collections::VecDeque::new();
                    let mut n = 0usize;
                    while !stop.load(SeqCst) {
                        let start = (k << 20) + ((n % 64) << 12);
                        live.extend(t.register(start, len_of(start)));
                        if live.len() > 2 {
                            t.unregister(live.pop_front().unwrap());
                        }
                        n += 1;
                    }
                    live.into_iter().for_each(|i| t.unregister(i));
                });
            }
            let (t, stop, hits) = (&t, &stop, &hits);
            s.spawn(move || {
                // The registrars stop even if an assertion below fails.
                struct Stop<'a>(&'a AtomicBool);
                impl Drop for Stop<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, SeqCst);
                    }
                }
                let _stop = Stop(stop);
                // Until enough ranges were met (or time is up: a loaded machine), leaving the
                // registrars room to drain between two lookups.
                let t0 = std::time::Instant::now();
                for n in 0usize.. {
                    if hits.load(SeqCst) >= 500 || t0.elapsed() > std::time::Duration::from_secs(2) {
                        break;
                    }
                    let addr = ((n % 3) << 20) + ((n * 7919) % (70 << 12));
                    t.enter();
                    if let Some(i) = t.find(addr) {
                        let (a, b) = (t.slots[i].start.load(SeqCst), t.slots[i].end.load(SeqCst));
                        assert!(b - a == len_of(a) && (a..b).contains(&addr), "torn range {a:#x}..{b:#x} for {addr:#x}");
                        for _ in 0..50 {
                            std::hint::spin_loop();
                        }
                        let again = (t.slots[i].start.load(SeqCst), t.slots[i].end.load(SeqCst));
                        assert_eq!(again, (a, b), "the slot changed under a handler in flight");
                        assert_ne!(t.slots[i].state.load(SeqCst), FREE);
                        hits.fetch_add(1, SeqCst);
                    }
                    t.exit();
                    std::thread::yield_now();
                }
            });
        });
        assert!(hits.load(SeqCst) > 0, "the checker never met a live range");
    }

    #[test]
    fn faults_while_mappings_come_and_go_never_touch_a_live_mapping() {
        let base = std::env::temp_dir().join(format!("vmcoreinfo-mmap-churn-{}", std::process::id()));
        let good = base.with_extension("good");
        let data: Vec<u8> = (0..64 * 4096u32).map(|i| (i % 253) as u8 + 1).collect();
        std::fs::write(&good, &data).unwrap();
        let held = MmapSource::open(&good).unwrap().expect("mapped");
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut b = vec![0u8; data.len()];
                    for _ in 0..200 {
                        let m = MmapSource::open(&good).unwrap().expect("mapped");
                        m.read_exact_at(&mut b, 0).unwrap();
                        assert!(b == data, "a live mapping read wrong bytes");
                    }
                });
            }
            for k in 0..2 {
                let base = &base;
                s.spawn(move || {
                    let p = base.with_extension(format!("shrink{k}"));
                    let mut b = vec![0u8; 16 * 4096];
                    for _ in 0..100 {
                        std::fs::write(&p, vec![7u8; 16 * 4096]).unwrap();
                        let m = MmapSource::open(&p).unwrap().expect("mapped");
                        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(4096).unwrap();
                        assert_eq!(m.read_exact_at(&mut b, 0).unwrap_err().kind, ErrorKind::Truncated);
                    }
                    std::fs::remove_file(&p).unwrap();
                });
            }
        });
        let mut b = vec![0u8; data.len()];
        held.read_exact_at(&mut b, 0).unwrap();
        assert!(b == data && !held.poisoned(), "zero pages landed on a mapping that was never cut");
        drop(held);
        std::fs::remove_file(&good).unwrap();
    }
}
