//! The note buffer a writer carries: the input's notes, then the VMCOREINFO note.

use object::endian::{Endianness, U32};
use object::pod;

use crate::dump::Dump;
use crate::error::Result;

/// An ELF note header (`Elf32_Nhdr` = `Elf64_Nhdr`), as object defines it.
type NoteHeader = object::elf::NoteHeader32<Endianness>;

/// Where a text lies in a buffer: (offset, length).
pub(crate) type TextAt = (usize, usize);

/// A note buffer in the dump's byte order.
pub(crate) struct NoteBuf {
    pub bytes: Vec<u8>,
    /// Where the VMCOREINFO note's desc (the text) lies in `bytes`.
    pub vmcoreinfo: Option<TextAt>,
}

/// The dump's byte order as object's runtime endianness.
pub(crate) fn endianness(big: bool) -> Endianness {
    if big {
        Endianness::Big
    } else {
        Endianness::Little
    }
}

/// The input's notes (CPU states included) in their order, then the VMCOREINFO note last.
pub(crate) fn build_notes(dump: &Dump, vmcoreinfo: Option<&[u8]>) -> Result<NoteBuf> {
    let e = endianness(dump.big_endian());
    let mut out = Vec::new();
    for (seg, n) in dump.notes() {
        let n = n?;
        // Every VMCOREINFO note of the input is replaced by the one text we carry.
        if vmcoreinfo.is_some() && n.is_vmcoreinfo() {
            continue;
        }
        // A zero header (padding at the end of a note area) is not a note.
        if n.namesz == 0 && n.desc.is_empty() && n.n_type == 0 {
            continue;
        }
        let name_start = n.offset + size_of::<NoteHeader>();
        let name = &seg.data[name_start..name_start + n.namesz as usize];
        push_note(&mut out, e, name, n.n_type, n.desc);
    }
    let at = vmcoreinfo.map(|t| (push_note(&mut out, e, b"VMCOREINFO\0", 0, t), t.len()));
    Ok(NoteBuf { bytes: out, vmcoreinfo: at })
}

/// Append one note; returns the offset of its desc.
pub(super) fn push_note(out: &mut Vec<u8>, e: Endianness, name: &[u8], n_type: u32, desc: &[u8]) -> usize {
    let h = NoteHeader {
        n_namesz: U32::new(e, name.len() as u32),
        n_descsz: U32::new(e, desc.len() as u32),
        n_type: U32::new(e, object::elf::NoteType(n_type)),
    };
    out.extend_from_slice(pod::bytes_of(&h));
    out.extend_from_slice(name);
    pad4(out);
    let at = out.len();
    out.extend_from_slice(desc);
    pad4(out);
    at
}

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}
