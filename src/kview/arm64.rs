//! arm64: 4K, 16K and 64K granules, 39- to 52-bit kernel addresses, walked from
//! `SYMBOL(swapper_pg_dir)`.
//!
//! VMCOREINFO gives `PAGESIZE`, `NUMBER(VA_BITS)` (the configured size), `NUMBER(TCR_EL1_T1SZ)`
//! (5.9+; older `tcr_el1_t1sz`: the size in use is `64 - T1SZ`), `NUMBER(kimage_voffset)` (kernel
//! image virtual minus physical) and `NUMBER(PHYS_OFFSET)`. The root is
//! `swapper_pg_dir - kimage_voffset`, checked at setup by walking `swapper_pg_dir` back onto it.
//!
//! Which VA size the walk uses, where makedumpfile and drgn disagree: with 64K pages a kernel built
//! for 52 bits on hardware without FEAT_LVA runs with 48 bits but keeps `swapper_pg_dir` laid out
//! for 52 (the kernel offsets TTBR1 into it; both sizes give 3 levels), so the walk indexes the
//! table with `VA_BITS` — drgn's choice, which we follow. With 4K/16K pages the fallback from 52
//! bits (FEAT_LPA2, 6.9+) folds a level away at run time (5→4 levels for 4K, 4→3 for 16K with 47
//! bits), so there the walk uses `64 - T1SZ`. makedumpfile derives the walk from the run-time size
//! in every case, which misreads the 52-bit-laid-out 64K table.
//!
//! Descriptors: `(e & 3) == 3` is a table (a page at the last level), `== 1` a block. PA bits
//! \[47:page_shift\] are in place; 64K pages carry PA\[51:48\] in bits \[15:12\]; 4K/16K with 52-bit VAs
//! (LPA2, where the kernel requires PA size = VA size) carry PA\[49:48\] in place and PA\[51:50\] in
//! bits \[9:8\].

use super::walker::{EntryFormat, Walker};
use super::Keys;
use super::{Arch, Translator};
use crate::error::{Error, ErrorKind, Result};
use crate::phys::PhysMemory;

#[derive(Debug)]
pub struct Arm64 {
    /// `NUMBER(VA_BITS)`: the configured VA size.
    pub va_bits: u32,
    /// The size in use: `64 - TCR_EL1_T1SZ`, or `VA_BITS` without it.
    pub vabits_actual: u32,
    pub kimage_voffset: u64,
    /// `NUMBER(PHYS_OFFSET)`, as the 64-bit pattern (it prints "negative" when the linear map is
    /// randomised).
    pub phys_offset: Option<u64>,
    /// Start of the linear map, `-(1 << vabits_actual)` (the 5.4+ layout).
    pub page_offset: u64,
    pub swapper_pg_dir: u64,
}

/// The walker for a granule (`page_shift` 12, 14, 16) and the VA size the walk resolves.
pub(crate) fn walker(root: u64, page_shift: u32, walk_bits: u32, big_endian: bool) -> Walker {
    let bits = page_shift - 3;
    let levels = (walk_bits - page_shift).div_ceil(bits);
    let top_bits = (walk_bits - page_shift - 1) % bits + 1;
    let mut low_mask = 0x0000_ffff_ffff_ffffu64 & !((1u64 << page_shift) - 1);
    let (high_mask, high_shift) = if page_shift == 16 {
        (0xf000, 36)
    } else if walk_bits == 52 {
        low_mask |= 0x0003_0000_0000_0000;
        (0x300, 42)
    } else {
        (0, 0)
    };
    Walker {
        root,
        levels,
        page_shift,
        bits,
        top_bits,
        entry_size: 8,
        big_endian,
        format: EntryFormat::Arm64 { low_mask, high_mask, high_shift },
    }
}

