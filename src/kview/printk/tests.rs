//! Synthetic rings: the kernel's allocation rules reproduced on a small ring (8 descriptors,
//! 128 data bytes) so that records wrap, ids wrap, and every state occurs.

use super::*;
use crate::text::Index;

/// Kernel virtual memory made of a few regions.
pub(crate) struct FakeMem {
    pub regions: Vec<(u64, Vec<u8>)>,
    pub ptr: usize,
    pub big: bool,
}

impl FakeMem {
    pub fn new(ptr: usize, big: bool) -> Self {
        FakeMem { regions: Vec::new(), ptr, big }
    }
    pub fn add(&mut self, addr: u64, data: Vec<u8>) {
        self.regions.push((addr, data));
    }
    pub fn put(&self, v: u64, width: usize) -> Vec<u8> {
        if self.big {
            v.to_be_bytes()[8 - width..].to_vec()
        } else {
            v.to_le_bytes()[..width].to_vec()
        }
    }
}

impl VirtMemory for FakeMem {
    fn read_virt(&self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        for (base, data) in &self.regions {
            if vaddr >= *base && vaddr - base + buf.len() as u64 <= data.len() as u64 {
                let o = (vaddr - base) as usize;
                buf.copy_from_slice(&data[o..o + buf.len()]);
                return Ok(());
            }
        }
        Err(Error::unmapped(vaddr, "not in the fake memory"))
    }
    fn pointer_size(&self) -> usize {
        self.ptr
    }
    fn big_endian(&self) -> bool {
        self.big
    }
}

