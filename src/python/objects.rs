//! The kernel's objects in Python: `Dump.tasks()`, `Dump.modules()` and `Dump.symbolize()`
//! delegate here; `Task`, `Module` and `Symbol` are frozen records.

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use super::records::{record, DictValue};
use crate::dump::Dump as CoreDump;

/// One thread (``Dump.tasks()``).
#[pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub pid: i32,
    pub tgid: i32,
    /// ``real_parent->tgid``.
    pub ppid: i32,
    /// ``comm`` (at most 15 bytes; invalid UTF-8 replaced by U+FFFD).
    pub comm: String,
    /// One of ``R S D T t X Z P I``, as ps shows it.
    pub state: String,
    pub cpu: u32,
    pub on_cpu: bool,
    pub is_kthread: bool,
    /// The task_struct's address.
    pub address: u64,
}

record!(Task, "Task", optional [], {
    pid: i32, tgid: i32, ppid: i32, comm: String, state: String, cpu: u32, on_cpu: bool, is_kthread: bool, address: u64,
});

/// One loaded module (``Dump.modules()``).
#[pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// The base address /proc/modules prints.
    pub base: u64,
    /// The size /proc/modules prints.
    pub size: u64,
    /// ``"live"``, ``"coming"``, ``"going"`` or ``"unformed"``.
    pub state: String,
    /// The taint letters as /proc/modules prints them (``"(OE)"``), ``""`` when none.
    pub taints: String,
    /// The struct module's address.
    pub address: u64,
}

record!(Module, "Module", optional [], { name: String, base: u64, size: u64, state: String, taints: String, address: u64 });

/// A name for an address (``Dump.symbolize()``); ``str()`` gives ``name+0xoff/0xsize [module]``.
#[pyclass(frozen, eq, get_all, str, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub offset: u64,
    pub size: Option<u64>,
    pub module: Option<String>,
}

record!(Symbol, "Symbol", optional [], { name: String, offset: u64, size: Option<u64>, module: Option<String> });

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core =
            crate::dump::Symbol { name: self.name.clone(), offset: self.offset, size: self.size, module: self.module.clone() };
        core.fmt(f)
    }
}

impl From<crate::dump::Symbol> for Symbol {
    fn from(s: crate::dump::Symbol) -> Self {
        Symbol { name: s.name, offset: s.offset, size: s.size, module: s.module }
    }
}

fn err(d: &CoreDump) -> impl Fn(crate::Error) -> PyErr + '_ {
    move |e| e.in_file(d.path()).into()
}

pub fn tasks(py: Python<'_>, d: &CoreDump) -> PyResult<Vec<Task>> {
    let ts = py.detach(|| d.tasks()).map_err(err(d))?;
    Ok(ts
        .into_iter()
        .map(|t| Task {
            pid: t.pid,
            tgid: t.tgid,
            ppid: t.ppid,
            comm: String::from_utf8_lossy(&t.comm).into_owned(),
            state: t.state.to_string(),
            cpu: t.cpu,
            on_cpu: t.on_cpu,
            is_kthread: t.is_kthread,
            address: t.address,
        })
        .collect())
}

pub fn modules(py: Python<'_>, d: &CoreDump) -> PyResult<Vec<Module>> {
    let ms = py.detach(|| d.modules()).map_err(err(d))?;
    Ok(ms
        .into_iter()
        .map(|m| Module {
            name: String::from_utf8_lossy(&m.name).into_owned(),
            base: m.base,
            size: m.size,
            state: m.state.name().to_owned(),
            taints: crate::kobj::modules::taint_letters(m.taint_mask),
            address: m.address,
        })
        .collect())
}

pub fn symbolize(py: Python<'_>, d: &CoreDump, address: u64) -> PyResult<Option<Symbol>> {
    Ok(py.detach(|| d.symbolize(address)).map_err(err(d))?.map(Symbol::from))
}
