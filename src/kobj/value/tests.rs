use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::error::ErrorKind;

/// A sparse kernel virtual memory (little-endian, 8-byte pointers).
#[derive(Default)]
pub(crate) struct FakeVirt {
    pages: Mutex<HashMap<u64, Box<[u8; 4096]>>>,
}

impl FakeVirt {
    pub fn write(&self, addr: u64, bytes: &[u8]) {
        let mut p = self.pages.lock().unwrap();
        for (i, b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            p.entry(a & !0xfff).or_insert_with(|| Box::new([0; 4096]))[(a & 0xfff) as usize] = *b;
        }
    }
    pub fn w64(&self, addr: u64, v: u64) {
        self.write(addr, &v.to_le_bytes());
    }
}

impl VirtMemory for FakeVirt {
    fn read_virt(&self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        let p = self.pages.lock().unwrap();
        for (i, b) in buf.iter_mut().enumerate() {
            let a = vaddr + i as u64;
            *b = p.get(&(a & !0xfff)).ok_or_else(|| Error::unmapped(a, "not in the fake"))?[(a & 0xfff) as usize];
        }
        Ok(())
    }
    fn pointer_size(&self) -> usize {
        8
    }
    fn big_endian(&self) -> bool {
        false
    }
}

/// A small BTF blob, built record by record (little-endian).
#[derive(Default)]
pub(crate) struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
}

impl BtfBuilder {
    pub fn new() -> Self {
        BtfBuilder { types: Vec::new(), strings: vec![0] }
    }
    fn s(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        off
    }
    fn w(&mut self, v: u32) {
        self.types.extend_from_slice(&v.to_le_bytes());
    }
    fn rec(&mut self, name: &str, kind: u32, vlen: u32, kind_flag: bool, size_or_type: u32) {
        let n = self.s(name);
        self.w(n);
        self.w(kind << 24 | vlen | if kind_flag { 1 << 31 } else { 0 });
        self.w(size_or_type);
    }
    pub fn int(&mut self, name: &str, size: u32, signed: bool, bool_: bool) {
        self.rec(name, 1, 0, false, size);
        self.w(u32::from(signed) << 24 | u32::from(bool_) << 26 | (size * 8));
    }
    pub fn ptr(&mut self, to: u32) {
        self.rec("", 2, 0, false, to);
    }
    pub fn array(&mut self, elem: u32, index: u32, n: u32) {
        self.rec("", 3, 0, false, 0);
        self.w(elem);
        self.w(index);
        self.w(n);
    }
    /// members: (name, type, bit offset, bit size)
    pub fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) {
        let kf = members.iter().any(|m| m.3 != 0);
        self.rec(name, 4, members.len() as u32, kf, size);
        for &(n, t, off, bits) in members {
            let no = self.s(n);
            self.w(no);
            self.w(t);
            self.w(if kf { bits << 24 | off } else { off });
        }
    }
    pub fn enum_(&mut self, name: &str, signed: bool, values: &[(&str, i32)]) {
        self.rec(name, 6, values.len() as u32, signed, 4);
        for &(n, v) in values {
            let no = self.s(n);
            self.w(no);
            self.w(v as u32);
        }
    }
    pub fn typedef(&mut self, name: &str, to: u32) {
        self.rec(name, 8, 0, false, to);
    }
    pub fn blob(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xEB9Fu16.to_le_bytes());
        b.push(1);
        b.push(0);
        for v in [24u32, 0, self.types.len() as u32, self.types.len() as u32, self.strings.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.types);
        b.extend_from_slice(&self.strings);
        b
    }
}

/// ids: 1 int, 2 char, 3 char[16], 4 struct list_head, 5 list_head *, 6 struct task,
/// 7 char *, 8 enum e, 9 pid_t, 10 _Bool, 11 long unsigned int, 12 task *
pub(crate) fn sample() -> BtfBuilder {
    let mut b = BtfBuilder::new();
    b.int("int", 4, true, false); // 1
    b.int("char", 1, true, false); // 2
    b.array(2, 1, 16); // 3
    b.strukt("list_head", 16, &[("next", 5, 0, 0), ("prev", 5, 64, 0)]); // 4
    b.ptr(4); // 5
    b.strukt(
        "task",
        72,
        &[
            ("pid", 9, 0, 0),
            ("comm", 3, 32, 0),
            ("tasks", 4, 192, 0),
            ("a", 1, 384, 3),
            ("b", 11, 387, 5),
            ("name", 7, 448, 0),
            ("state", 8, 512, 0),
            ("on", 10, 544, 0),
        ],
    ); // 6
    b.ptr(2); // 7
    b.enum_("e", true, &[("E_NEG", -1), ("E_ONE", 1)]); // 8
    b.typedef("pid_t", 1); // 9
    b.int("_Bool", 1, false, true); // 10
    b.int("long unsigned int", 8, false, false); // 11
    b.ptr(6); // 12
    b
}

fn btf() -> Btf {
    Btf::parse(Arc::from(sample().blob()), 0xffff_0000_0000_0000, 8).unwrap()
}

const T0: u64 = 0xffff_8000_0000_1000;

fn task(mem: &FakeVirt, at: u64, pid: i32, comm: &[u8]) {
    mem.write(at, &pid.to_le_bytes());
    let mut c = [0u8; 16];
    c[..comm.len()].copy_from_slice(comm);
    mem.write(at + 4, &c);
    // a = 5 (bits 0-2), b = 19 (bits 3-7) in byte 48
    mem.write(at + 48, &[5 | 19 << 3]);
    mem.write(at + 64, &(-1i32).to_le_bytes());
    mem.write(at + 68, &[1]);
}

