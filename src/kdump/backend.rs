//! A kdump-compressed file (plain or flattened) as a dump format: the reader, the note area read
//! at open, the machine it implies, and the VMCOREINFO text its sub-header points at.

use std::sync::Arc;

use super::KdumpFile;
use crate::elf::NoteSegment;
use crate::error::{Error, Result, Rule};
use crate::flattened::FlattenedInfo;
use crate::format::{DumpFormat, Format, Identity};
use crate::phys::{PhysMemory, PhysRange};
use crate::source::ReadAt;
use crate::textblob::{refuse_windows_header, TextBlob};

/// A kdump file opened as a dump.
pub struct KdumpDump {
    pub file: KdumpFile,
    /// For a flattened file, what its records held (the reader reads the reassembled view).
    pub flattened: Option<FlattenedInfo>,
    notes: Vec<NoteSegment>,
    identity: Identity,
}

impl KdumpDump {
    /// Open the kdump reader over `src` (`head`: its first bytes, already read; empty for a
    /// flattened file's reassembled view), read the note area, and settle the machine: the
    /// header's utsname.machine, else the VMCOREINFO text with the header's layout.
    pub fn open(src: Arc<dyn ReadAt>, head: &[u8], flattened: Option<FlattenedInfo>, max_note_size: u32) -> Result<KdumpDump> {
        let file = KdumpFile::open_with_head(src, head)?;
        let notes = file.note_segment(head)?.into_iter().collect();
        let big_endian = file.byteorder_big();
        let placeholder = Identity { e_machine: 0, class64: true, big_endian, source: "unknown" };
        let mut d = KdumpDump { file, flattened, notes, identity: placeholder };
        let named = crate::machine::machine_from_uname(d.file.machine()).is_some();
        let (e_machine, class64) = d.file.machine_guess(|| d.text_or_note(max_note_size));
        let source = match (named, e_machine) {
            (true, _) => "kdump-header",
            (false, 0) => "unknown",
            (false, _) => "kdump-layout+vmcoreinfo",
        };
        d.identity = Identity { e_machine, class64, big_endian, source };
        Ok(d)
    }

    /// The text for the machine guess: the sub-header's, else the last VMCOREINFO note's.
    fn text_or_note(&self, max_note_size: u32) -> Option<TextBlob> {
        if let Some(t) = self.vmcoreinfo_text(max_note_size) {
            return t.ok();
        }
        // The same reading, and the same intake checks, as the dump's own text.
        crate::textblob::last_vmcoreinfo_note(&self.notes, self.identity.big_endian, max_note_size).ok().flatten()
    }
}

impl PhysMemory for KdumpDump {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_phys(addr, buf)
    }
    fn ranges(&self) -> Result<Vec<PhysRange>> {
        self.file.ranges()
    }
    fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        self.file.check_covered(addr, len)
    }
}

