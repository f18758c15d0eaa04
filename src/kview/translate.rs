//! Kernel virtual → guest physical translation: a generic page-table walker, two small lock-free
//! caches, and the [`Translator`] that ties an architecture's layout to them.
//!
//! Every kernel virtual address is translated by walking the kernel's own page tables (from
//! `init_top_pgt` / `swapper_pg_dir`), so an address the kernel does not map is an
//! [`Unmapped`](crate::error::ErrorKind::Unmapped) error and a page table the dump lacks is the
//! [`Absent`](crate::error::ErrorKind::Absent) error of the physical read, never garbage. The
//! fixed-offset formulas (x86_64 kernel image, i386 lowmem, arm64 `kimage_voffset`) are used only to
//! find the root table. A walk has a fixed number of levels, so hostile tables cannot loop it.
//!
//! Two caches keep repeated work cheap: a 4 KiB page cache (a hit costs no read at all) and a
//! region cache keyed by the span of one last-level table (a hit costs one entry read). Both are
//! direct-mapped arrays of seqlock-protected slots: `Send + Sync`, no locks, no allocation after
//! construction.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::VirtMemory;
use crate::error::{Error, Result};
use crate::phys::PhysMemory;

/// Granularity of the page cache: 4 KiB, valid inside any leaf (pages are at least 4 KiB).
pub(crate) const CACHE_SHIFT: u32 = 12;
const TLB_SLOTS: usize = 1024;
const REGION_SLOTS: usize = 256;
/// Last-level tables kept whole: 64 x 4 KiB (tables of 16K/64K granules are not kept).
const TABLE_SLOTS: usize = 64;

/// How one architecture's page-table entries read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryFormat {
    /// x86_64: 8-byte entries, present = bit 0, PS (bit 7) = leaf at levels 2 and 3;
    /// `mask` is `0x000ffffffffff000 & !sme_mask`.
    X86_64 { mask: u64 },
    /// i386 PAE: 4-entry PDPT, then PD (PS = 2 MiB) and PT; 8-byte entries.
    X86Pae,
    /// i386 without PAE: PD (PS = 4 MiB, PSE-36 bits 20:13 give PA 39:32) and PT; 4-byte entries.
    X86NonPae,
    /// arm64: `(e & 3) == 3` table (page at level 1), `== 1` block; PA bits from `low_mask`
    /// plus `(e & high_mask) << high_shift` (52-bit PAs).
    Arm64 { low_mask: u64, high_mask: u64, high_shift: u32 },
}

/// What one entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The next table's physical address.
    Table(u64),
    /// A leaf: the physical base of the page or block this level maps.
    Leaf(u64),
    /// Not present / invalid.
    Invalid,
}

/// The shape of a kernel page table and where its root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walker {
    /// Physical address of the top-level table.
    pub root: u64,
    /// Levels; level 1 is the last (PTE) level.
    pub levels: u32,
    pub page_shift: u32,
    /// Index bits of every level below the top.
    pub bits: u32,
    /// Index bits of the top level.
    pub top_bits: u32,
    /// 4 or 8.
    pub entry_size: u32,
    pub big_endian: bool,
    pub format: EntryFormat,
}

/// A finished walk: the physical address, and what the region cache should remember.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walked {
    pub pa: u64,
    /// Region cache value: a last-level table address, or a leaf's physical base for the region
    /// with bit 0 set.
    pub region: u64,
}

impl Walker {
    /// Address bits this level's entries cover (the shift of its index).
    pub fn shift(&self, level: u32) -> u32 {
        self.page_shift + self.bits * (level - 1)
    }
    pub fn index_bits(&self, level: u32) -> u32 {
        if level == self.levels {
            self.top_bits
        } else {
            self.bits
        }
    }
    /// Virtual bits the walk resolves (e.g. 48 for x86_64 4-level).
    pub fn va_bits(&self) -> u32 {
        self.shift(self.levels) + self.top_bits
    }
    fn index(&self, va: u64, level: u32) -> u64 {
        (va >> self.shift(level)) & ((1u64 << self.index_bits(level)) - 1)
    }
    /// Bytes covered by one last-level table (the region cache's key granularity).
    pub fn region_shift(&self) -> u32 {
        self.shift(2)
    }

