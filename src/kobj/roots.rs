//! The roots the walkers start from, and how each was found: `init_task` (the first task of the
//! `tasks` list) and `modules` (the head of the module list). Each comes from kallsyms when it
//! holds the symbol; where it does not (Debian 12's arm64 kernel keeps no data symbols) it is
//! found by a bounded search of the kernel's memory for a structure that validates itself, and
//! the [`Root`] says so. A search that finds nothing valid is a `MissingSymbol` error saying what
//! was tried, never a guess.
//!
//! Also here: [`walk_list`], the bounded, cycle-checked walk of a kernel `struct list_head` list
//! that every walker uses.

use super::{KernelTypes, Root, RootSource};
use crate::error::{Error, Result};
use crate::kview::kallsyms::KernelSymbols;
use crate::kview::{bad_virt, too_big_virt, VirtMemory};

/// Most entries any kernel list is walked for (tasks, threads, modules): a list that has not come
/// back to its head by then is an error, not a longer walk.
pub const MAX_LIST_ENTRIES: usize = 4 << 20;

/// Walk the `struct list_head` list at `head` (not itself an entry): call `f` with the address of
/// each entry's `list_head` node, in `next` order. Each node's `next->prev` must point back at it,
/// which also rules out a cycle that does not pass through the head (the node where such a cycle
/// closes has two predecessors); a list longer than `limit` is a `Limit` error naming the head.
pub fn walk_list(
    mem: &dyn VirtMemory,
    head: u64,
    next_off: u64,
    prev_off: u64,
    limit: usize,
    what: &str,
    mut f: impl FnMut(u64) -> Result<()>,
) -> Result<()> {
    let mut prev = head;
    let mut node = mem.read_ptr(head + next_off).map_err(|e| context(e, what, head))?;
    let mut n = 0usize;
    while node != head {
        if node == 0 {
            return Err(bad_virt(prev, format!("{what}: a NULL next pointer at {prev:#x} (list head {head:#x})")));
        }
        let back = mem.read_ptr(node.wrapping_add(prev_off)).map_err(|e| context(e, what, node))?;
        if back != prev {
            return Err(bad_virt(
                node,
                format!(
                    "{what}: the entry at {node:#x} has prev {back:#x}, not {prev:#x} (a broken or looping list; head {head:#x})"
                ),
            ));
        }
        n += 1;
        if n > limit {
            return Err(too_big_virt(head, format!("{what}: the list at {head:#x} does not close within {limit} entries")));
        }
        f(node)?;
        prev = node;
        node = mem.read_ptr(node.wrapping_add(next_off)).map_err(|e| context(e, what, node))?;
    }
    Ok(())
}

fn context(mut e: Error, what: &str, at: u64) -> Error {
    e.message = format!("{what}: reading the list node at {at:#x}: {}", e.message);
    e
}

/// The `next`/`prev` offsets of `struct list_head`.
pub fn list_offsets(types: &dyn KernelTypes) -> Result<(u64, u64)> {
    Ok((types.offset_of("struct list_head", "next")?, types.offset_of("struct list_head", "prev")?))
}

/// Where the kernel image lies and which areas may hold modules, from the VMCOREINFO text and
/// kallsyms (what a search for a root needs).
#[derive(Debug, Clone, Default)]
pub struct ImageHints {
    /// `SYMBOL(init_uts_ns)`: a `.data` object, the centre of the search for `init_task`.
    pub data_anchor: Option<u64>,
    /// `SYMBOL(_stext)`.
    pub stext: Option<u64>,
    /// `NUMBER(MODULES_VADDR)`..`NUMBER(MODULES_END)` (arm64 VMCOREINFO).
    pub modules_area: Option<(u64, u64)>,
    /// `SYMBOL(vmap_area_list)` with `OFFSET(vmap_area.va_start)` and `OFFSET(vmap_area.list)`:
    /// the kernel's list of vmalloc areas, which hold the modules.
    pub vmap_area_list: Option<u64>,
}

