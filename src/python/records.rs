//! Frozen result classes: `Details` (and its groups, defined in `src/details.rs`), `KernelLayout`,
//! `WriteReport` and `WriteDiagnostic`. Each has its fields as attributes, compares equal by value,
//! pickles (`__reduce__` to the class and its fields), and reads like the dict it replaces:
//! `x["field"]`, `x.get`, `in`, `keys()`, iteration, `len()`, `as_dict()` (a new, JSON-ready dict,
//! groups as dicts), so code written for the dicts keeps working. Keys of fields that are None
//! because they do not apply (the format-specific fields of `Details`, `WriteReport`'s
//! writer-specific ones) are left out of the dict view, as the dicts left them out.

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::details::{DumpDetails, PageCodecDetails, PageCountDetails, PhysBaseDetails, ScanDetails, UtsnameDetails};

/// A field's value in the dict view.
pub(crate) trait DictValue {
    fn dict_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>>;
    /// Whether the field is left out of the dict view when it may be (a None).
    fn is_none(&self) -> bool {
        false
    }
}

macro_rules! plain_dict_value {
    ($($t:ty),*) => {$(
        impl DictValue for $t {
            fn dict_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.clone().into_bound_py_any(py)
            }
        }
    )*};
}
plain_dict_value!(u16, u32, u64, i32, i64, i128, bool, String, std::path::PathBuf);

impl<T: DictValue> DictValue for Option<T> {
    fn dict_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Some(v) => v.dict_value(py),
            None => Ok(py.None().into_bound(py)),
        }
    }
    fn is_none(&self) -> bool {
        self.is_none()
    }
}

impl<T: DictValue> DictValue for Vec<T> {
    fn dict_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let items = self.iter().map(|v| v.dict_value(py)).collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.into_any())
    }
}

impl DictValue for std::collections::BTreeMap<String, u64> {
    fn dict_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.clone().into_bound_py_any(py)
    }
}

/// The methods of a record class. `optional` lists the fields whose key the dict view leaves
/// out when they are None; every field is listed in order, as the constructor takes them.
macro_rules! record {
    ($ty:ident, $name:literal, optional [$($opt:ident),*], { $($field:ident : $fty:ty),* $(,)? }) => {
        impl DictValue for $ty {
            fn dict_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                Ok(self.as_dict(py)?.into_any())
            }
        }

        impl $ty {
            const FIELD_NAMES: &'static [&'static str] = &[$(stringify!($field)),*];
            const OPTIONAL: &'static [&'static str] = &[$(stringify!($opt)),*];

            /// `(name, value)` of the fields the dict view shows.
            fn shown<'py>(&self, py: Python<'py>) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
                let mut out = Vec::with_capacity(Self::FIELD_NAMES.len());
                $(
                    if !(Self::OPTIONAL.contains(&stringify!($field)) && DictValue::is_none(&self.$field)) {
                        out.push((stringify!($field), DictValue::dict_value(&self.$field, py)?));
                    }
                )*
                Ok(out)
            }
        }

        #[pymethods]
        impl $ty {
            #[new]
            #[pyo3(signature = ($($field),*))]
            #[allow(clippy::too_many_arguments)]
            fn py_new($($field: $fty),*) -> Self {
                $ty { $($field),* }
            }

            /// The field names, in order (attributes; the dict view shows those that apply).
            #[classattr]
            #[allow(non_snake_case)]
            fn FIELDS<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
                PyTuple::new(py, Self::FIELD_NAMES)
            }

            /// A new dict of the fields that apply (groups as dicts too): JSON-ready.
            fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let d = PyDict::new(py);
                for (k, v) in self.shown(py)? {
                    d.set_item(k, v)?;
                }
                Ok(d)
            }

            fn __getitem__<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
                self.shown(py)?.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).ok_or_else(|| PyKeyError::new_err(key.to_owned()))
            }

            #[pyo3(signature = (key, default = None))]
            fn get<'py>(&self, py: Python<'py>, key: &str, default: Option<Bound<'py, PyAny>>) -> PyResult<Option<Bound<'py, PyAny>>> {
                Ok(self.shown(py)?.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).or(default))
            }

            fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
                let Ok(key) = key.extract::<String>() else { return Ok(false) };
                Ok(self.shown(py)?.iter().any(|(k, _)| *k == key))
            }

            /// The keys of the dict view.
            fn keys(&self, py: Python<'_>) -> PyResult<Vec<&'static str>> {
                Ok(self.shown(py)?.into_iter().map(|(k, _)| k).collect())
            }

            fn values<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
                Ok(self.shown(py)?.into_iter().map(|(_, v)| v).collect())
            }

            fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
                self.shown(py)
            }

            fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                Ok(PyList::new(py, self.keys(py)?)?.try_iter()?.into_any())
            }

            fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
                Ok(self.shown(py)?.len())
            }

            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
                let py = slf.py();
                let me = slf.get();
                let args: Vec<Bound<'py, PyAny>> = vec![$(me.$field.clone().into_bound_py_any(py)?),*];
                Ok((slf.get_type().into_any(), PyTuple::new(py, args)?))
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                let mut parts = Vec::new();
                $(
                    parts.push(format!("{}={}", stringify!($field), self.$field.clone().into_bound_py_any(py)?.repr()?));
                )*
                Ok(format!("{}({})", $name, parts.join(", ")))
            }
        }
    };
}

