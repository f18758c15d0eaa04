//! Time each step of the kernel-object path on a dump, from a fresh open each run:
//! `cargo run --release --example objects_timing -- DUMP [RUNS]`. Prints the best of RUNS for
//! open, the kernel view, kallsyms, the BTF (found and parsed), and the task and module walks.

use std::path::Path;
use std::time::{Duration, Instant};

use vmcoreinfo::dump::{Dump, OpenOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: objects_timing DUMP [RUNS]");
    let runs: usize = args.get(2).map_or(20, |s| s.parse().unwrap());
    let names = ["open", "kernel_view", "symbols", "btf", "tasks", "modules"];
    let mut best = [Duration::MAX; 6];
    let mut counts = (0, 0);
    for _ in 0..runs {
        let mut t = Instant::now();
        let mut lap = |i: usize, best: &mut [Duration; 6]| {
            best[i] = best[i].min(t.elapsed());
            t = Instant::now();
        };
        let dump = Dump::open(Path::new(path), OpenOptions::default()).unwrap();
        lap(0, &mut best);
        dump.kernel_view().unwrap();
        lap(1, &mut best);
        let _ = dump.symbols();
        lap(2, &mut best);
        dump.btf().unwrap();
        lap(3, &mut best);
        counts.0 = dump.tasks().map_or(0, |v| v.len());
        lap(4, &mut best);
        counts.1 = dump.modules().map_or(0, |v| v.len());
        lap(5, &mut best);
    }
    let total: Duration = best.iter().sum();
    print!("{path}: {} tasks, {} modules; best of {runs}:", counts.0, counts.1);
    for (n, b) in names.iter().zip(best) {
        print!(" {n} {:.2} ms", b.as_secs_f64() * 1e3);
    }
    println!(" (sum {:.2} ms)", total.as_secs_f64() * 1e3);
}
