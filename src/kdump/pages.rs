//! Reading pages: descriptor checks, single pages, and parallel bulk reads.

use rayon::prelude::*;

use super::codec::{self, CodecError};
use super::*;
use crate::error::ErrorKind;
use crate::phys::{normalize, PhysMemory, PhysRange};

impl KdumpFile {
    // ---- pages ----

    /// The descriptor of a present pfn, and its file offset.
    pub fn page_desc(&self, pfn: u64) -> Result<(u64, PageDesc)> {
        let bs = u64::from(self.hdr.block_size);
        let ix = self.index()?;
        if !ix.present(pfn, self.pfn_limit) {
            return Err(self.absent_error(ix, pfn.saturating_mul(bs), pfn));
        }
        let idx = ix.rank_of(pfn) - ix.rank_base;
        let off = self.desc_base + idx * DESC_SIZE;
        let mut b = [0u8; DESC_SIZE as usize];
        match self.src.read_exact_at(&mut b, off) {
            Ok(()) => Ok((off, PageDesc::parse(&b, self.endian))),
            Err(e) if e.kind == ErrorKind::Truncated && self.is_incomplete() => Err(Error::absent(
                pfn * bs,
                format!("pfn {pfn}: its page descriptor at {off:#x} was never written (incomplete dump)"),
            )),
            Err(e) => Err(e),
        }
    }

    pub(super) fn absent_error(&self, ix: &PageIndex, addr: u64, pfn: u64) -> Error {
        let why = if pfn >= self.max_mapnr {
            format!("beyond the dump's max_mapnr {} (block size {})", self.max_mapnr, self.hdr.block_size)
        } else if pfn >= self.pfn_limit {
            "beyond the dump's bitmaps".to_string()
        } else if ix.split_range.is_some_and(|(s, e)| pfn < s || pfn >= e) {
            "in another file of this split dump".to_string()
        } else if bit(&ix.bitmap1, pfn) {
            format!("excluded by the producer (dump level {})", self.sub.dump_level)
        } else {
            "not in the producer's memory map".to_string()
        };
        Error::absent(addr, format!("pfn {pfn} is not in the kdump file: {why}"))
    }

    /// Decompress one page into `out` (exactly block_size bytes).
    pub(super) fn decode(&self, d: &PageDesc, desc_off: u64, pfn: u64, out: &mut [u8]) -> Result<()> {
        let (off, size) = self.check_desc(d, desc_off, pfn)?;
        if d.flags & CODEC_BITS == 0 {
            return self.src.read_exact_at(out, off);
        }
        let mut data = vec![0u8; size];
        self.src.read_exact_at(&mut data, off)?;
        self.decompress(d, desc_off, pfn, &data, out)
    }

    /// Check a descriptor before its data is read; gives the data's file offset and size.
    /// `pfn` is `u64::MAX` when no page is concerned (the zero-page census). Messages are built
    /// only on the error path: this runs once per page of every bulk read.
    pub(super) fn check_desc(&self, d: &PageDesc, desc_off: u64, pfn: u64) -> Result<(u64, usize)> {
        let bs = self.hdr.block_size;
        if d.size == 0 || d.offset <= 0 {
            if self.is_incomplete() && pfn != u64::MAX {
                return Err(Error::absent(
                    pfn * u64::from(bs),
                    format!("pfn {pfn}: page was never written (incomplete dump; descriptor at {desc_off:#x})"),
                ));
            }
            let what = format!("{}page descriptor has offset {} and size {}", pfn_prefix(pfn), d.offset, d.size);
            return Err(Error::format(desc_off, what));
        }
        if d.size > bs {
            let what = format!("{}compressed size {} exceeds the block size {bs}", pfn_prefix(pfn), d.size);
            return Err(Error::format(desc_off, what));
        }
        let off = d.offset as u64;
        if off.checked_add(u64::from(d.size)).is_none_or(|e| e > self.src.size()) {
            let what = format!(
                "{}the page descriptor at {desc_off:#x} declares page data at {off:#x}+{}, past the end of the file ({} bytes)",
                pfn_prefix(pfn),
                d.size,
                self.src.size()
            );
            return Err(Error::truncated(desc_off, what));
        }
        if d.flags & CODEC_BITS == 0 && d.size != bs {
            let what = format!("{}uncompressed page has size {} instead of the block size {bs}", pfn_prefix(pfn), d.size);
            return Err(Error::decompress(desc_off, what));
        }
        Ok((off, d.size as usize))
    }

