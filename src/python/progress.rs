//! The one progress adapter of every long operation: `Dump.scan_vmcoreinfo`, `write_elf`,
//! `write_kdump`, `identify_many`, and the implicit scans of memory images (the first use of
//! `vmcoreinfo`, `machine`, `byteorder`, ... on LiME, raw and AVML).
//!
//! One meaning everywhere:
//! - the callback `progress(done, total)` is called at most once every [`EVERY`] (100 ms), and
//!   once at the end (`done == total`); the first report comes at once;
//! - returning `False` (the object `False`, not any falsy value) cancels the operation, which
//!   raises `vmcoreinfo.CancelledError` (a write then leaves no file);
//! - an exception the callback raises stops the operation and propagates;
//! - pending signals are checked at the same rate, with or without a callback, so Ctrl-C
//!   (`KeyboardInterrupt`) interrupts an operation that runs with the GIL released.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::error::Error;

/// The callback (and the signal check) runs at most this often.
pub const EVERY: Duration = Duration::from_millis(100);

/// The message of an operation its progress callback cancelled.
const CANCELLED: &str = "cancelled: the progress callback returned False";

/// A progress callback with the policy above. Created with the GIL held; [`Progress::tick`] is
/// called from code running with the GIL released, [`Progress::call`] with it held.
pub struct Progress {
    cb: Option<Py<PyAny>>,
    last: Option<Instant>,
    /// The exception that stopped the operation (from the callback, a signal, or a cancel).
    err: Option<PyErr>,
    path: Option<Arc<str>>,
}

impl Progress {
    /// `path`: the file a `CancelledError` names.
    pub fn new(cb: Option<Py<PyAny>>, path: Option<Arc<str>>) -> Progress {
        Progress { cb, last: None, err: None, path }
    }

    fn due(&mut self, last: bool) -> bool {
        let now = Instant::now();
        if !last && self.last.is_some_and(|l| now.duration_since(l) < EVERY) {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// With the GIL held: report `(done, total)` when due (always when `last`). `Err` when the
    /// operation must stop: a signal's exception, the callback's, or `CancelledError`.
    pub fn call(&mut self, py: Python<'_>, done: u64, total: Option<u64>, last: bool) -> PyResult<()> {
        if !self.due(last) {
            return Ok(());
        }
        py.check_signals()?;
        let Some(cb) = &self.cb else { return Ok(()) };
        let r = cb.call1(py, (done, total))?;
        if r.bind(py).is(&*PyBool::new(py, false)) {
            let mut e = Error::cancelled(CANCELLED);
            e.path = self.path.clone();
            return Err(e.into());
        }
        Ok(())
    }

    /// With the GIL released: the core's progress callback. `false` stops the operation; the
    /// reason is kept for [`Progress::finish`].
    pub fn tick(&mut self, done: u64, total: u64) -> bool {
        if self.err.is_some() {
            return false;
        }
        if !self.due(done >= total) {
            return true;
        }
        // `due` already said yes: `call` must not throttle again.
        self.last = None;
        let r = Python::attach(|py| self.call(py, done, Some(total), true));
        match r {
            Ok(()) => true,
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    /// The operation's outcome: the exception that stopped it wins (a core `Cancelled` error is
    /// then only its echo); otherwise the core's result, errors placed in `path`.
    pub fn finish<T>(self, r: crate::error::Result<T>, path: &Arc<str>) -> PyResult<T> {
        match (r, self.err) {
            (_, Some(py_err)) => Err(py_err),
            (r, None) => r.map_err(|e| e.in_file(path).into()),
        }
    }
}
