//! The loaded modules: the `modules` list of `struct module`, as /proc/modules shows them (name,
//! size, state, base address, taints). Before 6.4 a module's memory is `core_layout` (and
//! `init_layout` while it initialises); from 6.4 it is `mem[MOD_TEXT]`.. `mem[MOD_MEM_NUM_TYPES-1]`.

use super::roots::{list_offsets, walk_list, MAX_LIST_ENTRIES};
use super::KernelTypes;
use crate::error::Result;
use crate::kview::{bad_virt, VirtMemory};

/// enum module_state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModuleState {
    Live,
    Coming,
    Going,
    Unformed,
}

impl ModuleState {
    pub fn name(self) -> &'static str {
        match self {
            ModuleState::Live => "live",
            ModuleState::Coming => "coming",
            ModuleState::Going => "going",
            ModuleState::Unformed => "unformed",
        }
    }
}

/// One module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: Vec<u8>,
    /// The base /proc/modules prints: `core_layout.base` (before 6.4) or `mem[MOD_TEXT].base`.
    pub base: u64,
    /// The size /proc/modules prints: `init_layout.size + core_layout.size`, or the sum of the
    /// `mem[]` sizes (`module_total_size`).
    pub size: u64,
    pub state: ModuleState,
    /// The `taints` bitmask.
    pub taint_mask: u64,
    /// The struct module's address.
    pub address: u64,
    /// Where the module's text lies (`[start, end)`; core text, for naming addresses).
    pub text: (u64, u64),
    /// `mod->kallsyms` (0 without CONFIG_KALLSYMS).
    pub kallsyms: u64,
}

/// The taint letters of `taints` as /proc/modules prints them: `"(OE)"`, `""` when none (the
/// module-related rows of the kernel's `taint_flags`, in bit order).
pub fn taint_letters(mask: u64) -> String {
    // (bit, letter) for the flags whose `module` field is true in kernel/panic.c.
    const MODULE_TAINTS: &[(u32, char)] =
        &[(0, 'P'), (1, 'F'), (10, 'C'), (12, 'O'), (13, 'E'), (15, 'K'), (16, 'X'), (17, 'T'), (18, 'N')];
    let s: String = MODULE_TAINTS.iter().filter(|(b, _)| mask & (1u64 << b) != 0).map(|&(_, c)| c).collect();
    if s.is_empty() {
        s
    } else {
        format!("({s})")
    }
}

const M: &str = "struct module";
/// Longest module name read (MODULE_NAME_LEN is 56 on 64-bit kernels).
const MAX_NAME: u64 = 256;
/// Most `mem[]` regions (MOD_MEM_NUM_TYPES is 7 in 6.4–6.12).
const MAX_MEM_TYPES: i64 = 32;

enum Memory {
    /// `core_layout`/`init_layout` {base, size, text_size}.
    Layout { core_base: u64, core_size: u64, core_text: u64, init_size: Option<u64> },
    /// `mem[i]` {base, size}: the offsets of each base and size, MOD_TEXT's index first.
    Mem { regions: Vec<(u64, u64)>, text: usize },
}

pub struct ModuleLayout {
    list: u64,
    name: u64,
    name_len: u64,
    state: u64,
    state_size: u64,
    taints: Option<u64>,
    kallsyms: Option<u64>,
    memory: Memory,
    next: u64,
    prev: u64,
    enums: [i64; 4],
}

