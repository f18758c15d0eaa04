//! ELF core dumps (QEMU `dump-guest-memory`, makedumpfile `-E`, /proc/vmcore copies).
//!
//! Reads only the ELF header, the program headers (and section 0 for PN_XNUM) and the PT_NOTE
//! segments at open; physical memory is read on demand through the PT_LOAD map.
//! Honours `e_phoff` wherever it points (QEMU 7.2 writes `e_ehsize = 8` and puts the section
//! headers before the program headers) and does not trust `e_ehsize`.

use crate::format::{DumpFormat, Format, Identity};
use std::sync::Arc;

use object::elf::{self as E, FileHeader32, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::Endianness;

use crate::error::{Error, Result};
use crate::extent::{Beyond, Extent, ExtentMap, Labels};
use crate::phys::{PhysMemory, PhysRange};
use crate::source::ReadAt;

// Offsets in e_ident (object names only the struct fields).
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const EI_VERSION: usize = 6;

/// How much of the file head to read in one `pread` at open. QEMU's headers and notes of a
/// small guest fit; anything beyond is read with one more `pread` per table.
pub const HEAD_READ: usize = 8192;
/// Largest program header table or note segment total we read (a lying header cannot make us
/// allocate more; raise it if real dumps need more).
pub const MAX_TABLE_BYTES: u64 = 256 << 20;

pub use crate::notes::NoteSegment;

/// One PT_LOAD as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub paddr: u64,
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// Error words of the PT_LOAD map.
const LABELS: Labels = Labels {
    gap: "the dump holds no memory at this address",
    unstored: "the dump records this memory only as a PT_LOAD p_filesz < p_memsz tail (not saved by the producer)",
    data: "PT_LOAD data for physical",
};

/// A parsed ELF dump.
pub struct ElfDump {
    pub class64: bool,
    pub big_endian: bool,
    pub e_machine: u16,
    pub phnum: u32,
    pub notes: Vec<NoteSegment>,
    pub loads: Vec<Load>,
    /// Bytes of PT_LOADs that overlap an earlier PT_LOAD with a different file mapping
    /// (the earlier in (paddr, file offset) order wins).
    pub conflicting_overlap_bytes: u64,
    /// The physical map: one extent per PT_LOAD (`p_filesz` bytes stored, `p_memsz` covered).
    map: ExtentMap,
    src: Arc<dyn ReadAt>,
}

impl std::fmt::Debug for ElfDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElfDump")
            .field("class64", &self.class64)
            .field("big_endian", &self.big_endian)
            .field("e_machine", &self.e_machine)
            .field("loads", &self.loads.len())
            .finish()
    }
}

/// True when `head` starts with the ELF magic.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(&E::ELFMAG)
}

impl ElfDump {
    /// Parse the headers of an ELF dump. `head` is the first bytes of the file (any length; more
    /// is read from `src` when the tables lie beyond it).
    pub fn parse(src: Arc<dyn ReadAt>, head: &[u8]) -> Result<ElfDump> {
        if !is_elf(head) {
            return Err(Error::format(0, "not an ELF file (bad magic)"));
        }
        let class = *head.get(EI_CLASS).ok_or_else(|| Error::truncated(head.len() as u64, "ELF identification is truncated"))?;
        match class {
            c if c == E::ELFCLASS64.0 => parse_class::<FileHeader64<Endianness>>(src, head),
            c if c == E::ELFCLASS32.0 => parse_class::<FileHeader32<Endianness>>(src, head),
            c => Err(Error::format(EI_CLASS as u64, format!("unknown ELF class {c}"))),
        }
    }

    /// Highest physical address + 1 that any PT_LOAD covers.
    pub fn max_phys_end(&self) -> u64 {
        self.map.end()
    }

    /// How to read the part of a PT_LOAD past `p_filesz` (up to `p_memsz`). The ELF format
    /// defines it as zeros (the default, as crash and gdb read it), but producers use it for
    /// memory they did not save: makedumpfile `-E` for the pages it excluded, QEMU for memory it
    /// could not read. With `absent = true` such bytes are reported absent instead.
    pub fn set_tails_absent(&mut self, absent: bool) {
        self.map.set_beyond(if absent { Beyond::Absent } else { Beyond::Zeros });
    }

