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

use std::fmt;

/// Longest line the kernel can write, counting its `'\n'` (an 80-byte buffer with its NUL).
pub const MAX_KERNEL_LINE: usize = 79;

/// At most this many diagnostics are kept; one [`DiagKind::TooManyDiagnostics`] marks the cut.
pub const MAX_DIAGNOSTICS: usize = 1000;

/// Texts are indexed up to this many bytes (offsets are `u32`); the rest gets a diagnostic.
pub const MAX_TEXT_LEN: usize = u32::MAX as usize;

/// The keys that identify a dump (what batch identification reads, and what `View::osrelease`,
/// `build_id`, `kernel_offset`, `phys_base` and `page_size` look up): see [`Index::build_only`].
pub const IDENTITY_KEYS: [&[u8]; 5] = [b"OSRELEASE", b"BUILD-ID", b"KERNELOFFSET", b"NUMBER(phys_base)", b"PAGESIZE"];

/// Keys for [`Index::build_only`], with their substring searchers built once.
pub struct KeySet {
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl KeySet {
    /// Empty keys, keys holding `'='` or `'\n'` (never a key of the text) and repeats are left out.
    pub fn new(keys: &[&[u8]]) -> KeySet {
        let mut finders: Vec<memchr::memmem::Finder<'static>> = Vec::with_capacity(keys.len());
        for key in keys {
            if key.is_empty() || key.contains(&b'=') || key.contains(&b'\n') {
                continue;
            }
            let pat = [*key, b"="].concat();
            if finders.iter().all(|f| f.needle() != pat.as_slice()) {
                finders.push(memchr::memmem::Finder::new(&pat).into_owned());
            }
        }
        KeySet { finders }
    }

    /// [`IDENTITY_KEYS`], built once per process.
    pub fn identity() -> &'static KeySet {
        static SET: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
        SET.get_or_init(|| KeySet::new(&IDENTITY_KEYS))
    }
}

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

    /// The hash table of the first occurrence of each key of `entries` (keys in `body`); later
    /// duplicates are dropped from `entries`, each with a diagnostic. Also says whether there
    /// were any.
    fn keep_first_occurrences(&mut self, body: &[u8], entries: &mut Vec<Entry>) -> (Vec<u64>, bool) {
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
                    self.diag(
                        e.key_start as usize,
                        e.line,
                        DiagKind::DuplicateKey,
                        format!(
                            "key {} on line {} repeats line {}; the first value is used",
                            self.excerpt(e.key_range()),
                            e.line,
                            first.line
                        ),
                    );
                }
            }
        }
        entries.truncate(kept);
        (slots, had_duplicates)
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

        let (slots, had_duplicates) = b.keep_first_occurrences(body, &mut entries);

        let mut diagnostics = b.diagnostics;
        if had_duplicates {
            diagnostics.sort_by_key(|d| (d.kind == DiagKind::TooManyDiagnostics, d.offset));
        }
        Index { entries, slots, diagnostics, text_len: end, missing_final_newline }
    }

    /// Index only the first occurrence of each key of `keys`, for a caller that will look up
    /// those keys and nothing else (identification wants five values out of ~100 lines). Every
    /// lookup of one of them through [`Index::view`] gives what the full [`Index::build`] gives
    /// (value, line, offsets, so the same errors); other keys are absent, and there are no
    /// diagnostics. Line numbers are counted only when an [`Item`] is asked for (errors give
    /// offsets). The text is searched once per key (memchr's SIMD substring search, with
    /// searchers built once per [`KeySet`]), not split into lines.
    pub fn build_only(text: &[u8], keys: &KeySet) -> Index {
        let mut end = text.len().min(MAX_TEXT_LEN);
        if let Some(nul) = memchr::memchr(0, &text[..end]) {
            end = nul;
        }
        let body = &text[..end];
        let mut entries: Vec<Entry> = Vec::with_capacity(keys.finders.len());
        for f in &keys.finders {
            // `KEY=` at the start of a line is a line whose first '=' ends exactly `KEY` (a key
            // holds no '='): what the line splitter makes an entry of.
            let found = f.find_iter(body).find(|&at| at == 0 || body[at - 1] == b'\n');
            let Some(start) = found else { continue };
            let eq = start + f.needle().len() - 1;
            let line_end = memchr::memchr(b'\n', &body[eq..]).map_or(end, |i| eq + i);
            let value_end = if line_end > eq + 1 && body[line_end - 1] == b'\r' { line_end - 1 } else { line_end };
            entries.push(Entry { key_start: start as u32, eq: eq as u32, value_end: value_end as u32, line: 0 });
        }
        // Text order; line numbers are counted when an item is asked for (`line: 0`).
        entries.sort_by_key(|e| e.key_start);
        let missing_final_newline = end > 0 && body[end - 1] != b'\n';
        // No hash table: `find` compares the few entries one by one.
        Index { entries, slots: Vec::new(), diagnostics: Vec::new(), text_len: end, missing_final_newline }
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
        if self.slots.is_empty() {
            // A `build_only` index (a few keys), or an empty one.
            return self.entries.iter().find(|e| text.get(e.key_range()) == Some(key)).copied();
        }
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

mod view;
pub use view::*;

#[cfg(test)]
mod tests;