fn set(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

const PRB_PTR: u64 = 0x1000;
const PRB: u64 = 0x2000;
const DESCS: u64 = 0x3000;
const INFOS: u64 = 0x4000;
const DATA: u64 = 0x5000;

struct Ring {
    w: usize,
    count_bits: u32,
    size_bits: u32,
    /// What each message becomes: 1 committed, 2 finalized, 0 reserved, 3 reusable.
    states: Vec<u64>,
    first_id: u64,
}

fn vmcoreinfo(w: usize) -> String {
    let (dr, tdr, rbsz) = if w == 8 { (0, 48, 88) } else { (0, 24, 44) };
    format!(
        "OSRELEASE=6.1.0\nSYMBOL(prb)={PRB_PTR:x}\nSIZE(printk_ringbuffer)={rbsz}\n\
         OFFSET(printk_ringbuffer.desc_ring)={dr}\nOFFSET(printk_ringbuffer.text_data_ring)={tdr}\n\
         OFFSET(prb_desc_ring.count_bits)=0\nOFFSET(prb_desc_ring.descs)={w}\nOFFSET(prb_desc_ring.infos)={}\n\
         OFFSET(prb_desc_ring.head_id)={}\nOFFSET(prb_desc_ring.tail_id)={}\n\
         SIZE(prb_desc)={}\nOFFSET(prb_desc.state_var)=0\nOFFSET(prb_desc.text_blk_lpos)={w}\n\
         OFFSET(prb_data_blk_lpos.begin)=0\nOFFSET(prb_data_blk_lpos.next)={w}\n\
         SIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\nOFFSET(printk_info.ts_nsec)=8\n\
         OFFSET(printk_info.text_len)=16\nOFFSET(printk_info.caller_id)=20\n\
         OFFSET(prb_data_ring.size_bits)=0\nOFFSET(prb_data_ring.data)={w}\n\
         SIZE(atomic_long_t)={w}\nOFFSET(atomic_long_t.counter)=0\n",
        2 * w,
        3 * w,
        4 * w,
        3 * w,
    )
}

/// Write `msgs` into a ring as the kernel would (data blocks aligned to W, a block that would
/// cross the end of the ring placed at 0 instead, the oldest records dropped when descriptors or
/// data run out) and return the memory and the records that must be read back.
fn build(r: &Ring, msgs: &[&[u8]], big: bool) -> (FakeMem, Vec<LogRecord>) {
    let w = r.w as u64;
    let mask = if r.w == 8 { !(3u64 << 62) } else { 0x3fff_ffff };
    let count = 1u64 << r.count_bits;
    let dsize = 1u64 << r.size_bits;
    let mut mem = FakeMem::new(r.w, big);
    let mut descs = vec![0u8; (count * 3 * w) as usize];
    let mut infos = vec![0u8; (count * 88) as usize];
    let mut data = vec![0xeeu8; dsize as usize];
    // (id, begin, next, record, state)
    let mut live: std::collections::VecDeque<(u64, u64, u64, LogRecord, u64)> = Default::default();
    let mut lpos = 0u64;
    let mut id = r.first_id & mask;
    for (i, m) in msgs.iter().enumerate() {
        let size = (w + m.len() as u64).div_ceil(w) * w;
        // get_next_lpos(): a block that would reach the next wrap is stored at index 0.
        let begin = lpos;
        let mut next = lpos + size;
        let wraps = begin / dsize != next / dsize;
        if wraps {
            next = next / dsize * dsize + size;
        }
        lpos = next;
        while live.len() as u64 >= count || live.front().is_some_and(|f| f.1 + dsize < next) {
            live.pop_front();
        }
        let at = if wraps { 0 } else { begin % dsize };
        set(&mut data, at as usize, &mem.put(id, r.w));
        set(&mut data, (at + w) as usize, m);
        let caller = if i % 2 == 0 { 0x8000_0000 | i as u32 } else { 100 + i as u32 };
        let rec = LogRecord {
            seq: 1000 + i as u64,
            timestamp_ns: 1_500_000_000 * i as u64 + 123_456_789,
            level: Some((i % 8) as u8),
            facility: Some((i % 3) as u8),
            caller_id: Some(caller),
            text: m.to_vec(),
        };
        live.push_back((id, begin, next, rec, r.states.get(i).copied().unwrap_or(2)));
        id = (id + 1) & mask;
    }
    let shift = 8 * r.w - 2;
    for (id, begin, next, rec, state) in &live {
        let slot = (id % count) as usize;
        let d = slot * 3 * r.w;
        set(&mut descs, d, &mem.put(id | (state << shift), r.w));
        set(&mut descs, d + r.w, &mem.put(*begin, r.w));
        set(&mut descs, d + 2 * r.w, &mem.put(*next, r.w));
        let o = slot * 88;
        set(&mut infos, o, &mem.put(rec.seq, 8));
        set(&mut infos, o + 8, &mem.put(rec.timestamp_ns, 8));
        set(&mut infos, o + 16, &mem.put(rec.text.len() as u64, 2));
        infos[o + 18] = rec.facility.unwrap();
        let lv = rec.level.unwrap();
        infos[o + 19] = if big { lv | 0xa8 } else { (lv << 5) | 0x15 };
        set(&mut infos, o + 20, &mem.put(u64::from(rec.caller_id.unwrap()), 4));
    }
    let tail = live.front().map(|l| l.0).unwrap_or(id);
    let head = live.back().map(|l| l.0).unwrap_or(id);
    let (dr, tdr, rbsz) = if r.w == 8 { (0, 48, 88) } else { (0, 24, 44) };
    let mut rb = vec![0u8; rbsz];
    set(&mut rb, dr, &mem.put(u64::from(r.count_bits), 4));
    set(&mut rb, dr + r.w, &mem.put(DESCS, r.w));
    set(&mut rb, dr + 2 * r.w, &mem.put(INFOS, r.w));
    set(&mut rb, dr + 3 * r.w, &mem.put(head, r.w));
    set(&mut rb, dr + 4 * r.w, &mem.put(tail, r.w));
    set(&mut rb, tdr, &mem.put(u64::from(r.size_bits), 4));
    set(&mut rb, tdr + r.w, &mem.put(DATA, r.w));
    let p = mem.put(PRB, r.w);
    mem.add(PRB_PTR, p);
    mem.add(PRB, rb);
    mem.add(DESCS, descs);
    mem.add(INFOS, infos);
    mem.add(DATA, data);
    let want = live.into_iter().filter(|l| l.4 == 1 || l.4 == 2).map(|l| l.3).collect();
    (mem, want)
}

fn read(mem: &FakeMem, text: &str) -> Result<Vec<LogRecord>> {
    let idx = Index::build(text.as_bytes());
    read_log(mem, &idx.view(text.as_bytes()), &LogLimits::default())
}

const MSGS: [&[u8]; 12] = [
    b"Linux version 6.1.0",
    b"first wrap candidate with a longer text",
    b"x",
    b"multi\nline",
    b"ctrl\x01 and \xc3\xa9",
    b"sixth",
    b"seventh message, long enough to push the ring around",
    b"eighth",
    b"ninth",
    b"tenth record",
    b"eleventh",
    b"twelfth and last",
];

#[test]
fn wrapped_ring_64_and_32_bit_both_byte_orders() {
    for (w, big) in [(8, false), (4, false), (8, true), (4, true)] {
        let mask = if w == 8 { !(3u64 << 62) } else { 0x3fff_ffff };
        // Ids start just below the id mask so that they wrap to 0 inside the ring.
        let r = Ring { w, count_bits: 3, size_bits: 7, states: vec![], first_id: mask - 4 };
        let (mem, want) = build(&r, &MSGS, big);
        assert!(want.len() >= 3 && want.len() < MSGS.len(), "the ring must have dropped old records: {}", want.len());
        let got = read(&mem, &vmcoreinfo(w)).unwrap();
        assert_eq!(got, want, "w={w} big={big}");
        assert_eq!(got.last().unwrap().text, b"twelfth and last");
    }
}

#[test]
fn only_committed_and_finalized_records_are_kept() {
    let r = Ring { w: 8, count_bits: 3, size_bits: 9, states: vec![2, 1, 0, 3, 2], first_id: 0 };
    let (mem, want) = build(&r, &MSGS[..5], false);
    let got = read(&mem, &vmcoreinfo(8)).unwrap();
    let texts: Vec<&[u8]> = got.iter().map(|r| r.text.as_slice()).collect();
    assert_eq!(texts, vec![MSGS[0], MSGS[1], MSGS[4]]);
    assert_eq!(got, want);
}

#[test]
fn dmesg_lines_match_makedumpfile_format() {
    let r = Ring { w: 8, count_bits: 4, size_bits: 9, states: vec![], first_id: 0 };
    let (mem, _) = build(&r, &MSGS[..5], false);
    let got = read(&mem, &vmcoreinfo(8)).unwrap();
    let s = format_dmesg(&got, false, &LogLimits::default()).unwrap();
    let lines: Vec<&str> = s.split_inclusive('\n').collect();
    assert_eq!(lines[0], "[    0.123456] Linux version 6.1.0\n");
    assert_eq!(lines[3], "[    4.623456] multi\n");
    assert_eq!(lines[4], "               line\n");
    assert_eq!(lines[5], "[    6.123456] ctrl\\x01 and \\xc3\\xa9\n");
    let s = format_dmesg(&got, true, &LogLimits::default()).unwrap();
    let lines: Vec<&str> = s.split_inclusive('\n').collect();
    assert_eq!(lines[0], "[    0.123456] [      C0] Linux version 6.1.0\n");
    assert_eq!(lines[1], "[    1.623456] [    T101] first wrap candidate with a longer text\n");
    assert_eq!(lines[4], "                          line\n");
}

#[test]
fn truncated_text_and_dataless_records() {
    let r = Ring { w: 8, count_bits: 3, size_bits: 9, states: vec![], first_id: 0 };
    let (mut mem, _) = build(&r, &MSGS[..3], false);
    // Record 0 claims 200 bytes of text; record 1 becomes data-less (begin == next).
    let infos = &mut mem.regions.iter_mut().find(|(a, _)| *a == INFOS).unwrap().1;
    infos[16..18].copy_from_slice(&200u16.to_le_bytes());
    let descs = &mut mem.regions.iter_mut().find(|(a, _)| *a == DESCS).unwrap().1;
    let b = descs[24 + 8..24 + 16].to_vec();
    descs[24 + 16..24 + 24].copy_from_slice(&b);
    let got = read(&mem, &vmcoreinfo(8)).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].text, [&b"Linux version 6.1.0"[..], &[0xee; 5]].concat(), "clipped at the block's end (W-aligned)");
    assert_eq!(got[1].text, b"x");
}

