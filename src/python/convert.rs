//! `Dump.write_elf` / `Dump.write_kdump`: the core writers with the GIL released.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::records::WriteReport;
use crate::dump::Dump as CoreDump;
use crate::error::Error;
use crate::write::elf::{write_elf, ElfOptions};
use crate::write::kdump::{write_kdump, write_kdump_to, Compression, KdumpOptions};
use crate::write::Target;

/// Run a writer with the GIL released, with the one progress policy of [`super::progress`]:
/// `progress(done, total)` (bytes of guest memory) at most every 100 ms and at the end;
/// returning `False` cancels (`CancelledError`), an exception it raises or a pending signal
/// (Ctrl-C) stops the write; either way the partial output is removed.
fn run(
    py: Python<'_>,
    dump: &CoreDump,
    progress: Option<Py<PyAny>>,
    write: impl FnOnce(&mut dyn FnMut(u64, u64) -> bool) -> crate::error::Result<crate::write::WriteReport> + Send,
) -> PyResult<crate::write::WriteReport> {
    let mut p = super::progress::Progress::new(progress, Some(dump.path().clone()));
    let result = py.detach(|| write(&mut |done, total| p.tick(done, total)));
    p.finish(result, dump.path())
}

pub(crate) fn elf(
    py: Python<'_>,
    dump: Arc<CoreDump>,
    path: PathBuf,
    exclude_zero: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<WriteReport> {
    let r = run(py, &dump, progress, |tick| write_elf(&dump, &path, ElfOptions { exclude_zero }, Some(tick)))?;
    Ok(WriteReport { exclude_zero: Some(exclude_zero), ..WriteReport::new("elf", &path, &r) })
}

pub(crate) fn kdump(
    py: Python<'_>,
    dump: Arc<CoreDump>,
    path: PathBuf,
    compression: &str,
    flattened: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<WriteReport> {
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
    Ok(WriteReport {
        compression: Some(compression.name().to_owned()),
        flattened: Some(flattened),
        ..WriteReport::new("kdump", &path, &r)
    })
}
