//! The kernel's symbol table (kallsyms), decoded from the tables VMCOREINFO names (Linux 6.0+):
//! `SYMBOL(kallsyms_num_syms, kallsyms_names, kallsyms_token_table, kallsyms_token_index)` and
//! either `SYMBOL(kallsyms_offsets)` (with `SYMBOL(kallsyms_relative_base)` before 7.0) or
//! `SYMBOL(kallsyms_addresses)`.
//!
//! The offsets encoding is not in VMCOREINFO; it is found by reproducing `SYMBOL(_stext)` from
//! `_stext`'s entry: base-relative (`relative_base + (u32)off`), absolute-percpu (x86_64 until
//! 6.15: `off >= 0 ? off : relative_base - 1 - off`) or place-relative (7.0+:
//! `&kallsyms_offsets[i] + (s32)off`).
//!
//! The tables are read in a few large reads (the names in growing chunks, since their end is not
//! in VMCOREINFO), then decoded in memory. Every size is bounded ([`SymLimits`]).
//!
//! Kernels before 6.0 do not name the tables in VMCOREINFO: [`discover`] finds them in the
//! kernel image by their structure, and the result is accepted only when the VMCOREINFO
//! symbols (`_stext`, `init_uts_ns`, `swapper_pg_dir`, ...) decode to their VMCOREINFO
//! addresses ([`KernelSymbols::source`] says which way they were found).

use std::sync::OnceLock;

use crate::error::{ErrorKind, Result};
use crate::kview::printk::missing;
use crate::kview::{bad_virt as bad, too_big_virt as too_big, VirtMemory};
use crate::text::View;

/// Bounds on what decoding may allocate.
#[derive(Debug, Clone, Copy)]
pub struct SymLimits {
    /// Most symbols accepted (`kallsyms_num_syms`); real kernels have 40k–300k.
    pub max_symbols: u32,
    /// Largest compressed names table read, in bytes.
    pub max_names_bytes: usize,
    /// Most bytes of decoded names kept (below 4 GiB).
    pub max_decoded_bytes: usize,
}

impl Default for SymLimits {
    fn default() -> Self {
        SymLimits { max_symbols: 1 << 22, max_names_bytes: 64 << 20, max_decoded_bytes: 256 << 20 }
    }
}

/// Where the tables' addresses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SymbolSource {
    /// `SYMBOL(kallsyms_*)` in VMCOREINFO (Linux 6.0+).
    Vmcoreinfo,
    /// A scan of the kernel image for the tables' structure, checked against VMCOREINFO's
    /// `SYMBOL()`s.
    Scan,
}

impl SymbolSource {
    pub fn name(self) -> &'static str {
        match self {
            SymbolSource::Vmcoreinfo => "vmcoreinfo",
            SymbolSource::Scan => "scan",
        }
    }
    /// The source called `name` (as [`name`](Self::name) spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "vmcoreinfo" => Some(SymbolSource::Vmcoreinfo),
            "scan" => Some(SymbolSource::Scan),
            _ => None,
        }
    }
}

/// How `kallsyms_offsets` encodes addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressMode {
    /// `kallsyms_relative_base + (u32)offset`.
    BaseRelative,
    /// `offset >= 0 ? offset : kallsyms_relative_base - 1 - offset` (x86_64 with per-CPU symbols).
    AbsolutePercpu,
    /// `&kallsyms_offsets[i] + (s32)offset` (7.0+).
    PlaceRelative,
    /// A table of absolute addresses (`kallsyms_addresses`, no `CONFIG_KALLSYMS_BASE_RELATIVE`).
    Absolute,
}

impl AddressMode {
    pub fn name(self) -> &'static str {
        match self {
            AddressMode::BaseRelative => "base-relative",
            AddressMode::AbsolutePercpu => "absolute-percpu",
            AddressMode::PlaceRelative => "place-relative",
            AddressMode::Absolute => "absolute",
        }
    }
}

