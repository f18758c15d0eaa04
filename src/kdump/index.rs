//! The bitmaps, the rank index over bitmap 2, and what the descriptors say as a whole.

use super::header::SubField;
use super::*;

/// Page counts from the bitmaps (and, for `zero`, the descriptors). In Python, the
/// `PageCountDetails` of `Dump.details(pages=True)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(name = "PageCountDetails", frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")
)]
pub struct PageCounts {
    /// Pages set in bitmap 1 (pages that exist in the guest, as the producer saw it).
    pub valid: u64,
    /// Pages set in bitmap 2 (pages with a descriptor).
    pub dumped: u64,
    /// Pages in bitmap 1 but not in bitmap 2 (excluded by the producer's dump level).
    pub excluded: u64,
    /// Dumped pages whose descriptor points at a shared all-zero block (QEMU's and makedumpfile's
    /// zero page).
    pub zero: u64,
}

/// How many page descriptors use each codec. In Python, the `PageCodecDetails` of
/// `Dump.details(pages=True)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(name = "PageCodecDetails", frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native")
)]
pub struct CompressionSummary {
    pub zlib: u64,
    pub lzo: u64,
    pub snappy: u64,
    pub zstd: u64,
    /// Stored uncompressed (no codec flag).
    pub raw: u64,
    /// More than one codec flag (malformed).
    pub invalid: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct DescStats {
    pub(super) zero: u64,
    pub(super) summary: CompressionSummary,
}

/// What the bitmaps say (see [`KdumpFile::index`]).
pub(super) struct PageIndex {
    pub(super) bitmap1: Vec<u64>,
    pub(super) bitmap2: Vec<u64>,
    /// Set bits of bitmap 2 before each block of `RANK_WORDS` words.
    pub(super) rank: Vec<u64>,
    /// Split dumps: the pfn range this file holds, and the rank of its first pfn.
    pub(super) split_range: Option<(u64, u64)>,
    pub(super) rank_base: u64,
    pub(super) ndesc: u64,
    pub(super) anomalies: Vec<Error>,
    /// The descriptor table runs past the end of a file that is not marked incomplete: every
    /// page read reports this error ([`KdumpFile::stored_pages`] still counts what is there).
    pub(super) table_cut: Option<Error>,
}

impl PageIndex {
    /// Number of set bits in bitmap 2 below `pfn`.
    pub(super) fn rank_of(&self, pfn: u64) -> u64 {
        let w = (pfn / 64) as usize;
        if w >= self.bitmap2.len() {
            return self.rank.last().copied().unwrap_or(0)
                + self.bitmap2[(self.rank.len().saturating_sub(1)) * RANK_WORDS..]
                    .iter()
                    .map(|w| u64::from(w.count_ones()))
                    .sum::<u64>();
        }
        let blk = w / RANK_WORDS;
        let mut r = self.rank[blk];
        for x in &self.bitmap2[blk * RANK_WORDS..w] {
            r += u64::from(x.count_ones());
        }
        let rem = pfn % 64;
        if rem > 0 {
            r += u64::from((self.bitmap2[w] & ((1u64 << rem) - 1)).count_ones());
        }
        r
    }

    /// Is this pfn held by this file (bitmap 2, below the limit, inside a split range)?
    pub(super) fn present(&self, pfn: u64, pfn_limit: u64) -> bool {
        pfn < pfn_limit && !self.split_range.is_some_and(|(s, e)| pfn < s || pfn >= e) && bit(&self.bitmap2, pfn)
    }
}

pub(super) fn words_from_bytes(b: &[u8]) -> Vec<u64> {
    b.chunks(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(a)
        })
        .collect()
}

pub(super) fn bit(words: &[u64], n: u64) -> bool {
    words.get((n / 64) as usize).is_some_and(|w| w >> (n % 64) & 1 == 1)
}

impl KdumpFile {
    /// The page index, read on first use (then kept): the bitmaps, the rank index over bitmap 2,
    /// the split range and the descriptor count, with the checks that need them.
    pub(super) fn index(&self) -> Result<&PageIndex> {
        let ix = self.index_even_if_cut()?;
        match &ix.table_cut {
            Some(e) => Err(e.clone()),
            None => Ok(ix),
        }
    }

    /// The page index, also when its descriptor table is cut short.
    pub(super) fn index_even_if_cut(&self) -> Result<&PageIndex> {
        self.index.get_or_init(|| self.load_index()).as_ref().map_err(Clone::clone)
    }

