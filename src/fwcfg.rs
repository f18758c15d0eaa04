//! QEMU's `vmcoreinfo` device: the fw_cfg file `etc/vmcoreinfo`, and the rules QEMU applies
//! before it copies the guest's note into a dump.
//!
//! The guest (Linux `qemu_fw_cfg`) writes 16 little-endian bytes: `u16 host_format,
//! u16 guest_format, u32 size, u64 paddr`, `paddr` being the physical address of the whole note
//! (header included). At dump time QEMU reads `size` bytes at `paddr` and keeps the note only if
//! it passes the checks of [`check_guest_note`], in that order.

use crate::error::{Error, Result, Rule};
use crate::notes::{self, align4};

/// `guest_format` / `host_format`: no note.
pub const FORMAT_NONE: u16 = 0;
/// `guest_format` / `host_format`: an ELF note.
pub const FORMAT_ELF: u16 = 1;

/// Size of the fw_cfg file `etc/vmcoreinfo`.
pub const FW_CFG_ENTRY_SIZE: usize = 16;

/// QEMU's limit on the guest note's size, name size and desc size (1 MiB).
pub const MAX_GUEST_NOTE_SIZE: u32 = 1 << 20;

pub use crate::notes::{padded_note_size, NOTE_HEADER_SIZE};

/// [`NOTE_HEADER_SIZE`] as the `u32` that fw_cfg sizes are.
const HEADER_U32: u32 = NOTE_HEADER_SIZE as u32;

/// The 16 bytes of `etc/vmcoreinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FwCfgEntry {
    /// What the host supports (QEMU sets [`FORMAT_ELF`] on reset; a guest's full write
    /// overwrites it, Linux with 0).
    pub host_format: u16,
    /// What the guest wrote: [`FORMAT_ELF`] for a note.
    pub guest_format: u16,
    /// Size of the note in bytes (header included).
    pub size: u32,
    /// Guest-physical address of the note header.
    pub paddr: u64,
}

impl FwCfgEntry {
    /// Decode exactly 16 little-endian bytes; any other length is a `Format` error at the offset
    /// where the bytes stop matching (the length when too short, 16 when too long).
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let Ok(b) = <&[u8; FW_CFG_ENTRY_SIZE]>::try_from(b) else {
            let at = if b.len() < FW_CFG_ENTRY_SIZE { b.len() as u64 } else { FW_CFG_ENTRY_SIZE as u64 };
            return Err(Error::format(at, format!("etc/vmcoreinfo is {FW_CFG_ENTRY_SIZE} bytes, got {}", b.len())));
        };
        Ok(FwCfgEntry {
            host_format: u16::from_le_bytes([b[0], b[1]]),
            guest_format: u16::from_le_bytes([b[2], b[3]]),
            size: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            paddr: u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        })
    }

    /// Encode as the 16 little-endian bytes of `etc/vmcoreinfo`.
    pub fn to_bytes(&self) -> [u8; FW_CFG_ENTRY_SIZE] {
        let mut out = [0u8; FW_CFG_ENTRY_SIZE];
        out[0..2].copy_from_slice(&self.host_format.to_le_bytes());
        out[2..4].copy_from_slice(&self.guest_format.to_le_bytes());
        out[4..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..16].copy_from_slice(&self.paddr.to_le_bytes());
        out
    }
}

/// Why a guest write left the device untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A zero-length write: fw_cfg's DMA loop does nothing.
    Empty,
    /// The write does not fit in the 16-byte file (fw_cfg flags a DMA error; nothing is copied).
    OutOfBounds,
}

/// Why a write that reached the device turned the note off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableReason {
    /// The bytes were stored but the write was not the full 16 bytes at offset 0.
    PartialWrite,
    /// A full write with `guest_format` = [`FORMAT_NONE`].
    FormatNone,
}

