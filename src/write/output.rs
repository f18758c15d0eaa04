//! Where a writer's bytes go: a file written under a temporary name and renamed into place when
//! complete, or makedumpfile's flattened format on a stream; and the writer thread that performs
//! positioned writes in order while the next chunk is read and compressed.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{tick, Progress};
use crate::error::{Error, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where a writer's output goes.
pub enum Target<'a> {
    /// A file: written under a hidden temporary name beside it and renamed over it when
    /// complete (complete or absent).
    File(&'a Path),
    /// makedumpfile's flattened format on a stream (a pipe, stdout): every positioned write
    /// becomes a `{be64 offset, be64 size, data}` record after the 4096-byte header, and the
    /// `-1/-1` end marker closes it. `makedumpfile -R` (or this library) reassembles it. What
    /// was written to a stream cannot be taken back: after an error the stream ends without
    /// its end marker, which readers report as incomplete. `name` is used in errors.
    Flattened { stream: Box<dyn std::io::Write + Send + 'a>, name: &'a str },
}

/// The output: a file written under a temporary name and renamed over the destination by
/// [`Output::commit`] (removed when dropped uncommitted), or a flattened stream.
pub(crate) struct Output<'a> {
    kind: OutKind<'a>,
    name: Arc<str>,
}

enum OutKind<'a> {
    File { file: File, tmp: PathBuf, dest: PathBuf, committed: bool },
    Stream(std::sync::Mutex<Box<dyn std::io::Write + Send + 'a>>),
}

impl<'a> Output<'a> {
    pub fn open(target: Target<'a>) -> Result<Output<'a>> {
        match target {
            Target::File(p) => Self::create(p),
            Target::Flattened { stream, name } => {
                let out = Output { kind: OutKind::Stream(std::sync::Mutex::new(stream)), name: Arc::from(name) };
                // The flattened header, as the reader's module builds it.
                out.stream_write(&crate::flattened::file_header())?;
                Ok(out)
            }
        }
    }

    pub fn create(dest: &Path) -> Result<Output<'a>> {
        let name: Arc<str> = Arc::from(dest.to_string_lossy().as_ref());
        let err = |e: std::io::Error, what: &str| Error::io(&e, None, what).in_file(&name);
        let file_name = dest
            .file_name()
            .ok_or_else(|| err(std::io::Error::from(std::io::ErrorKind::InvalidInput), "the output path names no file"))?;
        if dest.is_dir() {
            return Err(err(std::io::Error::from_raw_os_error(libc::EISDIR), "the output path is a directory"));
        }
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        // Memory dumps hold secrets: readable by the owner only (as makedumpfile creates them).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err(e, "cannot create the output file"))?;
        Ok(Output { kind: OutKind::File { file, tmp, dest: dest.to_path_buf(), committed: false }, name })
    }

    fn stream_write(&self, data: &[u8]) -> Result<()> {
        let OutKind::Stream(s) = &self.kind else { unreachable!("stream_write on a file") };
        let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
        s.write_all(data).map_err(|e| Error::io(&e, None, "cannot write the output stream").in_file(&self.name))
    }

    pub fn write_at(&self, off: u64, data: &[u8]) -> Result<()> {
        match &self.kind {
            OutKind::File { file, .. } => file
                .write_all_at(data, off)
                .map_err(|e| Error::io(&e, Some(off), "cannot write the output file").in_file(&self.name)),
            OutKind::Stream(_) if data.is_empty() => Ok(()),
            OutKind::Stream(_) => {
                let mut rec = Vec::with_capacity(crate::flattened::RECORD_HEADER_SIZE as usize);
                rec.extend_from_slice(&off.to_be_bytes());
                rec.extend_from_slice(&(data.len() as u64).to_be_bytes());
                self.stream_write(&rec)?;
                self.stream_write(data)
            }
        }
    }

    /// Set the final length (a file may end in a hole; a stream's length is its last record's end).
    pub fn set_len(&self, len: u64) -> Result<()> {
        match &self.kind {
            OutKind::File { file, .. } => {
                file.set_len(len).map_err(|e| Error::io(&e, Some(len), "cannot size the output file").in_file(&self.name))
            }
            OutKind::Stream(_) => Ok(()),
        }
    }

    /// File: sync the data, rename the temporary over the destination, sync the directory.
    /// Stream: the end marker, then flush. A directory that cannot be synced is an error (the
    /// file is in place then, but the rename may not survive a crash).
    pub fn commit(self) -> Result<()> {
        self.commit_with(sync_dir)
    }

    /// [`Output::commit`], syncing the directory with `sync_dir` (tests inject a failure).
    fn commit_with(mut self, sync_dir: fn(&Path) -> std::io::Result<()>) -> Result<()> {
        let name = self.name.clone();
        let io = |e: std::io::Error, what: &str| Error::io(&e, None, what).in_file(&name);
        match &mut self.kind {
            OutKind::File { file, tmp, dest, committed } => {
                file.sync_all().map_err(|e| io(e, "cannot sync the output file"))?;
                std::fs::rename(&*tmp, &*dest).map_err(|e| io(e, "cannot rename the output file into place"))?;
                *committed = true;
                let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                sync_dir(dir).map_err(|e| {
                    io(
                        e,
                        "the output file is in place, but its directory could not be synced (the rename may not survive a crash)",
                    )
                })
            }
            OutKind::Stream(s) => {
                let s = s.get_mut().unwrap_or_else(|p| p.into_inner());
                let mut end = (-1i64).to_be_bytes().to_vec();
                end.extend_from_slice(&(-1i64).to_be_bytes());
                s.write_all(&end).and_then(|()| s.flush()).map_err(|e| io(e, "cannot write the output stream"))
            }
        }
    }
}

