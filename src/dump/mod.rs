//! One opened dump, whatever its format: the facade over the format behind it (a
//! [`DumpFormat`], opened by its row of [`FORMATS`](crate::format::registry::FORMATS)). Every
//! `impl Dump` is in this module: identity, notes and the VMCOREINFO text here; views of
//! physical memory in `view`; the kernel view, log and symbols in `kernel`; the scan that
//! stands in for notes in memory images in `image`; details in `details`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::bitness;
use crate::elf::{self, ElfDump, NoteSegment};
use crate::error::{Error, ErrorKind, Result};
use crate::format::registry;
use crate::fwcfg::{self, FwCfgEntry};
use crate::kdump::{KdumpDump, KdumpFile};
use crate::lime::LimeImage;
use crate::mmap::{MapPlan, MmapSource};
use crate::notes::{self, RawNote};
use crate::phys::{PhysMemory, PhysRange};
use crate::scan::{self, ByteOrder, Candidate, ScanReport};
use crate::source::ReadAt;
use crate::textblob::{self, check_text_width};

mod cpus;
mod details;
mod image;
mod kernel;
mod objects;
mod types;
mod view;

pub use cpus::{Cpu, PanicCpuSource, PanicInfo};

pub use crate::flattened::FlattenedInfo;
pub use crate::format::{DumpFormat, Format, Identity, OpenOptions};
pub use crate::machine::machine_from_vmcoreinfo;
pub use crate::textblob::TextBlob;
pub use details::PhysBaseSources;
pub use image::{ImageScan, COMPARE_CANDIDATES};
pub use objects::{module_symbol, vmlinux_symbol, Symbol};

/// An opened dump.
pub struct Dump {
    path: Arc<str>,
    options: OpenOptions,
    backend: Box<dyn DumpFormat>,
    /// Memory images: the scan that stands in for notes, run once on first need.
    image: OnceLock<Arc<ImageScan>>,
    /// Kernel virtual address translation, built from VMCOREINFO on first use (`kview`).
    kview: OnceLock<crate::kview::Translator>,
    /// The kernel's symbols (kallsyms) with the default limits, decoded on first use.
    symbols: OnceLock<std::sync::Arc<crate::kview::kallsyms::KernelSymbols>>,
    /// Every module's symbols, read on first use (`objects`).
    objects: OnceLock<Arc<Vec<crate::kobj::modsyms::ModuleSymbols>>>,
    /// The kernel's BTF and how it was found, on first use.
    btf: OnceLock<(std::sync::Arc<crate::btf::Btf>, crate::kobj::RootSource)>,
    /// Modules' split BTF, read on first use of each.
    module_btf: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<crate::btf::Btf>>>,
    /// How the file is mapped, for views (and reads with `mapped_reads`); see [`crate::mmap`].
    plan: MapPlan,
    /// The mapping once made (at open with `mapped_reads`, else by the first view).
    mapped: OnceLock<Option<Arc<MmapSource>>>,
}

impl Dump {
    /// Open a dump file: reads the headers and the note segment, nothing else.
    pub fn open(path: &Path, options: OpenOptions) -> Result<Dump> {
        let name: Arc<str> = path.to_str().map_or_else(|| Arc::from(path.to_string_lossy().as_ref()), Arc::from);
        let (src, plan) = crate::mmap::open_sources(path, options.mmap, options.mapped_reads).map_err(|e| e.in_file(&name))?;
        let mut d = Self::from_source(src, name.clone(), options).map_err(|e| e.in_file(&name))?;
        if let MapPlan::Now(m) = &plan {
            let _ = d.mapped.set(Some(m.clone()));
        }
        d.plan = plan;
        Ok(d)
    }

