//! Finding the kallsyms tables in the kernel image by their structure, for kernels whose
//! VMCOREINFO does not name them (before Linux 6.0).
//!
//! scripts/kallsyms.c writes, each table aligned to the pointer size (`ALGN`):
//! - before 6.4: `kallsyms_offsets` (or `kallsyms_addresses`), `kallsyms_relative_base`,
//!   `kallsyms_num_syms`, `kallsyms_names`, `kallsyms_markers`, (6.2–6.3:
//!   `kallsyms_seqs_of_names`), `kallsyms_token_table`, `kallsyms_token_index`;
//! - 6.4+ (commit "scripts/kallsyms: change the output order"): `kallsyms_num_syms`,
//!   `kallsyms_names`, `kallsyms_markers`, `kallsyms_token_table`, `kallsyms_token_index`,
//!   `kallsyms_offsets`, `kallsyms_relative_base` (gone in 7.0), `kallsyms_seqs_of_names`.
//!
//! The search starts from the token table: every byte value a symbol name uses stands for
//! itself, so the table holds the tokens `"0\0" "1\0" … "9\0"` one after another (at the digits'
//! own indexes). Each hit of that string is checked against the structure around it: 256
//! non-empty NUL-terminated tokens, then (after zero padding) `kallsyms_token_index`, 256 `u16`
//! offsets that must give exactly those tokens. The markers (one `u32` per 256 symbols, the
//! first 0, strictly ascending) end just below the token table; the last marker says where the
//! last group of names starts, which bounds where `kallsyms_num_syms` and the names can start;
//! a candidate count is accepted when walking that many names from just after it meets every
//! marker and ends where the markers begin. The address table's place depends on the layout:
//! the caller tries each and keeps the one that reproduces `SYMBOL(_stext)` (and the other
//! VMCOREINFO symbols).
//!
//! The scan reads the image from `_stext` in large windows and searches each with `memmem`;
//! it is bounded by the image size the architecture allows and stops at a long unmapped gap.

use memchr::memmem;

use crate::error::{Error, Result};
use crate::kview::VirtMemory;

/// The tokens for the ten digits, as the token table holds them.
const DIGITS: &[u8] = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";
/// Bytes read per window of the scan.
const WINDOW: usize = 4 << 20;
/// Longest token accepted while checking a candidate table.
const MAX_TOKEN: usize = 512;
/// Unreadable bytes tolerated in a row (arm64 leaves unmapped gaps between image segments).
const MAX_GAP: u64 = 8 << 20;
/// Most bytes one name record takes (a 2-byte length and a KSYM_NAME_LEN of 512 tokens), which
/// bounds how far before the last group of names the table can start.
const MAX_RECORD: usize = 2 + 512;

/// Where the tables are.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub num_addr: u64,
    pub num: u32,
    pub names: u64,
    pub token_table: u64,
    pub token_index: u64,
    /// The names table's bytes (`names` up to `markers`), read while checking it.
    pub names_bytes: Vec<u8>,
}

/// What the scan did, for the error when it finds nothing.
#[derive(Debug, Default)]
struct Tally {
    scanned: u64,
    candidates: usize,
    token_tables: usize,
}

/// Search the kernel image from `start` (`_stext`) for at most `span` bytes.
pub(crate) fn find(mem: &dyn VirtMemory, start: u64, span: u64, max_symbols: u32, max_names: usize) -> Result<Found> {
    let finder = memmem::Finder::new(DIGITS);
    let keep = DIGITS.len() - 1;
    let mut buf = vec![0u8; keep + WINDOW];
    let mut carry = 0usize;
    let mut tally = Tally::default();
    let base = start & !0xfff;
    let end = base.saturating_add(span);
    let (mut addr, mut gap) = (base, 0u64);
    while addr < end {
        let n = WINDOW.min((end - addr) as usize);
        let win = &mut buf[carry..carry + n];
        let readable = read_window(mem, addr, win);
        tally.scanned += readable as u64;
        if readable == 0 {
            gap += n as u64;
            if gap > MAX_GAP {
                break;
            }
        } else {
            gap = 0;
        }
        let hay = &buf[..carry + n];
        let hay_start = addr - carry as u64;
        for hit in finder.find_iter(hay) {
            tally.candidates += 1;
            if let Some(f) = check_hit(mem, hay_start + hit as u64, max_symbols, max_names, &mut tally) {
                return Ok(f);
            }
        }
        // Keep the window's last bytes so that a hit across two windows is found.
        let total = carry + n;
        buf.copy_within(total - keep.min(total)..total, 0);
        carry = keep.min(total);
        addr += n as u64;
    }
    Err(Error::missing_symbol(format!(
        "no kallsyms tables found in the kernel image: scanned {} MiB from _stext {start:#x}, checked {} candidate \
         token tables ({} with a matching token index, none with names and markers that fit)",
        tally.scanned >> 20,
        tally.candidates,
        tally.token_tables
    )))
}

