//! Unit tests of the type section on blobs built by a small test-only encoder (every kind, both
//! byte orders, split BTF, hostile records), and of the real vmlinux BTF fixture.

use std::sync::Arc;

use super::*;
use crate::error::{ErrorKind, Location};
use crate::kobj::KernelTypes;

const ADDR: u64 = 0xffff_ffff_8100_0000;

/// Builds a BTF blob: strings and type records, then the header in front.
struct Enc {
    be: bool,
    types: Vec<u8>,
    strs: Vec<u8>,
    /// The id the next type gets.
    next: u32,
    /// Offset the next string gets (continues the base's for split BTF).
    str_base: u32,
}

impl Enc {
    fn new(be: bool) -> Enc {
        Enc { be, types: Vec::new(), strs: vec![0], next: 1, str_base: 0 }
    }
    /// An encoder for split BTF over a base built by `base`. Like the kernel's module BTF, its
    /// string section starts with its first name, not with a NUL ("" is the base's offset 0).
    fn split(base: &Enc) -> Enc {
        Enc {
            be: base.be,
            types: Vec::new(),
            strs: Vec::new(),
            next: base.next,
            str_base: base.str_base + base.strs.len() as u32,
        }
    }
    fn u32(&mut self, v: u32) {
        let b = if self.be { v.to_be_bytes() } else { v.to_le_bytes() };
        self.types.extend_from_slice(&b);
    }
    /// The string offset of `s` (0 for "").
    fn s(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.str_base + self.strs.len() as u32;
        self.strs.extend_from_slice(s.as_bytes());
        self.strs.push(0);
        off
    }
    /// A common record; returns its id.
    fn rec(&mut self, name: &str, kind: u32, vlen: u32, kflag: bool, third: u32) -> u32 {
        let n = self.s(name);
        self.u32(n);
        self.u32(kind << 24 | vlen | u32::from(kflag) << 31);
        self.u32(third);
        self.next += 1;
        self.next - 1
    }
    fn int(&mut self, name: &str, size: u32, signed: bool) -> u32 {
        let id = self.rec(name, 1, 0, false, size);
        self.u32((u32::from(signed) << 24) | (size * 8));
        id
    }
    fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.rec("", 3, 0, false, 0);
        self.u32(elem);
        self.u32(index);
        self.u32(n);
        id
    }
    /// A struct (kind 4) or union (5); members (name, type, bit offset, bitfield size).
    fn comp(&mut self, kind: u32, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
        let kflag = members.iter().any(|m| m.3 != 0);
        let id = self.rec(name, kind, members.len() as u32, kflag, size);
        for &(n, t, off, bits) in members {
            let n = self.s(n);
            self.u32(n);
            self.u32(t);
            self.u32(if kflag { bits << 24 | off } else { off });
        }
        id
    }
    fn blob(&self) -> Arc<[u8]> {
        let mut v = Vec::new();
        let w16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&if self.be { x.to_be_bytes() } else { x.to_le_bytes() });
        let w32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&if self.be { x.to_be_bytes() } else { x.to_le_bytes() });
        w16(&mut v, 0xEB9F);
        v.extend_from_slice(&[1, 0]);
        for f in [24, 0, self.types.len() as u32, self.types.len() as u32, self.strs.len() as u32] {
            w32(&mut v, f);
        }
        v.extend_from_slice(&self.types);
        v.extend_from_slice(&self.strs);
        v.into()
    }
    fn parse(&self) -> Result<Btf> {
        Btf::parse(self.blob(), ADDR, 8)
    }
}

