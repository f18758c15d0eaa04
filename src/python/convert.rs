//! `Dump.write_elf` / `Dump.write_kdump`: the core writers with the GIL released.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::dump::Dump as CoreDump;
use crate::error::Error;
use crate::write::elf::{write_elf, ElfOptions};
use crate::write::kdump::{write_kdump, write_kdump_to, Compression, KdumpOptions};
use crate::write::{Target, VmcoreinfoSource, WriteReport};

/// The GIL is taken back at most this often while writing: for the progress callback and to let
/// Ctrl-C (KeyboardInterrupt) through.
const ATTACH_EVERY: Duration = Duration::from_millis(250);

/// Run a writer with the GIL released. `progress(done, total)` (bytes of guest memory) is called
/// at most every [`ATTACH_EVERY`] and at the end; an exception it raises, or a pending signal
/// (Ctrl-C), stops the write, removes the partial output and propagates.
fn run(
    py: Python<'_>,
    dump: &CoreDump,
    progress: Option<Py<PyAny>>,
    write: impl FnOnce(&mut dyn FnMut(u64, u64) -> bool) -> crate::error::Result<WriteReport> + Send,
) -> PyResult<WriteReport> {
    let mut cb_err: Option<PyErr> = None;
    let mut last: Option<Instant> = None;
    let result = py.detach(|| {
        let mut tick = |done: u64, total: u64| {
            let now = Instant::now();
            if done < total && last.is_some_and(|l| now.duration_since(l) < ATTACH_EVERY) {
                return true;
            }
            last = Some(now);
            Python::attach(|py| {
                let r = py.check_signals().and_then(|()| match &progress {
                    Some(cb) => cb.call1(py, (done, total)).map(drop),
                    None => Ok(()),
                });
                match r {
                    Ok(()) => true,
                    Err(e) => {
                        cb_err = Some(e);
                        false
                    }
                }
            })
        };
        write(&mut tick)
    });
    match (result, cb_err) {
        (Err(e), Some(py_err)) if crate::write::is_cancelled(&e) => Err(py_err),
        (r, _) => r.map_err(|e: Error| e.in_file(dump.path()).into()),
    }
}

fn report_dict<'py>(py: Python<'py>, format: &str, path: &PathBuf, r: &WriteReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("format", format)?;
    d.set_item("path", path)?;
    d.set_item("vmcoreinfo", r.vmcoreinfo.name())?;
    d.set_item("vmcoreinfo_paddr", if let VmcoreinfoSource::Scan { paddr } = r.vmcoreinfo { Some(paddr) } else { None })?;
    let diags = r
        .diagnostics
        .iter()
        .map(|x| {
            let e = PyDict::new(py);
            e.set_item("code", x.code)?;
            e.set_item("message", &x.message)?;
            Ok(e)
        })
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("diagnostics", diags)?;
    d.set_item("segments", r.segments)?;
    d.set_item("pages", r.pages)?;
    d.set_item("zero_pages", r.zero_pages)?;
    d.set_item("page_size", r.page_size)?;
    d.set_item("memory_bytes", r.memory_bytes)?;
    d.set_item("file_bytes", r.file_bytes)?;
    Ok(d)
}

pub(crate) fn elf<'py>(
    py: Python<'py>,
    dump: Arc<CoreDump>,
    path: PathBuf,
    exclude_zero: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let r = run(py, &dump, progress, |tick| write_elf(&dump, &path, ElfOptions { exclude_zero }, Some(tick)))?;
    let d = report_dict(py, "elf", &path, &r)?;
    d.set_item("exclude_zero", exclude_zero)?;
    Ok(d)
}

pub(crate) fn kdump<'py>(
    py: Python<'py>,
    dump: Arc<CoreDump>,
    path: PathBuf,
    compression: &str,
    flattened: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let compression = Compression::from_name(compression)
        .ok_or_else(|| PyValueError::new_err("compression must be 'zlib', 'zstd', 'snappy', 'lzo' or 'none'"))?;
    let options = KdumpOptions { compression };
    let r = if flattened {
        // A stream (a pipe, /dev/stdout) or a file written in place: records cannot be taken back.
        let name = path.to_string_lossy().into_owned();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&e, None, "cannot open the output").in_file(&Arc::from(name.as_str())))?;
        let stream = Box::new(std::io::BufWriter::with_capacity(1 << 20, file));
        run(py, &dump, progress, |tick| write_kdump_to(&dump, Target::Flattened { stream, name: &name }, options, Some(tick)))?
    } else {
        run(py, &dump, progress, |tick| write_kdump(&dump, &path, options, Some(tick)))?
    };
    let d = report_dict(py, "kdump", &path, &r)?;
    d.set_item("compression", compression.name())?;
    d.set_item("flattened", flattened)?;
    Ok(d)
}
