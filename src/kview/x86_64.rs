//! x86_64: 4- and 5-level page tables from `SYMBOL(init_top_pgt)`, and the randomised direct map.
//!
//! VMCOREINFO gives `SYMBOL(init_top_pgt)`, `NUMBER(phys_base)` (signed decimal: may be negative),
//! `NUMBER(pgtable_l5_enabled)` and `NUMBER(sme_mask)`. The root table's physical address comes
//! from the kernel-image mapping `pa = va - 0xffffffff80000000 + phys_base` (mod 2^64); every
//! translation then walks the tables, with the SME encryption bit stripped from each entry (as
//! makedumpfile and libkdumpfile do). The walk is checked once at setup: it must map
//! `init_top_pgt` back onto the root (with the other level count tried if the key is missing or
//! wrong).
//!
//! `page_offset_base` (the direct map's start, randomised under KASLR) is not in VMCOREINFO: it is
//! the lowest present leaf at or above 0xffff888000000000 (4-level) or 0xff11000000000000 (5-level)
//! minus the physical address that leaf maps, found by scanning the tables in address order and
//! skipping absent subtrees (a handful of table reads), then validated: 1 GiB aligned, and the
//! direct-map address of the root table must walk back to the root.

use std::sync::OnceLock;

use super::walker::{lowest_leaf, EntryFormat, Walker};
use super::Keys;
use super::{Arch, Translator};
use crate::error::{Error, ErrorKind, Result};
use crate::phys::PhysMemory;

/// `__START_KERNEL_map`: the kernel image's virtual base before the KASLR offset.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Lowest direct-map start: `__PAGE_OFFSET_BASE_L4` / `_L5`.
pub const PAGE_OFFSET_BASE_L4: u64 = 0xffff_8880_0000_0000;
pub const PAGE_OFFSET_BASE_L5: u64 = 0xff11_0000_0000_0000;
/// KASLR places the direct map below the CPU entry area (`CPU_ENTRY_AREA_BASE`).
const KASLR_END: u64 = 0xffff_fe00_0000_0000;
/// Table pages the direct-map discovery may read before giving up (hostile tables).
pub const DISCOVERY_TABLE_BUDGET: u32 = 1024;
const GIB: u64 = 1 << 30;

#[derive(Debug)]
pub struct X86_64 {
    pub init_top_pgt: u64,
    pub phys_base: i64,
    pub sme_mask: u64,
    pub five_level: bool,
    page_offset: OnceLock<std::result::Result<u64, Error>>,
}

pub(crate) fn walker(root: u64, five_level: bool, sme_mask: u64) -> Walker {
    Walker {
        root,
        levels: if five_level { 5 } else { 4 },
        page_shift: 12,
        bits: 9,
        top_bits: 9,
        entry_size: 8,
        big_endian: false,
        format: EntryFormat::X86_64 { mask: 0x000f_ffff_ffff_f000 & !sme_mask },
    }
}

pub(crate) fn build(mem: &dyn PhysMemory, keys: &Keys<'_>) -> Result<Translator> {
    let (init_top_pgt, root_key) = match keys.view.symbol("init_top_pgt")? {
        Some(s) => (s, "SYMBOL(init_top_pgt)"),
        None => (keys.need(keys.view.symbol("swapper_pg_dir"), "SYMBOL(init_top_pgt)")?, "SYMBOL(swapper_pg_dir)"),
    };
    let phys_base = keys.need(keys.view.phys_base(), "NUMBER(phys_base)")?;
    let l5_key = keys.view.number("pgtable_l5_enabled")?;
    let sme_mask = keys.view.number("sme_mask")?.unwrap_or(0) as u64;
    if init_top_pgt < START_KERNEL_MAP {
        return Err(keys.error_at(
            root_key,
            format!("SYMBOL(init_top_pgt)={init_top_pgt:x} is below the kernel image base {START_KERNEL_MAP:#x}"),
        ));
    }
    let root = (init_top_pgt - START_KERNEL_MAP).wrapping_add(phys_base as u64) & !0xfff;
    // The level count the text says first, then the other one.
    let first = l5_key.is_some_and(|v| v != 0);
    let mut why = Vec::new();
    for five_level in [first, !first] {
        let w = walker(root, five_level, sme_mask);
        match w.walk(mem, init_top_pgt) {
            Ok(r) if r.pa == root => {
                let x = X86_64 { init_top_pgt, phys_base, sme_mask, five_level, page_offset: OnceLock::new() };
                return Ok(Translator::new(Arch::X86_64(x), w, 8));
            }
            Ok(r) => why.push(format!("{}-level: it maps to {:#x}", w.levels, r.pa)),
            Err(e) if e.kind == ErrorKind::Unmapped => why.push(format!("{}-level: {}", w.levels, e.message)),
            // Memory the dump lacks (or cannot read) is that error, not a layout guess.
            Err(e) => return Err(e),
        }
    }
    Err(keys.error_at(root_key, format!(
            "the page tables at physical {root:#x} (init_top_pgt {init_top_pgt:#x} - {START_KERNEL_MAP:#x} + phys_base {phys_base}) \
             do not map init_top_pgt back onto themselves ({}): phys_base or init_top_pgt is wrong, or this memory is not the kernel's",
            why.join("; ")
        ),
    ))
}