impl ModuleLayout {
    pub fn new(types: &dyn KernelTypes) -> Result<ModuleLayout> {
        let memory = if types.has_member(M, "core_layout") {
            Memory::Layout {
                core_base: types.offset_of(M, "core_layout.base")?,
                core_size: types.offset_of(M, "core_layout.size")?,
                core_text: types.offset_of(M, "core_layout.text_size")?,
                init_size: types.has_member(M, "init_layout.size").then(|| types.offset_of(M, "init_layout.size")).transpose()?,
            }
        } else {
            let n = types.enumerator("MOD_MEM_NUM_TYPES").unwrap_or(0);
            if !(1..=MAX_MEM_TYPES).contains(&n) {
                return Err(crate::error::Error::missing_type(format!(
                    "struct module has neither core_layout nor mem[] with a usable MOD_MEM_NUM_TYPES ({n})"
                )));
            }
            let text = types.enumerator("MOD_TEXT").unwrap_or(0).clamp(0, n - 1) as usize;
            let regions = (0..n)
                .map(|i| Ok((types.offset_of(M, &format!("mem[{i}].base"))?, types.offset_of(M, &format!("mem[{i}].size"))?)))
                .collect::<Result<Vec<_>>>()?;
            Memory::Mem { regions, text }
        };
        let (next, prev) = list_offsets(types)?;
        let e = |name: &str, default: i64| types.enumerator(name).unwrap_or(default);
        Ok(ModuleLayout {
            list: types.offset_of(M, "list")?,
            name: types.offset_of(M, "name")?,
            name_len: types.member_size(M, "name")?.clamp(1, MAX_NAME),
            state: types.offset_of(M, "state")?,
            state_size: types.member_size(M, "state")?,
            taints: types.has_member(M, "taints").then(|| types.offset_of(M, "taints")).transpose()?,
            kallsyms: types.has_member(M, "kallsyms").then(|| types.offset_of(M, "kallsyms")).transpose()?,
            memory,
            next,
            prev,
            enums: [
                e("MODULE_STATE_LIVE", 0),
                e("MODULE_STATE_COMING", 1),
                e("MODULE_STATE_GOING", 2),
                e("MODULE_STATE_UNFORMED", 3),
            ],
        })
    }

    pub fn read(&self, mem: &dyn VirtMemory, addr: u64) -> Result<Module> {
        let at = |mut e: crate::error::Error| {
            e.message = format!("struct module at {addr:#x}: {}", e.message);
            e
        };
        let mut name = vec![0u8; self.name_len as usize];
        mem.read_virt(addr + self.name, &mut name).map_err(at)?;
        let end = name.iter().position(|&b| b == 0).ok_or_else(|| {
            bad_virt(addr, format!("struct module at {addr:#x}: name has no NUL in its {} bytes", self.name_len))
        })?;
        name.truncate(end);
        let raw = match self.state_size {
            1 => {
                let mut b = [0u8];
                mem.read_virt(addr + self.state, &mut b).map_err(at)?;
                i64::from(b[0])
            }
            _ => i64::from(mem.read_u32(addr + self.state).map_err(at)? as i32),
        };
        let state = match self.enums.iter().position(|&v| v == raw) {
            Some(0) => ModuleState::Live,
            Some(1) => ModuleState::Coming,
            Some(2) => ModuleState::Going,
            Some(3) => ModuleState::Unformed,
            _ => return Err(bad_virt(addr, format!("struct module at {addr:#x}: state {raw} is no module_state"))),
        };
        let rd = |o: u64| mem.read_ptr(addr + o).map_err(at);
        let rd32 = |o: u64| mem.read_u32(addr + o).map(u64::from).map_err(at);
        let (base, size, text) = match &self.memory {
            Memory::Layout { core_base, core_size, core_text, init_size } => {
                let base = rd(*core_base)?;
                let core = rd32(*core_size)?;
                let init = match init_size {
                    Some(o) => rd32(*o)?,
                    None => 0,
                };
                (base, core + init, (base, base.saturating_add(rd32(*core_text)?)))
            }
            Memory::Mem { regions, text } => {
                let mut total = 0u64;
                for &(_, s) in regions {
                    total += rd32(s)?;
                }
                let base = rd(regions[*text].0)?;
                (base, total, (base, base.saturating_add(rd32(regions[*text].1)?)))
            }
        };
        Ok(Module {
            name,
            base,
            size,
            state,
            taint_mask: match self.taints {
                Some(o) => rd(o)?,
                None => 0,
            },
            address: addr,
            text,
            kallsyms: match self.kallsyms {
                Some(o) => rd(o)?,
                None => 0,
            },
        })
    }
}

