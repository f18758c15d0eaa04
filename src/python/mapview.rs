//! `Dump.view_phys`: a read-only Python buffer over a [`PhysView`] (the file's mapping, kept
//! alive by the view, or an owned copy).

use std::os::raw::c_int;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::mmap::PhysView;

/// Guest-physical bytes exposed through the buffer protocol (see ``Dump.view_phys``).
#[pyclass(frozen, module = "vmcoreinfo._native", name = "_PhysView")]
pub struct PyPhysView {
    view: PhysView,
}

impl PyPhysView {
    pub fn memoryview(py: Python<'_>, view: PhysView) -> PyResult<Bound<'_, PyAny>> {
        let obj = Bound::new(py, PyPhysView { view })?;
        // SAFETY: `obj` is a live object that implements the buffer protocol below.
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMemoryView_FromObject(obj.as_ptr())) }
    }
}

#[pymethods]
impl PyPhysView {
    /// # Safety
    /// Called by CPython with a valid `view`. The bytes belong to the `PhysView` owned by this
    /// frozen object (a mapping it holds an `Arc` to, or its own buffer), which the memoryview
    /// keeps alive through `view.obj`, so the pointer stays valid. The buffer is read-only.
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("dump bytes are read-only"));
        }
        let v = &slf.get().view;
        // SAFETY: see above; PyBuffer_FillInfo takes its own reference to `slf`.
        let rc =
            unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), v.as_ptr() as *mut _, v.len() as ffi::Py_ssize_t, 1, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.view.len()
    }

    /// Whether the bytes are the file's mapping (no copy was made).
    #[getter]
    fn mapped(&self) -> bool {
        self.view.is_mapped()
    }
}
