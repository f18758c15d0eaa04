//! btf::Btf over arbitrary bytes: the input split in two (a base blob and a module's split blob
//! on top of it); every type id asked every question the object walkers and the Python layer
//! ask. Errors are fine; panics, hangs and huge allocations are not.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vmcoreinfo::btf::{Btf, TypeId};
use vmcoreinfo::kobj::KernelTypes;

const PATHS: &[&str] = &["next", "tasks.next", "thread.sp", "mem[0].base", "a[1].b[2]", "x.y.z", "[0]"];
const SPELLINGS: &[&str] = &["struct task_struct", "union u", "enum e", "unsigned long", "char", "char *", "pid_t", "void"];

fn exercise(b: &Btf) {
    let max = b.max_id();
    // bounded work per input: the first 2048 ids and the last one (and one past it)
    let ids = (0..=max.min(2048)).chain([max, max.wrapping_add(1)]);
    for id in ids.map(TypeId) {
        let Ok(t) = b.ty(id) else { continue };
        let _ = b.resolve(id);
        let _ = b.size_of(id);
        let _ = b.type_name(id);
        let _ = b.array(id);
        let _ = b.enumerators(id);
        let _ = b.params(id);
        let _ = b.datasec_vars(id);
        let _ = b.int_encoding(id);
        if let Ok(ms) = b.members(id) {
            assert!(ms.len() <= t.vlen as usize);
            for m in ms.iter().take(16) {
                if let Ok(name) = std::str::from_utf8(m.name) {
                    if !name.is_empty() {
                        let _ = b.member_at(id, name);
                    }
                }
            }
        }
        for p in PATHS {
            let _ = b.member_at(id, p);
        }
        if let Ok(name) = std::str::from_utf8(t.name) {
            let _ = b.lookup(name);
            let _ = b.find_all(t.name);
        }
    }
    for s in SPELLINGS {
        let _ = b.lookup(s);
        let _ = KernelTypes::size_of(b, s);
        for p in PATHS {
            let _ = b.offset_of(s, p);
            let _ = b.member_size(s, p);
            let _ = b.has_member(s, p);
        }
    }
    let _ = KernelTypes::enumerator(b, "PIDTYPE_PID");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // the first two bytes say where the base blob ends
    let cut = (usize::from(data[0]) << 8 | usize::from(data[1])).min(data.len() - 2);
    let (base, split) = data[2..].split_at(cut);
    for ps in [8usize, 4] {
        let Ok(b) = Btf::parse(Arc::from(base), 0xffff_ffff_8100_0000, ps) else {
            // a whole input that is one blob
            if let Ok(b) = Btf::parse(Arc::from(&data[2..]), 0x1000, ps) {
                exercise(&b);
            }
            continue;
        };
        exercise(&b);
        if let Ok(s) = Btf::parse_split(Arc::from(split), 0xffff_ffff_c000_0000, Arc::new(b)) {
            exercise(&s);
        }
    }
});
