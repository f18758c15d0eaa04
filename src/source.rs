//! Where dump bytes come from: positioned reads (`pread`), never the whole file.
//!
//! Every reader in the core (ELF, kdump, flattened) reads through [`ReadAt`], so a layer such as
//! the flattened-format index can present a reassembled view of a file without copying it.
//!
//! Contract for files that change under us: by default we never read dump files through a mapping
//! (only zero-copy views and the `mapped_reads` option do: see [`crate::mmap`]), so a file
//! that shrinks after it is opened cannot raise SIGBUS; a read past the new end is a
//! [`ErrorKind::Truncated`](crate::error::ErrorKind::Truncated) error naming the offset.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

/// Random-access, thread-safe reads of a byte source of known length.
pub trait ReadAt: Send + Sync {
    /// Length of the source in bytes, as seen when it was opened (a file: when first needed, see
    /// [`FileSource`]); later reads past it are `Truncated` errors. (Named `size`, not `len`, so
    /// that on a byte slice or vector it never shadows, nor is shadowed by, the slice's `len`.)
    fn size(&self) -> u64;

    /// Fill `buf` from `offset`; fewer bytes than asked is a `Truncated` error at the offset
    /// where the data ran out.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Bytes the source really stores, at most `len`. A view with holes (the flattened format
    /// reads what no record wrote as zeros) stores fewer; readers that allocate in proportion
    /// to a declared size check it against this, so that holes cannot become memory.
    fn stored_len(&self) -> u64 {
        self.size()
    }

    /// Read `len` bytes at `offset` into a new buffer, after checking `len` against the source
    /// length (so a lying header cannot make us allocate more than the file holds).
    fn read_vec(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| Error::format(offset, format!("{what}: offset {offset:#x} + size {len:#x} overflows")))?;
        if end > self.size() {
            return Err(Error::truncated(
                offset,
                format!("{what}: {len} bytes at {offset:#x} run past the end of the file ({} bytes)", self.size()),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact_at(&mut v, offset)?;
        Ok(v)
    }

    /// Fill `buf` from `offset` as far as the source goes; returns how many bytes were read
    /// (fewer than `buf.len()` only at the end of the source).
    fn read_upto(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let n = self.size().saturating_sub(offset).min(buf.len() as u64) as usize;
        self.read_exact_at(&mut buf[..n], offset)?;
        Ok(n)
    }

    /// Read up to `len` bytes at `offset` (fewer at end of file), without failing on EOF.
    fn read_prefix(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let avail = self.size().saturating_sub(offset).min(len as u64) as usize;
        let mut v = vec![0u8; avail];
        self.read_exact_at(&mut v, offset)?;
        Ok(v)
    }
}

/// A source whose first bytes were already read: reads that fall inside `head` are served from
/// it, others go to `src`. Lets a format reader re-read its headers without more syscalls.
pub struct WithHead<'a> {
    pub src: &'a dyn ReadAt,
    pub head: &'a [u8],
}

impl ReadAt for WithHead<'_> {
    fn size(&self) -> u64 {
        self.src.size()
    }
    fn stored_len(&self) -> u64 {
        self.src.stored_len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= self.head.len() as u64 => {
                buf.copy_from_slice(&self.head[offset as usize..end as usize]);
                Ok(())
            }
            _ => self.src.read_exact_at(buf, offset),
        }
    }
}

