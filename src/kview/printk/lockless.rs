//! The lockless printk ring buffer (Linux 5.10+): a descriptor ring, an info ring and a text data
//! ring, walked by id from `tail_id` to `head_id`.

use super::{field, level_bits, member_offset, read_vec, struct_size, text_error, Keys, LogLimits, LogRecord, MAX_STRUCT};
use crate::error::Result;
use crate::kview::{bad_virt as bad, too_big_virt as too_big, VirtMemory};
use crate::text::View;

/// Descriptor states (kernel/printk/printk_ringbuffer.h).
const DESC_COMMITTED: u64 = 1;
const DESC_FINALIZED: u64 = 2;

/// Where the lockless ring's fields are, from the VMCOREINFO text alone (no memory is read):
/// every offset a missing key or an implausible value refuses before the first read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocklessLayout {
    /// `SYMBOL(prb)`: the address of the pointer to the ring.
    pub prb_sym: u64,
    /// `SIZE(atomic_long_t)`: the width of ids and logical positions, 4 or 8.
    pub long: usize,
    /// `SIZE(printk_ringbuffer)`.
    pub ringbuffer_size: u64,
    /// Offsets in `struct printk_ringbuffer` of the descriptor ring's fields (the atomic
    /// counters' `counter` member included).
    pub count_bits: u64,
    pub descs: u64,
    pub infos: u64,
    pub head_id: u64,
    pub tail_id: u64,
    /// Offsets in `struct printk_ringbuffer` of the text data ring's fields.
    pub size_bits: u64,
    pub data: u64,
    /// `SIZE(prb_desc)`, `SIZE(printk_info)`.
    pub desc_size: u64,
    pub info_size: u64,
    /// Offsets in `struct prb_desc`: the state word and the text block's logical positions.
    pub state: u64,
    pub begin: u64,
    pub next: u64,
    /// Offsets in `struct printk_info`.
    pub seq: u64,
    pub ts_nsec: u64,
    pub text_len: u64,
    pub caller_id: Option<u64>,
    /// `facility` (and `level` in the byte after it), when `caller_id` confirms the 5.10+ layout.
    pub facility: Option<u64>,
}

impl LocklessLayout {
    pub fn from_vmcoreinfo(vi: &View<'_>) -> Result<LocklessLayout> {
        let k = Keys { vi, what: "the kernel log (lockless ring)" };
        let long = k.size("atomic_long_t")?;
        if long != 4 && long != 8 {
            return Err(text_error(vi, "SIZE(atomic_long_t)", format!("VMCOREINFO SIZE(atomic_long_t)={long}: expected 4 or 8")));
        }
        let counter = k.offset("atomic_long_t", "counter")?;
        let prb_sym = k.symbol("prb")?;
        let ringbuffer_size = struct_size(&k, "printk_ringbuffer")?;
        let desc_ring = k.offset("printk_ringbuffer", "desc_ring")?;
        let data_ring = k.offset("printk_ringbuffer", "text_data_ring")?;
        let in_desc_ring = |m: &str| k.offset("prb_desc_ring", m).map(|o| desc_ring + o);
        let blk = k.offset("prb_desc", "text_blk_lpos")?;
        let text_len = k.offset("printk_info", "text_len")?;
        let caller_id = member_offset(vi, "printk_info", "caller_id")?;
        Ok(LocklessLayout {
            prb_sym,
            long: long as usize,
            ringbuffer_size,
            count_bits: in_desc_ring("count_bits")?,
            descs: in_desc_ring("descs")?,
            infos: in_desc_ring("infos")?,
            head_id: in_desc_ring("head_id")? + counter,
            tail_id: in_desc_ring("tail_id")? + counter,
            size_bits: data_ring + k.offset("prb_data_ring", "size_bits")?,
            data: data_ring + k.offset("prb_data_ring", "data")?,
            desc_size: struct_size(&k, "prb_desc")?,
            info_size: struct_size(&k, "printk_info")?,
            state: k.offset("prb_desc", "state_var")? + counter,
            begin: blk + k.offset("prb_data_blk_lpos", "begin")?,
            next: blk + k.offset("prb_data_blk_lpos", "next")?,
            seq: k.offset("printk_info", "seq")?,
            ts_nsec: k.offset("printk_info", "ts_nsec")?,
            text_len,
            caller_id,
            // `u16 text_len; u8 facility; u8 flags:5, level:3; u32 caller_id;` (5.10+): facility
            // and level are not in VMCOREINFO; they are taken from that layout only when
            // caller_id confirms it.
            facility: (caller_id == Some(text_len + 4)).then_some(text_len + 2),
        })
    }

    /// Bits of a state word that hold the state (the top two).
    fn state_shift(&self) -> u32 {
        8 * self.long as u32 - 2
    }

    /// Bits of an id (the rest of the word).
    fn id_mask(&self) -> u64 {
        if self.long == 8 {
            !(3u64 << self.state_shift())
        } else {
            0x3fff_ffff
        }
    }
}

/// One ring as the dump holds it: where its three parts are and which ids are live.
struct Ring {
    prb: u64,
    descs: u64,
    infos: u64,
    data: u64,
    /// Descriptors (a power of two).
    count: u64,
    /// Bytes of the text data ring (a power of two).
    data_size: u64,
    tail_id: u64,
    /// Ids from `tail_id` to `head_id`, less one.
    span: u64,
}

