//! Batch identification: many dump files on a pool of threads, one result per input, in input
//! order, with a bounded number of files in flight.
//!
//! [`identify`] is the per-file job: open, read the VMCOREINFO text, and take the values a
//! pipeline sorts dumps by (format, machine, osrelease, build-id, KERNELOFFSET, phys_base,
//! PAGESIZE, where the text lies). Every failure is kept in the result, never raised, so one bad
//! file never stops a batch.
//!
//! [`Batch`] runs the job on `threads` threads: `threads - 1` workers it starts, and the thread
//! that takes the results, which identifies files itself whenever the result it wants next is
//! not done yet (it never sleeps while jobs are waiting). The caller submits paths and takes
//! results in submission order; it decides how many to keep in flight (the window), so memory
//! stays bounded whatever the number of files: each in-flight file holds its path and, once
//! done, one [`Identity`] (a few hundred bytes). Threads take short runs of consecutive jobs (at
//! most [`MAX_RUN`]) so that the queue's lock is taken a few times per run, not per file.
//!
//! Why the taking thread works too: with one sleeping consumer beside a worker per CPU, every
//! result handed over costs wake-ups and thread switches on a full machine; a 2-CPU machine
//! identified about 20 % fewer files per second that way than two single-threaded processes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::bitness;
use crate::dump::{Dump, Format, OpenOptions};
use crate::error::Error;

/// What [`identify`] found about one file. Fields read before a failure are kept (a dump without
/// a VMCOREINFO note still has a format and a machine); `error` is the first failure.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub format: Option<Format>,
    pub machine: Option<&'static str>,
    pub osrelease: Option<String>,
    pub build_id: Option<String>,
    pub kernel_offset: Option<u64>,
    pub phys_base: Option<i64>,
    pub page_size: Option<u64>,
    /// File offset of the first byte of the VMCOREINFO text (None when it was read from
    /// compressed pages).
    pub vmcoreinfo_offset: Option<u64>,
    /// Length of the text in bytes (the note's desc, NUL padding included as written).
    pub vmcoreinfo_size: Option<u64>,
    /// Physical address of the note header when the text came from a scan of memory (LiME, AVML, raw).
    pub note_paddr: Option<u64>,
    /// Bytes of memory the headers declare and bytes of it the file holds (ELF, kdump; None for
    /// memory images or when the count failed): `stored < declared` is a file cut short.
    pub memory_declared_bytes: Option<u64>,
    pub memory_stored_bytes: Option<u64>,
    /// The first failure, with the file attached.
    pub error: Option<Error>,
}

impl Identity {
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the file holds less memory than its headers declare.
    pub fn cut_short(&self) -> bool {
        matches!((self.memory_declared_bytes, self.memory_stored_bytes), (Some(d), Some(s)) if s < d)
    }
}

