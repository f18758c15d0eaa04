//! Reading block 0 (`disk_dump_header`), the sub-header (`kdump_sub_header`) and the page
//! descriptors through their [`layout`](super::layout) structs, and how a file's byte order and
//! layouts are decided from the fields' consistency (see the module docs).

use std::mem::{offset_of, size_of};

use object::endian::Endianness;
use object::pod;

use super::layout::{
    DiskDumpHeader32, DiskDumpHeader64, HeaderTail, PageDescRaw, SubHeader64, SubHeaderAligned32, SubHeaderPacked32, UTS_LEN,
};
use super::{is_kdump, MAX_BITMAP_BYTES, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::source::{ReadAt, WithHead};

/// Bytes of block 0 that every layout fits in.
pub(super) const HEADER_READ: usize = size_of::<DiskDumpHeader64<Endianness>>();
/// Bytes of the sub-header block that every layout fits in.
const SUB_READ: usize = size_of::<SubHeader64<Endianness>>();

/// One page descriptor, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageDesc {
    pub offset: i64,
    pub size: u32,
    pub flags: u32,
    pub page_flags: u64,
}

impl PageDesc {
    pub(super) fn from_raw(d: &PageDescRaw<Endianness>, e: Endianness) -> PageDesc {
        PageDesc { offset: d.offset.get(e), size: d.size.get(e), flags: d.flags.get(e), page_flags: d.page_flags.get(e) }
    }

    /// Decode exactly [`DESC_SIZE`](super::DESC_SIZE) bytes.
    pub(super) fn parse(b: &[u8; super::DESC_SIZE as usize], e: Endianness) -> PageDesc {
        let (d, _) = pod::from_bytes::<PageDescRaw<Endianness>>(b).expect("24 bytes, alignment 1");
        Self::from_raw(d, e)
    }

    /// Decode a table of descriptors (`b.len()` a multiple of 24).
    pub(super) fn table(b: &[u8], e: Endianness) -> impl Iterator<Item = PageDesc> + '_ {
        pod::slice_from_all_bytes::<PageDescRaw<Endianness>>(b).unwrap_or(&[]).iter().map(move |d| Self::from_raw(d, e))
    }
}

/// Sub-header layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubLayout {
    /// 64-bit producers (every 64-bit makedumpfile, QEMU for 64-bit targets).
    L64,
    /// 32-bit, `off_t` 4-byte aligned: QEMU's packed `KdumpSubHeader32`, i386 makedumpfile.
    Packed32,
    /// 32-bit, `off_t` 8-byte aligned: makedumpfile built for ARM/MIPS.
    Aligned32,
}

/// Sub-header fields whose offset an error may name.
#[derive(Debug, Clone, Copy)]
pub(super) enum SubField {
    StartPfn,
    OffsetVmcoreinfo,
    OffsetNote,
    OffsetEraseinfo,
}

macro_rules! sub_offset {
    ($t:ident, $f:expr) => {
        match $f {
            SubField::StartPfn => offset_of!($t<Endianness>, start_pfn),
            SubField::OffsetVmcoreinfo => offset_of!($t<Endianness>, offset_vmcoreinfo),
            SubField::OffsetNote => offset_of!($t<Endianness>, offset_note),
            SubField::OffsetEraseinfo => offset_of!($t<Endianness>, offset_eraseinfo),
        }
    };
}

impl SubLayout {
    /// Size of the layout's sub-header (through version 6).
    fn size(self) -> usize {
        match self {
            SubLayout::L64 => size_of::<SubHeader64<Endianness>>(),
            SubLayout::Packed32 => size_of::<SubHeaderPacked32<Endianness>>(),
            SubLayout::Aligned32 => size_of::<SubHeaderAligned32<Endianness>>(),
        }
    }

