//! Bitness rules: the ELF class a dump must have for its `e_machine`, and the address width
//! that SYMBOL and KERNELOFFSET values must fit on 32-bit targets.

use crate::error::{Error, Result, Rule};
use crate::text::{parse_hex, View};

/// `e_machine` values, as the `u16` the dump readers carry, taken from `object::elf`'s
/// `Machine` constants (the names are object's and the ELF specification's).
mod em {
    use object::elf;
    pub const EM_SPARC: u16 = elf::EM_SPARC.0;
    pub const EM_386: u16 = elf::EM_386.0;
    pub const EM_68K: u16 = elf::EM_68K.0;
    pub const EM_MIPS: u16 = elf::EM_MIPS.0;
    pub const EM_PARISC: u16 = elf::EM_PARISC.0;
    pub const EM_PPC: u16 = elf::EM_PPC.0;
    pub const EM_PPC64: u16 = elf::EM_PPC64.0;
    pub const EM_S390: u16 = elf::EM_S390.0;
    pub const EM_ARM: u16 = elf::EM_ARM.0;
    pub const EM_SH: u16 = elf::EM_SH.0;
    pub const EM_SPARCV9: u16 = elf::EM_SPARCV9.0;
    pub const EM_IA_64: u16 = elf::EM_IA_64.0;
    pub const EM_X86_64: u16 = elf::EM_X86_64.0;
    pub const EM_OPENRISC: u16 = elf::EM_OPENRISC.0;
    pub const EM_XTENSA: u16 = elf::EM_XTENSA.0;
    pub const EM_AARCH64: u16 = elf::EM_AARCH64.0;
    pub const EM_MICROBLAZE: u16 = elf::EM_MICROBLAZE.0;
    pub const EM_RISCV: u16 = elf::EM_RISCV.0;
    pub const EM_LOONGARCH: u16 = elf::EM_LOONGARCH.0;
    pub const EM_ALPHA: u16 = elf::EM_ALPHA.0;
}
pub use em::*;

/// Offset of `e_ident[EI_CLASS]` in an ELF header: where class errors point.
pub const EI_CLASS_OFFSET: u64 = 4;

/// QEMU writes an i386 dump as ELF64 when any guest physical block ends above this (`UINT_MAX`).
pub const I386_ELF64_THRESHOLD: u64 = 1 << 32;

/// A short architecture name for `e_machine` and the ELF class (`"x86_64"`, `"i386"`,
/// `"aarch64"`, `"arm"`, ...); `"unknown"` for machines not listed.
pub fn machine_name(e_machine: u16, class64: bool) -> &'static str {
    let pick = |a64: &'static str, a32: &'static str| if class64 { a64 } else { a32 };
    match e_machine {
        EM_X86_64 => "x86_64",
        // QEMU writes i386 guests with more than 4 GiB as ELF64: still i386.
        EM_386 => "i386",
        EM_AARCH64 => "aarch64",
        EM_ARM => "arm",
        EM_PPC64 => "ppc64",
        EM_PPC => "ppc",
        EM_S390 => pick("s390x", "s390"),
        EM_RISCV => pick("riscv64", "riscv32"),
        EM_MIPS => pick("mips64", "mips"),
        EM_LOONGARCH => pick("loongarch64", "loongarch32"),
        EM_SPARCV9 => "sparc64",
        EM_SPARC => "sparc",
        EM_PARISC => pick("parisc64", "parisc"),
        EM_IA_64 => "ia64",
        EM_ALPHA => "alpha",
        EM_SH => "sh",
        EM_68K => "m68k",
        EM_OPENRISC => "openrisc",
        EM_XTENSA => "xtensa",
        EM_MICROBLAZE => "microblaze",
        _ => "unknown",
    }
}

/// Width of a kernel virtual address for `e_machine`: 32 for machines whose kernels are 32-bit
/// whatever the dump's ELF class (QEMU writes i386 guests as ELFCLASS64 when guest memory reaches
/// 4 GiB), else from the class.
pub fn address_bits(e_machine: u16, class64: bool) -> u32 {
    match e_machine {
        EM_386 | EM_ARM | EM_PPC | EM_SPARC | EM_SH | EM_68K | EM_OPENRISC | EM_XTENSA | EM_MICROBLAZE => 32,
        EM_X86_64 | EM_AARCH64 | EM_PPC64 | EM_SPARCV9 | EM_IA_64 | EM_ALPHA => 64,
        _ if class64 => 64,
        _ => 32,
    }
}

fn class_name(class64: bool) -> &'static str {
    if class64 {
        "ELFCLASS64"
    } else {
        "ELFCLASS32"
    }
}

/// The one ELF class QEMU writes for this machine (`Some(true)`: ELF64), or `None` when it
/// depends on the guest: x86_64, aarch64, ppc64 and s390 are ELF64; arm is ELF32; i386 (ELF64
/// in every QEMU dump of a PC guest, ELF32 from other producers), riscv and machines not listed may be either.
pub fn fixed_class(e_machine: u16) -> Option<bool> {
    match e_machine {
        EM_X86_64 | EM_AARCH64 | EM_PPC64 | EM_S390 => Some(true),
        EM_ARM => Some(false),
        _ => None,
    }
}

