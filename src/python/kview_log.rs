//! The kernel log and kernel symbols in Python: `Dump.kernel_log`, `Dump.dmesg` and
//! `Dump.symbols` delegate here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;

use crate::dump::Dump as CoreDump;
use crate::kview::{kallsyms, printk};

fn err(d: &CoreDump) -> impl Fn(crate::Error) -> PyErr + '_ {
    move |e| e.in_file(d.path()).into()
}

/// One record of the kernel log.
#[pyclass(frozen, eq, from_py_object, module = "vmcoreinfo._native")]
#[derive(PartialEq, Eq, Clone, Debug)]
pub struct LogRecord {
    /// The kernel's sequence number (the legacy buffer of 3.5–5.9 does not store it: there, the
    /// position from the oldest record kept).
    #[pyo3(get)]
    seq: u64,
    /// Time of the record (``local_clock()``), nanoseconds since boot.
    #[pyo3(get)]
    timestamp_ns: u64,
    /// Log level 0–7 (``KERN_EMERG``..``KERN_DEBUG``), or None when the layout is unknown.
    #[pyo3(get)]
    level: Option<u8>,
    /// syslog facility (0 kernel, 1 user, ...), or None when the layout is unknown.
    #[pyo3(get)]
    facility: Option<u8>,
    /// Task id, or CPU number with bit 31 set (``0x80000000 | cpu``); None when not recorded.
    #[pyo3(get)]
    caller_id: Option<u32>,
    /// The message (UTF-8; invalid bytes replaced by U+FFFD).
    #[pyo3(get)]
    text: String,
}

#[pymethods]
impl LogRecord {
    /// A record from its fields (what unpickling calls).
    #[new]
    fn py_new(
        seq: u64,
        timestamp_ns: u64,
        level: Option<u8>,
        facility: Option<u8>,
        caller_id: Option<u32>,
        text: String,
    ) -> Self {
        LogRecord { seq, timestamp_ns, level, facility, caller_id, text }
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, pyo3::types::PyTuple>)> {
        let r = slf.get();
        let args = (r.seq, r.timestamp_ns, r.level, r.facility, r.caller_id, r.text.as_str()).into_pyobject(slf.py())?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __repr__(&self) -> String {
        format!(
            "LogRecord(seq={}, timestamp_ns={}, level={}, facility={}, caller_id={}, text={:?})",
            self.seq,
            self.timestamp_ns,
            self.level.map_or("None".into(), |v| v.to_string()),
            self.facility.map_or("None".into(), |v| v.to_string()),
            self.caller_id.map_or("None".into(), |v| format!("{v:#x}")),
            self.text
        )
    }
}

impl From<&printk::LogRecord> for LogRecord {
    fn from(r: &printk::LogRecord) -> LogRecord {
        LogRecord {
            seq: r.seq,
            timestamp_ns: r.timestamp_ns,
            level: r.level,
            facility: r.facility,
            caller_id: r.caller_id,
            text: String::from_utf8_lossy(&r.text).into_owned(),
        }
    }
}

impl super::records::DictValue for LogRecord {
    fn dict_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = pyo3::types::PyDict::new(py);
        d.set_item("seq", self.seq)?;
        d.set_item("timestamp_ns", self.timestamp_ns)?;
        d.set_item("level", self.level)?;
        d.set_item("facility", self.facility)?;
        d.set_item("caller_id", self.caller_id)?;
        d.set_item("text", &self.text)?;
        Ok(d.into_any())
    }
}

pub fn kernel_log(py: Python<'_>, d: &CoreDump) -> PyResult<Vec<LogRecord>> {
    let recs = py.detach(|| d.kernel_log(&printk::LogLimits::default())).map_err(err(d))?;
    Ok(recs
        .into_iter()
        .map(|r| LogRecord {
            seq: r.seq,
            timestamp_ns: r.timestamp_ns,
            level: r.level,
            facility: r.facility,
            caller_id: r.caller_id,
            text: String::from_utf8_lossy(&r.text).into_owned(),
        })
        .collect())
}

pub fn dmesg(py: Python<'_>, d: &CoreDump, caller_id: bool) -> PyResult<String> {
    py.detach(|| {
        let limits = printk::LogLimits::default();
        printk::format_dmesg(&d.kernel_log(&limits)?, caller_id, &limits)
    })
    .map_err(err(d))
}

/// The kernel's symbol table (kallsyms), decoded from the tables VMCOREINFO names (Linux 6.0+).
/// ``len()``, iteration of ``(name, address, type)`` in table order, ``address(name)``,
/// ``lookup(address)``.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct KernelSymbols {
    inner: Arc<kallsyms::KernelSymbols>,
    /// The dump, for naming module addresses (not kept open by this object).
    dump: std::sync::Weak<CoreDump>,
}

