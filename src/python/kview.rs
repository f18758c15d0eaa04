//! The kernel view's Python surface: `Dump.translate`, `read_virt`, `read_virt_into` and
//! `kernel_layout` delegate here.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::dump::Dump as CoreDump;
use crate::error::Result;
use crate::kview::VirtMemory;

/// Reads of at least this many bytes release the GIL (as `read_phys` does).
const DETACH_BYTES: usize = 64 * 1024;

fn err(d: &CoreDump) -> impl Fn(crate::Error) -> PyErr + '_ {
    move |e| e.in_file(d.path()).into()
}

pub fn translate(py: Python<'_>, d: &CoreDump, vaddr: u64) -> PyResult<u64> {
    // A page-cache hit reads nothing: answer it without releasing the GIL.
    if let Some(p) = d.kernel_view_if_built().and_then(|v| v.translate_cached(vaddr)) {
        return Ok(p);
    }
    py.detach(|| d.kernel_view()?.translate(vaddr)).map_err(err(d))
}

pub fn read_virt<'py>(py: Python<'py>, d: &CoreDump, vaddr: u64, size: usize) -> PyResult<Bound<'py, PyBytes>> {
    let v = py.detach(|| d.kernel_view()).map_err(err(d))?;
    PyBytes::new_with(py, size, |buf| {
        let r: Result<()> = if size >= DETACH_BYTES { py.detach(|| v.read_virt(vaddr, buf)) } else { v.read_virt(vaddr, buf) };
        r.map_err(err(d))
    })
}

pub fn read_virt_into(py: Python<'_>, d: &CoreDump, vaddr: u64, buffer: pyo3::buffer::PyBuffer<u8>) -> PyResult<()> {
    if buffer.readonly() {
        return Err(PyValueError::new_err("read_virt_into needs a writable buffer"));
    }
    let v = py.detach(|| d.kernel_view()).map_err(err(d))?;
    let len = buffer.len_bytes();
    if len == 0 {
        return Ok(());
    }
    if !buffer.is_c_contiguous() {
        let mut tmp = vec![0u8; len];
        py.detach(|| v.read_virt(vaddr, &mut tmp)).map_err(err(d))?;
        return buffer.copy_from_slice(py, &tmp);
    }
    let ptr = buffer.buf_ptr() as usize;
    py.detach(|| {
        // SAFETY: as in `Dump.read_phys_into`: the buffer is writable and C-contiguous with `len`
        // bytes at `ptr`, and `buffer` (held until we return) keeps the exporter's memory alive.
        let out = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, len) };
        v.read_virt(vaddr, out)
    })
    .map_err(err(d))
}

pub fn kernel_layout(py: Python<'_>, d: &CoreDump) -> PyResult<super::records::KernelLayout> {
    let l = py.detach(|| d.kernel_view().map(|v| v.layout())).map_err(err(d))?;
    Ok(l.into())
}