pub(crate) fn build(mem: &dyn PhysMemory, keys: &Keys<'_>, big_endian: bool) -> Result<Translator> {
    let v = &keys.view;
    let page_size = keys.need(v.page_size(), "PAGESIZE")?;
    let page_shift = match page_size {
        4096 => 12,
        16384 => 14,
        65536 => 16,
        n => return Err(Error::unsupported(None, format!("arm64 PAGESIZE={n}: only 4K, 16K and 64K granules exist"))),
    };
    let va_bits = keys.need(v.number("VA_BITS"), "NUMBER(VA_BITS)")?;
    let t1sz = match v.number("TCR_EL1_T1SZ")? {
        Some(t) => Some(t),
        None => v.number("tcr_el1_t1sz")?,
    };
    let kimage_voffset = keys.need(v.number("kimage_voffset"), "NUMBER(kimage_voffset)")? as u64;
    let phys_offset = v.number("PHYS_OFFSET")?.map(|p| p as u64);
    let swapper = keys.need(v.symbol("swapper_pg_dir"), "SYMBOL(swapper_pg_dir)")?;
    let vabits_actual = t1sz.map_or(va_bits, |t| 64 - t);
    let sane = |b: i128| b > i128::from(page_shift) + 2 && b <= 52;
    if !sane(va_bits) || !sane(vabits_actual) {
        return Err(keys.error_at(
            "NUMBER(VA_BITS)",
            format!("arm64 VA_BITS={va_bits}, TCR_EL1_T1SZ={t1sz:?}: the VA size must be between {} and 52 bits", page_shift + 3),
        ));
    }
    let (va_bits, vabits_actual) = (va_bits as u32, vabits_actual as u32);
    let walk_bits = if page_shift == 16 { va_bits } else { vabits_actual };
    let root = swapper.wrapping_sub(kimage_voffset);
    let w = walker(root, page_shift, walk_bits, big_endian);
    match w.walk(mem, swapper) {
        Ok(r) if r.pa == root => {}
        Ok(r) => {
            return Err(keys.error_at(
                "SYMBOL(swapper_pg_dir)",
                format!(
                "the page tables at physical {root:#x} (swapper_pg_dir {swapper:#x} - kimage_voffset {kimage_voffset:#x}) map \
                     swapper_pg_dir to {:#x}, not back onto themselves",
                r.pa
            ),
            ))
        }
        Err(e) if e.kind == ErrorKind::Unmapped => {
            return Err(keys.error_at(
                "SYMBOL(swapper_pg_dir)",
                format!(
            "the page tables at physical {root:#x} (swapper_pg_dir {swapper:#x} - kimage_voffset {kimage_voffset:#x}) do not \
                     map swapper_pg_dir ({} levels, {walk_bits}-bit walk): {}",
            w.levels, e.message
        ),
            ))
        }
        Err(e) => return Err(e),
    }
    let a = Arm64 {
        va_bits,
        vabits_actual,
        kimage_voffset,
        phys_offset,
        page_offset: u64::MAX << vabits_actual,
        swapper_pg_dir: swapper,
    };
    Ok(Translator::new(Arch::Arm64(a), w, 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitness::EM_AARCH64;
    use crate::kview::testmem::FakeMem;
    use crate::kview::{build_translator, KernelView};

    const PHYS_OFFSET: u64 = 0x4000_0000;

    /// One configuration: granule, VA_BITS, T1SZ, and what the walk must look like.
    struct Case {
        page_shift: u32,
        va_bits: u32,
        t1sz: Option<u32>,
        levels: u32,
        walk_bits: u32,
    }

    struct Guest {
        mem: FakeMem,
        next: std::cell::Cell<u64>,
        root: u64,
        page_shift: u32,
        levels: u32,
        walk_bits: u32,
    }

    impl Guest {
        fn alloc(&self) -> u64 {
            let size = 1u64 << self.page_shift;
            let a = self.next.get();
            self.next.set(a + size);
            for p in (a..a + size).step_by(4096) {
                self.mem.page(p);
            }
            a
        }
        /// Descriptor PA encoding (written independently of the decoder).
        fn enc(&self, pa: u64) -> u64 {
            if self.page_shift == 16 {
                (pa & 0x0000_ffff_ffff_0000) | ((pa >> 48) & 0xf) << 12
            } else if self.walk_bits == 52 {
                (pa & 0x0003_ffff_ffff_f000) | ((pa >> 50) & 3) << 8
            } else {
                pa
            }
        }
        fn dec(&self, e: u64) -> u64 {
            if self.page_shift == 16 {
                (e & 0x0000_ffff_ffff_0000) | ((e >> 12) & 0xf) << 48
            } else if self.walk_bits == 52 {
                (e & 0x0003_ffff_ffff_f000) | ((e >> 8) & 3) << 50
            } else {
                e & 0x0000_ffff_ffff_f000
            }
        }
        fn map(&self, va: u64, pa: u64, leaf_level: u32) {
            let bits = self.page_shift - 3;
            let mut table = self.root;
            for level in (leaf_level..=self.levels).rev() {
                let shift = self.page_shift + bits * (level - 1);
                let width = if level == self.levels { (self.walk_bits - self.page_shift - 1) % bits + 1 } else { bits };
                let slot = table + ((va >> shift) & ((1 << width) - 1)) * 8;
                if level == leaf_level {
                    self.mem.w64(slot, self.enc(pa) | if level == 1 { 3 } else { 1 } | 0x400);
                    return;
                }
                let mut b = [0u8; 8];
                crate::phys::PhysMemory::read_phys(&self.mem, slot, &mut b).unwrap();
                let e = u64::from_le_bytes(b);
                table = if e & 3 == 3 {
                    self.dec(e)
                } else {
                    let t = self.alloc();
                    self.mem.w64(slot, self.enc(t) | 3);
                    t
                };
            }
        }
    }

    fn run(c: &Case) {
        let vabits_actual = c.t1sz.map_or(c.va_bits, |t| 64 - t);
        let page = 1u64 << c.page_shift;
        // Kernel image near the bottom of the kernel half, swapper_pg_dir in it.
        let kva = (u64::MAX << (vabits_actual - 1)) + 0x1000_0000;
        let swapper_pa = 0x4100_0000u64;
        let kimage_voffset = kva.wrapping_sub(swapper_pa);
        let g = Guest {
            mem: FakeMem::default(),
            next: std::cell::Cell::new(0x4800_0000),
            root: swapper_pa,
            page_shift: c.page_shift,
            levels: c.levels,
            walk_bits: c.walk_bits,
        };
        for p in (swapper_pa..swapper_pa + page).step_by(4096) {
            g.mem.page(p);
        }
        g.map(kva, swapper_pa, 1);
        let po = u64::MAX << vabits_actual;
        g.map(po + 5 * page, PHYS_OFFSET + 5 * page, 1);
        let block_shift = c.page_shift + (c.page_shift - 3);
        let block = 1u64 << block_shift;
        if c.levels > 2 || block_shift < c.walk_bits {
            g.map(po + 4 * block, PHYS_OFFSET + 8 * block, 2);
        }
        // A page with a physical address above 48 bits where the format allows it.
        let high_pa = if c.page_shift == 16 || c.walk_bits == 52 {
            0x000f_1234_5678_0000u64 & !(page - 1)
        } else {
            0x0000_8765_4321_0000 & !(page - 1)
        };
        g.map(po + 7 * page, high_pa, 1);
        let mut text = format!(
            "OSRELEASE=6.1.0-arm64\nPAGESIZE={page}\nSYMBOL(swapper_pg_dir)={kva:x}\nNUMBER(VA_BITS)={}\nNUMBER(kimage_voffset)={kimage_voffset:#x}\nNUMBER(PHYS_OFFSET)={PHYS_OFFSET:#x}\n",
            c.va_bits
        );
        if let Some(t) = c.t1sz {
            text += &format!("NUMBER(TCR_EL1_T1SZ)={t}\n");
        }
        let t = build_translator(&g.mem, EM_AARCH64, false, text.as_bytes())
            .unwrap_or_else(|e| panic!("{}K/{}: {e}", page >> 10, c.va_bits));
        let v = KernelView::new(&g.mem, &t);
        let what = format!("{}K VA_BITS={} T1SZ={:?}", page >> 10, c.va_bits, c.t1sz);
        let l = v.layout();
        assert_eq!((l.levels, l.va_bits, l.page_offset), (c.levels, c.walk_bits, Some(po)), "{what}: {l:?}");
        assert_eq!(v.translate(kva + 0x18).unwrap(), swapper_pa + 0x18, "{what}");
        assert_eq!(v.translate(po + 5 * page + 3).unwrap(), PHYS_OFFSET + 5 * page + 3, "{what}");
        assert_eq!(v.translate(po + 7 * page + 9).unwrap(), high_pa + 9, "{what}: high PA bits");
        if c.levels > 2 || block_shift < c.walk_bits {
            assert_eq!(v.translate(po + 4 * block + page + 1).unwrap(), PHYS_OFFSET + 8 * block + page + 1, "{what}: block");
        }
        // A tagged pointer (KASAN tag in the top byte) translates as its untagged form.
        let tagged = (kva & !(0xffu64 << 56)) | (0xf3u64 << 56);
        assert_eq!(v.translate(tagged).unwrap(), swapper_pa, "{what}: TBI");
        let e = v.translate(po + 6 * page).unwrap_err();
        assert_eq!((e.kind, e.address()), (ErrorKind::Unmapped, Some(po + 6 * page)), "{what}");
        let e = v.translate(0x0000_0000_1000_0000).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unmapped, "{what}: user address");
    }

    #[test]
    fn every_granule_and_va_size() {
        let cases = [
            Case { page_shift: 12, va_bits: 39, t1sz: Some(25), levels: 3, walk_bits: 39 },
            Case { page_shift: 12, va_bits: 48, t1sz: Some(16), levels: 4, walk_bits: 48 },
            Case { page_shift: 12, va_bits: 48, t1sz: None, levels: 4, walk_bits: 48 },
            Case { page_shift: 12, va_bits: 52, t1sz: Some(12), levels: 5, walk_bits: 52 },
            // 4K LPA2 kernel on hardware without it: a level folded away, walk the run-time size.
            Case { page_shift: 12, va_bits: 52, t1sz: Some(16), levels: 4, walk_bits: 48 },
            Case { page_shift: 14, va_bits: 47, t1sz: Some(17), levels: 3, walk_bits: 47 },
            Case { page_shift: 14, va_bits: 48, t1sz: Some(16), levels: 4, walk_bits: 48 },
            Case { page_shift: 14, va_bits: 52, t1sz: Some(12), levels: 4, walk_bits: 52 },
            Case { page_shift: 14, va_bits: 52, t1sz: Some(17), levels: 3, walk_bits: 47 },
            Case { page_shift: 16, va_bits: 42, t1sz: Some(22), levels: 2, walk_bits: 42 },
            Case { page_shift: 16, va_bits: 48, t1sz: Some(16), levels: 3, walk_bits: 48 },
            Case { page_shift: 16, va_bits: 52, t1sz: Some(12), levels: 3, walk_bits: 52 },
            // 64K 52-bit kernel on 48-bit hardware: swapper_pg_dir stays laid out for 52 bits.
            Case { page_shift: 16, va_bits: 52, t1sz: Some(16), levels: 3, walk_bits: 52 },
        ];
        for c in &cases {
            run(c);
        }
    }

    #[test]
    fn bad_and_missing_keys() {
        let m = FakeMem::default();
        let base = "OSRELEASE=6.1.0\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffff800009000000\nNUMBER(kimage_voffset)=0xffff7fffc8000000\n";
        let e = build_translator(&m, EM_AARCH64, false, base.as_bytes()).unwrap_err();
        assert!(e.message.contains("NUMBER(VA_BITS)"), "{e}");
        let e = build_translator(&m, EM_AARCH64, false, format!("{base}NUMBER(VA_BITS)=60\n").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format, "{e}");
        let e = build_translator(&m, EM_AARCH64, false, base.replace("4096", "8192").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
        // Root not in the dump.
        let e = build_translator(&m, EM_AARCH64, false, format!("{base}NUMBER(VA_BITS)=48\n").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Absent, "{e}");
        let e = build_translator(&m, crate::bitness::EM_PPC64, false, base.as_bytes()).unwrap_err();
        assert!(e.kind == ErrorKind::Unsupported && e.message.contains("ppc64"), "{e}");
    }
}