    pub fn read_entry(&self, mem: &dyn PhysMemory, table: u64, index: u64) -> Result<u64> {
        let addr = table.wrapping_add(index * u64::from(self.entry_size));
        if self.entry_size == 4 {
            let mut b = [0u8; 4];
            mem.read_phys(addr, &mut b)?;
            Ok(u64::from(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }))
        } else {
            let mut b = [0u8; 8];
            mem.read_phys(addr, &mut b)?;
            Ok(if self.big_endian { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
        }
    }

    /// Read a whole table of `n` entries (discovery scans).
    pub fn read_table(&self, mem: &dyn PhysMemory, table: u64, level: u32) -> Result<Vec<u64>> {
        let n = 1usize << self.index_bits(level);
        let es = self.entry_size as usize;
        let mut raw = vec![0u8; n * es];
        mem.read_phys(table, &mut raw)?;
        Ok(raw
            .chunks_exact(es)
            .map(|c| match (es, self.big_endian) {
                (4, false) => u64::from(u32::from_le_bytes(c.try_into().unwrap())),
                (4, true) => u64::from(u32::from_be_bytes(c.try_into().unwrap())),
                (_, false) => u64::from_le_bytes(c.try_into().unwrap()),
                (_, true) => u64::from_be_bytes(c.try_into().unwrap()),
            })
            .collect())
    }

    pub fn decode(&self, level: u32, e: u64) -> Step {
        let size_mask = (1u64 << self.shift(level)) - 1;
        match self.format {
            EntryFormat::X86_64 { mask } => {
                if e & 1 == 0 {
                    Step::Invalid
                } else if level == 1 {
                    Step::Leaf(e & mask)
                } else if (level == 2 || level == 3) && e & 0x80 != 0 {
                    Step::Leaf(e & mask & !size_mask)
                } else {
                    Step::Table(e & mask)
                }
            }
            EntryFormat::X86Pae => {
                const MASK: u64 = 0x000f_ffff_ffff_f000;
                if e & 1 == 0 {
                    Step::Invalid
                } else if level == 1 {
                    Step::Leaf(e & MASK)
                } else if level == 2 && e & 0x80 != 0 {
                    Step::Leaf(e & MASK & !size_mask)
                } else {
                    Step::Table(e & MASK)
                }
            }
            EntryFormat::X86NonPae => {
                if e & 1 == 0 {
                    Step::Invalid
                } else if level == 1 {
                    Step::Leaf(e & 0xffff_f000)
                } else if e & 0x80 != 0 {
                    Step::Leaf((e & 0xffc0_0000) | ((e >> 13) & 0xff) << 32)
                } else {
                    Step::Table(e & 0xffff_f000)
                }
            }
            EntryFormat::Arm64 { low_mask, high_mask, high_shift } => {
                let pa = (e & low_mask) | ((e & high_mask) << high_shift);
                match (e & 3, level) {
                    (3, 1) => Step::Leaf(pa),
                    (3, _) => Step::Table(pa),
                    (1, l) if l > 1 => Step::Leaf(pa & !size_mask),
                    _ => Step::Invalid,
                }
            }
        }
    }

    /// Walk `va` from the root. `va` must already be in range for the walker (see
    /// [`Translator::translate`]).
    pub fn walk(&self, mem: &dyn PhysMemory, va: u64) -> Result<Walked> {
        self.walk_from(mem, self.root, self.levels, va)
    }

    fn walk_from(&self, mem: &dyn PhysMemory, mut table: u64, top: u32, va: u64) -> Result<Walked> {
        let mut region = None;
        for level in (1..=top).rev() {
            let e = self.read_entry(mem, table, self.index(va, level))?;
            let shift = self.shift(level);
            match self.decode(level, e) {
                Step::Invalid => {
                    return Err(Error::unmapped(
                        va,
                        format!(
                            "not mapped: level-{level} page-table entry {e:#x} (table at physical {table:#x}, index {}) is not present",
                            self.index(va, level)
                        ),
                    ))
                }
                Step::Leaf(base) => {
                    let pa = base.wrapping_add(va & ((1u64 << shift) - 1));
                    let region = region.unwrap_or_else(|| {
                        let rmask = (1u64 << self.region_shift()) - 1;
                        (pa & !rmask) | 1
                    });
                    return Ok(Walked { pa, region });
                }
                Step::Table(next) => {
                    if level == 2 {
                        region = Some(next);
                    }
                    table = next;
                }
            }
        }
        unreachable!("level 1 entries are leaves or invalid")
    }

    /// Finish a walk from a region cache value.
    fn walk_region(&self, mem: &dyn PhysMemory, region: u64, va: u64) -> Result<u64> {
        if region & 1 == 1 {
            let rmask = (1u64 << self.region_shift()) - 1;
            return Ok((region & !1).wrapping_add(va & rmask));
        }
        self.walk_from(mem, region, 1, va).map(|w| w.pa)
    }
}

/// A direct-mapped cache of `u64 -> u64`, each slot behind its own sequence counter: readers
/// never block and never see a torn entry; a writer that finds its slot busy skips caching.
struct Cache {
    slots: Box<[Slot]>,
}

struct Slot {
    seq: AtomicU64,
    key: AtomicU64,
    val: AtomicU64,
}

impl Cache {
    fn new(n: usize) -> Cache {
        debug_assert!(n.is_power_of_two());
        Cache {
            slots: (0..n)
                .map(|_| Slot { seq: AtomicU64::new(0), key: AtomicU64::new(u64::MAX), val: AtomicU64::new(0) })
                .collect(),
        }
    }
    fn slot(&self, key: u64) -> &Slot {
        // Fibonacci hashing spreads strided keys (page tables, per-CPU areas) over the slots.
        let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.slots.len().trailing_zeros());
        &self.slots[h as usize]
    }
    fn get(&self, key: u64) -> Option<u64> {
        let s = self.slot(key);
        let s1 = s.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let k = s.key.load(Ordering::Relaxed);
        let v = s.val.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        let s2 = s.seq.load(Ordering::Relaxed);
        (s1 == s2 && k == key).then_some(v)
    }
    fn put(&self, key: u64, val: u64) {
        let s = self.slot(key);
        let s0 = s.seq.load(Ordering::Relaxed);
        if s0 & 1 == 1 || s.seq.compare_exchange(s0, s0 + 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        fence(Ordering::Release);
        s.key.store(key, Ordering::Relaxed);
        s.val.store(val, Ordering::Relaxed);
        s.seq.store(s0 + 2, Ordering::Release);
    }
}

/// Whole last-level tables (4 KiB or smaller), so that pages under one table cost one read of the
/// table between them, not one per page (what makes random access over a 4 KiB-mapped linear map,
/// and reads through a compressed dump, cheap). Same seqlock scheme as [`Cache`].
struct TableCache {
    slots: Box<[TableSlot]>,
    entries: usize,
}

struct TableSlot {
    seq: AtomicU64,
    key: AtomicU64,
    entries: Box<[AtomicU64]>,
}

impl TableCache {
    fn new(n: usize, entries: usize) -> TableCache {
        TableCache {
            slots: (0..n)
                .map(|_| TableSlot {
                    seq: AtomicU64::new(0),
                    key: AtomicU64::new(u64::MAX),
                    entries: (0..entries).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect(),
            entries,
        }
    }
    fn slot(&self, table: u64) -> &TableSlot {
        let h = (table >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.slots.len().trailing_zeros());
        &self.slots[h as usize]
    }
    fn entry(&self, table: u64, index: u64) -> Option<u64> {
        let s = self.slot(table);
        let s1 = s.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 || s.key.load(Ordering::Relaxed) != table {
            return None;
        }
        let v = s.entries.get(index as usize)?.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (s.seq.load(Ordering::Relaxed) == s1).then_some(v)
    }
    fn put(&self, table: u64, entries: &[u64]) {
        if entries.len() != self.entries {
            return;
        }
        let s = self.slot(table);
        let s0 = s.seq.load(Ordering::Relaxed);
        if s0 & 1 == 1 || s.seq.compare_exchange(s0, s0 + 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        fence(Ordering::Release);
        s.key.store(table, Ordering::Relaxed);
        for (d, &e) in s.entries.iter().zip(entries) {
            d.store(e, Ordering::Relaxed);
        }
        s.seq.store(s0 + 2, Ordering::Release);
    }
}

/// Which architecture, with what the translator learnt about its layout.
#[derive(Debug)]
pub enum Arch {
    X86_64(super::x86_64::X86_64),
    I386(super::i386::I386),
    Arm64(super::arm64::Arm64),
}

/// Facts about the kernel's address space, for reports and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `"x86_64"`, `"i386"` (with `pae`), `"aarch64"`.
    pub arch: &'static str,
    pub levels: u32,
    pub page_size: u64,
    /// Virtual address bits the walk resolves.
    pub va_bits: u32,
    /// Physical address of the top-level page table.
    pub root: u64,
    /// Start of the linear map of physical memory: x86_64 `page_offset_base` (discovered from the
    /// page tables), i386 `PAGE_OFFSET` (validated), arm64 `PAGE_OFFSET` (from the VA size).
    pub page_offset: Option<u64>,
    /// Why `page_offset` is `None` (x86_64: discovery failed).
    pub page_offset_error: Option<String>,
    /// i386: physical address extension.
    pub pae: Option<bool>,
}

/// Kernel virtual address translation for one dump: the layout, the walker and the caches.
/// Holds no reference to the memory: every call takes it, so a [`crate::dump::Dump`] can own one.
pub struct Translator {
    arch: Arch,
    walker: Walker,
    tlb: Cache,
    regions: Cache,
    tables: Option<TableCache>,
    pointer_size: usize,
    big_endian: bool,
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator").field("arch", &self.arch).field("walker", &self.walker).finish()
    }
}

impl Translator {
    pub(crate) fn new(arch: Arch, walker: Walker, pointer_size: usize) -> Translator {
        Translator {
            big_endian: walker.big_endian,
            arch,
            walker,
            tlb: Cache::new(TLB_SLOTS),
            regions: Cache::new(REGION_SLOTS),
            tables: ((1usize << walker.bits) * walker.entry_size as usize <= 4096)
                .then(|| TableCache::new(TABLE_SLOTS, 1 << walker.bits)),
            pointer_size,
        }
    }

