//! `VmcoreInfo`: the parsed VMCOREINFO text, owning an `Arc` of the bytes plus a range.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::dump::TextBlob;
use crate::error::{Error, Result};
use crate::text::{Index, KeySet, View};

/// Something odd about the text that did not stop it from being read.
#[pyclass(frozen, eq, module = "vmcoreinfo._native")]
#[derive(PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable kind name, e.g. ``"duplicate-key"``.
    #[pyo3(get)]
    kind: Cow<'static, str>,
    /// Byte offset (in the file when the text came from a file, else in the text).
    #[pyo3(get)]
    offset: u64,
    /// 1-based line number in the text.
    #[pyo3(get)]
    line: u32,
    #[pyo3(get)]
    message: String,
}

#[pymethods]
impl Diagnostic {
    /// A diagnostic from its fields (what unpickling calls).
    #[new]
    fn py_new(kind: String, offset: u64, line: u32, message: String) -> Self {
        Diagnostic { kind: Cow::Owned(kind), offset, line, message }
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let d = slf.get();
        let args = (&*d.kind, d.offset, d.line, d.message.as_str()).into_pyobject(slf.py())?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __repr__(&self) -> String {
        format!("Diagnostic(kind={:?}, offset={}, line={}, message={:?})", self.kind, self.offset, self.line, self.message)
    }
    fn __str__(&self) -> String {
        format!("line {} (offset {}): {} [{}]", self.line, self.offset, self.message, self.kind)
    }
}

/// The VMCOREINFO text with typed accessors; also a read-only ``Mapping[str, str]``.
#[pyclass(frozen, mapping, module = "vmcoreinfo._native")]
pub struct VmcoreInfo {
    blob: TextBlob,
    /// The whole text's index, built on first need (the Mapping side, diagnostics, other keys).
    index: OnceLock<Index>,
    /// The identity keys only ([`crate::text::IDENTITY_KEYS`]): what `osrelease`, `build_id`, `page_size`,
    /// `kernel_offset` and `phys_base` read while the whole index is not built. Their answers are
    /// the same either way (`Index::build_only`); identifying a dump then costs five substring
    /// searches instead of indexing ~100 lines.
    identity: OnceLock<Index>,
    path: Option<Arc<str>>,
    /// Diagnostics about where the text came from (e.g. several scan candidates).
    extra: Vec<(Cow<'static, str>, u64, String)>,
}

impl VmcoreInfo {
    pub fn new(blob: TextBlob, path: Option<Arc<str>>) -> Self {
        VmcoreInfo { blob, index: OnceLock::new(), identity: OnceLock::new(), path, extra: Vec::new() }
    }

    /// Add a diagnostic about the text's origin (`offset` absolute, line 0), listed after the
    /// text's own.
    pub fn with_diagnostic(mut self, kind: &'static str, offset: u64, message: String) -> Self {
        self.extra.push((Cow::Borrowed(kind), offset, message));
        self
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| Index::build(self.blob.bytes()))
    }

    fn view(&self) -> View<'_> {
        self.index().view(self.blob.bytes())
    }

    /// A view that answers the [`crate::text::IDENTITY_KEYS`] (and nothing else, unless the whole index is built).
    fn identity_view(&self) -> View<'_> {
        let b = self.blob.bytes();
        match self.index.get() {
            Some(i) => i.view(b),
            None => self.identity.get_or_init(|| Index::build_only(b, KeySet::identity())).view(b),
        }
    }

    fn base(&self) -> u64 {
        self.blob.file_offset.unwrap_or(0)
    }

    /// Attach the file and place a text offset: in the file when the text came from the file,
    /// in guest memory when it was read from there, else it stays a text offset.
    fn err(&self, e: Error) -> PyErr {
        let e = self.blob.place(e);
        match &self.path {
            Some(p) => e.in_file(p).into(),
            None => e.into(),
        }
    }

    fn typed<T>(&self, r: Result<Option<T>>) -> PyResult<Option<T>> {
        r.map_err(|e| self.err(e))
    }
}