/// Identify one file: the same values, and the same errors, as opening it and reading
/// `vmcoreinfo`'s `osrelease`, `build_id`, `kernel_offset`, `phys_base` and `page_size` one by one.
pub fn identify(path: &Path, options: OpenOptions) -> Identity {
    let mut id = Identity::default();
    let dump = match Dump::open(path, options) {
        Ok(d) => d,
        Err(e) => {
            id.error = Some(e);
            return id;
        }
    };
    let name = dump.path().clone();
    id.format = Some(dump.format());
    if !dump.format().is_memory_image() {
        // Memory images take their machine from the text the scan finds: ask after it ran.
        id.machine = Some(dump.machine());
    }
    // ELF: from the program headers; kdump: the page table's last entry (all of it when cut).
    if let Ok(Some((declared, stored))) = dump.stored_memory() {
        id.memory_declared_bytes = Some(declared);
        id.memory_stored_bytes = Some(stored);
    }
    let blob = match dump.vmcoreinfo() {
        Ok(b) => b,
        Err(e) => {
            if dump.format().is_memory_image() {
                id.machine = dump.machine_if_known();
            }
            id.error = Some(e.in_file(&name));
            return id;
        }
    };
    if dump.format().is_memory_image() {
        id.machine = Some(dump.machine());
    }
    id.vmcoreinfo_offset = blob.file_offset;
    id.vmcoreinfo_size = Some(blob.bytes().len() as u64);
    id.note_paddr = blob.phys_addr;
    // The five keys are all a 64-bit dump needs from the text; a 32-bit one also checks every
    // address in it against its width, which takes the whole index.
    let idx = if dump.class64() {
        crate::text::Index::build_only(blob.bytes(), crate::text::KeySet::identity())
    } else {
        crate::text::Index::build(blob.bytes())
    };
    let view = idx.view(blob.bytes());
    id.osrelease = view.osrelease().map(|s| s.into_owned());
    id.build_id = view.build_id().map(|s| s.into_owned());
    let base = blob.file_offset.unwrap_or(0);
    let mut first_err: Option<Error> = None;
    let mut keep = |e: Error| {
        first_err.get_or_insert_with(|| e.shifted(base).in_file(&name));
    };
    // As `Dump.vmcoreinfo` does: SYMBOL and KERNELOFFSET values must fit a 32-bit dump's addresses.
    if !dump.class64() {
        if let Err(e) = bitness::check_text_address_width(&view, 32) {
            keep(e);
        }
    }
    match view.kernel_offset() {
        Ok(v) => id.kernel_offset = v,
        Err(e) => keep(e),
    }
    match view.phys_base() {
        Ok(v) => id.phys_base = v,
        Err(e) => keep(e),
    }
    match view.page_size() {
        Ok(v) => id.page_size = v,
        Err(e) => keep(e),
    }
    id.error = first_err;
    id
}

/// Longest run of consecutive jobs a worker takes at once.
pub const MAX_RUN: usize = 32;

struct State {
    /// Submitted, not yet taken by a worker: (sequence number, path).
    jobs: VecDeque<(u64, PathBuf)>,
    /// Slot `i` holds the result of sequence number `next_out + i` once it is done.
    results: VecDeque<Option<(PathBuf, Identity)>>,
    next_out: u64,
    next_in: u64,
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    options: OpenOptions,
    threads: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker never panics while holding the lock (identify returns errors, and a panic in
        // it is caught); if one did, the state is still consistent, so go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What [`Batch::try_next`] found.
// `Ready` is the common case and moves straight out: boxing it would allocate once per file.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// The next result in submission order.
    Ready(PathBuf, Identity),
    /// Jobs are in flight but the next one is not done yet.
    Pending,
    /// Nothing is in flight.
    Empty,
}

/// A pool of threads identifying files; results come back in submission order.
pub struct Batch {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Batch {
    /// Identify files on `threads` threads (`0` means the number of CPUs available): this starts
    /// `threads - 1` workers; the thread taking results is the last one (see the module docs).
    pub fn new(threads: usize, options: OpenOptions) -> Batch {
        let threads = if threads == 0 { default_threads() } else { threads };
        let shared = Arc::new(Shared {
            state: Mutex::new(State { jobs: VecDeque::new(), results: VecDeque::new(), next_out: 0, next_in: 0, closing: false }),
            work: Condvar::new(),
            done: Condvar::new(),
            options,
            threads,
        });
        let workers = (1..threads)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("vmcoreinfo-batch-{i}"))
                    .spawn(move || worker(&s))
                    .expect("cannot start a batch worker thread")
            })
            .collect();
        Batch { shared, workers }
    }

    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Submitted jobs whose results have not been taken yet.
    pub fn in_flight(&self) -> usize {
        let st = self.shared.lock();
        (st.next_in - st.next_out) as usize
    }

    /// Queue paths for identification (the caller bounds how many it keeps in flight).
    pub fn submit<I: IntoIterator<Item = PathBuf>>(&self, paths: I) {
        let mut st = self.shared.lock();
        let before = st.jobs.len();
        for p in paths {
            let seq = st.next_in;
            st.jobs.push_back((seq, p));
            st.results.push_back(None);
            st.next_in += 1;
        }
        let added = st.jobs.len() - before;
        drop(st);
        match added {
            0 => {}
            1 => self.shared.work.notify_one(),
            _ => self.shared.work.notify_all(),
        }
    }

    /// The next result if it is done, without waiting.
    pub fn try_next(&self) -> Next {
        let mut st = self.shared.lock();
        take(&mut st)
    }

    /// The next result in submission order, identifying files meanwhile while any wait to be
    /// started, else waiting for the workers; `None` when nothing is in flight.
    pub fn next_blocking(&self) -> Option<(PathBuf, Identity)> {
        let mut st = self.shared.lock();
        loop {
            match take(&mut st) {
                Next::Ready(p, id) => return Some((p, id)),
                Next::Empty => return None,
                Next::Pending => st = self.help_or_wait(st),
            }
        }
    }

    /// Run a run of jobs on this thread if any are waiting (the lock released meanwhile), else
    /// wait until a worker reports results; the lock is held again on return.
    fn help_or_wait<'a>(&'a self, st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.jobs.is_empty() {
            return self.shared.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let mut run = Vec::with_capacity(MAX_RUN);
        let mut st = st;
        take_run(&self.shared, &mut st, &mut run);
        drop(st);
        let mut out = Vec::with_capacity(run.len());
        identify_run(&self.shared, &mut run, &mut out);
        let mut st = self.shared.lock();
        store(&mut st, &mut out);
        st
    }
}