    /// Offset of a field inside the sub-header.
    pub(super) fn offset(self, f: SubField) -> u64 {
        (match self {
            SubLayout::L64 => sub_offset!(SubHeader64, f),
            SubLayout::Packed32 => sub_offset!(SubHeaderPacked32, f),
            SubLayout::Aligned32 => sub_offset!(SubHeaderAligned32, f),
        }) as u64
    }
}

/// The 32-bit fields of block 0 after utsname and timestamp.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HdrFields {
    pub status: u32,
    pub block_size: u32,
    pub sub_hdr_size: u32,
    pub bitmap_blocks: u32,
    pub max_mapnr: u32,
    pub total_ram_blocks: u32,
    pub device_blocks: u32,
    pub written_blocks: u32,
    pub current_cpu: u32,
    pub nr_cpus: i32,
    pub tv_sec: i64,
    pub tv_usec: i64,
    /// File offset of `status` (the [`HeaderTail`]).
    pub base: u64,
}

/// File offset of a [`HeaderTail`] field, given the tail's offset.
macro_rules! tail_at {
    ($base:expr, $f:ident) => {
        $base + std::mem::offset_of!($crate::kdump::layout::HeaderTail<object::Endianness>, $f) as u64
    };
}
pub(super) use tail_at;

impl HdrFields {
    fn from_tail(t: &HeaderTail<Endianness>, e: Endianness, base: usize, tv_sec: i64, tv_usec: i64) -> HdrFields {
        HdrFields {
            status: t.status.get(e),
            block_size: t.block_size.get(e),
            sub_hdr_size: t.sub_hdr_size.get(e),
            bitmap_blocks: t.bitmap_blocks.get(e),
            max_mapnr: t.max_mapnr.get(e),
            total_ram_blocks: t.total_ram_blocks.get(e),
            device_blocks: t.device_blocks.get(e),
            written_blocks: t.written_blocks.get(e),
            current_cpu: t.current_cpu.get(e),
            nr_cpus: t.nr_cpus.get(e),
            tv_sec,
            tv_usec,
            base: base as u64,
        }
    }

    /// The fields as the 32- or 64-bit layout places them (`head` holds [`HEADER_READ`] bytes).
    fn read(head: &[u8], e: Endianness, is32: bool) -> HdrFields {
        if is32 {
            let (h, _) = pod::from_bytes::<DiskDumpHeader32<Endianness>>(head).expect("checked length");
            let base = offset_of!(DiskDumpHeader32<Endianness>, tail);
            Self::from_tail(&h.tail, e, base, i64::from(h.tv_sec.get(e)), i64::from(h.tv_usec.get(e)))
        } else {
            let (h, _) = pod::from_bytes::<DiskDumpHeader64<Endianness>>(head).expect("checked length");
            let base = offset_of!(DiskDumpHeader64<Endianness>, tail);
            Self::from_tail(&h.tail, e, base, h.tv_sec.get(e), h.tv_usec.get(e))
        }
    }

    /// Check the fields that fix the file layout; the error names the field's offset.
    fn validate(&self, file_len: u64) -> Result<()> {
        let bs = self.block_size;
        let off_bs = tail_at!(self.base, block_size);
        if bs == 0 || !bs.is_power_of_two() {
            return Err(Error::format(off_bs, format!("kdump block_size {bs} is not a power of two")));
        }
        if bs > MAX_BLOCK_SIZE {
            return Err(Error::limit(off_bs, format!("kdump block_size {bs} is above the {MAX_BLOCK_SIZE}-byte limit")));
        }
        if bs < MIN_BLOCK_SIZE {
            return Err(Error::format(off_bs, format!("kdump block_size {bs} is below {MIN_BLOCK_SIZE}")));
        }
        if self.sub_hdr_size == 0 {
            return Err(Error::format(tail_at!(self.base, sub_hdr_size), "kdump sub_hdr_size is 0"));
        }
        let off_bb = tail_at!(self.base, bitmap_blocks);
        if self.bitmap_blocks == 0 {
            return Err(Error::format(off_bb, "kdump bitmap_blocks is 0"));
        }
        let bitmap_bytes = u64::from(self.bitmap_blocks) * u64::from(bs);
        if bitmap_bytes > MAX_BITMAP_BYTES {
            return Err(Error::limit(
                off_bb,
                format!("kdump bitmaps of {bitmap_bytes} bytes are above the {MAX_BITMAP_BYTES}-byte limit"),
            ));
        }
        let blocks = 1 + u64::from(self.sub_hdr_size) + u64::from(self.bitmap_blocks);
        let end = blocks * u64::from(bs); // < 2^33 * 2^20: no overflow
        if end > file_len {
            return Err(Error::truncated(
                off_bb,
                format!(
                    "kdump header, {} sub-header and {} bitmap blocks of {bs} bytes end at {end:#x}, past the end of the file ({file_len} bytes)",
                    self.sub_hdr_size, self.bitmap_blocks
                ),
            ));
        }
        Ok(())
    }
}

