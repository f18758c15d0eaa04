//! The one error type of the core: a kind, the byte offset it concerns, and a message.
//!
//! The Python layer maps every [`ErrorKind`] onto one exception class rooted at
//! `vmcoreinfo.Error` (see `src/python/errors.rs`); I/O errors become `OSError` subclasses.

use std::fmt;
use std::sync::Arc;

/// Which QEMU intake rule, or which bitness rule, a note or dump violates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// fw_cfg `size` is smaller than a note header (12 bytes).
    SizeBelowHeader,
    /// fw_cfg `size`, or a note found in a dump, is larger than the note limit (1 MiB unless raised).
    SizeAboveLimit,
    /// fw_cfg `guest_format` is not ELF.
    FormatNotElf,
    /// `n_namesz` is larger than 1 MiB.
    NameTooLarge,
    /// `n_descsz` is larger than 1 MiB.
    DescTooLarge,
    /// The 4-byte-padded note (header + name + desc) does not fit in `size`.
    NoteExceedsSize,
    /// The ELF class does not fit `e_machine`.
    ClassForMachine,
    /// A SYMBOL or KERNELOFFSET value does not fit the target's address width.
    AddressWidth,
}

impl Rule {
    /// A stable, machine-readable name (exposed to Python as `exc.rule`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::SizeBelowHeader => "size-below-header",
            Rule::SizeAboveLimit => "size-above-limit",
            Rule::FormatNotElf => "format-not-elf",
            Rule::NameTooLarge => "namesz-too-large",
            Rule::DescTooLarge => "descsz-too-large",
            Rule::NoteExceedsSize => "note-exceeds-size",
            Rule::ClassForMachine => "class-for-machine",
            Rule::AddressWidth => "address-width",
        }
    }
}

/// What went wrong, coarsely; each kind is one Python exception class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bytes are not what the format says they must be (bad magic, bad field).
    Format,
    /// The file ends before a structure it declares (also: a file that shrank after opening).
    Truncated,
    /// A declared size is beyond what we agree to read or allocate.
    Limit,
    /// A QEMU intake rule for the guest note is violated.
    NoteRule(Rule),
    /// A bitness rule is violated (ELF class vs machine, address width).
    Bitness(Rule),
    /// The dump holds no usable VMCOREINFO note.
    NoVmcoreinfo,
    /// The dump does not hold the requested physical memory (never invented as zeros).
    Absent,
    /// A compressed page could not be decompressed, or decompressed to the wrong size.
    Decompress,
    /// A format or feature that is recognised but not supported.
    Unsupported,
    /// An operating-system error; `errno` when the OS gave one.
    Io { errno: Option<i32> },
    /// The dump was closed.
    Closed,
}

/// An error with the byte offset it concerns and, once known, the file it concerns.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// Byte offset in the file (or in the text given to `parse`) that the error concerns.
    pub offset: Option<u64>,
    pub message: String,
    /// The file, filled in by the layer that opened it.
    pub path: Option<Arc<str>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, offset: Option<u64>, message: impl Into<String>) -> Self {
        Error { kind, offset, message: message.into(), path: None }
    }
    pub fn format(offset: u64, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, Some(offset), message)
    }
    pub fn truncated(offset: u64, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Truncated, Some(offset), message)
    }
    pub fn limit(offset: u64, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, Some(offset), message)
    }
    pub fn note_rule(rule: Rule, offset: Option<u64>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NoteRule(rule), offset, message)
    }
    pub fn bitness(rule: Rule, offset: Option<u64>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Bitness(rule), offset, message)
    }
    pub fn absent(addr: u64, message: impl Into<String>) -> Self {
        // `offset` here is the physical address that is absent, not a file offset.
        Self::new(ErrorKind::Absent, Some(addr), message)
    }
    pub fn decompress(offset: u64, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decompress, Some(offset), message)
    }
    pub fn unsupported(offset: Option<u64>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, offset, message)
    }
    pub fn io(err: &std::io::Error, offset: Option<u64>, what: &str) -> Self {
        Self::new(ErrorKind::Io { errno: err.raw_os_error() }, offset, format!("{what}: {err}"))
    }

    /// Attach the file name unless one is already attached.
    pub fn in_file(mut self, path: &Arc<str>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.clone());
        }
        self
    }

    /// Shift a text-relative offset by `base` (used when a text error surfaces from a file).
    pub fn shifted(mut self, base: u64) -> Self {
        if self.kind != ErrorKind::Absent {
            self.offset = self.offset.map(|o| o.saturating_add(base));
        }
        self
    }

    pub fn rule(&self) -> Option<Rule> {
        match self.kind {
            ErrorKind::NoteRule(r) | ErrorKind::Bitness(r) => Some(r),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        match (self.kind, self.offset) {
            (ErrorKind::Absent, Some(a)) => write!(f, "physical address {a:#x}: ")?,
            (_, Some(o)) => write!(f, "offset {o} ({o:#x}): ")?,
            _ => {}
        }
        f.write_str(&self.message)?;
        if let Some(r) = self.rule() {
            write!(f, " [rule {}]", r.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_offset_and_rule() {
        let p: Arc<str> = Arc::from("dump.core");
        let e = Error::note_rule(Rule::DescTooLarge, Some(0x40), "descsz 2097152 > 1048576").in_file(&p);
        assert_eq!(e.to_string(), "dump.core: offset 64 (0x40): descsz 2097152 > 1048576 [rule descsz-too-large]");
        assert_eq!(e.rule(), Some(Rule::DescTooLarge));
    }

    #[test]
    fn shifted_moves_offsets_but_not_addresses() {
        assert_eq!(Error::format(5, "x").shifted(100).offset, Some(105));
        assert_eq!(Error::absent(0x1000, "x").shifted(100).offset, Some(0x1000));
        assert_eq!(Error::format(u64::MAX, "x").shifted(100).offset, Some(u64::MAX));
    }
}