/// Check the ELF class against `e_machine`, as QEMU writes dumps: x86_64, aarch64, ppc64 and
/// s390 must be ELF64; arm must be ELF32; i386, riscv and unknown machines may be either. A
/// violation is a [`Rule::ClassForMachine`] error at `e_ident[EI_CLASS]`.
///
/// i386 is ELF64 in every QEMU dump of a PC guest: QEMU picks ELF64 when any guest physical
/// block ends above 4 GiB - 1 (`target/i386/arch_dump.c`, `cpu_get_dump_info`), and the BIOS ROM
/// block ends exactly at 4 GiB whatever the guest's RAM. The PT_LOADs need not show it: with
/// `paging=true` they are the guest's own mappings (see [`class_diagnostic`]).
pub fn check_class_for_machine(e_machine: u16, elf_class_64: bool) -> Result<()> {
    let required64 = fixed_class(e_machine);
    match required64 {
        Some(want) if want != elf_class_64 => Err(Error::bitness(
            Rule::ClassForMachine,
            Some(EI_CLASS_OFFSET),
            format!(
                "e_machine {e_machine} ({}) with {}: {} dumps are {}",
                machine_name(e_machine, elf_class_64),
                class_name(elf_class_64),
                machine_name(e_machine, want),
                class_name(want)
            ),
        )),
        _ => Ok(()),
    }
}

/// Why a dump has the ELF class it has, when that is not what its machine suggests: an i386
/// dump written as ELFCLASS64. `max_phys_end` is the exclusive end of the highest physical
/// address the PT_LOADs cover. `None` when there is nothing to explain.
pub fn class_diagnostic(e_machine: u16, elf_class_64: bool, max_phys_end: u64) -> Option<String> {
    if e_machine != EM_386 || !elf_class_64 {
        return None;
    }
    let held = if max_phys_end >= I386_ELF64_THRESHOLD {
        format!("the PT_LOADs reach {max_phys_end:#x}")
    } else {
        format!("the PT_LOADs end at {max_phys_end:#x}, below 4 GiB (a paging=true dump holds the guest's mappings only)")
    };
    Some(format!(
        "i386 dump written as ELFCLASS64: QEMU uses ELF64 when any guest physical block ends above 4 GiB - 1, and \
         the PC BIOS ROM ends at 4 GiB; {held}; addresses are still 32-bit"
    ))
}

/// Check that `value` (a SYMBOL address or KERNELOFFSET, named by `what`) fits in
/// `address_bits` bits; widths of 64 or more accept everything. A violation is a
/// [`Rule::AddressWidth`] error at `offset`.
pub fn check_address_width(value: u64, address_bits: u32, what: &str, offset: u64) -> Result<()> {
    let fits = match 1u64.checked_shl(address_bits) {
        Some(limit) if address_bits < 64 => value < limit,
        _ => true,
    };
    if fits {
        return Ok(());
    }
    Err(Error::bitness(
        Rule::AddressWidth,
        Some(offset),
        format!("{what} = {value:#x} does not fit a {address_bits}-bit address"),
    ))
}