/// What a guest write to `etc/vmcoreinfo` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Nothing changed: no bytes stored, `has_vmcoreinfo` as before.
    Ignored {
        /// Why nothing happened.
        reason: IgnoreReason,
    },
    /// The bytes were stored and `has_vmcoreinfo` is now false.
    Disabled {
        /// Why the note is off.
        reason: DisableReason,
    },
    /// A full write with `guest_format` = ELF: `has_vmcoreinfo` is true.
    Accepted,
    /// A full write with another non-NONE format: QEMU sets `has_vmcoreinfo`, but its dump code
    /// will refuse the note ([`Rule::FormatNotElf`]).
    AcceptedUnsupportedFormat {
        /// The format written.
        guest_format: u16,
    },
}

impl WriteOutcome {
    /// A stable name: `"ignored"`, `"disabled"`, `"accepted"` or `"accepted-unsupported-format"`.
    pub fn name(self) -> &'static str {
        match self {
            WriteOutcome::Ignored { .. } => "ignored",
            WriteOutcome::Disabled { .. } => "disabled",
            WriteOutcome::Accepted => "accepted",
            WriteOutcome::AcceptedUnsupportedFormat { .. } => "accepted-unsupported-format",
        }
    }
}

impl IgnoreReason {
    /// A stable name: `"empty"` or `"out-of-bounds"`.
    pub fn name(self) -> &'static str {
        match self {
            IgnoreReason::Empty => "empty",
            IgnoreReason::OutOfBounds => "out-of-bounds",
        }
    }
}

impl DisableReason {
    /// A stable name: `"partial-write"` or `"format-none"`.
    pub fn name(self) -> &'static str {
        match self {
            DisableReason::PartialWrite => "partial-write",
            DisableReason::FormatNone => "format-none",
        }
    }
}

/// A model of QEMU's `vmcoreinfo` device as the guest sees it through fw_cfg.
///
/// fw_cfg copies a DMA write into the file's bytes when it fits (and refuses it otherwise); the
/// device then sets `has_vmcoreinfo` to "offset 0, 16 bytes, guest_format != NONE". So a partial
/// write that fits is stored AND clears `has_vmcoreinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfgDevice {
    data: FwCfgEntry,
    has_vmcoreinfo: bool,
}

impl Default for FwCfgDevice {
    fn default() -> Self {
        let mut d = FwCfgDevice { data: FwCfgEntry::default(), has_vmcoreinfo: false };
        d.reset();
        d
    }
}

impl FwCfgDevice {
    /// A device just after machine reset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Machine reset: everything cleared, `host_format` = ELF, no note.
    pub fn reset(&mut self) {
        self.data = FwCfgEntry { host_format: FORMAT_ELF, ..FwCfgEntry::default() };
        self.has_vmcoreinfo = false;
    }

    /// The current 16 bytes, decoded.
    pub fn entry(&self) -> FwCfgEntry {
        self.data
    }

    /// Whether QEMU would consider a guest note present at dump time.
    pub fn has_vmcoreinfo(&self) -> bool {
        self.has_vmcoreinfo
    }

    /// A guest DMA write of `bytes` at `offset` into `etc/vmcoreinfo`.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> WriteOutcome {
        if bytes.is_empty() {
            return WriteOutcome::Ignored { reason: IgnoreReason::Empty };
        }
        let fits = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(bytes.len()).map(|end| (o, end)))
            .filter(|&(_, end)| end <= FW_CFG_ENTRY_SIZE);
        let Some((start, end)) = fits else {
            return WriteOutcome::Ignored { reason: IgnoreReason::OutOfBounds };
        };
        let mut raw = self.data.to_bytes();
        raw[start..end].copy_from_slice(bytes);
        // Infallible: `raw` is exactly 16 bytes.
        self.data = FwCfgEntry::from_bytes(&raw).unwrap_or(self.data);
        let full = start == 0 && bytes.len() == FW_CFG_ENTRY_SIZE;
        self.has_vmcoreinfo = full && self.data.guest_format != FORMAT_NONE;
        match (full, self.data.guest_format) {
            (false, _) => WriteOutcome::Disabled { reason: DisableReason::PartialWrite },
            (true, FORMAT_NONE) => WriteOutcome::Disabled { reason: DisableReason::FormatNone },
            (true, FORMAT_ELF) => WriteOutcome::Accepted,
            (true, f) => WriteOutcome::AcceptedUnsupportedFormat { guest_format: f },
        }
    }
}

