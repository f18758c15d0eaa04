//! The kernel view's Python surface: `Dump.translate`, `read_virt`, `read_virt_into` and
//! `kernel_layout` delegate here.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PySlice};

use crate::dump::Dump as CoreDump;
use crate::error::Result;
use crate::kview::VirtMemory;

/// Reads of at least this many bytes release the GIL (as `read_phys` does).
const DETACH_BYTES: usize = 64 * 1024;
/// `read_virt_into`'s private chunk (as `Dump.read_phys_into`'s).
const INTO_CHUNK: usize = 8 << 20;

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

/// Fill the caller's writable buffer (any item type; C-contiguous, or a strided buffer of bytes)
/// from kernel virtual memory at `vaddr`, as `Dump.read_phys_into` does: the dump is read with the
/// GIL released into a private chunk of at most `INTO_CHUNK` bytes, which is copied into the
/// buffer through the buffer protocol with the GIL held, so the library never writes the caller's
/// memory while other Python threads run. Chunks are written front to back; on an error the
/// buffer holds the chunks read before it.
pub fn read_virt_into(py: Python<'_>, d: &CoreDump, vaddr: u64, buffer: &Bound<'_, PyAny>) -> PyResult<()> {
    let view = PyMemoryView::from(buffer)?;
    if view.getattr("readonly")?.is_truthy()? {
        return Err(PyValueError::new_err("read_virt_into needs a writable buffer"));
    }
    let v = py.detach(|| d.kernel_view()).map_err(err(d))?;
    if !view.getattr("c_contiguous")?.is_truthy()? {
        // A strided buffer of bytes (such as `memoryview(b)[::2]`): read whole, then copied in.
        let target = PyBuffer::<u8>::get(buffer)?;
        let mut tmp = vec![0u8; target.len_bytes()];
        py.detach(|| v.read_virt(vaddr, &mut tmp)).map_err(err(d))?;
        return target.copy_from_slice(py, &tmp);
    }
    // A flat byte view of the caller's buffer (C-contiguous; any item type).
    let flat = view.call_method1("cast", ("B",))?;
    let len: usize = flat.len()?;
    let mut chunk = vec![0u8; len.min(INTO_CHUNK)];
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(INTO_CHUNK);
        let at = vaddr
            .checked_add(done as u64)
            .ok_or_else(|| err(d)(crate::Error::unmapped(vaddr, "the read wraps past the top of the address space")))?;
        let part = &mut chunk[..n];
        if n >= DETACH_BYTES { py.detach(|| v.read_virt(at, part)) } else { v.read_virt(at, part) }.map_err(err(d))?;
        let target =
            if n == len { flat.clone() } else { flat.get_item(PySlice::new(py, done as isize, (done + n) as isize, 1))? };
        PyBuffer::<u8>::get(&target)?.copy_from_slice(py, part)?;
        done += n;
    }
    Ok(())
}

pub fn kernel_layout(py: Python<'_>, d: &CoreDump) -> PyResult<super::records::KernelLayout> {
    let l = py.detach(|| d.kernel_view().map(|v| v.layout())).map_err(err(d))?;
    Ok(l.into())
}
