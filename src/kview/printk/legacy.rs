//! The legacy variable-length record buffer (`log_buf`, Linux 3.5–5.9).

use super::{field, level_bits, member_offset, read_vec, struct_size, Keys, LogLimits, LogRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::kview::{bad_virt as bad, too_big_virt as too_big, VirtMemory};
use crate::text::View;

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
