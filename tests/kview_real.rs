//! The kernel log and kernel symbols on the real-guest dumps (run with
//! `VMCOREINFO_REALGUEST_DIR=/path/to/tests/realguest/out`; skipped otherwise), read through the
//! x86_64 kernel-image mapping alone (`pa = va - 0xffffffff80000000 + phys_base`), which covers
//! the kallsyms tables and the static printk ring.

use std::path::PathBuf;
use std::time::Instant;

use vmcoreinfo::dump::{Dump, OpenOptions};
use vmcoreinfo::kview::{kallsyms, printk, VirtMemory};
use vmcoreinfo::text::Index;
use vmcoreinfo::{Error, Result};

const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

struct KernelImage<'d> {
    dump: &'d Dump,
    phys_base: u64,
    size: u64,
}

impl VirtMemory for KernelImage<'_> {
    fn read_virt(&self, vaddr: u64, buf: &mut [u8]) -> Result<()> {
        let off = vaddr.wrapping_sub(START_KERNEL_MAP);
        if vaddr < START_KERNEL_MAP || off.saturating_add(buf.len() as u64) > self.size {
            return Err(Error::unmapped(vaddr, "outside the kernel image mapping"));
        }
        self.dump.read_phys(off.wrapping_add(self.phys_base), buf)
    }
    fn pointer_size(&self) -> usize {
        8
    }
    fn big_endian(&self) -> bool {
        false
    }
}

fn x86_dumps() -> Vec<PathBuf> {
    let Some(root) = std::env::var_os("VMCOREINFO_REALGUEST_DIR") else {
        eprintln!("skipped: set VMCOREINFO_REALGUEST_DIR to the real-guest dumps");
        return Vec::new();
    };
    let dir = PathBuf::from(root).join("x86_64");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            !n.starts_with('.') && [".core", ".kdump", ".flat", ".elf"].iter().any(|s| n.ends_with(s))
        })
        .collect();
    v.sort();
    v
}

fn with_view<R>(dump: &Dump, f: impl FnOnce(&KernelImage<'_>, &vmcoreinfo::text::View<'_>) -> R) -> R {
    let blob = dump.vmcoreinfo().unwrap();
    let idx = Index::build(blob.bytes());
    let v = idx.view(blob.bytes());
    let mem = KernelImage {
        dump,
        phys_base: v.phys_base().unwrap().unwrap() as u64,
        size: v.number("KERNEL_IMAGE_SIZE").unwrap().unwrap() as u64,
    };
    f(&mem, &v)
}

#[test]
fn x86_64_log_holds_the_marker_and_kallsyms_reproduce_stext() {
    for path in x86_dumps() {
        let dump = Dump::open(&path, OpenOptions::default()).unwrap();
        with_view(&dump, |mem, v| {
            let t = Instant::now();
            let log = printk::read_log(mem, v, &printk::LogLimits::default()).unwrap();
            let text = printk::format_dmesg(&log, false, &printk::LogLimits::default()).unwrap();
            let t_log = t.elapsed();
            assert!(text.contains("RGUEST-MARKER-DMESG-0xC0FFEE guest marker line\n"), "{}", path.display());
            assert!(log[0].text.starts_with(b"Linux version "), "{}", path.display());
            assert!(log.windows(2).all(|w| w[1].seq == w[0].seq + 1), "consecutive sequence numbers");
            let t = Instant::now();
            let syms = kallsyms::read_symbols(mem, v, &kallsyms::SymLimits::default()).unwrap();
            let t_sym = t.elapsed();
            let stext = v.symbol("_stext").unwrap().unwrap();
            assert_eq!(syms.address(b"_stext"), Some(stext));
            assert_eq!(stext, 0xffff_ffff_8100_0000 + v.kernel_offset().unwrap().unwrap());
            assert_eq!(syms.mode(), kallsyms::AddressMode::AbsolutePercpu);
            assert_eq!(syms.address(b"init_uts_ns"), v.symbol("init_uts_ns").unwrap());
            assert_eq!(syms.address(b"prb"), v.symbol("prb").unwrap());
            let (i, off) = syms.lookup(stext + 5).unwrap();
            assert_eq!(off, 5);
            assert_eq!(syms.address_of(i), stext);
            eprintln!(
                "{}: {} records, {} symbols ({}); log {:?}, kallsyms {:?}",
                path.display(),
                log.len(),
                syms.len(),
                syms.mode().name(),
                t_log,
                t_sym
            );
        });
    }
}

#[test]
fn x86_64_dmesg_equals_makedumpfile() {
    let dumps = x86_dumps();
    let Some(md) = dumps.iter().find(|p| p.ends_with("md-zlib-d31.kdump")) else { return };
    let out = std::env::temp_dir().join(format!("kview-dmesg-{}.txt", std::process::id()));
    let st = std::process::Command::new("makedumpfile").arg("--dump-dmesg").arg(md).arg(&out).output();
    let Ok(st) = st else {
        eprintln!("skipped: makedumpfile is not installed");
        return;
    };
    assert!(st.status.success(), "{st:?}");
    let want = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    for path in &dumps {
        let dump = Dump::open(path, OpenOptions::default()).unwrap();
        let got = with_view(&dump, |mem, v| {
            let log = printk::read_log(mem, v, &printk::LogLimits::default()).unwrap();
            printk::format_dmesg(&log, false, &printk::LogLimits::default()).unwrap()
        });
        assert_eq!(got, want, "{}", path.display());
    }
}

/// Timing on one ELF dump (min of several runs; `--nocapture` prints it).
#[test]
fn x86_64_timing() {
    let Some(path) = x86_dumps().into_iter().find(|p| p.ends_with("qemu-elf.core")) else { return };
    let dump = Dump::open(&path, OpenOptions::default()).unwrap();
    with_view(&dump, |mem, v| {
        let mut best = (std::time::Duration::MAX, std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..20 {
            let t = Instant::now();
            let log = printk::read_log(mem, v, &printk::LogLimits::default()).unwrap();
            let _ = printk::format_dmesg(&log, false, &printk::LogLimits::default()).unwrap();
            best.0 = best.0.min(t.elapsed());
            let t = Instant::now();
            let syms = kallsyms::read_symbols(mem, v, &kallsyms::SymLimits::default()).unwrap();
            best.1 = best.1.min(t.elapsed());
            let t = Instant::now();
            let _ = syms.address(b"_stext");
            let _ = syms.lookup(0xffff_ffff_9000_0000);
            best.2 = best.2.min(t.elapsed());
        }
        eprintln!("best of 20: log+dmesg {:?}, kallsyms decode {:?}, first address()+lookup() {:?}", best.0, best.1, best.2);
    });
}
