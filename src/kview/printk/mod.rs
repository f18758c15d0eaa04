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

//!
//! The readers take the kernel's memory as a [`VirtMemory`] and its VMCOREINFO as a text
//! [`View`]: `lockless` and `legacy` decode the two ring formats, `dmesg` formats records as
//! makedumpfile does. Nothing here takes a dump (`Dump::kernel_log` is the entry point).

mod dmesg;
mod legacy;
mod lockless;

pub use dmesg::{format_dmesg, format_record};
pub use legacy::read_legacy;
pub use lockless::read_lockless;

use crate::error::{Error, ErrorKind, Location, Result};
use crate::kview::{bad_virt, too_big_virt, VirtMemory};
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

/// The keys one reader needs, each absent one an error naming it.
pub(super) struct Keys<'v, 'a> {
    pub vi: &'v View<'a>,
    pub what: &'static str,
}

impl Keys<'_, '_> {
    pub fn symbol(&self, name: &str) -> Result<u64> {
        self.vi.symbol(name)?.ok_or_else(|| missing(&format!("SYMBOL({name})"), self.what))
    }
    pub fn size(&self, name: &str) -> Result<u64> {
        self.vi.size(name)?.ok_or_else(|| missing(&format!("SIZE({name})"), self.what))
    }
    pub fn offset(&self, s: &str, m: &str) -> Result<u64> {
        member_offset(self.vi, s, m)?.ok_or_else(|| missing(&format!("OFFSET({s}.{m})"), self.what))
    }
}

/// `OFFSET(s.m)`, refused when beyond any plausible structure (so that sums of offsets cannot
/// overflow).
pub(super) fn member_offset(vi: &View<'_>, s: &str, m: &str) -> Result<Option<u64>> {
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
        bad_virt(
            addr.wrapping_add(off),
            format!("a {width}-byte field at offset {off} lies outside a {}-byte structure", buf.len()),
        )
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

pub(super) fn read_vec(mem: &dyn VirtMemory, addr: u64, len: u64, limit: u64, what: &str) -> Result<Vec<u8>> {
    if len > limit {
        return Err(too_big_virt(addr, format!("{what} of {len} bytes exceeds the {limit}-byte limit")));
    }
    let mut v = vec![0u8; len as usize];
    mem.read_virt(addr, &mut v)?;
    Ok(v)
}

/// A structure size from VMCOREINFO, sanity-bounded (no kernel structure read here is near this).
pub(super) const MAX_STRUCT: u64 = 1 << 16;

pub(super) fn struct_size(k: &Keys<'_, '_>, name: &str) -> Result<u64> {
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
pub(super) fn text_error(vi: &View<'_>, key: &str, msg: String) -> Error {
    let at = vi.item_for(key).map(|i| Location::Text(u64::from(i.value_offset)));
    Error::at(ErrorKind::Format, at, msg)
}

/// `u8 flags:5, level:3`: GCC allocates bit-fields from the least significant bit on
/// little-endian targets and from the most significant on big-endian ones.
pub(super) fn level_bits(b: u8, big: bool) -> u8 {
    if big {
        b & 7
    } else {
        b >> 5
    }
}

#[cfg(test)]
pub(crate) mod tests;
