//! The kernel's objects from a dump: its tasks, its modules, and names for its addresses. The
//! walkers (`crate::kobj`) get the kernel view, the kernel's types, kallsyms and the hints the
//! VMCOREINFO text gives for finding their roots.

use std::sync::Arc;

use super::Dump;
use crate::error::Result;
use crate::kobj::modsyms::{self, ModuleSymbols};
use crate::kobj::modules::{self, Module};
use crate::kobj::roots::{self, ImageHints, MAX_LIST_ENTRIES};
use crate::kobj::tasks::{self, Task};
use crate::kobj::{KernelTypes, Root};
use crate::kview::kallsyms::KernelSymbols;

/// Most modules walked.
const MAX_MODULES: usize = 1 << 16;

/// A name for an address: the symbol at or below it, the offset from it and its size, as the
/// kernel's Call Trace prints them (`name+0xoff/0xsize [module]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub offset: u64,
    /// To the next symbol (or the end of a module's text); None for the last symbol.
    pub size: Option<u64>,
    /// The module's name, for an address in a module.
    pub module: Option<String>,
}

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{:#x}", self.name, self.offset)?;
        if let Some(s) = self.size {
            write!(f, "/{s:#x}")?;
        }
        if let Some(m) = &self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

impl Dump {
    /// kallsyms when it decodes (a dump whose kallsyms cannot be read still has its roots
    /// searched for).
    fn symbols_opt(&self) -> Option<Arc<KernelSymbols>> {
        self.symbols().ok()
    }

    /// What the VMCOREINFO text tells of where the kernel image and the modules lie.
    pub fn image_hints(&self) -> Result<ImageHints> {
        self.with_vmcoreinfo(|vi| {
            let num = |k: &str| vi.number(k).ok().flatten().and_then(|v| u64::try_from(v & u64::MAX as i128).ok());
            let list_ok = vi.offset("vmap_area", "list").ok().flatten().is_some();
            Ok(ImageHints {
                data_anchor: vi.symbol("init_uts_ns").ok().flatten(),
                stext: vi.symbol("_stext").ok().flatten(),
                modules_area: num("MODULES_VADDR").zip(num("MODULES_END")).filter(|(s, e)| s < e),
                vmap_area_list: vi.symbol("vmap_area_list").ok().flatten().filter(|_| list_ok),
            })
        })
    }

    /// `init_task`, and how it was found (with the given types).
    pub fn init_task_root_with(&self, types: &dyn KernelTypes) -> Result<Root> {
        let view = self.kernel_view()?;
        roots::init_task(&view, types, self.symbols_opt().as_deref(), &self.image_hints()?)
    }

    /// The head of the module list, and how it was found (with the given types).
    pub fn modules_root_with(&self, types: &dyn KernelTypes) -> Result<Root> {
        let view = self.kernel_view()?;
        roots::modules_head(&view, types, self.symbols_opt().as_deref(), &self.image_hints()?)
    }

    /// Every thread, from init_task (pid 0 included), read with the kernel's own types.
    pub fn tasks(&self) -> Result<Vec<Task>> {
        let types = self.kernel_types()?;
        self.tasks_with(&*types)
    }

    /// [`Dump::tasks`] with the given types.
    pub fn tasks_with(&self, types: &dyn KernelTypes) -> Result<Vec<Task>> {
        let root = self.init_task_root_with(types)?;
        let view = self.kernel_view()?;
        tasks::tasks(&view, types, root.addr, MAX_LIST_ENTRIES)
    }

    /// The loaded modules, newest first (as /proc/modules lists them).
    pub fn modules(&self) -> Result<Vec<Module>> {
        let types = self.kernel_types()?;
        self.modules_with(&*types)
    }

    /// [`Dump::modules`] with the given types.
    pub fn modules_with(&self, types: &dyn KernelTypes) -> Result<Vec<Module>> {
        let root = self.modules_root_with(types)?;
        let view = self.kernel_view()?;
        modules::modules(&view, types, root.addr, MAX_MODULES)
    }

    /// Every module's symbols, read once and shared (a failed read is retried on the next call).
    pub fn module_symbols(&self) -> Result<Arc<Vec<ModuleSymbols>>> {
        if let Some(s) = self.objects.get() {
            return Ok(s.clone());
        }
        let types = self.kernel_types()?;
        let s = Arc::new(self.module_symbols_with(&*types)?);
        Ok(self.objects.get_or_init(|| s).clone())
    }

    /// [`Dump::module_symbols`] with the given types (not cached).
    pub fn module_symbols_with(&self, types: &dyn KernelTypes) -> Result<Vec<ModuleSymbols>> {
        let view = self.kernel_view()?;
        self.modules_with(types)?.iter().map(|m| modsyms::module_symbols(&view, types, m)).collect()
    }

    /// The symbol `addr` is in: the kernel's own (kallsyms) inside the kernel image, else a
    /// module's. None when no symbol names it. Reading the modules needs the kernel's types: an
    /// address outside the kernel image on a dump without them is that error.
    pub fn symbolize(&self, addr: u64) -> Result<Option<Symbol>> {
        let syms = self.symbols_opt();
        if let Some(s) = syms.as_deref().and_then(|k| vmlinux_symbol(k, addr)) {
            return Ok(Some(s));
        }
        Ok(module_symbol(&self.module_symbols()?, addr))
    }
}

/// The symbol of a module address.
pub fn module_symbol(mods: &[ModuleSymbols], addr: u64) -> Option<Symbol> {
    mods.iter().find_map(|m| {
        m.lookup(addr).map(|(s, offset, size)| Symbol {
            name: String::from_utf8_lossy(&s.name).into_owned(),
            offset,
            size,
            module: Some(String::from_utf8_lossy(&m.module).into_owned()),
        })
    })
}

/// The kernel's own symbol of `addr`, when `addr` lies in the kernel image: from `_stext` (or
/// `_text`) to `_end` (or, without data symbols, the last text symbol's end marker `_etext` /
/// `_einittext`, whichever is higher; without either, just past the highest symbol).
pub fn vmlinux_symbol(k: &KernelSymbols, addr: u64) -> Option<Symbol> {
    let start = k.address(b"_text").or_else(|| k.address(b"_stext"))?;
    let end = k
        .address(b"_end")
        .or_else(|| [k.address(b"_etext"), k.address(b"_einittext")].into_iter().flatten().max())
        .or_else(|| k.iter().map(|(_, a, _)| a).max().map(|a| a.saturating_add(1)))?;
    if !(start..end).contains(&addr) {
        return None;
    }
    let (i, offset) = k.lookup(addr)?;
    let a = k.address_of(i);
    // The size runs to the next symbol at a higher address.
    let next = next_address(k, a, end);
    Some(Symbol { name: String::from_utf8_lossy(k.name(i)).into_owned(), offset, size: next.map(|n| n - a), module: None })
}

/// The lowest symbol address above `a` (up to `end`), found by bisecting `lookup`, which is
/// monotonic in the address (kallsyms keeps no public successor query).
fn next_address(k: &KernelSymbols, a: u64, end: u64) -> Option<u64> {
    let above = |x: u64| k.lookup(x).is_some_and(|(i, _)| k.address_of(i) > a);
    if !above(end) {
        return None;
    }
    let (mut lo, mut hi) = (a, end); // lookup(lo) is at a, lookup(hi) above it
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if above(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_prints_as_the_call_trace() {
        let s = Symbol { name: "fw_probe".into(), offset: 0x23, size: Some(0x80), module: Some("qemu_fw_cfg".into()) };
        assert_eq!(s.to_string(), "fw_probe+0x23/0x80 [qemu_fw_cfg]");
        let s = Symbol { name: "panic".into(), offset: 0, size: None, module: None };
        assert_eq!(s.to_string(), "panic+0x0");
    }
}