impl X86_64 {
    /// `page_offset_base`, discovered once (see the module docs).
    pub(crate) fn page_offset_base(&self, mem: &dyn PhysMemory, w: &Walker) -> Result<u64> {
        self.page_offset.get_or_init(|| discover_page_offset_base(mem, w)).clone()
    }
}

/// Find and validate the direct map's start from the page tables alone.
pub(crate) fn discover_page_offset_base(mem: &dyn PhysMemory, w: &Walker) -> Result<u64> {
    let lo = if w.levels == 5 { PAGE_OFFSET_BASE_L5 } else { PAGE_OFFSET_BASE_L4 };
    let bits = w.va_bits();
    let m = (1u64 << bits) - 1;
    let sext = |va: u64| va | !m;
    let mut budget = DISCOVERY_TABLE_BUDGET;
    let found = lowest_leaf(w, mem, lo & m, (KASLR_END - 1) & m, &mut budget)?;
    let Some((va, pa)) = found else {
        return Err(Error::unmapped(lo, "direct map not found: no present page-table leaf between here and the CPU entry area"));
    };
    let va = sext(va);
    let base = va.wrapping_sub(pa);
    if base % GIB != 0 || base < lo || base >= KASLR_END {
        return Err(super::layout_error(format!(
            "direct-map discovery: the lowest leaf at/above {lo:#x} is {va:#x} -> physical {pa:#x}, giving page_offset_base \
                 {base:#x}, which is not a 1 GiB-aligned address in the direct-map range"
        )));
    }
    // The direct map maps all RAM, the page tables included.
    let probe = base.wrapping_add(w.root);
    match w.walk(mem, probe) {
        Ok(r) if r.pa == w.root => Ok(base),
        Ok(r) => Err(super::layout_error(format!("direct-map discovery: page_offset_base {base:#x} fails validation: {probe:#x} maps to {:#x}, not the root table {:#x}", r.pa, w.root),
        )),
        Err(e) => Err(super::layout_error(format!("direct-map discovery: page_offset_base {base:#x} fails validation: the root table's direct-map address: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitness::EM_X86_64;
    use crate::kview::testmem::{Capped, FakeMem};
    use crate::kview::KernelView;
    use crate::kview::{build_translator, VirtMemory};

    const PHYS_BASE: i64 = -0xa00_0000; // KASLR-style negative phys_base

    struct Guest {
        mem: FakeMem,
        next: std::cell::Cell<u64>,
        root: u64,
        levels: u32,
    }

    impl Guest {
        /// A guest whose root table is at `root`, with tables allocated from 0x100000 up.
        fn new(root: u64, levels: u32) -> Guest {
            let g = Guest { mem: FakeMem::default(), next: std::cell::Cell::new(0x10_0000), root, levels };
            g.mem.page(root);
            g
        }
        fn alloc(&self) -> u64 {
            let a = self.next.get();
            self.next.set(a + 0x1000);
            self.mem.page(a);
            a
        }
        /// Map `va` -> `pa` with a leaf at `leaf_level` (1: 4 KiB, 2: 2 MiB, 3: 1 GiB).
        fn map(&self, va: u64, pa: u64, leaf_level: u32, extra: u64) {
            let mut table = self.root;
            for level in (leaf_level..=self.levels).rev() {
                let shift = 12 + 9 * (level - 1);
                let slot = table + ((va >> shift) & 511) * 8;
                if level == leaf_level {
                    let ps = if level > 1 { 0x80 } else { 0 };
                    self.mem.w64(slot, pa | 0x63 | ps | extra);
                    return;
                }
                let mut b = [0u8; 8];
                crate::phys::PhysMemory::read_phys(&self.mem, slot, &mut b).unwrap();
                let e = u64::from_le_bytes(b);
                table = if e & 1 == 1 {
                    e & 0x000f_ffff_ffff_f000 & !extra
                } else {
                    let t = self.alloc();
                    self.mem.w64(slot, t | 0x63 | extra);
                    t
                };
            }
        }
    }

    fn text(init_top_pgt: u64, l5: Option<u32>, sme: u64) -> String {
        let mut s =
            format!("OSRELEASE=6.1.0\nPAGESIZE=4096\nSYMBOL(init_top_pgt)={init_top_pgt:x}\nNUMBER(phys_base)={PHYS_BASE}\n");
        if let Some(l) = l5 {
            s += &format!("NUMBER(pgtable_l5_enabled)={l}\n");
        }
        s += &format!("NUMBER(sme_mask)={sme}\n");
        s
    }

    /// A kernel image at KASLR offset 0x2000_0000, init_top_pgt inside it, a direct map at
    /// `pob` covering 0..8 MiB with 2 MiB pages and one 4 KiB page, a 1 GiB page elsewhere.
    fn guest(levels: u32, pob: u64, sme: u64) -> (Guest, u64) {
        let init_top_pgt = 0xffff_ffff_a3a0_a000u64;
        let root = (init_top_pgt - START_KERNEL_MAP).wrapping_add(PHYS_BASE as u64);
        let g = Guest::new(root, levels);
        // Kernel image: 2 MiB pages covering the root.
        let img = init_top_pgt & !0x1f_ffff;
        g.map(img, (img - START_KERNEL_MAP).wrapping_add(PHYS_BASE as u64), 2, sme);
        // Direct map: 4 KiB page at pa 0, 2 MiB pages from 2 MiB, and the page holding the root.
        g.map(pob, 0, 1, sme);
        for i in 1..4u64 {
            g.map(pob + i * 0x20_0000, i * 0x20_0000, 2, sme);
        }
        g.map(pob + (root & !0x1f_ffff), root & !0x1f_ffff, 2, sme);
        // A 1 GiB page in the vmalloc area.
        g.map(vmalloc(levels), 0x4000_0000, 3, sme);
        (g, init_top_pgt)
    }

    fn vmalloc(levels: u32) -> u64 {
        if levels == 5 {
            0xffa0_0000_0000_0000
        } else {
            0xffff_c900_0000_0000
        }
    }

    fn view<'a>(mem: &'a FakeMem, t: &'a Translator) -> KernelView<'a> {
        KernelView::new(mem, t)
    }

    #[test]
    fn four_and_five_level_walks_with_every_page_size() {
        for (levels, pob) in [(4, 0xffff_8c80_0000_0000u64), (5, 0xff11_2000_0000_0000u64), (4, PAGE_OFFSET_BASE_L4)] {
            let (g, itp) = guest(levels, pob, 0);
            let t = build_translator(&g.mem, EM_X86_64, false, text(itp, Some(u32::from(levels == 5)), 0).as_bytes()).unwrap();
            let v = view(&g.mem, &t);
            assert_eq!(t.walker().levels, levels);
            assert_eq!(v.translate(itp).unwrap(), g.root, "kernel image");
            assert_eq!(v.translate(itp + 0x123).unwrap(), g.root + 0x123);
            assert_eq!(v.translate(pob + 0x10).unwrap(), 0x10, "4 KiB direct-map page");
            assert_eq!(v.translate(pob + 0x40_0000 + 5).unwrap(), 0x40_0005, "2 MiB page");
            assert_eq!(v.translate(vmalloc(levels) + 0x1234_5678).unwrap(), 0x4000_0000 + 0x1234_5678, "1 GiB page");
            // Unmapped: second 4 KiB page of the first direct-map 2 MiB, a hole, non-canonical.
            let e = v.translate(pob + 0x1000).unwrap_err();
            assert_eq!((e.kind, e.address()), (ErrorKind::Unmapped, Some(pob + 0x1000)), "{e}");
            assert_eq!(v.translate(0xffff_ffff_0000_0000).unwrap_err().kind, ErrorKind::Unmapped);
            let e = v.translate(0x8000_0000_0000_1000).unwrap_err();
            assert!(e.kind == ErrorKind::Unmapped && e.message.contains("canonical"), "{e}");
            // The direct map is discovered and validated.
            let l = v.layout();
            assert_eq!(l.page_offset, Some(pob), "{l:?}");
            assert_eq!(l.levels, levels);
        }
    }

    #[test]
    fn read_virt_spans_pages_and_stops_at_holes() {
        let (g, itp) = guest(4, 0xffff_9000_0000_0000, 0);
        g.mem.page(0);
        let t = build_translator(&g.mem, EM_X86_64, false, text(itp, None, 0).as_bytes()).unwrap();
        let v = view(&g.mem, &t);
        let pob = 0xffff_9000_0000_0000u64;
        // 0x1ff0 is in the 4 KiB page's hole (only page 0 is 4 KiB-mapped), so read through 2 MiB.
        g.mem.write(0x20_0ff0, b"0123456789abcdefXYZ");
        let mut b = [0u8; 19];
        v.read_virt(pob + 0x20_0ff0, &mut b).unwrap();
        assert_eq!(&b, b"0123456789abcdefXYZ");
        // Across the 4 KiB page into an unmapped page.
        let e = v.read_virt(pob + 0xff8, &mut b).unwrap_err();
        assert_eq!((e.kind, e.address()), (ErrorKind::Unmapped, Some(pob + 0x1000)));
        assert_eq!(v.read_u64(pob + 0x20_0ff0).unwrap(), u64::from_le_bytes(*b"01234567"));
        assert_eq!(v.pointer_size(), 8);
    }

    #[test]
    fn sme_mask_is_stripped_and_five_level_found_without_the_key() {
        let sme = 1u64 << 47;
        let (g, itp) = guest(5, 0xff11_0000_0000_0000, sme);
        // No pgtable_l5_enabled key: 4-level is tried first, fails the self-map check, 5 works.
        let t = build_translator(&g.mem, EM_X86_64, false, text(itp, None, sme).as_bytes()).unwrap();
        assert_eq!(t.walker().levels, 5);
        assert_eq!(view(&g.mem, &t).translate(0xff11_0000_0040_0003).unwrap(), 0x40_0003);
        // Without stripping, the tables point outside memory: the setup check fails.
        let e = build_translator(&g.mem, EM_X86_64, false, text(itp, Some(1), 0).as_bytes()).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Format | ErrorKind::Absent), "{e}");
    }

    #[test]
    fn cache_hits_cost_no_reads() {
        let (g, itp) = guest(4, 0xffff_9000_0000_0000, 0);
        let t = build_translator(&g.mem, EM_X86_64, false, text(itp, None, 0).as_bytes()).unwrap();
        let v = view(&g.mem, &t);
        let va = 0xffff_9000_0060_0000u64;
        assert_eq!(v.translate_cached(va), None);
        v.translate(va).unwrap();
        assert_eq!(v.translate_cached(va + 5), Some(0x60_0005));
        let before = g.mem.reads.load(std::sync::atomic::Ordering::Relaxed);
        for i in 0..4096 {
            assert_eq!(v.translate(va + i).unwrap(), 0x60_0000 + i);
        }
        assert_eq!(g.mem.reads.load(std::sync::atomic::Ordering::Relaxed), before, "same page: no walk");
        // Another 4 KiB page in the same 2 MiB region: the region cache answers without reads.
        v.translate(va + 0x5000).unwrap();
        assert_eq!(g.mem.reads.load(std::sync::atomic::Ordering::Relaxed), before);
    }

    #[test]
    fn missing_keys_are_named() {
        let g = FakeMem::default();
        let e = build_translator(&g, EM_X86_64, false, b"OSRELEASE=6.1\nNUMBER(phys_base)=0\n").unwrap_err();
        assert!(e.message.contains("SYMBOL(init_top_pgt)"), "{e}");
        let e = build_translator(&g, EM_X86_64, false, b"OSRELEASE=6.1\nSYMBOL(init_top_pgt)=ffffffff82a0a000\n").unwrap_err();
        assert!(e.message.contains("NUMBER(phys_base)"), "{e}");
        // Root table not in the dump: Absent, not garbage.
        let e = build_translator(&g, EM_X86_64, false, text(0xffff_ffff_82a0_a000, None, 0).as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Absent, "{e}");
    }

    #[test]
    fn hostile_tables_are_bounded() {
        // Every entry of every table points back at the root: a self-loop everywhere.
        let init_top_pgt = 0xffff_ffff_8100_0000u64;
        let root = 0x100_0000u64; // phys_base 0
        let mem = FakeMem::default();
        for i in 0..512 {
            mem.w64(root + i * 8, root | 0x63);
        }
        let txt = format!("SYMBOL(init_top_pgt)={init_top_pgt:x}\nNUMBER(phys_base)=0\n");
        // The walk is fixed-depth: init_top_pgt maps to `root` at level 1 in a self-loop, which
        // is in fact consistent, so the translator is built.
        let t = build_translator(&mem, EM_X86_64, false, txt.as_bytes()).expect("a self-loop maps init_top_pgt onto the root");
        assert_eq!((t.walker().levels, t.walker().root), (4, root));
        // Discovery reads one table per level down to the first leaf, whose page_offset_base
        // (0xffff888000000000 - root) is not 1 GiB aligned: a layout without a direct map.
        let capped = Capped::new(&mem, u64::from(DISCOVERY_TABLE_BUDGET) + 1);
        let l = t.layout(&capped);
        assert_eq!((l.arch, l.levels, l.root, l.page_offset, l.pae), ("x86_64", 4, root, None, None), "{l:?}");
        let why = l.page_offset_error.as_deref().unwrap_or_default();
        assert!(why.contains("not a 1 GiB-aligned address"), "{why}");
        assert_eq!(capped.reads(), 4, "one table per level");

        // Present entries to empty tables: the root and one empty table per level-4 entry of the
        // direct-map range (273..=507) are read, then the direct map is not found.
        let mem = FakeMem::default();
        let empty = 0x200_0000u64;
        mem.page(empty);
        for i in 0..512 {
            mem.w64(root + i * 8, empty | 0x63);
        }
        let w = walker(root, false, 0);
        let capped = Capped::new(&mem, u64::from(DISCOVERY_TABLE_BUDGET) + 1);
        let e = discover_page_offset_base(&capped, &w).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unmapped, "{e}");
        assert!(e.message.starts_with("direct map not found"), "{e}");
        assert_eq!(capped.reads(), 1 + (507 - 273 + 1));

        // Three levels of present entries over empty tables (512^3 tables to visit): discovery
        // stops at its budget of table reads.
        let mem = FakeMem::default();
        let (l3, l2, l1) = (0x300_0000u64, 0x400_0000u64, 0x500_0000u64);
        mem.page(l1);
        for (table, next) in [(root, l3), (l3, l2), (l2, l1)] {
            for i in 0..512 {
                mem.w64(table + i * 8, next | 0x63);
            }
        }
        let capped = Capped::new(&mem, u64::from(DISCOVERY_TABLE_BUDGET) + 1);
        let e = discover_page_offset_base(&capped, &w).unwrap_err();
        assert!(!capped.hit_cap(), "discovery read past its budget: {e}");
        assert_eq!((e.kind, e.message.contains("budget")), (ErrorKind::Limit, true), "{e}");
        assert_eq!(capped.reads(), u64::from(DISCOVERY_TABLE_BUDGET));
    }
}
