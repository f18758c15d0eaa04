//! Writers on the committed fixtures (real QEMU 7.2 and makedumpfile 1.7.2 dumps, reduced; LiME
//! images of their real pages): every output reads back with the input's physical pages and
//! VMCOREINFO text, and errors leave no file.

use std::path::{Path, PathBuf};

use vmcoreinfo::dump::{Dump, Format, OpenOptions};
use vmcoreinfo::write::elf::{write_elf, ElfOptions};
use vmcoreinfo::write::kdump::{write_kdump, Compression, KdumpOptions};
use vmcoreinfo::write::{VmcoreinfoSource, WriteReport};
use vmcoreinfo::ErrorKind;

const INPUTS: &[&str] = &[
    "x86_64-qemu-elf.core",
    "x86_64-qemu-elf-paging.core",
    "arm64-qemu-elf.core",
    "x86_64-makedumpfile-d31.elf",
    "x86_64-qemu.lime",
    "arm64-qemu.lime",
    "kdump/qemu-x86_64-zlib.kdump",
    "kdump/qemu-x86_64-zlib.flat",
    "kdump/qemu-arm64-zlib.kdump",
    "kdump/qemu-arm64-zlib.flat",
    "kdump/md-x86_64-zlib-d31.kdump",
    "kdump/md-x86_64-lzo-d31.kdump",
    "kdump/md-x86_64-zstd-d31.kdump",
    "kdump/md-x86_64-snappy-d31.kdump",
    "kdump/md-x86_64-none-d31.kdump",
    "kdump/md-x86_64-zlib-d31.flat",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vmci-convert-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn open(p: &Path) -> Dump {
    Dump::open(p, OpenOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every byte of every input range reads the same from the output; returns the bytes compared.
fn same_memory(input: &Dump, output: &Dump) -> u64 {
    let mut n = 0;
    let mut a = vec![0u8; 1 << 16];
    let mut b = vec![0u8; 1 << 16];
    for r in input.memory_ranges().unwrap() {
        let mut p = r.start;
        while p < r.end {
            let len = ((r.end - p) as usize).min(a.len());
            input.read_phys(p, &mut a[..len]).unwrap();
            output.read_phys(p, &mut b[..len]).unwrap_or_else(|e| panic!("output at {p:#x}: {e}"));
            assert!(a[..len] == b[..len], "pages differ at {p:#x}");
            p += len as u64;
            n += len as u64;
        }
    }
    n
}

/// Open with `p_filesz < p_memsz` tails read as zeros (what `exclude_zero` leaves out is zero
/// pages), whatever the reader's default for tails.
fn open_tails_zero(p: &Path) -> Dump {
    Dump::open(p, OpenOptions { elf_tails_absent: false, ..OpenOptions::default() })
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Like [`same_memory`] over every 97th range (the ELF reader's lookups are slow in a debug
/// build with 70,000 segments).
fn sampled_memory(input: &Dump, output: &Dump) -> u64 {
    let mut n = 0;
    for r in input.memory_ranges().unwrap().iter().step_by(97) {
        let mut a = vec![0u8; (r.end - r.start) as usize];
        let mut b = vec![1u8; a.len()];
        input.read_phys(r.start, &mut a).unwrap();
        output.read_phys(r.start, &mut b).unwrap();
        assert!(a == b, "differs at {:#x}", r.start);
        n += a.len() as u64;
    }
    n
}

fn check(name: &str, out: &Path, report: &WriteReport) {
    let input = open(&fixture(name));
    let output = open_tails_zero(out);
    assert!(same_memory(&input, &output) > 0, "{name}: no memory compared");
    let want = input.vmcoreinfo().unwrap();
    assert_eq!(output.vmcoreinfo().unwrap().bytes(), want.bytes(), "{name}: VMCOREINFO text");
    let expect = if input.format().is_memory_image() { "scan" } else { "note" };
    assert_eq!(report.vmcoreinfo.name(), expect, "{name}");
    assert_eq!(output.machine(), input.machine(), "{name}: machine");
    assert_eq!(output.big_endian(), input.big_endian());
    // The VMCOREINFO note is the last note, and CPU notes are carried over.
    let names: Vec<Vec<u8>> = output.notes().map(|(_, n)| n.unwrap().name.to_vec()).collect();
    assert_eq!(names.last().map(Vec::as_slice), Some(&b"VMCOREINFO"[..]), "{name}");
    let in_core = input.notes().filter(|(_, n)| n.as_ref().unwrap().name == b"CORE").count();
    assert_eq!(names.iter().filter(|n| n.as_slice() == b"CORE").count(), in_core, "{name}: CORE notes");
}

#[test]
fn elf_round_trips() {
    let dir = tmpdir("elf");
    for (i, name) in INPUTS.iter().enumerate() {
        for exclude_zero in [false, true] {
            let out = dir.join(format!("{i}-{exclude_zero}.core"));
            let r = write_elf(&open(&fixture(name)), &out, ElfOptions { exclude_zero }, None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            check(name, &out, &r);
            let o = open_tails_zero(&out);
            assert_eq!(o.format(), Format::Elf);
            let e = o.elf().unwrap();
            let class64 = e.class64;
            let bytes = std::fs::read(&out).unwrap();
            // e_ehsize right, program headers right after the ELF header.
            let (ehsize, phoff) = if class64 {
                (u16::from_le_bytes([bytes[52], bytes[53]]), u64::from_le_bytes(bytes[32..40].try_into().unwrap()))
            } else {
                (u16::from_le_bytes([bytes[40], bytes[41]]), u64::from(u32::from_le_bytes(bytes[28..32].try_into().unwrap())))
            };
            assert_eq!(u64::from(ehsize), phoff, "{name}");
            assert_eq!(ehsize, if class64 { 64 } else { 52 });
            assert_eq!(r.file_bytes, bytes.len() as u64);
            if exclude_zero {
                assert!(e.loads.iter().any(|l| l.filesz < l.memsz) || r.zero_pages == 0, "{name}: zero tails");
            } else {
                assert!(e.loads.iter().all(|l| l.filesz == l.memsz && l.paddr == l.vaddr), "{name}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kdump_round_trips() {
    let dir = tmpdir("kdump");
    let comps = [Compression::Zlib, Compression::Zstd, Compression::Snappy, Compression::None, Compression::Lzo];
    for (i, name) in INPUTS.iter().enumerate() {
        for c in comps {
            if !c.available() {
                continue;
            }
            let out = dir.join(format!("{i}-{}.kdump", c.name()));
            let input = open(&fixture(name));
            let r = write_kdump(&input, &out, KdumpOptions { compression: c }, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            check(name, &out, &r);
            let o = open(&out);
            let k = o.kdump().unwrap();
            assert_eq!(k.header_version(), 6);
            assert_eq!(u64::from(k.block_size()), r.page_size);
            assert_eq!(k.compression_flags(), c.flag(), "{name}");
            assert_eq!(k.machine(), if o.machine() == "aarch64" { "aarch64" } else { "x86_64" }, "{name}");
            let pb = o.phys_base_sources().unwrap();
            assert_eq!(pb.agree(), Some(true), "{name}: phys_base in the header is the text's: {pb:?}");
            assert_eq!(r.file_bytes, std::fs::metadata(&out).unwrap().len());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kdump_output_is_deterministic() {
    let dir = tmpdir("det");
    let input = open(&fixture("kdump/qemu-arm64-zlib.kdump"));
    let a = dir.join("a");
    let b = dir.join("b");
    write_kdump(&input, &a, KdumpOptions::default(), None).unwrap();
    write_kdump(&input, &b, KdumpOptions::default(), None).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn qemu_phys_base_is_corrected() {
    // QEMU's kdump header holds x86_64 phys_base read as hex from the decimal text.
    let dir = tmpdir("pb");
    let input = open(&fixture("kdump/qemu-x86_64-zlib.kdump"));
    let pb_in = input.phys_base_sources().unwrap();
    let out = dir.join("o.kdump");
    let r = write_kdump(&input, &out, KdumpOptions::default(), None).unwrap();
    let pb_out = open(&out).phys_base_sources().unwrap();
    assert_eq!(pb_out.header, pb_in.text.map(|t| t as u64));
    assert_eq!(pb_in.agree() == Some(false), r.diagnostics.iter().any(|d| d.code == "phys-base-corrected"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dump_without_note_gets_the_scanned_one() {
    let dir = tmpdir("repair");
    let input = open(&fixture("x86_64-qemu-elf-no-vmcoreinfo.core"));
    assert_eq!(input.vmcoreinfo().unwrap_err().kind, ErrorKind::NoVmcoreinfo);
    let out = dir.join("o.core");
    let r = write_elf(&input, &out, ElfOptions::default(), None).unwrap();
    let scan = input.image_scan().unwrap();
    match &scan.chosen {
        Some((_, blob)) => {
            assert!(matches!(r.vmcoreinfo, VmcoreinfoSource::Scan { .. }));
            assert!(r.diagnostics.iter().any(|d| d.code == "vmcoreinfo-from-scan"));
            assert_eq!(open(&out).vmcoreinfo().unwrap().bytes(), blob.bytes());
        }
        None => {
            assert_eq!(r.vmcoreinfo, VmcoreinfoSource::Absent);
            assert!(r.diagnostics.iter().any(|d| d.code == "no-vmcoreinfo"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_leave_no_file() {
    let dir = tmpdir("err");
    let input = open(&fixture("x86_64-qemu-elf.core"));
    // Unwritable destination: a missing directory.
    let e = write_elf(&input, &dir.join("missing/o.core"), ElfOptions::default(), None).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io { errno: Some(2) }), "{e}");
    assert!(e.path.as_deref().unwrap().ends_with("missing/o.core"));
    // A destination that is a directory.
    let e = write_kdump(&input, &dir, KdumpOptions::default(), None).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io { .. }), "{e}");
    // Cancelled from the progress callback: no file, no temporary.
    let out = dir.join("c.core");
    let mut calls = 0;
    let mut cancel = |_d: u64, _t: u64| {
        calls += 1;
        false
    };
    let e = write_kdump(&input, &out, KdumpOptions::default(), Some(&mut cancel)).unwrap_err();
    assert!(vmcoreinfo::write::is_cancelled(&e), "{e}");
    assert_eq!(calls, 1);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left behind");
    let e = write_elf(&input, &out, ElfOptions::default(), Some(&mut |_, _| false)).unwrap_err();
    assert!(vmcoreinfo::write::is_cancelled(&e));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn write_errors_name_the_output_and_leave_no_file() {
    // The data write fails (EFBIG past RLIMIT_FSIZE) in tests/test_convert.py, which can set the
    // limit in a child process; here: a destination whose directory refuses new files.
    let dir = tmpdir("ro");
    let mut perm = std::fs::metadata(&dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o555);
    std::fs::set_permissions(&dir, perm.clone()).unwrap();
    let input = open(&fixture("x86_64-qemu-elf.core"));
    let r = write_elf(&input, &dir.join("o.core"), ElfOptions::default(), None);
    let is_root = std::fs::File::create(dir.join("probe")).is_ok();
    let _ = std::fs::remove_file(dir.join("probe"));
    if !is_root {
        let e = r.unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Io { errno: Some(13) }), "{e}");
        assert!(e.path.as_deref().unwrap().ends_with("o.core"));
    }
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&dir, perm).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A little-endian ELF64 core for x86_64 with the given notes and one PT_LOAD per (paddr, data).
fn build_elf(notes: &[u8], loads: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let phnum = loads.len() + 1;
    let xnum = phnum >= 0xffff;
    let phoff = 64u64;
    let shoff = phoff + 56 * phnum as u64;
    let mut off = shoff + if xnum { 64 } else { 0 };
    let mut v = Vec::new();
    v.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&62u16.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&phoff.to_le_bytes());
    v.extend_from_slice(&(if xnum { shoff } else { 0 }).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    for x in [64u16, 56, if xnum { 0xffff } else { phnum as u16 }, if xnum { 64 } else { 0 }, u16::from(xnum), 0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let mut ph = |t: u32, off: u64, addr: u64, size: u64| {
        v.extend_from_slice(&t.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        for x in [off, addr, addr, size, size, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
    };
    ph(4, off, 0, notes.len() as u64);
    off += notes.len() as u64;
    for (addr, data) in loads {
        ph(1, off, *addr, data.len() as u64);
        off += data.len() as u64;
    }
    if xnum {
        let mut sh = [0u8; 64];
        sh[44..48].copy_from_slice(&(phnum as u32).to_le_bytes());
        v.extend_from_slice(&sh);
    }
    v.extend_from_slice(notes);
    for (_, data) in loads {
        v.extend_from_slice(data);
    }
    v
}

fn vmcoreinfo_note(text: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&11u32.to_le_bytes());
    n.extend_from_slice(&(text.len() as u32).to_le_bytes());
    n.extend_from_slice(&0u32.to_le_bytes());
    n.extend_from_slice(b"VMCOREINFO\0\0");
    n.extend_from_slice(text);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

#[test]
fn more_than_65535_ranges_use_pn_xnum_and_partial_pages_are_reported() {
    let dir = tmpdir("xnum");
    let text = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff82000000\nNUMBER(phys_base)=-167772160\n";
    // 70,000 ranges of 16 bytes, one per page: no range fills its page.
    let loads: Vec<(u64, Vec<u8>)> = (0..70_000u64).map(|i| (i * 4096 + 32, (i as u32 | 1).to_le_bytes().repeat(4))).collect();
    let src = dir.join("many.core");
    std::fs::write(&src, build_elf(&vmcoreinfo_note(text), &loads)).unwrap();
    let input = open(&src);
    assert_eq!(input.memory_ranges().unwrap().len(), 70_000);
    let out = dir.join("o.core");
    let r = write_elf(&input, &out, ElfOptions::default(), None).unwrap();
    assert_eq!(r.segments, 70_000);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[56], bytes[57]]), 0xffff, "e_phnum = PN_XNUM");
    let o = open(&out);
    assert_eq!(o.elf().unwrap().phnum, 70_001);
    assert_eq!(o.memory_ranges().unwrap(), input.memory_ranges().unwrap());
    assert_eq!(sampled_memory(&input, &o), 16 * 70_000_u64.div_ceil(97));
    assert_eq!(o.vmcoreinfo().unwrap().bytes(), text);

    let out = dir.join("o.kdump");
    let r = write_kdump(&input, &out, KdumpOptions::default(), None).unwrap();
    assert_eq!(r.pages, 70_000);
    assert!(r.diagnostics.iter().any(|d| d.code == "partial-pages"), "{:?}", r.diagnostics);
    let o = open(&out);
    assert_eq!(sampled_memory(&input, &o), 16 * 70_000_u64.div_ceil(97));
    let mut page = vec![1u8; 4096];
    o.read_phys(4096, &mut page).unwrap();
    assert!(page[..32].iter().all(|&b| b == 0) && page[48..].iter().all(|&b| b == 0), "the rest of the page is zeros");
    // QEMU-style header phys_base would be the hex reading; ours is the text's.
    assert_eq!(o.phys_base_sources().unwrap().header, Some(-167_772_160i64 as u64));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flattened_stream_reassembles_to_the_same_dump() {
    use vmcoreinfo::write::kdump::write_kdump_to;
    use vmcoreinfo::write::Target;
    let dir = tmpdir("flat");
    for name in ["x86_64-qemu-elf.core", "kdump/qemu-arm64-zlib.flat", "x86_64-qemu.lime"] {
        let input = open(&fixture(name));
        let mut buf: Vec<u8> = Vec::new();
        let r = write_kdump_to(
            &input,
            Target::Flattened { stream: Box::new(&mut buf), name: "<stdout>" },
            KdumpOptions { compression: Compression::Zstd },
            None,
        )
        .unwrap();
        let out = dir.join("o.flat");
        std::fs::write(&out, &buf).unwrap();
        let o = open(&out);
        assert_eq!(o.format(), Format::FlattenedKdump, "{name}");
        assert!(o.flattened().unwrap().has_end_marker);
        assert_eq!(o.flattened().unwrap().logical_len, r.file_bytes);
        assert!(same_memory(&input, &o) > 0);
        assert_eq!(o.vmcoreinfo().unwrap().bytes(), input.vmcoreinfo().unwrap().bytes());
        // The same bytes as the file writer, once reassembled.
        let file = dir.join("o.kdump");
        write_kdump(&input, &file, KdumpOptions { compression: Compression::Zstd }, None).unwrap();
        let plain = std::fs::read(&file).unwrap();
        let mut reassembled = vec![0u8; plain.len()];
        o.kdump().unwrap().source().read_exact_at(&mut reassembled, 0).unwrap();
        assert!(reassembled == plain, "{name}: reassembled flattened output differs from the file output");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A byte source whose reads past its first 8 KiB (the head a dump reads at open) fail with EIO:
/// a failing disk under a raw image.
struct FailsPastHead(usize);

impl vmcoreinfo::source::ReadAt for FailsPastHead {
    fn size(&self) -> u64 {
        self.0 as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> vmcoreinfo::Result<()> {
        if offset + buf.len() as u64 > 8192 {
            return Err(vmcoreinfo::Error::io(&std::io::Error::from_raw_os_error(5), Some(offset), "read failed"));
        }
        buf.fill(0);
        Ok(())
    }
}

#[test]
fn a_failed_scan_stops_the_writers_instead_of_an_unknown_machine() {
    // A memory image names no machine: its identity is the scan's. When the scan fails, the
    // writers return its error (they never encode the unknown-machine default of the accessors).
    let dir = tmpdir("scanfail");
    let o = OpenOptions { format: Some(Format::Raw), mmap: false, ..OpenOptions::default() };
    let src = std::sync::Arc::new(FailsPastHead(1 << 20));
    let input = Dump::from_source(src, std::sync::Arc::from("broken.raw"), o).unwrap();
    assert!(matches!(input.identity().unwrap_err().kind, ErrorKind::Io { errno: Some(5) }));
    assert_eq!(input.machine(), "unknown", "the display accessor keeps its default");
    let e = write_elf(&input, &dir.join("o.core"), ElfOptions::default(), None).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io { errno: Some(5) }), "{e}");
    let e = write_kdump(&input, &dir.join("o.kdump"), KdumpOptions::default(), None).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Io { errno: Some(5) }), "{e}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}
