//! Each module's own symbols (`mod->kallsyms`, a `struct mod_kallsyms` {symtab: an `Elf_Sym`
//! array, num_symtab, strtab, typetab}), sorted by address to name addresses inside modules as
//! the kernel's `find_kallsyms_symbol` does: undefined, unnamed and mapping symbols (`$x`, `$d`)
//! are skipped, and a symbol's size runs to the next symbol (or the end of the module's text).

use super::modules::Module;
use super::KernelTypes;
use crate::error::Result;
use crate::kview::{too_big_virt, VirtMemory};

/// Most symbols read for one module.
pub const MAX_MODULE_SYMBOLS: u64 = 1 << 20;
/// Longest symbol name read (the kernel's KSYM_NAME_LEN is 512).
const MAX_SYM_NAME: usize = 512;

/// One module symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModSym {
    pub name: Vec<u8>,
    pub addr: u64,
    /// The `nm` type letter (`typetab`, 5.2+; else `t`).
    pub kind: u8,
}

/// One module's symbols, sorted by address.
#[derive(Debug, Clone)]
pub struct ModuleSymbols {
    pub module: Vec<u8>,
    /// `[start, end)` of the module's memory named through these symbols (base .. base+size).
    pub range: (u64, u64),
    /// End of the module's text: the size bound of the last text symbol.
    pub text_end: u64,
    pub syms: Vec<ModSym>,
}

impl ModuleSymbols {
    /// `(symbol, offset, size)` at or nearest below `addr`, when `addr` is within the module.
    pub fn lookup(&self, addr: u64) -> Option<(&ModSym, u64, Option<u64>)> {
        if !(self.range.0..self.range.1).contains(&addr) {
            return None;
        }
        let pos = self.syms.partition_point(|s| s.addr <= addr);
        let i = pos.checked_sub(1)?;
        let s = &self.syms[i];
        let next = self.syms[pos..].iter().find(|n| n.addr > s.addr).map(|n| n.addr);
        let end = next.or((s.addr < self.text_end).then_some(self.text_end));
        Some((s, addr - s.addr, end.map(|e| e - s.addr)))
    }
}

/// Read `module`'s symbols.
pub fn module_symbols(mem: &dyn VirtMemory, types: &dyn KernelTypes, module: &Module) -> Result<ModuleSymbols> {
    let mut out = ModuleSymbols {
        module: module.name.clone(),
        range: (module.base, module.base.saturating_add(module.size)),
        text_end: module.text.1,
        syms: Vec::new(),
    };
    if module.kallsyms == 0 {
        return Ok(out);
    }
    const K: &str = "struct mod_kallsyms";
    let ks = module.kallsyms;
    let symtab = mem.read_ptr(ks + types.offset_of(K, "symtab")?)?;
    let num = u64::from(mem.read_u32(ks + types.offset_of(K, "num_symtab")?)?);
    let strtab = mem.read_ptr(ks + types.offset_of(K, "strtab")?)?;
    let typetab = match types.has_member(K, "typetab") {
        true => mem.read_ptr(ks + types.offset_of(K, "typetab")?)?,
        false => 0,
    };
    if num > MAX_MODULE_SYMBOLS {
        return Err(too_big_virt(ks, format!("mod_kallsyms at {ks:#x}: {num} symbols, over the {MAX_MODULE_SYMBOLS} limit")));
    }
    // The ELF ABI's Elf64_Sym {name u32, info u8, other u8, shndx u16, value u64, size u64} and
    // Elf32_Sym {name u32, value u32, size u32, info u8, other u8, shndx u16}.
    let wide = mem.pointer_size() == 8;
    let esize = if wide { 24 } else { 16 };
    let mut table = vec![0u8; (num * esize) as usize];
    mem.read_virt(symtab, &mut table)?;
    let types_bytes = if typetab != 0 && num > 0 {
        let mut t = vec![0u8; num as usize];
        mem.read_virt(typetab, &mut t)?;
        Some(t)
    } else {
        None
    };
    let big = mem.big_endian();
    let u16_at = |b: &[u8]| if big { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) };
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let u64_at = |b: &[u8]| {
        let a: [u8; 8] = b[..8].try_into().unwrap_or_default();
        if big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    };
    let mut name_buf = [0u8; MAX_SYM_NAME];
    for (i, e) in table.chunks_exact(esize as usize).enumerate() {
        let st_name = u32_at(&e[0..4]);
        let (value, shndx) =
            if wide { (u64_at(&e[8..16]), u16_at(&e[6..8])) } else { (u64::from(u32_at(&e[4..8])), u16_at(&e[14..16])) };
        if shndx == 0 || st_name == 0 {
            continue;
        }
        let name = read_name(mem, strtab + u64::from(st_name), &mut name_buf)?;
        if name.is_empty() || is_mapping_symbol(name) {
            continue;
        }
        let kind = types_bytes.as_ref().map_or(b't', |t| t[i]);
        out.syms.push(ModSym { name: name.to_vec(), addr: value, kind });
    }
    out.syms.sort_by_key(|s| s.addr);
    Ok(out)
}