/// The kdump sub-header (block 1). Fields a header version does not have are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubHeader {
    pub phys_base: u64,
    pub dump_level: i32,
    pub split: Option<i32>,
    pub start_pfn: Option<u64>,
    pub end_pfn: Option<u64>,
    pub offset_vmcoreinfo: Option<u64>,
    pub size_vmcoreinfo: Option<u64>,
    pub offset_note: Option<u64>,
    pub note_size: Option<u64>,
    pub offset_eraseinfo: Option<u64>,
    pub size_eraseinfo: Option<u64>,
    pub start_pfn_64: Option<u64>,
    pub end_pfn_64: Option<u64>,
    pub max_mapnr_64: Option<u64>,
}

/// Every field of a sub-header layout, widened, before the version says which exist.
macro_rules! widen {
    ($h:expr, $e:expr) => {{
        let (h, e) = ($h, $e);
        [
            u64::from(h.phys_base.get(e)),
            u64::from(h.start_pfn.get(e)),
            u64::from(h.end_pfn.get(e)),
            h.offset_vmcoreinfo.get(e),
            u64::from(h.size_vmcoreinfo.get(e)),
            h.offset_note.get(e),
            u64::from(h.note_size.get(e)),
            h.offset_eraseinfo.get(e),
            u64::from(h.size_eraseinfo.get(e)),
            h.start_pfn_64.get(e),
            h.end_pfn_64.get(e),
            h.max_mapnr_64.get(e),
            h.dump_level.get(e) as u64,
            h.split.get(e) as u64,
        ]
    }};
}

impl SubHeader {
    /// Read the sub-header in `layout` from `b`; `None` when `b` is shorter than the layout.
    fn read(b: &[u8], e: Endianness, layout: SubLayout, version: i32) -> Option<SubHeader> {
        let f = match layout {
            SubLayout::L64 => widen!(pod::from_bytes::<SubHeader64<Endianness>>(b).ok()?.0, e),
            SubLayout::Packed32 => widen!(pod::from_bytes::<SubHeaderPacked32<Endianness>>(b).ok()?.0, e),
            SubLayout::Aligned32 => widen!(pod::from_bytes::<SubHeaderAligned32<Endianness>>(b).ok()?.0, e),
        };
        let [phys_base, start_pfn, end_pfn, off_vi, size_vi, off_note, note_size, off_erase, size_erase, spfn64, epfn64, mapnr64, dump_level, split] =
            f;
        let since = |v: i32, x: u64| (version >= v).then_some(x);
        Some(SubHeader {
            phys_base,
            dump_level: dump_level as i32,
            split: since(2, split).map(|s| s as i32),
            start_pfn: since(2, start_pfn),
            end_pfn: since(2, end_pfn),
            offset_vmcoreinfo: since(3, off_vi),
            size_vmcoreinfo: since(3, size_vi),
            offset_note: since(4, off_note),
            note_size: since(4, note_size),
            offset_eraseinfo: since(5, off_erase),
            size_eraseinfo: since(5, size_erase),
            start_pfn_64: since(6, spfn64),
            end_pfn_64: since(6, epfn64),
            max_mapnr_64: since(6, mapnr64),
        })
    }

