//! A read-only Python buffer over shared dump bytes: `memoryview`s without copying.

use std::os::raw::c_int;
use std::sync::Arc;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

/// Bytes shared with the Rust core (an `Arc` plus a range); exposes the buffer protocol.
#[pyclass(frozen, module = "vmcoreinfo._native", name = "_SharedBytes")]
pub struct SharedBytes {
    data: Arc<[u8]>,
    start: usize,
    end: usize,
}

impl SharedBytes {
    pub fn new(data: Arc<[u8]>, start: usize, end: usize) -> Self {
        debug_assert!(start <= end && end <= data.len());
        SharedBytes { data, start, end }
    }
    pub fn memoryview<'py>(py: Python<'py>, data: Arc<[u8]>, start: usize, end: usize) -> PyResult<Bound<'py, PyAny>> {
        let obj = Bound::new(py, SharedBytes::new(data, start, end))?;
        // SAFETY: `obj` is a live object that implements the buffer protocol below.
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMemoryView_FromObject(obj.as_ptr())) }
    }
}

#[pymethods]
impl SharedBytes {
    /// # Safety
    /// Called by CPython with a valid `view`. The bytes live in an immutable `Arc<[u8]>` owned by
    /// this frozen object, which the view keeps alive (`view.obj`), so the pointer stays valid.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("dump bytes are read-only"));
        }
        let me = slf.get();
        let bytes = &me.data[me.start..me.end];
        // SAFETY: see above; PyBuffer_FillInfo takes its own reference to `slf`.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(view, slf.as_ptr(), bytes.as_ptr() as *mut _, bytes.len() as ffi::Py_ssize_t, 1, flags)
        };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.end - self.start
    }
}
