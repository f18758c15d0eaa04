//! `identify_many`: the core's [`crate::batch::Batch`] as a Python iterator of frozen
//! `Identity` values, in input order. Paths are pulled from the Python iterable a window at a
//! time (never all at once) and identified on Rust threads; waiting for a result releases the GIL.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::batch::{self, Batch, Next};
use crate::dump::{Format, OpenOptions};

/// The most threads `identify_many` accepts (more is a mistake, not a machine).
pub const MAX_THREADS: usize = 1024;
/// The largest window (files in flight) `identify_many` accepts.
pub const MAX_WINDOW: usize = 1 << 20;

/// Field names, in the order `as_dict()`, CSV and Parquet output use.
const FIELDS: [&str; 16] = [
    "path",
    "format",
    "machine",
    "osrelease",
    "build_id",
    "kernel_offset",
    "phys_base",
    "page_size",
    "vmcoreinfo_offset",
    "vmcoreinfo_size",
    "note_paddr",
    "memory_declared_bytes",
    "memory_stored_bytes",
    "error_type",
    "error_message",
    "error_offset",
];

/// What ``identify_many`` found about one file: the values, or the error that stopped it.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct Identity {
    /// The input path as a ``str`` (``os.fspath`` of what was given).
    #[pyo3(get)]
    path: Py<PyString>,
    /// ``"elf"``, ``"kdump"``, ``"flattened-kdump"``, ``"lime"``, ``"raw"``; None if the file
    /// could not be opened as a dump.
    #[pyo3(get)]
    format: Option<Cow<'static, str>>,
    #[pyo3(get)]
    machine: Option<Cow<'static, str>>,
    #[pyo3(get)]
    osrelease: Option<String>,
    #[pyo3(get)]
    build_id: Option<String>,
    #[pyo3(get)]
    kernel_offset: Option<u64>,
    #[pyo3(get)]
    phys_base: Option<i64>,
    #[pyo3(get)]
    page_size: Option<u64>,
    /// File offset of the VMCOREINFO text (None when read from compressed pages).
    #[pyo3(get)]
    vmcoreinfo_offset: Option<u64>,
    /// Length of the text in bytes.
    #[pyo3(get)]
    vmcoreinfo_size: Option<u64>,
    /// Physical address of the note when a scan of memory found it (LiME, AVML, raw).
    #[pyo3(get)]
    note_paddr: Option<u64>,
    /// Bytes of memory the headers declare (ELF, kdump; None for memory images).
    #[pyo3(get)]
    memory_declared_bytes: Option<u64>,
    /// Bytes of that memory the file holds (fewer: the file was cut short).
    #[pyo3(get)]
    memory_stored_bytes: Option<u64>,
    /// The exception class ``vmcoreinfo.open`` would raise (``"NoVmcoreinfoError"``,
    /// ``"FileNotFoundError"``, ...), or None.
    #[pyo3(get)]
    error_type: Option<String>,
    /// ``str()`` of that exception (it names the file and offset), or None.
    #[pyo3(get)]
    error_message: Option<String>,
    /// The error's offset (file offset; the physical address for ``AbsentMemoryError``), or None.
    #[pyo3(get)]
    error_offset: Option<u64>,
}

impl Identity {
    fn new(py: Python<'_>, path: Py<PyString>, id: batch::Identity) -> Identity {
        let (error_type, error_message, error_offset) = match id.error {
            None => (None, None, None),
            Some(e) => {
                let offset = e.offset().or_else(|| e.address());
                let err: PyErr = e.into();
                // The normalized exception: OSError(errno, ...) is then FileNotFoundError etc.
                let v = err.value(py);
                let ty = v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "Error".to_owned());
                let msg = v.str().map(|s| s.to_string()).unwrap_or_default();
                (Some(ty), Some(msg), offset)
            }
        };
        Identity {
            path,
            format: id.format.map(|f| Cow::Borrowed(f.name())),
            machine: id.machine.map(Cow::Borrowed),
            osrelease: id.osrelease,
            build_id: id.build_id,
            kernel_offset: id.kernel_offset,
            phys_base: id.phys_base,
            page_size: id.page_size,
            vmcoreinfo_offset: id.vmcoreinfo_offset,
            vmcoreinfo_size: id.vmcoreinfo_size,
            note_paddr: id.note_paddr,
            memory_declared_bytes: id.memory_declared_bytes,
            memory_stored_bytes: id.memory_stored_bytes,
            error_type,
            error_message,
            error_offset,
        }
    }
}

