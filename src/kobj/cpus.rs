//! Per-vCPU state: the registers of the dump's notes (NT_PRSTATUS first, QEMU's x86 CPU state
//! adding segments, control registers and gs_base) and the task running on each CPU, read from
//! the kernel's per-CPU data.

use crate::error::Result;
use crate::kobj::regs::{parse_prstatus, parse_qemu_cpustate, Prstatus, QemuCpuState, RegArch, NT_PRSTATUS};
use crate::kobj::{Root, RootSource};
use crate::kview::kallsyms::KernelSymbols;
use crate::kview::VirtMemory;
use crate::notes::RawNote;

/// Where a CPU's registers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuSource {
    /// PT_NOTE of an ELF dump (QEMU: `pr_pid` = vCPU index + 1).
    ElfNote,
    /// The notes after a kdump sub-header.
    KdumpNote,
    /// The kernel's `crash_notes` (a dump of /proc/vmcore: `pr_pid` = the running task's pid).
    CrashNotes,
}

impl CpuSource {
    pub fn name(self) -> &'static str {
        match self {
            CpuSource::ElfNote => "elf-note",
            CpuSource::KdumpNote => "kdump-note",
            CpuSource::CrashNotes => "crash-notes",
        }
    }
}

/// One vCPU.
#[derive(Debug, Clone)]
pub struct CpuState {
    pub cpu: u32,
    pub registers: Vec<(String, u64)>,
    pub pc: u64,
    pub sp: u64,
    pub prstatus_pid: u32,
    pub source: CpuSource,
    /// The task running there, and how its address was found.
    pub task: Option<Root>,
}

/// Registers of every vCPU from the notes (`(file offset of the note's desc, note)`), in note order:
/// the n-th PRSTATUS and the n-th QEMU note belong to vCPU n.
pub fn cpus_from_notes<'a>(
    notes: impl IntoIterator<Item = (u64, RawNote<'a>)>,
    arch: RegArch,
    big_endian: bool,
    source: CpuSource,
) -> Result<Vec<CpuState>> {
    let mut pr: Vec<Prstatus> = Vec::new();
    let mut qemu: Vec<QemuCpuState> = Vec::new();
    for (off, n) in notes {
        if n.name == b"CORE" && n.n_type == NT_PRSTATUS {
            pr.push(parse_prstatus(n.desc, arch, big_endian, off)?);
        } else if n.name == b"QEMU" && n.n_type == 0 && matches!(arch, RegArch::X86_64 | RegArch::I386) {
            qemu.push(parse_qemu_cpustate(n.desc, big_endian, off)?);
        }
    }
    let (pc_name, sp_name) = arch.pc_sp_names();
    let mut out = Vec::with_capacity(pr.len());
    for (i, p) in pr.into_iter().enumerate() {
        let mut registers: Vec<(String, u64)> = p.regs.iter().map(|&(n, v)| (n.to_string(), v)).collect();
        if let Some(q) = qemu.get(i) {
            for (n, v) in &q.regs {
                if !registers.iter().any(|r| &r.0 == n) {
                    registers.push((n.clone(), *v));
                }
            }
        }
        let get = |name: &str| registers.iter().find(|r| r.0 == name).map_or(0, |r| r.1);
        let (pc, sp) = (get(pc_name), get(sp_name));
        out.push(CpuState { cpu: i as u32, registers, pc, sp, prstatus_pid: p.pid, source, task: None });
    }
    Ok(out)
}

/// The task running on `cpu` from the kernel's per-CPU data, when kallsyms has it: x86_64
/// `current_task` (6.1, 6.15+) or `pcpu_hot` (6.2–6.14, `current_task` its first member) at
/// `__per_cpu_offset[cpu] +` the symbol's value; arm64 `__entry_task`.
pub fn current_task(mem: &dyn VirtMemory, syms: &KernelSymbols, arch: RegArch, cpu: u32) -> Result<Option<Root>> {
    let Some(offsets) = syms.address(b"__per_cpu_offset") else { return Ok(None) };
    let ps = mem.pointer_size() as u64;
    let base = mem.read_ptr(offsets + u64::from(cpu) * ps)?;
    let var = match arch {
        RegArch::X86_64 => syms.address(b"current_task").or_else(|| syms.address(b"pcpu_hot")),
        RegArch::Aarch64 => syms.address(b"__entry_task"),
        RegArch::I386 => syms.address(b"current_task").or_else(|| syms.address(b"pcpu_hot")),
    };
    let Some(var) = var else { return Ok(None) };
    let task = mem.read_ptr(base.wrapping_add(var))?;
    Ok((task != 0).then_some(Root { addr: task, source: RootSource::Symbol }))
}
