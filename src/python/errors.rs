//! The one mapping from core errors to Python exceptions (defined in `vmcoreinfo._errors`).
//!
//! Exceptions are built by keyword (`Error(message, path=..., offset=..., rule=..., address=...,
//! location=..., hint=...)`), never from a positional tuple both sides must agree on. OS errors
//! become the built-in `OSError` subclass for their errno, with `offset` and `path` attributes
//! added (B12: the offset of a failed read is kept).

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{import_exception, PyErr, PyTypeInfo};

use crate::error::{Error, ErrorKind};

import_exception!(vmcoreinfo._errors, FormatError);
import_exception!(vmcoreinfo._errors, TruncatedError);
import_exception!(vmcoreinfo._errors, BitnessError);
import_exception!(vmcoreinfo._errors, NoteRuleError);
import_exception!(vmcoreinfo._errors, DecompressError);
import_exception!(vmcoreinfo._errors, UnsupportedFormatError);
import_exception!(vmcoreinfo._errors, LimitError);
import_exception!(vmcoreinfo._errors, NoVmcoreinfoError);
import_exception!(vmcoreinfo._errors, AbsentMemoryError);
import_exception!(vmcoreinfo._errors, ClosedError);
import_exception!(vmcoreinfo._errors, UnmappedError);
import_exception!(vmcoreinfo._errors, CancelledError);
import_exception!(vmcoreinfo._errors, InternalError);
import_exception!(vmcoreinfo._errors, MissingTypeError);
import_exception!(vmcoreinfo._errors, NoBtfError);
import_exception!(vmcoreinfo._errors, MissingSymbolError);

/// The exception class of a kind (`None`: an OS error).
fn class_of(py: Python<'_>, kind: ErrorKind) -> Option<Bound<'_, pyo3::types::PyType>> {
    Some(match kind {
        ErrorKind::Format => FormatError::type_object(py),
        ErrorKind::Truncated => TruncatedError::type_object(py),
        ErrorKind::Bitness(_) => BitnessError::type_object(py),
        ErrorKind::NoteRule(_) => NoteRuleError::type_object(py),
        ErrorKind::Decompress => DecompressError::type_object(py),
        ErrorKind::Unsupported => UnsupportedFormatError::type_object(py),
        ErrorKind::Limit => LimitError::type_object(py),
        ErrorKind::NoVmcoreinfo => NoVmcoreinfoError::type_object(py),
        ErrorKind::Absent => AbsentMemoryError::type_object(py),
        ErrorKind::Closed => ClosedError::type_object(py),
        ErrorKind::Unmapped => UnmappedError::type_object(py),
        ErrorKind::Cancelled => CancelledError::type_object(py),
        ErrorKind::Internal => InternalError::type_object(py),
        ErrorKind::MissingType => MissingTypeError::type_object(py),
        ErrorKind::NoBtf => NoBtfError::type_object(py),
        ErrorKind::MissingSymbol => MissingSymbolError::type_object(py),
        ErrorKind::Io { .. } => return None,
    })
}

fn build<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    let msg = e.to_string();
    let path = e.path.as_deref();
    let Some(cls) = class_of(py, e.kind) else {
        // OSError(errno, strerror, filename) becomes the matching built-in subclass
        // (FileNotFoundError, PermissionError, ...); without an errno, a plain OSError.
        let exc = match e.kind {
            ErrorKind::Io { errno: Some(errno) } => PyOSError::type_object(py).call1((errno, e.message.as_str(), path))?,
            _ => PyOSError::type_object(py).call1((msg,))?,
        };
        exc.setattr("offset", e.offset())?;
        exc.setattr("path", path)?;
        return Ok(exc);
    };
    let kw = PyDict::new(py);
    kw.set_item("path", path)?;
    kw.set_item("offset", e.offset())?;
    kw.set_item("rule", e.rule().map(|r| r.name()))?;
    kw.set_item("address", e.address())?;
    kw.set_item("location", e.location.map(|l| l.kind_name()))?;
    kw.set_item("hint", e.hint.map(|h| h.name()))?;
    cls.call((msg,), Some(&kw))
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| match build(py, &e) {
            Ok(exc) => PyErr::from_value(exc),
            // Building the exception failed (the package's module cannot be imported): say so.
            Err(err) => err,
        })
    }
}
