//! The VMCOREINFO text: the desc bytes of the `VMCOREINFO` note, `KEY=VALUE` lines.
//!
//! Parsing is zero-copy. [`Index::build`] scans the borrowed bytes once and records, per line,
//! where the key and the value are (as `u32` byte ranges); nothing is copied out of the text.
//! A [`View`] pairs the text with its index and offers typed accessors. The Python layer keeps
//! the text in an `Arc<[u8]>` next to its `Index` and makes a `View` per call.
//!
//! Text rules, following how the kernel writes the text (`kernel/vmcore_info.c`) and how
//! makedumpfile and crash read it:
//! - lines end at `'\n'`; a missing final newline is accepted (see
//!   [`Index::missing_final_newline`]); a `'\r'` before the line end is stripped, with a
//!   diagnostic;
//! - NUL bytes that run to the end of the bytes are note padding and end the text silently; a NUL
//!   followed by anything else ends the text too, with a diagnostic;
//! - a line is split at its FIRST `'='`; lines without `'='` are skipped with a diagnostic, empty
//!   lines silently;
//! - the kernel formats each line (newline included) into an 80-byte buffer, so a line of more
//!   than 79 bytes counting its newline is not what the kernel writes: diagnostic, entry kept;
//! - a key seen twice: the FIRST occurrence wins (as in makedumpfile and crash), diagnostic;
//! - bytes that are not UTF-8: diagnostic, entry kept; string accessors decode lossily.
//!
//! Typed accessors return `Result<Option<T>>`: `Ok(None)` when the key is absent, `Err` with
//! [`ErrorKind::Format`](crate::error::ErrorKind::Format) when it is present but malformed, the
//! error offset being the byte offset of the VALUE inside the text (shift it to a file offset
//! with [`Error::shifted`](crate::error::Error::shifted)).

use std::borrow::Cow;
use std::fmt;

use crate::error::{Error, Result};

/// Longest line the kernel can write, counting its `'\n'` (an 80-byte buffer with its NUL).
pub const MAX_KERNEL_LINE: usize = 79;

/// At most this many diagnostics are kept; one [`DiagKind::TooManyDiagnostics`] marks the cut.
pub const MAX_DIAGNOSTICS: usize = 1000;

/// Texts are indexed up to this many bytes (offsets are `u32`); the rest gets a diagnostic.
pub const MAX_TEXT_LEN: usize = u32::MAX as usize;

/// What a [`Diagnostic`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiagKind {
    /// A non-empty line without `'='`; skipped.
    NoEquals,
    /// A line with nothing before its `'='`; skipped.
    EmptyKey,
    /// A line longer than the kernel can write (79 bytes with its newline); kept.
    LongLine,
    /// A key seen before; this later occurrence is ignored.
    DuplicateKey,
    /// A line that is not valid UTF-8; kept as bytes.
    NonUtf8,
    /// A NUL byte followed by more non-NUL data; the text ends at the NUL.
    NulInText,
    /// A `'\r'` before the end of a line; stripped.
    CarriageReturn,
    /// The text is longer than [`MAX_TEXT_LEN`]; the rest is not indexed.
    TextTooLong,
    /// More than [`MAX_DIAGNOSTICS`] diagnostics; later ones are dropped.
    TooManyDiagnostics,
}

impl DiagKind {
    /// A stable, machine-readable name.
    pub fn name(self) -> &'static str {
        match self {
            DiagKind::NoEquals => "no-equals",
            DiagKind::EmptyKey => "empty-key",
            DiagKind::LongLine => "long-line",
            DiagKind::DuplicateKey => "duplicate-key",
            DiagKind::NonUtf8 => "non-utf8",
            DiagKind::NulInText => "nul-in-text",
            DiagKind::CarriageReturn => "carriage-return",
            DiagKind::TextTooLong => "text-too-long",
            DiagKind::TooManyDiagnostics => "too-many-diagnostics",
        }
    }
}

impl fmt::Display for DiagKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something odd about the text that did not stop it from being indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte offset in the text (start of the line, or the offending byte).
    pub offset: u32,
    /// Line number, 1-based; 0 when the diagnostic concerns the whole text.
    pub line: u32,
    /// What the diagnostic is about.
    pub kind: DiagKind,
    /// A human-readable explanation naming the line and an excerpt of it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (offset {}): {} [{}]", self.line, self.offset, self.message, self.kind)
    }
}

/// One `KEY=VALUE` line: the key is `key_start..eq`, the value `eq + 1..value_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key_start: u32,
    eq: u32,
    value_end: u32,
    line: u32,
}