/// How far from the data anchor the search for `init_task` reads (each way).
pub const INIT_TASK_SCAN_RADIUS: u64 = 32 << 20;
const SCAN_CHUNK: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// `init_task`: the kallsyms symbol, else a search of the kernel's data around `hints.data_anchor`.
pub fn init_task(
    mem: &dyn VirtMemory,
    types: &dyn KernelTypes,
    syms: Option<&KernelSymbols>,
    hints: &ImageHints,
) -> Result<Root> {
    if let Some(addr) = syms.and_then(|s| s.address(b"init_task")) {
        return Ok(Root { addr, source: RootSource::Symbol });
    }
    let anchor = hints.data_anchor.ok_or_else(|| {
        Error::missing_symbol(
            "init_task: not in kallsyms, and VMCOREINFO has no SYMBOL(init_uts_ns) to search the kernel's data from",
        )
    })?;
    let comm_off = types.offset_of("struct task_struct", "comm")?;
    let pid_off = types.offset_of("struct task_struct", "pid")?;
    let parent_off = types.offset_of("struct task_struct", "real_parent")?;
    let tasks_off = types.offset_of("struct task_struct", "tasks")?;
    let (next_off, prev_off) = list_offsets(types)?;
    let needle: &[u8] = b"swapper/0\0";
    let ptr = mem.pointer_size() as u64;
    let check = |cand: u64| -> bool {
        let ok = || -> Result<bool> {
            if mem.read_u32(cand + pid_off)? != 0 || mem.read_ptr(cand + parent_off)? != cand {
                return Ok(false);
            }
            // The tasks list must close through valid task_structs (each with a NUL-terminated
            // comm and a real_parent that is itself readable).
            let mut valid = true;
            walk_list(mem, cand + tasks_off, next_off, prev_off, MAX_LIST_ENTRIES, "init_task search", |node| {
                let t = node - tasks_off;
                let mut comm = [0u8; 16];
                mem.read_virt(t + comm_off, &mut comm)?;
                let parent = mem.read_ptr(t + parent_off)?;
                if !comm.contains(&0) || mem.read_u32(parent + pid_off).is_err() {
                    valid = false;
                    return Err(bad_virt(t, "not a task"));
                }
                Ok(())
            })
            .map(|()| valid)
        };
        ok().unwrap_or(false)
    };
    // Chunks in order of distance from the anchor, each read whole or (when part of it is not
    // mapped) page by page.
    let base = anchor & !(SCAN_CHUNK - 1);
    let steps = INIT_TASK_SCAN_RADIUS / SCAN_CHUNK;
    let mut buf = vec![0u8; SCAN_CHUNK as usize + needle.len()];
    for i in 0..2 * steps {
        let delta = (i / 2 + (i % 2)) * SCAN_CHUNK;
        let start = if i % 2 == 0 { base.checked_add(delta) } else { base.checked_sub(delta) };
        let Some(start) = start else { continue };
        if i % 2 == 1 && delta == 0 {
            continue;
        }
        let got = read_chunk(mem, start, &mut buf);
        for hit in memchr::memmem::find_iter(&buf[..got], needle) {
            let Some(cand) = (start + hit as u64).checked_sub(comm_off) else { continue };
            if cand % ptr == 0 && check(cand) {
                return Ok(Root { addr: cand, source: RootSource::Scan });
            }
        }
    }
    Err(Error::missing_symbol(format!(
        "init_task: not in kallsyms, and no task_struct with comm swapper/0, pid 0, real_parent itself and a tasks list that closes \
         lies within {} MiB of init_uts_ns ({anchor:#x})",
        INIT_TASK_SCAN_RADIUS >> 20
    )))
}

/// Read as much of `[start, start + buf.len())` as is mapped into `buf` (unmapped pages as
/// zeros); returns the length filled.
fn read_chunk(mem: &dyn VirtMemory, start: u64, buf: &mut [u8]) -> usize {
    if mem.read_virt(start, buf).is_ok() {
        return buf.len();
    }
    let mut off = 0usize;
    while off < buf.len() {
        let a = start + off as u64;
        let n = ((PAGE - (a % PAGE)) as usize).min(buf.len() - off);
        if mem.read_virt(a, &mut buf[off..off + n]).is_err() {
            buf[off..off + n].fill(0);
        }
        off += n;
    }
    buf.len()
}

/// Largest vmalloc area searched for a `struct module`.
const MAX_MODULE_AREA: u64 = 64 << 20;
/// Most vmalloc areas looked at.
const MAX_VMAP_AREAS: usize = 1 << 20;

