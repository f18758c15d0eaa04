//! Views of a dump's physical memory: zero-copy into the file's mapping where the file stores
//! the range as plain bytes, else an owned copy.

use super::Dump;
use crate::error::Result;
use crate::mmap::PhysView;
use crate::source::ReadAt;

impl Dump {
    /// A scan counts unreadable pages and goes on; a file that shrank under the mapping is not a
    /// page that cannot be read but a file that is no longer the one opened: an error.
    pub fn check_mapping(&self) -> Result<()> {
        match self.mapping() {
            Some(m) if m.poisoned() => {
                let mut b = [0u8; 1];
                m.read_exact_at(&mut b, 0)
            }
            _ => Ok(()),
        }
    }

    /// Read-only view of guest-physical `[addr, addr + size)`: zero-copy into the file's mapping
    /// when the file is mapped and stores the range as one run of plain bytes (raw, LiME, one ELF
    /// PT_LOAD's file bytes); otherwise (kdump's and AVML's compressed pages, a range spanning two
    /// stored runs or a zero-read tail, `mmap: false`) read into an owned buffer. Absent memory is
    /// an error checked before anything is allocated.
    pub fn view_phys(&self, addr: u64, size: usize) -> Result<PhysView> {
        if let (Some(off), Some(m)) = (self.phys_file_offset(addr, size as u64), self.map_now()) {
            return m.view(off, size);
        }
        self.check_backed(addr, size as u64)?;
        let mut v = vec![0u8; size];
        self.read_phys(addr, &mut v)?;
        Ok(PhysView::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_is_made_by_the_first_view_not_by_open() {
        use crate::dump::OpenOptions;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/x86_64-qemu-elf.core");
        let d = Dump::open(&path, OpenOptions::default()).unwrap();
        assert!(d.mapping().is_none(), "open must not map the file");
        d.vmcoreinfo().unwrap();
        assert!(d.mapping().is_none(), "reading the text must not map the file");
        let r = d.memory_ranges().unwrap()[0];
        let v = d.view_phys(r.start, 16).unwrap();
        assert!(matches!(v, PhysView::Mapped { .. }), "a stored range is a view of the mapping");
        assert!(d.mapping().is_some());
        let no = Dump::open(&path, OpenOptions { mmap: false, ..OpenOptions::default() }).unwrap();
        assert!(matches!(no.view_phys(r.start, 16).unwrap(), PhysView::Owned(_)));
        assert!(no.map_now().is_none());
        let eager = Dump::open(&path, OpenOptions { mapped_reads: true, ..OpenOptions::default() }).unwrap();
        assert!(eager.mapping().is_some(), "mapped_reads maps at open");
    }
}
