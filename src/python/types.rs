//! `Dump.types`: the kernel's own types (its in-memory BTF) as Python objects.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::btf::{Btf, Kind, TypeId};
use crate::dump::Dump as CoreDump;

/// The kernel's types, from the BTF it keeps in memory: ``types["struct task_struct"]``,
/// ``types.sizeof(...)``, ``types.offsetof(type, "member.path")``.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct Types {
    pub(crate) btf: Arc<Btf>,
    path: Arc<str>,
    source: &'static str,
}

fn wrap(path: &Arc<str>) -> impl Fn(crate::Error) -> PyErr + '_ {
    move |e| e.in_file(path).into()
}

pub fn types(py: Python<'_>, d: &CoreDump) -> PyResult<Types> {
    let (btf, source) = py.detach(|| Ok::<_, crate::Error>((d.btf()?, d.btf_source()?))).map_err(wrap(d.path()))?;
    Ok(Types { btf, path: d.path().clone(), source: source.name() })
}

/// Module `name`'s types: its split BTF from the kernel's `btf_modules` list (ids and strings
/// continue the kernel's, so the kernel's types are found through it too).
pub fn module_types(py: Python<'_>, d: &CoreDump, name: &str) -> PyResult<Types> {
    let btf = py.detach(|| d.module_btf(name)).map_err(wrap(d.path()))?;
    Ok(Types { btf, path: d.path().clone(), source: crate::kobj::RootSource::Symbol.name() })
}

#[pymethods]
impl Types {
    /// The type of this C spelling (``"struct task_struct"``, ``"pid_t"``, ``"char *"``).
    fn __getitem__(&self, name: &str) -> PyResult<Type> {
        let id = self.btf.lookup(name).map_err(wrap(&self.path))?;
        Ok(Type { btf: self.btf.clone(), id })
    }
    fn __contains__(&self, name: &str) -> bool {
        self.btf.lookup(name).is_ok()
    }
    /// The type with this BTF id.
    fn by_id(&self, id: u32) -> PyResult<Type> {
        self.btf.ty(TypeId(id)).map_err(wrap(&self.path))?;
        Ok(Type { btf: self.btf.clone(), id: TypeId(id) })
    }
    /// Size in bytes of a type (by its C spelling).
    fn sizeof(&self, name: &str) -> PyResult<u64> {
        let id = self.btf.lookup(name).map_err(wrap(&self.path))?;
        self.btf.size_of(id).map_err(wrap(&self.path))
    }
    /// Byte offset of a member path (``"tasks.next"``, ``"mem[0].base"``) in a type.
    fn offsetof(&self, name: &str, member: &str) -> PyResult<u64> {
        crate::kobj::KernelTypes::offset_of(&*self.btf, name, member).map_err(wrap(&self.path))
    }
    /// Number of types (vmlinux BTF).
    fn __len__(&self) -> usize {
        self.btf.len()
    }
    /// How the BTF was found: ``"symbol"`` (kallsyms ``__start_BTF``) or ``"scan"``.
    #[getter]
    fn source(&self) -> &'static str {
        self.source
    }
    /// Guest virtual address of the BTF blob.
    #[getter]
    fn address(&self) -> u64 {
        self.btf.base_addr()
    }
    /// Size of the BTF blob in bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.btf.data().len()
    }
    fn __repr__(&self) -> String {
        format!(
            "<Types: {} types from {} bytes of BTF at {:#x} ({})>",
            self.btf.len(),
            self.btf.data().len(),
            self.btf.base_addr(),
            self.source
        )
    }
}

/// One kernel type.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct Type {
    pub(crate) btf: Arc<Btf>,
    pub(crate) id: TypeId,
}

impl Type {
    fn kind_of(&self) -> Kind {
        self.btf.ty(self.id).map_or(Kind::Void, |t| t.kind)
    }
}

#[pymethods]
impl Type {
    /// The BTF type id.
    #[getter]
    fn id(&self) -> u32 {
        self.id.0
    }
    /// The name as C spells it (``"struct task_struct"``, ``"char *"``, ``"int[16]"``).
    #[getter]
    fn name(&self) -> String {
        self.btf.type_name(self.id)
    }
    /// The BTF kind (``"struct"``, ``"ptr"``, ``"typedef"``, ...).
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind_of().name()
    }
    /// Size in bytes, or None for types without one (functions, void, forward declarations).
    #[getter]
    fn size(&self) -> Option<u64> {
        self.btf.size_of(self.id).ok()
    }
    /// The type beneath: pointer target, typedef/qualifier target, array element; else None.
    #[getter]
    fn r#type(&self) -> Option<Type> {
        let t = self.btf.ty(self.id).ok()?;
        let target = if t.kind == Kind::Array { self.btf.array(self.id).ok().map(|a| a.0) } else { t.target() };
        target.map(|id| Type { btf: self.btf.clone(), id })
    }
    /// Element count of an array, else None.
    #[getter]
    fn length(&self) -> Option<u32> {
        self.btf.array(self.id).ok().map(|a| a.2)
    }
    /// Members of a struct or union (empty otherwise).
    #[getter]
    fn members(&self) -> PyResult<Vec<Member>> {
        let ms = self.btf.members(self.id)?;
        Ok(ms
            .into_iter()
            .map(|m| Member {
                name: String::from_utf8_lossy(m.name).into_owned(),
                ty: Type { btf: self.btf.clone(), id: m.type_id },
                bit_offset: m.bit_offset,
                bit_size: m.bit_size,
            })
            .collect())
    }
    /// Enumerators of an enum (name, value); empty otherwise.
    #[getter]
    fn enumerators(&self) -> Vec<(String, i128)> {
        self.btf
            .enumerators(self.id)
            .map(|es| es.into_iter().map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v)).collect())
            .unwrap_or_default()
    }
    /// This type with typedefs and qualifiers followed.
    fn unqualified(&self) -> PyResult<Type> {
        Ok(Type { btf: self.btf.clone(), id: self.btf.resolve(self.id)? })
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Type>().is_ok_and(|o| Arc::ptr_eq(&o.get().btf, &self.btf) && o.get().id == self.id)
    }
    fn __hash__(&self) -> u64 {
        u64::from(self.id.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "Type({:?}, kind={:?}, size={:?})",
            self.btf.type_name(self.id),
            self.kind_of().name(),
            self.btf.size_of(self.id).ok()
        )
    }
}

/// A struct or union member.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct Member {
    name: String,
    ty: Type,
    bit_offset: u64,
    bit_size: u32,
}

#[pymethods]
impl Member {
    /// The member's name ("" for an anonymous struct or union).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }
    #[getter]
    fn r#type(&self) -> Type {
        Type { btf: self.ty.btf.clone(), id: self.ty.id }
    }
    /// Offset in bytes from the start of the containing type (rounded down for bitfields).
    #[getter]
    fn offset(&self) -> u64 {
        self.bit_offset / 8
    }
    #[getter]
    fn bit_offset(&self) -> u64 {
        self.bit_offset
    }
    /// Width in bits of a bitfield (0 for other members).
    #[getter]
    fn bit_size(&self) -> u32 {
        self.bit_size
    }
    fn __repr__(&self) -> String {
        format!("Member({:?}, type={:?}, offset={})", self.name, self.ty.btf.type_name(self.ty.id), self.bit_offset / 8)
    }
}
