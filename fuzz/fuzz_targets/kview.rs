//! The kernel log and kallsyms readers over arbitrary kernel memory: the input is mapped at
//! virtual address 0x1000 behind a fixed VMCOREINFO layout (the first byte picks 4- or 8-byte
//! longs, the byte order, and the lockless ring or the legacy log_buf). Every read must end in a
//! result or a typed error, within the limits given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::kview::{kallsyms, printk, VirtMemory};
use vmcoreinfo::text::Index;
use vmcoreinfo::{Error, Result};

const BASE: u64 = 0x1000;

struct Mem<'a> {
    data: &'a [u8],
    w: usize,
    big: bool,
}

impl VirtMemory for Mem<'_> {
    fn read_virt(&self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        let off = vaddr.checked_sub(BASE).ok_or_else(|| Error::unmapped(vaddr, "below"))?;
        let end = off.checked_add(buf.len() as u64).ok_or_else(|| Error::unmapped(vaddr, "wraps"))?;
        if end > self.data.len() as u64 {
            return Err(Error::unmapped(vaddr, "past the input"));
        }
        buf.copy_from_slice(&self.data[off as usize..end as usize]);
        Ok(())
    }
    fn pointer_size(&self) -> usize {
        self.w
    }
    fn big_endian(&self) -> bool {
        self.big
    }
}

fn text(w: usize, legacy: bool) -> String {
    let a = |o: u64| format!("{:x}", BASE + o);
    let mut t = String::from("OSRELEASE=fuzz\n");
    if legacy {
        t += &format!(
            "SYMBOL(log_buf)={}\nSYMBOL(log_buf_len)={}\nSYMBOL(log_first_idx)={}\nSYMBOL(log_next_idx)={}\n\
             SIZE(printk_log)=16\nOFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10\n\
             OFFSET(printk_log.dict_len)=12\nOFFSET(printk_log.caller_id)=16\n",
            a(0x900),
            a(0x908),
            a(0x910),
            a(0x918)
        );
    } else {
        let dr = if w == 8 { 48 } else { 24 };
        t += &format!(
            "SYMBOL(prb)={}\nSIZE(printk_ringbuffer)={}\nOFFSET(printk_ringbuffer.desc_ring)=0\n\
             OFFSET(printk_ringbuffer.text_data_ring)={dr}\nOFFSET(prb_desc_ring.count_bits)=0\n\
             OFFSET(prb_desc_ring.descs)={w}\nOFFSET(prb_desc_ring.infos)={}\nOFFSET(prb_desc_ring.head_id)={}\n\
             OFFSET(prb_desc_ring.tail_id)={}\nSIZE(prb_desc)={}\nOFFSET(prb_desc.state_var)=0\n\
             OFFSET(prb_desc.text_blk_lpos)={w}\nOFFSET(prb_data_blk_lpos.begin)=0\nOFFSET(prb_data_blk_lpos.next)={w}\n\
             SIZE(printk_info)=88\nOFFSET(printk_info.seq)=0\nOFFSET(printk_info.ts_nsec)=8\nOFFSET(printk_info.text_len)=16\n\
             OFFSET(printk_info.caller_id)=20\nOFFSET(prb_data_ring.size_bits)=0\nOFFSET(prb_data_ring.data)={w}\n\
             SIZE(atomic_long_t)={w}\nOFFSET(atomic_long_t.counter)=0\n",
            a(0),
            dr + 4 * w,
            2 * w,
            3 * w,
            4 * w,
            3 * w
        );
    }
    t += &format!(
        "SYMBOL(kallsyms_num_syms)={}\nSYMBOL(kallsyms_relative_base)={}\nSYMBOL(kallsyms_offsets)={}\n\
         SYMBOL(kallsyms_names)={}\nSYMBOL(kallsyms_token_index)={}\nSYMBOL(kallsyms_token_table)={}\nSYMBOL(_stext)={}\n",
        a(0x300),
        a(0x308),
        a(0x310),
        a(0x340),
        a(0x400),
        a(0x600),
        a(0x10000)
    );
    t
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let w = if flags & 1 != 0 { 4 } else { 8 };
    let mem = Mem { data: rest, w, big: flags & 2 != 0 };
    let t = text(w, flags & 4 != 0);
    let idx = Index::build(t.as_bytes());
    let v = idx.view(t.as_bytes());
    let limits = printk::LogLimits { max_data_bytes: 1 << 20, max_desc_bytes: 1 << 20, max_records: 1 << 16, max_output_bytes: 1 << 22 };
    if let Ok(log) = printk::read_log(&mem, &v, &limits) {
        for r in &log {
            assert!(r.text.len() <= 0xffff);
        }
        for caller in [false, true] {
            if let Ok(s) = printk::format_dmesg(&log, caller, &limits) {
                assert!(s.is_ascii());
                assert!(s.len() <= limits.max_output_bytes + 0xffff * 30);
            }
        }
    }
    let sl = kallsyms::SymLimits { max_symbols: 1 << 16, max_names_bytes: 1 << 20, max_decoded_bytes: 1 << 22 };
    if let Ok(k) = kallsyms::read_symbols(&mem, &v, &sl) {
        assert!(k.len() >= 1);
        assert_eq!(k.address(b"_stext"), Some(BASE + 0x10000));
        for (i, (name, addr, _)) in k.iter().enumerate().take(64) {
            let first = k.index_of(name).expect("a listed name is found");
            assert!(first <= i);
            let (j, off) = k.lookup(addr).expect("an address at a symbol has one");
            assert_eq!(off, 0);
            assert_eq!(k.address_of(j), addr);
        }
        let _ = (k.lookup(0), k.lookup(u64::MAX), k.mode().name());
    }
});
