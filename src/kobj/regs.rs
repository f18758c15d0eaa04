//! Register notes, parsed from their descriptor bytes alone: the `CORE`/`NT_PRSTATUS` note
//! (`struct elf_prstatus`, one per CPU, written by QEMU's `dump-guest-memory` and by the kernel's
//! `crash_notes`) for x86_64, i386 and aarch64, and QEMU's x86 `QEMU` note (`QEMUCPUState`,
//! QEMU `target/i386/arch_dump.c`: segment bases, control registers, `kernel_gs_base`).
//!
//! The parsers take the desc bytes, the byte order and the desc's file offset (for errors) and
//! return the registers by name, in the order the kernel's structure lays them out.

use crate::error::{Error, Result};

/// `n_type` of the `CORE` note holding `struct elf_prstatus`.
pub const NT_PRSTATUS: u32 = 1;
/// `n_type` of QEMU's `QEMU` note (x86 only).
pub const QEMU_NOTE_TYPE: u32 = 0;

/// The register layouts known here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegArch {
    X86_64,
    I386,
    Aarch64,
}

impl RegArch {
    /// The layout for an ELF `e_machine` (EM_X86_64 62, EM_386 3, EM_AARCH64 183).
    pub fn from_machine(e_machine: u16) -> Option<RegArch> {
        match e_machine {
            62 => Some(RegArch::X86_64),
            3 => Some(RegArch::I386),
            183 => Some(RegArch::Aarch64),
            _ => None,
        }
    }
    /// Offset of `pr_pid` in `struct elf_prstatus` (after `pr_info` 12, `pr_cursig` 2 + pad,
    /// `pr_sigpend` and `pr_sighold`, each a `long`).
    fn pid_offset(self) -> usize {
        match self {
            RegArch::I386 => 24,
            RegArch::X86_64 | RegArch::Aarch64 => 32,
        }
    }
    /// Offset of `pr_reg` in `struct elf_prstatus`.
    fn reg_offset(self) -> usize {
        match self {
            RegArch::I386 => 72,
            RegArch::X86_64 | RegArch::Aarch64 => 112,
        }
    }
    /// Width in bytes of one `pr_reg` slot.
    fn reg_width(self) -> usize {
        match self {
            RegArch::I386 => 4,
            RegArch::X86_64 | RegArch::Aarch64 => 8,
        }
    }
    /// The names of `pr_reg`'s slots, in order.
    pub fn reg_names(self) -> &'static [&'static str] {
        match self {
            RegArch::X86_64 => &X86_64_REGS,
            RegArch::I386 => &I386_REGS,
            RegArch::Aarch64 => &AARCH64_REGS,
        }
    }
    /// Names of the program counter and the stack pointer.
    pub fn pc_sp_names(self) -> (&'static str, &'static str) {
        match self {
            RegArch::X86_64 => ("rip", "rsp"),
            RegArch::I386 => ("eip", "esp"),
            RegArch::Aarch64 => ("pc", "sp"),
        }
    }
}

/// `struct user_regs_struct` (x86_64), as `pr_reg`.
const X86_64_REGS: [&str; 27] = [
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip",
    "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
];
/// `struct user_regs_struct` (i386), as `pr_reg`.
const I386_REGS: [&str; 17] = [
    "ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "xds", "xes", "xfs", "xgs", "orig_eax", "eip", "xcs", "eflags", "esp", "xss",
];
/// `struct user_pt_regs` (aarch64): x0–x30, sp, pc, pstate.
const AARCH64_REGS: [&str; 34] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18",
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "x30", "sp", "pc", "pstate",
];

/// One CPU's `struct elf_prstatus`: its `pr_pid` and registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prstatus {
    /// `pr_pid`: QEMU writes the vCPU index + 1; the kernel's `crash_notes` the running task's pid.
    pub pid: u32,
    /// `pr_reg`, by name, in the structure's order.
    pub regs: Vec<(&'static str, u64)>,
}

fn uint(b: &[u8], big_endian: bool) -> u64 {
    let mut v = 0u64;
    if big_endian {
        for &x in b {
            v = (v << 8) | u64::from(x);
        }
    } else {
        for &x in b.iter().rev() {
            v = (v << 8) | u64::from(x);
        }
    }
    v
}