/// Sync directory `dir`, so that a rename into it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A writer's headers: the bytes of the file up to its first streamed data, laid out from a
/// plan (each writer encodes its own headers, then [`Head::place`]s the note buffer).
pub(crate) struct Head(pub Vec<u8>);

impl Head {
    /// Zero-fill to `off` (which must not be behind the end), then append `bytes`.
    pub fn place(&mut self, off: u64, bytes: &[u8]) {
        debug_assert!(self.0.len() as u64 <= off, "header parts overlap");
        self.0.resize(off as usize, 0);
        self.0.extend_from_slice(bytes);
    }

    /// Zero-fill to `end`, open the output and write the headers at its start.
    pub fn write_to<'a>(mut self, target: Target<'a>, end: u64) -> Result<Output<'a>> {
        self.place(end, &[]);
        let output = Output::open(target)?;
        output.write_at(0, &self.0)?;
        Ok(output)
    }
}

/// The end of every write: size the output, report completion, commit.
pub(crate) fn finish(output: Output<'_>, len: u64, progress: &mut Option<Progress<'_>>, total: u64) -> Result<()> {
    output.set_len(len)?;
    tick(progress, total, total)?;
    output.commit()
}

impl Drop for Output<'_> {
    fn drop(&mut self) {
        if let OutKind::File { tmp, committed: false, .. } = &self.kind {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// One batch of positioned writes for the writer thread.
pub(crate) type Job = Vec<(u64, Vec<u8>)>;

/// The producer's side of [`with_writer`]: sends batches of writes and recycles buffers.
pub(crate) struct Writer {
    tx: Option<std::sync::mpsc::SyncSender<Job>>,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Writer {
    /// A buffer of `len` zero bytes, recycled from an earlier write when one is free.
    pub fn buffer(&self, len: usize) -> Vec<u8> {
        let mut v = self.free.try_recv().unwrap_or_default();
        v.clear();
        v.resize(len, 0);
        v
    }
    /// An empty buffer (recycled when possible) to append to.
    pub fn empty(&self) -> Vec<u8> {
        let mut v = self.free.try_recv().unwrap_or_default();
        v.clear();
        v
    }
    pub fn send(&self, job: Job) -> Result<()> {
        let tx = self.tx.as_ref().expect("writer open");
        tx.send(job).map_err(|_| Error::internal("the output writer stopped"))
    }
}

/// Run `produce` on this thread while a second thread performs its writes in order (reading and
/// compressing the next chunk overlaps writing the last one). At most two batches wait in the
/// queue, so memory stays bounded. A write error wins over the producer's error (the producer
/// only sees that the writer stopped).
pub(crate) fn with_writer<R>(out: &Output<'_>, produce: impl FnOnce(&Writer) -> Result<R>) -> Result<R> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(2);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let handle = s.spawn(move || -> Result<()> {
            for job in rx {
                for (off, buf) in job {
                    out.write_at(off, &buf)?;
                    let _ = free_tx.send(buf);
                }
            }
            Ok(())
        });
        let mut w = Writer { tx: Some(tx), free: free_rx };
        let r = produce(&w);
        w.tx = None;
        drop(w);
        let written = handle.join().unwrap_or_else(|_| Err(Error::internal("the output writer panicked")));
        match (r, written) {
            (_, Err(e)) => Err(e),
            (r, Ok(())) => r,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn output_is_absent_until_commit_and_removed_when_dropped() {
        let dir = std::env::temp_dir().join(format!("vmci-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("a.core");
        {
            let o = Output::create(&dest).unwrap();
            o.write_at(0, b"abc").unwrap();
            assert!(!dest.exists());
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "temporary removed on drop");
        let o = Output::create(&dest).unwrap();
        o.write_at(0, b"abc").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let e = Output::create(&dir.join("no/such/dir/x")).err().unwrap();
        assert!(matches!(e.kind, ErrorKind::Io { errno: Some(2) }), "{e:?}");
        assert!(e.path.as_deref().unwrap().ends_with("no/such/dir/x"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_synced_is_an_error() {
        let dir = std::env::temp_dir().join(format!("vmci-out-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("a.core");
        let o = Output::create(&dest).unwrap();
        o.write_at(0, b"abc").unwrap();
        let e = o.commit_with(|_| Err(std::io::Error::from_raw_os_error(libc::EIO))).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Io { errno: Some(libc::EIO) }), "{e:?}");
        assert!(e.message.contains("directory could not be synced"), "{}", e.message);
        assert!(e.path.as_deref().unwrap().ends_with("a.core"));
        // The data is in place (renamed before the sync), and the temporary is gone.
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // The real sync of an existing directory succeeds.
        sync_dir(&dir).unwrap();
        assert!(sync_dir(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
