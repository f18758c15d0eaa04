//! The kernel log, from VMCOREINFO alone: the lockless printk ring buffer (Linux 5.10+) and the
//! legacy variable-length `log_buf` (3.5–5.9), read through [`VirtMemory`].
//!
//! Every layout fact comes from the VMCOREINFO text: `SYMBOL(prb)` is the address of a pointer to
//! the ring (the static one or the enlarged one); ids and logical positions are `unsigned long`s
//! whose width is `SIZE(atomic_long_t)` (4 on i386 even inside an ELF64 dump). Records in the
//! committed and finalized states are kept (as makedumpfile and the kernel's readers do).
//!
//! A hostile or corrupted dump is bounded: the rings read are capped ([`LogLimits`]), the id walk
//! never runs past the descriptor count, the legacy walk stops on a cycle, and each failure is a
//! typed error naming the virtual address concerned.

use crate::error::{Error, ErrorKind, Location, Result};
use crate::kview::VirtMemory;
use crate::text::View;

/// One record of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The kernel's sequence number (lockless ring); for the legacy buffer, which does not store
    /// it, the record's position from the oldest record kept (0-based).
    pub seq: u64,
    /// `local_clock()` time of the record, in nanoseconds.
    pub timestamp_ns: u64,
    /// Log level 0–7 (`KERN_EMERG`..`KERN_DEBUG`); `None` when the layout is not the known one.
    pub level: Option<u8>,
    /// syslog facility (0 kernel, 1 user, ...); `None` when the layout is not the known one.
    pub facility: Option<u8>,
    /// `caller_id`: a task id, or a CPU number with bit 31 set (`CONFIG_PRINTK_CALLER`, always
    /// recorded in the lockless ring); `None` when VMCOREINFO names no such field.
    pub caller_id: Option<u32>,
    /// The message bytes (no trailing newline; may hold any byte).
    pub text: Vec<u8>,
}

/// Bounds on what one log read may allocate.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Largest text data ring (or legacy `log_buf`) read, in bytes.
    pub max_data_bytes: u64,
    /// Largest descriptor ring read (descriptors + infos), in bytes.
    pub max_desc_bytes: u64,
    /// Most records returned.
    pub max_records: usize,
    /// Largest `dmesg` text produced, in bytes.
    pub max_output_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        // CONFIG_LOG_BUF_SHIFT is at most 25 (32 MiB); `log_buf_len=` can ask for more, rarely.
        LogLimits { max_data_bytes: 256 << 20, max_desc_bytes: 512 << 20, max_records: 1 << 24, max_output_bytes: 1 << 30 }
    }
}

/// The log's format, as VMCOREINFO describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// The lockless ring buffer (`SYMBOL(prb)`, 5.10+).
    Lockless,
    /// The variable-length record buffer (`SYMBOL(log_buf)` with `log_first_idx`, 3.5–5.9).
    Legacy,
}

/// Which log format the text describes, if any.
pub fn log_kind(vi: &View<'_>) -> Option<LogKind> {
    if vi.contains("SYMBOL(prb)") {
        Some(LogKind::Lockless)
    } else if vi.contains("SYMBOL(log_buf)") {
        Some(LogKind::Legacy)
    } else {
        None
    }
}

/// Read the whole kernel log (oldest record first).
pub fn read_log(mem: &dyn VirtMemory, vi: &View<'_>, limits: &LogLimits) -> Result<Vec<LogRecord>> {
    match log_kind(vi) {
        Some(LogKind::Lockless) => read_lockless(mem, vi, limits),
        Some(LogKind::Legacy) => read_legacy(mem, vi, limits),
        None => Err(missing("SYMBOL(prb) or SYMBOL(log_buf)", "the kernel log")),
    }
}

// ------------------------------------------------------------------ helpers

pub(crate) fn missing(key: &str, what: &str) -> Error {
    Error::new(ErrorKind::Unsupported, None, format!("VMCOREINFO has no {key}, needed to read {what}"))
}

