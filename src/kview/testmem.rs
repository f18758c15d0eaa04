//! Test support: a sparse fake physical memory for synthetic page tables.
use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::phys::{PhysMemory, PhysRange};

#[derive(Default)]
pub struct FakeMem {
    pages: Mutex<HashMap<u64, Box<[u8; 4096]>>>,
    pub reads: std::sync::atomic::AtomicU64,
}

impl FakeMem {
    pub fn write(&self, addr: u64, bytes: &[u8]) {
        let mut p = self.pages.lock().unwrap();
        for (i, b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            p.entry(a & !0xfff).or_insert_with(|| Box::new([0; 4096]))[(a & 0xfff) as usize] = *b;
        }
    }
    pub fn w64(&self, addr: u64, v: u64) {
        self.write(addr, &v.to_le_bytes());
    }
    pub fn w32(&self, addr: u64, v: u32) {
        self.write(addr, &v.to_le_bytes());
    }
    /// Make a page present (zeros).
    pub fn page(&self, addr: u64) {
        self.pages.lock().unwrap().entry(addr & !0xfff).or_insert_with(|| Box::new([0; 4096]));
    }
}

impl PhysMemory for FakeMem {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = self.pages.lock().unwrap();
        let mut done = 0usize;
        while done < buf.len() {
            let a = addr.checked_add(done as u64).ok_or_else(|| Error::absent(addr, "wrap"))?;
            let page = p.get(&(a & !0xfff)).ok_or_else(|| Error::absent(a, "not in the fake"))?;
            let off = (a & 0xfff) as usize;
            let n = (4096 - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(())
    }
    fn ranges(&self) -> Result<Vec<PhysRange>> {
        let p = self.pages.lock().unwrap();
        Ok(crate::phys::normalize(p.keys().map(|&a| PhysRange { start: a, end: a + 4096 }).collect()))
    }
}

/// A memory that counts its reads and refuses any past `cap`, so that a test bounds the work a
/// walk does by counting instead of timing it: a walk that regresses to unbounded work fails the
/// test (its reads hit the cap) instead of slowing or hanging it.
pub struct Capped<'a> {
    inner: &'a dyn PhysMemory,
    reads: std::sync::atomic::AtomicU64,
    cap: u64,
}

impl<'a> Capped<'a> {
    pub fn new(inner: &'a dyn PhysMemory, cap: u64) -> Self {
        Capped { inner, reads: std::sync::atomic::AtomicU64::new(0), cap }
    }
    /// Reads asked for, the refused ones included.
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
    pub fn hit_cap(&self) -> bool {
        self.reads() > self.cap
    }
}

impl PhysMemory for Capped<'_> {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= self.cap {
            return Err(Error::at(
                crate::error::ErrorKind::Limit,
                Some(crate::error::Location::Phys(addr)),
                "the test's read cap",
            ));
        }
        self.inner.read_phys(addr, buf)
    }
    fn ranges(&self) -> Result<Vec<PhysRange>> {
        self.inner.ranges()
    }
}