/// The decoded symbol table, in kallsyms order (ascending address, as the kernel sorts it).
pub struct KernelSymbols {
    /// Every name, concatenated (without the type character).
    names: Vec<u8>,
    /// End of each name in `names` (the start is the previous end).
    ends: Vec<u32>,
    addrs: Vec<u64>,
    types: Vec<u8>,
    mode: AddressMode,
    source: SymbolSource,
    /// Indexes sorted by (address, index), built on the first lookup by address.
    by_addr: OnceLock<Vec<u32>>,
    /// Open-addressing table of `index + 1` by name hash (first index of each name), built on
    /// the first lookup by name.
    by_name: OnceLock<Vec<u32>>,
}

impl std::fmt::Debug for KernelSymbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelSymbols({} symbols, {}, from {})", self.len(), self.mode.name(), self.source.name())
    }
}

impl KernelSymbols {
    pub fn len(&self) -> usize {
        self.addrs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
    /// The address encoding found.
    pub fn mode(&self) -> AddressMode {
        self.mode
    }
    /// How the tables were found.
    pub fn source(&self) -> SymbolSource {
        self.source
    }
    /// Name (bytes, normally ASCII) of symbol `i`.
    pub fn name(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.names[start..self.ends[i] as usize]
    }
    pub fn address_of(&self, i: usize) -> u64 {
        self.addrs[i]
    }
    /// The `nm` type character of symbol `i` (`T`, `t`, `D`, ...).
    pub fn type_of(&self, i: usize) -> u8 {
        self.types[i]
    }
    /// `(name, address, type)` of every symbol, in table order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], u64, u8)> + '_ {
        (0..self.len()).map(move |i| (self.name(i), self.addrs[i], self.types[i]))
    }

    /// Address of the first symbol named `name` (in table order).
    pub fn address(&self, name: &[u8]) -> Option<u64> {
        self.index_of(name).map(|i| self.addrs[i])
    }

    /// Index of the first symbol named `name` (in table order).
    pub fn index_of(&self, name: &[u8]) -> Option<usize> {
        let table = self.by_name.get_or_init(|| {
            let size = (self.len() * 2).next_power_of_two().max(16);
            let mut t = vec![0u32; size];
            for i in 0..self.len() {
                let mut slot = fnv1a(self.name(i)) as usize & (size - 1);
                loop {
                    match t[slot] {
                        0 => {
                            t[slot] = i as u32 + 1;
                            break;
                        }
                        j if self.name(j as usize - 1) == self.name(i) => break,
                        _ => slot = (slot + 1) & (size - 1),
                    }
                }
            }
            t
        });
        let mask = table.len() - 1;
        let mut slot = fnv1a(name) as usize & mask;
        loop {
            match table[slot] {
                0 => return None,
                j if self.name(j as usize - 1) == name => return Some(j as usize - 1),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// The symbol at or nearest below `addr`: `(index, offset)`. Among symbols at one address the
    /// first in table order wins.
    pub fn lookup(&self, addr: u64) -> Option<(usize, u64)> {
        let order = self.by_addr.get_or_init(|| {
            let mut v: Vec<u32> = (0..self.len() as u32).collect();
            if !self.addrs.is_sorted() {
                v.sort_by_key(|&i| (self.addrs[i as usize], i));
            }
            v
        });
        // The first position whose address is above addr; the one before it is at or below.
        let pos = order.partition_point(|&i| self.addrs[i as usize] <= addr);
        let last = *order.get(pos.checked_sub(1)?)? as usize;
        let a = self.addrs[last];
        // The first of the run of symbols at that address.
        let first = order[..pos].partition_point(|&i| self.addrs[i as usize] < a);
        let i = order[first] as usize;
        Some((i, addr - a))
    }
}

/// Longest decoded name accepted (the kernel's KSYM_NAME_LEN is 512).
const MAX_NAME: usize = 4096;

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3))
}

/// A table whose end is not known: read in growing chunks as decoding needs bytes.
struct Chunked<'m> {
    mem: &'m dyn VirtMemory,
    base: u64,
    data: Vec<u8>,
    next_chunk: usize,
    limit: usize,
    what: &'static str,
}

impl<'m> Chunked<'m> {
    fn new(mem: &'m dyn VirtMemory, base: u64, limit: usize, what: &'static str) -> Self {
        Chunked { mem, base, data: Vec::new(), next_chunk: 64 << 10, limit, what }
    }