impl DumpFormat for KdumpDump {
    fn format(&self) -> Format {
        if self.flattened.is_some() {
            Format::FlattenedKdump
        } else {
            Format::Kdump
        }
    }
    fn identity(&self) -> Option<Identity> {
        Some(self.identity)
    }
    fn note_segments(&self) -> &[NoteSegment] {
        &self.notes
    }
    /// The sub-header points straight at the text (QEMU and makedumpfile alike); when the text
    /// lies inside the note area already read, those bytes are shared.
    fn vmcoreinfo_text(&self, max_note_size: u32) -> Option<Result<TextBlob>> {
        let (off, size) = self.file.vmcoreinfo_location()?;
        let limit = u64::from(max_note_size);
        if size > limit {
            return Some(Err(Error::note_rule(
                Rule::SizeAboveLimit,
                Some(off),
                format!("kdump size_vmcoreinfo {size} is larger than the limit {limit}"),
            )));
        }
        for seg in &self.notes {
            let seg_end = seg.file_offset + seg.data.len() as u64;
            if off >= seg.file_offset && off + size <= seg_end {
                let start = (off - seg.file_offset) as usize;
                let blob = TextBlob {
                    data: seg.data.clone(),
                    start,
                    end: start + size as usize,
                    file_offset: Some(off),
                    phys_addr: None,
                    text_paddr: None,
                };
                return Some(refuse_windows_header(blob));
            }
        }
        Some(self.file.source().read_vec(off, size, "kdump VMCOREINFO").and_then(|data| {
            refuse_windows_header(TextBlob {
                data: Arc::from(data),
                start: 0,
                end: size as usize,
                file_offset: Some(off),
                phys_addr: None,
                text_paddr: None,
            })
        }))
    }
    fn file_offset(&self, _addr: u64, _len: u64) -> Option<u64> {
        None
    }
    fn stored_memory(&self) -> Result<Option<(u64, u64)>> {
        let (declared, stored) = self.file.stored_pages()?;
        let bs = u64::from(self.file.block_size());
        Ok(Some((declared.saturating_mul(bs), stored.saturating_mul(bs))))
    }
    fn source(&self) -> &Arc<dyn ReadAt> {
        self.file.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian v6 kdump (block size 512, no pages) whose header names no machine and
    /// whose sub-header points at no VMCOREINFO text, only at a note area holding one
    /// VMCOREINFO note with an x86_64 text of `text.len()` bytes.
    fn kdump_with_note(text: &[u8]) -> Vec<u8> {
        let bs = 512usize;
        let mut v = vec![0u8; bs * 2];
        v[..8].copy_from_slice(super::super::SIGNATURE);
        v[8..12].copy_from_slice(&6i32.to_le_bytes());
        v[12 + 4 * 65..12 + 4 * 65 + 7].copy_from_slice(b"Unknown");
        // status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr, ..., nr_cpus
        for (i, x) in [0u32, bs as u32, 1, 2, 8, 0, 0, 0, 0, 1].iter().enumerate() {
            v[424 + 4 * i..428 + 4 * i].copy_from_slice(&x.to_le_bytes());
        }
        v[bs + 96..bs + 104].copy_from_slice(&8u64.to_le_bytes());
        v.resize(bs * 4, 0); // the two bitmap blocks: nothing present
        let mut note = Vec::new();
        note.extend_from_slice(&11u32.to_le_bytes());
        note.extend_from_slice(&(text.len() as u32).to_le_bytes());
        note.extend_from_slice(&0u32.to_le_bytes());
        note.extend_from_slice(b"VMCOREINFO\0\0");
        note.extend_from_slice(text);
        note.resize(note.len().next_multiple_of(4), 0);
        let off = v.len() as u64;
        v[bs + 48..bs + 56].copy_from_slice(&off.to_le_bytes());
        v[bs + 56..bs + 64].copy_from_slice(&(note.len() as u64).to_le_bytes());
        v.extend_from_slice(&note);
        v
    }

    #[test]
    fn the_machine_guess_reads_the_note_with_the_intake_checks() {
        let text = b"OSRELEASE=6.1.0\nSYMBOL(init_top_pgt)=ffffffff82a0a000\n";
        let file: Arc<dyn ReadAt> = Arc::new(kdump_with_note(text));
        let d = KdumpDump::open(file.clone(), &file.read_vec(0, 512, "head").unwrap(), None, 1 << 20).unwrap();
        assert_eq!(
            d.identity,
            Identity {
                e_machine: crate::bitness::EM_X86_64,
                class64: true,
                big_endian: false,
                source: "kdump-layout+vmcoreinfo"
            }
        );
        // A limit below the note's size: the dump's text is refused (the intake check), and the
        // machine guess no longer reads the refused text (it did, before D17 was fixed).
        let small = text.len() as u32 / 2;
        let d = KdumpDump::open(file.clone(), &file.read_vec(0, 512, "head").unwrap(), None, small).unwrap();
        assert_eq!(d.identity.e_machine, 0);
        assert_eq!(d.identity.source, "unknown");
        let e = crate::textblob::last_vmcoreinfo_note(&d.notes, false, small).unwrap_err();
        assert_eq!(e.rule(), Some(Rule::SizeAboveLimit), "{e}");
    }
}