/// Fill `win` from `addr`; unreadable pages are zero-filled. Returns how many bytes were read.
fn read_window(mem: &dyn VirtMemory, addr: u64, win: &mut [u8]) -> usize {
    if mem.read_virt(addr, win).is_ok() {
        return win.len();
    }
    let mut got = 0;
    for (i, page) in win.chunks_mut(4096).enumerate() {
        match mem.read_virt(addr + (i * 4096) as u64, page) {
            Ok(()) => got += page.len(),
            Err(_) => page.fill(0),
        }
    }
    got
}

/// Read `[lo, hi)`, or failing that the largest of a few page-trimmed ranges around `at`.
fn read_around(mem: &dyn VirtMemory, lo: u64, at: u64, hi: u64) -> Option<(u64, Vec<u8>)> {
    let page_end = (at | 0xfff) + 1;
    let tries = [
        (lo, hi),
        (lo.max(at & !0xfff), hi),
        (lo, hi.min(page_end + 0x1000)),
        (lo, hi.min(page_end)),
        (lo, hi.min(at.saturating_add(2048))),
        (at & !0xfff, page_end),
    ];
    for (a, b) in tries {
        if b <= a {
            continue;
        }
        let mut v = vec![0u8; (b - a) as usize];
        if mem.read_virt(a, &mut v).is_ok() {
            return Some((a, v));
        }
    }
    None
}

