//! Raw physical images: the file is guest-physical memory from address 0, byte for byte
//! (`dd` of `/dev/mem`, `virsh dump --memory-only`'s raw siblings, a hypervisor's RAM file).
//!
//! There is no header and no magic, so a raw image is never detected: the caller asks for it
//! (`OpenOptions::format = Some(Format::Raw)`). Address `a` is file offset `a`; addresses at or
//! past the end of the file are absent. A sparse file's holes are zeros, as the file reads.

use crate::format::{DumpFormat, Format, Identity};
use std::sync::Arc;

use crate::extent::{Beyond, Extent, ExtentImage, ExtentMap, Labels};
use crate::source::ReadAt;

const LABELS: Labels = Labels {
    gap: "the raw image ends before this physical address",
    unstored: "the raw image ends before this physical address",
    data: "raw image data for physical",
};

/// A raw physical image over a byte source: one extent, physical `[0, len)` at file offset 0.
pub type RawImage = ExtentImage<RawInfo>;

/// What a raw image keeps besides its map: nothing.
#[derive(Debug, Clone, Copy)]
pub struct RawInfo;

impl ExtentImage<RawInfo> {
    pub fn new(src: Arc<dyn ReadAt>) -> RawImage {
        let len = src.size();
        let (map, _) = ExtentMap::build(Extent::new(0, len, 0, len).into_iter().collect(), Beyond::Absent, LABELS);
        ExtentImage::from_map(src, map, RawInfo)
    }

    /// Bytes of physical memory held (the file length at open).
    pub fn len(&self) -> u64 {
        self.source().size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DumpFormat for RawImage {
    fn format(&self) -> Format {
        Format::Raw
    }
    fn identity(&self) -> Option<Identity> {
        None
    }
    fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        ExtentImage::file_offset(self, addr, len)
    }
    fn source(&self) -> &Arc<dyn ReadAt> {
        ExtentImage::source(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::phys::{PhysMemory, PhysRange};

    fn img(n: usize) -> RawImage {
        RawImage::new(Arc::new((0..n).map(|i| i as u8).collect::<Vec<u8>>()))
    }

    #[test]
    fn reads_are_identity_mapped() {
        let r = img(100);
        let mut b = [0u8; 4];
        r.read_phys(10, &mut b).unwrap();
        assert_eq!(b, [10, 11, 12, 13]);
        assert_eq!(r.ranges().unwrap(), vec![PhysRange { start: 0, end: 100 }]);
        assert_eq!(r.file_offset(96, 4), Some(96));
        assert_eq!(r.file_offset(97, 4), None);
        r.read_phys(100, &mut []).unwrap();
    }

    #[test]
    fn past_the_end_is_absent_at_the_first_missing_address() {
        let r = img(100);
        let mut b = [0u8; 8];
        let e = r.read_phys(96, &mut b).unwrap_err();
        assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(100)));
        let e = r.read_phys(200, &mut b).unwrap_err();
        assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(200)));
        let e = img(0).read_phys(u64::MAX - 2, &mut b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Absent);
        assert!(img(0).ranges().unwrap().is_empty());
    }

    #[test]
    fn wrapping_reads_are_absent_not_panics() {
        let r = RawImage::new(Arc::new(vec![0u8; 16]));
        let mut b = [0u8; 8];
        assert_eq!(r.read_phys(u64::MAX - 3, &mut b).unwrap_err().kind, ErrorKind::Absent);
    }
}
