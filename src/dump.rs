//! One opened dump, whatever its format: detection, notes, the VMCOREINFO note, physical memory.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::avml::{self, AvmlImage};
use crate::bitness;
use crate::elf::{self, ElfDump, NoteSegment};
use crate::error::{Error, ErrorKind, Location, Result};
use crate::flattened::{self, Flattened};
use crate::fwcfg::{self, FwCfgEntry};
use crate::kdump::{self, KdumpFile};
use crate::lime::{self, LimeImage};
use crate::mmap::{MmapSource, PhysView};
use crate::notes::{self, RawNote};
use crate::phys::{PhysMemory, PhysRange};
use crate::raw::RawImage;
use crate::scan::{self, ByteOrder, Candidate, ScanReport};
use crate::source::{FileSource, ReadAt, WithHead};
use crate::text;

/// Options for [`Dump::open`].
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Largest VMCOREINFO note accepted (QEMU's MAX_GUEST_NOTE_SIZE, 1 MiB, unless raised).
    pub max_note_size: u32,
    /// ELF: report `p_filesz < p_memsz` tails as absent instead of zeros (see
    /// [`ElfDump::set_tails_absent`]).
    pub elf_tails_absent: bool,
    /// `None`: detect the format from the file's magic (a raw image has none and is never
    /// detected). `Some(f)`: read the file as `f`; a format whose magic is missing is a `Format`
    /// error (`Raw` needs none). `Kdump` accepts the flattened variant too.
    pub format: Option<Format>,
    /// Map the file (read-only, guarded: see [`crate::mmap`]) when it can be mapped, for
    /// zero-copy [`Dump::view_phys`]; `false` never maps it (views are copies).
    pub mmap: bool,
    /// Also read through the mapping (`read_phys`, scans). Off by default: `pread` measured
    /// faster on every copying path (BENCHMARKS-mmap.md).
    pub mapped_reads: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_note_size: fwcfg::MAX_GUEST_NOTE_SIZE,
            elf_tails_absent: true,
            format: None,
            mmap: true,
            mapped_reads: false,
        }
    }
}

/// The container format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Elf,
    Kdump,
    FlattenedKdump,
    /// LiME (Linux Memory Extractor) ranges; detected by its magic.
    Lime,
    /// AVML (v1, or v2 Snappy-compressed) ranges; detected by its magic.
    Avml,
    /// Physical memory from address 0, byte for byte; only when asked for.
    Raw,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Elf => "elf",
            Format::Kdump => "kdump",
            Format::FlattenedKdump => "flattened-kdump",
            Format::Lime => "lime",
            Format::Avml => "avml",
            Format::Raw => "raw",
        }
    }

    /// The format named `name` (as [`Format::name`] spells it).
    pub fn from_name(name: &str) -> Option<Format> {
        [Format::Elf, Format::Kdump, Format::FlattenedKdump, Format::Lime, Format::Avml, Format::Raw]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// Memory images (LiME, raw) carry no notes and no machine: both come from a scan.
    pub fn is_memory_image(self) -> bool {
        matches!(self, Format::Lime | Format::Avml | Format::Raw)
    }
}

enum Backend {
    Elf(ElfDump),
    Kdump { file: KdumpFile, flattened: Option<FlattenedInfo> },
    Lime(LimeImage),
    Avml(AvmlImage),
    Raw(RawImage),
}

/// What the implicit scan of a memory image (LiME, raw) found: the report, the text it uses
/// (the first candidate that passes QEMU's rules and whose text is readable), and the machine
/// and byte order that text implies.
#[derive(Debug)]
pub struct ImageScan {
    pub report: ScanReport,
    /// Index in `report.candidates` and the text of the candidate used.
    pub chosen: Option<(usize, TextBlob)>,
    /// Why no candidate could be used (the first candidate's rule or read error).
    pub failure: Option<Error>,
    /// Valid candidates whose text was read (at most [`COMPARE_CANDIDATES`]), and how many
    /// distinct texts they hold: real guests keep stray page-aligned copies of the note (a
    /// reader's buffer), normally identical; different texts mean the choice matters.
    pub compared: usize,
    pub distinct_texts: usize,
    pub e_machine: u16,
    pub class64: bool,
    pub big_endian: bool,
}