    /// Open a dump from any byte source; `name` is used in errors.
    pub fn from_source(src: Arc<dyn ReadAt>, name: Arc<str>, options: OpenOptions) -> Result<Dump> {
        thread_local! {
            /// The buffer the head is read into, kept per thread: opening many small dumps would
            /// otherwise allocate, zero and free 8 KiB each time.
            static HEAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        HEAD.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => Self::from_head(src, name, options, &mut buf),
            Err(_) => Self::from_head(src, name, options, &mut Vec::new()),
        })
    }

    fn from_head(src: Arc<dyn ReadAt>, name: Arc<str>, options: OpenOptions, buf: &mut Vec<u8>) -> Result<Dump> {
        // One read of the head, which also learns a short file's length (no fstat).
        buf.resize(elf::HEAD_READ, 0);
        let n = src.read_upto(buf, 0)?;
        let head = &buf[..n];
        let format = registry::choose(options.format, registry::detect(head))?;
        let backend = registry::open(format, src, head, &options)?;
        Ok(Dump {
            path: name,
            options,
            backend,
            image: OnceLock::new(),
            kview: OnceLock::new(),
            symbols: OnceLock::new(),
            objects: OnceLock::new(),
            btf: OnceLock::new(),
            module_btf: Default::default(),
            plan: MapPlan::Never,
            mapped: OnceLock::new(),
        })
    }

    /// The format behind this dump.
    pub fn backend(&self) -> &(dyn DumpFormat + 'static) {
        &*self.backend
    }
    fn inner(&self) -> &(dyn DumpFormat + 'static) {
        &*self.backend
    }
    /// The file's mapping, if it has been mapped (see [`Dump::map_now`]).
    pub fn mapping(&self) -> Option<&Arc<MmapSource>> {
        self.mapped.get().and_then(Option::as_ref)
    }
    /// The file's mapping, mapping it now if it may be mapped and is not yet; `None` when it
    /// may not (`mmap: false`, not a regular file, empty, too large for the address space).
    pub fn map_now(&self) -> Option<&Arc<MmapSource>> {
        self.mapped
            .get_or_init(|| match &self.plan {
                MapPlan::Lazy(f) => MmapSource::from_file(f.file()).ok().flatten().map(Arc::new),
                MapPlan::Now(m) => Some(m.clone()),
                MapPlan::Never => None,
            })
            .as_ref()
    }

    /// The kdump reader behind this dump, for kdump and flattened files.
    pub fn kdump(&self) -> Option<&KdumpFile> {
        self.inner().downcast_ref::<KdumpDump>().map(|k| &k.file)
    }
    /// The flattened layer's facts, for flattened files.
    pub fn flattened(&self) -> Option<FlattenedInfo> {
        self.inner().downcast_ref::<KdumpDump>().and_then(|k| k.flattened)
    }
    /// The ELF reader behind this dump, for ELF files.
    pub fn elf(&self) -> Option<&ElfDump> {
        self.inner().downcast_ref()
    }
    /// The LiME index behind this dump, for LiME files.
    pub fn lime(&self) -> Option<&LimeImage> {
        self.inner().downcast_ref()
    }
    pub fn path(&self) -> &Arc<str> {
        &self.path
    }
    pub fn format(&self) -> Format {
        self.inner().format()
    }
    pub fn options(&self) -> OpenOptions {
        self.options
    }

    /// phys_base from the VMCOREINFO text and from the kdump header, side by side.
    pub fn phys_base_sources(&self) -> Result<PhysBaseSources> {
        PhysBaseSources::of(self)
    }

    /// What is known of the machine, and from where. For memory images it comes from the scan
    /// (run once, on first need): a scan that fails is an error here, not an unknown machine.
    pub fn identity(&self) -> Result<Identity> {
        if let Some(id) = self.inner().identity() {
            // A container that names no machine (QEMU's kdump "Unknown" without a note) learns
            // it from a scan that found a text, once one has run.
            return Ok(match self.image.get().filter(|s| id.e_machine == 0 && s.e_machine != 0) {
                Some(s) => Identity { e_machine: s.e_machine, source: "scan", ..id },
                None => id,
            });
        }
        let s = self.image_scan()?;
        let source = if s.chosen.is_some() { "scan" } else { "unknown" };
        Ok(Identity { e_machine: s.e_machine, class64: s.class64, big_endian: s.big_endian, source })
    }
    /// [`Dump::identity`], with an unknown little-endian 64-bit machine when a memory image's
    /// scan fails (use `identity()` to see why). For display only: what must not guess (the
    /// writers, which encode class, byte order and machine) calls `identity()?` instead.
    fn identity_or_unknown(&self) -> Identity {
        self.identity().unwrap_or(Identity { e_machine: 0, class64: true, big_endian: false, source: "unknown" })
    }
    /// ELF class (64-bit). For memory images, from the scanned text (runs the scan once).
    pub fn class64(&self) -> bool {
        self.identity_or_unknown().class64
    }
    /// Byte order. For memory images, the byte order of the note the scan found.
    pub fn big_endian(&self) -> bool {
        self.identity_or_unknown().big_endian
    }
    /// ELF `e_machine` (0 when unknown). For memory images, from the scanned text.
    pub fn e_machine(&self) -> u16 {
        self.identity_or_unknown().e_machine
    }
    pub fn machine(&self) -> &'static str {
        let id = self.identity_or_unknown();
        bitness::machine_name(id.e_machine, id.class64)
    }
    /// Like [`Dump::machine`], but `None` for a memory image whose scan has not run yet (never
    /// starts one).
    pub fn machine_if_known(&self) -> Option<&'static str> {
        (!self.format().is_memory_image() || self.image.get().is_some()).then(|| self.machine())
    }

    pub fn note_segments(&self) -> &[NoteSegment] {
        self.inner().note_segments()
    }
    /// Every note of every note segment, in file order, with its segment.
    pub fn notes(&self) -> impl Iterator<Item = (&NoteSegment, Result<RawNote<'_>>)> {
        let big = self.inner().identity().is_some_and(|i| i.big_endian);
        self.note_segments()
            .iter()
            .flat_map(move |seg| notes::notes(&seg.data, big, seg.align, seg.file_offset).map(move |n| (seg, n)))
    }

    /// The VMCOREINFO text, its SYMBOL and KERNELOFFSET values checked against the machine's
    /// address width. kdump: where the sub-header points. ELF: the desc of the last note named
    /// exactly "VMCOREINFO" (QEMU appends the guest's note last), checked against QEMU's intake
    /// limits. Memory images (LiME, AVML, raw): the text of the first valid candidate of the scan (which
    /// runs once, on first need; see [`Dump::image_scan`]).
    pub fn vmcoreinfo(&self) -> Result<TextBlob> {
        let blob = self.find_vmcoreinfo()?;
        let id = self.identity()?;
        check_text_width(blob, bitness::address_bits(id.e_machine, id.class64))
    }

    fn find_vmcoreinfo(&self) -> Result<TextBlob> {
        if self.format().is_memory_image() {
            let s = self.image_scan()?;
            return image::chosen_text(&s, self.format());
        }
        if let Some(t) = self.inner().vmcoreinfo_text(self.options.max_note_size) {
            return t;
        }
        let big = self.inner().identity().is_some_and(|i| i.big_endian);
        if let Some(blob) = textblob::last_vmcoreinfo_note(self.note_segments(), big, self.options.max_note_size)? {
            return Ok(blob);
        }
        // The offset names where we looked: the (first) note segment, or 0 when there is none.
        let at = self.note_segments().first().map_or(0, |s| s.file_offset);
        let hint = crate::error::Hint::ScanForNote;
        Err(Error::hinted(ErrorKind::NoVmcoreinfo, Some(at), "the dump has no VMCOREINFO note", hint))
    }

    /// Read the guest note that a fw_cfg `etc/vmcoreinfo` entry points at, with QEMU's intake
    /// rules applied in the dump's byte order, as QEMU does at dump time. QEMU copies `size`
    /// bytes from `paddr`; we read the 12-byte header, apply every rule (they need only the
    /// entry and the header), then read just the padded note, so a dump that left out the unused
    /// rest of the guest's buffer (a zero page excluded by makedumpfile) still yields the note.
    ///
    /// For memory images (LiME, AVML, raw) the byte order is that of the note the scan found.
    pub fn read_guest_note(&self, entry: &FwCfgEntry) -> Result<TextBlob> {
        let limit = self.options.max_note_size;
        let big = self.identity()?.big_endian;
        // The size and format rules need no memory; with no bytes, a note that passes them fails
        // as Truncated, which we then satisfy by reading the header.
        match fwcfg::check_guest_note(entry.size, entry.guest_format, &[], big, limit) {
            Err(e) if e.kind != ErrorKind::Truncated => return Err(e),
            _ => {}
        }
        let mut header = [0u8; fwcfg::NOTE_HEADER_SIZE];
        self.read_phys(entry.paddr, &mut header)?;
        let sizes = fwcfg::check_guest_note(entry.size, entry.guest_format, &header, big, limit)
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
        let id = self.identity()?;
        check_text_width(blob, bitness::address_bits(id.e_machine, id.class64))
    }

    pub fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.inner().read_phys(addr, buf)
    }

    /// Check that the dump holds all of `[addr, addr + len)`, without reading it: the error
    /// names the first absent address. Lets a caller refuse a read before allocating for it.
    pub fn check_backed(&self, addr: u64, len: u64) -> Result<()> {
        self.inner().check_covered(addr, len)
    }

    pub fn memory_ranges(&self) -> Result<Vec<PhysRange>> {
        self.inner().ranges()
    }

    /// Bytes of physical memory the dump declares it stores, and how many of them the file holds
    /// (ELF: PT_LOAD file bytes; kdump: dumped pages). `None` for memory images (LiME, AVML, raw), whose
    /// memory is what the file holds.
    pub fn stored_memory(&self) -> Result<Option<(u64, u64)>> {
        self.inner().stored_memory()
    }

    /// File offset of physical `[addr, addr + len)` when the file stores it uncompressed in one
    /// piece (raw, LiME, one ELF PT_LOAD's file bytes); `None` otherwise (kdump pages).
    pub fn phys_file_offset(&self, addr: u64, len: u64) -> Option<u64> {
        self.inner().file_offset(addr, len)
    }

    fn scan_order(&self) -> ByteOrder {
        match self.inner().identity() {
            None => ByteOrder::Any,
            Some(id) => ByteOrder::from_big_endian(id.big_endian),
        }
    }

    /// Scan the dump's physical memory for VMCOREINFO notes at page starts (see [`crate::scan`]),
    /// in the dump's byte order (either order for memory images), with QEMU's intake rules and
    /// this dump's `max_note_size`. `progress(done, total)` after each chunk; `false` cancels.
    /// For memory images a complete scan also becomes the one [`Dump::vmcoreinfo`] uses.
    pub fn scan_vmcoreinfo(&self, progress: &mut dyn FnMut(u64, u64) -> bool) -> Result<ScanReport> {
        let report = scan::scan(self, self.scan_order(), u64::from(self.options.max_note_size), progress)?;
        self.check_mapping()?;
        let unknown = self.inner().identity().is_none_or(|id| id.e_machine == 0);
        if unknown && !report.cancelled && self.image.get().is_none() {
            let _ = self.image.set(Arc::new(image::from_report(self, report.clone())));
        }
        Ok(report)
    }

    /// The text of one scan candidate (its rules already checked by the scan), with its SYMBOL
    /// and KERNELOFFSET values checked against the address width of the machine the text itself
    /// implies (a memory image names no machine; a dump's own machine is used otherwise).
    pub fn read_candidate(&self, c: &Candidate) -> Result<TextBlob> {
        let blob = self.read_candidate_text(c)?;
        let (m, c64) = if self.format().is_memory_image() {
            machine_from_vmcoreinfo(blob.bytes()).unwrap_or((0, true))
        } else {
            let id = self.identity()?;
            (id.e_machine, id.class64)
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

    /// The scan that stands in for notes in memory images (LiME, AVML, raw): run on first need without
    /// progress, then cached (a scan that fails with an OS error is not cached, so the next call
    /// retries). Other formats may call it too; it then scans in the dump's byte order.
    pub fn image_scan(&self) -> Result<Arc<ImageScan>> {
        self.image_scan_with(&mut |_, _| true)
    }

    /// [`Dump::image_scan`] with `progress(done, total)` after each chunk; `false` cancels it
    /// (a `Cancelled` error, and nothing is cached).
    pub fn image_scan_with(&self, progress: &mut dyn FnMut(u64, u64) -> bool) -> Result<Arc<ImageScan>> {
        if let Some(s) = self.image.get() {
            return Ok(s.clone());
        }
        let report = scan::scan(self, self.scan_order(), u64::from(self.options.max_note_size), progress)?;
        if report.cancelled {
            return Err(Error::cancelled("the scan of guest memory was cancelled"));
        }
        self.check_mapping()?;
        let s = Arc::new(image::from_report(self, report));
        Ok(self.image.get_or_init(|| s).clone())
    }

    /// The cached scan, if one has completed (never starts one).
    pub fn image_scan_if_done(&self) -> Option<Arc<ImageScan>> {
        self.image.get().cloned()
    }
}

impl PhysMemory for Dump {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        Dump::read_phys(self, addr, buf)
    }
    fn ranges(&self) -> Result<Vec<PhysRange>> {
        self.memory_ranges()
    }
    fn check_covered(&self, addr: u64, len: u64) -> Result<()> {
        self.check_backed(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fixture dump, and a raw reading of one (the extent maps of ELF, LiME, raw; AVML's
    /// list; kdump's bitmap, plain and flattened).
    fn fixtures() -> Vec<Dump> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .chain(std::fs::read_dir(dir.join("kdump")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && !matches!(p.extension().and_then(|e| e.to_str()), Some("txt" | "md")))
            .collect();
        paths.sort();
        let mut dumps: Vec<Dump> = paths.iter().filter_map(|p| Dump::open(p, OpenOptions::default()).ok()).collect();
        let raw = OpenOptions { format: Some(Format::Raw), ..OpenOptions::default() };
        dumps.push(Dump::open(&dir.join("x86_64-qemu-elf.core"), raw).unwrap());
        let zeros = OpenOptions { elf_tails_absent: false, ..OpenOptions::default() };
        dumps.push(Dump::open(&dir.join("x86_64-qemu-elf.core"), zeros).unwrap());
        dumps
    }

    /// B5: `check_backed` asks the format (no range list built per call); its answers and errors
    /// are those of `check_covered` over the range list, as before.
    #[test]
    fn check_backed_answers_as_the_range_list_did() {
        let dumps = fixtures();
        let formats: std::collections::HashSet<Format> = dumps.iter().map(Dump::format).collect();
        assert!(formats.len() >= 6, "{formats:?}");
        for d in &dumps {
            let ranges = d.memory_ranges().unwrap();
            assert!(!ranges.is_empty(), "{}", d.path());
            let mut probes = vec![(0u64, 1u64), (0, u64::MAX), (u64::MAX, 1), (u64::MAX - 4096, 8192)];
            for (i, r) in ranges.iter().enumerate() {
                let next = ranges.get(i + 1).map_or(r.end + 0x10000, |n| n.end);
                for a in [r.start.saturating_sub(1), r.start, r.start + 1, r.end - 1, r.end, r.end + 1] {
                    for l in [
                        1,
                        2,
                        4096,
                        65536,
                        r.end - r.start,
                        r.end.saturating_sub(a),
                        next.saturating_sub(a),
                        u64::MAX - a,
                        u64::MAX,
                    ] {
                        probes.push((a, l));
                    }
                }
            }
            for (a, l) in probes {
                let new = d.check_backed(a, l);
                let old = if l == 0 { Ok(()) } else { crate::phys::check_covered(&ranges, a, l) };
                match (&new, &old) {
                    (Ok(()), Ok(())) => {}
                    (Err(n), Err(o)) => {
                        assert_eq!(
                            (n.kind, n.address(), &n.message),
                            (o.kind, o.address(), &o.message),
                            "{} {a:#x}+{l:#x}",
                            d.path()
                        )
                    }
                    _ => panic!("{} {a:#x}+{l:#x}: {new:?} vs {old:?}", d.path()),
                }
            }
        }
    }
}