fn bad(addr: u64, msg: impl Into<String>) -> Error {
    Error::at(ErrorKind::Format, Some(Location::Virt(addr)), msg)
}

fn too_big(addr: u64, msg: impl Into<String>) -> Error {
    Error::at(ErrorKind::Limit, Some(Location::Virt(addr)), msg)
}

/// The keys one reader needs, each absent one an error naming it.
struct Keys<'v, 'a> {
    vi: &'v View<'a>,
    what: &'static str,
}

impl Keys<'_, '_> {
    fn symbol(&self, name: &str) -> Result<u64> {
        self.vi.symbol(name)?.ok_or_else(|| missing(&format!("SYMBOL({name})"), self.what))
    }
    fn size(&self, name: &str) -> Result<u64> {
        self.vi.size(name)?.ok_or_else(|| missing(&format!("SIZE({name})"), self.what))
    }
    fn offset(&self, s: &str, m: &str) -> Result<u64> {
        member_offset(self.vi, s, m)?.ok_or_else(|| missing(&format!("OFFSET({s}.{m})"), self.what))
    }
}

/// `OFFSET(s.m)`, refused when beyond any plausible structure (so that sums of offsets cannot
/// overflow).
fn member_offset(vi: &View<'_>, s: &str, m: &str) -> Result<Option<u64>> {
    match vi.offset(s, m)? {
        Some(o) if o > MAX_STRUCT => {
            let key = format!("OFFSET({s}.{m})");
            Err(text_error(vi, &key, format!("VMCOREINFO {key}={o} is not a plausible member offset")))
        }
        o => Ok(o),
    }
}

/// A field of `width` bytes at `off` in `buf`, in the kernel's byte order; a field outside the
/// buffer is a format error at `addr + off`.
pub(crate) fn field(buf: &[u8], off: u64, width: usize, big: bool, addr: u64) -> Result<u64> {
    let b = usize::try_from(off).ok().and_then(|o| buf.get(o..o.checked_add(width)?)).ok_or_else(|| {
        bad(addr.wrapping_add(off), format!("a {width}-byte field at offset {off} lies outside a {}-byte structure", buf.len()))
    })?;
    let mut v = [0u8; 8];
    if big {
        v[8 - width..].copy_from_slice(b);
        Ok(u64::from_be_bytes(v))
    } else {
        v[..width].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }
}

fn read_vec(mem: &dyn VirtMemory, addr: u64, len: u64, limit: u64, what: &str) -> Result<Vec<u8>> {
    if len > limit {
        return Err(too_big(addr, format!("{what} of {len} bytes exceeds the {limit}-byte limit")));
    }
    let mut v = vec![0u8; len as usize];
    mem.read_virt(addr, &mut v)?;
    Ok(v)
}

/// A structure size from VMCOREINFO, sanity-bounded (no kernel structure read here is near this).
const MAX_STRUCT: u64 = 1 << 16;

fn struct_size(k: &Keys<'_, '_>, name: &str) -> Result<u64> {
    let s = k.size(name)?;
    if s == 0 || s > MAX_STRUCT {
        return Err(text_error(
            k.vi,
            &format!("SIZE({name})"),
            format!("VMCOREINFO SIZE({name})={s} is not a plausible structure size"),
        ));
    }
    Ok(s)
}

/// A format error located at the value of `key` in the VMCOREINFO text.
fn text_error(vi: &View<'_>, key: &str, msg: String) -> Error {
    let at = vi.item_for(key).map(|i| Location::Text(u64::from(i.value_offset)));
    Error::at(ErrorKind::Format, at, msg)
}

// ------------------------------------------------------------------ lockless ring

/// Descriptor states (kernel/printk/printk_ringbuffer.h).
const DESC_COMMITTED: u64 = 1;
const DESC_FINALIZED: u64 = 2;