    /// Make at least `end` bytes available.
    fn ensure(&mut self, end: usize) -> Result<()> {
        if end <= self.data.len() {
            return Ok(());
        }
        if end > self.limit {
            return Err(too_big(self.base, format!("{} exceeds the {}-byte limit", self.what, self.limit)));
        }
        let have = self.data.len();
        let want = (end - have).max(self.next_chunk).min(self.limit - have);
        // Stop the chunk at a page boundary so that a short final read is not wasted.
        let addr = self.base.wrapping_add(have as u64);
        let want = ((addr.wrapping_add(want as u64) & !0xfff).wrapping_sub(addr) as usize).max(end - have).min(want);
        self.data.resize(have + want, 0);
        if let Err(e) = self.mem.read_virt(addr, &mut self.data[have..]) {
            // The chunk ran into memory that is not there; retry with only what is needed.
            self.data.truncate(have);
            if want == end - have || !matches!(e.kind, ErrorKind::Unmapped | ErrorKind::Absent) {
                return Err(e);
            }
            // Up to the end of the page that holds the last byte needed, else just what is needed.
            let page_end = (self.base.wrapping_add(end as u64 - 1) | 0xfff).wrapping_add(1);
            let to_page = (page_end.wrapping_sub(addr) as usize).clamp(end - have, want);
            self.data.resize(have + to_page, 0);
            if self.mem.read_virt(addr, &mut self.data[have..]).is_err() {
                self.data.truncate(have);
                if to_page == end - have {
                    return Err(e);
                }
                self.data.resize(end, 0);
                self.mem.read_virt(addr, &mut self.data[have..]).inspect_err(|_| self.data.truncate(have))?;
            }
        }
        self.next_chunk = (self.next_chunk * 2).min(4 << 20);
        Ok(())
    }
}

struct Tables {
    num: u32,
    num_addr: u64,
    names: u64,
    token_table: u64,
    token_index: u64,
    offsets: Option<u64>,
    relative_base: Option<u64>,
    addresses: Option<u64>,
    stext: u64,
}

fn tables(vi: &View<'_>) -> Result<Tables> {
    const WHAT: &str = "the kernel symbols (kallsyms, Linux 6.0+)";
    let need = |name: &str| -> Result<u64> { vi.symbol(name)?.ok_or_else(|| missing(&format!("SYMBOL({name})"), WHAT)) };
    let t = Tables {
        num: 0,
        names: need("kallsyms_names")?,
        token_table: need("kallsyms_token_table")?,
        token_index: need("kallsyms_token_index")?,
        offsets: vi.symbol("kallsyms_offsets")?,
        relative_base: vi.symbol("kallsyms_relative_base")?,
        addresses: vi.symbol("kallsyms_addresses")?,
        stext: need("_stext")?,
        num_addr: 0,
    };
    if t.offsets.is_none() && t.addresses.is_none() {
        return Err(missing("SYMBOL(kallsyms_offsets) or SYMBOL(kallsyms_addresses)", WHAT));
    }
    // Checked last, as before the scan existed (the messages name the same first missing key).
    Ok(Tables { num_addr: need("kallsyms_num_syms")?, ..t })
}

/// Decode every kernel symbol: from the tables VMCOREINFO names when it names them, else from
/// the tables a scan of the kernel image finds.
pub fn read_symbols(mem: &dyn VirtMemory, vi: &View<'_>, limits: &SymLimits) -> Result<KernelSymbols> {
    read_symbols_from(mem, vi, limits, None)
}

/// [`read_symbols`] from one source (`None`: VMCOREINFO's keys when present, else a scan).
pub fn read_symbols_from(
    mem: &dyn VirtMemory,
    vi: &View<'_>,
    limits: &SymLimits,
    source: Option<SymbolSource>,
) -> Result<KernelSymbols> {
    match source {
        Some(SymbolSource::Vmcoreinfo) => from_vmcoreinfo(mem, vi, limits),
        Some(SymbolSource::Scan) => by_scan(mem, vi, limits),
        None if vi.symbol("kallsyms_names")?.is_some() => from_vmcoreinfo(mem, vi, limits),
        None => by_scan(mem, vi, limits).map_err(|e| {
            let mut m = missing("SYMBOL(kallsyms_names)", "the kernel symbols (kallsyms, Linux 6.0+)");
            m.message = format!("{}; a scan of the kernel image found none either: {}", m.message, e.message);
            m
        }),
    }
}