    pub fn arch(&self) -> &Arch {
        &self.arch
    }
    pub fn pointer_size(&self) -> usize {
        self.pointer_size
    }
    pub fn big_endian(&self) -> bool {
        self.big_endian
    }
    #[cfg(test)]
    pub(crate) fn walker(&self) -> &Walker {
        &self.walker
    }

    /// The layout; on x86_64 this runs the direct-map discovery once (milliseconds at most).
    pub fn layout(&self, mem: &dyn PhysMemory) -> Layout {
        let w = &self.walker;
        let mut l = Layout {
            arch: "",
            levels: w.levels,
            page_size: 1 << w.page_shift,
            va_bits: w.va_bits(),
            root: w.root,
            page_offset: None,
            page_offset_error: None,
            pae: None,
        };
        match &self.arch {
            Arch::X86_64(x) => {
                l.arch = "x86_64";
                match x.page_offset_base(mem, w) {
                    Ok(p) => l.page_offset = Some(p),
                    Err(e) => l.page_offset_error = Some(e.to_string()),
                }
            }
            Arch::I386(x) => {
                l.arch = "i386";
                l.page_offset = Some(x.page_offset);
                l.pae = Some(x.pae);
            }
            Arch::Arm64(a) => {
                l.arch = "aarch64";
                l.page_offset = Some(a.page_offset);
            }
        }
        l
    }