/// Read the lockless ring: ids from `tail_id` to `head_id` inclusive.
pub fn read_lockless(mem: &dyn VirtMemory, vi: &View<'_>, limits: &LogLimits) -> Result<Vec<LogRecord>> {
    let k = Keys { vi, what: "the kernel log (lockless ring)" };
    let big = mem.big_endian();
    let w = k.size("atomic_long_t")?;
    if w != 4 && w != 8 {
        return Err(text_error(vi, "SIZE(atomic_long_t)", format!("VMCOREINFO SIZE(atomic_long_t)={w}: expected 4 or 8")));
    }
    let w = w as usize;
    let counter = k.offset("atomic_long_t", "counter")?;
    let prb_sym = k.symbol("prb")?;
    let prb = mem.read_ptr(prb_sym)?;

    let rb = read_vec(mem, prb, struct_size(&k, "printk_ringbuffer")?, MAX_STRUCT, "printk_ringbuffer")?;
    let desc_ring = k.offset("printk_ringbuffer", "desc_ring")?;
    let data_ring = k.offset("printk_ringbuffer", "text_data_ring")?;
    let ps = mem.pointer_size();
    let f = |off: u64, width: usize| field(&rb, off, width, big, prb);

    let count_bits = f(desc_ring + k.offset("prb_desc_ring", "count_bits")?, 4)?;
    let descs_addr = f(desc_ring + k.offset("prb_desc_ring", "descs")?, ps)?;
    let infos_addr = f(desc_ring + k.offset("prb_desc_ring", "infos")?, ps)?;
    let head_id = f(desc_ring + k.offset("prb_desc_ring", "head_id")? + counter, w)?;
    let tail_id = f(desc_ring + k.offset("prb_desc_ring", "tail_id")? + counter, w)?;
    let size_bits = f(data_ring + k.offset("prb_data_ring", "size_bits")?, 4)?;
    let data_addr = f(data_ring + k.offset("prb_data_ring", "data")?, ps)?;

    let bits = (8 * w) as u64;
    if count_bits >= bits - 2 || count_bits > 40 {
        return Err(bad(prb, format!("prb_desc_ring.count_bits {count_bits} is impossible")));
    }
    if size_bits >= bits || size_bits > 40 {
        return Err(bad(prb, format!("prb_data_ring.size_bits {size_bits} is impossible")));
    }
    let count = 1u64 << count_bits;
    let dsize = 1u64 << size_bits;

    let desc_sz = struct_size(&k, "prb_desc")?;
    let info_sz = struct_size(&k, "printk_info")?;
    let desc_bytes = count * desc_sz;
    let info_bytes = count * info_sz;
    if desc_bytes + info_bytes > limits.max_desc_bytes {
        return Err(too_big(
            descs_addr,
            format!(
                "descriptor ring of {count} entries ({} bytes) exceeds the {}-byte limit",
                desc_bytes + info_bytes,
                limits.max_desc_bytes
            ),
        ));
    }
    if dsize > limits.max_data_bytes {
        return Err(too_big(
            data_addr,
            format!("printk text data ring of {dsize} bytes exceeds the {}-byte limit", limits.max_data_bytes),
        ));
    }
    // Only the parts of the rings that live records use are read (a fresh boot uses a few percent).
    let mut descs = Lazy::new(mem, descs_addr, desc_bytes);
    let mut infos = Lazy::new(mem, infos_addr, info_bytes);
    let mut data = Lazy::new(mem, data_addr, dsize);

    let o_state = k.offset("prb_desc", "state_var")? + counter;
    let o_blk = k.offset("prb_desc", "text_blk_lpos")?;
    let o_begin = o_blk + k.offset("prb_data_blk_lpos", "begin")?;
    let o_next = o_blk + k.offset("prb_data_blk_lpos", "next")?;
    let o_seq = k.offset("printk_info", "seq")?;
    let o_ts = k.offset("printk_info", "ts_nsec")?;
    let o_tlen = k.offset("printk_info", "text_len")?;
    let o_caller = member_offset(vi, "printk_info", "caller_id")?;
    // `u16 text_len; u8 facility; u8 flags:5, level:3; u32 caller_id;` (5.10+): facility and level
    // are not in VMCOREINFO; they are taken from that layout only when caller_id confirms it.
    let o_fac = (o_caller == Some(o_tlen + 4)).then_some(o_tlen + 2);

    let shift = 8 * w as u32 - 2;
    let id_mask = if w == 8 { !(3u64 << shift) } else { 0x3fff_ffff };
    let head_id = head_id & id_mask;
    let tail_id = tail_id & id_mask;
    let span = head_id.wrapping_sub(tail_id) & id_mask;
    if span >= count {
        return Err(bad(
            prb,
            format!("head_id {head_id:#x} is {span} descriptors past tail_id {tail_id:#x}, more than the ring's {count}"),
        ));
    }

    let mut out = Vec::with_capacity((span + 1).min(limits.max_records as u64) as usize);
    let mut id = tail_id;
    for _ in 0..=span {
        let slot = id % count;
        let d_off = slot * desc_sz;
        let d_addr = descs_addr.wrapping_add(d_off);
        descs.ensure(d_off, d_off + desc_sz)?;
        let sv = field(&descs.buf, d_off + o_state, w, big, descs_addr)?;
        let state = (sv >> shift) & 3;
        let this = id;
        id = (id + 1) & id_mask;
        if sv & id_mask != this || (state != DESC_COMMITTED && state != DESC_FINALIZED) {
            continue;
        }
        let begin = field(&descs.buf, d_off + o_begin, w, big, descs_addr)? % dsize;
        let next = field(&descs.buf, d_off + o_next, w, big, descs_addr)? % dsize;
        if begin == next {
            continue; // a data-less record
        }
        let i_off = slot * info_sz;
        infos.ensure(i_off, i_off + info_sz)?;
        let inf = |off: u64, width: usize| field(&infos.buf, i_off + off, width, big, infos_addr);
        let text_len = inf(o_tlen, 2)?;
        let b = if begin > next { 0 } else { begin } + w as u64;
        if b > next {
            return Err(bad(d_addr, format!("record {this:#x}: text block [{begin:#x}, {next:#x}) is shorter than its id word")));
        }
        let len = text_len.min(next - b);
        if out.len() >= limits.max_records {
            return Err(too_big(prb, format!("the log holds more than {} records", limits.max_records)));
        }
        out.push(LogRecord {
            seq: inf(o_seq, 8)?,
            timestamp_ns: inf(o_ts, 8)?,
            level: o_fac.map(|o| inf(o + 1, 1)).transpose()?.map(|b| level_bits(b as u8, big)),
            facility: o_fac.map(|o| inf(o, 1)).transpose()?.map(|b| b as u8),
            caller_id: o_caller.map(|o| inf(o, 4)).transpose()?.map(|c| c as u32),
            text: {
                data.ensure(b, b + len)?;
                data.buf[b as usize..(b + len) as usize].to_vec()
            },
        });
    }
    Ok(out)
}