/// A blob with every kind 1-19; returns the encoder and the ids by name.
fn every_kind(be: bool) -> (Enc, std::collections::HashMap<&'static str, u32>) {
    let mut e = Enc::new(be);
    let mut ids = std::collections::HashMap::new();
    let int = e.int("int", 4, true);
    ids.insert("int", int);
    let ulong = e.int("long unsigned int", 8, false);
    ids.insert("ulong", ulong);
    let ch = e.int("char", 1, true);
    ids.insert("char", ch);
    let pch = e.rec("", 2, 0, false, ch);
    ids.insert("char *", pch);
    let arr = e.array(ch, int, 16);
    ids.insert("char[16]", arr);
    let lh = e.next; // struct list_head { struct list_head *next, *prev; }
    let plh = e.next + 1;
    e.comp(4, "list_head", 16, &[("next", plh, 0, 0), ("prev", plh, 64, 0)]);
    e.rec("", 2, 0, false, lh);
    ids.insert("list_head", lh);
    let pid_t = e.rec("pid_t", 8, 0, false, int);
    ids.insert("pid_t", pid_t);
    let vol = e.rec("", 9, 0, false, int);
    let cst = e.rec("", 10, 0, false, vol);
    let rst = e.rec("", 11, 0, false, pch);
    let tag = e.rec("user", 18, 0, false, cst);
    ids.insert("tagged", tag);
    // enum pid_type { PIDTYPE_PID, PIDTYPE_TGID, NEG = -2 } (signed)
    let en = e.rec("pid_type", 6, 3, true, 4);
    for (n, v) in [("PIDTYPE_PID", 0i32), ("PIDTYPE_TGID", 1), ("NEG", -2)] {
        let n = e.s(n);
        e.u32(n);
        e.u32(v as u32);
    }
    ids.insert("pid_type", en);
    let en64 = e.rec("big", 19, 1, false, 8);
    let n = e.s("BIG_ONE");
    e.u32(n);
    e.u32(0x1);
    e.u32(0x8000_0000);
    ids.insert("big", en64);
    let fwd = e.rec("later", 7, 0, false, 0);
    ids.insert("fwd", fwd);
    let fl = e.rec("double", 16, 0, false, 8);
    ids.insert("double", fl);
    // int (*)(int a, char *b)
    let proto = e.rec("", 13, 2, false, int);
    for (n, t) in [("a", int), ("b", pch)] {
        let n = e.s(n);
        e.u32(n);
        e.u32(t);
    }
    ids.insert("proto", proto);
    let func = e.rec("do_it", 12, 0, false, proto);
    ids.insert("func", func);
    // an anonymous union inside an anonymous struct, a bitfield and an array of structs
    let anon_u = e.comp(5, "", 8, &[("sp", ulong, 0, 0), ("ip", int, 0, 0)]);
    let anon_s = e.comp(4, "", 8, &[("", anon_u, 0, 0)]);
    let thread = e.comp(4, "thread_struct", 16, &[("", anon_s, 0, 0), ("flags", ulong, 64, 0)]);
    ids.insert("thread_struct", thread);
    let region = e.comp(4, "region", 16, &[("base", ulong, 0, 0), ("size", ulong, 64, 0)]);
    let regions = e.array(region, int, 3);
    let task = e.comp(
        4,
        "task_struct",
        136,
        &[
            ("__state", int, 0, 0),
            ("in_execve", int, 32, 1),
            ("in_iowait", int, 33, 1),
            ("tasks", lh, 64, 0),
            ("pid", pid_t, 192, 0),
            ("comm", arr, 224, 0),
            ("thread", thread, 384, 0),
            ("mem", regions, 512, 0),
        ],
    );
    ids.insert("task_struct", task);
    let var = e.rec("runqueues", 14, 0, false, task);
    e.u32(1);
    let ds = e.rec(".data..percpu", 15, 1, false, 136);
    e.u32(var);
    e.u32(0x40);
    e.u32(136);
    ids.insert("datasec", ds);
    let dtag = e.rec("hot", 17, 0, false, task);
    e.u32(0xffff_ffff);
    ids.insert("decl_tag", dtag);
    let _ = rst;
    (e, ids)
}

