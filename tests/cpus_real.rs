//! `Dump::cpus` and `Dump::panic_info` on the rd2 dumps (`VMCOREINFO_RD2_DIR`, e.g.
//! /work/bench-data/rd2; skipped when unset): the panic CPU/PID/comm equal the `CPU: N PID: P
//! Comm: C` line the guest's kernel logged (its dmesg.txt / guest-serial.log).

use std::path::PathBuf;

use vmcoreinfo::dump::{Dump, OpenOptions};

fn logged_header(dir: &std::path::Path) -> Option<(u32, u32, String)> {
    let text =
        std::fs::read_to_string(dir.join("dmesg.txt")).or_else(|_| std::fs::read_to_string(dir.join("guest-serial.log"))).ok()?;
    let mut after_panic = false;
    let mut found = None;
    for l in text.lines() {
        let l = l.split_once("] ").map_or(l, |x| x.1);
        if l.starts_with("Kernel panic - not syncing:") {
            after_panic = true;
        } else if after_panic && l.starts_with("CPU: ") {
            let h = vmcoreinfo::kobj::panic::parse_cpu_header(l)?;
            found = Some((h.cpu, h.pid, h.comm));
            after_panic = false;
        }
    }
    found
}

#[test]
fn rd2_panic_and_cpus() {
    let Some(root) = std::env::var_os("VMCOREINFO_RD2_DIR").map(PathBuf::from) else { return };
    for guest in ["x86_64-panic", "arm64-panic", "x86_64-k612", "arm64-k612", "x86_64-k510"] {
        let dir = root.join(guest);
        let want = logged_header(&dir);
        for f in ["qemu-elf.core", "qemu-kdump-zlib.kdump", "md-zlib-d31.kdump", "md-d31.elf"] {
            let p = dir.join(f);
            if !p.exists() {
                continue;
            }
            let d = Dump::open(&p, OpenOptions::default()).unwrap();
            let cpus = d.cpus().unwrap();
            let syms = d.symbols().ok();
            for c in &cpus {
                let sym = syms
                    .as_ref()
                    .and_then(|s| s.lookup(c.state.pc).map(|(i, o)| format!("{}+{o:#x}", String::from_utf8_lossy(s.name(i)))));
                println!(
                    "{guest} {f} cpu{} pc={:#x} {:?} sp={:#x} task={:?} {:?}",
                    c.state.cpu,
                    c.state.pc,
                    sym,
                    c.state.sp,
                    c.state.task.map(|t| t.addr),
                    c.state.source
                );
            }
            assert!(!cpus.is_empty(), "{guest} {f}: no CPUs");
            let pi = d.panic_info().unwrap();
            println!(
                "{guest} {f} panic={:?}",
                pi.as_ref().map(|p| (p.cpu, p.cpu_source, p.pid, &p.comm, &p.message, &p.taint, p.crashtime))
            );
            match (&want, &pi) {
                (Some((cpu, pid, comm)), Some(p)) => {
                    assert_eq!((p.cpu, p.pid, p.comm.as_deref()), (*cpu, Some(*pid), Some(comm.as_str())), "{guest} {f}");
                }
                (None, None) => {}
                _ => panic!("{guest} {f}: logged {want:?}, found {:?}", pi.map(|p| p.cpu)),
            }
        }
    }
}
