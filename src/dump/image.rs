//! Memory images (LiME, AVML, raw) carry no notes and name no machine: a scan of their memory stands in
//! for both, run once on first need.

use super::Dump;
use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::machine::machine_from_vmcoreinfo;
use crate::scan::ScanReport;
use crate::textblob::TextBlob;

/// How many valid scan candidates a memory image's implicit scan reads to compare their texts.
pub const COMPARE_CANDIDATES: usize = 16;

/// What the implicit scan of a memory image (LiME, AVML, raw) found: the report, the text it uses
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

/// Read the candidates of a finished scan and choose the text a memory image uses.
pub(crate) fn from_report(dump: &Dump, report: ScanReport) -> ImageScan {
    let mut chosen: Option<(usize, TextBlob)> = None;
    let mut failure = None;
    let mut texts: Vec<TextBlob> = Vec::new();
    let mut compared = 0;
    for (i, c) in report.candidates.iter().enumerate() {
        if compared >= COMPARE_CANDIDATES {
            break;
        }
        match dump.read_candidate(c) {
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

/// The text a memory image uses: the scan's first readable candidate, or why there is none.
pub(crate) fn chosen_text(s: &ImageScan, format: Format) -> Result<TextBlob> {
    match (&s.chosen, &s.failure) {
        (Some((_, blob)), _) => Ok(blob.clone()),
        (None, Some(e)) => Err(e.clone()),
        (None, None) => Err(Error::new(
            ErrorKind::NoVmcoreinfo,
            None,
            format!(
                "a {} image holds no notes, and a scan of its {} bytes of physical memory found no VMCOREINFO note \
                 (a page-aligned note header with namesz 11, type 0, name VMCOREINFO, text starting OSRELEASE=){}",
                format.name(),
                s.report.total,
                if s.report.unreadable_pages > 0 {
                    format!("; {} pages could not be read", s.report.unreadable_pages)
                } else {
                    String::new()
                }
            ),
        )),
    }
}