pub(crate) use record;

record!(PhysBaseDetails, "PhysBaseDetails", optional [], { key: Option<String>, vmcoreinfo: Option<i128>, header: Option<u64>, agree: Option<bool> });
record!(ScanDetails, "ScanDetails", optional [], {
    bytes: u64, candidates: Vec<u64>, valid: Vec<u64>, unreadable_pages: u64, distinct_texts: u64, byteorder: String,
});
record!(UtsnameDetails, "UtsnameDetails", optional [], {
    sysname: String, nodename: String, release: String, version: String, machine: String, domainname: String,
});
record!(PageCountDetails, "PageCountDetails", optional [], { valid: u64, dumped: u64, excluded: u64, zero: u64 });
record!(PageCodecDetails, "PageCodecDetails", optional [], {
    zlib: u64, lzo: u64, snappy: u64, zstd: u64, raw: u64, invalid: u64,
});
record!(DumpDetails, "Details", optional [
    class_note, phnum, pt_load, pt_note, conflicting_overlap_bytes, tail_bytes, lime_ranges, scan,
    flattened_records, flattened_logical_size, flattened_end_marker, header_version, block_size,
    header_layout, compression, incomplete, dump_level, max_mapnr, nr_cpus, utsname, anomalies,
    pages, page_codecs
], {
    format: String,
    machine: String,
    identity_source: String,
    e_machine: u16,
    address_bits: u32,
    class_note: Option<String>,
    memory_declared_bytes: Option<u64>,
    memory_stored_bytes: Option<u64>,
    phys_base: PhysBaseDetails,
    phnum: Option<u32>,
    pt_load: Option<u64>,
    pt_note: Option<u64>,
    conflicting_overlap_bytes: Option<u64>,
    tail_bytes: Option<u64>,
    lime_ranges: Option<u64>,
    scan: Option<ScanDetails>,
    flattened_records: Option<u64>,
    flattened_logical_size: Option<u64>,
    flattened_end_marker: Option<bool>,
    header_version: Option<i32>,
    block_size: Option<u32>,
    header_layout: Option<String>,
    compression: Option<Vec<String>>,
    incomplete: Option<bool>,
    dump_level: Option<i32>,
    max_mapnr: Option<u64>,
    nr_cpus: Option<i32>,
    utsname: Option<UtsnameDetails>,
    anomalies: Option<Vec<String>>,
    pages: Option<PageCountDetails>,
    page_codecs: Option<PageCodecDetails>,
});

