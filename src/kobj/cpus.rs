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

/// The smallest kernel stack (`THREAD_SIZE`) of x86_64 and arm64 with 4 KiB pages; larger
/// stacks (KASAN) still hold an sp near their base's first 16 KiB only sometimes, so a miss
/// falls back to the CPU's sole running task.
pub const MIN_THREAD_SIZE: u64 = 16 << 10;

/// The task running on `cpu` without per-CPU data (kallsyms without `__per_cpu_offset`, as on
/// kernels without `CONFIG_KALLSYMS_ALL`): of the tasks marked `on_cpu` there, the one whose
/// kernel stack (`task_struct.stack`, `MIN_THREAD_SIZE` bytes) holds the CPU's `sp`; else the
/// only task marked running there; else none (an idle CPU other than 0 runs an idle task that
/// is not on the task list). The root is `Derived`.
pub fn current_task_by_stack(
    mem: &dyn VirtMemory,
    types: &dyn crate::kobj::KernelTypes,
    tasks: &[crate::kobj::tasks::Task],
    cpu: u32,
    sp: u64,
) -> Option<Root> {
    let candidates: Vec<_> = tasks.iter().filter(|t| t.on_cpu && t.cpu == cpu).collect();
    if let Ok(stack_off) = types.offset_of("struct task_struct", "stack") {
        for t in &candidates {
            if let Ok(base) = mem.read_ptr(t.address.wrapping_add(stack_off)) {
                if base != 0 && sp >= base && sp - base < MIN_THREAD_SIZE {
                    return Some(Root { addr: t.address, source: RootSource::Derived });
                }
            }
        }
    }
    match candidates.as_slice() {
        [only] => Some(Root { addr: only.address, source: RootSource::Derived }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kobj::roots::fake::{FakeTypes, Flat};
    use crate::kobj::tasks::Task;
    use crate::kview::testmem::FakeMem;

    fn task(address: u64, cpu: u32, on_cpu: bool) -> Task {
        Task { pid: 1, tgid: 1, ppid: 0, comm: b"t".to_vec(), state: 'R', cpu, on_cpu, is_kthread: false, address }
    }

    #[test]
    fn the_running_task_whose_stack_holds_sp() {
        let mut types = FakeTypes::default();
        types.member("struct task_struct", "stack", 0x18, 8);
        let mem = FakeMem::default();
        // task A at 0x1000 (stack 0x4000), task B at 0x2000 (stack 0x8000), both marked on CPU 1
        mem.write(0x1018, &0x4000u64.to_le_bytes());
        mem.write(0x2018, &0x8000u64.to_le_bytes());
        let v = Flat(&mem);
        let tasks = [task(0x1000, 1, true), task(0x2000, 1, true), task(0x3000, 0, false)];
        let found = current_task_by_stack(&v, &types, &tasks, 1, 0x8000 + 0x3f00).unwrap();
        assert_eq!((found.addr, found.source), (0x2000, RootSource::Derived));
        assert_eq!(current_task_by_stack(&v, &types, &tasks, 1, 0x4010).unwrap().addr, 0x1000);
        // two candidates, sp in neither stack (an IRQ stack): no guess
        assert!(current_task_by_stack(&v, &types, &tasks, 1, 0xc000).is_none());
        // one candidate: it, even with sp elsewhere
        assert_eq!(current_task_by_stack(&v, &types, &tasks[1..], 1, 0xc000).unwrap().addr, 0x2000);
        // no task marked running on CPU 0 (its idle task is not on the list)
        assert!(current_task_by_stack(&v, &types, &tasks, 0, 0x4010).is_none());
    }
}
