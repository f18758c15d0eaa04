//! ELF notes: zero-copy iteration over a note segment, and locating the VMCOREINFO note.
//!
//! Notes are walked with `object`'s `NoteIterator`, in the dump's byte order. Core dumps pad
//! notes to 4 bytes even in ELF64 (p_align 0 or 4); a segment with p_align 8 is walked with
//! 8-byte padding, as binutils does.

use object::elf::{FileHeader64, NoteHeader32};
use object::read::elf::NoteIterator;
use object::Endianness;

use crate::error::{Error, Result};

/// One note segment (an ELF PT_NOTE, the kdump note area), its bytes read at open.
#[derive(Debug, Clone)]
pub struct NoteSegment {
    pub file_offset: u64,
    pub align: u64,
    pub data: std::sync::Arc<[u8]>,
}

/// Size of an ELF note header (`n_namesz`, `n_descsz`, `n_type`), the same for ELF32 and ELF64.
pub const NOTE_HEADER_SIZE: usize = std::mem::size_of::<NoteHeader32<Endianness>>();
/// Padding of note names and descs in core dumps: 4 bytes, even in ELF64 (QEMU, the kernel).
pub const NOTE_ALIGN: u64 = 4;

/// The note name the kernel gives its VMCOREINFO note (namesz 11 with the NUL).
pub const VMCOREINFO_NAME: &[u8] = b"VMCOREINFO";
/// The VMCOREINFO note's name as stored, with its NUL.
pub const VMCOREINFO_NAME_NUL: &[u8; 11] = b"VMCOREINFO\0";
/// `n_namesz` of the VMCOREINFO note.
pub const VMCOREINFO_NAMESZ: u32 = VMCOREINFO_NAME_NUL.len() as u32;
/// Offset of the name in a note.
pub const NAME_OFFSET: usize = NOTE_HEADER_SIZE;
/// Offset of the desc (the text) in a VMCOREINFO note: header + name padded to 4 (24).
pub const VMCOREINFO_DESC_OFFSET: usize = NOTE_HEADER_SIZE + align4(VMCOREINFO_NAMESZ as u64) as usize;

/// Offsets of `n_namesz` and `n_descsz` in a note header (where rule errors point).
pub const N_NAMESZ_OFFSET: u64 = std::mem::offset_of!(NoteHeader32<Endianness>, n_namesz) as u64;
pub const N_DESCSZ_OFFSET: u64 = std::mem::offset_of!(NoteHeader32<Endianness>, n_descsz) as u64;

/// `(n_namesz, n_descsz, n_type)` of the note header at the start of `b`, in the given byte
/// order (object's `NoteHeader32`: ELF64 uses the same 12 bytes); `None` when `b` is shorter.
pub fn note_header(b: &[u8], big_endian: bool) -> Option<(u32, u32, u32)> {
    let e = if big_endian { Endianness::Big } else { Endianness::Little };
    let (h, _) = object::pod::from_bytes::<NoteHeader32<Endianness>>(b).ok()?;
    Some((h.n_namesz.get(e), h.n_descsz.get(e), h.n_type.get(e).0))
}

/// `x` rounded up to [`NOTE_ALIGN`] (`x` from a u32 field: no overflow).
pub const fn align4(x: u64) -> u64 {
    (x + (NOTE_ALIGN - 1)) & !(NOTE_ALIGN - 1)
}

/// Size of a note with these name and desc sizes, each padded to 4 bytes.
pub fn padded_note_size(namesz: u32, descsz: u32) -> u64 {
    NOTE_HEADER_SIZE as u64 + align4(u64::from(namesz)) + align4(u64::from(descsz))
}

/// One note, borrowed from its segment's bytes.
#[derive(Debug, Clone, Copy)]
pub struct RawNote<'a> {
    /// Name without its trailing NUL.
    pub name: &'a [u8],
    /// `n_namesz` as written (includes the NUL).
    pub namesz: u32,
    pub n_type: u32,
    pub desc: &'a [u8],
    /// Offset of the note header within the segment.
    pub offset: usize,
    /// Offset of the desc within the segment.
    pub desc_offset: usize,
}

impl RawNote<'_> {
    /// The kernel's VMCOREINFO note: named exactly "VMCOREINFO" (namesz 11). `VMCOREINFO_XEN` is
    /// a different note.
    pub fn is_vmcoreinfo(&self) -> bool {
        self.name == VMCOREINFO_NAME && self.namesz == 11
    }
    /// Padded length of the note (header + name + desc, each padded to 4).
    pub fn padded_len(&self) -> u64 {
        NOTE_HEADER_SIZE as u64 + align4(u64::from(self.namesz)) + align4(self.desc.len() as u64)
    }
}