#[test]
fn hostile_rings_are_typed_errors() {
    let r = Ring { w: 8, count_bits: 3, size_bits: 9, states: vec![], first_id: 0 };
    let text = vmcoreinfo(8);
    // count_bits absurd, size_bits beyond the limit, head far past tail, prb unmapped.
    let cases: [(usize, u64, usize, ErrorKind); 4] = [
        (0, 60, 4, ErrorKind::Format),
        (48, 36, 4, ErrorKind::Limit),
        (24, 1 << 40, 8, ErrorKind::Format),
        (0, 23, 4, ErrorKind::Limit),
    ];
    for (off, val, width, kind) in cases {
        let (mut mem, _) = build(&r, &MSGS[..3], false);
        let rb = &mut mem.regions.iter_mut().find(|(a, _)| *a == PRB).unwrap().1;
        rb[off..off + width].copy_from_slice(&val.to_le_bytes()[..width]);
        let e = read(&mem, &text).unwrap_err();
        assert_eq!(e.kind, kind, "field at {off} = {val}: {e}");
    }
    let (mut mem, _) = build(&r, &MSGS[..3], false);
    mem.regions.retain(|(a, _)| *a != DATA);
    assert_eq!(read(&mem, &text).unwrap_err().kind, ErrorKind::Unmapped);
    let e = read(&mem, "OSRELEASE=6.1\n").unwrap_err();
    assert!(e.to_string().contains("SYMBOL(prb)"), "{e}");
    let e = read(&mem, &text.replace("SIZE(atomic_long_t)=8\n", "")).unwrap_err();
    assert!(e.to_string().contains("SIZE(atomic_long_t)"), "{e}");
}