fn name_str(k: &kallsyms::KernelSymbols, i: usize) -> String {
    String::from_utf8_lossy(k.name(i)).into_owned()
}

#[pymethods]
impl KernelSymbols {
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __iter__(&self) -> SymbolIter {
        SymbolIter { inner: self.inner.clone(), pos: AtomicUsize::new(0) }
    }

    fn __contains__(&self, py: Python<'_>, name: &str) -> bool {
        py.detach(|| self.inner.index_of(name.as_bytes()).is_some())
    }

    /// Address of the symbol ``name`` (the first in table order when several share it);
    /// ``KeyError`` when there is none.
    fn address(&self, py: Python<'_>, name: &str) -> PyResult<u64> {
        py.detach(|| self.inner.address(name.as_bytes())).ok_or_else(|| PyKeyError::new_err(name.to_owned()))
    }

    /// ``(name, offset)`` of the symbol at or nearest below ``address``; ``KeyError`` when no
    /// symbol lies at or below it.
    fn lookup(&self, py: Python<'_>, address: u64) -> PyResult<(String, u64)> {
        // An address outside the kernel image inside a module is named by the module's symbols.
        let in_module = py.detach(|| {
            let d = self.dump.upgrade()?;
            if crate::dump::vmlinux_symbol(&self.inner, address).is_some() {
                return None;
            }
            crate::dump::module_symbol(&d.module_symbols().ok()?, address)
        });
        if let Some(s) = in_module {
            return Ok((s.name, s.offset));
        }
        let (i, off) = py.detach(|| self.inner.lookup(address)).ok_or_else(|| PyKeyError::new_err(address))?;
        Ok((name_str(&self.inner, i), off))
    }

    /// How ``kallsyms_offsets`` encodes addresses: ``"base-relative"``, ``"absolute-percpu"``,
    /// ``"place-relative"`` or ``"absolute"`` (found by reproducing ``SYMBOL(_stext)``).
    #[getter]
    fn encoding(&self) -> &'static str {
        self.inner.mode().name()
    }

    /// How the tables were found: ``"vmcoreinfo"`` (VMCOREINFO names them, Linux 6.0+) or
    /// ``"scan"`` (found in the kernel image by their structure, checked against VMCOREINFO's
    /// symbols).
    #[getter]
    fn source(&self) -> &'static str {
        self.inner.source().name()
    }

    fn __repr__(&self) -> String {
        format!("<KernelSymbols: {} symbols, {}>", self.inner.len(), self.inner.mode().name())
    }
}

/// Iterator over ``(name, address, type)``.
#[pyclass(frozen, module = "vmcoreinfo._native", name = "_SymbolIter")]
pub struct SymbolIter {
    inner: Arc<kallsyms::KernelSymbols>,
    pos: AtomicUsize,
}

#[pymethods]
impl SymbolIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self) -> Option<(String, u64, char)> {
        let i = self.pos.fetch_add(1, Ordering::Relaxed);
        if i >= self.inner.len() {
            self.pos.store(self.inner.len(), Ordering::Relaxed);
            return None;
        }
        Some((name_str(&self.inner, i), self.inner.address_of(i), char::from(self.inner.type_of(i))))
    }
}

/// `Dump.symbols`: decoded once, then cached in `cache`.
pub fn symbols(py: Python<'_>, d: &Arc<CoreDump>, cache: &OnceLock<Py<KernelSymbols>>) -> PyResult<Py<KernelSymbols>> {
    if let Some(s) = cache.get() {
        return Ok(s.clone_ref(py));
    }
    let k = py.detach(|| d.symbols()).map_err(err(d))?;
    let s = Py::new(py, KernelSymbols { inner: k, dump: Arc::downgrade(d) })?;
    Ok(cache.get_or_init(|| s).clone_ref(py))
}

/// `Dump.kernel_symbols(source=)`: decoded afresh from one source (`"auto"`, `"vmcoreinfo"`,
/// `"scan"`), not cached.
pub fn kernel_symbols(py: Python<'_>, d: &Arc<CoreDump>, source: &str) -> PyResult<KernelSymbols> {
    let src = match source {
        "auto" => None,
        s => Some(kallsyms::SymbolSource::from_name(s).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("source must be 'auto', 'vmcoreinfo' or 'scan', not {s:?}"))
        })?),
    };
    let k = py.detach(|| d.kernel_symbols_from(&kallsyms::SymLimits::default(), src)).map_err(err(d))?;
    Ok(KernelSymbols { inner: Arc::new(k), dump: Arc::downgrade(d) })
}
