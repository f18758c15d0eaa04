//! The one mapping from core errors to Python exceptions (defined in `vmcoreinfo._errors`).

use pyo3::exceptions::PyOSError;
use pyo3::import_exception;
use pyo3::PyErr;

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

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        let path = e.path.as_deref().map(str::to_owned);
        let rule = e.rule().map(|r| r.name());
        let location = e.location.map(|l| l.kind_name());
        let args = (msg.clone(), path.clone(), e.offset(), rule, e.address(), location);
        match e.kind {
            ErrorKind::Format => FormatError::new_err(args),
            ErrorKind::Truncated => TruncatedError::new_err(args),
            ErrorKind::Bitness(_) => BitnessError::new_err(args),
            ErrorKind::NoteRule(_) => NoteRuleError::new_err(args),
            ErrorKind::Decompress => DecompressError::new_err(args),
            ErrorKind::Unsupported => UnsupportedFormatError::new_err(args),
            ErrorKind::Limit => LimitError::new_err(args),
            ErrorKind::NoVmcoreinfo => NoVmcoreinfoError::new_err(args),
            ErrorKind::Absent => AbsentMemoryError::new_err(args),
            ErrorKind::Closed => ClosedError::new_err(args),
            ErrorKind::Unmapped => UnmappedError::new_err(args),
            // OSError(errno, strerror, filename) becomes the matching built-in subclass
            // (FileNotFoundError, PermissionError, ...).
            ErrorKind::Io { errno: Some(errno) } => PyOSError::new_err((errno, e.message, path)),
            ErrorKind::Io { errno: None } => PyOSError::new_err(msg),
        }
    }
}