/// Parse a `CORE`/`NT_PRSTATUS` desc. `desc_offset` is the desc's file offset (errors name it).
/// The desc must hold at least `pr_reg` (QEMU and the kernel write the whole structure).
pub fn parse_prstatus(desc: &[u8], arch: RegArch, big_endian: bool, desc_offset: u64) -> Result<Prstatus> {
    let w = arch.reg_width();
    let names = arch.reg_names();
    let need = arch.reg_offset() + names.len() * w;
    if desc.len() < need {
        return Err(Error::truncated(
            desc_offset,
            format!(
                "NT_PRSTATUS note is {} bytes, too short for a {:?} elf_prstatus (pr_reg ends at byte {need})",
                desc.len(),
                arch
            ),
        ));
    }
    let pid = uint(&desc[arch.pid_offset()..arch.pid_offset() + 4], big_endian) as u32;
    let base = arch.reg_offset();
    let regs = names.iter().enumerate().map(|(i, &n)| (n, uint(&desc[base + i * w..base + (i + 1) * w], big_endian))).collect();
    Ok(Prstatus { pid, regs })
}

/// Size of `QEMUCPUState` without `kernel_gs_base` (QEMU before 2.x wrote this size).
pub const QEMU_CPUSTATE_BASE_SIZE: usize = 432;
/// Size of `QEMUCPUState` with `kernel_gs_base`.
pub const QEMU_CPUSTATE_SIZE: usize = 440;

/// The segments of `QEMUCPUState`, in order (each `{u32 selector, limit, flags, pad; u64 base}`).
const QEMU_SEGMENTS: [&str; 10] = ["cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt"];
/// The general registers of `QEMUCPUState`, in order (after `version` and `size`).
const QEMU_GPRS: [&str; 18] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
];

/// QEMU's x86 CPU state note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCpuState {
    pub version: u32,
    /// The `size` field (432 or 440).
    pub size: u32,
    /// The registers by name: the general ones, each segment's `*_selector`, `*_limit`,
    /// `*_flags` and `*_base`, `cr0`–`cr4`, and `kernel_gs_base` when the note has it.
    pub regs: Vec<(String, u64)>,
}