// ---------------------------------------------------------------- legacy

const LOGBUF_PTR: u64 = 0x100;
const LOGBUF: u64 = 0x8000;

fn legacy_text() -> String {
    format!(
        "SYMBOL(log_buf)={LOGBUF_PTR:x}\nSYMBOL(log_buf_len)=108\nSYMBOL(log_first_idx)=110\nSYMBOL(log_next_idx)=120\n\
         SIZE(printk_log)=16\nOFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10\n\
         OFFSET(printk_log.dict_len)=12\n"
    )
}

fn legacy_mem(recs: &[(u64, &[u8])], first: u32, next: u32, buf_len: u32) -> FakeMem {
    let mut mem = FakeMem::new(8, false);
    let mut buf = vec![0u8; buf_len as usize];
    let mut pos = 0usize;
    let mut wrote = Vec::new();
    for (ts, t) in recs {
        let len = (16 + t.len()).div_ceil(8) * 8;
        if pos + len + 16 > buf.len() {
            // log_store(): room is always left for an empty wrap marker.
            pos = 0;
        }
        set(&mut buf, pos, &ts.to_le_bytes());
        set(&mut buf, pos + 8, &(len as u16).to_le_bytes());
        set(&mut buf, pos + 10, &(t.len() as u16).to_le_bytes());
        buf[pos + 14] = 3;
        buf[pos + 15] = 6 << 5;
        set(&mut buf, pos + 16, t);
        wrote.push(pos);
        pos += len;
    }
    mem.add(LOGBUF_PTR, LOGBUF.to_le_bytes().to_vec());
    mem.add(0x108, buf_len.to_le_bytes().to_vec());
    mem.add(0x110, first.to_le_bytes().to_vec());
    mem.add(0x120, next.to_le_bytes().to_vec());
    mem.add(LOGBUF, buf);
    mem
}