/// A key as Python sees it: UTF-8, or ``surrogateescape``-decoded when it is not.
fn key_str<'py>(py: Python<'py>, key: &[u8]) -> PyResult<Bound<'py, PyString>> {
    match std::str::from_utf8(key) {
        Ok(k) => Ok(PyString::new(py, k)),
        Err(_) => PyBytes::new(py, key)
            .call_method1("decode", ("utf-8", "surrogateescape"))?
            .cast_into::<PyString>()
            .map_err(Into::into),
    }
}

/// The text bytes of a Python key (inverse of [`key_str`]).
fn key_bytes<'a>(k: &'a Bound<'_, PyString>) -> Option<Cow<'a, [u8]>> {
    match k.to_str() {
        Ok(s) => Some(Cow::Borrowed(s.as_bytes())),
        Err(_) => k.call_method1("encode", ("utf-8", "surrogateescape")).ok()?.extract::<Vec<u8>>().ok().map(Cow::Owned),
    }
}

#[pymethods]
impl VmcoreInfo {
    /// The exact note text (desc bytes, trailing NUL padding included as written).
    #[getter]
    fn raw<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.blob.bytes())
    }

    /// File offset of the text in the dump, or None for a text given to ``parse`` (and for a
    /// text read from compressed kdump pages).
    #[getter]
    fn offset_in_file(&self) -> Option<u64> {
        self.blob.file_offset
    }

    /// Physical address of the note header when the text was read from guest memory (a scan,
    /// ``read_guest_note``), else None.
    #[getter]
    fn note_paddr(&self) -> Option<u64> {
        self.blob.phys_addr
    }

    /// ``OSRELEASE``: the kernel release.
    #[getter]
    fn osrelease(&self) -> Option<Cow<'_, str>> {
        self.identity_view().osrelease()
    }

    /// ``BUILD-ID`` as written (40 hex digits on kernels that have it).
    #[getter]
    fn build_id(&self) -> Option<Cow<'_, str>> {
        self.identity_view().build_id()
    }

    /// ``PAGESIZE`` (decimal).
    #[getter]
    fn page_size(&self) -> PyResult<Option<u64>> {
        self.typed(self.identity_view().page_size())
    }

    /// ``KERNELOFFSET`` (hex): the KASLR offset.
    #[getter]
    fn kernel_offset(&self) -> PyResult<Option<u64>> {
        self.typed(self.identity_view().kernel_offset())
    }

    /// ``NUMBER(phys_base)`` read as the kernel writes it: signed decimal (QEMU reads it as hex,
    /// wrongly). ``0`` and absent (None) are different.
    #[getter]
    fn phys_base(&self) -> PyResult<Option<i64>> {
        self.typed(self.identity_view().phys_base())
    }

    /// ``CRASHTIME`` (decimal seconds); present only after a real crash.
    #[getter]
    fn crashtime(&self) -> PyResult<Option<i64>> {
        self.typed(self.view().crashtime())
    }

    /// ``SYMBOL(name)`` (hex address).
    fn symbol(&self, name: &str) -> PyResult<Option<u64>> {
        self.typed(self.view().symbol(name))
    }

    /// ``SIZE(name)`` (decimal).
    fn size(&self, name: &str) -> PyResult<Option<u64>> {
        self.typed(self.view().size(name))
    }

    /// ``OFFSET(struct.member)`` (decimal).
    fn offset(&self, r#struct: &str, member: &str) -> PyResult<Option<u64>> {
        self.typed(self.view().offset(r#struct, member))
    }

    /// ``LENGTH(name)`` (decimal).
    fn length(&self, name: &str) -> PyResult<Option<u64>> {
        self.typed(self.view().length(name))
    }

    /// ``NUMBER(name)``: signed decimal, or 0x-hex as the kernel writes some of them.
    fn number(&self, name: &str) -> PyResult<Option<i128>> {
        self.typed(self.view().number(name))
    }

    /// ``CONFIG_name`` (``y`` is True); ``name`` without the ``CONFIG_`` prefix.
    fn config(&self, name: &str) -> PyResult<Option<bool>> {
        self.typed(self.view().config(name))
    }

    /// What was odd about the text (duplicates, long lines, non-UTF-8, ...).
    #[getter]
    fn diagnostics(&self) -> Vec<Diagnostic> {
        let base = self.base();
        self.index()
            .diagnostics()
            .iter()
            .map(|d| Diagnostic {
                kind: Cow::Borrowed(d.kind.name()),
                offset: base + u64::from(d.offset),
                line: d.line,
                message: d.message.clone(),
            })
            .chain(self.extra.iter().map(|(kind, offset, message)| Diagnostic {
                kind: kind.clone(),
                offset: *offset,
                line: 0,
                message: message.clone(),
            }))
            .collect()
    }

    /// Whether the text lacked its final newline.
    #[getter]
    fn missing_final_newline(&self) -> bool {
        self.index().missing_final_newline()
    }

    fn __len__(&self) -> usize {
        self.index().len()
    }

    fn __getitem__(&self, key: &Bound<'_, PyAny>) -> PyResult<String> {
        let k = key.cast::<PyString>().map_err(|_| PyTypeError::new_err("VmcoreInfo keys are str"))?;
        match key_bytes(k)
            .and_then(|b| self.view().item_bytes(&b).map(|i| i.value).map(|v| String::from_utf8_lossy(v).into_owned()))
        {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err(k.clone().unbind())),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        key.cast::<PyString>().ok().and_then(key_bytes).is_some_and(|b| self.view().item_bytes(&b).map(|i| i.value).is_some())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.key_list(py)?.try_iter().map(Bound::into_any)
    }

    /// Keys in text order (the first occurrence of a repeated key), as a ``KeysView`` (as for
    /// any ``Mapping``). A key that is not UTF-8 is decoded with ``surrogateescape``, so it
    /// round-trips through ``vi[key]``.
    fn keys<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        mapping_view(slf, "_KeysView")
    }

    /// Values in text order, as a ``ValuesView``; bytes that are not UTF-8 become U+FFFD
    /// (``raw`` has the exact text).
    fn values<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        mapping_view(slf, "_ValuesView")
    }

    /// ``(key, value)`` pairs in text order, as an ``ItemsView``.
    fn items<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        mapping_view(slf, "_ItemsView")
    }

    /// The keys as a list (what the views iterate).
    fn _key_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.key_list(py)
    }

    /// The values as a list (what ``values()`` iterates).
    fn _value_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.view().items().map(|i| String::from_utf8_lossy(i.value).into_owned()))
    }

    /// The ``(key, value)`` pairs as a list (what ``items()`` iterates).
    fn _item_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let v: Vec<Bound<'py, PyTuple>> = self
            .view()
            .items()
            .map(|i| {
                PyTuple::new(
                    py,
                    [key_str(py, i.key)?.into_any(), PyString::new(py, &String::from_utf8_lossy(i.value)).into_any()],
                )
            })
            .collect::<PyResult<_>>()?;
        PyList::new(py, v)
    }

    #[pyo3(signature = (key, default=None))]
    fn get<'py>(&self, key: &Bound<'py, PyAny>, default: Option<Bound<'py, PyAny>>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if let Some(b) = key.cast::<PyString>().ok().and_then(key_bytes) {
            if let Some(v) = self.view().item_bytes(&b).map(|i| i.value) {
                return Ok(Some(PyString::new(key.py(), &String::from_utf8_lossy(v)).into_any()));
            }
        }
        Ok(default)
    }

    /// Equal to another ``VmcoreInfo`` with the same text bytes, and, as for any ``Mapping``, to a
    /// mapping with the same items (``vi == dict(vi)``); ``NotImplemented`` for anything else.
    fn __eq__<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if let Ok(o) = other.cast::<VmcoreInfo>() {
            return PyBool::new(py, o.get().blob.bytes() == slf.get().blob.bytes()).into_bound_py_any(py);
        }
        let mapping = py.import("collections.abc")?.getattr("Mapping")?;
        if !other.is_instance(&mapping)? {
            return Ok(py.NotImplemented().into_bound(py));
        }
        let mine = PyDict::from_sequence(&slf.get()._item_list(py)?.into_any())?;
        let theirs = PyDict::from_sequence(
            &other.call_method0("items")?.try_iter()?.collect::<PyResult<Vec<_>>>()?.into_pyobject(py)?.into_any(),
        )?;
        PyBool::new(py, mine.eq(theirs)?).into_bound_py_any(py)
    }

    /// Pickles as the text and where it came from (file, offsets, addresses, diagnostics).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let v = slf.get();
        let extra: Vec<(&str, u64, &str)> = v.extra.iter().map(|(k, o, m)| (&**k, *o, m.as_str())).collect();
        let args =
            (PyBytes::new(py, v.blob.bytes()), v.blob.file_offset, v.blob.phys_addr, v.blob.text_paddr, v.path.as_deref(), extra)
                .into_pyobject(py)?;
        Ok((slf.get_type().getattr("_unpickle")?, args))
    }

    #[staticmethod]
    fn _unpickle(
        raw: &[u8],
        file_offset: Option<u64>,
        phys_addr: Option<u64>,
        text_paddr: Option<u64>,
        path: Option<&str>,
        extra: Vec<(String, u64, String)>,
    ) -> VmcoreInfo {
        let end = raw.len();
        let blob = TextBlob { data: Arc::from(raw), start: 0, end, file_offset, phys_addr, text_paddr };
        let mut v = VmcoreInfo::new(blob, path.map(Arc::from));
        v.extra = extra.into_iter().map(|(k, o, m)| (Cow::Owned(k), o, m)).collect();
        v
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.blob.bytes().hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        let v = self.view();
        format!(
            "<VmcoreInfo osrelease={:?} keys={} bytes={}>",
            v.osrelease().unwrap_or(Cow::Borrowed("?")),
            v.len(),
            self.blob.end - self.blob.start
        )
    }
}

