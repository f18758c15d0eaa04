//! The VMCOREINFO text as the library hands it out: shared bytes plus where the text lies (in the
//! file, or in guest memory), and the checks every returned text passes.

use std::sync::Arc;

use crate::bitness;
use crate::error::{Error, ErrorKind, Location, Result};
use crate::fwcfg;
use crate::notes::{self, NoteSegment};
use crate::text;

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

/// The text of the last note named exactly "VMCOREINFO" in `segments` (QEMU appends the guest's
/// note last), checked against QEMU's intake limits (`max_note_size`) and refused when it holds a
/// Windows dump header; `Ok(None)` when there is no such note. A note that does not parse is an
/// error. (The one reading of a VMCOREINFO note: the dump's text and a kdump header's machine
/// guess both use it.)
pub(crate) fn last_vmcoreinfo_note(segments: &[NoteSegment], big_endian: bool, max_note_size: u32) -> Result<Option<TextBlob>> {
    let mut found = None;
    for seg in segments {
        for n in notes::notes(&seg.data, big_endian, seg.align, seg.file_offset) {
            let n = n?;
            if n.is_vmcoreinfo() {
                found = Some((seg, n));
            }
        }
    }
    let Some((seg, n)) = found else {
        return Ok(None);
    };
    let note_off = seg.file_offset + n.offset as u64;
    fwcfg::check_dump_note(n.namesz, n.desc.len() as u32, note_off, u64::from(max_note_size))?;
    let blob = TextBlob {
        data: seg.data.clone(),
        start: n.desc_offset,
        end: n.desc_offset + n.desc.len(),
        file_offset: Some(seg.file_offset + n.desc_offset as u64),
        phys_addr: None,
        text_paddr: None,
    };
    refuse_windows_header(blob).map(Some).map_err(|e| Error { location: Some(Location::File(note_off)), ..e })
}