/// Decode every kernel symbol: the token table, then the names, then the addresses (whose
/// encoding `_stext` decides).
fn from_vmcoreinfo(mem: &dyn VirtMemory, vi: &View<'_>, limits: &SymLimits) -> Result<KernelSymbols> {
    let mut t = tables(vi)?;
    let num_addr = t.num_addr;
    t.num = mem.read_u32(num_addr)?;
    if t.num == 0 {
        return Err(bad(num_addr, "kallsyms_num_syms is 0"));
    }
    if t.num > limits.max_symbols {
        return Err(too_big(num_addr, format!("kallsyms_num_syms {} exceeds the limit of {}", t.num, limits.max_symbols)));
    }
    let tokens = read_token_table(mem, &t)?;
    let names = decode_names(mem, &t, &tokens, limits, Vec::new())?;
    let si = stext_index(&t, &names)?;
    let (addrs, mode) = decode_addresses(mem, &t, si)?;
    Ok(assemble(names, addrs, mode, SymbolSource::Vmcoreinfo))
}

fn stext_index(t: &Tables, names: &Names) -> Result<usize> {
    names.stext.ok_or_else(|| bad(t.names, "kallsyms has no _stext symbol, needed to find the address encoding"))
}

fn assemble(names: Names, addrs: Vec<u64>, mode: AddressMode, source: SymbolSource) -> KernelSymbols {
    let Names { mut names, ends, types, .. } = names;
    names.shrink_to_fit();
    KernelSymbols { names, ends, addrs, types, mode, source, by_addr: OnceLock::new(), by_name: OnceLock::new() }
}

/// The most bytes of the kernel image the scan reads from `_stext`: x86_64's
/// `NUMBER(KERNEL_IMAGE_SIZE)` when given, else 1 GiB (the scan stops earlier, at the first
/// long unmapped stretch past the image's end).
fn image_span(vi: &View<'_>) -> u64 {
    let max = 1u64 << 30;
    match vi.number("KERNEL_IMAGE_SIZE") {
        Ok(Some(n)) if n > 0 => (n as u64).min(max),
        _ => max,
    }
}

/// How many VMCOREINFO `SYMBOL()`s a scanned table must reproduce (the kernel's own
/// `SYMBOL(_stext)` among them): a table that decodes to the wrong addresses cannot.
pub const MIN_AGREEING: usize = 3;

/// Find the tables by their structure ([`discover`]), decode them and check them against
/// VMCOREINFO's `SYMBOL()`s.
fn by_scan(mem: &dyn VirtMemory, vi: &View<'_>, limits: &SymLimits) -> Result<KernelSymbols> {
    let Some(stext) = vi.symbol("_stext")? else {
        return Err(missing("SYMBOL(_stext)", "the kernel symbols by a scan of the kernel image"));
    };
    let f = discover::find(mem, stext, image_span(vi), limits.max_symbols, limits.max_names_bytes)?;
    let mut t = Tables {
        num: f.num,
        num_addr: f.num_addr,
        names: f.names,
        token_table: f.token_table,
        token_index: f.token_index,
        offsets: None,
        relative_base: None,
        addresses: None,
        stext,
    };
    let tokens = read_token_table(mem, &t)?;
    let names = decode_names(mem, &t, &tokens, limits, f.names_bytes)?;
    let si = stext_index(&t, &names)?;
    let (ps, n) = (mem.pointer_size() as u64, u64::from(f.num));
    // Where the address table lies in each layout scripts/kallsyms.c has written.
    let old_rb = f.num_addr.wrapping_sub(ps);
    let new_off = f.token_index.wrapping_add(512);
    let layouts: [(Option<u64>, Option<u64>, Option<u64>); 4] = [
        // Before 6.4: kallsyms_offsets, kallsyms_relative_base, kallsyms_num_syms.
        (Some(old_rb.wrapping_sub((4 * n).next_multiple_of(ps))), Some(old_rb), None),
        // 6.4+: kallsyms_token_index, kallsyms_offsets, kallsyms_relative_base.
        (Some(new_off), Some(new_off.wrapping_add(4 * n).next_multiple_of(ps)), None),
        // 7.0+: no relative base (place-relative offsets).
        (Some(new_off), None, None),
        // No CONFIG_KALLSYMS_BASE_RELATIVE: kallsyms_addresses, kallsyms_num_syms.
        (None, None, Some(f.num_addr.wrapping_sub(n * ps))),
    ];
    let want = vmcoreinfo_symbols(vi);
    let at = first_indexes(&names, &want);
    let mut why = Vec::new();
    for (offsets, relative_base, addresses) in layouts {
        (t.offsets, t.relative_base, t.addresses) = (offsets, relative_base, addresses);
        match decode_addresses(mem, &t, si).map_err(|e| e.message).and_then(|(addrs, mode)| {
            agreement(&want, &at, &addrs)?;
            Ok((addrs, mode))
        }) {
            Ok((addrs, mode)) => return Ok(assemble(names, addrs, mode, SymbolSource::Scan)),
            Err(e) => why.push(e),
        }
    }
    Err(crate::error::Error::missing_symbol(format!(
        "kallsyms tables found by scan (kallsyms_names at {:#x}, {} symbols, token table at {:#x}) but no address \
         table next to them reproduces VMCOREINFO's symbols: {}",
        f.names,
        f.num,
        f.token_table,
        why.join("; ")
    )))
}

