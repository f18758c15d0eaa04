//! [`DumpDetails`]: the format-specific facts of a dump (header fields, compression, the scan of a
//! memory image, phys_base sources), gathered in one pass by [`DumpDetails::of`].
//!
//! Plain data, with no Python in it: with the `python` feature the structs also become frozen
//! Python classes (`vmcoreinfo.Details` and the classes of its groups) through `cfg_attr`
//! attributes only; their methods (dict access, pickling) are in `src/python/records.rs`.
//! Fields that do not apply to a dump's format are `None`.

use crate::dump::Dump;
use crate::error::Result;

/// phys_base from the VMCOREINFO text and from a kdump header, side by side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "python", pyo3::pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native"))]
pub struct PhysBaseDetails {
    /// The VMCOREINFO key read (`NUMBER(phys_base)` or `NUMBER(PHYS_OFFSET)`), if any.
    pub key: Option<String>,
    /// The text's value.
    pub vmcoreinfo: Option<i128>,
    /// The kdump sub-header's value.
    pub header: Option<u64>,
    /// Whether the two agree (None unless both are known).
    pub agree: Option<bool>,
}

/// The scan that stands in for notes in a memory image (LiME, AVML, raw), once it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "python", pyo3::pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native"))]
pub struct ScanDetails {
    pub bytes: u64,
    /// Physical addresses of every candidate note header.
    pub candidates: Vec<u64>,
    /// Physical addresses of the candidates that pass every rule.
    pub valid: Vec<u64>,
    pub unreadable_pages: u64,
    pub distinct_texts: u64,
    /// `"little"` or `"big"`.
    pub byteorder: String,
}

/// A kdump header's utsname.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "python", pyo3::pyclass(frozen, eq, get_all, from_py_object, module = "vmcoreinfo._native"))]
pub struct UtsnameDetails {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

/// kdump page counts and pages per codec (`details(pages=True)`): the kdump reader's own.
pub use crate::kdump::{CompressionSummary as PageCodecDetails, PageCounts as PageCountDetails};

/// Everything `Dump.details()` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, eq, get_all, from_py_object, name = "Details", module = "vmcoreinfo._native")
)]
pub struct DumpDetails {
    pub format: String,
    pub machine: String,
    /// Where the machine comes from: `elf-header`, `kdump-header`, `kdump-layout+vmcoreinfo`,
    /// `scan` or `unknown`.
    pub identity_source: String,
    pub e_machine: u16,
    pub address_bits: u32,
    /// ELF: why the ELF class looks wrong for the machine, if it does.
    pub class_note: Option<String>,
    pub memory_declared_bytes: Option<u64>,
    pub memory_stored_bytes: Option<u64>,
    pub phys_base: PhysBaseDetails,
    // ELF
    pub phnum: Option<u32>,
    pub pt_load: Option<u64>,
    pub pt_note: Option<u64>,
    pub conflicting_overlap_bytes: Option<u64>,
    pub tail_bytes: Option<u64>,
    // LiME
    pub lime_ranges: Option<u64>,
    // memory images, once scanned
    pub scan: Option<ScanDetails>,
    // flattened kdump
    pub flattened_records: Option<u64>,
    pub flattened_logical_size: Option<u64>,
    pub flattened_end_marker: Option<bool>,
    // kdump
    pub header_version: Option<i32>,
    pub block_size: Option<u32>,
    /// `"32-bit"` or `"64-bit"`.
    pub header_layout: Option<String>,
    pub compression: Option<Vec<String>>,
    pub incomplete: Option<bool>,
    pub dump_level: Option<i32>,
    pub max_mapnr: Option<u64>,
    pub nr_cpus: Option<i32>,
    pub utsname: Option<UtsnameDetails>,
    pub anomalies: Option<Vec<String>>,
    pub pages: Option<PageCountDetails>,
    pub page_codecs: Option<PageCodecDetails>,
}