/// Check every `SYMBOL(...)` and the `KERNELOFFSET` value of a text against `address_bits`,
/// in text order; the first violation is returned, its offset being the value's offset in the
/// text. Values that do not parse as hex are left to the typed accessors (not a bitness matter).
pub fn check_text_address_width(view: &View<'_>, address_bits: u32) -> Result<()> {
    if address_bits >= 64 {
        return Ok(());
    }
    for item in view.items() {
        let is_symbol = item.key.starts_with(b"SYMBOL(") && item.key.ends_with(b")");
        if !is_symbol && item.key != b"KERNELOFFSET" {
            continue;
        }
        let Ok(value) = parse_hex(item.value) else { continue };
        let what = String::from_utf8_lossy(item.key);
        check_address_width(value, address_bits, &what, u64::from(item.value_offset)).map_err(Error::in_text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::text::Index;

    const X86: &[u8] = include_bytes!("../tests/fixtures/x86_64.VMCOREINFO.txt");
    const GIB4: u64 = 1 << 32;

    #[test]
    fn sixty_four_bit_only_machines() {
        for m in [EM_X86_64, EM_AARCH64, EM_PPC64, EM_S390] {
            assert!(check_class_for_machine(m, true).is_ok());
            let e = check_class_for_machine(m, false).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Bitness(Rule::ClassForMachine));
            assert_eq!(e.offset(), Some(EI_CLASS_OFFSET));
            assert!(e.message.contains("ELFCLASS32"), "{}", e.message);
        }
        let e = check_class_for_machine(EM_X86_64, false).unwrap_err();
        assert!(e.message.contains("x86_64 dumps are ELFCLASS64"), "{}", e.message);
    }

    #[test]
    fn arm_is_32_bit() {
        assert!(check_class_for_machine(EM_ARM, false).is_ok());
        let e = check_class_for_machine(EM_ARM, true).unwrap_err();
        assert_eq!(e.rule(), Some(Rule::ClassForMachine));
        assert!(e.message.contains("arm dumps are ELFCLASS32"), "{}", e.message);
    }

    #[test]
    fn i386_is_either_class_whatever_the_memory() {
        // QEMU writes every PC guest as ELF64 (its BIOS ROM block ends at 4 GiB); a paging=true
        // dump of a 256 MiB guest has PT_LOADs far below 4 GiB and is still ELF64.
        for class64 in [false, true] {
            assert!(check_class_for_machine(EM_386, class64).is_ok());
        }
        let d = class_diagnostic(EM_386, true, 0x1000_0000).unwrap();
        assert!(d.contains("ELFCLASS64") && d.contains("BIOS ROM") && d.contains("0x10000000, below 4 GiB"), "{d}");
        let d = class_diagnostic(EM_386, true, GIB4).unwrap();
        assert!(d.contains("reach 0x100000000"), "{d}");
        assert_eq!(class_diagnostic(EM_386, false, 0x1000_0000), None);
        assert_eq!(class_diagnostic(EM_X86_64, true, 0x1000_0000), None);
    }

    #[test]
    fn address_bits_follow_the_machine() {
        assert_eq!(address_bits(EM_386, true), 32);
        assert_eq!(address_bits(EM_386, false), 32);
        assert_eq!(address_bits(EM_X86_64, true), 64);
        assert_eq!(address_bits(EM_ARM, false), 32);
        assert_eq!(address_bits(EM_RISCV, false), 32);
        assert_eq!(address_bits(EM_RISCV, true), 64);
        assert_eq!(address_bits(0, true), 64);
    }

    #[test]
    fn riscv_and_unknown_accept_both() {
        for m in [EM_RISCV, 0, 9999, EM_MIPS] {
            assert!(check_class_for_machine(m, true).is_ok());
            assert!(check_class_for_machine(m, false).is_ok());
        }
    }

    #[test]
    fn machine_names() {
        assert_eq!(machine_name(EM_X86_64, true), "x86_64");
        assert_eq!(machine_name(EM_386, false), "i386");
        assert_eq!(machine_name(EM_386, true), "i386");
        assert_eq!(machine_name(EM_AARCH64, true), "aarch64");
        assert_eq!(machine_name(EM_ARM, false), "arm");
        assert_eq!(machine_name(EM_PPC64, true), "ppc64");
        assert_eq!(machine_name(EM_PPC, false), "ppc");
        assert_eq!(machine_name(EM_S390, true), "s390x");
        assert_eq!(machine_name(EM_RISCV, true), "riscv64");
        assert_eq!(machine_name(EM_RISCV, false), "riscv32");
        assert_eq!(machine_name(EM_MIPS, false), "mips");
        assert_eq!(machine_name(EM_LOONGARCH, true), "loongarch64");
        assert_eq!(machine_name(12345, true), "unknown");
    }

    #[test]
    fn address_width() {
        assert!(check_address_width(0xffff_ffff, 32, "SYMBOL(x)", 0).is_ok());
        let e = check_address_width(0x1_0000_0000, 32, "SYMBOL(x)", 77).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Bitness(Rule::AddressWidth));
        assert_eq!(e.offset(), Some(77));
        assert!(e.message.contains("SYMBOL(x) = 0x100000000"), "{}", e.message);
        assert!(check_address_width(u64::MAX, 64, "x", 0).is_ok());
        assert!(check_address_width(u64::MAX, 200, "x", 0).is_ok());
        assert!(check_address_width(0, 0, "x", 0).is_ok());
        assert!(check_address_width(1, 0, "x", 0).is_err());
        assert!(check_address_width((1 << 48) - 1, 48, "x", 0).is_ok());
        assert!(check_address_width(1 << 48, 48, "x", 0).is_err());
    }

    #[test]
    fn text_address_width() {
        let ix = Index::build(X86);
        let v = ix.view(X86);
        assert!(check_text_address_width(&v, 64).is_ok());
        // The x86_64 text on a 32-bit target: the first SYMBOL is reported, at its value.
        let e = check_text_address_width(&v, 32).unwrap_err();
        assert_eq!(e.rule(), Some(Rule::AddressWidth));
        let it = v.item_for("SYMBOL(init_uts_ns)").unwrap();
        assert_eq!(e.offset(), Some(u64::from(it.value_offset)));
        assert!(e.message.contains("SYMBOL(init_uts_ns)"), "{}", e.message);

        let t = b"OSRELEASE=5.10.0-686-pae\nSYMBOL(swapper_pg_dir)=c1a7c000\nSIZE(page)=32\nNUMBER(x)=0xffffffffff\nSYMBOL(bad)=zz\nKERNELOFFSET=0\n";
        let ix = Index::build(t);
        assert!(check_text_address_width(&ix.view(t), 32).is_ok());
        let t = b"SYMBOL(a)=c1000000\nKERNELOFFSET=100000000\n";
        let ix = Index::build(t);
        let e = check_text_address_width(&ix.view(t), 32).unwrap_err();
        assert!(e.message.starts_with("KERNELOFFSET"), "{}", e.message);
        assert_eq!(e.offset(), Some(32));
    }
}