#[test]
fn members_scalars_and_strings() {
    let b = btf();
    let mem = FakeVirt::default();
    task(&mem, T0, 7, b"swapper/0");
    mem.w64(T0 + 56, T0 + 0x800);
    mem.write(T0 + 0x800, b"kthreadd\0");
    let v = Values::new(&mem, &b);
    let t = v.at(T0, "struct task").unwrap();
    assert_eq!(v.int(&v.member(&t, "pid").unwrap()).unwrap(), 7);
    assert_eq!(v.string(&v.member(&t, "comm").unwrap(), None).unwrap(), b"swapper/0");
    assert_eq!(v.string(&v.member(&t, "name").unwrap(), None).unwrap(), b"kthreadd");
    let a = v.member(&t, "a").unwrap();
    assert_eq!((a.addr, a.bit_offset, a.bit_size), (T0 + 48, 0, 3));
    assert_eq!(v.scalar(&a).unwrap(), Scalar::Signed(-3)); // 0b101 as a signed 3-bit int
    assert_eq!(v.scalar(&v.member(&t, "b").unwrap()).unwrap(), Scalar::Unsigned(19));
    assert_eq!(v.scalar(&v.member(&t, "state").unwrap()).unwrap(), Scalar::Signed(-1));
    assert_eq!(v.scalar(&v.member(&t, "on").unwrap()).unwrap(), Scalar::Bool(true));
    assert_eq!(v.index(&v.member(&t, "comm").unwrap(), 1).unwrap().addr, T0 + 5);
    assert_eq!(v.int(&v.index(&v.member(&t, "comm").unwrap(), 1).unwrap()).unwrap(), i128::from(b'w'));
    assert_eq!(v.bytes(&t).unwrap().len(), 72);
    // Through a pointer: `->` and `[i]`.
    mem.w64(T0 + 0x900, T0);
    let p = ValueRef::new(T0 + 0x900, TypeId(12));
    assert_eq!(v.int(&v.member(&p, "pid").unwrap()).unwrap(), 7);
    assert_eq!(v.deref(&p).unwrap(), ValueRef::new(T0, TypeId(6)));
    assert_eq!(v.index(&p, 0).unwrap(), ValueRef::new(T0, TypeId(6)));
    assert_eq!(v.index(&p, 1).unwrap().addr, T0 + 72);
}

#[test]
fn errors_name_the_type_member_or_address() {
    let b = btf();
    let mem = FakeVirt::default();
    task(&mem, T0, 7, b"x");
    let v = Values::new(&mem, &b);
    let t = v.at(T0, "struct task").unwrap();
    let e = v.member(&t, "nosuch").unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingType);
    assert!(e.message.contains("nosuch") && e.message.contains("struct task"), "{}", e.message);
    let e = v.at(T0, "struct nosuch").unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingType);
    assert!(e.message.contains("struct nosuch"), "{}", e.message);
    let e = v.index(&v.member(&t, "comm").unwrap(), 16).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingType);
    let e = v.int(&t).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingType);
    assert!(e.message.contains("struct task"), "{}", e.message);
    let e = v.string(&v.member(&t, "pid").unwrap(), None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingType);
    // A NULL char * reads at 0: an error at that address.
    let e = v.string(&v.member(&t, "name").unwrap(), None).unwrap_err();
    assert_eq!((e.kind, e.address()), (ErrorKind::Unmapped, Some(0)));
    let e = v.int(&v.at(0x1234, "int").unwrap()).unwrap_err();
    assert_eq!((e.kind, e.address()), (ErrorKind::Unmapped, Some(0x1234)));
}

#[test]
fn char_pointer_is_bounded() {
    let b = btf();
    let mem = FakeVirt::default();
    mem.write(T0, &[b'a'; 9000]);
    let v = Values::new(&mem, &b);
    assert_eq!(v.cstring_at(T0, MAX_CSTRING).unwrap().len(), MAX_CSTRING);
    assert_eq!(v.cstring_at(T0 + 10, 100).unwrap().len(), 100);
    // A string ending just before an unmapped page is read whole.
    mem.write(T0 + 0x2ffc, b"end\0");
    assert_eq!(v.cstring_at(T0 + 0x2ffc, MAX_CSTRING).unwrap(), b"end");
}

#[test]
fn list_walk_closes_or_names_the_head() {
    let b = btf();
    let mem = FakeVirt::default();
    let head = T0;
    let nodes = [T0 + 0x100, T0 + 0x200, T0 + 0x300];
    let link = |from: u64, to: u64| {
        mem.w64(from, to);
        mem.w64(to + 8, from);
    };
    link(head, nodes[0]);
    link(nodes[0], nodes[1]);
    link(nodes[1], nodes[2]);
    link(nodes[2], head);
    let v = Values::new(&mem, &b);
    assert_eq!(v.list_nodes(head, 100).unwrap(), nodes);
    // An empty list.
    mem.w64(T0 + 0x500, T0 + 0x500);
    assert!(v.list_nodes(T0 + 0x500, 100).unwrap().is_empty());
    // Too many for the limit.
    assert_eq!(v.list_nodes(head, 2).unwrap_err().kind, ErrorKind::Limit);
    // A cycle that skips the head.
    mem.w64(nodes[2], nodes[1]);
    let e = v.list_nodes(head, 100).unwrap_err();
    assert_eq!((e.kind, e.address()), (ErrorKind::Format, Some(head)));
    assert!(e.message.contains("does not close"), "{}", e.message);
    // A NULL next.
    mem.w64(nodes[1], 0);
    let e = v.list_nodes(head, 100).unwrap_err();
    assert_eq!((e.kind, e.address()), (ErrorKind::Format, Some(head)));
}
