//! `Dump.value`, `Value`, `container_of` and `list_for_each_entry`: typed reads of kernel memory
//! (the core is `crate::kobj::value`); every read runs with the GIL released.

use std::sync::Arc;

use pyo3::exceptions::{PyAttributeError, PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3::IntoPyObjectExt;

use super::types::Type;
use crate::btf::{Btf, Kind, TypeId};
use crate::dump::Dump as CoreDump;
use crate::error::{Error, ErrorKind, Result};
use crate::kobj::value::{Scalar, ValueRef, Values, MAX_LIST_ENTRIES, MAX_VALUE_BYTES};

/// A value of the kernel: an object of a BTF type at a kernel virtual address. Members are
/// attributes (``task.comm``, through pointers as C's ``->``), elements are items (``v[3]``),
/// ``int(v)`` reads a scalar, ``value_()`` the whole value, ``string_()`` a C string as ``bytes``.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct Value {
    dump: Arc<CoreDump>,
    btf: Arc<Btf>,
    v: ValueRef,
}

fn wrap(d: &CoreDump) -> impl Fn(Error) -> PyErr + '_ {
    move |e| e.in_file(d.path()).into()
}

/// Run `f` on the dump's typed reader, without the GIL.
fn with_values<R: Send>(py: Python<'_>, d: &CoreDump, btf: &Btf, f: impl FnOnce(&Values<'_>) -> Result<R> + Send) -> PyResult<R> {
    py.detach(|| {
        let view = d.kernel_view()?;
        f(&Values::new(&view, btf))
    })
    .map_err(wrap(d))
}

/// A symbol's address: kallsyms first, then the VMCOREINFO text's `SYMBOL(name)`.
fn symbol_address(d: &CoreDump, name: &str) -> Result<u64> {
    let syms = d.symbols();
    if let Ok(s) = &syms {
        if let Some(a) = s.address(name.as_bytes()) {
            return Ok(a);
        }
    }
    if let Some(a) = d.with_vmcoreinfo(|vi| vi.symbol(name)).ok().flatten() {
        return Ok(a);
    }
    Err(Error::missing_symbol(match syms {
        Ok(s) => format!(
            "no symbol `{name}` in the kernel's kallsyms ({} symbols) or its VMCOREINFO text (kallsyms holds data symbols only with CONFIG_KALLSYMS_ALL)",
            s.len()
        ),
        Err(e) => format!("no symbol `{name}` in the VMCOREINFO text, and kallsyms could not be read: {e}"),
    }))
}

/// `Dump.value(symbol_or_address, type)`.
pub fn value(py: Python<'_>, d: Arc<CoreDump>, at: &Bound<'_, PyAny>, ty: &str) -> PyResult<Value> {
    enum At {
        Sym(String),
        Addr(u64),
    }
    let at = if let Ok(s) = at.extract::<String>() {
        At::Sym(s)
    } else if let Ok(a) = at.extract::<u64>() {
        At::Addr(a)
    } else {
        return Err(PyTypeError::new_err("value() takes a symbol name (str) or an address (int)"));
    };
    let (btf, v) = py
        .detach(|| -> Result<_> {
            let btf = d.btf()?;
            let id = btf.lookup(ty)?;
            let addr = match &at {
                At::Sym(s) => symbol_address(&d, s)?,
                At::Addr(a) => *a,
            };
            Ok((btf, ValueRef::new(addr, id)))
        })
        .map_err(wrap(&d))?;
    Ok(Value { dump: d, btf, v })
}

impl Value {
    fn derive(&self, v: ValueRef) -> Value {
        Value { dump: self.dump.clone(), btf: self.btf.clone(), v }
    }
    fn run<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&Values<'_>) -> Result<R> + Send) -> PyResult<R> {
        with_values(py, &self.dump, &self.btf, f)
    }
    fn kind(&self) -> Kind {
        self.btf.resolve(self.v.type_id).and_then(|r| self.btf.ty(r)).map_or(Kind::Void, |t| t.kind)
    }
    /// The address a list or `container_of` starts from: a pointer's value, else the value's own address.
    fn pointed(&self, py: Python<'_>) -> PyResult<u64> {
        if self.kind() == Kind::Ptr {
            let v = self.v;
            self.run(py, move |vals| vals.read_pointer(v.addr))
        } else {
            Ok(self.v.addr)
        }
    }
    fn scalar(&self, py: Python<'_>) -> PyResult<Scalar> {
        let v = self.v;
        self.run(py, move |vals| vals.scalar(&v))
    }
}

