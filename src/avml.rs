//! AVML memory images (Microsoft's Acquire Volatile Memory for Linux).
//!
//! Layout: a sequence of blocks, each a 32-byte header in LiME's layout (u32 magic
//! 0x4C4D5641 "AVML", u32 version, u64 start, u64 end INCLUSIVE, 8 bytes padding), then:
//! - version 1: the `end - start + 1` bytes, uncompressed;
//! - version 2: a Snappy *framed* stream that decompresses to those bytes, followed by a u64 LE
//!   giving the stream's length in bytes.
//!
//! AVML omits all-zero blocks: the gaps between blocks are reported as absent memory (this
//! reader never invents zeros it was not given).
//!
//! The block index is built once at open by walking the frame headers (4 bytes each, plus the
//! compressed chunk's length preamble); nothing is decompressed then. Each framed chunk holds at
//! most 64 KiB, and each index entry stands for at least 9 bytes of file, so the index is bounded
//! by the file's size, never by the memory it declares. A read decompresses the chunks it
//! touches (at most 64 KiB each). Chunk CRCs are not checked (a corrupt chunk that still
//! decompresses to the declared length reads as those bytes); malformed framing, lengths that
//! disagree and data that does not decompress are typed errors with the file offset.

use crate::format::{DumpFormat, Format, Identity};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::lime::{u32_at, u64_at};
use crate::phys::{PhysMemory, PhysRange};
use crate::source::ReadAt;

pub use crate::lime::AVML_MAGIC;
const HEADER: u64 = 32;
/// Largest uncompressed chunk of the Snappy framing format.
const MAX_CHUNK: u64 = 65536;

pub fn is_avml(head: &[u8]) -> bool {
    head.len() >= 4 && head[..4] == AVML_MAGIC.to_le_bytes()
}

#[derive(Debug, Clone, Copy)]
struct Chunk {
    phys: u64,
    file: u64,
    /// Bytes of chunk data at `file` (after the CRC for v2 chunks).
    stored: u64,
    /// Bytes of memory it holds.
    raw: u64,
    compressed: bool,
}

pub struct AvmlImage {
    src: Arc<dyn ReadAt>,
    chunks: Vec<Chunk>,
    ranges: Vec<PhysRange>,
}

impl std::fmt::Debug for AvmlImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvmlImage").field("chunks", &self.chunks.len()).field("ranges", &self.ranges.len()).finish()
    }
}

fn read_at(src: &dyn ReadAt, off: u64, n: usize, what: &str) -> Result<Vec<u8>> {
    if off.checked_add(n as u64).is_none_or(|e| e > src.size()) {
        return Err(Error::truncated(
            off,
            format!("AVML {what}: {n} bytes at {off:#x} run past the end of the file ({} bytes)", src.size()),
        ));
    }
    let mut b = vec![0u8; n];
    src.read_exact_at(&mut b, off)?;
    Ok(b)
}

impl AvmlImage {
    pub fn open(src: Arc<dyn ReadAt>) -> Result<AvmlImage> {
        let len = src.size();
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut ranges: Vec<PhysRange> = Vec::new();
        let mut off = 0u64;
        let mut prev_end = 0u64;
        if len == 0 {
            return Err(Error::format(0, "empty file: no AVML header"));
        }
        while off < len {
            let h = read_at(&*src, off, HEADER as usize, "block header")?;
            if u32_at(&h, 0) != AVML_MAGIC {
                return Err(Error::format(
                    off,
                    format!("AVML block header magic is {:#010x}, not {AVML_MAGIC:#010x}", u32_at(&h, 0)),
                ));
            }
            let version = u32_at(&h, 4);
            let (start, end) = (u64_at(&h, 8), u64_at(&h, 16));
            if end < start || end == u64::MAX {
                return Err(Error::format(off + 8, format!("AVML block range {start:#x}..={end:#x} is empty or wraps")));
            }
            if !ranges.is_empty() && start < prev_end {
                return Err(Error::format(
                    off + 8,
                    format!("AVML block at {start:#x} overlaps or precedes the previous one (ending {prev_end:#x})"),
                ));
            }
            let size = end - start + 1;
            let body = off + HEADER;
            match version {
                1 => {
                    if body.checked_add(size).is_none_or(|e| e > len) {
                        return Err(Error::truncated(
                            body,
                            format!("AVML v1 block of {size} bytes at {body:#x} runs past the end of the file ({len} bytes)"),
                        ));
                    }
                    chunks.push(Chunk { phys: start, file: body, stored: size, raw: size, compressed: false });
                    off = body + size;
                }
                2 => off = Self::index_stream(&*src, body, start, size, &mut chunks)?,
                v => return Err(Error::unsupported(Some(off + 4), format!("AVML block version {v} (1 and 2 are known)"))),
            }
            match ranges.last_mut() {
                Some(r) if r.end == start => r.end = end + 1,
                _ => ranges.push(PhysRange { start, end: end + 1 }),
            }
            prev_end = end + 1;
        }
        Ok(AvmlImage { src, chunks, ranges })
    }