impl ImageScan {
    /// When the scan found several valid notes: a diagnostic saying so, whether their texts
    /// agree, and which one `blob` (the text in use) is. `None` for one note or none.
    pub fn multiple_candidates(&self, blob: &TextBlob) -> Option<String> {
        let valid: Vec<u64> = self.report.valid().map(|c| c.paddr).collect();
        if valid.len() < 2 {
            return None;
        }
        let mut list = valid.iter().take(8).map(|a| format!("{a:#x}")).collect::<Vec<_>>().join(", ");
        if valid.len() > 8 {
            list.push_str(", ...");
        }
        let agree = match self.distinct_texts {
            1 if self.compared == valid.len() => "all with the same text".to_owned(),
            1 => format!("the first {} with the same text", self.compared),
            n => format!("with {n} DIFFERENT texts among the first {}", self.compared),
        };
        let chosen = blob.phys_addr.map_or_else(|| "?".to_owned(), |a| format!("{a:#x}"));
        Some(format!(
            "the scan found {} VMCOREINFO notes (at physical {list}), {agree}; this text is the first, at {chosen}; \
             Dump.scan_vmcoreinfo() returns them all",
            valid.len() as u64 + self.report.candidates_dropped
        ))
    }
}

/// What the flattened layer found.
#[derive(Debug, Clone, Copy)]
pub struct FlattenedInfo {
    pub records: u64,
    pub logical_len: u64,
    pub has_end_marker: bool,
}

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
}

/// How many valid scan candidates a memory image's implicit scan reads to compare their texts.
pub const COMPARE_CANDIDATES: usize = 16;

/// An opened dump.
pub struct Dump {
    path: Arc<str>,
    format: Format,
    class64: bool,
    big_endian: bool,
    e_machine: u16,
    options: OpenOptions,
    notes: Vec<NoteSegment>,
    backend: Backend,
    /// Memory images: the scan that stands in for notes, run once on first need.
    image: OnceLock<Arc<ImageScan>>,
    /// The file's mapping, for views (and reads with `mapped_reads`); see [`crate::mmap`].
    mapped: Option<Arc<MmapSource>>,
}

const NO_VMCOREINFO_HELP: &str = "QEMU writes a VMCOREINFO note only when the guest ran with \
`-device vmcoreinfo` and the guest kernel's `qemu_fw_cfg` driver (CONFIG_FW_CFG_SYSFS) was loaded \
before the dump, so that it could register its note through fw_cfg `etc/vmcoreinfo`. The guest's \
memory may still hold the note: `scan_vmcoreinfo()` (CLI: `vmcoreinfo scan DUMP`) looks for it \
page by page";

impl Dump {
    /// Open a dump file: reads the headers and the note segment, nothing else.
    pub fn open(path: &Path, options: OpenOptions) -> Result<Dump> {
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        if options.mmap {
            let file = std::fs::File::open(path).map_err(|e| Error::io(&e, None, "cannot open").in_file(&name))?;
            if let Some(m) = MmapSource::from_file(&file).map_err(|e| e.in_file(&name))? {
                let m = Arc::new(m);
                // One open file for both: the mapping and the pread source are the same inode.
                let src: Arc<dyn ReadAt> = if options.mapped_reads {
                    m.clone()
                } else {
                    Arc::new(FileSource::from_file(file).map_err(|e| e.in_file(&name))?)
                };
                let mut d = Self::from_source(src, name.clone(), options).map_err(|e| e.in_file(&name))?;
                d.mapped = Some(m);
                return Ok(d);
            }
        }
        let src = FileSource::open(path).map_err(|e| e.in_file(&name))?;
        Self::from_source(Arc::new(src), name.clone(), options).map_err(|e| e.in_file(&name))
    }

    /// A scan counts unreadable pages and goes on; a file that shrank under the mapping is not a
    /// page that cannot be read but a file that is no longer the one opened: an error.
    pub fn check_mapping(&self) -> Result<()> {
        match &self.mapped {
            Some(m) if m.poisoned() => {
                let mut b = [0u8; 1];
                m.read_exact_at(&mut b, 0)
            }
            _ => Ok(()),
        }
    }

    /// Read-only view of guest-physical `[addr, addr + size)`: zero-copy into the file's mapping
    /// when the file is mapped and stores the range as one run of plain bytes (raw, LiME, one ELF
    /// PT_LOAD's file bytes); otherwise (kdump's compressed pages, a range spanning two stored
    /// runs or a zero-read tail, `mmap: false`) read into an owned buffer. Absent memory is an
    /// error checked before anything is allocated.
    pub fn view_phys(&self, addr: u64, size: usize) -> Result<PhysView> {
        if let (Some(m), Some(off)) = (&self.mapped, self.phys_file_offset(addr, size as u64)) {
            return m.view(off, size);
        }
        self.check_backed(addr, size as u64)?;
        let mut v = vec![0u8; size];
        self.read_phys(addr, &mut v)?;
        Ok(PhysView::Owned(v))
    }