/// The sizes of a note that passed QEMU's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoteSizes {
    /// `n_namesz`: name length, NUL included.
    pub namesz: u32,
    /// `n_descsz`: desc length (the VMCOREINFO text, for the guest note).
    pub descsz: u32,
    /// `n_type` (0 for VMCOREINFO).
    pub n_type: u32,
    /// Header + name + desc, each padded to 4 bytes: what QEMU copies into the dump.
    pub padded_size: u64,
}

impl NoteSizes {
    /// Byte range of the name inside the note (NUL included, padding excluded).
    pub fn name_range(&self) -> std::ops::Range<usize> {
        NOTE_HEADER_SIZE..NOTE_HEADER_SIZE + self.namesz as usize
    }

    /// Offset of the desc (the VMCOREINFO text) inside the note.
    pub fn desc_offset(&self) -> usize {
        NOTE_HEADER_SIZE + align4(u64::from(self.namesz)) as usize
    }

    /// Byte range of the desc (the VMCOREINFO text) inside the note.
    pub fn desc_range(&self) -> std::ops::Range<usize> {
        let start = self.desc_offset();
        start..start + self.descsz as usize
    }
}

/// Apply QEMU's dump-time rules to the guest note, in QEMU's order:
/// `entry_size` < 12 → [`Rule::SizeBelowHeader`]; `entry_size` > `limit` (QEMU: 1 MiB,
/// [`MAX_GUEST_NOTE_SIZE`]; callers may raise it) → [`Rule::SizeAboveLimit`]; `guest_format` not
/// ELF → [`Rule::FormatNotElf`]; `n_namesz` > 1 MiB → [`Rule::NameTooLarge`]; `n_descsz` > 1 MiB →
/// [`Rule::DescTooLarge`]; padded note > `entry_size` → [`Rule::NoteExceedsSize`].
///
/// `note` is the memory at the fw_cfg `paddr` (at least the 12 header bytes; fewer is a
/// `Truncated` error); its header is read in the dump's byte order. Error offsets are relative to
/// the note start (0 for `n_namesz`, 4 for `n_descsz`); errors about the fw_cfg fields carry no
/// offset.
pub fn check_guest_note(entry_size: u32, guest_format: u16, note: &[u8], big_endian: bool, limit: u32) -> Result<NoteSizes> {
    if entry_size < HEADER_U32 {
        return Err(Error::note_rule(
            Rule::SizeBelowHeader,
            None,
            format!("guest note size {entry_size} is smaller than a note header ({NOTE_HEADER_SIZE})"),
        ));
    }
    if entry_size > limit {
        return Err(Error::note_rule(
            Rule::SizeAboveLimit,
            None,
            format!("guest note size {entry_size} is larger than the limit {limit}"),
        ));
    }
    if guest_format != FORMAT_ELF {
        return Err(Error::note_rule(
            Rule::FormatNotElf,
            None,
            format!("guest note format {guest_format} is not ELF ({FORMAT_ELF})"),
        ));
    }
    let Some((namesz, descsz, n_type)) = notes::note_header(note, big_endian) else {
        return Err(Error::truncated(
            note.len() as u64,
            format!("guest note header needs {NOTE_HEADER_SIZE} bytes, only {} available", note.len()),
        ));
    };
    if namesz > MAX_GUEST_NOTE_SIZE {
        return Err(Error::note_rule(
            Rule::NameTooLarge,
            Some(notes::N_NAMESZ_OFFSET),
            format!("guest note n_namesz {namesz} is larger than {MAX_GUEST_NOTE_SIZE}"),
        ));
    }
    if descsz > MAX_GUEST_NOTE_SIZE {
        return Err(Error::note_rule(
            Rule::DescTooLarge,
            Some(notes::N_DESCSZ_OFFSET),
            format!("guest note n_descsz {descsz} is larger than {MAX_GUEST_NOTE_SIZE}"),
        ));
    }
    let padded_size = padded_note_size(namesz, descsz);
    if padded_size > u64::from(entry_size) {
        return Err(Error::note_rule(
            Rule::NoteExceedsSize,
            Some(0),
            format!(
                "guest note of {padded_size} bytes (12 + namesz {namesz} + descsz {descsz}, padded) \
                 does not fit its size {entry_size}"
            ),
        ));
    }
    Ok(NoteSizes { namesz, descsz, n_type, padded_size })
}