/// Every `SYMBOL(name)=address` in the VMCOREINFO text.
fn vmcoreinfo_symbols<'a>(vi: &View<'a>) -> Vec<(&'a [u8], u64)> {
    vi.iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(b"SYMBOL(")?.strip_suffix(b")")?;
            Some((name, crate::text::parse_hex(v).ok()?))
        })
        .collect()
}

/// The first index in kallsyms of each of `want`'s names (one pass over the names).
fn first_indexes(names: &Names, want: &[(&[u8], u64)]) -> Vec<Option<usize>> {
    let mut at = vec![None; want.len()];
    let mut start = 0usize;
    for (i, &end) in names.ends.iter().enumerate() {
        let name = &names.names[start..end as usize];
        start = end as usize;
        for (j, w) in want.iter().enumerate() {
            if at[j].is_none() && w.0 == name {
                at[j] = Some(i);
            }
        }
    }
    at
}

/// Check decoded addresses against every VMCOREINFO `SYMBOL(name)` that kallsyms also has:
/// `_stext` must agree, and at least [`MIN_AGREEING`] must; or, when kallsyms holds fewer of
/// them (no `CONFIG_KALLSYMS_ALL`: only text symbols), every one it holds must agree and the
/// addresses must ascend as the kernel sorts them. (Some keys legitimately differ:
/// `SYMBOL(mem_section)` is the pointer's value with SPARSEMEM_EXTREME.) Returns how many agree.
fn agreement(want: &[(&[u8], u64)], at: &[Option<usize>], addrs: &[u64]) -> std::result::Result<usize, String> {
    let (mut agree, mut differ) = (Vec::new(), Vec::new());
    for (&(name, addr), i) in want.iter().zip(at) {
        let Some(i) = *i else { continue };
        let name = String::from_utf8_lossy(name);
        if addrs.get(i) == Some(&addr) {
            agree.push(name);
        } else {
            differ.push(name);
        }
    }
    let stext = agree.iter().any(|n| n == "_stext");
    let enough = agree.len() >= MIN_AGREEING;
    let all_of_few = agree.len() + differ.len() < MIN_AGREEING && differ.is_empty() && addrs.is_sorted();
    if !stext || !(enough || all_of_few) {
        return Err(format!(
            "{} VMCOREINFO symbols agree ({}), {} differ ({}); needed _stext and {MIN_AGREEING} in all (or all \
             of fewer, in ascending addresses)",
            agree.len(),
            agree.join(", "),
            differ.len(),
            differ.join(", ")
        ));
    }
    Ok(agree.len())
}

/// `kallsyms_token_table`: the 256 tokens a name byte stands for.
struct Tokens {
    /// The table, up to the end of its last token.
    table: Vec<u8>,
    /// Each token's `[start, end)` in `table`.
    spans: Vec<(usize, usize)>,
    /// Each token's first 16 bytes (zero-padded) and its length.
    first16: [[u8; 16]; 256],
    len: [usize; 256],
}