    /// The address the walker resolves for `vaddr`: range-checked (canonical on x86_64, below
    /// 4 GiB on i386, a kernel (TTBR1) address on arm64, whose tag byte is dropped).
    fn check(&self, vaddr: u64) -> Result<u64> {
        let bits = self.walker.va_bits();
        let ok = match &self.arch {
            Arch::X86_64(_) => {
                let sext = ((vaddr << (64 - bits)) as i64 >> (64 - bits)) as u64;
                (sext == vaddr).then_some(vaddr)
            }
            Arch::I386(_) => (vaddr >> 32 == 0).then_some(vaddr),
            Arch::Arm64(_) => {
                let untagged = ((vaddr << 8) as i64 >> 8) as u64;
                (untagged >= u64::MAX << bits).then_some(untagged)
            }
        };
        ok.ok_or_else(|| {
            Error::unmapped(
                vaddr,
                match &self.arch {
                    Arch::X86_64(_) => format!("not a canonical {bits}-bit kernel address"),
                    Arch::I386(_) => "above the 32-bit address space".to_owned(),
                    Arch::Arm64(_) => format!("not a kernel address of the {bits}-bit kernel range"),
                },
            )
        })
    }

    /// The translation of `vaddr` if the page cache holds it (no memory read, no walk).
    pub fn translate_cached(&self, vaddr: u64) -> Option<u64> {
        let va = self.check(vaddr).ok()?;
        self.tlb.get(va >> CACHE_SHIFT).map(|p| p | (va & ((1 << CACHE_SHIFT) - 1)))
    }