#[test]
fn legacy_buffer_wraps_on_a_zero_length_record() {
    // 3 records of 24 bytes fill 72 of 88 bytes; the 4th wraps to 0 over the first (the kernel
    // dropped the first two to make room), leaving a zero-length marker at 72.
    let recs: [(u64, &[u8]); 4] = [(1, b"aaaa"), (2, b"bbbb"), (2_000_001_000, b"cccc"), (4, b"dd")];
    let mem = legacy_mem(&recs, 48, 24, 88);
    let got = read(&mem, &legacy_text()).unwrap();
    let texts: Vec<&[u8]> = got.iter().map(|r| r.text.as_slice()).collect();
    assert_eq!(texts, vec![&b"cccc"[..], b"dd"]);
    assert_eq!((got[0].seq, got[0].timestamp_ns, got[0].level, got[0].facility), (0, 2_000_001_000, Some(6), Some(3)));
    assert_eq!(got[0].caller_id, None);
    let s = format_dmesg(&got, true, &LogLimits::default()).unwrap();
    assert_eq!(s, "[    2.000001] cccc\n[    0.000000] dd\n");
}

#[test]
fn legacy_cycle_and_out_of_range_indexes_are_errors() {
    // A record whose length points back at itself never reaches log_next_idx.
    let mut mem = legacy_mem(&[(1, b"aaaa"), (2, b"bbbb")], 0, 40, 64);
    let buf = &mut mem.regions.iter_mut().find(|(a, _)| *a == LOGBUF).unwrap().1;
    buf[8..10].copy_from_slice(&0u16.to_le_bytes());
    let e = read(&mem, &legacy_text()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Format, "{e}");
    let mem = legacy_mem(&[(1, b"aaaa")], 0, 4000, 64);
    assert_eq!(read(&mem, &legacy_text()).unwrap_err().kind, ErrorKind::Format);
    let mem = legacy_mem(&[(1, b"aaaa")], 0, 24, 64);
    let idx = Index::build(legacy_text().as_bytes());
    let small = LogLimits { max_data_bytes: 32, ..LogLimits::default() };
    assert_eq!(read_log(&mem, &idx.view(legacy_text().as_bytes()), &small).unwrap_err().kind, ErrorKind::Limit);
}

#[test]
fn absurd_member_offsets_are_format_errors_not_overflows() {
    let r = Ring { w: 8, count_bits: 3, size_bits: 9, states: vec![], first_id: 0 };
    let (mem, _) = build(&r, &MSGS[..3], false);
    for key in ["OFFSET(prb_desc.state_var)=0", "OFFSET(printk_info.caller_id)=20", "OFFSET(atomic_long_t.counter)=0"] {
        let name = key.split('=').next().unwrap();
        let text = vmcoreinfo(8).replace(key, &format!("{name}=18446744073709551615"));
        let e = read(&mem, &text).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Format, "{key}: {e}");
        assert!(e.to_string().contains(name), "{e}");
        assert!(matches!(e.location, Some(Location::Text(_))), "{e:?}");
    }
}

#[test]
fn lockless_layout_is_read_from_the_text_alone() {
    let text = vmcoreinfo(4);
    let idx = Index::build(text.as_bytes());
    let l = lockless::LocklessLayout::from_vmcoreinfo(&idx.view(text.as_bytes())).unwrap();
    assert_eq!((l.prb_sym, l.long, l.ringbuffer_size), (PRB_PTR, 4, 44));
    assert_eq!((l.count_bits, l.descs, l.infos, l.head_id, l.tail_id), (0, 4, 8, 12, 16));
    assert_eq!((l.size_bits, l.data, l.desc_size, l.info_size), (24, 28, 12, 88));
    assert_eq!((l.state, l.begin, l.next), (0, 4, 8));
    assert_eq!((l.seq, l.ts_nsec, l.text_len, l.caller_id, l.facility), (0, 8, 16, Some(20), Some(18)));
    // Without caller_id the facility byte is not trusted.
    let text = text.replace("OFFSET(printk_info.caller_id)=20\n", "");
    let idx = Index::build(text.as_bytes());
    let l = lockless::LocklessLayout::from_vmcoreinfo(&idx.view(text.as_bytes())).unwrap();
    assert_eq!((l.caller_id, l.facility), (None, None));
}
