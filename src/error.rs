//! The one error type of the core: a kind, the byte offset it concerns, and a message.
//!
//! The Python layer maps every [`ErrorKind`] onto one exception class rooted at
//! `vmcoreinfo.Error` (see `src/python/errors.rs`); I/O errors become `OSError` subclasses.
//! Semantics never live in the message: cancellation is [`ErrorKind::Cancelled`], advice is a
//! [`Hint`].

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
#[non_exhaustive]
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
    /// A kernel virtual address that the kernel's page tables (or the kernel-view layout)
    /// do not map.
    Unmapped,
    /// The operation was cancelled by its caller (a progress callback returned `false`, or
    /// Ctrl-C reached it); not an OS error.
    Cancelled,
    /// A failure of the library itself, not of the input: a helper thread that stopped or
    /// panicked. Worth a bug report.
    Internal,
    /// The kernel's types (its BTF) have no type, member or enumerator of the name asked for;
    /// the message names it and the kernel release.
    MissingType,
    /// The kernel carries no type information to read objects with (built without
    /// `CONFIG_DEBUG_INFO_BTF`, or its BTF could not be found in memory).
    NoBtf,
    /// A kernel symbol or root object (`init_task`, `modules`, ...) that neither kallsyms nor a
    /// search of the kernel's memory could find; the message names it and what was tried.
    MissingSymbol,
}

/// Advice an error carries in a machine-readable form (the message still says it in words).
/// Exposed to Python as `exc.hint` (its [`Hint::name`]), so that a caller (the CLI) can give
/// the advice in its own terms without matching the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hint {
    /// No known signature: a raw physical memory image has none, open it with `format="raw"`.
    UseRawFormat,
    /// No VMCOREINFO note in the dump, but guest memory may hold one: scan for it
    /// (`scan_vmcoreinfo()`, CLI `vmcoreinfo scan DUMP`).
    ScanForNote,
}

impl Hint {
    /// Every hint (exposed to Python as `_native.HINTS`, name to advice).
    pub const ALL: [Hint; 2] = [Hint::UseRawFormat, Hint::ScanForNote];

    /// A stable, machine-readable name (exposed to Python as `exc.hint`).
    pub fn name(self) -> &'static str {
        match self {
            Hint::UseRawFormat => "use-raw-format",
            Hint::ScanForNote => "scan-for-note",
        }
    }

    /// The advice in the library's words, as the message of an error with this hint ends
    /// (a caller that words it otherwise replaces exactly this text).
    pub fn advice(self) -> &'static str {
        match self {
            Hint::UseRawFormat => " (a raw physical memory image has none: open it with format=\"raw\")",
            Hint::ScanForNote => {
                ". QEMU writes a VMCOREINFO note only when the guest ran with `-device vmcoreinfo` and \
                 the guest kernel's `qemu_fw_cfg` driver (CONFIG_FW_CFG_SYSFS) was loaded before the dump, \
                 so that it could register its note through fw_cfg `etc/vmcoreinfo`. The guest's memory \
                 may still hold the note: `scan_vmcoreinfo()` (CLI: `vmcoreinfo scan DUMP`) looks for it \
                 page by page"
            }
        }
    }
}

/// Where an error is: what kind of position its number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A byte offset in the file.
    ///
    /// For flattened kdumps (`makedumpfile -F`) two files are in play, and the offset is in:
    /// * **the file as written** (records included) for the flattened layer's own errors: a
    ///   record header that is bad or cut short, and the file's reads failing or finding it
    ///   shrunk;
    /// * **the reassembled file** (what `makedumpfile -R` would write) for everything the kdump
    ///   layer finds: header fields, bitmaps, notes, page descriptors and data, and the
    ///   flattened layer's "reassembled file ends" errors. The same holds for the offsets the
    ///   dump reports as data (the VMCOREINFO text's offset, note offsets).
    ///
    /// A reassembled offset may lie in a hole that no record wrote, so it has no offset in the
    /// file as written; where it does, [`Flattened::offset_as_written`](crate::flattened::Flattened::offset_as_written)
    /// gives it.
    File(u64),
    /// A byte offset in a text or buffer given on its own (`parse`, a note read from memory
    /// before it is placed).
    Text(u64),
    /// A guest-physical address.
    Phys(u64),
    /// A kernel virtual address.
    Virt(u64),
}

impl Location {
    /// The number, whatever its kind.
    pub fn value(self) -> u64 {
        match self {
            Location::File(v) | Location::Text(v) | Location::Phys(v) | Location::Virt(v) => v,
        }
    }
    /// A stable name for the kind (exposed to Python as `exc.location`).
    pub fn kind_name(self) -> &'static str {
        match self {
            Location::File(_) => "file",
            Location::Text(_) => "text",
            Location::Phys(_) => "physical",
            Location::Virt(_) => "virtual",
        }
    }
}