    /// Turn a page's stored bytes (`data`, as [`check_desc`](Self::check_desc) located them)
    /// into the page (`out`, block_size bytes).
    pub(super) fn decompress(&self, d: &PageDesc, desc_off: u64, pfn: u64, data: &[u8], out: &mut [u8]) -> Result<()> {
        let flags = d.flags & CODEC_BITS;
        if flags == 0 {
            out.copy_from_slice(data);
            return Ok(());
        }
        codec::decompress(flags, data, out).map_err(|e| match e {
            CodecError::Unsupported(name) => Error::unsupported(
                Some(desc_off),
                format!("{}{name} page data: this build has no {name} support (cargo feature `lzo`)", pfn_prefix(pfn)),
            ),
            CodecError::Several => {
                Error::format(desc_off, format!("{}page descriptor flags {:#x} name several codecs", pfn_prefix(pfn), d.flags))
            }
            CodecError::Bad(name, detail) => Error::decompress(
                desc_off,
                format!("{}{name} page data at {:#x} ({} bytes): {detail}", pfn_prefix(pfn), d.offset as u64, d.size),
            ),
        })
    }

    /// Read one whole page (block) into `out` (`block_size` bytes).
    pub fn read_page(&self, pfn: u64, out: &mut [u8]) -> Result<()> {
        if out.len() != self.hdr.block_size as usize {
            return Err(Error::new(ErrorKind::Format, None, "read_page buffer must be block_size bytes"));
        }
        let (off, d) = self.page_desc(pfn)?;
        self.decode(&d, off, pfn, out)
    }

    /// Read `out.len()` bytes of page `pfn` from `in_page` on (`scratch` holds a partial page).
    pub(super) fn read_piece(&self, pfn: u64, in_page: usize, out: &mut [u8], scratch: &mut Vec<u8>) -> Result<()> {
        let bs = self.hdr.block_size as usize;
        if in_page == 0 && out.len() == bs {
            return self.read_page(pfn, out);
        }
        scratch.resize(bs, 0);
        self.read_page(pfn, scratch)?;
        out.copy_from_slice(&scratch[in_page..in_page + out.len()]);
        Ok(())
    }
}

