//! Details of a dump that sit beside its identity: phys_base as the text and a kdump header
//! give it.

use super::Dump;
use crate::bitness;
use crate::error::{ErrorKind, Result};
use crate::text;

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
    /// phys_base from the VMCOREINFO text and from the kdump header, side by side.
    pub fn of(dump: &Dump) -> Result<PhysBaseSources> {
        let header = dump.kdump().map(crate::kdump::KdumpFile::phys_base_header);
        // (key as reported, NUMBER name to read)
        let source = match dump.e_machine() {
            bitness::EM_AARCH64 => Some(("NUMBER(PHYS_OFFSET)", "PHYS_OFFSET")),
            bitness::EM_X86_64 => Some(("NUMBER(phys_base)", "phys_base")),
            _ => None,
        };
        let text_key = source.map(|(key, _)| key);
        let mut text = None;
        if let Some((_, name)) = source {
            match dump.vmcoreinfo() {
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

    /// Whether both are present and equal (the header's u64 read as two's complement).
    pub fn agree(&self) -> Option<bool> {
        Some(self.text? as u64 == self.header?)
    }
}