impl Entry {
    fn key_range(&self) -> std::ops::Range<usize> {
        self.key_start as usize..self.eq as usize
    }
    fn value_start(&self) -> u32 {
        self.eq + 1
    }
    fn value_range(&self) -> std::ops::Range<usize> {
        self.eq as usize + 1..self.value_end as usize
    }
}

/// A free hash-table slot. A used slot holds the entry index (low 32 bits) and the high 32 bits
/// of the key's hash, so most mismatches are settled without comparing keys.
const EMPTY_SLOT: u64 = u64::MAX;

#[inline]
fn slot_of(index: usize, hash: u64) -> u64 {
    (hash & !0xffff_ffff) | index as u64
}

/// An index of byte ranges over one VMCOREINFO text. It borrows nothing: keep the text next to
/// it and look things up through [`Index::view`].
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Distinct keys in text order (the first occurrence of each).
    entries: Vec<Entry>,
    /// Open-addressing hash table (power-of-two length, linear probing) of [`slot_of`] values.
    slots: Vec<u64>,
    diagnostics: Vec<Diagnostic>,
    /// Bytes of text before the padding / NUL / size cut.
    text_len: usize,
    missing_final_newline: bool,
}

#[inline(always)]
fn load8(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// Hash of a key. Keys are short (the kernel's lines are at most 79 bytes), so keys of up to 32
/// bytes are covered by four overlapping 8-byte loads mixed in parallel, without a
/// length-dependent branch or loop (whose mispredictions would cost more than the hashing); longer keys
/// also hash their middle, word by word, so every byte counts and hostile keys cannot all
/// collide.
#[inline]
fn hash_key(key: &[u8]) -> u64 {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
    const K3: u64 = 0x1656_67b1_9e37_79f9;
    const K4: u64 = 0x27d4_eb2f_1656_67c5;
    let n = key.len();
    let (a, b, c, d) = if n < 8 {
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(key);
        (u64::from_le_bytes(w), 0, 0, 0)
    } else {
        // Branch-free for 8..=32 bytes: the windows [0,8), [8,16), [n-16,n-8), [n-8,n), clamped
        // into the key, cover every byte.
        (load8(key, 0), load8(key, n - 8), load8(key, 8.min(n - 8)), load8(key, n.saturating_sub(16)))
    };
    let mut h = (a ^ K1).wrapping_mul(K2)
        ^ (b ^ K3).wrapping_mul(K4)
        ^ (c ^ K2).wrapping_mul(K3).rotate_left(23)
        ^ (d ^ K4).wrapping_mul(K1).rotate_left(41)
        ^ (n as u64);
    if n > 32 {
        let mut at = 16;
        while at + 16 < n {
            h = (h.rotate_left(27) ^ load8(key, at)).wrapping_mul(K1);
            at += 8;
        }
    }
    // The high bits of a product are the well-mixed ones; the table indexes with the low bits.
    let h = h.wrapping_mul(K3);
    h ^ (h >> 32)
}

struct Builder<'t> {
    text: &'t [u8],
    diagnostics: Vec<Diagnostic>,
    dropped: bool,
}

impl Builder<'_> {
    fn diag(&mut self, offset: usize, line: u32, kind: DiagKind, message: String) {
        if self.diagnostics.len() < MAX_DIAGNOSTICS {
            self.diagnostics.push(Diagnostic { offset: offset as u32, line, kind, message });
        } else if !self.dropped {
            self.dropped = true;
            self.diagnostics.push(Diagnostic {
                offset: offset as u32,
                line,
                kind: DiagKind::TooManyDiagnostics,
                message: format!("more than {MAX_DIAGNOSTICS} diagnostics; the rest are not reported"),
            });
        }
    }

    /// Record one line `start..line_end` (`line_end` at its '\n', if `has_nl`), its first '='
    /// at `eq`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn line(
        &mut self,
        entries: &mut Vec<Entry>,
        start: usize,
        line_end: usize,
        has_nl: bool,
        eq: Option<usize>,
        line_no: u32,
        all_ascii: bool,
    ) {
        let text = self.text;
        let raw_len = line_end - start + usize::from(has_nl);
        let mut content_end = line_end;
        if content_end > start && text[content_end - 1] == b'\r' {
            content_end -= 1;
            self.diag(
                content_end,
                line_no,
                DiagKind::CarriageReturn,
                format!("line {line_no} ends with a carriage return; stripped"),
            );
        }
        if content_end == start {
            return;
        }
        if raw_len > MAX_KERNEL_LINE {
            self.diag(
                start,
                line_no,
                DiagKind::LongLine,
                format!(
                    "line {line_no} is {raw_len} bytes long; the kernel writes at most {MAX_KERNEL_LINE}: {}",
                    self.excerpt(start..content_end)
                ),
            );
        }
        if !all_ascii && std::str::from_utf8(&text[start..content_end]).is_err() {
            self.diag(
                start,
                line_no,
                DiagKind::NonUtf8,
                format!("line {line_no} is not valid UTF-8: {}", self.excerpt(start..content_end)),
            );
        }
        match eq {
            None => self.diag(
                start,
                line_no,
                DiagKind::NoEquals,
                format!("line {line_no} has no '=': {}", self.excerpt(start..content_end)),
            ),
            Some(e) if e == start => self.diag(
                start,
                line_no,
                DiagKind::EmptyKey,
                format!("line {line_no} has an empty key: {}", self.excerpt(start..content_end)),
            ),
            Some(e) => {
                entries.push(Entry { key_start: start as u32, eq: e as u32, value_end: content_end as u32, line: line_no })
            }
        }
    }

    fn excerpt(&self, range: std::ops::Range<usize>) -> String {
        excerpt(self.text.get(range).unwrap_or(&[]))
    }
}

