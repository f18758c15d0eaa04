//! Time the kallsyms decode on a dump: `cargo run --release --example kallsyms_timing -- DUMP
//! [vmcoreinfo|scan] [RUNS]`. Prints the best and median of RUNS fresh decodes (the kernel view
//! is built once, before timing), the symbol count and the source.

use std::path::Path;
use std::time::{Duration, Instant};

use vmcoreinfo::dump::{Dump, OpenOptions};
use vmcoreinfo::kview::kallsyms::{SymLimits, SymbolSource};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: kallsyms_timing DUMP [vmcoreinfo|scan|auto] [RUNS]");
    let source = match args.get(2).map(String::as_str) {
        None | Some("auto") => None,
        Some("vmcoreinfo") => Some(SymbolSource::Vmcoreinfo),
        Some("scan") => Some(SymbolSource::Scan),
        Some(s) => panic!("unknown source {s}"),
    };
    let runs: usize = args.get(3).map_or(20, |s| s.parse().unwrap());
    let dump = Dump::open(Path::new(path), OpenOptions::default()).unwrap();
    dump.kernel_view().unwrap();
    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let s = dump.kernel_symbols_from(&SymLimits::default(), source).unwrap();
        times.push(t.elapsed());
        last = Some(s);
    }
    times.sort();
    let s = last.unwrap();
    println!(
        "{path}: {} symbols, {}, source {}: best {:?}, median {:?} ({runs} runs)",
        s.len(),
        s.mode().name(),
        s.source().name(),
        times[0],
        times[runs / 2]
    );
}
