//! The log as text, in `makedumpfile --dump-dmesg`'s format.

use super::{LogLimits, LogRecord};
use crate::error::{Error, ErrorKind, Result};

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
    Ok(String::from_utf8(out).expect("format_record writes only ASCII bytes"))
}