#[test]
fn every_kind_in_both_byte_orders() {
    for be in [false, true] {
        let (e, ids) = every_kind(be);
        let b = e.parse().unwrap();
        assert_eq!(b.big_endian(), be);
        assert_eq!(b.len() as u32, e.next - 1);
        assert_eq!(b.max_id(), e.next - 1);
        let kind = |id: u32| b.ty(TypeId(id)).unwrap().kind;
        // kinds 1..19 each appear, with their names as the Python layer spells them
        let names: std::collections::BTreeSet<&str> = b.ids().map(|id| b.ty(id).unwrap().kind.name()).collect();
        assert_eq!(names.len(), 19, "{names:?}");
        assert_eq!(b.ty(TypeId(0)).unwrap().kind, Kind::Void);
        let t = b.ty(TypeId(ids["task_struct"])).unwrap();
        assert_eq!((t.kind, t.name, t.size(), t.vlen, t.kind_flag), (Kind::Struct, &b"task_struct"[..], Some(136), 8, true));
        assert_eq!(b.ty(TypeId(ids["char *"])).unwrap().target(), Some(TypeId(ids["char"])));
        assert_eq!(b.array(TypeId(ids["char[16]"])).unwrap(), (TypeId(ids["char"]), TypeId(ids["int"]), 16));
        let ms = b.members(TypeId(ids["task_struct"])).unwrap();
        assert_eq!(ms.len(), 8);
        assert_eq!((ms[1].name, ms[1].bit_offset, ms[1].bit_size), (&b"in_execve"[..], 32, 1));
        assert_eq!((ms[3].name, ms[3].bit_offset, ms[3].bit_size), (&b"tasks"[..], 64, 0));
        let en = b.enumerators(TypeId(ids["pid_type"])).unwrap();
        assert_eq!(en, vec![(&b"PIDTYPE_PID"[..], 0), (&b"PIDTYPE_TGID"[..], 1), (&b"NEG"[..], -2)]);
        assert_eq!(b.enumerators(TypeId(ids["big"])).unwrap(), vec![(&b"BIG_ONE"[..], 0x8000_0000_0000_0001i128)]);
        assert_eq!(
            b.params(TypeId(ids["proto"])).unwrap(),
            vec![(&b"a"[..], TypeId(ids["int"])), (&b"b"[..], TypeId(ids["char *"]))]
        );
        let ds = b.datasec_vars(TypeId(ids["datasec"])).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!((kind(ds[0].0 .0), ds[0].1, ds[0].2), (Kind::Var, 0x40, 136));
        assert_eq!(kind(ids["fwd"]), Kind::Fwd);
        assert_eq!(kind(ids["decl_tag"]), Kind::DeclTag);
        let enc = b.int_encoding(TypeId(ids["int"])).unwrap();
        assert!(enc.signed && enc.bits == 32);
        assert!(b.members(TypeId(ids["int"])).unwrap().is_empty());
        assert!(b.enumerators(TypeId(ids["int"])).is_err());

        // lookups by C spelling
        assert_eq!(b.lookup("struct task_struct").unwrap(), TypeId(ids["task_struct"]));
        assert_eq!(b.lookup(" struct  list_head ").unwrap(), TypeId(ids["list_head"]));
        assert_eq!(b.lookup("unsigned long").unwrap(), TypeId(ids["ulong"]));
        assert_eq!(b.lookup("pid_t").unwrap(), TypeId(ids["pid_t"]));
        assert_eq!(b.lookup("enum pid_type").unwrap(), TypeId(ids["pid_type"]));
        assert_eq!(b.lookup("char *").unwrap(), TypeId(ids["char *"]));
        assert_eq!(b.lookup("void").unwrap(), TypeId(0));
        assert_eq!(b.lookup("struct later").unwrap(), TypeId(ids["fwd"]));
        assert_eq!(b.find(b"do_it", Kind::Func), Some(TypeId(ids["func"])));
        assert_eq!(b.find(b"do_it", Kind::Struct), None);
        assert_eq!(b.find_all(b"task_struct"), vec![TypeId(ids["task_struct"])]);
        let e = b.lookup("struct nothing").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingType);
        assert!(e.message.contains("struct nothing"), "{}", e.message);
        assert_eq!(b.lookup("union task_struct").unwrap_err().kind, ErrorKind::MissingType);

        // resolve, sizes
        assert_eq!(b.resolve(TypeId(ids["tagged"])).unwrap(), TypeId(ids["int"]));
        assert_eq!(b.size_of(TypeId(ids["tagged"])).unwrap(), 4);
        assert_eq!(b.size_of(TypeId(ids["char *"])).unwrap(), 8);
        assert_eq!(b.size_of(TypeId(ids["char[16]"])).unwrap(), 16);
        assert_eq!(b.size_of(TypeId(ids["big"])).unwrap(), 8);
        assert!(b.size_of(TypeId(ids["fwd"])).is_err());
        assert!(b.size_of(TypeId(0)).is_err());

        // member paths: through typedefs, anonymous struct and union, arrays
        let task = TypeId(ids["task_struct"]);
        let m = b.member_at(task, "tasks.next").unwrap();
        assert_eq!((m.bit_offset, m.bit_size), (64, 0));
        assert_eq!(b.member_at(task, "tasks.prev").unwrap().bit_offset, 128);
        assert_eq!(b.member_at(task, "thread.sp").unwrap().bit_offset, 384);
        assert_eq!(b.member_at(task, "thread.ip").unwrap().type_id, TypeId(ids["int"]));
        assert_eq!(b.member_at(task, "thread.flags").unwrap().bit_offset, 448);
        assert_eq!(b.member_at(task, "mem[0].base").unwrap().bit_offset, 512);
        assert_eq!(b.member_at(task, "mem[2].size").unwrap().bit_offset, 512 + 2 * 128 + 64);
        assert_eq!(b.member_at(task, "comm[3]").unwrap().bit_offset, 224 + 24);
        let m = b.member_at(task, "in_iowait").unwrap();
        assert_eq!((m.bit_offset, m.bit_size), (33, 1));
        for bad in ["mem[3].base", "mem[x]", "mem[0", "pid[0]", "thread.nope", "tasks.next.prev", "mem[0]x"] {
            let e = b.member_at(task, bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::MissingType, "{bad}: {e:?}");
        }
        assert!(b.member_at(task, &"a.".repeat(100)).is_err());

        // the KernelTypes questions the object walkers ask
        let kt: &dyn KernelTypes = &b;
        assert_eq!(kt.offset_of("struct task_struct", "tasks").unwrap(), 8);
        assert_eq!(kt.offset_of("struct task_struct", "thread.sp").unwrap(), 48);
        assert_eq!(kt.offset_of("struct task_struct", "mem[1].base").unwrap(), 64 + 16);
        assert_eq!(kt.size_of("struct task_struct").unwrap(), 136);
        assert_eq!(kt.size_of("pid_t").unwrap(), 4);
        assert_eq!(kt.member_size("struct task_struct", "comm").unwrap(), 16);
        assert_eq!(kt.member_size("struct task_struct", "__state").unwrap(), 4);
        assert!(kt.has_member("struct task_struct", "thread.sp"));
        assert!(!kt.has_member("struct task_struct", "foo"));
        assert!(!kt.has_member("struct nothing", "foo"));
        assert_eq!(kt.enumerator("PIDTYPE_TGID"), Some(1));
        assert_eq!(kt.enumerator("NEG"), Some(-2));
        assert_eq!(kt.enumerator("BIG_ONE"), None, "does not fit an i64");
        assert_eq!(kt.enumerator("NOPE"), None);
        let e = kt.offset_of("struct task_struct", "foo").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingType);
        assert!(e.message.contains("has no member `foo` in struct task_struct"), "{}", e.message);
        let e = kt.offset_of("struct task_struct", "in_execve").unwrap_err();
        assert!(e.message.contains("bitfield"), "{}", e.message);
        let labeled = e_parse_labeled(be);
        let e = KernelTypes::size_of(&labeled, "struct nothing").unwrap_err();
        assert!(e.message.contains("Linux 6.1.0-test"), "{}", e.message);
        assert_eq!(b.type_name(TypeId(ids["char[16]"])), "char[16]");
        assert_eq!(b.type_name(TypeId(ids["tagged"])), "const volatile int");
    }
}

