//! `Dump.write_elf` / `Dump.write_kdump`: the core writers with the GIL released.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::dump::Dump as CoreDump;
use crate::error::Error;
use crate::write::elf::{write_elf, ElfOptions};
use crate::write::kdump::{write_kdump, write_kdump_to, Compression, KdumpOptions};
use crate::write::{Target, VmcoreinfoSource, WriteReport};

/// Run a writer with the GIL released, with the one progress policy of [`super::progress`]:
/// `progress(done, total)` (bytes of guest memory) at most every 100 ms and at the end;
/// returning `False` cancels (`CancelledError`), an exception it raises or a pending signal
/// (Ctrl-C) stops the write; either way the partial output is removed.
fn run(
    py: Python<'_>,
    dump: &CoreDump,
    progress: Option<Py<PyAny>>,
    write: impl FnOnce(&mut dyn FnMut(u64, u64) -> bool) -> crate::error::Result<WriteReport> + Send,
) -> PyResult<WriteReport> {
    let mut p = super::progress::Progress::new(progress, Some(dump.path().clone()));
    let result = py.detach(|| write(&mut |done, total| p.tick(done, total)));
    p.finish(result, dump.path())
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
