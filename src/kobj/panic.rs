//! The panic: the kernel's taint string (as `print_tainted` in kernel/panic.c prints it) and
//! the panic or Oops block of the kernel log (`Kernel panic - not syncing:` / `Oops` / `BUG:`
//! followed by dump_stack's `CPU: N PID: P Comm: C ...` header line).

/// The letters of `taint_flags[]` (kernel/panic.c) by bit: `(c_true, c_false)`.
/// Bits 0–17 since 4.15, 18 (`N`, TAINT_TEST) since 6.0, 19 (`J`, TAINT_FWCTL) since 6.15.
pub const TAINT_FLAGS: [(u8, u8); 20] = [
    (b'P', b'G'),
    (b'F', b' '),
    (b'S', b' '),
    (b'R', b' '),
    (b'M', b' '),
    (b'B', b' '),
    (b'U', b' '),
    (b'D', b' '),
    (b'A', b' '),
    (b'W', b' '),
    (b'C', b' '),
    (b'I', b' '),
    (b'O', b' '),
    (b'E', b' '),
    (b'L', b' '),
    (b'K', b' '),
    (b'X', b' '),
    (b'T', b' '),
    (b'N', b' '),
    (b'J', b' '),
];

/// `TAINT_FLAGS_COUNT` of a kernel release (`(major, minor)`).
pub fn taint_flags_count(version: (u32, u32)) -> usize {
    if version >= (6, 15) {
        20
    } else if version >= (6, 0) {
        19
    } else {
        18
    }
}

/// `(major, minor)` of an OSRELEASE string ("6.1.0-48-cloud-amd64").
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The taint string as `print_tainted()` prints it: `"Not tainted"` for 0, else `"Tainted: "`
/// and one character per flag (the letter when the bit is set, else `G` for bit 0 and a space).
pub fn taint_string(mask: u64, version: (u32, u32)) -> String {
    if mask == 0 {
        return "Not tainted".to_string();
    }
    let mut s = String::from("Tainted: ");
    for (i, &(t, f)) in TAINT_FLAGS.iter().take(taint_flags_count(version)).enumerate() {
        s.push(if mask >> i & 1 == 1 { t } else { f } as char);
    }
    s
}

/// The mask back from a printed taint string (`"Not tainted"` → 0; letters at their positions).
pub fn taint_mask_from_string(s: &str) -> Option<u64> {
    if s.starts_with("Not tainted") {
        return Some(0);
    }
    let flags = s.strip_prefix("Tainted: ")?;
    let mut mask = 0u64;
    for (i, c) in flags.bytes().take(TAINT_FLAGS.len()).enumerate() {
        if c == TAINT_FLAGS[i].0 {
            mask |= 1 << i;
        }
    }
    Some(mask)
}

/// The dump_stack header `CPU: N PID: P Comm: C Tainted: ...` of one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuHeader {
    pub cpu: u32,
    pub pid: u32,
    pub comm: String,
    /// The taint text as printed (`"Not tainted"` or `"Tainted: ..."`) up to the release.
    pub taint: String,
}

/// Parse `CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-48-cloud-amd64 #1 ...` (6.x also
/// `CPU: 0 UID: 0 PID: 1 Comm: ...`).
pub fn parse_cpu_header(line: &str) -> Option<CpuHeader> {
    let rest = line.strip_prefix("CPU: ")?;
    let (cpu, rest) = rest.split_once(' ')?;
    let cpu = cpu.parse().ok()?;
    let rest = match rest.strip_prefix("UID: ") {
        Some(r) => r.split_once(' ')?.1,
        None => rest,
    };
    let rest = rest.strip_prefix("PID: ")?;
    let (pid, rest) = rest.split_once(' ')?;
    let pid = pid.parse().ok()?;
    let rest = rest.strip_prefix("Comm: ")?;
    // comm is at most 15 bytes (printed %.20s) and may hold spaces: the taint text follows.
    let (comm, taint) = match (rest.find(" Not tainted"), rest.find(" Tainted: ")) {
        (Some(a), Some(b)) => {
            let i = a.min(b);
            (&rest[..i], &rest[i + 1..])
        }
        (Some(i), None) | (None, Some(i)) => (&rest[..i], &rest[i + 1..]),
        (None, None) => return None,
    };
    let taint = if taint.starts_with("Not tainted") {
        "Not tainted".to_string()
    } else {
        // "Tainted: " + one character per flag, then a space and the release.
        let flags = &taint["Tainted: ".len()..];
        let n = flags.bytes().take_while(|c| c.is_ascii_uppercase() || *c == b' ').count();
        let mut t = format!("Tainted: {}", &flags[..n]);
        // The flags are followed by " <release>": drop that separator.
        if t.ends_with(' ') && flags[n..].starts_with(|c: char| c.is_ascii_digit()) {
            t.pop();
        }
        t
    };
    Some(CpuHeader { cpu, pid, comm: comm.to_string(), taint })
}