    pub(super) fn load_index(&self) -> Result<PageIndex> {
        let bm = self.bitmaps;
        let bs = u64::from(self.hdr.block_size);
        let file_len = self.src.size();
        let read = |off: u64| self.src.read_vec(off, bm.len, "kdump bitmaps").map(|raw| words_from_bytes(&raw));
        let bitmap2 = read(bm.dumped)?;
        // One bitmap only: every page it holds is taken to exist.
        let bitmap1 = match bm.valid {
            Some(off) => read(off)?,
            None => bitmap2.clone(),
        };
        let mut rank = Vec::with_capacity(bitmap2.len() / RANK_WORDS + 1);
        let mut acc = 0u64;
        for chunk in bitmap2.chunks(RANK_WORDS) {
            rank.push(acc);
            acc += chunk.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }
        let mut ix = PageIndex {
            bitmap1,
            bitmap2,
            rank,
            split_range: None,
            rank_base: 0,
            ndesc: acc,
            anomalies: Vec::new(),
            table_cut: None,
        };

        // Split dumps hold [start_pfn, end_pfn) and number descriptors from start_pfn.
        if self.sub.split.unwrap_or(0) != 0 {
            let start = self.sub.start_pfn_64.or(self.sub.start_pfn).unwrap_or(0);
            let end = self.sub.end_pfn_64.or(self.sub.end_pfn).unwrap_or(0);
            if start > end || start > self.pfn_limit {
                return Err(Error::format(
                    bs + self.sub_layout.offset(SubField::StartPfn),
                    format!("kdump split range {start}..{end} is inconsistent"),
                ));
            }
            let end = end.min(self.pfn_limit);
            ix.rank_base = ix.rank_of(start);
            ix.ndesc = ix.rank_of(end) - ix.rank_base;
            ix.split_range = Some((start, end));
        }

        // The descriptor table must fit (an incomplete dump may be cut short: its missing pages
        // are absent).
        let table = ix.ndesc.checked_mul(DESC_SIZE).and_then(|t| t.checked_add(self.desc_base));
        match table {
            Some(end) if end <= file_len => {}
            _ if self.is_incomplete() => ix.anomalies.push(Error::truncated(
                self.desc_base,
                "kdump page descriptor table runs past the end of this incomplete dump; missing pages are absent",
            )),
            _ => {
                ix.table_cut = Some(Error::truncated(
                    self.desc_base,
                    format!(
                        "kdump page descriptor table ({} descriptors at {:#x}) runs past the end of the file ({file_len} bytes)",
                        ix.ndesc, self.desc_base
                    ),
                ))
            }
        }
        Ok(ix)
    }

    // ---- bitmaps ----

    /// Is this pfn (in block_size units) held by the dump?
    pub fn pfn_present(&self, pfn: u64) -> Result<bool> {
        Ok(self.index()?.present(pfn, self.pfn_limit))
    }

    /// Is this pfn marked as existing (bitmap 1)?
    pub fn pfn_valid(&self, pfn: u64) -> Result<bool> {
        Ok(pfn < self.pfn_limit && bit(&self.index()?.bitmap1, pfn))
    }

    /// Counts from the bitmaps; `zero` needs one scan of the descriptors (done once, cached).
    pub fn page_counts(&self) -> Result<PageCounts> {
        let ix = self.index()?;
        let lim = self.pfn_limit;
        let full = (lim / 64) as usize;
        let mask_last = |words: &[u64]| -> u64 {
            let rem = lim % 64;
            if rem == 0 {
                0
            } else {
                words.get(full).map_or(0, |w| w & ((1u64 << rem) - 1))
            }
        };
        let count = |a: &[u64]| -> u64 {
            a[..full.min(a.len())].iter().map(|w| u64::from(w.count_ones())).sum::<u64>() + u64::from(mask_last(a).count_ones())
        };
        let valid = count(&ix.bitmap1);
        let dumped = match ix.split_range {
            Some(_) => ix.ndesc,
            None => count(&ix.bitmap2),
        };
        let mut excluded = 0u64;
        for i in 0..full.min(ix.bitmap1.len()) {
            excluded += u64::from((ix.bitmap1[i] & !ix.bitmap2[i]).count_ones());
        }
        excluded += u64::from((mask_last(&ix.bitmap1) & !mask_last(&ix.bitmap2)).count_ones());
        let zero = self.desc_stats()?.zero;
        Ok(PageCounts { valid, dumped, excluded, zero })
    }

    /// Pages the bitmaps declare stored (set in bitmap 2, within this file's split range), and
    /// how many of them the file holds: descriptor and page data inside the file as opened.
    /// Producers (QEMU, makedumpfile) write page data in descriptor order, except the one shared
    /// zero page: they write it first, right after the descriptor table, and point every zero
    /// page's descriptor at it. So when the last descriptor that does not point at that first
    /// data block, and its data, are in the file, all pages are taken as held (a few reads);
    /// otherwise the descriptors the file holds are counted in one pass.
    pub fn stored_pages(&self) -> Result<(u64, u64)> {
        let ix = self.index_even_if_cut()?;
        let declared = ix.ndesc;
        let len = self.src.size();
        let in_table = (len.saturating_sub(self.desc_base) / DESC_SIZE).min(declared);
        if in_table == 0 {
            return Ok((declared, 0));
        }
        let held = |d: &PageDesc| {
            d.size > 0 && d.offset > 0 && (d.offset as u64).checked_add(u64::from(d.size)).is_some_and(|e| e <= len)
        };
        if in_table == declared {
            if let Some(d) = self.last_unshared_desc(declared)? {
                if held(&d) {
                    return Ok((declared, declared));
                }
            }
        }
        let mut stored = 0u64;
        self.for_each_desc(|_, d| stored += u64::from(held(&d)))?;
        Ok((declared, stored))
    }

