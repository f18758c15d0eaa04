//! The kernel's own view of a dump, from VMCOREINFO alone: kernel virtual addresses, the kernel
//! log and the kernel's symbols. Everything here reads guest memory through
//! [`PhysMemory`](crate::phys::PhysMemory), so every dump format gets it.

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

pub mod kallsyms;
pub mod printk;