/// The head of the module list: the kallsyms symbol `modules`, else derived from a `struct module`
/// found in the areas that hold modules (the vmalloc areas near the kernel image or in the
/// VMCOREINFO module area): its `mkobj.mod` points back at it, and its `list` leads to a node that
/// is no module's — the head.
pub fn modules_head(
    mem: &dyn VirtMemory,
    types: &dyn KernelTypes,
    syms: Option<&KernelSymbols>,
    hints: &ImageHints,
) -> Result<Root> {
    if let Some(addr) = syms.and_then(|s| s.address(b"modules")) {
        return Ok(Root { addr, source: RootSource::Symbol });
    }
    let areas = module_areas(mem, types, hints)?;
    let list_off = types.offset_of("struct module", "list")?;
    let mod_off = types.offset_of("struct module", "mkobj.mod")?;
    let (next_off, prev_off) = list_offsets(types)?;
    let is_module = |m: u64| mem.read_ptr(m + mod_off).is_ok_and(|p| p == m);
    let ptr = mem.pointer_size();
    let mut tried = 0u64;
    for &(start, end) in &areas {
        let mut buf = vec![0u8; (end - start) as usize];
        read_chunk(mem, start, &mut buf);
        tried += end - start;
        let mut off = 0usize;
        while off + ptr <= buf.len() {
            let m = start + off as u64;
            let val = match ptr {
                4 => u64::from(u32::from_le_bytes(buf[off..off + 4].try_into().unwrap_or_default())),
                _ => u64::from_le_bytes(buf[off..off + 8].try_into().unwrap_or_default()),
            };
            let val = if mem.big_endian() { swap(val, ptr) } else { val };
            off += ptr;
            let Some(cand) = m.checked_sub(mod_off) else { continue };
            if val != cand || !is_module(cand) {
                continue;
            }
            // Follow the list to the first node that is not a module's: the head.
            let mut head = None;
            let r = walk_list(mem, cand + list_off, next_off, prev_off, MAX_LIST_ENTRIES, "module search", |node| {
                if head.is_none() && !is_module(node.wrapping_sub(list_off)) {
                    head = Some(node);
                }
                Ok(())
            });
            if let (Ok(()), Some(h)) = (r, head) {
                if !areas.iter().any(|&(s, e)| (s..e).contains(&h)) {
                    return Ok(Root { addr: h, source: RootSource::Derived });
                }
            }
        }
    }
    Err(Error::missing_symbol(format!(
        "modules: not in kallsyms, and no struct module whose mkobj.mod points at itself and whose list closes through a head \
         outside the module areas was found in {} area(s), {} KiB searched",
        areas.len(),
        tried >> 10
    )))
}

fn swap(v: u64, ptr: usize) -> u64 {
    if ptr == 4 {
        u64::from((v as u32).swap_bytes())
    } else {
        v.swap_bytes()
    }
}