    /// The file's mapping, if it was mapped.
    pub fn mapping(&self) -> Option<&Arc<MmapSource>> {
        self.mapped.as_ref()
    }

    /// Open a dump from any byte source; `name` is used in errors.
    pub fn from_source(src: Arc<dyn ReadAt>, name: Arc<str>, options: OpenOptions) -> Result<Dump> {
        let head = src.read_prefix(0, elf::HEAD_READ)?;
        let detected = if elf::is_elf(&head) {
            Some(Format::Elf)
        } else if flattened::is_flattened(&head) {
            Some(Format::FlattenedKdump)
        } else if kdump::is_kdump(&head) {
            Some(Format::Kdump)
        } else if avml::is_avml(&head) {
            Some(Format::Avml)
        } else if lime::is_lime(&head) {
            Some(Format::Lime)
        } else {
            None
        };
        let format = match (options.format, detected) {
            (None, Some(f)) => f,
            (None, None) => {
                return Err(Error::format(
                    0,
                    "not a dump this library detects: no ELF, KDUMP, makedumpfile or LiME signature at offset 0 \
                     (a raw physical memory image has none: open it with format=\"raw\")",
                ))
            }
            (Some(Format::Raw), _) => Format::Raw,
            (Some(Format::Kdump | Format::FlattenedKdump), Some(f @ (Format::Kdump | Format::FlattenedKdump))) => f,
            (Some(want), Some(f)) if want == f => f,
            (Some(want), got) => {
                return Err(Error::format(
                    0,
                    format!(
                        "format {:?} was asked for, but the file does not start with its signature ({})",
                        want.name(),
                        got.map_or_else(
                            || "no known signature at offset 0".to_owned(),
                            |g| format!("it looks like {}", g.name())
                        )
                    ),
                ))
            }
        };
        match format {
            Format::Lime => return Ok(Self::memory_image(name, options, Format::Lime, Backend::Lime(LimeImage::open(src)?))),
            Format::Raw => return Ok(Self::memory_image(name, options, Format::Raw, Backend::Raw(RawImage::new(src)))),
            Format::Avml => return Ok(Self::memory_image(name, options, Format::Avml, Backend::Avml(AvmlImage::open(src)?))),
            _ => {}
        }
        if format == Format::Elf {
            let mut e = ElfDump::parse(src, &head)?;
            e.set_tails_absent(options.elf_tails_absent);
            bitness::check_class_for_machine(e.e_machine, e.class64)
                .map_err(|err| Error { location: err.location.or(Some(Location::File(E_MACHINE_OFFSET))), ..err })?;
            return Ok(Dump {
                path: name,
                format: Format::Elf,
                class64: e.class64,
                big_endian: e.big_endian,
                e_machine: e.e_machine,
                options,
                notes: e.notes.clone(),
                backend: Backend::Elf(e),
                image: OnceLock::new(),
                mapped: None,
            });
        }
        if format == Format::FlattenedKdump {
            let f = Flattened::open(src)?;
            let info =
                FlattenedInfo { records: f.record_count(), logical_len: f.logical_len(), has_end_marker: f.has_end_marker() };
            // The head read above is the flattened file's, not the reassembled view's.
            return Self::open_kdump(Arc::new(f), &[], name, options, Some(info));
        }
        Self::open_kdump(src, &head, name, options, None)
    }

    /// LiME and raw: no notes; machine and byte order come from the scan when first needed.
    fn memory_image(name: Arc<str>, options: OpenOptions, format: Format, backend: Backend) -> Dump {
        Dump {
            path: name,
            format,
            class64: true,
            big_endian: false,
            e_machine: 0,
            options,
            notes: Vec::new(),
            backend,
            image: OnceLock::new(),
            mapped: None,
        }
    }

    fn open_kdump(
        src: Arc<dyn ReadAt>,
        head: &[u8],
        name: Arc<str>,
        options: OpenOptions,
        flattened: Option<FlattenedInfo>,
    ) -> Result<Dump> {
        let file = KdumpFile::open_with_head(src.clone(), head)?;
        let big_endian = file.byteorder_big();
        let mut notes = Vec::new();
        if let Some((off, size)) = file.notes_location() {
            if size > elf::MAX_TABLE_BYTES {
                return Err(Error::limit(
                    off,
                    format!("kdump note area of {size} bytes exceeds the {} byte limit", elf::MAX_TABLE_BYTES),
                ));
            }
            // A flattened file's holes read as zeros: never allocate for what the file does not store.
            if size > src.stored_len() {
                return Err(Error::limit(
                    off,
                    format!("kdump note area of {size} bytes is more than the {} bytes the file stores", src.stored_len()),
                ));
            }
            let data = WithHead { src: &*src, head }.read_vec(off, size, "kdump note area")?;
            notes.push(NoteSegment { file_offset: off, align: 4, data: Arc::from(data) });
        }
        let mut d = Dump {
            path: name,
            format: if flattened.is_some() { Format::FlattenedKdump } else { Format::Kdump },
            class64: true,
            big_endian,
            e_machine: 0,
            options,
            notes,
            backend: Backend::Kdump { file, flattened },
            image: OnceLock::new(),
            mapped: None,
        };
        let (e_machine, class64) = d.kdump_machine();
        d.e_machine = e_machine;
        d.class64 = class64;
        Ok(d)
    }