    /// The last of the `n` descriptors (all inside the file) whose data is not the first data
    /// block (the shared zero page; the last descriptor when all point at it). `None` when more
    /// than [`WALK_BACK`] descriptors at the end point at it: the caller then counts them all.
    fn last_unshared_desc(&self, n: u64) -> Result<Option<PageDesc>> {
        const WALK_BACK: u64 = 1 << 16;
        const STEP: u64 = 512;
        let first_data = self.desc_base + n * DESC_SIZE;
        let mut end = n;
        let mut buf = Vec::new();
        while end > 0 && n - end < WALK_BACK {
            let k = end.min(STEP);
            buf.resize((k * DESC_SIZE) as usize, 0);
            self.src.read_exact_at(&mut buf, self.desc_base + (end - k) * DESC_SIZE)?;
            let descs: Vec<PageDesc> = PageDesc::table(&buf, self.endian).collect();
            if let Some(d) = descs.iter().rev().find(|d| d.offset as u64 != first_data) {
                return Ok(Some(*d));
            }
            if end == k {
                return Ok(descs.last().copied());
            }
            end -= k;
        }
        Ok(None)
    }

    /// Descriptors per codec (one scan of the descriptors, done once, cached).
    pub fn compression_summary(&self) -> Result<CompressionSummary> {
        Ok(self.desc_stats()?.summary)
    }

    /// Visit every descriptor in order, reading the table in large chunks.
    pub(super) fn for_each_desc(&self, mut f: impl FnMut(u64, PageDesc)) -> Result<()> {
        const CHUNK: u64 = 1 << 16; // descriptors per read (1.5 MiB)
        let avail = (self.src.size().saturating_sub(self.desc_base) / DESC_SIZE).min(self.index_even_if_cut()?.ndesc);
        let mut i = 0u64;
        let mut buf = Vec::new();
        while i < avail {
            let n = (avail - i).min(CHUNK);
            buf.resize((n * DESC_SIZE) as usize, 0);
            let off = self.desc_base + i * DESC_SIZE;
            self.src.read_exact_at(&mut buf, off)?;
            for (k, d) in PageDesc::table(&buf, self.endian).enumerate() {
                f(off + k as u64 * DESC_SIZE, d);
            }
            i += n;
        }
        Ok(())
    }

    pub(super) fn desc_stats(&self) -> Result<DescStats> {
        if let Some(s) = self.stats.get() {
            return Ok(*s);
        }
        // Pass 1: codecs, and data blocks referenced again after later data (shared blocks).
        let mut summary = CompressionSummary::default();
        let mut max_end = 0u64;
        let mut shared: std::collections::BTreeMap<(i64, u32, u32), (u64, bool)> = Default::default();
        self.for_each_desc(|off, d| {
            match d.flags & CODEC_BITS {
                0 => summary.raw += 1,
                DUMP_DH_COMPRESSED_ZLIB => summary.zlib += 1,
                DUMP_DH_COMPRESSED_LZO => summary.lzo += 1,
                DUMP_DH_COMPRESSED_SNAPPY => summary.snappy += 1,
                DUMP_DH_COMPRESSED_ZSTD => summary.zstd += 1,
                _ => summary.invalid += 1,
            }
            let end = (d.offset as u64).saturating_add(u64::from(d.size));
            if d.offset >= 0 && end <= max_end && shared.len() < 4096 {
                shared.entry((d.offset, d.size, d.flags)).or_insert((off, false));
            }
            max_end = max_end.max(end);
        })?;
        // Which shared blocks are all zeros?
        let mut scratch = vec![0u8; self.hdr.block_size as usize];
        for ((_, _, _), (desc_off, is_zero)) in shared.iter_mut() {
            let mut db = [0u8; DESC_SIZE as usize];
            self.src.read_exact_at(&mut db, *desc_off)?;
            let d = PageDesc::parse(&db, self.endian);
            if self.decode(&d, *desc_off, u64::MAX, &mut scratch).is_ok() {
                *is_zero = scratch.iter().all(|&b| b == 0);
            }
        }
        // Pass 2: count descriptors pointing at shared zero blocks.
        let mut zero = 0u64;
        if shared.values().any(|v| v.1) {
            self.for_each_desc(|_, d| {
                if let Some((_, true)) = shared.get(&(d.offset, d.size, d.flags)) {
                    zero += 1;
                }
            })?;
        }
        let s = DescStats { zero, summary };
        let _ = self.stats.set(s);
        Ok(s)
    }
}