fn e_parse_labeled(be: bool) -> Btf {
    every_kind(be).0.parse().unwrap().with_label("Linux 6.1.0-test")
}

#[test]
fn split_btf_continues_the_base() {
    for be in [false, true] {
        let (base_enc, ids) = every_kind(be);
        let base = Arc::new(base_enc.parse().unwrap());
        let mut m = Enc::split(&base_enc);
        // struct module_thing { struct list_head list; pid_t owner; } and a typedef of a base type
        let n = m.s("module_thing");
        let first = m.next;
        m.u32(n);
        m.u32(4 << 24 | 2);
        m.u32(24);
        let (s_list, s_owner) = (m.s("list"), m.s("owner"));
        for (nm, t, off) in [(s_list, ids["list_head"], 0), (s_owner, ids["pid_t"], 128)] {
            m.u32(nm);
            m.u32(t);
            m.u32(off);
        }
        m.next += 1;
        // a name that reuses a base string offset ("int")
        m.rec("", 8, 0, false, ids["int"]);
        let int_name_off: u32 = 1; // "int" is the base's first string
        let last = m.types.len() - 12;
        let b = if be { int_name_off.to_be_bytes() } else { int_name_off.to_le_bytes() };
        m.types[last..last + 4].copy_from_slice(&b);
        let s = Btf::parse_split(m.blob(), ADDR + 0x10_0000, base.clone()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.max_id(), first + 1);
        let id = s.lookup("struct module_thing").unwrap();
        assert_eq!(id, TypeId(first));
        assert_eq!(s.lookup("struct task_struct").unwrap(), TypeId(ids["task_struct"]), "base types are found too");
        assert_eq!(s.member_at(id, "list.prev").unwrap().bit_offset, 64);
        assert_eq!(s.size_of(s.member_at(id, "owner").unwrap().type_id).unwrap(), 4);
        assert_eq!(s.ty(TypeId(first + 1)).unwrap().name, b"int");
        assert_eq!(s.find_all(b"int").len(), 2);
        assert_eq!(s.enumerator("PIDTYPE_TGID"), Some(1));
        assert!(s.ty(TypeId(first + 2)).is_err());
        // a split blob may not refer past its own last id
        let mut bad = Enc::split(&base_enc);
        bad.rec("", 2, 0, false, first + 5);
        let e = Btf::parse_split(bad.blob(), ADDR, base.clone()).unwrap_err();
        assert!(e.message.contains("past the last id"), "{}", e.message);
        // nor be of the other byte order
        let other = Enc::split(&every_kind(!be).0);
        let e = Btf::parse_split(other.blob(), ADDR, base).unwrap_err();
        assert!(e.message.contains("byte order"), "{}", e.message);
    }
}

