//! The generic kernel page-table walker: how one architecture's entries read ([`EntryFormat`]),
//! what one entry says ([`Step`]), and the fixed-depth walk of a [`Walker`].
//!
//! A walk has a fixed number of levels, so hostile tables cannot loop it; a table the dump lacks
//! is the [`Absent`](crate::error::ErrorKind::Absent) error of the physical read, and an entry
//! that is not present an [`Unmapped`](crate::error::ErrorKind::Unmapped) one, never garbage.

use crate::error::{Error, Result};
use crate::phys::PhysMemory;

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
    pub fn index(&self, va: u64, level: u32) -> u64 {
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
    /// [`Translator::translate`](super::Translator::translate)).
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
    pub fn walk_region(&self, mem: &dyn PhysMemory, region: u64, va: u64) -> Result<u64> {
        if region & 1 == 1 {
            let rmask = (1u64 << self.region_shift()) - 1;
            return Ok((region & !1).wrapping_add(va & rmask));
        }
        self.walk_from(mem, region, 1, va).map(|w| w.pa)
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