#[pymethods]
impl Identity {
    /// The field names, in ``as_dict()`` order.
    #[classattr]
    #[allow(non_snake_case)]
    fn FIELDS<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, FIELDS)
    }

    /// Whether the file was identified without error.
    #[getter]
    fn ok(&self) -> bool {
        self.error_type.is_none()
    }

    /// Whether the file holds less memory than its headers declare (it was cut short).
    #[getter]
    fn cut_short(&self) -> bool {
        matches!((self.memory_declared_bytes, self.memory_stored_bytes), (Some(d), Some(s)) if s < d)
    }

    /// ``(error_type, error_message)``, or None.
    #[getter]
    fn error(&self) -> Option<(String, String)> {
        Some((self.error_type.clone()?, self.error_message.clone().unwrap_or_default()))
    }

    /// An ``Identity`` from its fields in ``FIELDS`` order (what unpickling calls).
    #[new]
    #[pyo3(signature = (path, format, machine, osrelease, build_id, kernel_offset, phys_base, page_size,
        vmcoreinfo_offset, vmcoreinfo_size, note_paddr, memory_declared_bytes, memory_stored_bytes,
        error_type, error_message, error_offset))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        path: Py<PyString>,
        format: Option<String>,
        machine: Option<String>,
        osrelease: Option<String>,
        build_id: Option<String>,
        kernel_offset: Option<u64>,
        phys_base: Option<i64>,
        page_size: Option<u64>,
        vmcoreinfo_offset: Option<u64>,
        vmcoreinfo_size: Option<u64>,
        note_paddr: Option<u64>,
        memory_declared_bytes: Option<u64>,
        memory_stored_bytes: Option<u64>,
        error_type: Option<String>,
        error_message: Option<String>,
        error_offset: Option<u64>,
    ) -> Identity {
        Identity {
            path,
            format: format.map(Cow::Owned),
            machine: machine.map(Cow::Owned),
            osrelease,
            build_id,
            kernel_offset,
            phys_base,
            page_size,
            vmcoreinfo_offset,
            vmcoreinfo_size,
            note_paddr,
            memory_declared_bytes,
            memory_stored_bytes,
            error_type,
            error_message,
            error_offset,
        }
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let values = slf.get().as_dict(slf.py())?.values();
        Ok((slf.get_type().into_any(), PyTuple::new(slf.py(), values)?))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match other.cast::<Identity>() {
            Ok(o) => Ok(self.as_dict(py)?.eq(o.get().as_dict(py)?)?.into_bound_py_any(py)?.unbind()),
            Err(_) => Ok(py.NotImplemented()),
        }
    }

    /// Every field in ``FIELDS`` order, as a new dict (JSON-ready: str, int or None).
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(FIELDS[0], self.path.bind(py))?;
        d.set_item(FIELDS[1], &self.format)?;
        d.set_item(FIELDS[2], &self.machine)?;
        d.set_item(FIELDS[3], &self.osrelease)?;
        d.set_item(FIELDS[4], &self.build_id)?;
        d.set_item(FIELDS[5], self.kernel_offset)?;
        d.set_item(FIELDS[6], self.phys_base)?;
        d.set_item(FIELDS[7], self.page_size)?;
        d.set_item(FIELDS[8], self.vmcoreinfo_offset)?;
        d.set_item(FIELDS[9], self.vmcoreinfo_size)?;
        d.set_item(FIELDS[10], self.note_paddr)?;
        d.set_item(FIELDS[11], self.memory_declared_bytes)?;
        d.set_item(FIELDS[12], self.memory_stored_bytes)?;
        d.set_item(FIELDS[13], &self.error_type)?;
        d.set_item(FIELDS[14], &self.error_message)?;
        d.set_item(FIELDS[15], self.error_offset)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let p = self.path.bind(py).to_string();
        match &self.error_type {
            Some(t) => format!("<vmcoreinfo.Identity {p:?} {t}: {}>", self.error_message.as_deref().unwrap_or("")),
            None => format!(
                "<vmcoreinfo.Identity {p:?} {} {} {}>",
                self.format.as_deref().unwrap_or("?"),
                self.machine.as_deref().unwrap_or("?"),
                self.osrelease.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// Take a new `Identity` out of the cycle collector's view. pyo3 makes every class a GC
/// container, so a batch of thousands of results made the collector run and walk each of them
/// several times (gen 0, 1 and 2) through pyo3's `tp_traverse`, for nothing: an `Identity` holds
/// one `str` and plain values, so it cannot be part of a reference cycle.
fn untrack(obj: &Bound<'_, Identity>) {
    // SAFETY: `obj` is a live object (we hold a reference) of a GC type (pyo3 sets
    // Py_TPFLAGS_HAVE_GC), which is what PyObject_GC_UnTrack requires; untracking an object that
    // cannot be in a cycle is what the C API documents it for. pyo3's tp_dealloc untracks again,
    // which CPython allows (it checks whether the object is tracked).
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) }
}