/// Rules for a VMCOREINFO note found inside a dump (no fw_cfg size known): `namesz` and `descsz`
/// at most 1 MiB, and the padded note at most `limit` bytes. `offset` is the file offset of the
/// note header; errors point at the offending field.
pub fn check_dump_note(namesz: u32, descsz: u32, offset: u64, limit: u64) -> Result<()> {
    if namesz > MAX_GUEST_NOTE_SIZE {
        return Err(Error::note_rule(
            Rule::NameTooLarge,
            Some(offset),
            format!("note n_namesz {namesz} is larger than {MAX_GUEST_NOTE_SIZE}"),
        ));
    }
    if descsz > MAX_GUEST_NOTE_SIZE {
        return Err(Error::note_rule(
            Rule::DescTooLarge,
            Some(offset.saturating_add(4)),
            format!("note n_descsz {descsz} is larger than {MAX_GUEST_NOTE_SIZE}"),
        ));
    }
    let padded = padded_note_size(namesz, descsz);
    if padded > limit {
        return Err(Error::note_rule(
            Rule::SizeAboveLimit,
            Some(offset),
            format!("note of {padded} bytes (12 + namesz {namesz} + descsz {descsz}, padded) is larger than the limit {limit}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// Read back by a real x86_64 guest (Linux 6.1, QEMU 7.2).
    const REAL: [u8; 16] = [0x00, 0x00, 0x01, 0x00, 0x24, 0x10, 0x00, 0x00, 0x00, 0xc0, 0x8c, 0x01, 0, 0, 0, 0];

    fn note(namesz: u32, descsz: u32, be: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [namesz, descsz, 0] {
            v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
        }
        v
    }

    fn rule(r: Result<NoteSizes>) -> Option<Rule> {
        r.err().and_then(|e| e.rule())
    }

    #[test]
    fn real_entry_decodes_and_round_trips() {
        let e = FwCfgEntry::from_bytes(&REAL).unwrap();
        assert_eq!(e, FwCfgEntry { host_format: 0, guest_format: FORMAT_ELF, size: 4132, paddr: 0x18cc000 });
        assert_eq!(e.size, 0x1024);
        assert_eq!(e.to_bytes(), REAL);
        let arm = [0, 0, 1, 0, 0x24, 0x10, 0, 0, 0, 0, 0x29, 0x42, 0, 0, 0, 0];
        assert_eq!(FwCfgEntry::from_bytes(&arm).unwrap().paddr, 0x42290000);
    }

    #[test]
    fn entry_length_must_be_16() {
        let e = FwCfgEntry::from_bytes(&REAL[..15]).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(15)));
        let e = FwCfgEntry::from_bytes(&[0u8; 17]).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Format, Some(16)));
        assert!(FwCfgEntry::from_bytes(&[]).is_err());
    }

    #[test]
    fn device_reset_and_linux_write() {
        let mut d = FwCfgDevice::new();
        assert_eq!(d.entry(), FwCfgEntry { host_format: FORMAT_ELF, ..Default::default() });
        assert!(!d.has_vmcoreinfo());
        assert_eq!(d.write(0, &REAL), WriteOutcome::Accepted);
        assert_eq!(WriteOutcome::Accepted.name(), "accepted");
        assert!(d.has_vmcoreinfo());
        // The guest's full write replaced host_format with 0, as seen on real guests.
        assert_eq!(d.entry().host_format, 0);
        assert_eq!(d.entry().paddr, 0x18cc000);
        d.reset();
        assert!(!d.has_vmcoreinfo());
        assert_eq!(d.entry().to_bytes(), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn device_format_none_disables() {
        let mut d = FwCfgDevice::new();
        d.write(0, &REAL);
        let mut none = REAL;
        none[2] = 0;
        assert_eq!(d.write(0, &none), WriteOutcome::Disabled { reason: DisableReason::FormatNone });
        assert!(!d.has_vmcoreinfo());
        assert_eq!(d.entry().guest_format, FORMAT_NONE);
    }

    #[test]
    fn device_other_format_is_taken_then_refused_at_dump() {
        let mut d = FwCfgDevice::new();
        let mut f = REAL;
        f[2] = 2;
        let out = d.write(0, &f);
        assert_eq!(out, WriteOutcome::AcceptedUnsupportedFormat { guest_format: 2 });
        assert_eq!(out.name(), "accepted-unsupported-format");
        assert!(d.has_vmcoreinfo());
        let e = d.entry();
        assert_eq!(
            rule(check_guest_note(e.size, e.guest_format, &note(11, 4100, false), false, MAX_GUEST_NOTE_SIZE)),
            Some(Rule::FormatNotElf)
        );
    }

    #[test]
    fn device_partial_write_stores_bytes_and_disables() {
        let mut d = FwCfgDevice::new();
        d.write(0, &REAL);
        assert_eq!(d.write(8, &[0, 0x10, 0, 0, 0, 0, 0, 0]), WriteOutcome::Disabled { reason: DisableReason::PartialWrite });
        assert!(!d.has_vmcoreinfo());
        assert_eq!(d.entry().paddr, 0x1000);
        assert_eq!(d.entry().size, 4132);
        // A 15-byte write at 0 is partial too.
        d.write(0, &REAL);
        assert_eq!(d.write(0, &REAL[..15]), WriteOutcome::Disabled { reason: DisableReason::PartialWrite });
        assert!(!d.has_vmcoreinfo());
    }

    #[test]
    fn device_ignores_writes_that_do_not_fit() {
        let mut d = FwCfgDevice::new();
        d.write(0, &REAL);
        let before = d.clone();
        assert_eq!(d.write(1, &REAL), WriteOutcome::Ignored { reason: IgnoreReason::OutOfBounds });
        assert_eq!(d.write(16, &[1]), WriteOutcome::Ignored { reason: IgnoreReason::OutOfBounds });
        assert_eq!(d.write(u64::MAX, &[1]), WriteOutcome::Ignored { reason: IgnoreReason::OutOfBounds });
        assert_eq!(d.write(0, &[0u8; 17]), WriteOutcome::Ignored { reason: IgnoreReason::OutOfBounds });
        assert_eq!(d.write(0, &[]), WriteOutcome::Ignored { reason: IgnoreReason::Empty });
        assert_eq!(d.write(0, &[]).name(), "ignored");
        assert_eq!(d, before);
        assert!(d.has_vmcoreinfo());
    }

    #[test]
    fn real_guest_note_passes() {
        // Linux: size = VMCOREINFO_NOTE_SIZE = 4132 (room for a one-page text and an end note);
        // namesz 11 ("VMCOREINFO\0"), descsz = the text length (3262 in the x86_64 fixture).
        let s = check_guest_note(4132, FORMAT_ELF, &note(11, 3262, false), false, MAX_GUEST_NOTE_SIZE).unwrap();
        assert_eq!(s, NoteSizes { namesz: 11, descsz: 3262, n_type: 0, padded_size: 12 + 12 + 3264 });
        assert_eq!(s.name_range(), 12..23);
        assert_eq!(s.desc_offset(), 24);
        assert_eq!(s.desc_range(), 24..24 + 3262);
        // A full page of text still fits.
        let s = check_guest_note(4132, FORMAT_ELF, &note(11, 4096, false), false, MAX_GUEST_NOTE_SIZE).unwrap();
        assert_eq!(s.padded_size, 4120);
        // Same in big-endian.
        let s = check_guest_note(4132, FORMAT_ELF, &note(11, 4096, true), true, MAX_GUEST_NOTE_SIZE).unwrap();
        assert_eq!(s.descsz, 4096);
        // Wrong byte order: sizes are huge.
        assert_eq!(
            rule(check_guest_note(4132, FORMAT_ELF, &note(11, 4096, true), false, MAX_GUEST_NOTE_SIZE)),
            Some(Rule::NameTooLarge)
        );
    }

    #[test]
    fn size_rules_boundaries() {
        let n = note(0, 0, false);
        assert_eq!(rule(check_guest_note(11, FORMAT_ELF, &n, false, MAX_GUEST_NOTE_SIZE)), Some(Rule::SizeBelowHeader));
        assert_eq!(check_guest_note(12, FORMAT_ELF, &n, false, MAX_GUEST_NOTE_SIZE).unwrap().padded_size, 12);
        assert!(check_guest_note(MAX_GUEST_NOTE_SIZE, FORMAT_ELF, &n, false, MAX_GUEST_NOTE_SIZE).is_ok());
        assert_eq!(
            rule(check_guest_note(MAX_GUEST_NOTE_SIZE + 1, FORMAT_ELF, &n, false, MAX_GUEST_NOTE_SIZE)),
            Some(Rule::SizeAboveLimit)
        );
        // A raised limit.
        assert!(check_guest_note(MAX_GUEST_NOTE_SIZE + 1, FORMAT_ELF, &n, false, 2 << 20).is_ok());
        assert_eq!(rule(check_guest_note(u32::MAX, FORMAT_ELF, &n, false, u32::MAX - 1)), Some(Rule::SizeAboveLimit));
        // Order: size before format.
        assert_eq!(rule(check_guest_note(11, FORMAT_NONE, &n, false, MAX_GUEST_NOTE_SIZE)), Some(Rule::SizeBelowHeader));
        assert_eq!(rule(check_guest_note(12, FORMAT_NONE, &n, false, MAX_GUEST_NOTE_SIZE)), Some(Rule::FormatNotElf));
        let e = check_guest_note(12, 7, &n, false, MAX_GUEST_NOTE_SIZE).unwrap_err();
        assert!(e.message.contains('7'), "{}", e.message);
        assert_eq!(e.kind, ErrorKind::NoteRule(Rule::FormatNotElf));
    }

    #[test]
    fn name_and_desc_limits() {
        let big = u32::MAX;
        let ok = check_guest_note(big, FORMAT_ELF, &note(MAX_GUEST_NOTE_SIZE, 0, false), false, big);
        assert_eq!(ok.unwrap().padded_size, 12 + (1 << 20));
        let e = check_guest_note(big, FORMAT_ELF, &note(MAX_GUEST_NOTE_SIZE + 1, 0, false), false, big).unwrap_err();
        assert_eq!((e.rule(), e.offset()), (Some(Rule::NameTooLarge), Some(0)));
        assert!(e.message.contains("1048577"));
        assert!(check_guest_note(big, FORMAT_ELF, &note(0, MAX_GUEST_NOTE_SIZE, false), false, big).is_ok());
        let e = check_guest_note(big, FORMAT_ELF, &note(0, MAX_GUEST_NOTE_SIZE + 1, false), false, big).unwrap_err();
        assert_eq!((e.rule(), e.offset()), (Some(Rule::DescTooLarge), Some(4)));
        // Name checked before desc.
        assert_eq!(
            rule(check_guest_note(big, FORMAT_ELF, &note(u32::MAX, u32::MAX, false), false, big)),
            Some(Rule::NameTooLarge)
        );
        // Both at the maximum: no overflow, padded 12 + 2 MiB.
        let s = check_guest_note(big, FORMAT_ELF, &note(MAX_GUEST_NOTE_SIZE, MAX_GUEST_NOTE_SIZE, false), false, big);
        assert_eq!(s.unwrap().padded_size, 12 + (2 << 20));
    }

    #[test]
    fn padded_note_must_fit_size() {
        // namesz 11 pads to 12, descsz 1 pads to 4: 28 bytes.
        let n = note(11, 1, false);
        assert!(check_guest_note(28, FORMAT_ELF, &n, false, MAX_GUEST_NOTE_SIZE).is_ok());
        let e = check_guest_note(27, FORMAT_ELF, &n, false, MAX_GUEST_NOTE_SIZE).unwrap_err();
        assert_eq!(e.rule(), Some(Rule::NoteExceedsSize));
        assert!(e.message.contains("28") && e.message.contains("27"), "{}", e.message);
        // Exactly-aligned sizes need no padding.
        assert!(check_guest_note(12 + 12 + 4096, FORMAT_ELF, &note(12, 4096, false), false, MAX_GUEST_NOTE_SIZE).is_ok());
        assert_eq!(
            rule(check_guest_note(12 + 12 + 4095, FORMAT_ELF, &note(12, 4096, false), false, MAX_GUEST_NOTE_SIZE)),
            Some(Rule::NoteExceedsSize)
        );
        assert_eq!(padded_note_size(u32::MAX, u32::MAX), 12 + 2 * (u64::from(u32::MAX) + 1));
    }

    #[test]
    fn short_note_header_is_truncated() {
        let e = check_guest_note(100, FORMAT_ELF, &[0u8; 11], false, MAX_GUEST_NOTE_SIZE).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(11)));
    }

    #[test]
    fn dump_note_rules() {
        assert!(check_dump_note(11, 4096, 0x1000, u64::from(MAX_GUEST_NOTE_SIZE)).is_ok());
        let e = check_dump_note(MAX_GUEST_NOTE_SIZE + 1, 0, 0x1000, u64::MAX).unwrap_err();
        assert_eq!((e.rule(), e.offset()), (Some(Rule::NameTooLarge), Some(0x1000)));
        let e = check_dump_note(11, MAX_GUEST_NOTE_SIZE + 1, 0x1000, u64::MAX).unwrap_err();
        assert_eq!((e.rule(), e.offset()), (Some(Rule::DescTooLarge), Some(0x1004)));
        assert!(check_dump_note(MAX_GUEST_NOTE_SIZE, MAX_GUEST_NOTE_SIZE, 0, u64::MAX).is_ok());
        // Padded size against the limit: 12 + 12 + 4096 = 4120.
        assert!(check_dump_note(11, 4096, 0, 4120).is_ok());
        let e = check_dump_note(11, 4096, 0, 4119).unwrap_err();
        assert_eq!(e.rule(), Some(Rule::SizeAboveLimit));
        assert!(check_dump_note(11, 4093, 0, 4119).is_err()); // 4093 pads to 4096
        assert!(check_dump_note(11, 4092, 0, 4119).is_ok());
        // Offsets near the top do not overflow.
        let e = check_dump_note(0, u32::MAX, u64::MAX, u64::MAX).unwrap_err();
        assert_eq!(e.offset(), Some(u64::MAX));
        assert!(check_dump_note(u32::MAX, u32::MAX, 0, 0).is_err());
    }
}