/// A short, lossily decoded, escaped excerpt for messages.
fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 48;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut s: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if bytes.len() > MAX {
        s.push_str("...");
    }
    s
}

impl Index {
    /// Index `text` (the note desc bytes). Never fails; odd lines become [`Diagnostic`]s.
    /// Time and memory are linear in the text length.
    pub fn build(text: &[u8]) -> Index {
        let mut b = Builder { text, diagnostics: Vec::new(), dropped: false };

        // Where the text ends: the size cap, then a NUL (padding if only NULs follow it).
        let mut end = text.len();
        if end > MAX_TEXT_LEN {
            end = MAX_TEXT_LEN;
            b.diag(
                0,
                0,
                DiagKind::TextTooLong,
                format!("text of {} bytes is longer than {MAX_TEXT_LEN}; only the first {MAX_TEXT_LEN} are indexed", text.len()),
            );
        }
        if let Some(nul) = memchr::memchr(0, &text[..end]) {
            if text[nul..].iter().any(|&c| c != 0) {
                let line = 1 + memchr::memchr_iter(b'\n', &text[..nul]).count() as u32;
                b.diag(
                    nul,
                    line,
                    DiagKind::NulInText,
                    format!("NUL byte at offset {nul} followed by more data; the text ends there"),
                );
            }
            end = nul;
        }
        let body = &text[..end];
        // One pass of a SIMD check spares the per-line UTF-8 validation in the usual case.
        let all_ascii = body.is_ascii();

        let mut entries: Vec<Entry> = Vec::with_capacity((end / 24).clamp(4, 1 << 16));
        let mut line_no = 0u32;
        let mut line_start = 0usize;
        // memchr finds each '\n'; a second, short memchr finds the line's first '='.
        for p in memchr::memchr_iter(b'\n', body) {
            line_no = line_no.saturating_add(1);
            let eq = memchr::memchr(b'=', &body[line_start..p]).map(|i| line_start + i);
            b.line(&mut entries, line_start, p, true, eq, line_no, all_ascii);
            line_start = p + 1;
        }
        let missing_final_newline = line_start < end;
        if missing_final_newline {
            line_no = line_no.saturating_add(1);
            let eq = memchr::memchr(b'=', &body[line_start..end]).map(|i| line_start + i);
            b.line(&mut entries, line_start, end, false, eq, line_no, all_ascii);
        }

        // Hash table of first occurrences; later duplicates are dropped from `entries`.
        let cap = (entries.len() * 2).next_power_of_two().max(8);
        let mask = cap - 1;
        let mut slots = vec![EMPTY_SLOT; cap];
        let mut kept = 0usize;
        let mut had_duplicates = false;
        for i in 0..entries.len() {
            let e = entries[i];
            let key = &body[e.key_range()];
            let h = hash_key(key);
            let tag = h & !0xffff_ffff;
            let mut s = h as usize & mask;
            let dup_of = loop {
                let slot = slots[s];
                if slot == EMPTY_SLOT {
                    break None;
                }
                if slot & !0xffff_ffff == tag {
                    let other = entries[(slot & 0xffff_ffff) as usize];
                    if &body[other.key_range()] == key {
                        break Some(other);
                    }
                }
                s = (s + 1) & mask;
            };
            match dup_of {
                None => {
                    slots[s] = slot_of(kept, h);
                    entries[kept] = e;
                    kept += 1;
                }
                Some(first) => {
                    had_duplicates = true;
                    b.diag(
                        e.key_start as usize,
                        e.line,
                        DiagKind::DuplicateKey,
                        format!(
                            "key {} on line {} repeats line {}; the first value is used",
                            b.excerpt(e.key_range()),
                            e.line,
                            first.line
                        ),
                    );
                }
            }
        }
        entries.truncate(kept);

        let mut diagnostics = b.diagnostics;
        if had_duplicates {
            diagnostics.sort_by_key(|d| (d.kind == DiagKind::TooManyDiagnostics, d.offset));
        }
        Index { entries, slots, diagnostics, text_len: end, missing_final_newline }
    }