impl VmcoreInfo {
    fn key_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let keys = self.view().items().map(|i| key_str(py, i.key)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, keys)
    }
}

/// The `Mapping` views of the package (`vmcoreinfo._KeysView` etc.: `collections.abc` views that
/// iterate the lists above instead of looking every key up again).
fn mapping_view<'py>(slf: &Bound<'py, VmcoreInfo>, view: &str) -> PyResult<Bound<'py, PyAny>> {
    slf.py().import("vmcoreinfo")?.getattr(view)?.call1((slf,))
}

/// Parse a VMCOREINFO text on its own (from a file, /proc, a QMP reply).
#[pyfunction]
pub fn parse(data: &Bound<'_, PyAny>) -> PyResult<VmcoreInfo> {
    let bytes: Arc<[u8]> = if let Ok(s) = data.cast::<PyString>() {
        Arc::from(s.to_str()?.as_bytes())
    } else if let Ok(b) = data.extract::<&[u8]>() {
        Arc::from(b)
    } else if let Ok(buf) = pyo3::buffer::PyBuffer::<u8>::get(data) {
        Arc::from(buf.to_vec(data.py())?)
    } else {
        return Err(PyTypeError::new_err("parse() takes bytes, bytearray, memoryview or str"));
    };
    let end = bytes.len();
    Ok(VmcoreInfo::new(TextBlob { data: bytes, start: 0, end, file_offset: None, phys_addr: None, text_paddr: None }, None))
}