/// The kernel's address-space layout as the translation sees it (``Dump.kernel_layout()``).
#[pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLayout {
    /// ``"x86_64"``, ``"aarch64"``, ``"i386"``, ...
    pub arch: String,
    /// Page-table levels.
    pub levels: u32,
    pub page_size: u64,
    pub va_bits: u32,
    /// Physical address of the top page table.
    pub root: u64,
    /// Start of the direct map (on x86_64 discovered from the page tables), or None.
    pub page_offset: Option<u64>,
    /// Why ``page_offset`` is None.
    pub page_offset_error: Option<String>,
    /// i386: whether PAE is on; None elsewhere.
    pub pae: Option<bool>,
}

record!(KernelLayout, "KernelLayout", optional [], {
    arch: String, levels: u32, page_size: u64, va_bits: u32, root: u64, page_offset: Option<u64>,
    page_offset_error: Option<String>, pae: Option<bool>,
});

impl From<crate::kview::Layout> for KernelLayout {
    fn from(l: crate::kview::Layout) -> Self {
        KernelLayout {
            arch: l.arch.to_owned(),
            levels: l.levels,
            page_size: l.page_size,
            va_bits: l.va_bits,
            root: l.root,
            page_offset: l.page_offset,
            page_offset_error: l.page_offset_error,
            pae: l.pae,
        }
    }
}

/// Something a writer repaired or could not carry over.
#[pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteDiagnostic {
    /// Stable name: ``vmcoreinfo-from-scan``, ``no-vmcoreinfo``, ``phys-base-corrected``,
    /// ``phys-base-from-header``, ``partial-pages``.
    pub code: String,
    pub message: String,
}

record!(WriteDiagnostic, "WriteDiagnostic", optional [], { code: String, message: String });

/// What ``Dump.write_elf`` / ``Dump.write_kdump`` did.
#[pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// ``"elf"`` or ``"kdump"``.
    pub format: String,
    /// The output path (a ``pathlib.Path``).
    pub path: std::path::PathBuf,
    /// Where the output's VMCOREINFO came from: ``"note"``, ``"scan"`` or ``"absent"``.
    pub vmcoreinfo: String,
    /// The note's physical address when a scan found it.
    pub vmcoreinfo_paddr: Option<u64>,
    pub diagnostics: Vec<WriteDiagnostic>,
    /// Physical ranges (ELF: PT_LOAD segments) written.
    pub segments: u64,
    /// Pages written, zero pages included.
    pub pages: u64,
    pub zero_pages: u64,
    pub page_size: u64,
    /// Bytes of guest memory covered.
    pub memory_bytes: u64,
    /// Size of the output file.
    pub file_bytes: u64,
    /// ELF: whether zero pages were left out (None for kdump).
    pub exclude_zero: Option<bool>,
    /// kdump: the codec (None for ELF).
    pub compression: Option<String>,
    /// kdump: whether the flattened format was written (None for ELF).
    pub flattened: Option<bool>,
}

record!(WriteReport, "WriteReport", optional [exclude_zero, compression, flattened], {
    format: String, path: std::path::PathBuf, vmcoreinfo: String, vmcoreinfo_paddr: Option<u64>,
    diagnostics: Vec<WriteDiagnostic>, segments: u64, pages: u64, zero_pages: u64, page_size: u64,
    memory_bytes: u64, file_bytes: u64, exclude_zero: Option<bool>, compression: Option<String>,
    flattened: Option<bool>,
});

impl WriteReport {
    pub(crate) fn new(format: &str, path: &std::path::Path, r: &crate::write::WriteReport) -> Self {
        use crate::write::VmcoreinfoSource;
        WriteReport {
            format: format.to_owned(),
            path: path.to_path_buf(),
            vmcoreinfo: r.vmcoreinfo.name().to_owned(),
            vmcoreinfo_paddr: if let VmcoreinfoSource::Scan { paddr } = r.vmcoreinfo { Some(paddr) } else { None },
            diagnostics: r
                .diagnostics
                .iter()
                .map(|x| WriteDiagnostic { code: x.code.to_owned(), message: x.message.clone() })
                .collect(),
            segments: r.segments,
            pages: r.pages,
            zero_pages: r.zero_pages,
            page_size: r.page_size,
            memory_bytes: r.memory_bytes,
            file_bytes: r.file_bytes,
            exclude_zero: None,
            compression: None,
            flattened: None,
        }
    }
}