    /// A view pairing this index with the text it was built from.
    ///
    /// `text` must be the bytes given to [`Index::build`]; with other bytes the lookups give
    /// nonsense (but never panic).
    pub fn view<'a>(&'a self, text: &'a [u8]) -> View<'a> {
        View { text, index: self }
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the text holds no `KEY=VALUE` line at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The diagnostics, in text order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Length of the text proper: bytes before the NUL padding (or before a stray NUL).
    pub fn text_len(&self) -> usize {
        self.text_len
    }

    /// Whether the last line had no `'\n'` (the kernel ends every line with one).
    pub fn missing_final_newline(&self) -> bool {
        self.missing_final_newline
    }

    fn find(&self, text: &[u8], key: &[u8]) -> Option<Entry> {
        let mask = self.slots.len().checked_sub(1)?;
        let h = hash_key(key);
        let tag = h & !0xffff_ffff;
        let mut s = h as usize & mask;
        // At most `slots.len()` probes: the table is never full, but do not rely on it.
        for _ in 0..self.slots.len() {
            let slot = *self.slots.get(s)?;
            if slot == EMPTY_SLOT {
                return None;
            }
            if slot & !0xffff_ffff == tag {
                let e = *self.entries.get((slot & 0xffff_ffff) as usize)?;
                if text.get(e.key_range()) == Some(key) {
                    return Some(e);
                }
            }
            s = (s + 1) & mask;
        }
        None
    }
}

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
    text: &'a [u8],
    index: &'a Index,
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
            line: e.line,
        }
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
        self.item_for(key).map(|i| i.value)
    }

    /// The value of `key`, decoded lossily as UTF-8.
    pub fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).map(String::from_utf8_lossy)
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
        item: Option<Item<'a>>,
        parse: impl FnOnce(&[u8]) -> std::result::Result<T, &'static str>,
    ) -> Result<Option<T>> {
        let Some(item) = item else { return Ok(None) };
        match parse(item.value) {
            Ok(v) => Ok(Some(v)),
            Err(why) => Err(Error::format(
                u64::from(item.value_offset),
                format!("{}={}: {why}", String::from_utf8_lossy(item.key).escape_debug(), excerpt(item.value)),
            )
            .in_text()),
        }
    }

    fn parsed_key<T>(
        &self,
        parts: &[&[u8]],
        parse: impl FnOnce(&[u8]) -> std::result::Result<T, &'static str>,
    ) -> Result<Option<T>> {
        let item = with_key(parts, |k| self.item_bytes(k));
        self.parsed(item, parse)
    }

    /// Any key's value as unsigned decimal.
    pub fn get_udec(&self, key: &str) -> Result<Option<u64>> {
        self.parsed(self.item_for(key), parse_udec)
    }

    /// Any key's value as hexadecimal without `0x` (a `0x` prefix is tolerated).
    pub fn get_hex(&self, key: &str) -> Result<Option<u64>> {
        self.parsed(self.item_for(key), parse_hex)
    }

    /// Any key's value as a kernel NUMBER: signed decimal or `0x` hexadecimal (see [`parse_number`]).
    pub fn get_number(&self, key: &str) -> Result<Option<i128>> {
        self.parsed(self.item_for(key), parse_number)
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
        self.parsed(self.item_for("BUILD-ID"), parse_hex_bytes)
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
        self.parsed(self.item_for("CRASHTIME"), parse_idec)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const X86: &[u8] = include_bytes!("../tests/fixtures/x86_64.VMCOREINFO.txt");
    const ARM: &[u8] = include_bytes!("../tests/fixtures/arm64.VMCOREINFO.txt");

    fn kinds(ix: &Index) -> Vec<&'static str> {
        ix.diagnostics().iter().map(|d| d.kind.name()).collect()
    }

    #[test]
    fn x86_64_fixture() {
        let ix = Index::build(X86);
        assert!(ix.diagnostics().is_empty(), "{:?}", ix.diagnostics());
        assert!(!ix.missing_final_newline());
        assert_eq!(ix.text_len(), X86.len());
        let v = ix.view(X86);
        assert_eq!(v.len(), 108);
        assert_eq!(v.osrelease().as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(v.build_id().as_deref(), Some("3b43fad5034874490492495d552c0af6a5fab235"));
        let id = v.build_id_bytes().unwrap().unwrap();
        assert_eq!(id.len(), 20);
        assert_eq!(&id[..3], &[0x3b, 0x43, 0xfa]);
        assert_eq!(v.page_size().unwrap(), Some(4096));
        assert_eq!(v.phys_base().unwrap(), Some(-205520896));
        assert_eq!(v.phys_base().unwrap(), Some(-0xc400000));
        assert_eq!(v.kernel_offset().unwrap(), Some(0x12800000));
        assert_eq!(v.symbol("_stext").unwrap(), Some(0xffffffff93800000));
        assert_eq!(v.symbol("init_uts_ns").unwrap(), Some(0xffffffff953f9b60));
        assert_eq!(v.offset("uts_namespace", "name").unwrap(), Some(0));
        assert_eq!(v.offset("page", "_refcount").unwrap(), Some(52));
        assert_eq!(v.size("pglist_data").unwrap(), Some(174208));
        assert_eq!(v.length("mem_section").unwrap(), Some(2048));
        assert_eq!(v.number("pgtable_l5_enabled").unwrap(), Some(0));
        assert_eq!(v.number("SECTION_SIZE_BITS").unwrap(), Some(27));
        assert_eq!(v.crashtime().unwrap(), None);
        assert_eq!(v.symbol("no_such_symbol").unwrap(), None);
        // Text order, first key first.
        let first = v.iter().next().unwrap();
        assert_eq!(first, (&b"OSRELEASE"[..], &b"6.1.0-56-cloud-amd64"[..]));
        let last = v.items().last().unwrap();
        assert_eq!(last.key, b"NUMBER(sme_mask)");
        assert_eq!(last.line, 108);
        // Offsets point into the text.
        let it = v.item_for("PAGESIZE").unwrap();
        assert_eq!(&X86[it.value_offset as usize..][..4], b"4096");
        assert_eq!(&X86[it.key_offset as usize..][..9], b"PAGESIZE=");
    }

    #[test]
    fn arm64_fixture() {
        let ix = Index::build(ARM);
        assert!(ix.diagnostics().is_empty(), "{:?}", ix.diagnostics());
        let v = ix.view(ARM);
        assert_eq!(v.len(), 113);
        assert_eq!(v.osrelease().as_deref(), Some("6.1.0-56-cloud-arm64"));
        assert_eq!(v.page_size().unwrap(), Some(4096));
        assert_eq!(v.kernel_offset().unwrap(), Some(0x444d58600000));
        assert_eq!(v.symbol("swapper_pg_dir").unwrap(), Some(0xffffc44d6198f000));
        assert_eq!(v.number("VA_BITS").unwrap(), Some(48));
        assert_eq!(v.number("kimage_voffset").unwrap(), Some(0xffffc44d20400000));
        assert_eq!(v.number("PHYS_OFFSET").unwrap(), Some(0xffffa74000000000));
        assert_eq!(v.number("TCR_EL1_T1SZ").unwrap(), Some(0x10));
        assert_eq!(v.number("KERNELPACMASK").unwrap(), Some(0));
        assert_eq!(v.number("PAGE_BUDDY_MAPCOUNT_VALUE").unwrap(), Some(-129));
        assert_eq!(v.number("VMALLOC_END").unwrap(), Some(0xfffffbfff0000000));
        assert_eq!(v.offset("page", "flags").unwrap(), Some(0));
        assert_eq!(v.phys_base().unwrap(), None);
        assert_eq!(v.config("X86_PAE").unwrap(), None);
    }

    #[test]
    fn nul_padding_ends_text_silently() {
        let mut t = X86.to_vec();
        t.extend_from_slice(&[0; 37]);
        let ix = Index::build(&t);
        assert!(ix.diagnostics().is_empty());
        assert_eq!(ix.text_len(), X86.len());
        assert_eq!(ix.len(), 108);
        assert_eq!(ix.view(&t).text(), X86);
    }

    #[test]
    fn nul_inside_text_ends_it_with_diagnostic() {
        let t = b"A=1\nB=2\0C=3\nD=4\n";
        let ix = Index::build(t);
        assert_eq!(kinds(&ix), ["nul-in-text"]);
        let d = &ix.diagnostics()[0];
        assert_eq!((d.offset, d.line), (7, 2));
        assert_eq!(ix.text_len(), 7);
        let v = ix.view(t);
        assert_eq!(v.get("B"), Some(&b"2"[..]));
        assert_eq!(v.get("C"), None);
        assert!(ix.missing_final_newline());
    }

    #[test]
    fn missing_final_newline_is_flagged_not_diagnosed() {
        let ix = Index::build(b"A=1\nB=2");
        assert!(ix.diagnostics().is_empty());
        assert!(ix.missing_final_newline());
        assert_eq!(ix.view(b"A=1\nB=2").get("B"), Some(&b"2"[..]));
        assert!(!Index::build(b"A=1\n").missing_final_newline());
        assert!(!Index::build(b"").missing_final_newline());
        assert!(Index::build(b"").is_empty());
    }

    #[test]
    fn lines_without_equals_and_empty_lines() {
        let t = b"\n\nA=1\njunk\n\n=nokey\nB=\n";
        let ix = Index::build(t);
        assert_eq!(kinds(&ix), ["no-equals", "empty-key"]);
        assert_eq!(ix.diagnostics()[0].line, 4);
        assert_eq!(ix.diagnostics()[0].offset, 6);
        let v = ix.view(t);
        assert_eq!(v.len(), 2);
        assert_eq!(v.get("B"), Some(&b""[..]));
        assert_eq!(v.get_udec("B").unwrap_err().kind, ErrorKind::Format);
    }

    #[test]
    fn long_line_diagnostic_boundary() {
        // 78 content bytes + '\n' = 79: what the kernel can write.
        let ok = format!("K={}\n", "x".repeat(76));
        assert!(Index::build(ok.as_bytes()).diagnostics().is_empty());
        let long = format!("K={}\n", "x".repeat(77));
        let ix = Index::build(long.as_bytes());
        assert_eq!(kinds(&ix), ["long-line"]);
        assert_eq!(ix.view(long.as_bytes()).get("K").map(|v| v.len()), Some(77));
        // Without a newline, 79 bytes is a possible (cut) kernel line; 80 is not.
        let cut = format!("K={}", "x".repeat(77));
        assert!(Index::build(cut.as_bytes()).diagnostics().is_empty());
        let over = format!("K={}", "x".repeat(78));
        assert_eq!(kinds(&Index::build(over.as_bytes())), ["long-line"]);
    }

    #[test]
    fn duplicate_key_first_wins() {
        let t = b"A=1\nB=2\nA=3\nC=4\nA=5\n";
        let ix = Index::build(t);
        assert_eq!(kinds(&ix), ["duplicate-key", "duplicate-key"]);
        assert_eq!(ix.diagnostics()[0].line, 3);
        assert!(ix.diagnostics()[0].message.contains("key A on line 3 repeats line 1"), "{}", ix.diagnostics()[0].message);
        let v = ix.view(t);
        assert_eq!(v.get("A"), Some(&b"1"[..]));
        let keys: Vec<_> = v.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"A"[..], b"B", b"C"]);
        assert_eq!(v.get("C"), Some(&b"4"[..]));
    }

    #[test]
    fn diagnostics_stay_in_text_order_with_duplicates() {
        let t = b"A=1\nA=2\njunk\n";
        let ix = Index::build(t);
        assert_eq!(kinds(&ix), ["duplicate-key", "no-equals"]);
    }

    #[test]
    fn non_utf8_kept_as_bytes() {
        let t = b"OSRELEASE=6.1\xff\nB=\xc3\xa9\n";
        let ix = Index::build(t);
        assert_eq!(kinds(&ix), ["non-utf8"]);
        let v = ix.view(t);
        assert_eq!(v.get("OSRELEASE"), Some(&b"6.1\xff"[..]));
        assert_eq!(v.osrelease().as_deref(), Some("6.1\u{fffd}"));
        assert_eq!(v.get_str("B").as_deref(), Some("é"));
    }

    #[test]
    fn carriage_return_stripped() {
        let t = b"A=1\r\nB=2\r";
        let ix = Index::build(t);
        assert_eq!(kinds(&ix), ["carriage-return", "carriage-return"]);
        let v = ix.view(t);
        assert_eq!(v.get_udec("A").unwrap(), Some(1));
        assert_eq!(v.get_udec("B").unwrap(), Some(2));
        // '\r' alone on a line: stripped, then an empty line.
        let ix = Index::build(b"\r\nA=1\n");
        assert_eq!(kinds(&ix), ["carriage-return"]);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn key_splits_at_first_equals() {
        let t = b"A=b=c\n";
        let v_ix = Index::build(t);
        let v = v_ix.view(t);
        assert_eq!(v.get("A"), Some(&b"b=c"[..]));
        assert_eq!(v.get("A=b"), None);
    }

    #[test]
    fn phys_base_is_signed_decimal_not_hex() {
        let t = b"NUMBER(phys_base)=-167772160\n";
        let ix = Index::build(t);
        assert_eq!(ix.view(t).phys_base().unwrap(), Some(-0xa000000));
        let t = b"NUMBER(phys_base)=0\n";
        let ix = Index::build(t);
        assert_eq!(ix.view(t).phys_base().unwrap(), Some(0)); // present and zero
        let t = b"NUMBER(phys_base)=0xfffffffff6000000\n";
        let ix = Index::build(t);
        assert_eq!(ix.view(t).phys_base().unwrap(), Some(-0xa000000));
        let t = b"NUMBER(phys_base)=1000000\n";
        let ix = Index::build(t);
        assert_eq!(ix.view(t).phys_base().unwrap(), Some(1_000_000));
        let t = b"NUMBER(phys_base)=ff\n";
        let ix = Index::build(t);
        let e = ix.view(t).phys_base().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format);
        assert_eq!(e.offset(), Some(18));
    }

    #[test]
    fn numeric_errors_carry_value_offset() {
        let t = b"PAGESIZE=4096\nSYMBOL(x)=zz\n";
        let ix = Index::build(t);
        let e = ix.view(t).symbol("x").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format);
        assert_eq!(e.offset(), Some(24));
        assert!(e.message.contains("SYMBOL(x)=zz"), "{}", e.message);
        assert_eq!(e.shifted(1000).offset(), Some(1024));
    }

    #[test]
    fn symbol_tolerates_0x() {
        let t = b"SYMBOL(a)=0xffffffff81000000\nSYMBOL(b)=0X10\nKERNELOFFSET=0\n";
        let ix = Index::build(t);
        let v = ix.view(t);
        assert_eq!(v.symbol("a").unwrap(), Some(0xffffffff81000000));
        assert_eq!(v.symbol("b").unwrap(), Some(0x10));
        assert_eq!(v.kernel_offset().unwrap(), Some(0));
    }

    #[test]
    fn number_forms_and_limits() {
        assert_eq!(parse_number(b"-129"), Ok(-129));
        assert_eq!(parse_number(b"0x0"), Ok(0));
        assert_eq!(parse_number(b"0xffffffffffffffff"), Ok(u64::MAX as i128));
        assert_eq!(parse_number(b"18446744073709551615"), Ok(u64::MAX as i128));
        assert!(parse_number(b"18446744073709551616").is_err());
        assert!(parse_number(b"0x10000000000000000").is_err());
        assert_eq!(parse_number(b"-9223372036854775808"), Ok(i64::MIN as i128));
        assert!(parse_number(b"-9223372036854775809").is_err());
        for bad in [&b""[..], b"-", b"0x", b"-0x", b"+1", b" 1", b"1 ", b"1e3", b"--1", b"0x-1"] {
            assert!(parse_number(bad).is_err(), "{:?}", bad);
        }
        assert_eq!(parse_udec(b"18446744073709551615"), Ok(u64::MAX));
        assert!(parse_udec(b"18446744073709551616").is_err());
        assert!(parse_udec(b"-1").is_err());
        assert!(parse_udec(b"").is_err());
        assert!(parse_hex(b"0x").is_err());
        assert!(parse_hex(b"").is_err());
        assert!(parse_hex(b"1ffffffffffffffff").is_err());
        assert_eq!(parse_hex(b"FFFFffffFFFFffff"), Ok(u64::MAX));
        assert_eq!(parse_idec(b"-5"), Ok(-5));
        assert!(parse_idec(b"9223372036854775808").is_err());
        let long = vec![b'9'; 10_000];
        assert!(parse_number(&long).is_err());
        assert!(parse_udec(&long).is_err());
        assert!(parse_hex(&long).is_err());
    }

    #[test]
    fn config_values() {
        let t = b"CONFIG_X86_PAE=y\nCONFIG_A=n\nCONFIG_B=m\nCONFIG_C=\n";
        let ix = Index::build(t);
        let v = ix.view(t);
        assert_eq!(v.config("X86_PAE").unwrap(), Some(true));
        assert_eq!(v.config("CONFIG_X86_PAE").unwrap(), Some(true));
        assert_eq!(v.config("A").unwrap(), Some(false));
        assert_eq!(v.config("B").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(v.config("C").unwrap_err().kind, ErrorKind::Format);
        assert_eq!(v.config("D").unwrap(), None);
    }

    #[test]
    fn crashtime_and_build_id_errors() {
        let t = b"CRASHTIME=1700000000\nBUILD-ID=abc\n";
        let ix = Index::build(t);
        let v = ix.view(t);
        assert_eq!(v.crashtime().unwrap(), Some(1_700_000_000));
        assert_eq!(v.build_id().as_deref(), Some("abc"));
        assert_eq!(v.build_id_bytes().unwrap_err().kind, ErrorKind::Format);
        let t = b"BUILD-ID=zz\n";
        let ix = Index::build(t);
        assert!(ix.view(t).build_id_bytes().is_err());
        let t = b"OSRELEASE=x\n";
        let ix = Index::build(t);
        assert_eq!(ix.view(t).build_id_bytes().unwrap(), None);
    }

    #[test]
    fn long_keys_lookup_uses_heap_path() {
        let name = "n".repeat(300);
        let t = format!("SYMBOL({name})=10\n");
        let ix = Index::build(t.as_bytes());
        assert_eq!(ix.view(t.as_bytes()).symbol(&name).unwrap(), Some(0x10));
    }

    #[test]
    fn windows_header_detection() {
        assert!(is_windows_dump_header(b"PAGEDU64\0\0\0\0"));
        assert!(is_windows_dump_header(b"PAGEDUMP"));
        assert!(!is_windows_dump_header(b"PAGEDU6"));
        assert!(!is_windows_dump_header(b"OSRELEASE=6.1\n"));
        assert!(!is_windows_dump_header(b""));
    }

    #[test]
    fn view_with_wrong_text_does_not_panic() {
        let ix = Index::build(X86);
        let v = ix.view(b"short");
        let _ = v.osrelease();
        let _ = v.page_size();
        assert_eq!(v.items().count(), 108);
        let _ = v.text();
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        // 1 MiB of pseudo-random bytes.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let garbage: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let ix = Index::build(&garbage);
        assert!(ix.diagnostics().len() <= MAX_DIAGNOSTICS + 1);
        let v = ix.view(&garbage);
        for it in v.items() {
            let _ = parse_number(it.value);
        }
        // The same with no NULs.
        let nonul: Vec<u8> = garbage.iter().map(|&c| c.max(1)).collect();
        let ix = Index::build(&nonul);
        assert_eq!(ix.text_len(), nonul.len());
        assert_eq!(ix.diagnostics().last().map(|d| d.kind), Some(DiagKind::TooManyDiagnostics));

        // 100k lines, many distinct, many duplicates.
        let mut t = Vec::new();
        for i in 0..100_000u32 {
            t.extend_from_slice(format!("SYMBOL(s{})={:x}\n", i % 60_000, i).as_bytes());
        }
        let ix = Index::build(&t);
        assert_eq!(ix.len(), 60_000);
        let v = ix.view(&t);
        assert_eq!(v.symbol("s59999").unwrap(), Some(59_999));
        assert_eq!(v.symbol("s1").unwrap(), Some(1));

        // All '=', all '\n', all '\r'.
        let eq = vec![b'='; 1 << 20];
        let ix = Index::build(&eq);
        assert_eq!(ix.len(), 0);
        assert_eq!(kinds(&ix), ["long-line", "empty-key"]);
        let nl = vec![b'\n'; 1 << 20];
        assert!(Index::build(&nl).diagnostics().is_empty());
        let cr = vec![b'\r'; 1 << 16];
        let ix = Index::build(&cr);
        assert_eq!(ix.len(), 0);
        assert_eq!(kinds(&ix), ["carriage-return", "long-line", "no-equals"]);
        let lines = b"=\n".repeat(100_000);
        let ix = Index::build(&lines);
        assert_eq!(ix.diagnostics().len(), MAX_DIAGNOSTICS + 1);
        let keys = b"K=\n".repeat(100_000);
        let ix = Index::build(&keys);
        assert_eq!(ix.len(), 1);

        // Very long numbers.
        let t = format!("PAGESIZE={}\nNUMBER(x)=-{}\n", "9".repeat(5000), "1".repeat(5000));
        let ix = Index::build(t.as_bytes());
        let v = ix.view(t.as_bytes());
        assert!(v.page_size().is_err());
        assert!(v.number("x").is_err());
        let t = b"PAGESIZE=18446744073709551616\nNUMBER(a)=-\nNUMBER(b)=0x\nSYMBOL(c)=\n";
        let ix = Index::build(t);
        let v = ix.view(t);
        assert!(v.page_size().is_err());
        assert!(v.number("a").is_err());
        assert!(v.number("b").is_err());
        assert!(v.symbol("c").is_err());
    }

    #[test]
    #[ignore = "timing; run with --release -- --ignored --nocapture"]
    fn bench_build() {
        let n = 200_000;
        let t0 = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..n {
            total += std::hint::black_box(Index::build(std::hint::black_box(X86))).len();
        }
        let per = t0.elapsed() / n;
        println!("Index::build x86_64 fixture ({} bytes): {per:?} per build ({total})", X86.len());
        let ix = Index::build(X86);
        let v = ix.view(X86);
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(v.symbol(std::hint::black_box("_stext")).ok());
        }
        println!("symbol lookup: {:?}", t0.elapsed() / n);
    }
}