impl DumpDetails {
    /// Gather the details of `d` (with `pages`, kdump page counts and codecs too, which reads
    /// every page descriptor). May run a memory image's scan; call it without holding any lock
    /// other threads need.
    pub fn of(d: &Dump, pages: bool) -> Result<DumpDetails> {
        let id = d.identity()?;
        let mut out = DumpDetails {
            format: d.format().name().to_owned(),
            machine: d.machine().to_owned(),
            identity_source: id.source.to_owned(),
            e_machine: d.e_machine(),
            address_bits: crate::bitness::address_bits(d.e_machine(), d.class64()),
            class_note: None,
            memory_declared_bytes: None,
            memory_stored_bytes: None,
            phys_base: phys_base(d)?,
            phnum: None,
            pt_load: None,
            pt_note: None,
            conflicting_overlap_bytes: None,
            tail_bytes: None,
            lime_ranges: None,
            scan: None,
            flattened_records: None,
            flattened_logical_size: None,
            flattened_end_marker: None,
            header_version: None,
            block_size: None,
            header_layout: None,
            compression: None,
            incomplete: None,
            dump_level: None,
            max_mapnr: None,
            nr_cpus: None,
            utsname: None,
            anomalies: None,
            pages: None,
            page_codecs: None,
        };
        if let Some(e) = d.elf() {
            out.phnum = Some(e.phnum);
            out.pt_load = Some(e.loads.len() as u64);
            out.pt_note = Some(e.notes.len() as u64);
            out.conflicting_overlap_bytes = Some(e.conflicting_overlap_bytes);
            out.tail_bytes = Some(e.tail_bytes());
            out.class_note = crate::bitness::class_diagnostic(e.e_machine, e.class64, e.max_phys_end());
        }
        let stored = d.stored_memory()?;
        out.memory_declared_bytes = stored.map(|s| s.0);
        out.memory_stored_bytes = stored.map(|s| s.1);
        if let Some(l) = d.lime() {
            out.lime_ranges = Some(l.lime_ranges().len() as u64);
        }
        if let Some(s) = d.image_scan_if_done() {
            out.scan = Some(ScanDetails {
                bytes: s.report.total,
                candidates: s.report.candidates.iter().map(|c| c.paddr).collect(),
                valid: s.report.valid().map(|c| c.paddr).collect(),
                unreadable_pages: s.report.unreadable_pages,
                distinct_texts: s.distinct_texts as u64,
                byteorder: if s.big_endian { "big" } else { "little" }.to_owned(),
            });
        }
        if let Some(f) = d.flattened() {
            out.flattened_records = Some(f.records);
            out.flattened_logical_size = Some(f.logical_len);
            out.flattened_end_marker = Some(f.has_end_marker);
        }
        if let Some(k) = d.kdump() {
            out.header_version = Some(k.header_version());
            out.block_size = Some(k.block_size());
            out.header_layout = Some(if k.is_32bit_layout() { "32-bit" } else { "64-bit" }.to_owned());
            out.compression = Some(crate::kdump::codec_names(k.compression_flags()).map(str::to_owned).collect());
            out.incomplete = Some(k.is_incomplete());
            out.dump_level = Some(k.dump_level());
            out.max_mapnr = Some(k.max_mapnr());
            out.nr_cpus = Some(k.nr_cpus());
            out.utsname = Some(UtsnameDetails {
                sysname: k.sysname().to_owned(),
                nodename: k.nodename().to_owned(),
                release: k.release().to_owned(),
                version: k.version().to_owned(),
                machine: k.machine().to_owned(),
                domainname: k.domainname().to_owned(),
            });
            out.anomalies = Some(k.anomalies().iter().map(|a| a.to_string()).collect());
            if pages {
                out.pages = Some(k.page_counts()?);
                out.page_codecs = Some(k.compression_summary()?);
            }
        }
        Ok(out)
    }
}

fn phys_base(d: &Dump) -> Result<PhysBaseDetails> {
    let pb = d.phys_base_sources()?;
    Ok(PhysBaseDetails { key: pb.text_key.map(str::to_owned), vmcoreinfo: pb.text, header: pb.header, agree: pb.agree() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::OpenOptions;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    #[test]
    fn elf_details_have_the_elf_fields_only() {
        let d = Dump::open(&fixture("x86_64-qemu-elf.core"), OpenOptions::default()).unwrap();
        let det = DumpDetails::of(&d, true).unwrap();
        assert_eq!((det.format.as_str(), det.machine.as_str(), det.address_bits), ("elf", "x86_64", 64));
        assert!(det.phnum.is_some() && det.pt_load.is_some() && det.tail_bytes.is_some());
        assert!(det.header_version.is_none() && det.utsname.is_none() && det.pages.is_none() && det.scan.is_none());
    }

    #[test]
    fn kdump_details_count_pages_when_asked() {
        let d = Dump::open(&fixture("kdump/md-x86_64-zlib-d31.kdump"), OpenOptions::default()).unwrap();
        let det = DumpDetails::of(&d, true).unwrap();
        assert_eq!(det.compression.as_deref(), Some(&["zlib".to_owned()][..]));
        let (p, c) = (det.pages.unwrap(), det.page_codecs.unwrap());
        assert_eq!(c.zlib + c.raw + c.lzo + c.snappy + c.zstd + c.invalid, p.dumped);
        assert!(DumpDetails::of(&d, false).unwrap().pages.is_none());
    }
}
