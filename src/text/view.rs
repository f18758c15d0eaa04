//! Typed reads of an indexed text ([`View`]) and the kernel's number formats.

use crate::error::{Error, Result};
use std::borrow::Cow;

use super::*;

/// One entry as seen through a [`View`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The key (before the first `'='`).
    pub key: &'a [u8],
    /// The value (after the first `'='`, without `'\r'` or `'\n'`).
    pub value: &'a [u8],
    /// Byte offset of the key (the line start) in the text.
    pub key_offset: u32,
    /// Byte offset of the value in the text.
    pub value_offset: u32,
    /// Line number, 1-based.
    pub line: u32,
}

/// A borrowed text with its index: lookups and typed accessors.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub(super) text: &'a [u8],
    pub(super) index: &'a Index,
}

/// Build `prefix name suffix` on the stack when it fits and run `f` on it.
fn with_key<R>(parts: &[&[u8]], f: impl FnOnce(&[u8]) -> R) -> R {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut stack = [0u8; 128];
    if total <= stack.len() {
        let mut at = 0;
        for p in parts {
            stack[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        f(&stack[..total])
    } else {
        f(&parts.concat())
    }
}

impl<'a> View<'a> {
    /// The index behind this view.
    pub fn index(&self) -> &'a Index {
        self.index
    }

    /// The text proper (without NUL padding).
    pub fn text(&self) -> &'a [u8] {
        self.text.get(..self.index.text_len).unwrap_or(self.text)
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn item(&self, e: Entry) -> Item<'a> {
        Item {
            key: self.text.get(e.key_range()).unwrap_or(&[]),
            value: self.text.get(e.value_range()).unwrap_or(&[]),
            key_offset: e.key_start,
            value_offset: e.value_start(),
            // A `build_only` entry's line is counted when asked for (0 is never a line).
            line: if e.line == 0 {
                1 + memchr::memchr_iter(b'\n', self.text.get(..e.key_start as usize).unwrap_or(&[])).count() as u32
            } else {
                e.line
            },
        }
    }

    fn entry(&self, key: &[u8]) -> Option<Entry> {
        self.index.find(self.text, key)
    }

    /// The entry for `key` (raw bytes), with its offsets.
    pub fn item_bytes(&self, key: &[u8]) -> Option<Item<'a>> {
        self.index.find(self.text, key).map(|e| self.item(e))
    }

    /// The entry for `key`, with its offsets.
    pub fn item_for(&self, key: &str) -> Option<Item<'a>> {
        self.item_bytes(key.as_bytes())
    }

    /// The raw value of `key` (first occurrence).
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.entry(key.as_bytes()).map(|e| self.text.get(e.value_range()).unwrap_or(&[]))
    }

    /// The value of `key`, decoded lossily as UTF-8.
    pub fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        // `from_utf8` checks ASCII a word at a time; the lossy decoder goes byte by byte, which
        // shows in a batch of thousands of files. Same result either way.
        self.get(key).map(|b| std::str::from_utf8(b).map_or_else(|_| String::from_utf8_lossy(b), Cow::Borrowed))
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.item_for(key).is_some()
    }

    /// `(key, value)` pairs in text order, first occurrence only for repeated keys.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.items().map(|i| (i.key, i.value))
    }

    /// Entries with their offsets, in text order.
    pub fn items(&self) -> impl ExactSizeIterator<Item = Item<'a>> + '_ {
        self.index.entries.iter().map(move |&e| self.item(e))
    }

    fn parsed<T>(
        &self,
        entry: Option<Entry>,
        parse: impl FnOnce(&[u8]) -> std::result::Result<T, &'static str>,
    ) -> Result<Option<T>> {
        let Some(e) = entry else { return Ok(None) };
        let value = self.text.get(e.value_range()).unwrap_or(&[]);
        match parse(value) {
            Ok(v) => Ok(Some(v)),
            Err(why) => Err(Error::format(
                u64::from(e.value_start()),
                format!(
                    "{}={}: {why}",
                    String::from_utf8_lossy(self.text.get(e.key_range()).unwrap_or(&[])).escape_debug(),
                    excerpt(value)
                ),
            )
            .in_text()),
        }
    }

    fn parsed_key<T>(
        &self,
        parts: &[&[u8]],
        parse: impl FnOnce(&[u8]) -> std::result::Result<T, &'static str>,
    ) -> Result<Option<T>> {
        let entry = with_key(parts, |k| self.entry(k));
        self.parsed(entry, parse)
    }

    /// Any key's value as unsigned decimal.
    pub fn get_udec(&self, key: &str) -> Result<Option<u64>> {
        self.parsed(self.entry(key.as_bytes()), parse_udec)
    }

    /// Any key's value as hexadecimal without `0x` (a `0x` prefix is tolerated).
    pub fn get_hex(&self, key: &str) -> Result<Option<u64>> {
        self.parsed(self.entry(key.as_bytes()), parse_hex)
    }

    /// Any key's value as a kernel NUMBER: signed decimal or `0x` hexadecimal (see [`parse_number`]).
    pub fn get_number(&self, key: &str) -> Result<Option<i128>> {
        self.parsed(self.entry(key.as_bytes()), parse_number)
    }

    /// `OSRELEASE`, decoded lossily.
    pub fn osrelease(&self) -> Option<Cow<'a, str>> {
        self.get_str("OSRELEASE")
    }

    /// `BUILD-ID` as written (the kernel writes 40 hex digits), decoded lossily.
    pub fn build_id(&self) -> Option<Cow<'a, str>> {
        self.get_str("BUILD-ID")
    }

    /// `BUILD-ID` decoded from hex; an odd length, an empty value or a non-hex digit is an error.
    pub fn build_id_bytes(&self) -> Result<Option<Vec<u8>>> {
        self.parsed(self.entry(b"BUILD-ID"), parse_hex_bytes)
    }

    /// `PAGESIZE` (decimal).
    pub fn page_size(&self) -> Result<Option<u64>> {
        self.get_udec("PAGESIZE")
    }

    /// `KERNELOFFSET` (hex without `0x`): the KASLR offset.
    pub fn kernel_offset(&self) -> Result<Option<u64>> {
        self.get_hex("KERNELOFFSET")
    }

    /// `NUMBER(phys_base)` (x86_64), written by the kernel as SIGNED DECIMAL (`%ld`):
    /// `-167772160` is `-0xa000000`. (QEMU reads it as hex, wrongly; we do not.) A `0x` hex value is
    /// accepted too and taken as the 64-bit two's complement pattern.
    pub fn phys_base(&self) -> Result<Option<i64>> {
        self.parsed_key(&[b"NUMBER(phys_base)"], |v| {
            let n = parse_number(v)?;
            if n < 0 {
                i64::try_from(n).map_err(|_| "out of range")
            } else {
                u64::try_from(n).map(|u| u as i64).map_err(|_| "out of range")
            }
        })
    }

    /// `CRASHTIME` (decimal seconds; only present after a real crash).
    pub fn crashtime(&self) -> Result<Option<i64>> {
        self.parsed(self.entry(b"CRASHTIME"), parse_idec)
    }

    /// `SYMBOL(name)`: an address, hex without `0x` (a `0x` prefix is tolerated).
    pub fn symbol(&self, name: &str) -> Result<Option<u64>> {
        self.parsed_key(&[b"SYMBOL(", name.as_bytes(), b")"], parse_hex)
    }

    /// `SIZE(name)`: unsigned decimal.
    pub fn size(&self, name: &str) -> Result<Option<u64>> {
        self.parsed_key(&[b"SIZE(", name.as_bytes(), b")"], parse_udec)
    }

    /// `LENGTH(name)`: unsigned decimal.
    pub fn length(&self, name: &str) -> Result<Option<u64>> {
        self.parsed_key(&[b"LENGTH(", name.as_bytes(), b")"], parse_udec)
    }

    /// `OFFSET(structure.member)`: unsigned decimal.
    pub fn offset(&self, structure: &str, member: &str) -> Result<Option<u64>> {
        self.parsed_key(&[b"OFFSET(", structure.as_bytes(), b".", member.as_bytes(), b")"], parse_udec)
    }

    /// `NUMBER(name)`: signed decimal (`%ld`) or `0x` hex (`0x%lx`, e.g. arm64's
    /// `kimage_voffset=0xffff...`); the result spans `i64::MIN..=u64::MAX` (see [`parse_number`]).
    pub fn number(&self, name: &str) -> Result<Option<i128>> {
        self.parsed_key(&[b"NUMBER(", name.as_bytes(), b")"], parse_number)
    }

    /// `CONFIG_name`: `y` is true, `n` false, anything else an error. `name` may carry the
    /// `CONFIG_` prefix or not.
    pub fn config(&self, name: &str) -> Result<Option<bool>> {
        let name = name.strip_prefix("CONFIG_").unwrap_or(name);
        self.parsed_key(&[b"CONFIG_", name.as_bytes()], |v| match v {
            b"y" => Ok(true),
            b"n" => Ok(false),
            _ => Err("expected y or n"),
        })
    }
}