/// The error of parsing `e`, with its offset from ADDR.
fn parse_err(e: &Enc) -> (ErrorKind, u64, String) {
    let err = e.parse().unwrap_err();
    let Some(Location::Virt(a)) = err.location else { panic!("no address: {err:?}") };
    (err.kind, a - ADDR, err.message)
}

#[test]
fn hostile_records_end_in_typed_errors() {
    // unknown kind 20, at the second record (offset 24 + 16)
    let mut e = Enc::new(false);
    e.int("int", 4, true);
    e.rec("x", 20, 0, false, 0);
    let (k, off, m) = parse_err(&e);
    assert_eq!((k, off), (ErrorKind::Format, 24 + 16));
    assert!(m.contains("unknown kind 20") && m.contains("type 2"), "{m}");

    // a huge vlen runs past the section
    let mut e = Enc::new(false);
    e.rec("s", 4, 0xffff, false, 8);
    let (_, off, m) = parse_err(&e);
    assert_eq!(off, 24);
    assert!(m.contains("65535 entries run past"), "{m}");

    // a trailer cut by the end of the section (an INT without its encoding word)
    let mut e = Enc::new(false);
    e.rec("int", 1, 0, false, 4);
    assert!(parse_err(&e).2.contains("run past"));
    // a record cut short
    let mut e = Enc::new(false);
    e.int("int", 4, true);
    e.types.extend_from_slice(&[0; 8]);
    let (_, off, m) = parse_err(&e);
    assert_eq!(off, 24 + 16);
    assert!(m.contains("cut by the end"), "{m}");

    // a name past the string section
    let mut e = Enc::new(false);
    e.u32(1000);
    e.u32(2 << 24);
    e.u32(0);
    let (_, off, m) = parse_err(&e);
    assert_eq!(off, 24);
    assert!(m.contains("string offset 1000 past"), "{m}");
    // a member name past the string section: parse succeeds, the member read fails
    let mut e = Enc::new(false);
    let int = e.int("int", 4, true);
    let s = e.comp(4, "s", 4, &[("a", int, 0, 0)]);
    let l = e.types.len();
    e.types[l - 12..l - 8].copy_from_slice(&5000u32.to_le_bytes());
    let b = e.parse().unwrap();
    let err = b.members(TypeId(s)).unwrap_err();
    assert!(err.message.contains("string offset 5000"), "{}", err.message);
    assert!(b.member_at(TypeId(s), "a").is_err());

    // references to ids that do not exist
    for (kind, trailer) in [(2u32, 0usize), (8, 0), (3, 3)] {
        let mut e = Enc::new(false);
        e.int("int", 4, true);
        e.rec("", kind, 0, false, if trailer == 0 { 99 } else { 0 });
        for _ in 0..trailer {
            e.u32(77);
        }
        let (_, _, m) = parse_err(&e);
        assert!(m.contains("past the last id 2"), "{m}");
    }
    let mut e = Enc::new(false);
    e.comp(4, "s", 4, &[("a", 42, 0, 0)]);
    assert!(parse_err(&e).2.contains("a member refers to type 42"));

    // a typedef loop: a -> b -> a
    let mut e = Enc::new(false);
    e.rec("a", 8, 0, false, 2);
    e.rec("b", 8, 0, false, 1);
    let s = e.comp(4, "s", 8, &[("x", 1, 0, 0)]);
    let b = e.parse().unwrap();
    let err = b.resolve(TypeId(1)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Format);
    assert!(err.message.contains("refers back"), "{}", err.message);
    assert!(b.size_of(TypeId(1)).is_err());
    assert!(b.lookup("a").is_ok());
    assert!(KernelTypes::size_of(&b, "a").is_err());
    assert!(b.member_at(TypeId(s), "x.y").is_err());
    assert!(b.type_name(TypeId(1)).contains("a"));

    // a struct whose anonymous member is itself
    let mut e = Enc::new(false);
    e.comp(4, "s", 8, &[("", 1, 0, 0)]);
    let b = e.parse().unwrap();
    assert!(b.member_at(TypeId(1), "x").is_err());
    // an array of itself
    let mut e = Enc::new(false);
    e.int("int", 4, true);
    e.array(2, 1, 4);
    let b = e.parse().unwrap();
    assert!(b.size_of(TypeId(2)).is_err());
    // an array whose size overflows u64
    let mut e = Enc::new(false);
    let int = e.int("int", 4, true);
    let a1 = e.array(int, int, u32::MAX);
    let a2 = e.array(a1, int, u32::MAX);
    let a3 = e.array(a2, int, u32::MAX);
    let b = e.parse().unwrap();
    assert_eq!(b.size_of(TypeId(a1)).unwrap(), 4 * u64::from(u32::MAX));
    assert!(b.size_of(TypeId(a2)).unwrap_err().message.contains("overflows"));
    assert!(b.size_of(TypeId(a3)).is_err());

    // anonymous members that share types: 2^40 paths, bounded by the search budget
    let mut e = Enc::new(false);
    let int = e.int("int", 4, true);
    let mut below = e.comp(4, "", 4, &[("leaf", int, 0, 0)]);
    for _ in 0..40 {
        below = e.comp(4, "", 4, &[("", below, 0, 0), ("", below, 0, 0)]);
    }
    let top = e.comp(4, "top", 4, &[("", below, 0, 0)]);
    let b = e.parse().unwrap();
    assert_eq!(b.member_at(TypeId(top), "leaf").unwrap().type_id, TypeId(int));
    let t0 = std::time::Instant::now();
    let err = b.member_at(TypeId(top), "missing").unwrap_err();
    assert!(err.message.contains("members to search"), "{}", err.message);
    assert!(t0.elapsed().as_secs() < 10);

    // a deep pointer spelling is refused, not recursed into
    let (e, _) = every_kind(false);
    let b = e.parse().unwrap();
    assert!(b.lookup(&format!("char {}", "*".repeat(100_000))).is_err());
    assert!(b.lookup("char **").is_err(), "no char ** in the blob");
}