impl QemuCpuState {
    pub fn get(&self, name: &str) -> Option<u64> {
        self.regs.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// Parse a `QEMU` type-0 desc (`QEMUCPUState`). The `size` field must equal 432 or 440 and fit
/// in the desc; `desc_offset` is the desc's file offset (errors name it).
pub fn parse_qemu_cpustate(desc: &[u8], big_endian: bool, desc_offset: u64) -> Result<QemuCpuState> {
    if desc.len() < QEMU_CPUSTATE_BASE_SIZE {
        return Err(Error::truncated(
            desc_offset,
            format!("QEMU CPU state note is {} bytes, shorter than QEMUCPUState ({QEMU_CPUSTATE_BASE_SIZE})", desc.len()),
        ));
    }
    let version = uint(&desc[0..4], big_endian) as u32;
    let size = uint(&desc[4..8], big_endian) as u32;
    let sz = size as usize;
    if (sz != QEMU_CPUSTATE_BASE_SIZE && sz != QEMU_CPUSTATE_SIZE) || sz > desc.len() {
        return Err(Error::format(
            desc_offset + 4,
            format!("QEMU CPU state note says its size is {size} (known: 432, 440) in a {}-byte note", desc.len()),
        ));
    }
    let u64_at = |o: usize| uint(&desc[o..o + 8], big_endian);
    let u32_at = |o: usize| uint(&desc[o..o + 4], big_endian);
    let mut regs: Vec<(String, u64)> = Vec::with_capacity(64);
    let mut o = 8;
    for n in QEMU_GPRS {
        regs.push((n.to_string(), u64_at(o)));
        o += 8;
    }
    for s in QEMU_SEGMENTS {
        regs.push((format!("{s}_selector"), u32_at(o)));
        regs.push((format!("{s}_limit"), u32_at(o + 4)));
        regs.push((format!("{s}_flags"), u32_at(o + 8)));
        regs.push((format!("{s}_base"), u64_at(o + 16)));
        o += 24;
    }
    for i in 0..5 {
        regs.push((format!("cr{i}"), u64_at(o)));
        o += 8;
    }
    if sz == QEMU_CPUSTATE_SIZE {
        regs.push(("kernel_gs_base".to_string(), u64_at(o)));
    }
    Ok(QemuCpuState { version, size, regs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!("{}/tests/fixtures/notes/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }
    fn get(p: &Prstatus, n: &str) -> u64 {
        p.regs.iter().find(|r| r.0 == n).unwrap().1
    }

    #[test]
    fn x86_64_prstatus_from_qemu() {
        // CPU 0 of the panicked Debian 12 guest: QEMU writes pr_pid = index + 1; a kernel rip
        // and rsp, the kernel code segment 0x10.
        let d = fixture("x86_64-panic-prstatus0.bin");
        let p = parse_prstatus(&d, RegArch::X86_64, false, 0).unwrap();
        assert_eq!(p.pid, 1);
        assert_eq!(p.regs.len(), 27);
        assert!(get(&p, "rip") >= 0xffff_ffff_8000_0000);
        assert!(get(&p, "rsp") >= 0xffff_8000_0000_0000);
        assert_eq!(get(&p, "cs"), 0x10);
        let p1 = parse_prstatus(&fixture("x86_64-panic-prstatus1.bin"), RegArch::X86_64, false, 0).unwrap();
        assert_eq!(p1.pid, 2);
    }

    #[test]
    fn qemu_cpustate_matches_prstatus() {
        let p = parse_prstatus(&fixture("x86_64-panic-prstatus0.bin"), RegArch::X86_64, false, 0).unwrap();
        let q = parse_qemu_cpustate(&fixture("x86_64-panic-qemu0.bin"), false, 0).unwrap();
        assert_eq!(q.size, 440);
        for (a, b) in [("rip", "rip"), ("rsp", "rsp"), ("rax", "rax"), ("r15", "r15"), ("eflags", "rflags")] {
            assert_eq!(get(&p, a), q.get(b).unwrap(), "{a}");
        }
        assert_eq!(q.get("cs_selector"), Some(0x10));
        assert_eq!(q.get("gs_base"), Some(get(&p, "gs_base")));
        // cr3 holds a page-aligned page-table root (PCID bits aside), cr0 has PG and PE set.
        assert_eq!(q.get("cr0").unwrap() & 0x8000_0001, 0x8000_0001);
        assert!(q.get("cr3").unwrap() != 0);
        assert!(q.get("kernel_gs_base").is_some());
    }

    #[test]
    fn aarch64_prstatus_from_qemu() {
        let p = parse_prstatus(&fixture("arm64-panic-prstatus0.bin"), RegArch::Aarch64, false, 0).unwrap();
        assert_eq!(p.pid, 1);
        assert_eq!(p.regs.len(), 34);
        assert!(get(&p, "pc") >= 0xffff_8000_0000_0000);
        assert!(get(&p, "sp") >= 0xffff_8000_0000_0000);
        // EL1 (pstate.M[3:2] = 1).
        assert_eq!((get(&p, "pstate") >> 2) & 3, 1);
    }

    #[test]
    fn i386_prstatus_from_qemu() {
        let p = parse_prstatus(&fixture("i386-prstatus0.bin"), RegArch::I386, false, 0).unwrap();
        assert_eq!(p.pid, 1);
        assert_eq!(p.regs.len(), 17);
        assert!(get(&p, "eip") >= 0xc000_0000);
        assert!(get(&p, "eip") <= u64::from(u32::MAX));
        let q = parse_qemu_cpustate(&fixture("i386-qemu0.bin"), false, 0).unwrap();
        assert_eq!(q.get("rip"), Some(get(&p, "eip")));
        assert_eq!(q.get("rsp"), Some(get(&p, "esp")));
    }

    #[test]
    fn big_endian_fields_are_read_big_endian() {
        let mut d = vec![0u8; 392];
        d[35] = 7; // pr_pid = 7 big-endian
        d[112 + 32 * 8 + 7] = 0x42; // pc
        let p = parse_prstatus(&d, RegArch::Aarch64, true, 0).unwrap();
        assert_eq!(p.pid, 7);
        assert_eq!(get(&p, "pc"), 0x42);
    }

    #[test]
    fn short_and_odd_descriptors_are_typed_errors_at_the_offset() {
        let d = fixture("x86_64-panic-prstatus0.bin");
        for n in [0, 12, 111, 112 + 27 * 8 - 1] {
            let e = parse_prstatus(&d[..n], RegArch::X86_64, false, 4096).unwrap_err();
            assert_eq!(e.offset(), Some(4096), "{n}");
            assert!(e.to_string().contains("NT_PRSTATUS"), "{e}");
        }
        let q = fixture("x86_64-panic-qemu0.bin");
        assert_eq!(parse_qemu_cpustate(&q[..100], false, 900).unwrap_err().offset(), Some(900));
        let mut bad = q.clone();
        bad[4..8].copy_from_slice(&1000u32.to_le_bytes());
        let e = parse_qemu_cpustate(&bad, false, 900).unwrap_err();
        assert_eq!(e.offset(), Some(904));
        // A 432-byte note that claims 440 bytes.
        assert!(parse_qemu_cpustate(&q[..432], false, 0).is_err());
        let mut old = q[..432].to_vec();
        old[4..8].copy_from_slice(&432u32.to_le_bytes());
        assert!(parse_qemu_cpustate(&old, false, 0).unwrap().get("kernel_gs_base").is_none());
    }
}