    /// The kdump header's utsname.machine, or, when QEMU wrote "Unknown" (arm) or nothing
    /// useful, the machine the VMCOREINFO text and notes imply.
    fn kdump_machine(&self) -> (u16, bool) {
        let Backend::Kdump { file, .. } = &self.backend else { return (self.e_machine, self.class64) };
        if let Some(m) = machine_from_uname(file.machine()) {
            return m;
        }
        self.vmcoreinfo().ok().and_then(|blob| machine_from_vmcoreinfo(blob.bytes())).unwrap_or((0, true))
    }

    /// phys_base from the VMCOREINFO text and from the kdump header, side by side.
    pub fn phys_base_sources(&self) -> Result<PhysBaseSources> {
        let header = self.kdump().and_then(KdumpFile::phys_base_header);
        // (key as reported, NUMBER name to read)
        let source = match self.e_machine() {
            bitness::EM_AARCH64 => Some(("NUMBER(PHYS_OFFSET)", "PHYS_OFFSET")),
            bitness::EM_X86_64 => Some(("NUMBER(phys_base)", "phys_base")),
            _ => None,
        };
        let text_key = source.map(|(key, _)| key);
        let mut text = None;
        if let Some((_, name)) = source {
            match self.vmcoreinfo() {
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

    /// The kdump reader behind this dump, for kdump and flattened files.
    pub fn kdump(&self) -> Option<&KdumpFile> {
        match &self.backend {
            Backend::Kdump { file, .. } => Some(file),
            _ => None,
        }
    }

    /// The flattened layer's facts, for flattened files.
    pub fn flattened(&self) -> Option<FlattenedInfo> {
        match &self.backend {
            Backend::Kdump { flattened, .. } => *flattened,
            _ => None,
        }
    }

    /// The ELF reader behind this dump, for ELF files.
    pub fn elf(&self) -> Option<&ElfDump> {
        match &self.backend {
            Backend::Elf(e) => Some(e),
            _ => None,
        }
    }

    /// The LiME index behind this dump, for LiME files.
    pub fn lime(&self) -> Option<&LimeImage> {
        match &self.backend {
            Backend::Lime(l) => Some(l),
            _ => None,
        }
    }

    pub fn path(&self) -> &Arc<str> {
        &self.path
    }
    pub fn format(&self) -> Format {
        self.format
    }
    /// ELF class (64-bit). For memory images, from the scanned text (runs the scan once).
    pub fn class64(&self) -> bool {
        self.identity().1
    }
    /// Byte order. For memory images, the byte order of the note the scan found.
    pub fn big_endian(&self) -> bool {
        self.identity().2
    }
    /// ELF `e_machine` (0 when unknown). For memory images, from the scanned text.
    pub fn e_machine(&self) -> u16 {
        self.identity().0
    }
    pub fn machine(&self) -> &'static str {
        let (m, c64, _) = self.identity();
        bitness::machine_name(m, c64)
    }

    /// Like [`Dump::machine`], but `None` for a memory image whose scan has not run yet (never
    /// starts a scan; for `repr` and logs).
    pub fn machine_if_known(&self) -> Option<&'static str> {
        (!self.format.is_memory_image() || self.image.get().is_some()).then(|| self.machine())
    }

    fn identity(&self) -> (u16, bool, bool) {
        if !self.format.is_memory_image() {
            return (self.e_machine, self.class64, self.big_endian);
        }
        match self.image_scan() {
            Ok(s) => (s.e_machine, s.class64, s.big_endian),
            Err(_) => (self.e_machine, self.class64, self.big_endian),
        }
    }
    pub fn options(&self) -> OpenOptions {
        self.options
    }
    pub fn note_segments(&self) -> &[NoteSegment] {
        &self.notes
    }

    /// Every note of every note segment, in file order, with its segment.
    pub fn notes(&self) -> impl Iterator<Item = (&NoteSegment, Result<RawNote<'_>>)> {
        let big = self.big_endian;
        self.notes.iter().flat_map(move |seg| notes::notes(&seg.data, big, seg.align, seg.file_offset).map(move |n| (seg, n)))
    }

    /// The VMCOREINFO text. For ELF: the desc of the last note named exactly "VMCOREINFO"
    /// (QEMU appends the guest's note last), checked against QEMU's intake limits.
    /// For LiME and raw images: the text of the first valid candidate of the scan (which runs once,
    /// on first need; see [`Dump::image_scan`]).
    pub fn vmcoreinfo(&self) -> Result<TextBlob> {
        let blob = self.find_vmcoreinfo()?;
        let (m, c64, _) = self.identity();
        check_text_width(blob, bitness::address_bits(m, c64))
    }

    fn find_vmcoreinfo(&self) -> Result<TextBlob> {
        if self.format.is_memory_image() {
            let s = self.image_scan()?;
            return match (&s.chosen, &s.failure) {
                (Some((_, blob)), _) => Ok(blob.clone()),
                (None, Some(e)) => Err(e.clone()),
                (None, None) => Err(Error::new(
                    ErrorKind::NoVmcoreinfo,
                    None,
                    format!(
                        "a {} image holds no notes, and a scan of its {} bytes of physical memory found no VMCOREINFO note \
                         (a page-aligned note header with namesz 11, type 0, name VMCOREINFO, text starting OSRELEASE=){}",
                        self.format.name(),
                        s.report.total,
                        if s.report.unreadable_pages > 0 {
                            format!("; {} pages could not be read", s.report.unreadable_pages)
                        } else {
                            String::new()
                        }
                    ),
                )),
            };
        }
        if let Backend::Kdump { file, .. } = &self.backend {
            if let Some((off, size)) = file.vmcoreinfo_location() {
                return self.kdump_vmcoreinfo(file, off, size);
            }
        }
        let mut found = None;
        for (seg, n) in self.notes() {
            let n = n?;
            if n.is_vmcoreinfo() {
                found = Some((seg, n));
            }
        }
        let Some((seg, n)) = found else {
            // The offset names where we looked: the (first) note segment, or 0 when there is none.
            let at = self.notes.first().map_or(0, |s| s.file_offset);
            return Err(Error::new(
                ErrorKind::NoVmcoreinfo,
                Some(at),
                format!("the dump has no VMCOREINFO note. {NO_VMCOREINFO_HELP}"),
            ));
        };
        let note_off = seg.file_offset + n.offset as u64;
        fwcfg::check_dump_note(n.namesz, n.desc.len() as u32, note_off, u64::from(self.options.max_note_size))?;
        if text::is_windows_dump_header(n.desc) {
            return Err(Error::new(
                ErrorKind::NoVmcoreinfo,
                Some(note_off),
                "the note named VMCOREINFO carries a Windows dump header (PAGEDU64/PAGEDUMP), not Linux VMCOREINFO text",
            ));
        }
        Ok(TextBlob {
            data: seg.data.clone(),
            start: n.desc_offset,
            end: n.desc_offset + n.desc.len(),
            file_offset: Some(seg.file_offset + n.desc_offset as u64),
            phys_addr: None,
            text_paddr: None,
        })
    }

    /// kdump: the sub-header points straight at the text (QEMU and makedumpfile alike).
    fn kdump_vmcoreinfo(&self, file: &KdumpFile, off: u64, size: u64) -> Result<TextBlob> {
        let limit = u64::from(self.options.max_note_size);
        if size > limit {
            return Err(Error::note_rule(
                crate::Rule::SizeAboveLimit,
                Some(off),
                format!("kdump size_vmcoreinfo {size} is larger than the limit {limit}"),
            ));
        }
        // When the text lies inside the note area already read, share those bytes.
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
                return self.check_text(blob);
            }
        }
        let data = file.source().read_vec(off, size, "kdump VMCOREINFO")?;
        self.check_text(TextBlob {
            data: Arc::from(data),
            start: 0,
            end: size as usize,
            file_offset: Some(off),
            phys_addr: None,
            text_paddr: None,
        })
    }

    fn check_text(&self, blob: TextBlob) -> Result<TextBlob> {
        if text::is_windows_dump_header(blob.bytes()) {
            return Err(Error::new(
                ErrorKind::NoVmcoreinfo,
                blob.file_offset,
                "the VMCOREINFO area carries a Windows dump header (PAGEDU64/PAGEDUMP), not Linux VMCOREINFO text",
            ));
        }
        Ok(blob)
    }

    /// Read the guest note that a fw_cfg `etc/vmcoreinfo` entry points at, with QEMU's intake
    /// rules applied in the dump's byte order, as QEMU does at dump time. QEMU copies `size`
    /// bytes from `paddr`; we read the 12-byte header, apply every rule (they need only the
    /// entry and the header), then read just the padded note, so a dump that left out the unused
    /// rest of the guest's buffer (a zero page excluded by makedumpfile) still yields the note.
    ///
    /// For LiME and raw images the byte order is that of the note the scan found.
    pub fn read_guest_note(&self, entry: &FwCfgEntry) -> Result<TextBlob> {
        let limit = self.options.max_note_size;
        // The size and format rules need no memory; with no bytes, a note that passes them fails
        // as Truncated, which we then satisfy by reading the header.
        match fwcfg::check_guest_note(entry.size, entry.guest_format, &[], self.big_endian(), limit) {
            Err(e) if e.kind != ErrorKind::Truncated => return Err(e),
            _ => {}
        }
        let mut header = [0u8; fwcfg::NOTE_HEADER_SIZE];
        self.read_phys(entry.paddr, &mut header)?;
        let sizes = fwcfg::check_guest_note(entry.size, entry.guest_format, &header, self.big_endian(), limit)
            .map_err(|e| e.in_text().shifted_phys(entry.paddr))?;
        // padded_size <= entry.size <= limit, checked above: a bounded allocation.
        let mut buf = vec![0u8; sizes.padded_size as usize];
        self.read_phys(entry.paddr, &mut buf)?;
        let range = sizes.desc_range();
        let file_offset = self.phys_file_offset(entry.paddr + range.start as u64, (range.end - range.start) as u64);
        let blob = TextBlob {
            data: Arc::from(buf),
            start: range.start,
            end: range.end,
            file_offset,
            phys_addr: Some(entry.paddr),
            text_paddr: entry.paddr.checked_add(range.start as u64),
        };
        let (m, c64, _) = self.identity();
        check_text_width(blob, bitness::address_bits(m, c64))
    }

    pub fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match &self.backend {
            Backend::Elf(e) => e.read_phys(addr, buf),
            Backend::Kdump { file, .. } => file.read_phys(addr, buf),
            Backend::Lime(l) => l.read_phys(addr, buf),
            Backend::Avml(a) => a.read_phys(addr, buf),
            Backend::Raw(r) => r.read_phys(addr, buf),
        }
    }

    /// Check that the dump holds all of `[addr, addr + len)`, without reading it: the error
    /// names the first absent address. Lets a caller refuse a read before allocating for it.
    pub fn check_backed(&self, addr: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let ranges = self.memory_ranges()?;
        let mut at = addr;
        let end = addr.checked_add(len);
        // The ranges are sorted and merged: one pass from the range holding `addr`.
        let first = ranges.partition_point(|r| r.end <= addr);
        for r in &ranges[first..] {
            if r.start > at {
                break;
            }
            at = r.end;
            if end.is_some_and(|e| at >= e) {
                return Ok(());
            }
        }
        Err(Error::absent(
            at,
            if end.is_none() {
                "the range runs past the top of the physical address space"
            } else {
                "the dump does not hold this memory"
            },
        ))
    }

    pub fn memory_ranges(&self) -> Result<Vec<PhysRange>> {
        match &self.backend {
            Backend::Elf(e) => e.ranges(),
            Backend::Kdump { file, .. } => file.ranges(),
            Backend::Lime(l) => l.ranges(),
            Backend::Avml(a) => a.ranges(),
            Backend::Raw(r) => r.ranges(),
        }
    }

    /// Bytes of physical memory the dump declares it stores, and how many of them the file holds
    /// (ELF: PT_LOAD file bytes; kdump: dumped pages). `None` for LiME and raw images, whose
    /// memory is what the file holds.
    pub fn stored_memory(&self) -> Result<Option<(u64, u64)>> {
        match &self.backend {
            Backend::Elf(e) => Ok(Some(e.stored_memory())),
            Backend::Kdump { file, .. } => {
                let (declared, stored) = file.stored_pages()?;
                let bs = u64::from(file.block_size());
                Ok(Some((declared.saturating_mul(bs), stored.saturating_mul(bs))))
            }
            _ => Ok(None),
        }
    }

    /// File offset of physical `[addr, addr + len)` when the file stores it uncompressed in one
    /// piece (raw, LiME, one ELF PT_LOAD's file bytes); `None` otherwise (kdump pages).
    pub fn phys_file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        match &self.backend {
            Backend::Raw(r) => r.file_offset(addr, len),
            Backend::Lime(l) => l.file_offset(addr, len),
            Backend::Avml(a) => a.file_offset(addr, len),
            Backend::Elf(e) => {
                let end = addr.checked_add(len)?;
                // The first PT_LOAD that maps the address wins, as in the physical map.
                let l = e.loads.iter().find(|l| l.paddr <= addr && addr - l.paddr < l.memsz)?;
                (end - l.paddr <= l.filesz).then(|| l.offset + (addr - l.paddr))
            }
            Backend::Kdump { .. } => None,
        }
    }

    /// Scan the dump's physical memory for VMCOREINFO notes at page starts (see [`crate::scan`]),
    /// in the dump's byte order (either order for memory images), with QEMU's intake rules and
    /// this dump's `max_note_size`. `progress(done, total)` after each chunk; `false` cancels.
    /// For memory images a complete scan also becomes the one [`Dump::vmcoreinfo`] uses.
    pub fn scan_vmcoreinfo(&self, progress: &mut dyn FnMut(u64, u64) -> bool) -> Result<ScanReport> {
        let order = if self.format.is_memory_image() { ByteOrder::Any } else { ByteOrder::from_big_endian(self.big_endian) };
        let report = scan::scan(self, order, u64::from(self.options.max_note_size), progress)?;
        self.check_mapping()?;
        if self.format.is_memory_image() && !report.cancelled && self.image.get().is_none() {
            let _ = self.image.set(Arc::new(self.image_scan_from(report.clone())));
        }
        Ok(report)
    }

    /// The text of one scan candidate (its rules already checked by the scan), with its SYMBOL
    /// and KERNELOFFSET values checked against the address width of the machine the text itself
    /// implies (a memory image names no machine; a dump's own machine is used otherwise).
    pub fn read_candidate(&self, c: &Candidate) -> Result<TextBlob> {
        let blob = self.read_candidate_text(c)?;
        let (m, c64) = if self.format.is_memory_image() {
            machine_from_vmcoreinfo(blob.bytes()).unwrap_or((0, true))
        } else {
            let (m, c64, _) = self.identity();
            (m, c64)
        };
        check_text_width(blob, bitness::address_bits(m, c64))
    }

    fn read_candidate_text(&self, c: &Candidate) -> Result<TextBlob> {
        if let Some(e) = &c.rejected {
            return Err(e.clone());
        }
        // descsz <= 1 MiB (the scan's header filter): a bounded allocation.
        let mut data = vec![0u8; c.descsz as usize];
        self.read_phys(c.desc_addr(), &mut data)?;
        Ok(TextBlob {
            data: Arc::from(data),
            start: 0,
            end: c.descsz as usize,
            file_offset: self.phys_file_offset(c.desc_addr(), u64::from(c.descsz)),
            phys_addr: Some(c.paddr),
            text_paddr: Some(c.desc_addr()),
        })
    }

    /// The scan that stands in for notes in memory images (LiME, raw): run on first need without
    /// progress, then cached (a scan that fails with an OS error is not cached, so the next call
    /// retries). Other formats may call it too; it then scans in the dump's byte order.
    pub fn image_scan(&self) -> Result<Arc<ImageScan>> {
        if let Some(s) = self.image.get() {
            return Ok(s.clone());
        }
        let order = if self.format.is_memory_image() { ByteOrder::Any } else { ByteOrder::from_big_endian(self.big_endian) };
        let report = scan::scan(self, order, u64::from(self.options.max_note_size), &mut |_, _| true)?;
        self.check_mapping()?;
        let s = Arc::new(self.image_scan_from(report));
        Ok(self.image.get_or_init(|| s).clone())
    }

    /// The cached scan, if one has completed (never starts one).
    pub fn image_scan_if_done(&self) -> Option<Arc<ImageScan>> {
        self.image.get().cloned()
    }

    fn image_scan_from(&self, report: ScanReport) -> ImageScan {
        let mut chosen: Option<(usize, TextBlob)> = None;
        let mut failure = None;
        let mut texts: Vec<TextBlob> = Vec::new();
        let mut compared = 0;
        for (i, c) in report.candidates.iter().enumerate() {
            if compared >= COMPARE_CANDIDATES {
                break;
            }
            match self.read_candidate(c) {
                Ok(blob) => {
                    compared += 1;
                    if chosen.is_none() {
                        chosen = Some((i, blob.clone()));
                    }
                    if !texts.iter().any(|t| t.bytes() == blob.bytes()) {
                        texts.push(blob);
                    }
                }
                Err(e) if chosen.is_none() => {
                    failure.get_or_insert(e);
                }
                Err(_) => {}
            }
        }
        let distinct_texts = texts.len();
        let (mut e_machine, mut class64, mut big_endian) = (0, true, false);
        if let Some((i, blob)) = &chosen {
            big_endian = report.candidates[*i].big_endian;
            if let Some((m, c)) = machine_from_vmcoreinfo(blob.bytes()) {
                (e_machine, class64) = (m, c);
            }
        }
        ImageScan { report, chosen, failure, compared, distinct_texts, e_machine, class64, big_endian }
    }
}

