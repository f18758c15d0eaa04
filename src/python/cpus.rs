//! `Dump.cpus()` and `Dump.panic_info()`: the core's vCPUs and panic as frozen records.

use pyo3::prelude::*;

use pyo3::exceptions::PyKeyError;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use super::records::{record, DictValue};
use crate::dump::Dump as CoreDump;

/// One vCPU of the dump (``Dump.cpus()``): its registers from the dump's notes, and the task it
/// was running.
#[pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// The vCPU's index.
    pub cpu: u32,
    /// Registers by name (x86_64 ``rip``, ``rsp``, ...; aarch64 ``x0``..``x30``, ``sp``, ``pc``,
    /// ``pstate``; i386 ``eip``, ``esp``, ...; x86 dumps add QEMU's segment and control registers).
    pub registers: std::collections::BTreeMap<String, u64>,
    pub pc: u64,
    pub sp: u64,
    /// ``pc`` as the kernel's Call Trace names it (``symbol+0xoff/0xsize``), or None.
    pub symbol: Option<String>,
    /// Address of the ``task_struct`` running there (per-CPU data), or None.
    pub task: Option<u64>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Where the registers came from: ``"elf-note"``, ``"kdump-note"`` or ``"crash-notes"``.
    pub source: String,
}

record!(Cpu, "Cpu", optional [], {
    cpu: u32, registers: std::collections::BTreeMap<String, u64>, pc: u64, sp: u64, symbol: Option<String>,
    task: Option<u64>, pid: Option<u32>, comm: Option<String>, source: String,
});

/// Why the guest crashed (``Dump.panic_info()``; None when it did not panic).
#[pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicInfo {
    /// The CPU that ran ``panic()``.
    pub cpu: u32,
    /// How it was found: ``"panic_cpu"`` (the kernel's variable) or ``"log"`` (the ``CPU: N PID:
    /// P Comm: C`` line after the panic message).
    pub cpu_source: String,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Address of the panicking task's ``task_struct``, or None.
    pub task: Option<u64>,
    /// The panic or Oops line (``Kernel panic - not syncing: ...``).
    pub message: String,
    /// That line's log record.
    pub record: Option<super::kview_log::LogRecord>,
    /// The taint as the kernel prints it (``Not tainted``, ``Tainted: G  D W``).
    pub taint: String,
    pub tainted_mask: u64,
    /// VMCOREINFO's ``CRASHTIME`` (a kdump kernel's dump), or None.
    pub crashtime: Option<u64>,
}

record!(PanicInfo, "PanicInfo", optional [], {
    cpu: u32, cpu_source: String, pid: Option<u32>, comm: Option<String>, task: Option<u64>, message: String,
    record: Option<super::kview_log::LogRecord>, taint: String, tainted_mask: u64, crashtime: Option<u64>,
});

fn err(d: &CoreDump) -> impl Fn(crate::Error) -> PyErr + '_ {
    move |e| e.in_file(d.path()).into()
}

/// `symbol+0xoff/0xsize` for a kernel address, from vmlinux kallsyms (None when not in one).
fn symbolize(d: &CoreDump, addr: u64) -> Option<String> {
    let syms = d.symbols().ok()?;
    let (i, off) = syms.lookup(addr)?;
    let name = String::from_utf8_lossy(syms.name(i)).into_owned();
    let size = (i + 1 < syms.len()).then(|| syms.address_of(i + 1).wrapping_sub(syms.address_of(i)));
    Some(match size {
        Some(s) if off < s => format!("{name}+{off:#x}/{s:#x}"),
        _ => format!("{name}+{off:#x}"),
    })
}

pub fn cpus(py: Python<'_>, d: &CoreDump) -> PyResult<Vec<Cpu>> {
    py.detach(|| {
        let cpus = d.cpus()?;
        Ok(cpus
            .into_iter()
            .map(|c| Cpu {
                cpu: c.state.cpu,
                registers: c.state.registers.iter().cloned().collect(),
                pc: c.state.pc,
                sp: c.state.sp,
                symbol: symbolize(d, c.state.pc),
                task: c.state.task.map(|r| r.addr),
                pid: c.pid,
                comm: c.comm,
                source: c.state.source.name().to_string(),
            })
            .collect())
    })
    .map_err(err(d))
}

pub fn panic_info(py: Python<'_>, d: &CoreDump) -> PyResult<Option<PanicInfo>> {
    let p = py.detach(|| d.panic_info()).map_err(err(d))?;
    Ok(p.map(|p| PanicInfo {
        cpu: p.cpu,
        cpu_source: p.cpu_source.name().to_string(),
        pid: p.pid,
        comm: p.comm,
        task: p.task,
        message: p.message,
        record: p.record.as_ref().map(Into::into),
        taint: p.taint,
        tainted_mask: p.tainted_mask,
        crashtime: p.crashtime,
    }))
}
