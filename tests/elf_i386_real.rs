//! The real i386 fixture (tools/make_i386_fixture.py): QEMU's `dump-guest-memory paging=true` of a
//! Debian 686 guest with 192 MiB, reduced. QEMU writes every i386 PC guest as ELFCLASS64 + EM_386
//! (its BIOS ROM block ends at 4 GiB) while these PT_LOADs end far below 4 GiB.

use std::path::Path;

use vmcoreinfo::bitness::{self, EM_386};
use vmcoreinfo::dump::{Dump, OpenOptions};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/i386-qemu-elf-paging.core");
const TEXT: &[u8] = include_bytes!("fixtures/i386-qemu-elf.VMCOREINFO.txt");

#[test]
fn real_i386_paging_elf64_opens_as_i386() {
    let d = Dump::open(Path::new(FIXTURE), OpenOptions::default()).expect("a real QEMU i386 dump must open");
    assert_eq!(d.e_machine(), EM_386);
    assert!(d.class64(), "QEMU wrote it as ELFCLASS64");
    assert_eq!(d.machine(), "i386");
    assert_eq!(bitness::address_bits(d.e_machine(), d.class64()), 32);
    let e = d.elf().unwrap();
    assert!(e.max_phys_end() < 1 << 32, "the fixture's PT_LOADs must stay below 4 GiB");
    let why = bitness::class_diagnostic(e.e_machine, e.class64, e.max_phys_end()).unwrap();
    assert!(why.contains("below 4 GiB"), "{why}");
    assert_eq!(d.vmcoreinfo().unwrap().bytes(), TEXT);
}