/// A regular file read with `pread`.
///
/// Its length is taken once, when first needed: from the read that met the end of the file
/// ([`ReadAt::read_upto`], which is how a dump's head is read), or else from `fstat`. Opening and
/// identifying a dump whose headers and notes lie in its head thus costs `openat`, one `pread`
/// and `close`, and no `fstat`.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: OnceLock<u64>,
    /// `SEEK_DATA` calls made (tests: which path a long read took).
    #[cfg(test)]
    seeks: std::sync::atomic::AtomicUsize,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(&e, None, "cannot open"))?;
        Ok(Self::from_file(file))
    }

    /// Read an already open file.
    pub fn from_file(file: File) -> Self {
        FileSource {
            file,
            len: OnceLock::new(),
            #[cfg(test)]
            seeks: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The open file (for mapping it).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl ReadAt for FileSource {
    fn size(&self) -> u64 {
        // An fstat of an open file fails only on a broken filesystem; the reads then fail too,
        // with their own error, rather than being refused as past a made-up end.
        *self.len.get_or_init(|| self.file.metadata().map_or(u64::MAX, |m| m.len()))
    }

    fn read_upto(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        within_off_t(offset, buf.len())?;
        let got = self.fill(buf, offset).map_err(|(e, at)| match e.raw_os_error() {
            // A directory opens (read-only) and fails here: say so as opening would.
            Some(21) => Error::io(&e, None, "cannot open"),
            _ => Error::io(&e, Some(at), "read failed"),
        })?;
        if got < buf.len() {
            // The end of the file: its length, unless another read took it first.
            let _ = self.len.set(offset + got as u64);
        }
        Ok(got)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        within_off_t(offset, buf.len())?;
        let len = self.size();
        if offset + buf.len() as u64 > len {
            // Data declared past the end the file had when it was opened: it was short already.
            return Err(Error::truncated(
                offset,
                format!("{} bytes at {offset:#x} run past the end of the file ({len} bytes)", buf.len()),
            ));
        }
        if buf.len() >= SPARSE_MIN {
            return self.read_sparse(buf, offset, len);
        }
        self.pread_exact(buf, offset, len)
    }
}

/// pread's offset is an off_t: no file has bytes at or past 2^63, and the kernel answers EINVAL
/// there. A lying header that points so far is a truncated file, not an OS error.
fn within_off_t(offset: u64, len: usize) -> Result<()> {
    if offset.checked_add(len as u64).is_none_or(|end| end > i64::MAX as u64) {
        return Err(Error::truncated(offset, format!("{len} bytes at {offset:#x} lie past the largest possible file offset")));
    }
    Ok(())
}

/// Reads at least this long ask the filesystem where the file's data is (`SEEK_DATA`/`SEEK_HOLE`).
const SPARSE_MIN: usize = 64 << 10;

impl FileSource {
    /// A long read of a possibly sparse file: holes are filled with zeros here, data is read
    /// with `pread`. Reading a hole through the page cache would zero and cache one page per
    /// 4 KiB of hole (and evict real data): every page of a 64 GiB sparse dump measured slower
    /// than libkdumpfile that way. Where the filesystem cannot say (no `SEEK_DATA`), all is data.
    /// Nothing is remembered between calls, so a file that changes is seen as it is now; a
    /// hole that would reach past the file's current end is a shrunk file, as for `pread`.
    ///
    /// The filesystem's word for holes is taken only when the file really has some: when it
    /// allocates fewer bytes than its size (`st_blocks * 512 < st_size`, one `fstat`). A file
    /// that is not sparse is read with `pread` alone, so a filesystem whose `SEEK_DATA` reports
    /// data as a hole (such bugs have shipped) cannot turn its bytes into zeros. (Filesystems
    /// that compress can allocate fewer blocks than the size without holes; they take the
    /// `SEEK_DATA` path as before.)
    fn read_sparse(&self, buf: &mut [u8], offset: u64, len: u64) -> Result<()> {
        use rustix::fs::{seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let sparse = self.file.metadata().map_or(true, |m| m.blocks().saturating_mul(512) < m.size());
        if !sparse {
            return self.pread_exact(buf, offset, len);
        }
        let mut at = 0usize;
        while at < buf.len() {
            let pos = offset + at as u64;
            let left = (buf.len() - at) as u64;
            #[cfg(test)]
            self.seeks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let data = match seek(&self.file, SeekFrom::Data(pos)) {
                Ok(d) => d,
                // No data at or after `pos`: a hole up to the file's current end, or `pos` is
                // past that end (then `pread` reports the shrunk file).
                Err(rustix::io::Errno::NXIO) => {
                    let end = self.file.metadata().map_or(pos, |m| m.len());
                    if end <= pos {
                        return self.pread_exact(&mut buf[at..], pos, len);
                    }
                    end
                }
                Err(_) => return self.pread_exact(&mut buf[at..], pos, len),
            };
            if data > pos {
                let n = (data - pos).min(left) as usize;
                buf[at..at + n].fill(0);
                at += n;
                continue;
            }
            let hole = seek(&self.file, SeekFrom::Hole(pos)).unwrap_or(u64::MAX);
            let n = hole.saturating_sub(pos).clamp(1, left) as usize;
            self.pread_exact(&mut buf[at..at + n], pos, len)?;
            at += n;
        }
        Ok(())
    }

    fn pread_exact(&self, buf: &mut [u8], offset: u64, len: u64) -> Result<()> {
        let got = self.fill(buf, offset).map_err(|(e, at)| Error::io(&e, Some(at), "read failed"))?;
        if got < buf.len() {
            let at = offset + got as u64;
            return Err(Error::truncated(
                at,
                format!(
                    "the file ends at {at:#x} with {} bytes still to read, but it was {len} bytes when opened: it shrank",
                    buf.len() - got
                ),
            ));
        }
        Ok(())
    }

    /// `pread` until `buf` is full or the file ends: the bytes read, or the failure and the
    /// offset it happened at. The one read loop of both [`ReadAt::read_upto`] and reads that
    /// must be whole.
    fn fill(&self, buf: &mut [u8], offset: u64) -> std::result::Result<usize, (std::io::Error, u64)> {
        let mut got = 0;
        while got < buf.len() {
            match self.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err((e, offset + got as u64)),
            }
        }
        Ok(got)
    }
}

/// An in-memory source (tests, `parse` of bytes, fuzzing).
impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let start = usize::try_from(offset).ok().filter(|&s| s <= <[u8]>::len(self));
        let Some(start) = start else {
            return Err(Error::truncated(offset, "read starts past the end of the data"));
        };
        let avail = &self[start..];
        if avail.len() < buf.len() {
            return Err(Error::truncated(offset + avail.len() as u64, "data ends before the read does"));
        }
        buf.copy_from_slice(&avail[..buf.len()]);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn stored_len(&self) -> u64 {
        (**self).stored_len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn read_upto(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        (**self).read_upto(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn slice_reads_and_truncation() {
        let data: Vec<u8> = (0..10).collect();
        let mut b = [0u8; 3];
        data.read_exact_at(&mut b, 7).unwrap();
        assert_eq!(b, [7, 8, 9]);
        let e = data.read_exact_at(&mut b, 8).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert_eq!(e.offset(), Some(10));
        assert_eq!(data.read_prefix(8, 100).unwrap(), vec![8, 9]);
    }

    #[test]
    fn read_vec_refuses_lying_sizes_before_allocating() {
        let data = vec![0u8; 16];
        assert_eq!(data.read_vec(8, u64::MAX, "x").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(data.read_vec(8, 1 << 40, "x").unwrap_err().kind, ErrorKind::Truncated);
    }

    #[test]
    fn reads_past_the_largest_file_offset_are_truncated_not_einval() {
        let path = std::env::temp_dir().join(format!("vmci-src-far-{}", std::process::id()));
        std::fs::write(&path, [0u8; 16]).unwrap();
        let src = FileSource::open(&path).unwrap();
        let mut b = [0u8; 8];
        for off in [1u64 << 63, u64::MAX - 3, (1u64 << 63) - 4] {
            let e = src.read_exact_at(&mut b, off).unwrap_err();
            assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(off)), "{e}");
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_read_past_the_opened_length_names_its_start_and_claims_no_shrinking() {
        let path = std::env::temp_dir().join(format!("vmci-src-short-{}", std::process::id()));
        std::fs::write(&path, [0u8; 100]).unwrap();
        let src = FileSource::open(&path).unwrap();
        let mut b = [0u8; 64];
        let e = src.read_exact_at(&mut b, 60).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(60)), "{e}");
        assert!(e.message.contains("(100 bytes)") && !e.message.contains("shr"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn file_that_shrinks_gives_truncated() {
        let dir = std::env::temp_dir().join(format!("vmci-src-{}", std::process::id()));
        std::fs::write(&dir, vec![1u8; 8192]).unwrap();
        let src = FileSource::open(&dir).unwrap();
        assert_eq!(src.size(), 8192); // the length is taken when first needed
        std::fs::OpenOptions::new().write(true).open(&dir).unwrap().set_len(100).unwrap();
        let mut b = vec![0u8; 4096];
        let e = src.read_exact_at(&mut b, 0).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert_eq!(e.offset(), Some(100));
        assert!(e.message.contains("it was 8192 bytes when opened: it shrank"), "{e}");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn a_read_that_meets_the_end_takes_the_length_without_fstat() {
        let path = std::env::temp_dir().join(format!("vmci-src-upto-{}", std::process::id()));
        std::fs::write(&path, [7u8; 100]).unwrap();
        let src = FileSource::open(&path).unwrap();
        let mut b = [0u8; 8192];
        assert_eq!(src.read_upto(&mut b, 0).unwrap(), 100);
        assert!(b[..100].iter().all(|&c| c == 7));
        // The length is now 100 whatever happens to the file: a shrink is seen as one.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(10).unwrap();
        assert_eq!(src.size(), 100);
        let e = src.read_exact_at(&mut b[..50], 0).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(10)), "{e}");
        assert!(e.message.contains("it was 100 bytes when opened: it shrank"), "{e}");
        // A directory opens and fails at its first read, as an OS error.
        // (Through an Arc, as every reader holds it: the override must be reached, not the
        // default that asks for the length first.)
        let d: Arc<dyn ReadAt> = Arc::new(FileSource::open(&std::env::temp_dir()).unwrap());
        let e = d.read_upto(&mut b, 0).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Io { errno: Some(21) }), "{e}");
        assert!(e.offset().is_none() && e.message.starts_with("cannot open"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn only_a_file_with_holes_asks_the_filesystem_where_its_data_is() {
        use std::os::unix::fs::MetadataExt;
        use std::sync::atomic::Ordering::Relaxed;
        // The same bytes twice: zeros written out (every block allocated), and left as a hole.
        let mut want = vec![0u8; 1 << 20];
        want[..4096].fill(0x11);
        let dense = std::env::temp_dir().join(format!("vmci-src-dense-{}", std::process::id()));
        std::fs::write(&dense, &want).unwrap();
        let sparse = std::env::temp_dir().join(format!("vmci-src-holes-{}", std::process::id()));
        let f = std::fs::File::create(&sparse).unwrap();
        f.write_all_at(&want[..4096], 0).unwrap();
        f.set_len(want.len() as u64).unwrap();
        drop(f);
        for (path, holes) in [(&dense, false), (&sparse, true)] {
            let m = std::fs::metadata(path).unwrap();
            if (m.blocks() * 512 < m.size()) != holes {
                eprintln!("{}: this filesystem allocates it otherwise; skipped", path.display());
                continue;
            }
            let src = FileSource::open(path).unwrap();
            let mut b = vec![0xffu8; want.len()];
            src.read_exact_at(&mut b, 0).unwrap();
            assert!(b == want, "{}", path.display());
            assert_eq!(src.seeks.load(Relaxed) > 0, holes, "{}: SEEK_DATA asked", path.display());
        }
        std::fs::remove_file(&dense).unwrap();
        std::fs::remove_file(&sparse).unwrap();
    }

    #[test]
    fn long_reads_of_a_sparse_file_fill_holes_with_zeros_and_read_data() {
        use std::io::{Seek, SeekFrom, Write};
        let path = std::env::temp_dir().join(format!("vmci-src-sparse-{}", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        // data at [0, 64K), a hole, data at [1M, 1M + 100K), a hole to 3M (the file's end).
        let mut want = vec![0u8; 3 << 20];
        for (at, n, byte) in [(0usize, 64 << 10, 0xa5u8), (1 << 20, 100 << 10, 0x5a)] {
            f.seek(SeekFrom::Start(at as u64)).unwrap();
            f.write_all(&vec![byte; n]).unwrap();
            want[at..at + n].fill(byte);
        }
        f.set_len(3 << 20).unwrap();
        drop(f);
        let src = FileSource::open(&path).unwrap();
        for (off, n) in [(0usize, 3 << 20), (4096, 2 << 20), ((1 << 20) - 5, 70 << 10), ((2 << 20) + 3, (1 << 20) - 3)] {
            let mut b = vec![0xffu8; n];
            src.read_exact_at(&mut b, off as u64).unwrap();
            assert!(b == want[off..off + n], "read of {n} bytes at {off:#x} differs");
        }
        // Shrunk under us: the part past the new end is an error, not zeros.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1 << 20).unwrap();
        let mut b = vec![0u8; 2 << 20];
        let e = src.read_exact_at(&mut b, 0).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(1 << 20)), "{e}");
        std::fs::remove_file(&path).unwrap();
    }
}