fn u16_at(b: &[u8], i: usize, big: bool) -> u16 {
    let a = [b[i], b[i + 1]];
    if big {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn u32_at(b: &[u8], i: usize, big: bool) -> u32 {
    let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Check the digit string at `p`: the token table and index around it, then markers and names.
fn check_hit(mem: &dyn VirtMemory, p: u64, max_symbols: u32, max_names: usize, tally: &mut Tally) -> Option<Found> {
    let (tt, ti) = token_tables(mem, p)?;
    tally.token_tables += 1;
    let align = mem.pointer_size() as u64;
    let found = |m: u64, markers: &[u32], seqs: bool| {
        let f = names_for(mem, m, markers, max_symbols, max_names, align)?;
        // With kallsyms_seqs_of_names (3 bytes a symbol) between the markers and the token
        // table, the count must fill that gap exactly.
        let end = m + 4 * markers.len() as u64;
        let fits = if seqs {
            (end.next_multiple_of(align) + 3 * u64::from(f.num)).next_multiple_of(align) == tt
        } else {
            tt - end < align
        };
        fits.then_some(Found { token_table: tt, token_index: ti, ..f })
    };
    for (m, markers) in marker_candidates(mem, tt, align) {
        if let Some(f) = found(m, &markers, false) {
            return Some(f);
        }
    }
    seqs_marker_candidates(mem, tt, align, max_symbols, |m, markers| found(m, markers, true))
}

/// Markers that end below a `kallsyms_seqs_of_names` (6.2–6.3, and kernels that took it, as
/// Debian's 6.1 did): for each marker count `k` the table holds 256(k-1) < n <= 256k symbols,
/// so the markers end 3n bytes (aligned) below the token table; the markers there must start
/// with 0 and rise strictly. `check` decides each candidate.
fn seqs_marker_candidates(
    mem: &dyn VirtMemory,
    tt: u64,
    align: u64,
    max_symbols: u32,
    mut check: impl FnMut(u64, &[u32]) -> Option<Found>,
) -> Option<Found> {
    let big = mem.big_endian();
    let max_k = (max_symbols as u64).div_ceil(256).max(1);
    let most = (3 * 256 + 4) * max_k + 4 * align + 64;
    let mut tried_k = 0u64;
    let mut span = 1u64 << 20;
    loop {
        let span_now = span.min(most);
        let (base, buf) = read_around(mem, tt.saturating_sub(span_now), tt.saturating_sub(1), tt)?;
        let top = tt - base;
        let word = |at: u64| -> Option<u32> { (at >= base && at + 4 <= tt).then(|| u32_at(&buf, (at - base) as usize, big)) };
        let mut k = tried_k + 1;
        loop {
            // The markers' end e: 3n bytes (n in (256(k-1), 256k]) and padding below tt.
            let hi = tt.checked_sub(3 * 256 * (k - 1))?;
            let lo = tt.checked_sub(3 * 256 * k + 2 * align)?;
            if k > max_k {
                return None;
            }
            if lo.checked_sub(4 * k + 4).is_none_or(|l| l < base) {
                break;
            }
            let mut e = hi & !3;
            while e >= lo {
                let m = e - 4 * k;
                if word(m) == Some(0) && (k == 1 || word(m + 4).is_some_and(|v| v > 0)) {
                    let vals: Vec<u32> = (0..k).map_while(|j| word(m + 4 * j)).collect();
                    if vals.len() as u64 == k && vals.windows(2).all(|w| w[0] < w[1]) {
                        if let Some(f) = check(m, &vals) {
                            return Some(f);
                        }
                    }
                }
                e -= 4;
            }
            tried_k = k;
            k += 1;
        }
        if span_now >= most || top < span_now {
            return None;
        }
        span *= 4;
    }
}

/// The token table and token index around the digit tokens at `p`, if they are consistent.
pub(crate) fn token_tables(mem: &dyn VirtMemory, p: u64) -> Option<(u64, u64)> {
    let big = mem.big_endian();
    let lo = p.saturating_sub(0x30 * 64);
    let (base, buf) = read_around(mem, lo, p, p.saturating_add((208 * 64 + 600) as u64))?;
    let ip = (p - base) as usize;
    // Tokens 0x30..=0xff from the digits on.
    let mut starts = [0usize; 256];
    let mut s = ip;
    for st in &mut starts[0x30..] {
        let lim = buf.len().min(s + MAX_TOKEN + 1);
        let e = memchr::memchr(0, buf.get(s..lim)?)?;
        if e == 0 {
            return None;
        }
        *st = s;
        s += e + 1;
    }
    let end = s;
    for q in end..(end + 16).min(buf.len()) {
        if q > end && buf[q - 1] != 0 {
            break;
        }
        if (base + q as u64) % 2 != 0 || q + 512 > buf.len() {
            continue;
        }
        let idx: Vec<usize> = (0..256).map(|b| usize::from(u16_at(&buf, q + 2 * b, big))).collect();
        if idx[0] != 0 || idx[0x30] > ip {
            continue;
        }
        let t = ip - idx[0x30];
        if (base + t as u64) % 4 != 0 || (0x30..256).any(|b| idx[b] != starts[b] - t) {
            continue;
        }
        // Tokens 0..0x30: non-empty, NUL-terminated, no NUL inside.
        let ok = (0..0x30).all(|b| {
            let (s, e) = (t + idx[b], t + idx[b + 1]);
            e > s + 1 && buf[e - 1] == 0 && !buf[s..e - 1].contains(&0)
        });
        if ok {
            return Some((base + t as u64, base + q as u64));
        }
    }
    None
}

/// Marker tables that end just below the token table at `tt` (after up to `align - 4` bytes of
/// padding): their start and values.
fn marker_candidates(mem: &dyn VirtMemory, tt: u64, align: u64) -> Vec<(u64, Vec<u32>)> {
    let big = mem.big_endian();
    let Some((base, buf)) = read_around(mem, tt.saturating_sub(64 << 10), tt.saturating_sub(1), tt) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let top = (tt - base) as usize;
    for pad in (0..align as usize).step_by(4) {
        let Some(mut j) = top.checked_sub(pad) else { continue };
        if pad > 0 && buf[j..top].iter().any(|&b| b != 0) {
            continue;
        }
        let mut vals = Vec::new();
        let mut last = u32::MAX;
        let start = loop {
            let Some(i) = j.checked_sub(4) else { break None };
            let v = u32_at(&buf, i, big);
            if v >= last {
                break None;
            }
            vals.push(v);
            if v == 0 {
                break Some(i);
            }
            last = v;
            j = i;
        };
        if let Some(i) = start {
            vals.reverse();
            out.push((base + i as u64, vals));
        }
    }
    out
}

/// One name record's length (header and tokens) at `pos`, if it fits in `b`.
fn record(b: &[u8], pos: usize) -> Option<usize> {
    let l0 = usize::from(*b.get(pos)?);
    let (len, hdr) = if l0 & 0x80 != 0 {
        let l1 = usize::from(*b.get(pos + 1)?);
        if l1 & 0x80 != 0 {
            return None;
        }
        ((l0 & 0x7f) | (l1 << 7), 2)
    } else {
        (l0, 1)
    };
    (len > 0 && pos + hdr + len <= b.len()).then_some(hdr + len)
}

/// Walk `count` records from `pos`: where they end, checking `marker(k)` at every 256th.
fn walk(b: &[u8], mut pos: usize, count: usize, first: usize, markers: &[u32], origin: usize) -> Option<usize> {
    for i in 0..count {
        let k = first + i;
        if k % 256 == 0 && markers.get(k / 256).map(|&m| m as usize) != Some(pos - origin) {
            return None;
        }
        pos += record(b, pos)?;
    }
    Some(pos)
}

/// `kallsyms_num_syms` and `kallsyms_names` for the markers at `m`: the count must need exactly
/// that many markers, and its names must meet every marker and end at `m` (after padding).
fn names_for(mem: &dyn VirtMemory, m: u64, markers: &[u32], max_symbols: u32, max_names: usize, align: u64) -> Option<Found> {
    let big = mem.big_endian();
    let k = markers.len();
    let last = *markers.last()? as usize;
    if last > max_names {
        return None;
    }
    let slack = 256 * MAX_RECORD + 16;
    let lo = m.saturating_sub((last + slack) as u64) & !3;
    let (base, buf) = read_around(mem, lo, m.saturating_sub(1), m)?;
    let top = (m - base) as usize;
    // The count sits 4-aligned below the names; the names start at the next `align` boundary.
    let hi_a = top.checked_sub(last + 4 + 2)?;
    let mut a = hi_a & !3;
    let lowest = top.saturating_sub(last + slack);
    loop {
        let n = u32_at(&buf, a, big) as usize;
        if n > 256 * (k - 1) && n <= 256 * k && n <= max_symbols as usize {
            let s = (base + a as u64 + 4).next_multiple_of(align);
            let si = (s - base) as usize;
            let pad_ok = buf[a + 4..si.min(buf.len())].iter().all(|&b| b == 0);
            if pad_ok && si + last <= top {
                let names = &buf[..top];
                let tail = walk(names, si + last, n - 256 * (k - 1), 256 * (k - 1), markers, si);
                let ends_ok = |e: usize| top - e < align as usize && names[e..].iter().all(|&b| b == 0);
                if tail.is_some_and(ends_ok) && walk(names, si, n, 0, markers, si).is_some_and(ends_ok) {
                    let mut buf = buf;
                    buf.truncate(top);
                    buf.drain(..si);
                    return Some(Found {
                        num_addr: base + a as u64,
                        num: n as u32,
                        names: s,
                        token_table: 0,
                        token_index: 0,
                        names_bytes: buf,
                    });
                }
            }
        }
        if a < lowest + 4 {
            return None;
        }
        a -= 4;
    }
}
