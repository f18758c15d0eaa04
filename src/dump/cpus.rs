//! The dump's vCPUs and the panic: the notes and the kernel's memory handed to `crate::kobj`.

use super::Dump;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::kobj::cpus::{cpus_from_notes, current_task, current_task_by_stack, CpuSource, CpuState};
use crate::kobj::panic::{find_log_panic, parse_release, taint_mask_from_string, taint_string};
use crate::kobj::regs::RegArch;
use crate::kview::printk::{LogLimits, LogRecord};
use crate::kview::VirtMemory;

/// The task a CPU runs: pid and comm, when the kernel's types give their offsets.
#[derive(Debug, Clone)]
pub struct Cpu {
    pub state: CpuState,
    pub pid: Option<u32>,
    pub comm: Option<String>,
}

/// How the panic CPU was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PanicCpuSource {
    /// The kernel's `panic_cpu` variable.
    PanicCpu,
    /// The `CPU: N PID: P Comm: C` line after the panic line of the log.
    Log,
}

impl PanicCpuSource {
    pub fn name(self) -> &'static str {
        match self {
            PanicCpuSource::PanicCpu => "panic_cpu",
            PanicCpuSource::Log => "log",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PanicInfo {
    pub cpu: u32,
    pub cpu_source: PanicCpuSource,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub task: Option<u64>,
    pub message: String,
    pub record: Option<LogRecord>,
    pub taint: String,
    pub tainted_mask: u64,
    pub crashtime: Option<u64>,
}

impl Dump {
    fn reg_arch(&self) -> Result<(RegArch, bool)> {
        let id = self.identity()?;
        let arch = RegArch::from_machine(id.e_machine)
            .ok_or_else(|| Error::unsupported(None, format!("CPU registers of e_machine {}", id.e_machine)))?;
        Ok((arch, id.big_endian))
    }

    /// Every vCPU of the dump, registers from its notes; the task running there from the
    /// kernel's per-CPU data when kallsyms has it, else the task marked running there whose
    /// kernel stack holds the CPU's sp (see [`current_task_by_stack`]); its pid and comm when the
    /// kernel's types give their offsets.
    pub fn cpus(&self) -> Result<Vec<Cpu>> {
        let (arch, big) = self.reg_arch()?;
        let crash_notes = self.with_vmcoreinfo(|v| Ok(v.get("CRASHTIME").is_some())).unwrap_or(false);
        let source = match self.format() {
            _ if crash_notes => CpuSource::CrashNotes,
            Format::Elf => CpuSource::ElfNote,
            _ => CpuSource::KdumpNote,
        };
        let mut notes = Vec::new();
        for (seg, n) in self.notes() {
            let n = n?;
            notes.push((seg.file_offset + n.desc_offset as u64, n));
        }
        let states = cpus_from_notes(notes, arch, big, source)?;
        let view = self.kernel_view().ok();
        let syms = self.symbols().ok();
        let types = self.kernel_types().ok();
        let mut out = Vec::with_capacity(states.len());
        // Without per-CPU data: the task list, walked once, for the tasks marked running.
        let mut listed: Option<Option<Vec<crate::kobj::tasks::Task>>> = None;
        for mut st in states {
            if let (Some(v), Some(s)) = (&view, &syms) {
                st.task = current_task(v, s, arch, st.cpu).ok().flatten();
            }
            if let (None, Some(v), Some(t)) = (st.task, &view, &types) {
                if let Some(tasks) = listed.get_or_insert_with(|| self.tasks().ok()) {
                    st.task = current_task_by_stack(v, &**t, tasks, st.cpu, st.sp);
                }
            }
            let (mut pid, mut comm) = (None, None);
            if let (Some(v), Some(t), Some(task)) = (&view, &types, st.task) {
                if let (Ok(po), Ok(co)) = (t.offset_of("struct task_struct", "pid"), t.offset_of("struct task_struct", "comm")) {
                    pid = v.read_u32(task.addr + po).ok();
                    let mut b = [0u8; 16];
                    if v.read_virt(task.addr + co, &mut b).is_ok() {
                        let end = b.iter().position(|&c| c == 0).unwrap_or(16);
                        comm = Some(String::from_utf8_lossy(&b[..end]).into_owned());
                    }
                }
            }
            if pid.is_none() && source == CpuSource::CrashNotes {
                pid = Some(st.prstatus_pid);
            }
            out.push(Cpu { state: st, pid, comm });
        }
        Ok(out)
    }

    /// The panic, or `None` when the guest did not panic (`panic_cpu` is -1, or, without that
    /// symbol, the log has no panic block).
    pub fn panic_info(&self) -> Result<Option<PanicInfo>> {
        let view = self.kernel_view()?;
        let syms = self.symbols().ok();
        let mut panic_cpu = None;
        if let Some(addr) = syms.as_ref().and_then(|s| s.address(b"panic_cpu")) {
            let v = view.read_u32(addr)? as i32;
            if v < 0 {
                return Ok(None);
            }
            panic_cpu = Some(v as u32);
        }
        let log = self.kernel_log(&LogLimits::default())?;
        let found = find_log_panic(log.iter().map(|r| r.text.as_slice()));
        let Some(found) = found else {
            return match panic_cpu {
                None => Ok(None),
                Some(cpu) => Ok(Some(self.panic_without_log(cpu, syms.as_deref())?)),
            };
        };
        let (cpu, cpu_source) = match panic_cpu {
            Some(c) => (c, PanicCpuSource::PanicCpu),
            None => (found.header.cpu, PanicCpuSource::Log),
        };
        let rec = log[found.message_index].clone();
        let (taint, tainted_mask) = self.taint(syms.as_deref(), Some(&found.header.taint))?;
        let task = self.cpus().ok().and_then(|c| c.get(cpu as usize).and_then(|c| c.state.task.map(|t| t.addr)));
        Ok(Some(PanicInfo {
            cpu,
            cpu_source,
            pid: Some(found.header.pid),
            comm: Some(found.header.comm.clone()),
            task,
            message: String::from_utf8_lossy(&rec.text).into_owned(),
            record: Some(rec),
            taint,
            tainted_mask,
            crashtime: self.crashtime(),
        }))
    }

    fn panic_without_log(&self, cpu: u32, syms: Option<&crate::kview::kallsyms::KernelSymbols>) -> Result<PanicInfo> {
        let (taint, tainted_mask) = self.taint(syms, None)?;
        let c = self.cpus().ok().and_then(|c| c.into_iter().nth(cpu as usize));
        Ok(PanicInfo {
            cpu,
            cpu_source: PanicCpuSource::PanicCpu,
            pid: c.as_ref().and_then(|c| c.pid),
            comm: c.as_ref().and_then(|c| c.comm.clone()),
            task: c.as_ref().and_then(|c| c.state.task.map(|t| t.addr)),
            message: String::new(),
            record: None,
            taint,
            tainted_mask,
            crashtime: self.crashtime(),
        })
    }

    fn crashtime(&self) -> Option<u64> {
        self.with_vmcoreinfo(|v| Ok(v.get("CRASHTIME").and_then(|t| std::str::from_utf8(t).ok()?.trim().parse().ok())))
            .ok()
            .flatten()
    }

    /// `tainted_mask` from the kernel's variable when kallsyms has it, else from the logged text.
    fn taint(&self, syms: Option<&crate::kview::kallsyms::KernelSymbols>, logged: Option<&str>) -> Result<(String, u64)> {
        let release = self.with_vmcoreinfo(|v| Ok(v.get("OSRELEASE").map(|r| String::from_utf8_lossy(r).into_owned())))?;
        let version = release.as_deref().and_then(parse_release).unwrap_or((6, 0));
        if let Some(addr) = syms.and_then(|s| s.address(b"tainted_mask")) {
            let view = self.kernel_view()?;
            let mask = view.read_ptr(addr)?;
            return Ok((taint_string(mask, version), mask));
        }
        let mask = logged.and_then(taint_mask_from_string).unwrap_or(0);
        Ok((taint_string(mask, version), mask))
    }
}