impl PhysMemory for Dump {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        Dump::read_phys(self, addr, buf)
    }
    fn ranges(&self) -> Result<Vec<PhysRange>> {
        self.memory_ranges()
    }
}

/// The machine a VMCOREINFO text implies, from the keys only one architecture writes (and, last,
/// a Debian-style `OSRELEASE` suffix): `(e_machine, 64-bit)`. Used for kdump headers that name
/// no machine (QEMU writes "Unknown" on arm) and for memory images, which name none at all.
pub fn machine_from_vmcoreinfo(text_bytes: &[u8]) -> Option<(u16, bool)> {
    let idx = text::Index::build(text_bytes);
    let v = idx.view(text_bytes);
    let has = |k: &str| v.contains(k);
    if has("NUMBER(kimage_voffset)") || has("NUMBER(VA_BITS)") && has("NUMBER(PHYS_OFFSET)") {
        return Some((bitness::EM_AARCH64, true));
    }
    if has("SYMBOL(init_top_pgt)") || has("NUMBER(phys_base)") {
        return Some((bitness::EM_X86_64, true));
    }
    if has("CONFIG_X86_PAE") {
        return Some((bitness::EM_386, false));
    }
    if has("NUMBER(phys_ram_base)") {
        return Some((bitness::EM_RISCV, true));
    }
    let rel = v.osrelease()?;
    [("-arm64", (bitness::EM_AARCH64, true)), ("-amd64", (bitness::EM_X86_64, true)), ("-s390x", (bitness::EM_S390, true))]
        .into_iter()
        .find(|(suffix, _)| rel.ends_with(suffix))
        .map(|(_, m)| m)
}