fn digits_u64(v: &[u8], radix: u32) -> std::result::Result<u64, &'static str> {
    if v.is_empty() {
        return Err("empty number");
    }
    let mut n: u64 = 0;
    for &c in v {
        let d = (c as char).to_digit(radix).ok_or(if radix == 16 { "not a hexadecimal digit" } else { "not a decimal digit" })?;
        n = n.checked_mul(u64::from(radix)).and_then(|n| n.checked_add(u64::from(d))).ok_or("number too large")?;
    }
    Ok(n)
}

/// Unsigned decimal, digits only (SIZE, LENGTH, OFFSET, PAGESIZE). Empty or overflowing: error.
pub fn parse_udec(v: &[u8]) -> std::result::Result<u64, &'static str> {
    digits_u64(v, 10)
}

/// Hexadecimal as the kernel writes addresses (no `0x`); a `0x`/`0X` prefix is tolerated.
pub fn parse_hex(v: &[u8]) -> std::result::Result<u64, &'static str> {
    let v = v.strip_prefix(b"0x").or_else(|| v.strip_prefix(b"0X")).unwrap_or(v);
    digits_u64(v, 16)
}

/// Signed decimal that must fit an `i64` (`CRASHTIME`).
pub fn parse_idec(v: &[u8]) -> std::result::Result<i64, &'static str> {
    let (neg, digits) = match v.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, v),
    };
    let m = digits_u64(digits, 10)?;
    let n = if neg { -i128::from(m) } else { i128::from(m) };
    i64::try_from(n).map_err(|_| "number out of range")
}

