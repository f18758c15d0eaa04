//! The machine a dump is for, when its container does not say it in an ELF header: from a
//! producer's `utsname.machine` (kdump headers) or from the VMCOREINFO text itself (kdump headers
//! that say "Unknown", memory images that say nothing).

use crate::bitness::{EM_386, EM_AARCH64, EM_ARM, EM_PPC, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64};
use crate::text;

/// The machine a VMCOREINFO text implies, from the keys only one architecture writes (and, last,
/// a Debian-style `OSRELEASE` suffix): `(e_machine, 64-bit)`. Used for kdump headers that name
/// no machine (QEMU writes "Unknown" on arm) and for memory images, which name none at all.
pub fn machine_from_vmcoreinfo(text_bytes: &[u8]) -> Option<(u16, bool)> {
    let idx = text::Index::build(text_bytes);
    let v = idx.view(text_bytes);
    let has = |k: &str| v.contains(k);
    if has("NUMBER(kimage_voffset)") || has("NUMBER(VA_BITS)") && has("NUMBER(PHYS_OFFSET)") {
        return Some((EM_AARCH64, true));
    }
    if has("SYMBOL(init_top_pgt)") || has("NUMBER(phys_base)") {
        return Some((EM_X86_64, true));
    }
    if has("CONFIG_X86_PAE") {
        return Some((EM_386, false));
    }
    if has("NUMBER(phys_ram_base)") {
        return Some((EM_RISCV, true));
    }
    let rel = v.osrelease()?;
    // Debian's kernel flavours: i386 kernels without PAE write no key only i386 writes.
    [
        ("-arm64", (EM_AARCH64, true)),
        ("-amd64", (EM_X86_64, true)),
        ("-s390x", (EM_S390, true)),
        ("-686", (EM_386, false)),
        ("-686-pae", (EM_386, false)),
        ("-armmp", (EM_ARM, false)),
        ("-armmp-lpae", (EM_ARM, false)),
    ]
    .into_iter()
    .find(|(suffix, _)| rel.ends_with(suffix))
    .map(|(_, m)| m)
}

/// `utsname.machine` as kdump producers write it → `(e_machine, 64-bit)`; `None` for names it
/// does not know (QEMU's "Unknown" on arm and riscv).
pub fn machine_from_uname(m: &str) -> Option<(u16, bool)> {
    Some(match m {
        "x86_64" => (EM_X86_64, true),
        "i386" | "i486" | "i586" | "i686" => (EM_386, false),
        "aarch64" | "arm64" => (EM_AARCH64, true),
        m if m.starts_with("arm") => (EM_ARM, false),
        "ppc64" | "ppc64le" => (EM_PPC64, true),
        "ppc" => (EM_PPC, false),
        "s390x" => (EM_S390, true),
        "riscv64" => (EM_RISCV, true),
        "riscv32" => (EM_RISCV, false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_i386_without_pae_is_known_by_its_release() {
        // A real non-PAE i386 text (Debian 686) has no key only i386 writes.
        let t = include_bytes!("../tests/fixtures/i386-qemu-elf.VMCOREINFO.txt");
        assert!(!t.windows(14).any(|w| w == b"CONFIG_X86_PAE"));
        assert_eq!(machine_from_vmcoreinfo(t), Some((EM_386, false)));
        assert_eq!(machine_from_vmcoreinfo(b"OSRELEASE=6.1.0-50-686-pae\n"), Some((EM_386, false)));
        assert_eq!(machine_from_vmcoreinfo(b"OSRELEASE=6.1.0-50-armmp-lpae\n"), Some((EM_ARM, false)));
        assert_eq!(machine_from_vmcoreinfo(b"OSRELEASE=6.1.0-50-rt\n"), None);
    }
}
