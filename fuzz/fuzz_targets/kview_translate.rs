//! Kernel virtual address translation over hostile page tables: the input is guest-physical
//! memory (a raw image from address 0) whose first 64 bytes also choose the architecture and the
//! VMCOREINFO values (root symbol, phys_base / kimage_voffset, VA bits, page size, PAE, levels).
//! Building the translator, the layout (x86_64 direct-map discovery), translations and reads must
//! end in a value or a typed error, within bounded time and memory.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::bitness::{EM_386, EM_AARCH64, EM_X86_64};
use vmcoreinfo::kview::{build_translator, KernelView, VirtMemory};
use vmcoreinfo::raw::RawImage;

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 64 {
        return;
    }
    let sel = data[0];
    let (machine, text) = match sel % 3 {
        0 => {
            // x86_64: root page chosen inside the image most of the time.
            let root = (u64_at(data, 8) % 64) * 4096;
            let sym = 0xffff_ffff_8000_0000u64 + root;
            let mut t = format!("OSRELEASE=6.1\nSYMBOL(init_top_pgt)={sym:x}\nNUMBER(phys_base)={}\n", u64_at(data, 16) as i64 % 4096);
            if sel & 8 != 0 {
                t += &format!("NUMBER(pgtable_l5_enabled)={}\n", (sel >> 4) & 1);
            }
            if sel & 0x40 != 0 {
                t += &format!("NUMBER(sme_mask)={}\n", u64_at(data, 24) as i64);
            }
            (EM_X86_64, t)
        }
        1 => {
            let sym = 0xc000_0000u64 + (u64_at(data, 8) % 64) * 4096;
            (EM_386, format!("OSRELEASE=6.1\nSYMBOL(swapper_pg_dir)={sym:x}\n{}", if sel & 8 != 0 { "CONFIG_X86_PAE=y\n" } else { "" }))
        }
        _ => {
            let page = [4096u64, 16384, 65536][usize::from(data[1]) % 3];
            let va_bits = 36 + u64::from(data[2] % 20);
            let t1sz = 64 - (36 + u64::from(data[3] % 20));
            let sym = u64::MAX << 47 | (u64_at(data, 8) % 64) * 4096;
            let voff = sym.wrapping_sub((u64_at(data, 16) % 64) * 4096);
            (
                EM_AARCH64,
                format!(
                    "OSRELEASE=6.1\nPAGESIZE={page}\nSYMBOL(swapper_pg_dir)={sym:x}\nNUMBER(VA_BITS)={va_bits}\n\
                     NUMBER(TCR_EL1_T1SZ)={t1sz}\nNUMBER(kimage_voffset)={voff:#x}\nNUMBER(PHYS_OFFSET)=0x0\n"
                ),
            )
        }
    };
    let mem = RawImage::new(Arc::new(data.to_vec()));
    let Ok(t) = build_translator(&mem, machine, sel & 0x80 != 0 && machine == EM_AARCH64, text.as_bytes()) else {
        return;
    };
    let v = KernelView::new(&mem, &t);
    let l = v.layout();
    let _ = format!("{l:?}");
    let mut buf = [0u8; 64];
    for i in 0..8 {
        let va = u64_at(data, 32 + i * 4) | if machine == EM_386 { 0 } else { 0xffff_0000_0000_0000 };
        let va = if machine == EM_386 { va & 0xffff_ffff } else { va };
        if let Ok(pa) = v.translate(va) {
            assert_eq!(v.translate(va).ok(), Some(pa), "a cached translation equals the walk");
        }
        let _ = v.read_virt(va, &mut buf);
    }
    if let Some(po) = l.page_offset {
        let _ = v.read_virt(po, &mut buf);
    }
});
