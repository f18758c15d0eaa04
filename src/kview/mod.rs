//! The kernel's own view of a dump, from VMCOREINFO alone: kernel virtual addresses, the kernel
//! log and the kernel's symbols.
//!
//! The [`Translator`] reads guest memory through [`PhysMemory`] only,
//! so every dump format gets it; a [`KernelView`] pairs it with that memory as a [`VirtMemory`].
//! The log and symbol readers ([`printk::read_log`], [`kallsyms::read_symbols`]) take any
//! [`VirtMemory`] and the VMCOREINFO text as a [`View`]. Nothing here knows the dump: the entry
//! points that start from one (`Dump::kernel_view`, `Dump::with_vmcoreinfo`, `Dump::kernel_log`,
//! `Dump::kernel_symbols`) are in `crate::dump`.

use crate::error::{Error, Result};

/// Reads of kernel virtual memory. The translation layer implements it; the log and symbol
/// readers take any implementation (tests use small fakes).
pub trait VirtMemory: Send + Sync {
    /// Fill `buf` from kernel virtual address `vaddr`: an address the kernel does not map is an
    /// [`ErrorKind::Unmapped`](crate::error::ErrorKind::Unmapped) error, memory the dump lacks an
    /// [`ErrorKind::Absent`](crate::error::ErrorKind::Absent) one.
    fn read_virt(&self, vaddr: u64, buf: &mut [u8]) -> Result<()>;
    /// Width of a kernel pointer in bytes: 4 on i386 (even inside QEMU's ELF64 dumps), 8 on
    /// 64-bit kernels.
    fn pointer_size(&self) -> usize;
    fn big_endian(&self) -> bool;

    fn read_u16(&self, vaddr: u64) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_virt(vaddr, &mut b)?;
        Ok(if self.big_endian() { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }
    fn read_u32(&self, vaddr: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_virt(vaddr, &mut b)?;
        Ok(if self.big_endian() { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }
    fn read_u64(&self, vaddr: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_virt(vaddr, &mut b)?;
        Ok(if self.big_endian() { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) })
    }
    /// A kernel pointer (or `unsigned long`), zero-extended to 64 bits.
    fn read_ptr(&self, vaddr: u64) -> Result<u64> {
        match self.pointer_size() {
            4 => self.read_u32(vaddr).map(u64::from),
            8 => self.read_u64(vaddr),
            n => Err(Error::unsupported(None, format!("kernel pointer width of {n} bytes"))),
        }
    }
}

pub mod arm64;
mod cache;
pub mod i386;
pub mod kallsyms;
pub mod printk;
#[cfg(test)]
pub(crate) mod testmem;
mod translator;
pub(crate) mod walker;
pub mod x86_64;

pub use translator::{Arch, KernelView, Layout, Translator};

/// The translator's types under their former path (the translator, the walker and the caches now
/// live in three modules).
pub mod translate {
    pub use super::translator::{Arch, KernelView, Layout, Translator};
}

use crate::bitness;
use crate::phys::PhysMemory;
use crate::text::{Index, View};

/// A kernel structure at virtual address `addr` that is inconsistent (a format error there).
pub(crate) fn bad_virt(addr: u64, msg: impl Into<String>) -> Error {
    Error::at(crate::error::ErrorKind::Format, Some(crate::error::Location::Virt(addr)), msg)
}

/// A kernel structure at virtual address `addr` larger than a reader's limit allows.
pub(crate) fn too_big_virt(addr: u64, msg: impl Into<String>) -> Error {
    Error::at(crate::error::ErrorKind::Limit, Some(crate::error::Location::Virt(addr)), msg)
}

/// A kernel layout that VMCOREINFO and the page tables do not agree on (no file offset: the
/// message names the values).
pub(crate) fn layout_error(message: impl Into<String>) -> Error {
    Error::at(crate::error::ErrorKind::Format, None, message)
}

/// VMCOREINFO as the translators read it: a missing key is an error naming it.
pub(crate) struct Keys<'a> {
    pub view: View<'a>,
    pub arch: &'static str,
}

impl Keys<'_> {
    /// A layout error located at the value of `key` in the text (which the dump places in the file).
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> Error {
        let at = self.view.item_for(key).map(|i| crate::error::Location::Text(u64::from(i.value_offset)));
        Error::at(crate::error::ErrorKind::Format, at, message)
    }
    pub fn need<T>(&self, value: Result<Option<T>>, key: &str) -> Result<T> {
        value?.ok_or_else(|| {
            Error::unsupported(None, format!("VMCOREINFO has no {key}, which {} kernel address translation needs", self.arch))
        })
    }
}

/// Build the translator for a dump's kernel from its VMCOREINFO text (`e_machine` 0: guess the
/// machine from the text's keys). x86_64, i386 (PAE or not) and aarch64 are supported; any other
/// machine is an [`ErrorKind::Unsupported`](crate::error::ErrorKind::Unsupported) error naming it.
/// Text errors carry offsets in `text`.
pub fn build_translator(mem: &dyn PhysMemory, e_machine: u16, big_endian: bool, text: &[u8]) -> Result<Translator> {
    let machine = match e_machine {
        0 => crate::machine::machine_from_vmcoreinfo(text).map_or(0, |(m, _)| m),
        m => m,
    };
    let idx = Index::build(text);
    let view = idx.view(text);
    match machine {
        bitness::EM_X86_64 => x86_64::build(mem, &Keys { view, arch: "x86_64" }),
        bitness::EM_386 => i386::build(mem, &Keys { view, arch: "i386" }),
        bitness::EM_AARCH64 => arm64::build(mem, &Keys { view, arch: "aarch64" }, big_endian),
        // No machine from the dump or from x86_64/arm64-only keys (a LiME or raw image of an i386
        // guest, whose text has no i386-only key unless it is PAE): i386 is the one layout left
        // that VMCOREINFO alone can confirm (its root must map swapper_pg_dir back onto itself).
        0 => i386::build(mem, &Keys { view, arch: "i386" }).map_err(|e| {
            Error::unsupported(None, format!("kernel virtual addresses: the dump's machine is unknown (and not i386: {e})"))
        }),
        m => Err(Error::unsupported(
            None,
            format!(
                "kernel virtual addresses of {} dumps are not supported (x86_64, i386 and aarch64 are)",
                bitness::machine_name(m, true)
            ),
        )),
    }
}