/// The areas that may hold modules: the kernel's vmalloc areas (from `vmap_area_list`) inside the
/// VMCOREINFO module area or within 2 GiB of `_stext` (arm64 places modules there with KASLR),
/// other than the kernel image's own; without `vmap_area_list`, the module area itself.
fn module_areas(mem: &dyn VirtMemory, types: &dyn KernelTypes, hints: &ImageHints) -> Result<Vec<(u64, u64)>> {
    let near = |a: u64| -> bool {
        hints.modules_area.is_some_and(|(s, e)| (s..e).contains(&a)) || hints.stext.is_some_and(|t| a.abs_diff(t) < (2 << 30))
    };
    let image = |s: u64, e: u64| -> bool { [hints.stext, hints.data_anchor].iter().flatten().any(|&a| (s..e).contains(&a)) };
    let mut out = Vec::new();
    if let Some(head) = hints.vmap_area_list {
        let list_off = types.offset_of("struct vmap_area", "list")?;
        let start_off = types.offset_of("struct vmap_area", "va_start")?;
        let end_off = types.offset_of("struct vmap_area", "va_end")?;
        let (next_off, prev_off) = list_offsets(types)?;
        walk_list(mem, head, next_off, prev_off, MAX_VMAP_AREAS, "vmap_area_list", |node| {
            let va = node - list_off;
            let s = mem.read_ptr(va + start_off)?;
            let e = mem.read_ptr(va + end_off)?;
            if e > s && e - s <= MAX_MODULE_AREA && near(s) && !image(s, e) {
                out.push((s, e));
            }
            Ok(())
        })?;
    } else if let Some((s, e)) = hints.modules_area {
        let mut a = s;
        while a < e && out.len() < MAX_VMAP_AREAS {
            let n = (e - a).min(MAX_MODULE_AREA);
            out.push((a, a + n));
            a += n;
        }
    }
    if out.is_empty() {
        return Err(Error::missing_symbol(
            "modules: not in kallsyms, and neither vmap_area_list nor NUMBER(MODULES_VADDR)/NUMBER(MODULES_END) names an area to search",
        ));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake `KernelTypes` (a table of offsets and sizes) and a flat virtual memory over the
    //! test's fake physical memory.
    use std::collections::HashMap;

    use crate::error::{Error, Result};
    use crate::kobj::KernelTypes;
    use crate::kview::testmem::FakeMem;
    use crate::kview::VirtMemory;
    use crate::phys::PhysMemory;

    #[derive(Default)]
    pub struct FakeTypes {
        pub offsets: HashMap<(String, String), (u64, u64)>,
        pub sizes: HashMap<String, u64>,
        pub enums: HashMap<String, i64>,
    }

    impl FakeTypes {
        pub fn member(&mut self, ty: &str, path: &str, off: u64, size: u64) -> &mut Self {
            self.offsets.insert((ty.into(), path.into()), (off, size));
            self
        }
    }

    impl KernelTypes for FakeTypes {
        fn offset_of(&self, ty: &str, path: &str) -> Result<u64> {
            self.offsets
                .get(&(ty.to_string(), path.to_string()))
                .map(|v| v.0)
                .ok_or_else(|| Error::missing_type(format!("{ty} has no member {path}")))
        }
        fn size_of(&self, ty: &str) -> Result<u64> {
            self.sizes.get(ty).copied().ok_or_else(|| Error::missing_type(format!("no type {ty}")))
        }
        fn member_size(&self, ty: &str, path: &str) -> Result<u64> {
            self.offsets
                .get(&(ty.to_string(), path.to_string()))
                .map(|v| v.1)
                .ok_or_else(|| Error::missing_type(format!("{ty} has no member {path}")))
        }
        fn has_member(&self, ty: &str, path: &str) -> bool {
            self.offsets.contains_key(&(ty.to_string(), path.to_string()))
        }
        fn enumerator(&self, name: &str) -> Option<i64> {
            self.enums.get(name).copied()
        }
    }

    /// Virtual addresses read as the fake's physical ones (64-bit little-endian).
    pub struct Flat<'a>(pub &'a FakeMem);

    impl VirtMemory for Flat<'_> {
        fn read_virt(&self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
            self.0.read_phys(vaddr, buf)
        }
        fn pointer_size(&self) -> usize {
            8
        }
        fn big_endian(&self) -> bool {
            false
        }
    }

    pub fn list_types(t: &mut FakeTypes) {
        t.member("struct list_head", "next", 0, 8).member("struct list_head", "prev", 8, 8);
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;
    use crate::error::ErrorKind;
    use crate::kview::testmem::FakeMem;

    fn link(m: &FakeMem, nodes: &[u64]) {
        for (i, &n) in nodes.iter().enumerate() {
            let next = nodes[(i + 1) % nodes.len()];
            let prev = nodes[(i + nodes.len() - 1) % nodes.len()];
            m.w64(n, next);
            m.w64(n + 8, prev);
        }
    }

    #[test]
    fn walk_list_visits_in_order_and_closes() {
        let m = FakeMem::default();
        link(&m, &[0x1000, 0x2000, 0x3000, 0x4000]);
        let mut seen = vec![];
        walk_list(&Flat(&m), 0x1000, 0, 8, 10, "t", |n| {
            seen.push(n);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0x2000, 0x3000, 0x4000]);
    }

    #[test]
    fn walk_list_loop_not_through_head_is_an_error_naming_the_node() {
        let m = FakeMem::default();
        link(&m, &[0x1000, 0x2000, 0x3000]);
        m.w64(0x3000, 0x2000); // 0x3000 -> 0x2000: a loop that never returns to the head
        let e = walk_list(&Flat(&m), 0x1000, 0, 8, 10, "t", |_| Ok(())).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format);
        assert!(e.message.contains("0x2000"), "{}", e.message);
    }

    #[test]
    fn walk_list_that_does_not_close_within_the_bound() {
        let m = FakeMem::default();
        let nodes: Vec<u64> = (1..=20).map(|i| i * 0x100).collect();
        link(&m, &nodes);
        let e = walk_list(&Flat(&m), 0x100, 0, 8, 5, "t", |_| Ok(())).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Limit);
        assert!(e.message.contains("0x100") && e.message.contains("5 entries"), "{}", e.message);
        // A self-looping node and a NULL next are errors too.
        m.w64(0x100, 0x200);
        m.w64(0x200, 0);
        m.w64(0x208, 0x100);
        assert!(walk_list(&Flat(&m), 0x100, 0, 8, 50, "t", |_| Ok(())).unwrap_err().message.contains("NULL"));
        m.w64(0x200, 0x200);
        assert!(walk_list(&Flat(&m), 0x100, 0, 8, 50, "t", |_| Ok(())).is_err());
    }

    fn task_types() -> FakeTypes {
        let mut t = FakeTypes::default();
        list_types(&mut t);
        t.member("struct task_struct", "tasks", 0x10, 16)
            .member("struct task_struct", "pid", 0x20, 4)
            .member("struct task_struct", "real_parent", 0x28, 8)
            .member("struct task_struct", "comm", 0x40, 16);
        t
    }

    #[test]
    fn init_task_found_by_scan_and_validated() {
        let m = FakeMem::default();
        let t = task_types();
        let anchor = 0xffff_0000_0040_0000u64;
        // A decoy: right comm, wrong pid; then the real one with a second task on its list.
        for (cand, pid) in [(anchor + 0x2000, 7u32), (anchor - 0x3000, 0)] {
            m.write(cand + 0x40, b"swapper/0\0\0\0\0\0\0\0");
            m.w32(cand + 0x20, pid);
            m.w64(cand + 0x28, cand);
        }
        let init = anchor - 0x3000;
        let other = anchor + 0x9000;
        link(&m, &[init + 0x10, other + 0x10]);
        m.w64(other + 0x28, init);
        m.write(other + 0x40, b"init\0");
        let hints = ImageHints { data_anchor: Some(anchor), ..Default::default() };
        let r = init_task(&Flat(&m), &t, None, &hints).unwrap();
        assert_eq!(r, Root { addr: init, source: RootSource::Scan });
        // Break the list: the candidate no longer validates, and the error says what was tried.
        m.w64(other + 0x18, 0x1234);
        let e = init_task(&Flat(&m), &t, None, &hints).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingSymbol);
        assert!(e.message.contains("swapper/0"), "{}", e.message);
        let e = init_task(&Flat(&m), &t, None, &ImageHints::default()).unwrap_err();
        assert!(e.message.contains("init_uts_ns"), "{}", e.message);
    }

    #[test]
    fn modules_head_derived_from_a_module_in_a_vmalloc_area() {
        let m = FakeMem::default();
        let mut t = FakeTypes::default();
        list_types(&mut t);
        t.member("struct module", "list", 8, 16)
            .member("struct module", "mkobj.mod", 0x60, 8)
            .member("struct vmap_area", "va_start", 0, 8)
            .member("struct vmap_area", "va_end", 8, 8)
            .member("struct vmap_area", "list", 0x28, 16);
        let stext = 0xffff_c000_1000_0000u64;
        let head = stext + 0x80_0000; // in the image
        let (m1, m2) = (stext - 0x1000_0000 + 0x40, stext - 0x1000_0000 + 0x8040);
        for x in [m1, m2] {
            m.w64(x + 0x60, x);
        }
        link(&m, &[head, m1 + 8, m2 + 8]);
        // The vmalloc areas: one for the modules, one holding the kernel image (skipped).
        let vlist = stext + 0x90_0000;
        let (va1, va2) = (0x5000_0000u64, 0x5000_1000u64);
        link(&m, &[vlist, va1 + 0x28, va2 + 0x28]);
        m.w64(va1, stext - 0x1000_0000);
        m.w64(va1 + 8, stext - 0x1000_0000 + 0x10000);
        m.w64(va2, stext);
        m.w64(va2 + 8, stext + 0x100_0000);
        let hints = ImageHints { stext: Some(stext), vmap_area_list: Some(vlist), ..Default::default() };
        let r = modules_head(&Flat(&m), &t, None, &hints).unwrap();
        assert_eq!(r, Root { addr: head, source: RootSource::Derived });
        // No module validates: a MissingSymbol error naming what was searched.
        m.w64(m1 + 0x60, 0);
        m.w64(m2 + 0x60, 0);
        let e = modules_head(&Flat(&m), &t, None, &hints).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingSymbol);
        assert!(e.message.contains("1 area"), "{}", e.message);
    }
}