impl Batch {
    /// Until the next `n` results in order are done (all those in flight, if fewer): identify
    /// files on this thread while jobs wait, else wait for the workers. A consumer that must
    /// reacquire a lock to take results (Python's GIL) calls this for a whole stretch instead
    /// of once per result: under a busy interpreter each reacquisition can cost a thread switch
    /// interval.
    pub fn wait_ready(&self, n: usize) {
        let mut st = self.shared.lock();
        loop {
            let want = n.max(1).min((st.next_in - st.next_out) as usize);
            if st.results.iter().take(want).all(Option::is_some) {
                return;
            }
            st = self.help_or_wait(st);
        }
    }
}

fn take(st: &mut State) -> Next {
    if st.next_out == st.next_in {
        return Next::Empty;
    }
    match st.results.front_mut().and_then(Option::take) {
        Some((p, id)) => {
            st.results.pop_front();
            st.next_out += 1;
            Next::Ready(p, id)
        }
        None => Next::Pending,
    }
}

impl Batch {
    /// Stop and wait for the workers: jobs not started are dropped, runs in progress finish.
    pub fn join(mut self) {
        self.close();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    fn close(&self) {
        {
            let mut st = self.shared.lock();
            st.closing = true;
            st.jobs.clear();
        }
        self.shared.work.notify_all();
    }
}

impl Drop for Batch {
    /// Drop jobs not started and let the workers end on their own after their current run,
    /// without waiting for them (a dropped batch never blocks its caller; [`Batch::join`] waits).
    fn drop(&mut self) {
        self.close();
    }
}

type Job = (u64, PathBuf);
type Done = (u64, PathBuf, Identity);

/// Move the next run of jobs into `run`; the queue is shared fairly: a short queue is split
/// between the threads.
fn take_run(s: &Shared, st: &mut State, run: &mut Vec<Job>) {
    let n = (st.jobs.len() / s.threads).clamp(1, MAX_RUN).min(st.jobs.len());
    run.extend(st.jobs.drain(..n));
}

fn identify_run(s: &Shared, run: &mut Vec<Job>, out: &mut Vec<Done>) {
    for (seq, path) in run.drain(..) {
        let id = identify_caught(&path, s.options);
        out.push((seq, path, id));
    }
}

/// [`identify`], with a panic (a bug, on some input) turned into that file's `Internal` error:
/// a thread that unwound would never store its results, and the consumer would wait for them
/// forever (B7).
fn identify_caught(path: &Path, options: OpenOptions) -> Identity {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(test)]
        if path.file_name().is_some_and(|n| n == tests::PANIC_NAME) {
            panic!("injected panic");
        }
        identify(path, options)
    }));
    r.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let e = Error::internal(format!("identifying the file panicked: {why} (a bug: please report it)"));
        Identity { error: Some(e.in_file(&name)), ..Identity::default() }
    })
}