/// The iterator ``identify_many`` returns: one ``Identity`` per input path, in input order.
#[pyclass(module = "vmcoreinfo._native")]
pub struct IdentifyIter {
    batch: Option<Batch>,
    source: Option<Py<PyIterator>>,
    /// Input paths in flight, in order (one per job the batch holds).
    paths: VecDeque<Py<PyString>>,
    window: usize,
    progress: Option<super::progress::Progress>,
    total: Option<u64>,
    done: u64,
    /// What stopped the batch at the last result's report (raised by the next `__next__`, so
    /// that the result the callback was told about is still yielded).
    stopped: Option<PyErr>,
}

impl IdentifyIter {
    /// The str for results and the path for the core (see [`super::paths`]).
    fn to_path(&self, obj: &Bound<'_, PyAny>) -> PyResult<(Py<PyString>, PathBuf)> {
        let p = super::paths::PyPath::extract(obj, "identify_many")?;
        Ok((p.name, p.path))
    }

    /// Keep the workers busy: when half the window or less is in flight, pull paths to fill it.
    fn refill(&mut self, py: Python<'_>) -> PyResult<()> {
        let (Some(src), Some(batch)) = (&self.source, &self.batch) else { return Ok(()) };
        let in_flight = self.paths.len();
        if in_flight > self.window / 2 {
            return Ok(());
        }
        let mut it = src.bind(py).clone();
        let want = self.window - in_flight;
        let mut chunk = Vec::with_capacity(want);
        let mut exhausted = false;
        let mut failed = None;
        for _ in 0..want {
            match it.next() {
                None => {
                    exhausted = true;
                    break;
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                Some(Ok(obj)) => match self.to_path(&obj) {
                    Ok((s, pb)) => {
                        self.paths.push_back(s);
                        chunk.push(pb);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
            }
        }
        batch.submit(chunk);
        if let Some(e) = failed {
            self.stop();
            return Err(e);
        }
        if exhausted {
            self.source = None;
        }
        Ok(())
    }

    /// Stop: no more paths are pulled and jobs not started are dropped; the workers end after
    /// their current run, unwaited for (`close()` waits for them).
    fn stop(&mut self) {
        self.source = None;
        self.batch = None;
        self.paths.clear();
    }

    /// Report progress (see [`super::progress`]: at most every 100 ms, and when `last`);
    /// `False` from the callback stops the batch and raises `CancelledError` (after the result
    /// just reported is yielded).
    fn report(&mut self, py: Python<'_>, last: bool) -> PyResult<()> {
        let Some(p) = &mut self.progress else { return Ok(()) };
        let r = p.call(py, self.done, self.total, last);
        if r.is_err() {
            self.stop();
        }
        r
    }
}

#[pymethods]
impl IdentifyIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, Identity>>> {
        if let Some(e) = self.stopped.take() {
            return Err(e);
        }
        self.refill(py)?;
        let Some(batch) = &self.batch else { return Ok(None) };
        let stretch = self.window / 2;
        let next = match batch.try_next() {
            Next::Ready(_, id) => Some(id),
            Next::Empty => None,
            // Release the GIL once for a stretch of results, not once per result.
            Next::Pending => py
                .detach(|| {
                    batch.wait_ready(stretch);
                    batch.next_blocking()
                })
                .map(|(_, id)| id),
        };
        let Some(id) = next else {
            self.report(py, true)?;
            self.stop();
            return Ok(None);
        };
        let path = self.paths.pop_front().ok_or_else(|| PyValueError::new_err("identify_many: result without a path"))?;
        self.done += 1;
        let out = Bound::new(py, Identity::new(py, path, id))?;
        untrack(&out);
        if let Err(e) = self.report(py, false) {
            self.stopped = Some(e);
        }
        Ok(Some(out))
    }

    /// Stop early: drop the files not yet started and wait for the worker threads to end (the
    /// GIL released meanwhile). Dropping the iterator stops it too, without waiting.
    fn close(&mut self, py: Python<'_>) {
        let batch = self.batch.take();
        self.stop();
        self.stopped = None;
        if let Some(b) = batch {
            py.detach(|| b.join());
        }
    }

    /// Worker threads of this batch (0 once finished or closed).
    #[getter]
    fn threads(&self) -> usize {
        self.batch.as_ref().map_or(0, Batch::threads)
    }
}

/// An int argument in `1..=max`: `ValueError` otherwise (however large: never an
/// `OverflowError`, a panic or an allocation that aborts); `TypeError` for a non-int.
fn bounded(obj: &Bound<'_, PyAny>, name: &str, max: usize, none: &str) -> PyResult<usize> {
    let out_of_range = || PyValueError::new_err(format!("{name} must be between 1 and {max}{none}"));
    let n: i64 = match obj.extract() {
        Ok(n) => n,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => return Err(out_of_range()),
        Err(e) => return Err(e),
    };
    usize::try_from(n).ok().filter(|n| (1..=max).contains(n)).ok_or_else(out_of_range)
}

/// The native side of ``vmcoreinfo.identify_many`` (which documents it).
#[pyfunction]
#[pyo3(signature = (paths, threads = None, progress = None, format = None, window = None, total = None))]
pub fn identify_many(
    paths: &Bound<'_, PyAny>,
    threads: Option<&Bound<'_, PyAny>>,
    progress: Option<Py<PyAny>>,
    format: Option<&str>,
    window: Option<&Bound<'_, PyAny>>,
    total: Option<u64>,
) -> PyResult<IdentifyIter> {
    let threads = match threads {
        None => batch::default_threads().min(MAX_THREADS),
        Some(n) => bounded(n, "threads", MAX_THREADS, " (None: one per CPU)")?,
    };
    let window = match window {
        None => 64 * threads + 64,
        Some(n) => bounded(n, "window", MAX_WINDOW, "")?,
    };
    let format = match format {
        None => None,
        Some(f) => match Format::from_name(f) {
            Some(f) => Some(f),
            None => {
                let names: Vec<String> = Format::ALL.iter().map(|f| format!("'{}'", f.name())).collect();
                return Err(PyValueError::new_err(format!("format must be None or one of {}, not {f:?}", names.join(", "))));
            }
        },
    };
    let options = OpenOptions { format, ..OpenOptions::default() };
    Ok(IdentifyIter {
        source: Some(paths.try_iter()?.unbind()),
        batch: Some(Batch::new(threads, options)),
        paths: VecDeque::with_capacity(window),
        window,
        progress: progress.map(|cb| super::progress::Progress::new(Some(cb), None)),
        total,
        done: 0,
        stopped: None,
    })
}