    /// Bytes of physical memory that lie in `p_filesz < p_memsz` tails.
    pub fn tail_bytes(&self) -> u64 {
        self.map.unstored_bytes()
    }

    /// Bytes of physical memory the PT_LOADs declare the file stores (`p_filesz`, counted once
    /// where PT_LOADs overlap), and how many of them lie inside the file as opened.
    pub fn stored_memory(&self) -> (u64, u64) {
        self.map.stored_within(self.src.size())
    }

    /// File offset of physical `[addr, addr + len)` when one run of PT_LOAD file bytes holds
    /// all of it: where [`PhysMemory::read_phys`] reads those bytes from.
    pub fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        self.map.file_offset(addr, len)
    }

    /// The physical map (sorted, non-overlapping).
    pub fn extents(&self) -> &[Extent] {
        self.map.extents()
    }
}

/// Turn a slice of the file into a typed table entry using `object`'s Pod types.
fn pod<'a, T: object::pod::Pod>(data: &'a [u8], offset: u64, what: &str) -> Result<&'a T> {
    let start = usize::try_from(offset).map_err(|_| Error::format(offset, format!("{what} offset too large")))?;
    data.get(start..)
        .and_then(|d| object::pod::from_bytes::<T>(d).ok())
        .map(|(t, _)| t)
        .ok_or_else(|| Error::truncated(offset, format!("{what} is truncated")))
}

/// Bytes `[offset, offset + len)` of the file: from `head` when it holds them, else one pread.
fn table<'a>(src: &dyn ReadAt, head: &'a [u8], offset: u64, len: u64, what: &str) -> Result<std::borrow::Cow<'a, [u8]>> {
    if len > MAX_TABLE_BYTES {
        return Err(Error::limit(offset, format!("{what} of {len} bytes exceeds the {MAX_TABLE_BYTES}-byte limit")));
    }
    let end = offset.checked_add(len).ok_or_else(|| Error::format(offset, format!("{what}: offset + size overflows")))?;
    if end <= head.len() as u64 {
        return Ok(std::borrow::Cow::Borrowed(&head[offset as usize..end as usize]));
    }
    src.read_vec(offset, len, what).map(std::borrow::Cow::Owned)
}

fn parse_class<Elf>(src: Arc<dyn ReadAt>, head: &[u8]) -> Result<ElfDump>
where
    Elf: FileHeader<Endian = Endianness>,
{
    let hdr: &Elf = pod(head, 0, "ELF header")?;
    let ident = hdr.e_ident();
    if ident.version != E::EV_CURRENT {
        return Err(Error::format(EI_VERSION as u64, format!("unsupported ELF version {}", ident.version)));
    }
    let endian = match ident.data {
        E::ELFDATA2LSB => Endianness::Little,
        E::ELFDATA2MSB => Endianness::Big,
        d => return Err(Error::format(EI_DATA as u64, format!("unknown ELF data encoding {d}"))),
    };
    let class64 = Elf::is_type_64_sized();
    let e_type = hdr.e_type(endian);
    if e_type != E::ET_CORE {
        return Err(Error::format(16, format!("ELF type {e_type} is not a core file (ET_CORE = 4)")));
    }
    let e_machine = hdr.e_machine(endian).0;
    let phoff: u64 = hdr.e_phoff(endian).into();
    let (phnum, phdrs_raw) = read_phdr_table::<Elf>(&*src, head, hdr, endian)?;
    let phdrs: &[Elf::ProgramHeader] =
        object::pod::slice_from_all_bytes(&phdrs_raw).map_err(|_| Error::format(phoff, "program header table is misaligned"))?;
    let (notes, loads) = collect_segments::<Elf>(&*src, head, phdrs, phoff, endian)?;
    let (map, conflicting_overlap_bytes) = build_map(&loads);
    Ok(ElfDump {
        class64,
        big_endian: endian == Endianness::Big,
        e_machine,
        phnum,
        notes,
        loads,
        conflicting_overlap_bytes,
        map,
        src,
    })
}