impl PhysMemory for KdumpFile {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let bs = u64::from(self.hdr.block_size);
        let end =
            addr.checked_add(buf.len() as u64).ok_or_else(|| Error::absent(addr, "read range overflows the address space"))?;
        // Every page must be present; name the first absent address.
        let first = addr / bs;
        let last = (end - 1) / bs;
        let ix = self.index()?;
        for pfn in first..=last {
            if !ix.present(pfn, self.pfn_limit) {
                return Err(self.absent_error(ix, (pfn * bs).max(addr), pfn));
            }
        }
        // Split the buffer into per-page pieces.
        let mut pieces: Vec<(u64, usize, &mut [u8])> = Vec::with_capacity((last - first + 1) as usize);
        let mut rest = buf;
        let mut pos = addr;
        while !rest.is_empty() {
            let pfn = pos / bs;
            let in_page = (pos % bs) as usize;
            let n = ((bs as usize) - in_page).min(rest.len());
            let (a, b) = rest.split_at_mut(n);
            pieces.push((pfn, in_page, a));
            rest = b;
            pos += n as u64;
        }
        if pieces.len() < PARALLEL_PAGES {
            let mut scratch = Vec::new();
            for (pfn, in_page, out) in pieces {
                self.read_piece(pfn, in_page, out, &mut scratch)?;
            }
            return Ok(());
        }
        // Many pages: their descriptors are consecutive (every pfn is present).
        self.read_many_pages(ix.rank_of(first) - ix.rank_base, pieces)
    }

    /// A test of the present bitmap, page by page over the range (not a walk of the whole map).
    fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let ix = self.index()?;
        let bs = u64::from(self.hdr.block_size);
        let end = addr.checked_add(len);
        let last = end.map_or(u64::MAX / bs, |e| (e - 1) / bs);
        // Bounded: no pfn at or above pfn_limit is present.
        let mut pfn = addr / bs;
        while pfn <= last && ix.present(pfn, self.pfn_limit) {
            pfn += 1;
        }
        if pfn > last {
            return Ok(());
        }
        Err(crate::phys::not_covered((pfn * bs).max(addr), end))
    }

    fn ranges(&self) -> Result<Vec<PhysRange>> {
        let ix = self.index()?;
        let bs = u64::from(self.hdr.block_size);
        let (lo, hi) = ix.split_range.unwrap_or((0, self.pfn_limit));
        let mut out = Vec::new();
        let mut run: Option<u64> = None;
        let mut pfn = lo;
        while pfn < hi {
            let w = ix.bitmap2[(pfn / 64) as usize];
            let word_start = pfn % 64 == 0 && pfn + 64 <= hi;
            if word_start && (w == 0 || w == u64::MAX) {
                match (w == u64::MAX, run) {
                    (true, None) => run = Some(pfn),
                    (false, Some(s)) => {
                        out.push(PhysRange { start: s * bs, end: pfn * bs });
                        run = None;
                    }
                    _ => {}
                }
                pfn += 64;
                continue;
            }
            match (w >> (pfn % 64) & 1 == 1, run) {
                (true, None) => run = Some(pfn),
                (false, Some(s)) => {
                    out.push(PhysRange { start: s * bs, end: pfn * bs });
                    run = None;
                }
                _ => {}
            }
            pfn += 1;
        }
        if let Some(s) = run {
            out.push(PhysRange { start: s * bs, end: hi * bs });
        }
        Ok(normalize(out))
    }
}

/// Page data read in a few large reads: `(file offset, bytes)` runs, sorted by offset.
pub(super) struct Runs(Vec<(u64, Vec<u8>)>);

impl Runs {
    /// The `size` bytes at file offset `off` (which a run holds: see `read_runs`).
    pub(super) fn slice(&self, off: u64, size: usize) -> &[u8] {
        let i = self.0.partition_point(|(o, _)| *o <= off) - 1;
        let (o, b) = &self.0[i];
        let at = (off - o) as usize;
        &b[at..at + size]
    }
}

/// Runs are merged across gaps up to this size, and never grow past `MAX_RUN` bytes.
pub(super) const RUN_GAP: u64 = 64 * 1024;
pub(super) const MAX_RUN: u64 = 8 << 20;