/// A ring in kernel memory read on demand, in aligned chunks: `buf` is the whole ring (zeroed
/// lazily by the allocator), `have` marks the chunks read.
struct Lazy<'m> {
    mem: &'m dyn VirtMemory,
    addr: u64,
    buf: Vec<u8>,
    have: Vec<bool>,
}

const LAZY_CHUNK: u64 = 16 << 10;

impl<'m> Lazy<'m> {
    /// `len` is bounded by the caller's limits.
    fn new(mem: &'m dyn VirtMemory, addr: u64, len: u64) -> Self {
        Lazy { mem, addr, buf: vec![0; len as usize], have: vec![false; len.div_ceil(LAZY_CHUNK) as usize] }
    }

    /// Read the chunks of `[start, end)` not read yet, each run of them in one read.
    fn ensure(&mut self, start: u64, end: u64) -> Result<()> {
        let end = end.min(self.buf.len() as u64);
        if start >= end {
            return Ok(());
        }
        let (first, last) = ((start / LAZY_CHUNK) as usize, ((end - 1) / LAZY_CHUNK) as usize);
        let mut c = first;
        while c <= last {
            if self.have[c] {
                c += 1;
                continue;
            }
            let run_start = c;
            while c <= last && !self.have[c] {
                c += 1;
            }
            let lo = run_start as u64 * LAZY_CHUNK;
            let hi = (c as u64 * LAZY_CHUNK).min(self.buf.len() as u64);
            self.mem.read_virt(self.addr.wrapping_add(lo), &mut self.buf[lo as usize..hi as usize])?;
            self.have[run_start..c].iter_mut().for_each(|h| *h = true);
        }
        Ok(())
    }
}