/// A NUMBER value: optional `-`, then decimal digits or `0x` hex digits. The result must lie in
/// `i64::MIN..=u64::MAX`, so both `%ld` values and `0x%lx` bit patterns fit (an `i128`, which
/// maps to a Python int).
pub fn parse_number(v: &[u8]) -> std::result::Result<i128, &'static str> {
    let (neg, rest) = match v.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let m = match rest.strip_prefix(b"0x").or_else(|| rest.strip_prefix(b"0X")) {
        Some(h) => digits_u64(h, 16)?,
        None => digits_u64(rest, 10)?,
    };
    if neg {
        let n = -i128::from(m);
        if n < i128::from(i64::MIN) {
            return Err("number out of range");
        }
        Ok(n)
    } else {
        Ok(i128::from(m))
    }
}

/// Hex digits to bytes (BUILD-ID); empty, odd length or a non-hex digit: error.
pub fn parse_hex_bytes(v: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    if v.is_empty() {
        return Err("empty hex string");
    }
    if v.len() % 2 != 0 {
        return Err("odd number of hex digits");
    }
    v.chunks_exact(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16).ok_or("not a hexadecimal digit")?;
            let lo = (p[1] as char).to_digit(16).ok_or("not a hexadecimal digit")?;
            Ok((hi * 16 + lo) as u8)
        })
        .collect()
}

/// Whether a note desc is QEMU's Windows dump header rather than a VMCOREINFO text: QEMU's
/// `win-dmp` writes its binary header (`"PAGE"` then `"DU64"` or `"DUMP"`) into the note named
/// VMCOREINFO.
pub fn is_windows_dump_header(desc: &[u8]) -> bool {
    desc.len() >= 8 && &desc[..4] == b"PAGE" && matches!(&desc[4..8], b"DU64" | b"DUMP")
}
