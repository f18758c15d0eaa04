//! The VMCOREINFO text as the library hands it out: shared bytes plus where the text lies (in the
//! file, or in guest memory), and the checks every returned text passes.

use std::sync::Arc;

use crate::bitness;
use crate::error::{Error, ErrorKind, Result};
use crate::text;

/// phys_base as the VMCOREINFO text gives it and as a kdump header gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysBaseSources {
    /// The VMCOREINFO key read: `NUMBER(phys_base)` (x86_64, signed decimal) or
    /// `NUMBER(PHYS_OFFSET)` (arm64, hex) — the keys QEMU reads for its kdump header.
    pub text_key: Option<&'static str>,
    /// The text's value (the one to use).
    pub text: Option<i128>,
    /// The kdump sub-header's value (QEMU reads x86_64's decimal text as hex, so it is wrong
    /// whenever phys_base != 0).
    pub header: Option<u64>,
}

impl PhysBaseSources {
    /// phys_base from the VMCOREINFO text and from the kdump header, side by side.
    pub fn of(dump: &crate::dump::Dump) -> Result<PhysBaseSources> {
        let header = dump.kdump().and_then(crate::kdump::KdumpFile::phys_base_header);
        // (key as reported, NUMBER name to read)
        let source = match dump.e_machine() {
            bitness::EM_AARCH64 => Some(("NUMBER(PHYS_OFFSET)", "PHYS_OFFSET")),
            bitness::EM_X86_64 => Some(("NUMBER(phys_base)", "phys_base")),
            _ => None,
        };
        let text_key = source.map(|(key, _)| key);
        let mut text = None;
        if let Some((_, name)) = source {
            match dump.vmcoreinfo() {
                Ok(blob) => {
                    let idx = text::Index::build(blob.bytes());
                    text = idx.view(blob.bytes()).number(name).map_err(|e| e.shifted(blob.file_offset.unwrap_or(0)))?;
                }
                Err(e) if e.kind == ErrorKind::NoVmcoreinfo => {}
                Err(e) => return Err(e),
            }
        }
        Ok(PhysBaseSources { text_key, text, header })
    }

    /// Whether both are present and equal (the header's u64 read as two's complement).
    pub fn agree(&self) -> Option<bool> {
        Some(self.text? as u64 == self.header?)
    }
}

/// The VMCOREINFO text of a dump: shared bytes plus the range of the text in them.
#[derive(Debug, Clone)]
pub struct TextBlob {
    pub data: Arc<[u8]>,
    pub start: usize,
    pub end: usize,
    /// File offset of the first byte of the text, when it comes from the file.
    pub file_offset: Option<u64>,
    /// Physical address of the note header, when the text was read from guest memory (a scan,
    /// `read_guest_note`).
    pub phys_addr: Option<u64>,
    /// Physical address of the first byte of the text, when it was read from guest memory.
    pub text_paddr: Option<u64>,
}

impl TextBlob {
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Place an error located in this text where the text is: a file offset when it came from
    /// the file, a physical address when it was read from guest memory, else a text offset.
    pub fn place(&self, e: Error) -> Error {
        match (self.file_offset, self.text_paddr) {
            (Some(base), _) => e.shifted(base),
            (None, Some(paddr)) => e.shifted_phys(paddr),
            (None, None) => e,
        }
    }
}

impl AsRef<[u8]> for TextBlob {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

/// A Windows guest's note named VMCOREINFO carries a binary dump header, not text.
pub(crate) fn refuse_windows_header(blob: TextBlob) -> Result<TextBlob> {
    if text::is_windows_dump_header(blob.bytes()) {
        return Err(Error::new(
            ErrorKind::NoVmcoreinfo,
            blob.file_offset,
            "the VMCOREINFO area carries a Windows dump header (PAGEDU64/PAGEDUMP), not Linux VMCOREINFO text",
        ));
    }
    Ok(blob)
}

/// Check a text's SYMBOL and KERNELOFFSET values against `bits`, placing a violation where the
/// text is (in the file, or in guest memory).
pub(crate) fn check_text_width(blob: TextBlob, bits: u32) -> Result<TextBlob> {
    if bits >= 64 {
        return Ok(blob);
    }
    let idx = text::Index::build(blob.bytes());
    bitness::check_text_address_width(&idx.view(blob.bytes()), bits).map_err(|e| blob.place(e))?;
    Ok(blob)
}