/// An error with the place it concerns (a typed [`Location`]) and, once known, the file.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// Where: a file offset, a text offset, or a physical or virtual address.
    pub location: Option<Location>,
    pub message: String,
    /// The file, filled in by the layer that opened it.
    pub path: Option<Arc<str>>,
    /// Advice for the caller, machine-readable (the message words it too).
    pub hint: Option<Hint>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error at a file offset (`None`: no particular place).
    pub fn new(kind: ErrorKind, offset: Option<u64>, message: impl Into<String>) -> Self {
        Self::at(kind, offset.map(Location::File), message)
    }
    /// An error at any kind of location.
    pub fn at(kind: ErrorKind, location: Option<Location>, message: impl Into<String>) -> Self {
        Error { kind, location, message: message.into(), path: None, hint: None }
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
    /// Physical memory at `addr` is not in the dump.
    pub fn absent(addr: u64, message: impl Into<String>) -> Self {
        Self::at(ErrorKind::Absent, Some(Location::Phys(addr)), message)
    }
    /// The kernel does not map virtual address `vaddr`.
    pub fn unmapped(vaddr: u64, message: impl Into<String>) -> Self {
        Self::at(ErrorKind::Unmapped, Some(Location::Virt(vaddr)), message)
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
    /// The operation was cancelled by its caller.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, None, message)
    }
    /// A failure of the library itself (a helper thread that stopped or panicked).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, None, message)
    }

    /// A type, member or enumerator the kernel's BTF does not have (the message names it).
    pub fn missing_type(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingType, None, message)
    }

    /// The kernel has no BTF to read objects with (the message says why and names
    /// `CONFIG_DEBUG_INFO_BTF`).
    pub fn no_btf(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NoBtf, None, message)
    }

    /// A kernel symbol or root object that could not be found (the message says what was tried).
    pub fn missing_symbol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingSymbol, None, message)
    }

    /// An error whose message is `fact` followed by `hint`'s advice, with the hint attached.
    pub fn hinted(kind: ErrorKind, offset: Option<u64>, fact: &str, hint: Hint) -> Self {
        let mut e = Self::new(kind, offset, format!("{fact}{}", hint.advice()));
        e.hint = Some(hint);
        e
    }

    /// Attach the file name unless one is already attached.
    pub fn in_file(mut self, path: &Arc<str>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.clone());
        }
        self
    }

    /// File or text offset (`None` for addresses).
    pub fn offset(&self) -> Option<u64> {
        match self.location? {
            Location::File(o) | Location::Text(o) => Some(o),
            _ => None,
        }
    }
    /// Physical or virtual address (`None` for offsets).
    pub fn address(&self) -> Option<u64> {
        match self.location? {
            Location::Phys(a) | Location::Virt(a) => Some(a),
            _ => None,
        }
    }

    /// Mark a file-offset location as an offset in a text or buffer given on its own.
    pub fn in_text(mut self) -> Self {
        if let Some(Location::File(o)) = self.location {
            self.location = Some(Location::Text(o));
        }
        self
    }

    /// Place a text-relative offset in the file: `Text(o)` becomes `File(base + o)` (used when a
    /// text error surfaces from a file). Other locations are left as they are.
    pub fn shifted(self, base: u64) -> Self {
        self.placed(|o| Location::File(o.saturating_add(base)))
    }

    /// Place a text-relative offset in guest memory: `Text(o)` becomes `Phys(base + o)`.
    pub fn shifted_phys(self, base: u64) -> Self {
        self.placed(|o| Location::Phys(o.saturating_add(base)))
    }

    fn placed(mut self, f: impl FnOnce(u64) -> Location) -> Self {
        if let Some(Location::Text(o)) = self.location {
            self.location = Some(f(o));
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
        match self.location {
            Some(Location::File(o)) => write!(f, "offset {o} ({o:#x}): ")?,
            Some(Location::Text(o)) => write!(f, "text offset {o}: ")?,
            Some(Location::Phys(a)) => write!(f, "physical address {a:#x}: ")?,
            Some(Location::Virt(a)) => write!(f, "virtual address {a:#x}: ")?,
            None => {}
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
    fn shifted_places_text_offsets_and_leaves_the_rest() {
        assert_eq!(Error::format(5, "x").in_text().shifted(100).location, Some(Location::File(105)));
        assert_eq!(Error::format(5, "x").in_text().shifted_phys(0x1000).location, Some(Location::Phys(0x1005)));
        assert_eq!(Error::format(5, "x").shifted(100).location, Some(Location::File(5)), "a file offset stays");
        assert_eq!(Error::absent(0x1000, "x").shifted(100).location, Some(Location::Phys(0x1000)));
        assert_eq!(Error::format(u64::MAX, "x").in_text().shifted(100).offset(), Some(u64::MAX));
        assert_eq!(Error::absent(7, "x").offset(), None);
        assert_eq!(Error::unmapped(0xffff_8880_0000_0000, "x").address(), Some(0xffff_8880_0000_0000));
    }

    #[test]
    fn hints_and_kinds_are_typed() {
        let e = Error::hinted(ErrorKind::Format, Some(0), "no signature", Hint::UseRawFormat);
        assert_eq!(e.hint.map(Hint::name), Some("use-raw-format"));
        assert_eq!(e.to_string(), format!("offset 0 (0x0): no signature{}", Hint::UseRawFormat.advice()));
        assert_eq!(Error::cancelled("stop").kind, ErrorKind::Cancelled);
        assert_eq!(Error::internal("oops").kind, ErrorKind::Internal);
        assert_eq!(Hint::UseRawFormat.name(), "use-raw-format");
    }

    #[test]
    fn display_says_what_the_location_is() {
        assert!(Error::format(5, "x").in_text().to_string().starts_with("text offset 5: "));
        assert!(Error::absent(0x10, "x").to_string().starts_with("physical address 0x10: "));
        assert!(Error::unmapped(0x10, "x").to_string().starts_with("virtual address 0x10: "));
    }
}