    /// Index one v2 block's framed stream at `body`; returns the offset after its length trailer.
    fn index_stream(src: &dyn ReadAt, body: u64, start: u64, size: u64, chunks: &mut Vec<Chunk>) -> Result<u64> {
        let len = src.size();
        let mut pos = body;
        let mut produced = 0u64;
        while produced < size {
            let h = read_at(src, pos, 4, "Snappy frame header")?;
            let t = h[0];
            let l = u64::from(h[1]) | u64::from(h[2]) << 8 | u64::from(h[3]) << 16;
            let data = pos + 4;
            if data + l > len {
                return Err(Error::truncated(
                    pos,
                    format!("Snappy frame of {l} bytes at {pos:#x} runs past the end of the file ({len} bytes)"),
                ));
            }
            match t {
                0xff => {
                    if l != 6 || read_at(src, data, 6, "Snappy stream identifier")? != b"sNaPpY" {
                        return Err(Error::format(pos, "bad Snappy stream identifier"));
                    }
                }
                0x00 | 0x01 => {
                    if l < 4 + u64::from(t == 0) {
                        return Err(Error::format(pos, format!("Snappy chunk of {l} bytes is too short")));
                    }
                    let raw = if t == 1 {
                        l - 4
                    } else {
                        // The compressed block starts with its uncompressed length (varint).
                        let n = (l - 4).min(10) as usize;
                        let b = read_at(src, data + 4, n, "Snappy chunk")?;
                        let (mut v, mut shift, mut ok) = (0u64, 0u32, false);
                        for &x in &b[..n.min(5)] {
                            v |= u64::from(x & 0x7f) << shift;
                            shift += 7;
                            if x & 0x80 == 0 {
                                ok = true;
                                break;
                            }
                        }
                        if !ok {
                            return Err(Error::format(data + 4, "Snappy chunk: bad uncompressed-length varint"));
                        }
                        v
                    };
                    if raw > MAX_CHUNK {
                        return Err(Error::format(pos, format!("Snappy chunk declares {raw} bytes (at most {MAX_CHUNK})")));
                    }
                    if produced + raw > size {
                        return Err(Error::format(pos, format!("Snappy stream holds more than the block's {size} bytes")));
                    }
                    if raw > 0 {
                        chunks.push(Chunk { phys: start + produced, file: data + 4, stored: l - 4, raw, compressed: t == 0 });
                    }
                    produced += raw;
                }
                0x80..=0xfe => {} // padding and skippable chunks
                _ => return Err(Error::format(pos, format!("Snappy chunk type {t:#04x} is reserved (unskippable)"))),
            }
            pos = data + l;
        }
        let trailer = u64_at(&read_at(src, pos, 8, "compressed-length trailer")?, 0);
        if trailer != pos - body {
            return Err(Error::format(
                pos,
                format!("AVML block trailer says {trailer} compressed bytes, the stream at {body:#x} has {}", pos - body),
            ));
        }
        Ok(pos + 8)
    }

    /// File offset of `[addr, addr + len)` when one uncompressed (v1) block stores it.
    pub fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        let c = self.find(addr)?;
        (!c.compressed && addr.checked_add(len)? <= c.phys + c.raw).then(|| c.file + (addr - c.phys))
    }

    fn find(&self, addr: u64) -> Option<&Chunk> {
        let i = self.chunks.partition_point(|c| c.phys + c.raw <= addr);
        self.chunks.get(i).filter(|c| c.phys <= addr)
    }
}

impl PhysMemory for AvmlImage {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        let mut raw = Vec::new();
        let mut comp = Vec::new();
        while done < buf.len() {
            let a = addr.checked_add(done as u64).ok_or_else(|| Error::absent(addr, "address range wraps past 2^64"))?;
            let c = *self.find(a).ok_or_else(|| {
                Error::absent(a, "the AVML image holds no block here (not captured, or an omitted all-zero block)")
            })?;
            let rel = a - c.phys;
            let n = ((c.raw - rel) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            if !c.compressed {
                self.src.read_exact_at(out, c.file + rel)?;
            } else {
                comp.resize(c.stored as usize, 0);
                self.src.read_exact_at(&mut comp, c.file)?;
                raw.resize(c.raw as usize, 0);
                let got = snap::raw::Decoder::new()
                    .decompress(&comp, &mut raw)
                    .map_err(|e| Error::decompress(c.file, format!("Snappy chunk for physical {:#x}: {e}", c.phys)))?;
                if got != c.raw as usize {
                    return Err(Error::decompress(c.file, format!("Snappy chunk decompressed to {got} bytes, not {}", c.raw)));
                }
                out.copy_from_slice(&raw[rel as usize..rel as usize + n]);
            }
            done += n;
        }
        Ok(())
    }

