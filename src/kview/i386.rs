//! i386: 2-level (non-PAE) and 3-level PAE (`CONFIG_X86_PAE=y`) page tables from
//! `SYMBOL(swapper_pg_dir)`.
//!
//! VMCOREINFO has no PAGE_OFFSET (nor phys_base: KASLR moves virtual and physical together), so
//! the root is found by trying the kernel's possible PAGE_OFFSETs (the `VMSPLIT_*` choices:
//! 0xC0000000, 0xB0000000, 0x80000000, 0x78000000, 0x40000000): a candidate is taken when the
//! tables at `swapper_pg_dir - PAGE_OFFSET` map `swapper_pg_dir` back onto themselves. Every
//! address is then walked, so highmem (kmap, fixmap) and vmalloc addresses translate too, not just
//! lowmem. Pointers are 4 bytes, even in QEMU's ELF64 dumps of guests with memory above 4 GiB.

use super::walker::{EntryFormat, Walker};
use super::Keys;
use super::{Arch, Translator};
use crate::error::{ErrorKind, Result};
use crate::phys::PhysMemory;

/// The PAGE_OFFSETs Linux's i386 `VMSPLIT_*` options give, most common first.
pub const PAGE_OFFSET_CANDIDATES: [u64; 5] = [0xC000_0000, 0xB000_0000, 0x8000_0000, 0x7800_0000, 0x4000_0000];

#[derive(Debug)]
pub struct I386 {
    pub page_offset: u64,
    pub pae: bool,
    pub swapper_pg_dir: u64,
}

pub(crate) fn walker(root: u64, pae: bool) -> Walker {
    if pae {
        Walker {
            root,
            levels: 3,
            page_shift: 12,
            bits: 9,
            top_bits: 2,
            entry_size: 8,
            big_endian: false,
            format: EntryFormat::X86Pae,
        }
    } else {
        Walker {
            root,
            levels: 2,
            page_shift: 12,
            bits: 10,
            top_bits: 10,
            entry_size: 4,
            big_endian: false,
            format: EntryFormat::X86NonPae,
        }
    }
}

