//! `Dump.cpus()` and `Dump.panic_info()`: the core's vCPUs and panic as frozen records.

use pyo3::prelude::*;

use super::records::{Cpu, PanicInfo};
use crate::dump::Dump as CoreDump;

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