fn store(st: &mut State, out: &mut Vec<Done>) {
    for (seq, path, id) in out.drain(..) {
        let i = (seq - st.next_out) as usize;
        st.results[i] = Some((path, id));
    }
}

fn worker(s: &Shared) {
    let mut run: Vec<Job> = Vec::with_capacity(MAX_RUN);
    let mut out: Vec<Done> = Vec::with_capacity(MAX_RUN);
    loop {
        {
            let mut st = s.lock();
            while st.jobs.is_empty() && !st.closing {
                st = s.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.closing {
                return;
            }
            take_run(s, &mut st, &mut run);
        }
        identify_run(s, &mut run, &mut out);
        let mut st = s.lock();
        if st.closing {
            return;
        }
        store(&mut st, &mut out);
        drop(st);
        // One consumer; it checks whether what it waits for is now done.
        s.done.notify_one();
    }
}

/// Threads when none are asked for: the CPUs this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Identify every path of `paths` on `threads` threads, the calling one included (0: one per
/// CPU), yielding `(path, result)` in input order, with at most `window` files in flight (at
/// least one).
pub fn identify_many<I>(paths: I, threads: usize, window: usize, options: OpenOptions) -> IdentifyMany<I::IntoIter>
where
    I: IntoIterator<Item = PathBuf>,
{
    IdentifyMany { batch: Batch::new(threads, options), paths: Some(paths.into_iter()), window: window.max(1) }
}

/// The iterator [`identify_many`] returns.
pub struct IdentifyMany<I> {
    batch: Batch,
    paths: Option<I>,
    window: usize,
}

impl<I: Iterator<Item = PathBuf>> Iterator for IdentifyMany<I> {
    type Item = (PathBuf, Identity);

    fn next(&mut self) -> Option<Self::Item> {
        let in_flight = self.batch.in_flight();
        if in_flight <= self.window / 2 {
            if let Some(it) = &mut self.paths {
                let want = self.window - in_flight;
                let chunk: Vec<PathBuf> = it.take(want).collect();
                if chunk.len() < want {
                    self.paths = None;
                }
                self.batch.submit(chunk);
            }
        }
        self.batch.next_blocking()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// A file of this name makes `identify` panic (tests only).
    pub(super) const PANIC_NAME: &str = "panic-injected.core";

    #[test]
    fn a_panicking_file_gets_an_internal_error_and_the_batch_goes_on() {
        let good = fixture("x86_64-qemu-elf.core");
        let bad = fixture(PANIC_NAME);
        let paths: Vec<PathBuf> = (0..200).map(|i| if i % 7 == 3 { bad.clone() } else { good.clone() }).collect();
        for threads in [1, 2, 4] {
            let got: Vec<_> = identify_many(paths.clone(), threads, 16, OpenOptions::default()).collect();
            assert_eq!(got.len(), paths.len(), "threads={threads}: every file gets a result");
            for (i, (p, id)) in got.iter().enumerate() {
                assert_eq!(p, &paths[i]);
                if i % 7 == 3 {
                    let e = id.error.as_ref().expect("the panic is an error");
                    assert_eq!(e.kind, ErrorKind::Internal);
                    assert!(e.message.contains("injected panic") && e.path.is_some(), "{e}");
                } else {
                    assert!(id.is_ok(), "{:?}", id.error);
                }
            }
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    #[test]
    fn identify_real_elf_fixture() {
        let id = identify(&fixture("x86_64-qemu-elf.core"), OpenOptions::default());
        assert!(id.is_ok(), "{:?}", id.error);
        assert_eq!(id.format, Some(Format::Elf));
        assert_eq!(id.machine, Some("x86_64"));
        assert!(id.osrelease.as_deref().is_some_and(|r| r.starts_with("6.")), "{:?}", id.osrelease);
        assert_eq!(id.page_size, Some(4096));
        assert!(id.vmcoreinfo_offset.is_some() && id.vmcoreinfo_size.unwrap() > 1000);
        assert!(id.memory_declared_bytes.is_some_and(|d| d > 0) && !id.cut_short());
    }

    #[test]
    fn errors_are_kept_with_what_was_read_before() {
        let id = identify(&fixture("x86_64-qemu-elf-no-vmcoreinfo.core"), OpenOptions::default());
        assert_eq!(id.format, Some(Format::Elf));
        assert_eq!(id.machine, Some("x86_64"));
        let e = id.error.expect("no note");
        assert_eq!(e.kind, ErrorKind::NoVmcoreinfo);
        assert!(e.path.is_some());
        let id = identify(&fixture("does-not-exist"), OpenOptions::default());
        assert!(matches!(id.error.map(|e| e.kind), Some(ErrorKind::Io { errno: Some(2) })));
        assert_eq!(id.format, None);
    }

    #[test]
    fn results_come_in_input_order_with_a_small_window() {
        let good = fixture("x86_64-qemu-elf.core");
        let arm = fixture("arm64-qemu-elf.core");
        let bad = fixture("missing.core");
        let paths: Vec<PathBuf> = (0..500).map(|i| [&good, &arm, &bad][i % 3].clone()).collect();
        for (threads, window) in [(1, 1), (2, 3), (4, 64)] {
            let got: Vec<_> = identify_many(paths.clone(), threads, window, OpenOptions::default()).collect();
            let b = Batch::new(threads, OpenOptions::default());
            b.submit(paths.iter().take(window).cloned());
            b.wait_ready(window);
            for want in paths.iter().take(window) {
                assert!(matches!(b.try_next(), Next::Ready(p, _) if &p == want));
            }
            assert!(matches!(b.try_next(), Next::Empty));
            assert_eq!(got.len(), paths.len());
            for (i, (p, id)) in got.iter().enumerate() {
                assert_eq!(p, &paths[i]);
                match i % 3 {
                    0 => assert_eq!(id.machine, Some("x86_64")),
                    1 => assert_eq!(id.machine, Some("aarch64")),
                    _ => assert!(id.error.is_some()),
                }
            }
        }
    }

    #[test]
    fn one_thread_is_the_callers_own_and_starts_no_worker() {
        let good = fixture("x86_64-qemu-elf.core");
        let b = Batch::new(1, OpenOptions::default());
        assert_eq!((b.threads(), b.workers.len()), (1, 0));
        b.submit(std::iter::repeat_n(good.clone(), 100));
        b.wait_ready(40);
        let st = b.shared.lock();
        // The run sizes are 32 then 32: the caller stopped once the 40 it asked for were done.
        assert_eq!(st.results.iter().filter(|r| r.is_some()).count(), 64);
        assert_eq!(st.jobs.len(), 36);
        drop(st);
        let mut n = 0;
        while let Some((p, id)) = b.next_blocking() {
            assert!(p == good && id.is_ok(), "{:?}", id.error);
            n += 1;
        }
        assert_eq!(n, 100);
        let b = Batch::new(3, OpenOptions::default());
        assert_eq!((b.threads(), b.workers.len()), (3, 2));
    }

    #[test]
    fn stopping_a_batch_midway() {
        let good = fixture("x86_64-qemu-elf.core");
        let mut it = identify_many(std::iter::repeat_n(good.clone(), 10_000), 2, 256, OpenOptions::default());
        assert!(it.next().is_some_and(|(_, id)| id.is_ok()));
        drop(it); // returns at once; the workers end by themselves
        let b = Batch::new(2, OpenOptions::default());
        b.submit(std::iter::repeat_n(good, 1000));
        assert!(b.next_blocking().is_some());
        b.join(); // waits for the workers, which drop the jobs not started
    }
}