/// Check a text's SYMBOL and KERNELOFFSET values against `bits`, placing a violation where the
/// text is (in the file, or in guest memory).
fn check_text_width(blob: TextBlob, bits: u32) -> Result<TextBlob> {
    if bits >= 64 {
        return Ok(blob);
    }
    let idx = text::Index::build(blob.bytes());
    bitness::check_text_address_width(&idx.view(blob.bytes()), bits).map_err(|e| match (blob.file_offset, blob.text_paddr) {
        (Some(base), _) => e.shifted(base),
        (None, Some(paddr)) => e.shifted_phys(paddr),
        (None, None) => e,
    })?;
    Ok(blob)
}

/// File offset of `e_machine` in an ELF header (both classes).
const E_MACHINE_OFFSET: u64 = 18;

/// `utsname.machine` as kdump producers write it → (e_machine, 64-bit).
fn machine_from_uname(m: &str) -> Option<(u16, bool)> {
    Some(match m {
        "x86_64" => (bitness::EM_X86_64, true),
        "i386" | "i486" | "i586" | "i686" => (bitness::EM_386, false),
        "aarch64" | "arm64" => (bitness::EM_AARCH64, true),
        m if m.starts_with("arm") => (bitness::EM_ARM, false),
        "ppc64" | "ppc64le" => (bitness::EM_PPC64, true),
        "ppc" => (bitness::EM_PPC, false),
        "s390x" => (bitness::EM_S390, true),
        "riscv64" => (bitness::EM_RISCV, true),
        "riscv32" => (bitness::EM_RISCV, false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdump_note_area_in_flattened_holes_is_refused_not_allocated() {
        // The real QEMU kdump fixture, flattened, with the sub-header's note area moved to a
        // 200 MiB hole that an empty record at 1 TiB makes part of the reassembled file.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kdump/qemu-x86_64-zlib.kdump");
        let mut v = std::fs::read(path).unwrap();
        let bs = 4096;
        v[bs + 48..bs + 56].copy_from_slice(&(1u64 << 39).to_le_bytes());
        v[bs + 56..bs + 64].copy_from_slice(&(200u64 << 20).to_le_bytes());
        let flat = flattened::flatten(&[(0, &v), (1 << 40, &[])], true);
        let name: Arc<str> = Arc::from("t.flat");
        let err = Dump::from_source(Arc::new(flat), name, OpenOptions::default()).err().expect("must be refused");
        assert_eq!((err.kind, err.offset()), (ErrorKind::Limit, Some(1 << 39)), "{err}");
    }
}