impl KdumpFile {
    /// The bulk path of [`PhysMemory::read_phys`]: `pieces` (pfn, offset in the page, output)
    /// are consecutive present pages whose first descriptor is number `idx0` of the table. Read
    /// their descriptors in one go, then the pages' data in a few large reads, then decompress
    /// in parallel.
    fn read_many_pages(&self, idx0: u64, pieces: Vec<(u64, usize, &mut [u8])>) -> Result<()> {
        let bs = u64::from(self.hdr.block_size);
        let mut table = vec![0u8; pieces.len() * DESC_SIZE as usize];
        let table_off = self.desc_base + idx0 * DESC_SIZE;
        if self.src.read_exact_at(&mut table, table_off).is_err() {
            // A cut table (incomplete dump): the per-page path names each missing page.
            return pieces
                .into_par_iter()
                .map_init(Vec::new, |scratch, (pfn, in_page, out)| self.read_piece(pfn, in_page, out, scratch))
                .collect();
        }
        let descs: Vec<(u64, PageDesc)> =
            PageDesc::table(&table, self.endian).enumerate().map(|(i, d)| (table_off + i as u64 * DESC_SIZE, d)).collect();
        let runs = self.read_runs(&descs, pieces.iter().map(|p| p.0))?;
        // Pages that share their stored data (QEMU and makedumpfile point every zero page at one
        // block) are decompressed once per call, then copied.
        let mut uses: std::collections::HashMap<(i64, u32, u32), u32> = std::collections::HashMap::new();
        for (_, d) in &descs {
            *uses.entry((d.offset, d.size, d.flags)).or_default() += 1;
        }
        let shared: std::collections::HashMap<(i64, u32, u32), Vec<u8>> = descs
            .iter()
            .zip(pieces.iter().map(|p| p.0))
            .filter(|((_, d), _)| uses[&(d.offset, d.size, d.flags)] > 1)
            .map(|((desc_off, d), pfn)| ((d.offset, d.size, d.flags), (*desc_off, *d, pfn)))
            .collect::<std::collections::HashMap<_, _>>()
            .into_iter()
            .filter_map(|(key, (desc_off, d, pfn))| {
                let (off, size) = self.check_desc(&d, desc_off, pfn).ok()?;
                let mut page = vec![0u8; bs as usize];
                self.decompress(&d, desc_off, pfn, runs.slice(off, size), &mut page).ok()?;
                Some((key, page))
            })
            .collect();
        let results: Vec<Result<()>> = pieces
            .into_par_iter()
            .zip(descs.par_iter())
            .map_init(Vec::new, |scratch: &mut Vec<u8>, ((pfn, in_page, out), (desc_off, d))| {
                if let Some(page) = shared.get(&(d.offset, d.size, d.flags)) {
                    out.copy_from_slice(&page[in_page..in_page + out.len()]);
                    return Ok(());
                }
                let (off, size) = self.check_desc(d, *desc_off, pfn)?;
                let data = runs.slice(off, size);
                if in_page == 0 && out.len() == bs as usize {
                    return self.decompress(d, *desc_off, pfn, data, out);
                }
                scratch.resize(bs as usize, 0);
                self.decompress(d, *desc_off, pfn, data, scratch)?;
                out.copy_from_slice(&scratch[in_page..in_page + out.len()]);
                Ok(())
            })
            .collect();
        results.into_iter().collect()
    }

    /// Read the data of every page whose descriptor checks out, merged into large reads.
    /// Pages whose descriptor is bad are skipped here; their error comes when they are decoded.
    pub(super) fn read_runs(&self, descs: &[(u64, PageDesc)], pfns: impl Iterator<Item = u64>) -> Result<Runs> {
        let mut spans: Vec<(u64, u64)> = descs
            .iter()
            .zip(pfns)
            .filter_map(|((desc_off, d), pfn)| self.check_desc(d, *desc_off, pfn).ok())
            .map(|(off, size)| (off, off + size as u64))
            .collect();
        spans.sort_unstable();
        spans.dedup();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 + RUN_GAP && e.max(last.1) - last.0 <= MAX_RUN => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut runs = Vec::with_capacity(merged.len());
        for (s, e) in merged {
            let mut b = vec![0u8; (e - s) as usize];
            self.src.read_exact_at(&mut b, s)?;
            runs.push((s, b));
        }
        Ok(Runs(runs))
    }
}

/// `"pfn N: "` for error messages (empty for `u64::MAX`: no page concerned).
fn pfn_prefix(pfn: u64) -> String {
    if pfn == u64::MAX {
        String::new()
    } else {
        format!("pfn {pfn}: ")
    }
}