/// Every module on the list at `head` (the `modules` root), in list order (newest first, as
/// /proc/modules lists them). At most `limit` modules.
pub fn modules(mem: &dyn VirtMemory, types: &dyn KernelTypes, head: u64, limit: usize) -> Result<Vec<Module>> {
    let l = ModuleLayout::new(types)?;
    let mut out = Vec::new();
    walk_list(mem, head, l.next, l.prev, limit.min(MAX_LIST_ENTRIES), "module.list", |node| {
        out.push(l.read(mem, node - l.list)?);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::kobj::roots::fake::*;
    use crate::kobj::tasks::tests::link;
    use crate::kview::testmem::FakeMem;

    pub(crate) fn types(v64: bool) -> FakeTypes {
        let mut t = FakeTypes::default();
        list_types(&mut t);
        t.member(M, "state", 0, 4).member(M, "list", 8, 16).member(M, "name", 0x18, 56).member(M, "taints", 0x50, 8);
        t.member(M, "kallsyms", 0x58, 8);
        if v64 {
            for i in 0..7u64 {
                t.member(M, &format!("mem[{i}].base"), 0x100 + i * 0x20, 8);
                t.member(M, &format!("mem[{i}].size"), 0x108 + i * 0x20, 4);
            }
            t.enums.insert("MOD_MEM_NUM_TYPES".into(), 7);
            t.enums.insert("MOD_TEXT".into(), 0);
        } else {
            t.member(M, "core_layout", 0x100, 0x40)
                .member(M, "core_layout.base", 0x100, 8)
                .member(M, "core_layout.size", 0x108, 4)
                .member(M, "core_layout.text_size", 0x10c, 4)
                .member(M, "init_layout.size", 0x148, 4);
        }
        t
    }

    #[test]
    fn layouts_before_and_after_6_4() {
        for v64 in [false, true] {
            let m = FakeMem::default();
            let head = 0x10_0000u64;
            let (a, b) = (0x20_0000u64, 0x30_0000u64);
            link(&m, &[head, a + 8, b + 8]);
            m.write(a + 0x18, b"qemu_fw_cfg\0");
            m.write(b + 0x18, b"vfat\0");
            m.w32(b, 1); // coming
            m.w64(a + 0x50, (1 << 12) | (1 << 13));
            if v64 {
                m.w64(a + 0x100, 0xffff_ffff_c000_0000);
                m.w32(a + 0x108, 0x2000); // text
                m.w32(a + 0x128, 0x1000); // data
                m.w32(a + 0x148, 0x1000); // rodata
                m.w64(b + 0x100, 0xffff_ffff_c001_0000);
            } else {
                m.w64(a + 0x100, 0xffff_ffff_c000_0000);
                m.w32(a + 0x108, 0x4000);
                m.w32(a + 0x10c, 0x2000);
                m.w64(b + 0x100, 0xffff_ffff_c001_0000);
                m.w32(b + 0x148, 0x3000); // still initialising: init_layout counts
            }
            let ms = modules(&Flat(&m), &types(v64), head, 10).unwrap();
            assert_eq!(ms.len(), 2);
            assert_eq!(
                (&ms[0].name[..], ms[0].base, ms[0].size, ms[0].state),
                (&b"qemu_fw_cfg"[..], 0xffff_ffff_c000_0000, 0x4000, ModuleState::Live)
            );
            assert_eq!(ms[0].text, (0xffff_ffff_c000_0000, 0xffff_ffff_c000_2000));
            assert_eq!(taint_letters(ms[0].taint_mask), "(OE)");
            assert_eq!(ms[1].state, ModuleState::Coming);
            assert_eq!(ms[1].size, if v64 { 0 } else { 0x3000 });
            assert_eq!(ms[0].address, a);
            // A bad state is an error naming the module.
            m.w32(a, 9);
            let e = modules(&Flat(&m), &types(v64), head, 10).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Format);
            assert!(e.message.contains("0x200000"), "{}", e.message);
        }
        assert_eq!(taint_letters(0), "");
        assert_eq!(taint_letters(1 | (1 << 9)), "(P)"); // W is not a module taint
    }
}