pub(crate) fn build(mem: &dyn PhysMemory, keys: &Keys<'_>) -> Result<Translator> {
    let swapper = keys.need(keys.view.symbol("swapper_pg_dir"), "SYMBOL(swapper_pg_dir)")?;
    if swapper >> 32 != 0 {
        return Err(
            keys.error_at("SYMBOL(swapper_pg_dir)", format!("SYMBOL(swapper_pg_dir)={swapper:x} is not a 32-bit address"))
        );
    }
    let pae = keys.view.config("X86_PAE")? == Some(true);
    let mut tried = Vec::new();
    // The mode the text says first; the other only if no candidate fits it.
    for mode in [pae, !pae] {
        for cand in PAGE_OFFSET_CANDIDATES {
            let Some(root) = swapper.checked_sub(cand) else { continue };
            let w = walker(root, mode);
            match w.walk(mem, swapper) {
                Ok(r) if r.pa == root => {
                    let x = I386 { page_offset: cand, pae: mode, swapper_pg_dir: swapper };
                    return Ok(Translator::new(Arch::I386(x), w, 4));
                }
                Ok(r) => tried.push(format!("{cand:#x}{}: maps to {:#x}", if mode { " PAE" } else { "" }, r.pa)),
                Err(e) if matches!(e.kind, ErrorKind::Unmapped | ErrorKind::Absent) => {
                    tried.push(format!("{cand:#x}{}: {}", if mode { " PAE" } else { "" }, e))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(keys.error_at(
        "SYMBOL(swapper_pg_dir)",
        format!(
            "no PAGE_OFFSET makes the page tables at swapper_pg_dir - PAGE_OFFSET map swapper_pg_dir ({swapper:#x}) back onto \
             themselves (CONFIG_X86_PAE={}): {}",
            if pae { "y" } else { "absent" },
            tried.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitness::EM_386;
    use crate::kview::testmem::FakeMem;
    use crate::kview::{build_translator, KernelView, VirtMemory};

    /// Build tables for `page_offset`: lowmem 0..16 MiB linearly mapped (large pages for all but
    /// the first 4/2 MiB, which uses 4 KiB pages), one vmalloc page, one highmem (kmap) page.
    fn guest(pae: bool, page_offset: u64) -> (FakeMem, u64) {
        let mem = FakeMem::default();
        let swapper = page_offset + 0x60_0000;
        let root = swapper - page_offset;
        let mut next = 0x80_0000u64;
        let mut alloc = || {
            let a = next;
            next += 0x1000;
            mem.page(a);
            a
        };
        mem.page(root);
        let big = if pae { 0x20_0000u64 } else { 0x40_0000 };
        let mut map4k = |va: u64, pa: u64| {
            if pae {
                let pdpt = root + (va >> 30) * 8;
                let pd = match read(&mem, pdpt, 8) {
                    e if e & 1 == 1 => e & !0xfff,
                    _ => {
                        let t = alloc();
                        mem.w64(pdpt, t | 1);
                        t
                    }
                };
                let pde = pd + ((va >> 21) & 511) * 8;
                let pt = match read(&mem, pde, 8) {
                    e if e & 1 == 1 => e & !0xfff,
                    _ => {
                        let t = alloc();
                        mem.w64(pde, t | 0x63);
                        t
                    }
                };
                mem.w64(pt + ((va >> 12) & 511) * 8, pa | 0x63 | 1 << 63);
            } else {
                let pde = root + (va >> 22) * 4;
                let pt = match read(&mem, pde, 4) {
                    e if e & 1 == 1 => e & !0xfff,
                    _ => {
                        let t = alloc();
                        mem.w32(pde, (t | 0x63) as u32);
                        t
                    }
                };
                mem.w32(pt + ((va >> 12) & 1023) * 4, (pa | 0x63) as u32);
            }
        };
        for pa in (0..big).step_by(0x1000) {
            map4k(page_offset + pa, pa);
        }
        map4k(page_offset + 0x3800_0000, 0x3_2000_0000); // "vmalloc", PA above 4 GiB
        map4k(0xfff0_0000, 0x5000); // "fixmap / kmap"
                                    // Large pages for the rest of lowmem, written after the 4 KiB mappings made their tables.
        for pa in (big..0x100_0000).step_by(big as usize) {
            let va = page_offset + pa;
            if pae {
                let pd = read(&mem, root + (va >> 30) * 8, 8) & !0xfff;
                mem.w64(pd + ((va >> 21) & 511) * 8, pa | 0xe3);
            } else {
                mem.w32(root + (va >> 22) * 4, (pa | 0xe3) as u32);
            }
        }
        (mem, swapper)
    }

    fn read(mem: &FakeMem, addr: u64, n: usize) -> u64 {
        let mut b = [0u8; 8];
        crate::phys::PhysMemory::read_phys(mem, addr, &mut b[..n]).unwrap();
        u64::from_le_bytes(b)
    }

    fn text(swapper: u64, pae: bool) -> String {
        format!(
            "OSRELEASE=6.1.0-686\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)={swapper:x}\n{}",
            if pae { "CONFIG_X86_PAE=y\n" } else { "" }
        )
    }

    #[test]
    fn pae_and_non_pae_with_each_page_offset() {
        for pae in [false, true] {
            for po in [0xC000_0000u64, 0x8000_0000, 0x4000_0000] {
                let (mem, swapper) = guest(pae, po);
                let t = build_translator(&mem, EM_386, false, text(swapper, pae).as_bytes()).unwrap();
                let v = KernelView::new(&mem, &t);
                let l = v.layout();
                assert_eq!((l.page_offset, l.pae, l.levels), (Some(po), Some(pae), if pae { 3 } else { 2 }), "{l:?}");
                assert_eq!(v.pointer_size(), 4);
                assert_eq!(v.translate(swapper).unwrap(), swapper - po);
                assert_eq!(v.translate(po + 0x1234).unwrap(), 0x1234, "4 KiB lowmem page");
                assert_eq!(v.translate(po + 0x90_0abc).unwrap(), 0x90_0abc, "large page");
                assert_eq!(v.translate(0xfff0_0010).unwrap(), 0x5010, "fixmap/kmap page");
                let vm = po + 0x3800_0000;
                if pae {
                    assert_eq!(v.translate(vm + 8).unwrap(), 0x3_2000_0008, "PAE: physical above 4 GiB");
                } else {
                    assert_eq!(v.translate(vm + 8).unwrap(), 0x2000_0008, "non-PAE: 32-bit physical");
                }
                let e = v.translate(po + 0x200_0000).unwrap_err();
                assert_eq!((e.kind, e.address()), (ErrorKind::Unmapped, Some(po + 0x200_0000)));
                let e = v.translate(0x1_0000_0000).unwrap_err();
                assert_eq!(e.kind, ErrorKind::Unmapped);
            }
        }
    }

    #[test]
    fn wrong_pae_flag_still_finds_the_layout_and_no_fit_is_an_error() {
        let (mem, swapper) = guest(true, 0xC000_0000);
        let t = build_translator(&mem, EM_386, false, text(swapper, false).as_bytes()).unwrap();
        assert_eq!(t.layout(&mem).pae, Some(true));
        let e = build_translator(&FakeMem::default(), EM_386, false, text(swapper, false).as_bytes()).unwrap_err();
        assert!(e.message.contains("no PAGE_OFFSET"), "{e}");
        // A memory image names no machine: i386 is recognised by its self-mapping tables.
        let (np, nswapper) = guest(false, 0xC000_0000);
        // (A release that names no flavour: "-686" alone would name i386.)
        let anon = text(nswapper, false).replace("6.1.0-686", "6.1.0-custom");
        let t = build_translator(&np, 0, false, anon.as_bytes()).unwrap();
        assert_eq!(t.layout(&np).arch, "i386");
        let e = build_translator(&FakeMem::default(), 0, false, anon.as_bytes()).unwrap_err();
        assert!(e.kind == ErrorKind::Unsupported && e.message.contains("unknown"), "{e}");
        let e = build_translator(&mem, EM_386, false, b"OSRELEASE=6.1.0-686\n").unwrap_err();
        assert!(e.message.contains("SYMBOL(swapper_pg_dir)"), "{e}");
    }

    #[test]
    fn pages_under_one_table_cost_one_table_read() {
        for pae in [false, true] {
            let (mem, swapper) = guest(pae, 0xC000_0000);
            let t = build_translator(&mem, EM_386, false, text(swapper, pae).as_bytes()).unwrap();
            let v = KernelView::new(&mem, &t);
            v.translate(0xC000_0000).unwrap();
            let before = mem.reads.load(std::sync::atomic::Ordering::Relaxed);
            for k in 1..256u64 {
                assert_eq!(v.translate(0xC000_0000 + k * 0x1000 + 7).unwrap(), k * 0x1000 + 7);
            }
            let reads = mem.reads.load(std::sync::atomic::Ordering::Relaxed) - before;
            assert_eq!(reads, 1, "PAE={pae}: one read of the page table, then its cached copy");
            // read_virt across those pages agrees with the single translations
            for pa in (0x1000..0x4000).step_by(4096) {
                mem.page(pa);
            }
            mem.write(0x2ffe, b"xyz");
            let mut a = [0u8; 3 * 4096];
            v.read_virt(0xC000_1000, &mut a).unwrap();
            assert_eq!(&a[0x1ffe..0x2001], b"xyz");
        }
    }
}