impl Ring {
    /// Read `struct printk_ringbuffer` and check what it says against `limits`.
    fn read(mem: &dyn VirtMemory, l: &LocklessLayout, limits: &LogLimits) -> Result<Ring> {
        let big = mem.big_endian();
        let prb = mem.read_ptr(l.prb_sym)?;
        let rb = read_vec(mem, prb, l.ringbuffer_size, MAX_STRUCT, "printk_ringbuffer")?;
        let ps = mem.pointer_size();
        let f = |off: u64, width: usize| field(&rb, off, width, big, prb);
        let count_bits = f(l.count_bits, 4)?;
        let descs = f(l.descs, ps)?;
        let infos = f(l.infos, ps)?;
        let head_id = f(l.head_id, l.long)?;
        let tail_id = f(l.tail_id, l.long)?;
        let size_bits = f(l.size_bits, 4)?;
        let data = f(l.data, ps)?;

        let bits = (8 * l.long) as u64;
        if count_bits >= bits - 2 || count_bits > 40 {
            return Err(bad(prb, format!("prb_desc_ring.count_bits {count_bits} is impossible")));
        }
        if size_bits >= bits || size_bits > 40 {
            return Err(bad(prb, format!("prb_data_ring.size_bits {size_bits} is impossible")));
        }
        let count = 1u64 << count_bits;
        let data_size = 1u64 << size_bits;
        let ring_bytes = count * l.desc_size + count * l.info_size;
        if ring_bytes > limits.max_desc_bytes {
            return Err(too_big(
                descs,
                format!(
                    "descriptor ring of {count} entries ({ring_bytes} bytes) exceeds the {}-byte limit",
                    limits.max_desc_bytes
                ),
            ));
        }
        if data_size > limits.max_data_bytes {
            return Err(too_big(
                data,
                format!("printk text data ring of {data_size} bytes exceeds the {}-byte limit", limits.max_data_bytes),
            ));
        }
        let id_mask = l.id_mask();
        let (head_id, tail_id) = (head_id & id_mask, tail_id & id_mask);
        let span = head_id.wrapping_sub(tail_id) & id_mask;
        if span >= count {
            return Err(bad(
                prb,
                format!("head_id {head_id:#x} is {span} descriptors past tail_id {tail_id:#x}, more than the ring's {count}"),
            ));
        }
        Ok(Ring { prb, descs, infos, data, count, data_size, tail_id, span })
    }
}

/// Read the lockless ring: ids from `tail_id` to `head_id` inclusive.
pub fn read_lockless(mem: &dyn VirtMemory, vi: &View<'_>, limits: &LogLimits) -> Result<Vec<LogRecord>> {
    let layout = LocklessLayout::from_vmcoreinfo(vi)?;
    let ring = Ring::read(mem, &layout, limits)?;
    walk_records(mem, &layout, &ring, limits)
}

/// The records of the live ids, oldest first: those in the committed and finalized states that
/// carry text (as makedumpfile and the kernel's readers keep).
fn walk_records(mem: &dyn VirtMemory, l: &LocklessLayout, ring: &Ring, limits: &LogLimits) -> Result<Vec<LogRecord>> {
    let (big, w) = (mem.big_endian(), l.long);
    let (shift, id_mask) = (l.state_shift(), l.id_mask());
    // Only the parts of the rings that live records use are read (a fresh boot uses a few percent).
    let mut descs = Lazy::new(mem, ring.descs, ring.count * l.desc_size);
    let mut infos = Lazy::new(mem, ring.infos, ring.count * l.info_size);
    let mut data = Lazy::new(mem, ring.data, ring.data_size);
    let dsize = ring.data_size;
    let mut out = Vec::with_capacity((ring.span + 1).min(limits.max_records as u64) as usize);
    let mut id = ring.tail_id;
    for _ in 0..=ring.span {
        let slot = id % ring.count;
        let d_off = slot * l.desc_size;
        let d_addr = ring.descs.wrapping_add(d_off);
        descs.ensure(d_off, d_off + l.desc_size)?;
        let sv = field(&descs.buf, d_off + l.state, w, big, ring.descs)?;
        let state = (sv >> shift) & 3;
        let this = id;
        id = (id + 1) & id_mask;
        if sv & id_mask != this || (state != DESC_COMMITTED && state != DESC_FINALIZED) {
            continue;
        }
        let begin = field(&descs.buf, d_off + l.begin, w, big, ring.descs)? % dsize;
        let next = field(&descs.buf, d_off + l.next, w, big, ring.descs)? % dsize;
        if begin == next {
            continue; // a data-less record
        }
        let i_off = slot * l.info_size;
        infos.ensure(i_off, i_off + l.info_size)?;
        let inf = |off: u64, width: usize| field(&infos.buf, i_off + off, width, big, ring.infos);
        let text_len = inf(l.text_len, 2)?;
        let b = if begin > next { 0 } else { begin } + w as u64;
        if b > next {
            return Err(bad(d_addr, format!("record {this:#x}: text block [{begin:#x}, {next:#x}) is shorter than its id word")));
        }
        let len = text_len.min(next - b);
        if out.len() >= limits.max_records {
            return Err(too_big(ring.prb, format!("the log holds more than {} records", limits.max_records)));
        }
        out.push(LogRecord {
            seq: inf(l.seq, 8)?,
            timestamp_ns: inf(l.ts_nsec, 8)?,
            level: l.facility.map(|o| inf(o + 1, 1)).transpose()?.map(|b| level_bits(b as u8, big)),
            facility: l.facility.map(|o| inf(o, 1)).transpose()?.map(|b| b as u8),
            caller_id: l.caller_id.map(|o| inf(o, 4)).transpose()?.map(|c| c as u32),
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