/// Whether a log line starts a panic or Oops block.
pub fn is_panic_line(line: &str) -> bool {
    line.starts_with("Kernel panic - not syncing:")
        || line.starts_with("Oops")
        || line.starts_with("BUG: ")
        || line.starts_with("Internal error: ")
        || line.starts_with("kernel BUG at ")
        || line.starts_with("Unable to handle kernel ")
}

/// The panic found in the log: the index of the panic/Oops line and of its CPU header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPanic {
    pub message_index: usize,
    pub header_index: usize,
    pub header: CpuHeader,
}

/// The last panic block of the log: a panic line followed (within a few records) by a CPU
/// header. A `Kernel panic` line wins over an earlier Oops of the same block.
pub fn find_log_panic<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Option<LogPanic> {
    const WINDOW: usize = 40;
    let lines: Vec<&[u8]> = lines.into_iter().collect();
    let mut found = None;
    for (i, l) in lines.iter().enumerate() {
        let Ok(s) = std::str::from_utf8(l) else { continue };
        if !is_panic_line(s) {
            continue;
        }
        for (j, h) in lines.iter().enumerate().skip(i + 1).take(WINDOW) {
            let Some(header) = std::str::from_utf8(h).ok().and_then(parse_cpu_header) else { continue };
            found = Some(LogPanic { message_index: i, header_index: j, header });
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_strings_as_the_kernel_prints_them() {
        assert_eq!(taint_string(0, (6, 1)), "Not tainted");
        // D (bit 7) and W (bit 9) on 6.1: G, 6 spaces, D, space, W, 9 spaces (19 flags).
        assert_eq!(taint_string(1 << 7 | 1 << 9, (6, 1)), "Tainted: G      D W         ");
        assert_eq!(taint_string(1 << 7 | 1 << 9, (5, 10)).len(), "Tainted: ".len() + 18);
        assert_eq!(taint_string(1, (6, 12)), "Tainted: P                  ");
        assert_eq!(taint_string(1 << 12 | 1 << 13, (6, 1)), "Tainted: G           OE     ");
        for mask in [0u64, 1, 0x280, 0x3000, 0x7ffff] {
            assert_eq!(taint_mask_from_string(&taint_string(mask, (6, 1))), Some(mask));
        }
    }

    #[test]
    fn header_lines_the_kernel_logged() {
        // Real lines (rd2 x86_64-panic and arm64-panic dmesg).
        let h = parse_cpu_header("CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-48-cloud-amd64 #1  Debian 6.1.172-1").unwrap();
        assert_eq!((h.cpu, h.pid, h.comm.as_str(), h.taint.as_str()), (0, 1, "init", "Not tainted"));
        assert_eq!(taint_mask_from_string(&h.taint), Some(0));
        let h = parse_cpu_header("CPU: 1 PID: 1234 Comm: kworker/1:2 Tainted: G      D W          6.1.0-48 #1").unwrap();
        assert_eq!((h.cpu, h.pid, h.comm.as_str()), (1, 1234, "kworker/1:2"));
        assert_eq!(h.taint, "Tainted: G      D W         ");
        assert_eq!(taint_mask_from_string(&h.taint), Some(1 << 7 | 1 << 9));
        let h = parse_cpu_header("CPU: 3 UID: 0 PID: 77 Comm: my prog Not tainted 6.12.1 #1").unwrap();
        assert_eq!((h.cpu, h.pid, h.comm.as_str()), (3, 77, "my prog"));
        assert!(parse_cpu_header("CPU: All CPU(s) started at EL1").is_none());
        assert!(parse_cpu_header("CPU: x PID: 1 Comm: a Not tainted").is_none());
    }

    #[test]
    fn last_panic_block_of_the_log() {
        let log: Vec<&[u8]> = vec![
            b"CPU: All CPU(s) started at EL1",
            b"BUG: unable to handle page fault",
            b"CPU: 1 PID: 5 Comm: a Tainted: G      D            6.1.0 #1",
            b"sysrq: Trigger a crash",
            b"Kernel panic - not syncing: sysrq triggered crash",
            b"CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-48-cloud-amd64 #1  Debian 6.1.172-1",
            b"Call Trace:",
        ];
        let p = find_log_panic(log.iter().copied()).unwrap();
        assert_eq!((p.message_index, p.header_index, p.header.cpu, p.header.pid), (4, 5, 0, 1));
        assert!(find_log_panic(log[..1].iter().copied()).is_none());
        assert!(find_log_panic([b"Kernel panic - not syncing: x".as_slice()]).is_none(), "no header");
    }
}