/// `u8 flags:5, level:3`: GCC allocates bit-fields from the least significant bit on
/// little-endian targets and from the most significant on big-endian ones.
fn level_bits(b: u8, big: bool) -> u8 {
    if big {
        b & 7
    } else {
        b >> 5
    }
}

// ------------------------------------------------------------------ legacy log_buf

/// Read the variable-length record buffer of 3.5–5.9: records from `log_first_idx` to
/// `log_next_idx`, a record of length 0 meaning "wrap to the start".
pub fn read_legacy(mem: &dyn VirtMemory, vi: &View<'_>, limits: &LogLimits) -> Result<Vec<LogRecord>> {
    let k = Keys { vi, what: "the kernel log (log_buf)" };
    let big = mem.big_endian();
    if vi.contains("SYMBOL(log_end)") && !vi.contains("SYMBOL(log_first_idx)") {
        return Err(Error::new(
            ErrorKind::Unsupported,
            None,
            "the kernel log of kernels before 3.5 (a plain character buffer, SYMBOL(log_end)) is not supported",
        ));
    }
    let log_buf_sym = k.symbol("log_buf")?;
    let buf_addr = mem.read_ptr(log_buf_sym)?;
    let buf_len = u64::from(mem.read_u32(k.symbol("log_buf_len")?)?);
    let first = u64::from(mem.read_u32(k.symbol("log_first_idx")?)?);
    let next_idx = u64::from(mem.read_u32(k.symbol("log_next_idx")?)?);
    let hdr = struct_size(&k, "printk_log")?;
    let o_ts = k.offset("printk_log", "ts_nsec")?;
    let o_len = k.offset("printk_log", "len")?;
    let o_tlen = k.offset("printk_log", "text_len")?;
    let o_dict = member_offset(vi, "printk_log", "dict_len")?;
    let o_caller = member_offset(vi, "printk_log", "caller_id")?;
    // `u16 len, text_len, dict_len; u8 facility; u8 flags:5, level:3;` follow ts_nsec.
    let o_fac = o_dict.filter(|&d| d == o_tlen + 2 && d + 4 <= hdr).map(|d| d + 2);

    let buf = read_vec(mem, buf_addr, buf_len, limits.max_data_bytes, "log_buf")?;
    if first > buf_len || next_idx > buf_len {
        return Err(bad(buf_addr, format!("log_first_idx {first} or log_next_idx {next_idx} is beyond log_buf_len {buf_len}")));
    }
    let at = |pos: u64, off: u64, width: usize| field(&buf, pos + off, width, big, buf_addr);
    let mut out = Vec::new();
    let mut pos = first;
    // Every record takes at least `hdr` bytes: more steps than that means a cycle.
    let max_steps = buf_len / hdr.max(1) + 2;
    let mut steps = 0u64;
    while pos != next_idx {
        steps += 1;
        if steps > max_steps {
            return Err(bad(buf_addr.wrapping_add(pos), "log_buf records form a cycle (corrupted log)"));
        }
        if pos + hdr > buf_len {
            return Err(bad(buf_addr.wrapping_add(pos), format!("log_buf record at index {pos} runs past the buffer")));
        }
        let mut rec = pos;
        let mut len = at(rec, o_len, 2)?;
        if len == 0 {
            // The end-of-buffer marker: this record is the one at the start.
            rec = 0;
            len = at(0, o_len, 2)?;
            if len == 0 {
                return Err(bad(buf_addr, "log_buf wraps to an empty record at index 0 (corrupted log)"));
            }
        }
        let text_len = at(rec, o_tlen, 2)?;
        let text_start = rec + hdr;
        let text_end = (text_start + text_len).min(buf_len);
        if out.len() >= limits.max_records {
            return Err(too_big(buf_addr, format!("the log holds more than {} records", limits.max_records)));
        }
        out.push(LogRecord {
            seq: out.len() as u64,
            timestamp_ns: at(rec, o_ts, 8)?,
            level: o_fac.map(|o| at(rec, o + 1, 1)).transpose()?.map(|b| level_bits(b as u8, big)),
            facility: o_fac.map(|o| at(rec, o, 1)).transpose()?.map(|b| b as u8),
            caller_id: o_caller.map(|o| at(rec, o, 4)).transpose()?.map(|c| c as u32),
            text: buf.get(text_start as usize..text_end as usize).unwrap_or(&[]).to_vec(),
        });
        pos = rec + len;
        if pos > buf_len {
            return Err(bad(
                buf_addr.wrapping_add(rec),
                format!("log_buf record at index {rec} of length {len} runs past the buffer"),
            ));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ dmesg text

/// The caller column as makedumpfile ≥ 1.7.5 prints it: `T<pid>` or `C<cpu>` right-aligned in 8.
fn caller_column(out: &mut Vec<u8>, id: u32) {
    use std::io::Write;
    let kind = if id & 0x8000_0000 != 0 { 'C' } else { 'T' };
    let s = format!("{kind}{}", id & 0x7fff_ffff);
    let _ = write!(out, "[{s:>8}] ");
}

/// Append one record in `makedumpfile --dump-dmesg`'s line format: `[%5lu.%06lu] ` (then the
/// caller column when asked for and recorded), the text with each embedded newline followed by
/// an indent as wide as the prefix, bytes that are neither printable ASCII nor whitespace as
/// `\xNN`, and a final newline.
pub fn format_record(out: &mut Vec<u8>, r: &LogRecord, caller_id: bool) {
    use std::io::Write;
    let start = out.len();
    let _ = write!(out, "[{:5}.{:06}] ", r.timestamp_ns / 1_000_000_000, r.timestamp_ns % 1_000_000_000 / 1000);
    if caller_id {
        if let Some(id) = r.caller_id {
            caller_column(out, id);
        }
    }
    let indent = out.len() - start;
    for &c in &r.text {
        match c {
            b'\n' => {
                out.push(b'\n');
                out.resize(out.len() + indent, b' ');
            }
            // C's isprint() || isspace() in the "C" locale.
            0x20..=0x7e | b'\t' | 0x0b | 0x0c | b'\r' => out.push(c),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(b'\n');
}

/// The whole log as `makedumpfile --dump-dmesg` writes it (see [`format_record`]); always ASCII.
pub fn format_dmesg(records: &[LogRecord], caller_id: bool, limits: &LogLimits) -> Result<String> {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.text.len() + 32).sum::<usize>().min(limits.max_output_bytes));
    for r in records {
        format_record(&mut out, r, caller_id);
        if out.len() > limits.max_output_bytes {
            return Err(Error::new(
                ErrorKind::Limit,
                None,
                format!("the dmesg text exceeds the {}-byte limit", limits.max_output_bytes),
            ));
        }
    }
    // Only ASCII bytes are written above.
    Ok(String::from_utf8(out).unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod tests;