fn scalar_py(py: Python<'_>, s: Scalar) -> PyResult<Py<PyAny>> {
    match s {
        Scalar::Unsigned(x) => x.into_py_any(py),
        Scalar::Signed(x) => x.into_py_any(py),
        Scalar::Bool(b) => b.into_py_any(py),
        Scalar::Float(f) => f.into_py_any(py),
    }
}

/// The whole value as Python objects, decoded from `bytes` (the value's bytes, read once).
fn tree(py: Python<'_>, vals: &Values<'_>, v: &ValueRef, bytes: &[u8], depth: usize) -> PyResult<Py<PyAny>> {
    if depth > 64 {
        return Err(Error::missing_type(format!("`{}` nests more than 64 levels", vals.type_name(v))).into());
    }
    let (kind, r) = vals.kind(v)?;
    match kind {
        Kind::Struct | Kind::Union => {
            let d = PyDict::new(py);
            fill_members(py, vals, r, v.addr, bytes, 0, &d, depth)?;
            Ok(d.into_any().unbind())
        }
        Kind::Array => {
            let (elem, _, n) = vals.btf.array(r)?;
            let es = vals.btf.size_of(elem)? as usize;
            let l = PyList::empty(py);
            for i in 0..n as usize {
                let at = i * es;
                let part = bytes.get(at..at + es).ok_or_else(|| Error::internal("array element past the value's bytes"))?;
                l.append(tree(py, vals, &ValueRef::new(v.addr + at as u64, elem), part, depth + 1)?)?;
            }
            Ok(l.into_any().unbind())
        }
        _ => scalar_py(py, vals.decode(v, bytes)?),
    }
}

#[allow(clippy::too_many_arguments)]
fn fill_members(
    py: Python<'_>,
    vals: &Values<'_>,
    r: TypeId,
    addr: u64,
    bytes: &[u8],
    bit_base: u64,
    d: &Bound<'_, PyDict>,
    depth: usize,
) -> PyResult<()> {
    for m in vals.btf.members(r)? {
        let bit = bit_base + m.bit_offset;
        let byte = (bit / 8) as usize;
        let mv = ValueRef { addr: addr + byte as u64, type_id: m.type_id, bit_offset: (bit % 8) as u8, bit_size: m.bit_size };
        if m.name.is_empty() {
            // Anonymous structs and unions: their members are the outer type's.
            let mr = vals.btf.resolve(m.type_id)?;
            fill_members(py, vals, mr, addr, bytes, bit, d, depth + 1)?;
            continue;
        }
        let size = vals.size(&mv)? as usize;
        let part = bytes.get(byte..byte + size).ok_or_else(|| Error::internal("member past the value's bytes"))?;
        let sub = ValueRef { addr: mv.addr, ..mv };
        d.set_item(String::from_utf8_lossy(m.name), tree(py, vals, &sub, part, depth + 1)?)?;
    }
    Ok(())
}