    /// The guest-physical address of kernel virtual address `vaddr`.
    pub fn translate(&self, mem: &dyn PhysMemory, vaddr: u64) -> Result<u64> {
        let va = self.check(vaddr)?;
        let vpn = va >> CACHE_SHIFT;
        let off = va & ((1 << CACHE_SHIFT) - 1);
        if let Some(p) = self.tlb.get(vpn) {
            return Ok(p | off);
        }
        let rkey = va >> self.walker.region_shift();
        let pa = match self.regions.get(rkey) {
            Some(r) if r & 1 == 0 && self.tables.is_some() => self.through_table(mem, r, va)?,
            Some(r) => self.walker.walk_region(mem, r, va)?,
            None => {
                let w = self.walker.walk(mem, va)?;
                self.regions.put(rkey, w.region);
                w.pa
            }
        };
        self.tlb.put(vpn, pa & !((1 << CACHE_SHIFT) - 1));
        Ok(pa)
    }

    /// The last level of a walk through the table cache: one read of the whole table on a miss.
    fn through_table(&self, mem: &dyn PhysMemory, table: u64, va: u64) -> Result<u64> {
        let Some(tc) = &self.tables else { return self.walker.walk_region(mem, table, va) };
        let w = &self.walker;
        let index = w.index(va, 1);
        let e = match tc.entry(table, index) {
            Some(e) => e,
            None => match w.read_table(mem, table, 1) {
                Ok(entries) => {
                    tc.put(table, &entries);
                    entries[index as usize]
                }
                // A table the dump holds only in part: the single entry decides (and names the error).
                Err(_) => return w.walk_region(mem, table, va),
            },
        };
        match w.decode(1, e) {
            Step::Leaf(base) => Ok(base.wrapping_add(va & ((1u64 << w.page_shift) - 1))),
            _ => w.walk_region(mem, table, va),
        }
    }

    /// Fill `buf` from kernel virtual address `vaddr` (physically contiguous runs are read at once).
    pub fn read_virt(&self, mem: &dyn PhysMemory, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        let page = 1u64 << CACHE_SHIFT;
        let mut done = 0usize;
        while done < buf.len() {
            let va = vaddr
                .checked_add(done as u64)
                .ok_or_else(|| Error::unmapped(vaddr, "the read wraps past the top of the address space"))?;
            let start_pa = self.translate(mem, va)?;
            let mut run = ((page - (va & (page - 1))) as usize).min(buf.len() - done);
            // Extend the run while the next pages follow physically.
            while done + run < buf.len() {
                let Some(nva) = va.checked_add(run as u64) else { break };
                match self.translate(mem, nva) {
                    Ok(p) if p == start_pa.wrapping_add(run as u64) => run = (run + page as usize).min(buf.len() - done),
                    _ => break,
                }
            }
            mem.read_phys(start_pa, &mut buf[done..done + run])?;
            done += run;
        }
        Ok(())
    }
}

/// A translator together with the memory it reads: the [`VirtMemory`] the log and symbol readers use.
#[derive(Clone, Copy)]
pub struct KernelView<'a> {
    pub mem: &'a dyn PhysMemory,
    pub translator: &'a Translator,
}

impl std::fmt::Debug for KernelView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.translator.fmt(f)
    }
}

impl<'a> KernelView<'a> {
    pub fn new(mem: &'a dyn PhysMemory, translator: &'a Translator) -> Self {
        KernelView { mem, translator }
    }
    pub fn translate(&self, vaddr: u64) -> Result<u64> {
        self.translator.translate(self.mem, vaddr)
    }
    /// See [`Translator::translate_cached`].
    pub fn translate_cached(&self, vaddr: u64) -> Option<u64> {
        self.translator.translate_cached(vaddr)
    }
    pub fn layout(&self) -> Layout {
        self.translator.layout(self.mem)
    }
}

impl VirtMemory for KernelView<'_> {
    fn read_virt(&self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        self.translator.read_virt(self.mem, vaddr, buf)
    }
    fn pointer_size(&self) -> usize {
        self.translator.pointer_size
    }
    fn big_endian(&self) -> bool {
        self.translator.big_endian
    }
}

