//! `FwCfgEntry`, `FwCfgDevice` and `check_guest_note`: QEMU's fw_cfg `etc/vmcoreinfo` file.

use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::fwcfg as core;

/// The 16-byte little-endian fw_cfg file ``etc/vmcoreinfo``:
/// ``{u16 host_format; u16 guest_format; u32 size; u64 paddr}``.
#[pyclass(frozen, eq, hash, module = "vmcoreinfo._native")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FwCfgEntry(core::FwCfgEntry);

impl FwCfgEntry {
    pub fn core(&self) -> core::FwCfgEntry {
        self.0
    }
    fn from_core(e: core::FwCfgEntry) -> Self {
        FwCfgEntry(e)
    }
}

#[pymethods]
impl FwCfgEntry {
    /// Format NONE (0): no note / disabled.
    #[classattr]
    const FORMAT_NONE: u16 = core::FORMAT_NONE;
    /// Format ELF (1): the only format QEMU processes.
    #[classattr]
    const FORMAT_ELF: u16 = core::FORMAT_ELF;

    #[getter]
    fn host_format(&self) -> u16 {
        self.0.host_format
    }
    #[getter]
    fn guest_format(&self) -> u16 {
        self.0.guest_format
    }
    /// Size of the guest's whole note (header included).
    #[getter]
    fn size(&self) -> u32 {
        self.0.size
    }
    /// Guest-physical address of the guest's whole note (header included).
    #[getter]
    fn paddr(&self) -> u64 {
        self.0.paddr
    }

    #[new]
    #[pyo3(signature = (*, host_format = 0, guest_format = 1, size = 0, paddr = 0))]
    fn new(host_format: u16, guest_format: u16, size: u32, paddr: u64) -> Self {
        FwCfgEntry(core::FwCfgEntry { host_format, guest_format, size, paddr })
    }

    /// Decode the 16 bytes as the guest or QEMU wrote them (exactly 16 bytes).
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(Self::from_core(core::FwCfgEntry::from_bytes(data)?))
    }

    /// Encode as the 16 little-endian bytes of the fw_cfg file.
    #[allow(clippy::wrong_self_convention)] // a Python method: pyo3 passes `&self`
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.core().to_bytes())
    }

    fn __repr__(&self) -> String {
        format!(
            "FwCfgEntry(host_format={}, guest_format={}, size={}, paddr={:#x})",
            self.0.host_format, self.0.guest_format, self.0.size, self.0.paddr
        )
    }
}

/// A model of QEMU's vmcoreinfo device: which guest writes it takes, and what it keeps.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct FwCfgDevice {
    inner: Mutex<core::FwCfgDevice>,
}

#[pymethods]
impl FwCfgDevice {
    #[new]
    fn new() -> Self {
        FwCfgDevice { inner: Mutex::new(core::FwCfgDevice::new()) }
    }

    /// Device reset: everything cleared, host_format = ELF.
    fn reset(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).reset();
    }

    /// A guest write of ``data`` at ``offset``. Returns what the device did: ``"ignored"``
    /// (empty, or past the 16 bytes: nothing stored), ``"disabled"`` (the bytes are stored but
    /// the note is off: a write that is not a full 16 bytes at offset 0, or guest_format NONE),
    /// ``"accepted"`` (a full write with format ELF) or ``"accepted-unsupported-format"`` (a full
    /// write with another format: kept, but QEMU's dump refuses the note).
    fn write(&self, offset: u64, data: &[u8]) -> &'static str {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).write(offset, data).name()
    }

    /// The current contents.
    #[getter]
    fn entry(&self) -> FwCfgEntry {
        FwCfgEntry::from_core(self.inner.lock().unwrap_or_else(|p| p.into_inner()).entry())
    }

    /// Whether QEMU would take a guest note into a dump now.
    #[getter]
    fn has_vmcoreinfo(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).has_vmcoreinfo()
    }
}

/// Check a guest note (the bytes at ``entry.paddr``) against QEMU's intake rules, reading the
/// note header in ``byteorder``. Raises ``NoteRuleError`` naming the rule that failed; returns
/// ``(namesz, descsz)`` otherwise.
#[pyfunction]
#[pyo3(signature = (entry, note, byteorder = "little", max_note_size = core::MAX_GUEST_NOTE_SIZE))]
pub fn check_guest_note(entry: &FwCfgEntry, note: &[u8], byteorder: &str, max_note_size: u32) -> PyResult<(u32, u32)> {
    let big = match byteorder {
        "little" => false,
        "big" => true,
        _ => return Err(PyValueError::new_err("byteorder must be 'little' or 'big'")),
    };
    let s = core::check_guest_note(entry.0.size, entry.0.guest_format, note, big, max_note_size).map_err(Error::in_text)?;
    Ok((s.namesz, s.descsz))
}