#[pymethods]
impl Value {
    /// Kernel virtual address of the value (of the byte holding a bitfield).
    #[getter]
    fn address(&self) -> u64 {
        self.v.addr
    }
    /// The value's type.
    #[getter]
    fn r#type(&self) -> Type {
        Type { btf: self.btf.clone(), id: self.v.type_id }
    }
    /// Bit position of a bitfield inside the byte at ``address`` (0 for other values).
    #[getter]
    fn bit_offset(&self) -> u8 {
        self.v.bit_offset
    }
    /// Width in bits of a bitfield (0 for other values).
    #[getter]
    fn bit_size(&self) -> u32 {
        self.v.bit_size
    }

    /// The member at ``path`` (``"tasks.next"``, ``"mem[0].base"``); through a pointer as ``->``.
    /// ``MissingTypeError`` naming the type and member when it has none.
    fn member_(&self, py: Python<'_>, path: &str) -> PyResult<Value> {
        let v = self.v;
        let path = path.to_string();
        Ok(self.derive(self.run(py, move |vals| vals.member(&v, &path))?))
    }

    fn __getattr__(&self, py: Python<'_>, name: &str) -> PyResult<Value> {
        let v = self.v;
        let n = name.to_string();
        match py.detach(|| d_member(&self.dump, &self.btf, v, &n)) {
            Ok(m) => Ok(self.derive(m)),
            Err(e) if e.kind == ErrorKind::MissingType => Err(PyAttributeError::new_err(e.message)),
            Err(e) => Err(wrap(&self.dump)(e)),
        }
    }

    /// ``v[i]``: element ``i`` of an array or of what a pointer points to (``IndexError`` outside
    /// an array's length); ``v["name"]``: a member, as :meth:`member_`.
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Value> {
        if let Ok(s) = key.extract::<String>() {
            return self.member_(py, &s);
        }
        let i: i64 = key.extract().map_err(|_| PyTypeError::new_err("a Value's index is an int or a member name"))?;
        if self.kind() == Kind::Array {
            let (_, _, n) = self.btf.array(self.btf.resolve(self.v.type_id)?)?;
            if n != 0 && (i < 0 || i as u64 >= u64::from(n)) {
                return Err(PyIndexError::new_err(format!(
                    "index {i} is outside `{}` ({n} elements)",
                    self.btf.type_name(self.v.type_id)
                )));
            }
        }
        let v = self.v;
        Ok(self.derive(self.run(py, move |vals| vals.index(&v, i))?))
    }

    /// Number of elements of an array (``TypeError`` for other types).
    fn __len__(&self) -> PyResult<usize> {
        if self.kind() != Kind::Array {
            return Err(PyTypeError::new_err(format!("`{}` has no length", self.btf.type_name(self.v.type_id))));
        }
        Ok(self.btf.array(self.btf.resolve(self.v.type_id)?)?.2 as usize)
    }

    /// What a pointer points to (a NULL pointer gives a value at 0, whose reads fail).
    fn deref_(&self, py: Python<'_>) -> PyResult<Value> {
        let v = self.v;
        Ok(self.derive(self.run(py, move |vals| vals.deref(&v))?))
    }

    /// The value as Python objects: ``int`` (integers, enums, pointers), ``bool``, ``float``,
    /// ``list`` (arrays), ``dict`` (structs and unions; anonymous members' fields merged in).
    fn value_(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let v = self.v;
        let bytes = self.run(py, move |vals| vals.bytes(&v))?;
        let view = self.dump.kernel_view().map_err(wrap(&self.dump))?;
        let vals = Values::new(&view, &self.btf);
        tree(py, &vals, &self.v, &bytes, 0)
    }

    /// A C string as ``bytes``: a char array up to its first NUL (or its length), or what a
    /// ``char *`` points to, up to the NUL or ``limit`` bytes (4096 by default). Bytes, not
    /// ``str``: the kernel's strings (``comm``, file names) need not be UTF-8.
    #[pyo3(signature = (limit = None))]
    fn string_<'py>(&self, py: Python<'py>, limit: Option<usize>) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.v;
        let b = self.run(py, move |vals| vals.string(&v, limit))?;
        Ok(PyBytes::new(py, &b))
    }

    /// The value's bytes (``sizeof`` of its type, at most 16 MiB).
    fn to_bytes_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.v;
        let b = self.run(py, move |vals| vals.bytes(&v))?;
        Ok(PyBytes::new(py, &b))
    }

    fn __int__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.scalar(py)? {
            Scalar::Float(f) => (f as i128).into_py_any(py),
            Scalar::Bool(b) => i32::from(b).into_py_any(py),
            s => scalar_py(py, s),
        }
    }
    fn __index__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.scalar(py)? {
            Scalar::Float(_) => Err(PyTypeError::new_err("a float value is not an index")),
            Scalar::Bool(b) => i32::from(b).into_py_any(py),
            s => scalar_py(py, s),
        }
    }
    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(match self.scalar(py)? {
            Scalar::Float(f) => f,
            Scalar::Unsigned(x) => x as f64,
            Scalar::Signed(x) => x as f64,
            Scalar::Bool(b) => f64::from(u8::from(b)),
        })
    }
    /// Whether a scalar is non-zero (a NULL pointer is false); ``TypeError`` for structs and arrays.
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        if matches!(self.kind(), Kind::Struct | Kind::Union | Kind::Array) {
            return Err(PyTypeError::new_err(format!("`{}` has no truth value", self.btf.type_name(self.v.type_id))));
        }
        Ok(match self.scalar(py)? {
            Scalar::Unsigned(x) => x != 0,
            Scalar::Signed(x) => x != 0,
            Scalar::Bool(b) => b,
            Scalar::Float(f) => f != 0.0,
        })
    }
    fn __repr__(&self) -> String {
        let t = self.btf.type_name(self.v.type_id);
        if self.v.is_bitfield() {
            format!(
                "Value(type={t:?}, address={:#x}, bit_offset={}, bit_size={})",
                self.v.addr, self.v.bit_offset, self.v.bit_size
            )
        } else {
            format!("Value(type={t:?}, address={:#x})", self.v.addr)
        }
    }
}