/// The program header table of `hdr`: its count (e_phnum, or section 0's sh_info when e_phnum
/// is PN_XNUM) and its bytes, each field checked (errors at the field that is wrong).
fn read_phdr_table<'h, Elf>(
    src: &dyn ReadAt,
    head: &'h [u8],
    hdr: &Elf,
    endian: Endianness,
) -> Result<(u32, std::borrow::Cow<'h, [u8]>)>
where
    Elf: FileHeader<Endian = Endianness>,
{
    let class64 = Elf::is_type_64_sized();
    let phoff: u64 = hdr.e_phoff(endian).into();
    let phentsize = u64::from(hdr.e_phentsize(endian));
    let want = std::mem::size_of::<Elf::ProgramHeader>() as u64;
    // Each error names the field that is wrong (offsets in the ELF header, and of sh_info in a
    // section header).
    let (phoff_field, shoff_field, phentsize_field, phnum_field, sh_info_at) =
        if class64 { (0x20, 0x28, 0x36, 0x38, 44) } else { (0x1c, 0x20, 0x2a, 0x2c, 28) };
    let mut phnum = u32::from(hdr.e_phnum(endian));
    // Where the count was read: e_phnum, or section 0's sh_info when e_phnum is PN_XNUM.
    let mut phnum_at = phnum_field;
    if phnum == u32::from(E::PN_XNUM) {
        // The real count is in section 0's sh_info.
        let shoff: u64 = hdr.e_shoff(endian).into();
        if shoff == 0 {
            return Err(Error::format(shoff_field, "e_phnum is PN_XNUM but e_shoff is 0: there are no section headers"));
        }
        let shsize = std::mem::size_of::<Elf::SectionHeader>() as u64;
        let sh = table(src, head, shoff, shsize, "section header 0")?;
        let s0: &Elf::SectionHeader = pod(&sh, 0, "section header 0").map_err(|e| e.shifted(shoff))?;
        phnum = s0.sh_info(endian);
        phnum_at = shoff + sh_info_at;
    }
    if phoff == 0 {
        return Err(Error::format(phoff_field, "the ELF file has no program headers (e_phoff is 0)"));
    }
    if phnum == 0 {
        let field = if phnum_at == phnum_field { "e_phnum" } else { "section 0's sh_info (e_phnum is PN_XNUM)" };
        return Err(Error::format(phnum_at, format!("the ELF file has no program headers ({field} is 0)")));
    }
    if phentsize != want {
        return Err(Error::format(phentsize_field, format!("e_phentsize is {phentsize}, expected {want}")));
    }
    let ph_bytes = u64::from(phnum) * want;
    // Headers inside the head are inside the file (no need for its length).
    if phoff.checked_add(ph_bytes).is_none_or(|end| end > head.len() as u64 && end > src.size()) {
        return Err(Error::truncated(
            phoff,
            format!("{phnum} program headers at {phoff:#x} run past the end of the file ({} bytes)", src.size()),
        ));
    }
    let phdrs_raw = table(src, head, phoff, ph_bytes, "program header table")?;
    Ok((phnum, phdrs_raw))
}

/// The PT_NOTE segments (read) and the PT_LOADs (checked) of the program headers at `phoff`.
fn collect_segments<Elf>(
    src: &dyn ReadAt,
    head: &[u8],
    phdrs: &[Elf::ProgramHeader],
    phoff: u64,
    endian: Endianness,
) -> Result<(Vec<NoteSegment>, Vec<Load>)>
where
    Elf: FileHeader<Endian = Endianness>,
{
    let want = std::mem::size_of::<Elf::ProgramHeader>() as u64;
    // Sized once (dumps have one PT_NOTE and a PT_LOAD per RAM range): no regrowth per header.
    // `phdrs` is already in memory, and a `Load` is smaller than the header it comes from.
    let mut notes = Vec::with_capacity(1);
    let mut loads = Vec::with_capacity(phdrs.len());
    let mut note_total = 0u64;
    for (i, ph) in phdrs.iter().enumerate() {
        let ph_off = phoff + i as u64 * want;
        let p_offset: u64 = ph.p_offset(endian).into();
        let filesz: u64 = ph.p_filesz(endian).into();
        match ph.p_type(endian) {
            E::PT_NOTE => {
                if filesz == 0 {
                    continue;
                }
                note_total = note_total.saturating_add(filesz);
                if note_total > MAX_TABLE_BYTES {
                    return Err(Error::limit(ph_off, format!("PT_NOTE segments total more than {MAX_TABLE_BYTES} bytes")));
                }
                let data = table(src, head, p_offset, filesz, "PT_NOTE segment")
                    .map_err(|e| Error { message: format!("program header {i}: {}", e.message), ..e })?;
                notes.push(NoteSegment { file_offset: p_offset, align: ph.p_align(endian).into(), data: Arc::from(&*data) });
            }
            E::PT_LOAD => {
                let l = Load {
                    paddr: ph.p_paddr(endian).into(),
                    vaddr: ph.p_vaddr(endian).into(),
                    offset: p_offset,
                    filesz,
                    memsz: ph.p_memsz(endian).into(),
                };
                if l.offset.checked_add(l.filesz).is_none() || l.paddr.checked_add(l.memsz.max(l.filesz)).is_none() {
                    return Err(Error::format(ph_off, format!("program header {i}: PT_LOAD offset/size overflow")));
                }
                loads.push(l);
            }
            _ => {}
        }
    }
    Ok((notes, loads))
}

/// The physical map of the PT_LOADs: `p_memsz` (or `p_filesz`, if larger) bytes from `p_paddr`,
/// the first `p_filesz` of them in the file. Where PT_LOADs overlap (QEMU with paging writes
/// several virtual mappings of one physical range) the extent map's one rule decides: the first
/// in (paddr, file offset) order wins; overlaps that map the same physical bytes to different
/// file bytes are counted.
fn build_map(loads: &[Load]) -> (ExtentMap, u64) {
    // parse_class checked that offset + filesz and paddr + max(memsz, filesz) do not overflow.
    let extents = loads.iter().filter_map(|l| Extent::new(l.paddr, l.memsz.max(l.filesz), l.offset, l.filesz)).collect();
    ExtentMap::build(extents, Beyond::Zeros, LABELS)
}

impl PhysMemory for ElfDump {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.map.read(&*self.src, addr, buf)
    }

    fn ranges(&self) -> Result<Vec<PhysRange>> {
        Ok(self.map.ranges())
    }
    fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        self.map.check_covered(addr, len)
    }
}