/// Iterator over the notes of one segment. `base` is the segment's file offset, used in errors.
pub struct Notes<'a> {
    inner: Option<NoteIterator<'a, FileHeader64<Endianness>>>,
    data: &'a [u8],
    base: u64,
    endian: Endianness,
    align: usize,
    /// Offset of the next note header (our own bookkeeping: `object` exposes no position).
    pos: usize,
}

/// Walk the notes of `data` (a PT_NOTE segment at file offset `base`) in the given byte order.
pub fn notes(data: &[u8], big_endian: bool, p_align: u64, base: u64) -> Notes<'_> {
    let endian = if big_endian { Endianness::Big } else { Endianness::Little };
    // p_align values other than 0/4/8 are not meaningful for notes; binutils pads to 4 then.
    let align = if p_align == 8 { 8 } else { NOTE_ALIGN as usize };
    let inner = NoteIterator::new(endian, align as u64, data).ok();
    Notes { inner, data, base, endian, align, pos: 0 }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Result<RawNote<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let it = self.inner.as_mut()?;
        let at = self.pos;
        match it.next() {
            Ok(None) => None,
            Ok(Some(n)) => {
                let base = self.data.as_ptr() as usize;
                let desc = n.desc();
                let namesz = n.n_namesz(self.endian);
                let name_end = at + NOTE_HEADER_SIZE + namesz as usize;
                let desc_offset = if desc.is_empty() { name_end } else { desc.as_ptr() as usize - base };
                let end = desc_offset + desc.len();
                self.pos = end.div_ceil(self.align) * self.align;
                Some(Ok(RawNote { name: n.name(), namesz, n_type: n.n_type(self.endian).0, desc, offset: at, desc_offset }))
            }
            Err(e) => {
                self.inner = None;
                let rest = self.data.len().saturating_sub(at);
                let what = if rest < NOTE_HEADER_SIZE { "note header is truncated".to_string() } else { e.to_string() };
                Some(Err(Error::truncated(self.base + at as u64, format!("malformed note: {what}"))))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encode one note (4-byte padding) in the given byte order.
    pub fn note(name: &[u8], n_type: u32, desc: &[u8], big: bool) -> Vec<u8> {
        let w = |x: u32| if big { x.to_be_bytes() } else { x.to_le_bytes() };
        let mut v = Vec::new();
        v.extend_from_slice(&w(name.len() as u32 + 1));
        v.extend_from_slice(&w(desc.len() as u32));
        v.extend_from_slice(&w(n_type));
        v.extend_from_slice(name);
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn walks_notes_with_offsets_both_byte_orders() {
        for big in [false, true] {
            let mut seg = note(b"CORE", 1, &[1, 2, 3, 4, 5], big);
            let second = seg.len();
            seg.extend(note(b"VMCOREINFO_XEN", 0, b"X=1\n", big));
            let third = seg.len();
            seg.extend(note(b"VMCOREINFO", 0, b"OSRELEASE=6.1\n", big));
            let v: Vec<_> = notes(&seg, big, 0, 100).collect::<Result<_>>().unwrap();
            assert_eq!(v.len(), 3);
            assert_eq!((v[0].name, v[0].n_type, v[0].desc), (&b"CORE"[..], 1, &[1u8, 2, 3, 4, 5][..]));
            assert_eq!(v[1].offset, second);
            assert!(!v[1].is_vmcoreinfo());
            assert!(v[2].is_vmcoreinfo());
            assert_eq!(v[2].offset, third);
            assert_eq!(&seg[v[2].desc_offset..v[2].desc_offset + 14], b"OSRELEASE=6.1\n");
        }
    }

    #[test]
    fn truncated_or_lying_notes_are_typed_errors() {
        let mut seg = note(b"CORE", 1, &[0; 8], false);
        let good = seg.len();
        seg.extend_from_slice(&[11, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]); // descsz 4 GiB
        seg.extend_from_slice(b"VMCOREINFO\0\0");
        let r: Vec<_> = notes(&seg, false, 4, 1000).collect();
        assert_eq!(r.len(), 2);
        let e = r[1].as_ref().unwrap_err();
        assert_eq!(e.offset(), Some(1000 + good as u64));
        let r: Vec<_> = notes(&seg[..good + 5], false, 4, 0).collect();
        assert!(r[1].is_err());
        assert!(notes(&[], false, 0, 0).next().is_none());
    }
}