fn d_member(d: &CoreDump, btf: &Btf, v: ValueRef, name: &str) -> Result<ValueRef> {
    // `__getattr__` takes a plain member name; a path is `member_`'s.
    if name.contains(['.', '[']) {
        return Err(Error::missing_type(format!("`{name}` is not a member name")));
    }
    let view = d.kernel_view()?;
    Values::new(&view, btf).member(&v, name)
}

/// The entry of type ``type`` that holds ``ptr`` as its member ``member`` (the kernel's
/// ``container_of``). ``ptr`` is a pointer :class:`Value` (its value is used) or any other Value
/// (its address is used, e.g. ``task.tasks``). Returns the containing object itself (a Value of
/// ``type``, not a pointer to it).
#[pyfunction]
pub fn container_of(py: Python<'_>, ptr: &Value, r#type: &str, member: &str) -> PyResult<Value> {
    let at = ptr.pointed(py)?;
    let id = ptr.btf.lookup(r#type).map_err(wrap(&ptr.dump))?;
    let off = crate::kobj::KernelTypes::offset_of(&*ptr.btf, r#type, member).map_err(wrap(&ptr.dump))?;
    let addr = at.checked_sub(off).ok_or_else(|| {
        wrap(&ptr.dump)(Error::unmapped(at, format!("container_of: {at:#x} is below the offset {off} of `{member}` in {type}")))
    })?;
    Ok(ptr.derive(ValueRef::new(addr, id)))
}

/// Iterate over the entries of type ``type`` on the circular list whose head is ``head`` (a
/// ``struct list_head`` Value, or a pointer to one), linked through their member ``member``
/// (``list_for_each_entry`` of the kernel). The list is walked whole first, without the GIL: a
/// list that does not return to its head (a NULL or repeating ``next``) raises ``FormatError``
/// naming the head's address; more than 2**20 entries raise ``LimitError``.
#[pyfunction]
pub fn list_for_each_entry<'py>(py: Python<'py>, r#type: &str, head: &Value, member: &str) -> PyResult<Bound<'py, PyAny>> {
    let at = head.pointed(py)?;
    let id = head.btf.lookup(r#type).map_err(wrap(&head.dump))?;
    let off = crate::kobj::KernelTypes::offset_of(&*head.btf, r#type, member).map_err(wrap(&head.dump))?;
    let nodes = with_values(py, &head.dump, &head.btf, |vals| vals.list_nodes(at, MAX_LIST_ENTRIES))?;
    let entries: Vec<Value> = nodes.into_iter().map(|n| head.derive(ValueRef::new(n.wrapping_sub(off), id))).collect();
    PyList::new(py, entries)?.into_any().try_iter().map(Bound::into_any)
}

// The whole-value limit is the core's; mention it so the docs above stay true.
const _: () = assert!(MAX_VALUE_BYTES == 16 << 20);