impl Tokens {
    /// Expand one name's token codes into `buf` (room for `2 * MAX_NAME + 16 + 1` bytes): its
    /// length, `None` past `MAX_NAME` bytes. Tokens of up to 16 bytes (all real ones) are copied
    /// as one 16-byte block, then the cursor advances by their length.
    fn expand(&self, codes: &[u8], buf: &mut [u8]) -> Option<usize> {
        let mut w = 0;
        for &b in codes {
            // A name past MAX_NAME is refused before the next token is copied; the buffer has
            // room for one more token of any length (tokens are at most 4096 bytes).
            if w > MAX_NAME {
                return None;
            }
            let l = self.len[b as usize];
            if l <= 16 {
                buf[w..w + 16].copy_from_slice(&self.first16[b as usize]);
            } else {
                let (s, e) = self.spans[b as usize];
                buf[w..w + l].copy_from_slice(&self.table[s..e]);
            }
            w += l;
        }
        (w <= MAX_NAME).then_some(w)
    }
}

/// The token index (256 `u16`) and the token table up to the end of its last token.
fn read_token_table(mem: &dyn VirtMemory, t: &Tables) -> Result<Tokens> {
    let big = mem.big_endian();
    let mut idx_raw = [0u8; 512];
    mem.read_virt(t.token_index, &mut idx_raw)?;
    let token_off: Vec<usize> = idx_raw
        .chunks_exact(2)
        .map(|c| if big { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) } as usize)
        .collect();
    let max_off = *token_off.iter().max().unwrap_or(&0);
    let mut tt = Chunked::new(mem, t.token_table, 1 << 20, "kallsyms_token_table");
    tt.ensure(max_off + 1)?;
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(256);
    for &o in &token_off {
        let mut end = o;
        loop {
            tt.ensure(end + 1)?;
            if tt.data[end] == 0 {
                break;
            }
            end += 1;
            if end - o > 4096 {
                return Err(bad(t.token_table.wrapping_add(o as u64), "a kallsyms token longer than 4096 bytes"));
            }
        }
        spans.push((o, end));
    }
    let mut first16 = [[0u8; 16]; 256];
    let mut len = [0usize; 256];
    for (b, &(s, e)) in spans.iter().enumerate() {
        len[b] = e - s;
        let n16 = (e - s).min(16);
        first16[b][..n16].copy_from_slice(&tt.data[s..s + n16]);
    }
    Ok(Tokens { table: tt.data, spans, first16, len })
}

/// The decoded names, their type characters, and which one is `_stext`.
struct Names {
    names: Vec<u8>,
    ends: Vec<u32>,
    types: Vec<u8>,
    stext: Option<usize>,
}

/// `kallsyms_names`: `[len][len token bytes]` per symbol, `len` a 2-byte ULEB when bit 7 is set
/// (6.1+ big symbols); the first character of each expanded name is its type.
fn decode_names(mem: &dyn VirtMemory, t: &Tables, tokens: &Tokens, limits: &SymLimits, have: Vec<u8>) -> Result<Names> {
    let n = t.num as usize;
    let mut nm = Chunked::new(mem, t.names, limits.max_names_bytes, "kallsyms_names");
    nm.data = have;
    // The names are followed by kallsyms_markers and the token table in every layout since 6.0:
    // when the token table lies above, the span up to it is one read that holds every name.
    if let Some(span) = t.token_table.checked_sub(t.names).filter(|&s| s > 0 && s <= limits.max_names_bytes as u64) {
        nm.next_chunk = span as usize;
    }
    let mut buf = vec![0u8; 2 * MAX_NAME + 16 + 1];
    let mut out =
        Names { names: Vec::with_capacity(n * 24), ends: Vec::with_capacity(n), types: Vec::with_capacity(n), stext: None };
    let mut pos = 0usize;
    for i in 0..n {
        nm.ensure(pos + 2)?;
        let mut len = nm.data[pos] as usize;
        pos += 1;
        if len & 0x80 != 0 {
            let b1 = nm.data[pos] as usize;
            if b1 & 0x80 != 0 {
                return Err(bad(t.names.wrapping_add(pos as u64), format!("symbol {i}: a name length of more than two bytes")));
            }
            len = (len & 0x7f) | (b1 << 7);
            pos += 1;
        }
        let at = t.names.wrapping_add(pos as u64);
        if len == 0 {
            return Err(bad(at, format!("symbol {i}: an empty name")));
        }
        nm.ensure(pos + len)?;
        let Some(w) = tokens.expand(&nm.data[pos..pos + len], &mut buf) else {
            return Err(bad(at, format!("symbol {i}: a name longer than {MAX_NAME} bytes")));
        };
        if w == 0 {
            return Err(bad(at, format!("symbol {i}: a name made of empty tokens")));
        }
        if out.names.len() + w > limits.max_decoded_bytes {
            return Err(too_big(t.names, format!("decoded kallsyms names exceed the {}-byte limit", limits.max_decoded_bytes)));
        }
        out.types.push(buf[0]);
        let start = out.names.len();
        out.names.extend_from_slice(&buf[1..w]);
        pos += len;
        if out.stext.is_none() && &out.names[start..] == b"_stext" {
            out.stext = Some(i);
        }
        out.ends.push(out.names.len() as u32);
    }
    Ok(out)
}