    fn ranges(&self) -> Result<Vec<PhysRange>> {
        Ok(self.ranges.clone())
    }
    fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        crate::phys::check_covered(&self.ranges, addr, len)
    }
}

impl DumpFormat for AvmlImage {
    fn format(&self) -> Format {
        Format::Avml
    }
    fn identity(&self) -> Option<Identity> {
        None
    }
    fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        AvmlImage::file_offset(self, addr, len)
    }
    fn source(&self) -> &Arc<dyn ReadAt> {
        &self.src
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::io::Write;

    /// An AVML v2 image of `blocks` (start, bytes), written with the layout AVML uses.
    pub fn build(blocks: &[(u64, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for &(start, bytes) in blocks {
            v.extend_from_slice(&AVML_MAGIC.to_le_bytes());
            v.extend_from_slice(&2u32.to_le_bytes());
            v.extend_from_slice(&start.to_le_bytes());
            v.extend_from_slice(&(start + bytes.len() as u64 - 1).to_le_bytes());
            v.extend_from_slice(&[0u8; 8]);
            let mut enc = snap::write::FrameEncoder::new(Vec::new());
            enc.write_all(bytes).unwrap();
            let body = enc.into_inner().unwrap();
            v.extend_from_slice(&body);
            v.extend_from_slice(&(body.len() as u64).to_le_bytes());
        }
        v
    }

    #[test]
    fn reads_real_pages_back() {
        // Real guest memory: the ranges of the committed x86_64 LiME fixture.
        let lime = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/x86_64-qemu.lime")).unwrap();
        let li = crate::lime::LimeImage::open(Arc::new(lime)).unwrap();
        let ranges = li.ranges().unwrap();
        let mut mem = Vec::new();
        for r in &ranges {
            let mut b = vec![0u8; (r.end - r.start) as usize];
            li.read_phys(r.start, &mut b).unwrap();
            mem.push((r.start, b));
        }
        let blocks: Vec<(u64, &[u8])> = mem.iter().map(|(s, b)| (*s, &b[..])).collect();
        let img = AvmlImage::open(Arc::new(build(&blocks))).unwrap();
        assert_eq!(img.ranges().unwrap(), ranges);
        for (s, b) in &mem {
            let mut got = vec![0u8; b.len()];
            img.read_phys(*s, &mut got).unwrap();
            assert_eq!(&got, b);
        }
        let end = ranges.last().unwrap().end;
        assert_eq!(img.read_phys(end, &mut [0u8; 4]).unwrap_err().kind, ErrorKind::Absent);
    }

    #[test]
    fn hostile_inputs_are_typed() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let good = build(&[(0x1000, &data)]);
        let kind = |v: Vec<u8>| AvmlImage::open(Arc::new(v)).unwrap_err().kind;
        // Cut anywhere: Truncated or Format, never a panic.
        for cut in [1, 31, 32, 36, 50, good.len() - 9, good.len() - 1] {
            let k = kind(good[..cut].to_vec());
            assert!(matches!(k, ErrorKind::Truncated | ErrorKind::Format), "cut {cut}: {k:?}");
        }
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 8] ^= 1; // trailer disagrees
        assert_eq!(kind(bad), ErrorKind::Format);
        let mut bad = good.clone();
        bad[4] = 3; // unknown version
        assert_eq!(kind(bad), ErrorKind::Unsupported);
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&0u64.to_le_bytes()); // end < start
        assert_eq!(kind(bad), ErrorKind::Format);
        // A chunk declaring more than 64 KiB, and a corrupt compressed payload.
        let first = 32 + 10; // after the stream identifier frame
        let mut bad = good.clone();
        bad[first + 8] = 0xff;
        bad[first + 9] = 0xff;
        bad[first + 10] = 0x7f;
        let k = kind(bad);
        assert!(matches!(k, ErrorKind::Format), "{k:?}");
        let mut bad = good.clone();
        for b in &mut bad[first + 12..first + 40] {
            *b = 0xff;
        }
        // Chunks are decoded when read, so the image opens; the read names the chunk's frame.
        let img = AvmlImage::open(Arc::new(bad)).expect("a corrupt payload is found on read, not on open");
        let e = img.read_phys(0x1000, &mut [0u8; 64]).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Decompress, Some(first as u64 + 8)), "{e}");
    }
}