    /// The (offset, size) pairs it points at, with the field naming the offset.
    fn locations(&self) -> [(&'static str, Option<u64>, Option<u64>, SubField); 3] {
        [
            ("VMCOREINFO", self.offset_vmcoreinfo, self.size_vmcoreinfo, SubField::OffsetVmcoreinfo),
            ("notes", self.offset_note, self.note_size, SubField::OffsetNote),
            ("eraseinfo", self.offset_eraseinfo, self.size_eraseinfo, SubField::OffsetEraseinfo),
        ]
    }

    /// Do all its locations lie in `[min, file_len)` (or are 0/0)?
    fn locations_plausible(&self, min: u64, file_len: u64) -> bool {
        self.locations().iter().all(|&(_, off, size, _)| match (off, size) {
            (Some(0), Some(0)) | (None, _) | (_, None) => true,
            (Some(o), Some(s)) => o >= min && o.checked_add(s).is_some_and(|e| e <= file_len),
        })
    }
}

/// What the header blocks say, once byte order and layouts are decided.
pub(crate) struct Headers {
    pub endian: Endianness,
    pub is32: bool,
    pub header_version: i32,
    pub uts: [String; 6],
    pub hdr: HdrFields,
    pub sub_layout: SubLayout,
    pub sub: SubHeader,
    /// Sub-header locations outside the file (dropped from `sub`).
    pub anomalies: Vec<Error>,
}

fn uts_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn sub_candidates(is32: bool) -> &'static [SubLayout] {
    if is32 {
        &[SubLayout::Packed32, SubLayout::Aligned32]
    } else {
        &[SubLayout::L64]
    }
}

/// Read block 0 and the sub-header and decide the byte order and layouts.
pub(crate) fn read_headers(hsrc: &WithHead<'_>, file_len: u64) -> Result<Headers> {
    let head = hsrc.read_prefix(0, HEADER_READ)?;
    if !is_kdump(&head) {
        return Err(Error::format(0, "not a kdump-compressed file (no \"KDUMP   \" signature)"));
    }
    if head.len() < HEADER_READ {
        return Err(Error::truncated(
            head.len() as u64,
            format!("kdump header needs {HEADER_READ} bytes; the file has {file_len}"),
        ));
    }
    let (endian, header_version) = byte_order(&head)?;
    let (is32, hdr) = choose_header_layout(hsrc, &head, endian, header_version, file_len)?;
    let bs = u64::from(hdr.block_size);
    let uts_at = offset_of!(DiskDumpHeader64<Endianness>, utsname);
    let uts: [String; 6] = std::array::from_fn(|i| uts_string(&head[uts_at + i * UTS_LEN..uts_at + (i + 1) * UTS_LEN]));
    let (sub_layout, mut sub) = choose_sub_layout(hsrc, endian, is32, header_version, bs, file_len)?;
    let anomalies = drop_outside_locations(&mut sub, sub_layout, bs, file_len);
    Ok(Headers { endian, is32, header_version, uts, hdr, sub_layout, sub, anomalies })
}

/// Byte order from header_version: the order in which it is plausible (little-endian first).
fn byte_order(head: &[u8]) -> Result<(Endianness, i32)> {
    let version_at = offset_of!(DiskDumpHeader64<Endianness>, header_version);
    let raw_version: [u8; 4] = head[version_at..version_at + 4].try_into().expect("4 bytes");
    let (v_le, v_be) = (i32::from_le_bytes(raw_version), i32::from_be_bytes(raw_version));
    let plausible = |v: i32| (1..=255).contains(&v);
    match (plausible(v_le), plausible(v_be)) {
        (true, _) => Ok((Endianness::Little, v_le)),
        (false, true) => Ok((Endianness::Big, v_be)),
        (false, false) => {
            Err(Error::format(version_at as u64, format!("kdump header_version {v_le:#x} is implausible in either byte order")))
        }
    }
}