/// Every symbol's address, from `kallsyms_offsets` (in the encoding that reproduces
/// `SYMBOL(_stext)` for symbol `stext`) or `kallsyms_addresses`.
fn decode_addresses(mem: &dyn VirtMemory, t: &Tables, stext: usize) -> Result<(Vec<u64>, AddressMode)> {
    match (t.offsets, t.addresses) {
        (Some(off_addr), _) => decode_offsets(mem, t, off_addr, stext),
        (None, Some(a)) => {
            let (ps, big) = (mem.pointer_size(), mem.big_endian());
            let mut raw = vec![0u8; t.num as usize * ps];
            mem.read_virt(a, &mut raw)?;
            let addrs: Vec<u64> =
                raw.chunks_exact(ps).map(|c| crate::kview::printk::field(c, 0, ps, big, a).unwrap_or(0)).collect();
            if addrs[stext] != t.stext {
                return Err(bad(
                    a,
                    format!("kallsyms_addresses gives _stext {:#x}, SYMBOL(_stext) is {:#x}", addrs[stext], t.stext),
                ));
            }
            Ok((addrs, AddressMode::Absolute))
        }
        (None, None) => unreachable!("checked in tables()"),
    }
}

/// `kallsyms_offsets` at `off_addr`, in whichever encoding gives `_stext` its symbol's address.
fn decode_offsets(mem: &dyn VirtMemory, t: &Tables, off_addr: u64, stext: usize) -> Result<(Vec<u64>, AddressMode)> {
    let n = t.num as usize;
    let big = mem.big_endian();
    let mut raw = vec![0u8; n * 4];
    mem.read_virt(off_addr, &mut raw)?;
    let offs: Vec<u32> = raw
        .chunks_exact(4)
        .map(|c| {
            let a = [c[0], c[1], c[2], c[3]];
            if big {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        })
        .collect();
    let base = match t.relative_base {
        Some(a) => Some(mem.read_ptr(a)?),
        None => None,
    };
    let ps = mem.pointer_size();
    let wrap = |v: u64| if ps == 4 { v & 0xffff_ffff } else { v };
    let calc = |mode: AddressMode, i: usize| -> Option<u64> {
        let o = offs[i];
        Some(wrap(match mode {
            AddressMode::BaseRelative => base?.wrapping_add(u64::from(o)),
            AddressMode::AbsolutePercpu => {
                if (o as i32) >= 0 {
                    u64::from(o)
                } else {
                    base?.wrapping_sub(1).wrapping_sub(i64::from(o as i32) as u64)
                }
            }
            AddressMode::PlaceRelative => off_addr.wrapping_add(4 * i as u64).wrapping_add(i64::from(o as i32) as u64),
            AddressMode::Absolute => return None,
        }))
    };
    let mode = [AddressMode::AbsolutePercpu, AddressMode::BaseRelative, AddressMode::PlaceRelative]
        .into_iter()
        .find(|&m| calc(m, stext) == Some(t.stext))
        .ok_or_else(|| {
            bad(
                off_addr,
                format!(
                    "no kallsyms address encoding reproduces SYMBOL(_stext)={:#x} from its offset {:#x}",
                    t.stext, offs[stext]
                ),
            )
        })?;
    Ok(((0..n).map(|i| calc(mode, i).unwrap_or(0)).collect(), mode))
}

pub mod discover;

#[cfg(test)]
mod tests;