/// The lowest mapped address in `[lo, hi]` (both in the walker's `va_bits`-bit space, i.e. with
/// the sign-extension bits cut off) and the physical address it maps to: the tables are read
/// whole, in address order, absent subtrees skipped. At most `budget` tables are read; past that
/// it is a [`ErrorKind::Limit`](crate::error::ErrorKind::Limit) error (hostile tables full of
/// present entries to empty tables).
pub(crate) fn lowest_leaf(w: &Walker, mem: &dyn PhysMemory, lo: u64, hi: u64, budget: &mut u32) -> Result<Option<(u64, u64)>> {
    fn rec(
        w: &Walker,
        mem: &dyn PhysMemory,
        table: u64,
        level: u32,
        base: u64,
        (lo, hi): (u64, u64),
        budget: &mut u32,
    ) -> Result<Option<(u64, u64)>> {
        if *budget == 0 {
            return Err(Error::at(
                crate::error::ErrorKind::Limit,
                Some(crate::error::Location::Phys(table)),
                "page-table scan gave up after reading its budget of tables",
            ));
        }
        *budget -= 1;
        let entries = w.read_table(mem, table, level)?;
        let shift = w.shift(level);
        for (i, &e) in entries.iter().enumerate() {
            let elo = base + ((i as u64) << shift);
            let ehi = elo + ((1u64 << shift) - 1);
            if ehi < lo {
                continue;
            }
            if elo > hi {
                break;
            }
            match w.decode(level, e) {
                Step::Invalid => {}
                Step::Leaf(pa) => {
                    let va = elo.max(lo);
                    return Ok(Some((va, pa.wrapping_add(va - elo))));
                }
                Step::Table(next) => {
                    if level > 1 {
                        if let Some(found) = rec(w, mem, next, level - 1, elo, (lo, hi), budget)? {
                            return Ok(Some(found));
                        }
                    }
                }
            }
        }
        Ok(None)
    }
    rec(w, mem, w.root, w.levels, 0, (lo, hi), budget)
}

#[cfg(test)]
pub(crate) mod testmem {
    //! A sparse fake physical memory for synthetic page tables.
    use std::collections::HashMap;
    use std::sync::Mutex;

    use crate::error::{Error, Result};
    use crate::phys::{PhysMemory, PhysRange};

    #[derive(Default)]
    pub struct FakeMem {
        pages: Mutex<HashMap<u64, Box<[u8; 4096]>>>,
        pub reads: std::sync::atomic::AtomicU64,
    }

    impl FakeMem {
        pub fn write(&self, addr: u64, bytes: &[u8]) {
            let mut p = self.pages.lock().unwrap();
            for (i, b) in bytes.iter().enumerate() {
                let a = addr + i as u64;
                p.entry(a & !0xfff).or_insert_with(|| Box::new([0; 4096]))[(a & 0xfff) as usize] = *b;
            }
        }
        pub fn w64(&self, addr: u64, v: u64) {
            self.write(addr, &v.to_le_bytes());
        }
        pub fn w32(&self, addr: u64, v: u32) {
            self.write(addr, &v.to_le_bytes());
        }
        /// Make a page present (zeros).
        pub fn page(&self, addr: u64) {
            self.pages.lock().unwrap().entry(addr & !0xfff).or_insert_with(|| Box::new([0; 4096]));
        }
    }

    impl PhysMemory for FakeMem {
        fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = self.pages.lock().unwrap();
            let mut done = 0usize;
            while done < buf.len() {
                let a = addr.checked_add(done as u64).ok_or_else(|| Error::absent(addr, "wrap"))?;
                let page = p.get(&(a & !0xfff)).ok_or_else(|| Error::absent(a, "not in the fake"))?;
                let off = (a & 0xfff) as usize;
                let n = (4096 - off).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&page[off..off + n]);
                done += n;
            }
            Ok(())
        }
        fn ranges(&self) -> Result<Vec<PhysRange>> {
            let p = self.pages.lock().unwrap();
            Ok(crate::phys::normalize(p.keys().map(|&a| PhysRange { start: a, end: a + 4096 }).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hits_misses_and_collisions() {
        let c = Cache::new(4);
        assert_eq!(c.get(7), None);
        c.put(7, 70);
        assert_eq!(c.get(7), Some(70));
        for k in 100..200 {
            c.put(k, k * 10);
        }
        // Whatever survived the collisions must still be right.
        for k in 100..200 {
            if let Some(v) = c.get(k) {
                assert_eq!(v, k * 10);
            }
        }
        assert_eq!(c.get(u64::MAX - 1), None);
    }

    #[test]
    fn cache_is_consistent_under_concurrent_writers() {
        let c = std::sync::Arc::new(Cache::new(8));
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let k = (i * 7 + t) % 64;
                        c.put(k, k ^ 0xdead_beef);
                        if let Some(v) = c.get((i + t) % 64) {
                            assert_eq!(v, ((i + t) % 64) ^ 0xdead_beef);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
}