/// 32- or 64-bit header layout, from the consistency of the fields: whether it is the 32-bit
/// one, and its fields.
fn choose_header_layout(
    hsrc: &WithHead<'_>,
    head: &[u8],
    endian: Endianness,
    header_version: i32,
    file_len: u64,
) -> Result<(bool, HdrFields)> {
    let h64 = HdrFields::read(head, endian, false);
    let h32 = HdrFields::read(head, endian, true);
    let is32 = match (h64.validate(file_len), h32.validate(file_len)) {
        (Ok(()), Err(_)) => false,
        (Err(_), Ok(())) => true,
        (Ok(()), Ok(())) => {
            // Both fit: prefer the one whose sub-header points inside the file.
            let fits = |h: &HdrFields, is32: bool| -> bool {
                let bs = u64::from(h.block_size);
                let Ok(b) = hsrc.read_prefix(bs, SUB_READ) else { return false };
                sub_candidates(is32)
                    .iter()
                    .any(|&l| SubHeader::read(&b, endian, l, header_version).is_some_and(|s| s.locations_plausible(bs, file_len)))
            };
            !fits(&h64, false) && fits(&h32, true)
        }
        (Err(e64), Err(e32)) => {
            // Blame the layout whose block_size at least looks like one.
            let e = if !h64.block_size.is_power_of_two() && h32.block_size.is_power_of_two() { e32 } else { e64 };
            return Err(e);
        }
    };
    Ok((is32, if is32 { h32 } else { h64 }))
}

/// The sub-header at block `bs`: the first layout whose locations are in the file, else the
/// first that fits.
fn choose_sub_layout(
    hsrc: &WithHead<'_>,
    endian: Endianness,
    is32: bool,
    header_version: i32,
    bs: u64,
    file_len: u64,
) -> Result<(SubLayout, SubHeader)> {
    let sub_bytes = hsrc.read_prefix(bs, SUB_READ)?;
    let mut chosen: Option<(SubLayout, SubHeader)> = None;
    for &l in sub_candidates(is32) {
        if sub_bytes.len() < l.size() {
            continue;
        }
        let Some(s) = SubHeader::read(&sub_bytes, endian, l, header_version) else { continue };
        let plausible = s.locations_plausible(bs, file_len);
        if chosen.is_none() || plausible {
            chosen = Some((l, s));
        }
        if plausible {
            break;
        }
    }
    chosen.ok_or_else(|| Error::truncated(bs, "kdump sub-header runs past the end of the file"))
}

/// Locations that point outside the file are dropped from `sub`; returned as the anomalies
/// to report.
fn drop_outside_locations(sub: &mut SubHeader, sub_layout: SubLayout, bs: u64, file_len: u64) -> Vec<Error> {
    let mut anomalies = Vec::new();
    for (what, off, size, field) in sub.locations() {
        let (Some(o), Some(s)) = (off, size) else { continue };
        if o == 0 && s == 0 {
            continue;
        }
        let end = o.checked_add(s);
        if o >= bs && end.is_some_and(|e| e <= file_len) {
            continue;
        }
        anomalies.push(Error::new(
            if end.is_none() { ErrorKind::Format } else { ErrorKind::Truncated },
            Some(bs + sub_layout.offset(field)),
            format!("kdump sub-header {what} location {o:#x}+{s:#x} is outside the file ({file_len} bytes); ignored"),
        ));
        match field {
            SubField::OffsetVmcoreinfo => (sub.offset_vmcoreinfo, sub.size_vmcoreinfo) = (None, None),
            SubField::OffsetNote => (sub.offset_note, sub.note_size) = (None, None),
            _ => (sub.offset_eraseinfo, sub.size_eraseinfo) = (None, None),
        }
    }
    anomalies
}