#[test]
fn empty_type_section_parses() {
    let e = Enc::new(true);
    let b = e.parse().unwrap();
    assert!(b.is_empty());
    assert_eq!(b.max_id(), 0);
    assert!(b.ty(TypeId(1)).is_err());
    assert!(b.lookup("int").is_err());
}

/// The vmlinux BTF of the Debian 12 x86_64 guest (`linux-image-6.1.0-*-amd64`), read from its
/// dump between `__start_BTF` and `__stop_BTF`, zstd-compressed.
fn fixture() -> Btf {
    let z = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/btf/x86_64-6.1.btf.zst")).unwrap();
    let data = zstd::decode_all(&z[..]).unwrap();
    Btf::parse(data.into(), ADDR, 8).unwrap()
}

#[test]
fn real_vmlinux_btf() {
    let b = fixture();
    assert!(b.len() > 50_000, "{}", b.len());
    let kt: &dyn KernelTypes = &b;
    // values from `bpftool btf dump file BLOB` (see tests/fixtures/btf/README)
    let expect = include_str!("../../tests/fixtures/btf/x86_64-6.1.expected");
    let mut checked = 0;
    for line in expect.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["size", ty @ .., n] => assert_eq!(kt.size_of(&ty.join(" ")).unwrap(), n.parse::<u64>().unwrap(), "{line}"),
            ["offset", s, ty, path, n] => {
                assert_eq!(kt.offset_of(&format!("{s} {ty}"), path).unwrap(), n.parse::<u64>().unwrap(), "{line}")
            }
            _ => panic!("bad line {line}"),
        }
        checked += 1;
    }
    assert!(checked >= 8);
    // every struct and union has a size, every member path of task_struct resolves
    let mut structs = 0;
    for id in b.ids() {
        let t = b.ty(id).unwrap();
        if matches!(t.kind, Kind::Struct | Kind::Union) {
            assert_eq!(b.size_of(id).unwrap(), t.size().unwrap());
            for m in b.members(id).unwrap() {
                if !m.name.is_empty() {
                    let at = b.member_at(id, std::str::from_utf8(m.name).unwrap()).unwrap();
                    assert_eq!(at.bit_offset, m.bit_offset);
                }
            }
            structs += 1;
        }
        // every type's questions end (errors are fine for sizeless kinds)
        let _ = b.size_of(id);
        let _ = b.resolve(id).unwrap();
    }
    assert!(structs > 5000, "{structs}");
    assert!(kt.enumerator("PIDTYPE_TGID").is_some());
}

/// `cargo test --release --lib btf::types::tests::parse_timing -- --ignored --nocapture`
#[test]
#[ignore = "timing; run in release"]
fn parse_timing() {
    let z = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/btf/x86_64-6.1.btf.zst")).unwrap();
    let data: Arc<[u8]> = zstd::decode_all(&z[..]).unwrap().into();
    let mut best = f64::MAX;
    for _ in 0..10 {
        let t0 = std::time::Instant::now();
        let b = Btf::parse(data.clone(), ADDR, 8).unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
        assert!(!b.is_empty());
    }
    let b = Btf::parse(data.clone(), ADDR, 8).unwrap();
    let t0 = std::time::Instant::now();
    let n = 1000;
    for _ in 0..n {
        let id = b.lookup("struct task_struct").unwrap();
        b.member_at(id, "thread.sp").unwrap();
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    println!(
        "Btf::parse of {} bytes, {} types: best of 10 {:.2} ms; lookup+member_at {:.1} us",
        data.len(),
        b.len(),
        best * 1e3,
        per * 1e6
    );
}
