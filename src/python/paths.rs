//! The one path extractor of every entry point (`open`, `write_elf`, `write_kdump`,
//! `identify_many`): `str`, `bytes`, or an `os.PathLike` returning either, to the file's exact
//! name as the OS sees it (a `PathBuf` made from the bytes `os.fsencode` gives, so names that
//! are not UTF-8 work: `str` names carry them surrogate-escaped), plus the name as a Python
//! `str` (`os.fsdecode`), which is what `Dump.path` and `Identity.path` report.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};

static FSPATH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A path argument: the OS name and its `str` form.
pub struct PyPath {
    pub path: PathBuf,
    pub name: Py<PyString>,
}

impl PyPath {
    /// Convert `obj`; `what` names the function in the `TypeError` for anything else.
    pub fn extract(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<PyPath> {
        let py = obj.py();
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(from_str(s));
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return from_bytes(py, b);
        }
        let fspath = FSPATH.get_or_try_init(py, || py.import("os")?.getattr("fspath").map(Bound::unbind))?;
        let f = fspath.bind(py).call1((obj,)).map_err(|_| {
            PyTypeError::new_err(format!(
                "{what}: expected a path (str, bytes or os.PathLike), got {}",
                obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        if let Ok(b) = f.cast::<PyBytes>() {
            return from_bytes(py, b);
        }
        Ok(from_str(f.cast::<PyString>()?))
    }
}

fn from_str(s: &Bound<'_, PyString>) -> PyPath {
    let path = match s.to_str() {
        Ok(t) => PathBuf::from(t),
        // Not valid UTF-8 (surrogate-escaped bytes): the bytes os.fsencode gives (pyo3's
        // OsString conversion is PyUnicode_EncodeFSDefault).
        Err(_) => PathBuf::from(s.extract::<OsString>().unwrap_or_else(|_| OsString::from(s.to_string_lossy().as_ref()))),
    };
    PyPath { path, name: s.clone().unbind() }
}

fn from_bytes(py: Python<'_>, b: &Bound<'_, PyBytes>) -> PyResult<PyPath> {
    let os = OsStr::from_bytes(b.as_bytes());
    // An OsStr becomes a str through PyUnicode_DecodeFSDefault (os.fsdecode).
    let name = os.into_pyobject(py)?.cast_into::<PyString>()?.unbind();
    Ok(PyPath { path: PathBuf::from(os), name })
}

impl<'py> FromPyObject<'_, 'py> for PyPath {
    type Error = PyErr;
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        PyPath::extract(&obj, "path")
    }
}