impl DumpFormat for ElfDump {
    fn format(&self) -> Format {
        Format::Elf
    }
    fn identity(&self) -> Option<Identity> {
        Some(Identity { e_machine: self.e_machine, class64: self.class64, big_endian: self.big_endian, source: "elf-header" })
    }
    fn note_segments(&self) -> &[NoteSegment] {
        &self.notes
    }
    fn file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        ElfDump::file_offset(self, addr, len)
    }
    fn stored_memory(&self) -> Result<Option<(u64, u64)>> {
        Ok(Some(ElfDump::stored_memory(self)))
    }
    fn source(&self) -> &Arc<dyn ReadAt> {
        &self.src
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;

    /// Build a minimal ELF64 LE core: header, optional section headers, phdrs at `phoff`, payload.
    pub fn build_elf64(machine: u16, phdrs: &[(u32, u64, u64, u64, u64, u64)], payload: &[(u64, &[u8])]) -> Vec<u8> {
        // phdr tuple: (type, offset, paddr, filesz, memsz, align)
        let phoff = 64u64;
        let mut v = vec![0u8; 64];
        v[..4].copy_from_slice(&E::ELFMAG);
        v[4] = E::ELFCLASS64.0;
        v[5] = E::ELFDATA2LSB.0;
        v[6] = 1;
        v[16..18].copy_from_slice(&4u16.to_le_bytes());
        v[18..20].copy_from_slice(&machine.to_le_bytes());
        v[20..24].copy_from_slice(&1u32.to_le_bytes());
        v[32..40].copy_from_slice(&phoff.to_le_bytes());
        v[52..54].copy_from_slice(&8u16.to_le_bytes()); // e_ehsize as QEMU 7.2 writes it
        v[54..56].copy_from_slice(&56u16.to_le_bytes());
        v[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(t, off, paddr, filesz, memsz, align) in phdrs {
            let mut p = [0u8; 56];
            p[0..4].copy_from_slice(&t.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&paddr.to_le_bytes());
            p[24..32].copy_from_slice(&paddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            p[48..56].copy_from_slice(&align.to_le_bytes());
            v.extend_from_slice(&p);
        }
        for &(off, bytes) in payload {
            let end = off as usize + bytes.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[off as usize..end].copy_from_slice(bytes);
        }
        v
    }

    fn open(v: Vec<u8>) -> Result<ElfDump> {
        let head = v.clone();
        ElfDump::parse(Arc::new(v), &head)
    }

    #[test]
    fn reads_loads_zero_tail_and_absent() {
        let data: Vec<u8> = (0..=255u8).cycle().take(0x2000).collect();
        let v = build_elf64(
            62,
            &[(E::PT_LOAD.0, 0x1000, 0x10000, 0x1000, 0x2000, 0), (E::PT_LOAD.0, 0x2000, 0x40000, 0x1000, 0x1000, 0)],
            &[(0x1000, &data)],
        );
        let d = open(v).unwrap();
        assert!(d.class64 && !d.big_endian);
        assert_eq!(d.e_machine, 62);
        let mut b = [0u8; 16];
        d.read_phys(0x10000 + 0xff8, &mut b).unwrap();
        assert_eq!(&b[..8], &data[0xff8..0x1000]);
        assert_eq!(&b[8..], &[0u8; 8]); // p_filesz < p_memsz
        let e = d.read_phys(0x11ff8, &mut b).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Absent);
        assert_eq!(e.address(), Some(0x12000));
        assert_eq!(
            d.ranges().unwrap(),
            vec![PhysRange { start: 0x10000, end: 0x12000 }, PhysRange { start: 0x40000, end: 0x41000 }]
        );
        assert_eq!(d.tail_bytes(), 0x1000);
        let mut d = d;
        d.set_tails_absent(true);
        let e = d.read_phys(0x10000 + 0xff8, &mut b).unwrap_err();
        assert_eq!((e.kind, e.address()), (ErrorKind::Absent, Some(0x11000)));
        assert_eq!(
            d.ranges().unwrap(),
            vec![PhysRange { start: 0x10000, end: 0x11000 }, PhysRange { start: 0x40000, end: 0x41000 }]
        );
    }

    #[test]
    fn a_file_cut_short_names_the_declared_offset_and_how_much_it_holds() {
        let data = vec![5u8; 0x2000];
        let v = build_elf64(
            62,
            &[(E::PT_LOAD.0, 0x1000, 0x10000, 0x1000, 0x1000, 0), (E::PT_LOAD.0, 0x2000, 0x40000, 0x1000, 0x1000, 0)],
            &[(0x1000, &data)],
        );
        assert_eq!(open(v.clone()).unwrap().stored_memory(), (0x2000, 0x2000));
        let d = open(v[..0x2800].to_vec()).unwrap();
        assert_eq!(d.stored_memory(), (0x2000, 0x1800));
        let mut b = [0u8; 0x1000];
        d.read_phys(0x10000, &mut b).unwrap();
        // Data declared at 0x2000..0x3000, of which 0x2800.. is missing: the offset is where the
        // read's data was declared, not the end of the file, and no "shrank" is claimed.
        let e = d.read_phys(0x40000, &mut b).unwrap_err();
        assert_eq!((e.kind, e.offset()), (ErrorKind::Truncated, Some(0x2000)), "{e}");
        assert!(e.message.contains("holds 6144 of the 8192 bytes"), "{e}");
        assert!(!e.message.contains("shr"), "{e}");
    }

    #[test]
    fn overlapping_paging_style_loads_are_deduplicated() {
        let data = vec![7u8; 0x1000];
        let v = build_elf64(
            62,
            &[(E::PT_LOAD.0, 0x1000, 0x5000, 0x1000, 0x1000, 0), (E::PT_LOAD.0, 0x1000, 0x5000, 0x1000, 0x1000, 0)],
            &[(0x1000, &data)],
        );
        let d = open(v).unwrap();
        assert_eq!(d.conflicting_overlap_bytes, 0);
        assert_eq!(d.ranges().unwrap().len(), 1);
    }

    #[test]
    fn file_offset_is_where_overlapping_loads_are_read_from() {
        // Two PT_LOADs map physical 0x5000..0x6000; in header order the one at file 0x2000 comes
        // first, in the map's (paddr, file offset) order the one at file 0x1000 wins. The file
        // offset reported for a physical range must be where read_phys reads its bytes.
        let a = vec![0xaau8; 0x1000];
        let b = vec![0xbbu8; 0x1000];
        let v = build_elf64(
            62,
            &[(E::PT_LOAD.0, 0x2000, 0x5000, 0x1000, 0x1000, 0), (E::PT_LOAD.0, 0x1000, 0x5000, 0x1000, 0x1000, 0)],
            &[(0x1000, &a), (0x2000, &b)],
        );
        let file = v.clone();
        let dump = crate::dump::Dump::from_source(Arc::new(v), Arc::from("t.core"), Default::default()).unwrap();
        let mut got = [0u8; 16];
        dump.read_phys(0x5100, &mut got).unwrap();
        let off = dump.phys_file_offset(0x5100, 16).expect("one PT_LOAD holds it") as usize;
        assert_eq!(&file[off..off + 16], &got, "file offset {off:#x} does not hold the bytes read");
        assert_eq!(off, 0x1100);
        assert_eq!(dump.elf().unwrap().conflicting_overlap_bytes, 0x1000);
    }

    #[test]
    fn hostile_headers_are_typed_errors() {
        let mut v = build_elf64(62, &[(E::PT_LOAD.0, 0x1000, 0, 0x10, 0x10, 0)], &[]);
        v[56..58].copy_from_slice(&0xfffeu16.to_le_bytes()); // phnum far past EOF
        assert_eq!(open(v.clone()).unwrap_err().kind, ErrorKind::Truncated);
        v[56..58].copy_from_slice(&0xffffu16.to_le_bytes()); // PN_XNUM without sections
        assert_eq!(open(v.clone()).unwrap_err().kind, ErrorKind::Format);
        let v = build_elf64(62, &[(E::PT_NOTE.0, u64::MAX - 4, 0, 0x10, 0x10, 0)], &[]);
        assert_eq!(open(v).unwrap_err().kind, ErrorKind::Format);
        let v = build_elf64(62, &[(E::PT_NOTE.0, 0x40, 0, 1 << 40, 0, 0)], &[]);
        assert_eq!(open(v).unwrap_err().kind, ErrorKind::Limit);
        let v = build_elf64(62, &[(E::PT_LOAD.0, u64::MAX, 0, 2, 2, 0)], &[]);
        assert_eq!(open(v).unwrap_err().kind, ErrorKind::Format);
        assert_eq!(open(b"\x7fELF".to_vec()).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(open(b"MZ".to_vec()).unwrap_err().kind, ErrorKind::Format);
        for cut in 0..64 {
            let v = build_elf64(62, &[(E::PT_LOAD.0, 0x1000, 0, 0x10, 0x10, 0)], &[]);
            assert!(open(v[..cut].to_vec()).is_err(), "cut at {cut}");
        }
    }
}
