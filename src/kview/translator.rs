//! Kernel virtual → guest physical translation: the [`Translator`] that ties an architecture's
//! layout ([`Arch`]) to the [walker](super::walker) and the [caches](super::cache), and the
//! [`KernelView`] that pairs it with the memory it reads.
//!
//! Every kernel virtual address is translated by walking the kernel's own page tables (from
//! `init_top_pgt` / `swapper_pg_dir`), so an address the kernel does not map is an
//! [`Unmapped`](crate::error::ErrorKind::Unmapped) error and a page table the dump lacks is the
//! [`Absent`](crate::error::ErrorKind::Absent) error of the physical read, never garbage. The
//! fixed-offset formulas (x86_64 kernel image, i386 lowmem, arm64 `kimage_voffset`) are used only to
//! find the root table.
//!
//! Two caches keep repeated work cheap: a 4 KiB page cache (a hit costs no read at all) and a
//! region cache keyed by the span of one last-level table (a hit costs one entry read).

use super::cache::{Cache, TableCache};
use super::walker::{Step, Walker};
use super::VirtMemory;
use crate::error::{Error, Result};
use crate::phys::PhysMemory;

/// Granularity of the page cache: 4 KiB, valid inside any leaf (pages are at least 4 KiB).
pub(crate) const CACHE_SHIFT: u32 = 12;
const TLB_SLOTS: usize = 1024;
const REGION_SLOTS: usize = 256;
/// Last-level tables kept whole: 64 x 4 KiB (tables of 16K/64K granules are not kept).
const TABLE_SLOTS: usize = 64;

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
