//! One opened dump, whatever its format: detection, notes, the VMCOREINFO note, physical memory.

use std::path::Path;
use std::sync::Arc;

use crate::bitness;
use crate::elf::{self, ElfDump, NoteSegment};
use crate::error::{Error, ErrorKind, Result};
use crate::fwcfg::{self, FwCfgEntry};
use crate::notes::{self, RawNote};
use crate::phys::{PhysMemory, PhysRange};
use crate::source::{FileSource, ReadAt};
use crate::text;

/// Options for [`Dump::open`].
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Largest VMCOREINFO note accepted (QEMU's MAX_GUEST_NOTE_SIZE, 1 MiB, unless raised).
    pub max_note_size: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { max_note_size: fwcfg::MAX_GUEST_NOTE_SIZE }
    }
}

/// The container format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Elf,
    Kdump,
    FlattenedKdump,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Elf => "elf",
            Format::Kdump => "kdump",
            Format::FlattenedKdump => "flattened-kdump",
        }
    }
}

enum Backend {
    Elf(ElfDump),
}

/// The VMCOREINFO text of a dump: shared bytes plus the range of the text in them.
#[derive(Debug, Clone)]
pub struct TextBlob {
    pub data: Arc<[u8]>,
    pub start: usize,
    pub end: usize,
    /// File offset of the first byte of the text, when it comes from the file.
    pub file_offset: Option<u64>,
}

impl TextBlob {
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
}

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
}

const NO_VMCOREINFO_HELP: &str = "QEMU writes a VMCOREINFO note only when the guest ran with \
`-device vmcoreinfo` and the guest kernel's `qemu_fw_cfg` driver (CONFIG_FW_CFG_SYSFS) was loaded \
before the dump, so that it could register its note through fw_cfg `etc/vmcoreinfo`";

impl Dump {
    /// Open a dump file: reads the headers and the note segment, nothing else.
    pub fn open(path: &Path, options: OpenOptions) -> Result<Dump> {
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let src = FileSource::open(path).map_err(|e| e.in_file(&name))?;
        Self::from_source(Arc::new(src), name.clone(), options).map_err(|e| e.in_file(&name))
    }

    /// Open a dump from any byte source; `name` is used in errors.
    pub fn from_source(src: Arc<dyn ReadAt>, name: Arc<str>, options: OpenOptions) -> Result<Dump> {
        let head = src.read_prefix(0, elf::HEAD_READ)?;
        if elf::is_elf(&head) {
            let e = ElfDump::parse(src, &head)?;
            let class_field = Some(elf_machine_offset());
            bitness::check_class_for_machine(e.e_machine, e.class64, e.max_phys_end())
                .map_err(|err| Error { offset: err.offset.or(class_field), ..err })?;
            return Ok(Dump {
                path: name,
                format: Format::Elf,
                class64: e.class64,
                big_endian: e.big_endian,
                e_machine: e.e_machine,
                options,
                notes: e.notes.clone(),
                backend: Backend::Elf(e),
            });
        }
        if head.starts_with(b"KDUMP   ") || head.starts_with(b"makedumpfile") {
            return Err(Error::unsupported(Some(0), "kdump-compressed and flattened dumps are not supported yet"));
        }
        Err(Error::format(0, "not a dump this library reads: no ELF, KDUMP or makedumpfile signature at offset 0"))
    }

    pub fn path(&self) -> &Arc<str> {
        &self.path
    }
    pub fn format(&self) -> Format {
        self.format
    }
    pub fn class64(&self) -> bool {
        self.class64
    }
    pub fn big_endian(&self) -> bool {
        self.big_endian
    }
    pub fn e_machine(&self) -> u16 {
        self.e_machine
    }
    pub fn machine(&self) -> &'static str {
        bitness::machine_name(self.e_machine, self.class64)
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
        self.notes.iter().flat_map(move |seg| {
            notes::notes(&seg.data, big, seg.align, seg.file_offset).map(move |n| (seg, n))
        })
    }

    /// The VMCOREINFO text. For ELF: the desc of the last note named exactly "VMCOREINFO"
    /// (QEMU appends the guest's note last), checked against QEMU's intake limits.
    pub fn vmcoreinfo(&self) -> Result<TextBlob> {
        let mut found = None;
        for (seg, n) in self.notes() {
            let n = n?;
            if n.is_vmcoreinfo() {
                found = Some((seg, n));
            }
        }
        let Some((seg, n)) = found else {
            return Err(Error::new(ErrorKind::NoVmcoreinfo, None, format!("the dump has no VMCOREINFO note. {NO_VMCOREINFO_HELP}")));
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
        })
    }

    /// Read the guest note the way QEMU does at dump time: `entry.size` bytes at `entry.paddr`
    /// from physical memory, QEMU's intake rules applied in the dump's byte order.
    pub fn read_guest_note(&self, entry: &FwCfgEntry) -> Result<TextBlob> {
        let limit = self.options.max_note_size;
        // Size rules first, so a hostile size never becomes an allocation.
        fwcfg::check_guest_note(entry.size, entry.guest_format, &[], self.big_endian, limit)
            .or_else(|e| if matches!(e.rule(), Some(crate::Rule::NoteExceedsSize)) || e.kind == ErrorKind::Truncated { Ok(Default::default()) } else { Err(e) })?;
        let mut buf = vec![0u8; entry.size as usize];
        self.read_phys(entry.paddr, &mut buf)?;
        let sizes = fwcfg::check_guest_note(entry.size, entry.guest_format, &buf, self.big_endian, limit)?;
        let start = sizes.desc_offset();
        let end = start + sizes.descsz as usize;
        Ok(TextBlob { data: Arc::from(buf), start, end, file_offset: None })
    }

    pub fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match &self.backend {
            Backend::Elf(e) => e.read_phys(addr, buf),
        }
    }

    pub fn memory_ranges(&self) -> Vec<PhysRange> {
        match &self.backend {
            Backend::Elf(e) => e.ranges(),
        }
    }
}

fn elf_machine_offset() -> u64 {
    18
}