/// `$x`, `$d`, `$a`, `$t` (and `$x.123`, ...): ARM mapping symbols, as the kernel's
/// `is_mapping_symbol` skips them; also `.L` locals.
fn is_mapping_symbol(name: &[u8]) -> bool {
    if name.starts_with(b".L") || name.starts_with(b"L0") {
        return true;
    }
    name.len() >= 2 && name[0] == b'$' && b"adtx".contains(&name[1]) && (name.len() == 2 || name[2] == b'.')
}

fn read_name<'b>(mem: &dyn VirtMemory, addr: u64, buf: &'b mut [u8; MAX_SYM_NAME]) -> Result<&'b [u8]> {
    // Read 64 bytes at a time up to the NUL (names are short; a read never crosses far past it).
    let mut have = 0usize;
    while have < buf.len() {
        let n = 64.min(buf.len() - have);
        if mem.read_virt(addr + have as u64, &mut buf[have..have + n]).is_err() {
            // The strtab may end near a page's end: read byte by byte there.
            let mut b = [0u8];
            mem.read_virt(addr + have as u64, &mut b)?;
            buf[have] = b[0];
            if b[0] == 0 {
                return Ok(&buf[..have]);
            }
            have += 1;
            continue;
        }
        if let Some(p) = buf[have..have + n].iter().position(|&c| c == 0) {
            return Ok(&buf[..have + p]);
        }
        have += n;
    }
    Err(crate::kview::bad_virt(addr, format!("module symbol name at {addr:#x} is longer than {MAX_SYM_NAME} bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kobj::modules::ModuleState;
    use crate::kobj::roots::fake::*;
    use crate::kview::testmem::FakeMem;

    #[test]
    fn module_symbols_sorted_and_sized() {
        let m = FakeMem::default();
        let mut t = FakeTypes::default();
        t.member("struct mod_kallsyms", "symtab", 0, 8)
            .member("struct mod_kallsyms", "num_symtab", 8, 4)
            .member("struct mod_kallsyms", "strtab", 16, 8)
            .member("struct mod_kallsyms", "typetab", 24, 8);
        let (ks, symtab, strtab, typetab) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
        let base = 0xffff_ffff_c000_0000u64;
        m.w64(ks, symtab);
        m.w32(ks + 8, 5);
        m.w64(ks + 16, strtab);
        m.w64(ks + 24, typetab);
        m.write(strtab, b"\0fw_probe\0fw_init\0$x\0undef\0");
        m.write(typetab, b"tttTU");
        // (st_name, shndx, value)
        let syms = [(1u32, 1u16, base + 0x100), (10, 1, base + 0x10), (18, 1, base), (21, 0, 0), (0, 1, base + 0x50)];
        for (i, (n, sh, v)) in syms.iter().enumerate() {
            let e = symtab + i as u64 * 24;
            m.w32(e, *n);
            m.write(e + 6, &sh.to_le_bytes());
            m.w64(e + 8, *v);
        }
        let module = Module {
            name: b"fw".to_vec(),
            base,
            size: 0x2000,
            state: ModuleState::Live,
            taint_mask: 0,
            address: 0x9000,
            text: (base, base + 0x180),
            kallsyms: ks,
        };
        let s = module_symbols(&Flat(&m), &t, &module).unwrap();
        let names: Vec<&[u8]> = s.syms.iter().map(|s| &s.name[..]).collect();
        assert_eq!(names, [&b"fw_init"[..], b"fw_probe"]);
        let (sym, off, size) = s.lookup(base + 0x123).unwrap();
        assert_eq!((&sym.name[..], off, size), (&b"fw_probe"[..], 0x23, Some(0x80)));
        let (sym, off, size) = s.lookup(base + 0x20).unwrap();
        assert_eq!((&sym.name[..], off, size, sym.kind), (&b"fw_init"[..], 0x10, Some(0xf0), b't'));
        assert!(s.lookup(base + 0x2000).is_none());
        assert!(s.lookup(base - 1).is_none());
        // A count past the bound is an error, not a huge allocation.
        m.w32(ks + 8, u32::MAX);
        assert_eq!(module_symbols(&Flat(&m), &t, &module).unwrap_err().kind, crate::error::ErrorKind::Limit);
    }
}
