//! The one table of formats: a row per format with its name, its signature test, its
//! constructor, whether it is a memory image, and what it also accepts when asked for. Every
//! other list of formats is derived from [`FORMATS`]: [`Format::ALL`], [`Format::name`],
//! [`Format::from_name`], [`Format::is_memory_image`], [`detect`], [`choose`] and the constructor
//! that [`Dump::open`](crate::dump::Dump::open) calls.
//!
//! Adding a format: its module (a reader implementing [`DumpFormat`]), a [`Format`] variant, and
//! a row here.

use std::sync::Arc;

use super::{DumpFormat, Format, OpenOptions};
use crate::avml::{self, AvmlImage};
use crate::bitness;
use crate::elf::{self, ElfDump};
use crate::error::{Error, Result};
use crate::flattened::{self, Flattened};
use crate::kdump::{self, KdumpDump};
use crate::lime::{self, LimeImage};
use crate::raw::RawImage;
use crate::source::ReadAt;

/// How a format is opened: the file's bytes, its first bytes already read (`head`), the options.
pub type OpenFn = fn(Arc<dyn ReadAt>, &[u8], &OpenOptions) -> Result<Box<dyn DumpFormat>>;

/// One format.
pub struct FormatSpec {
    pub format: Format,
    /// The name the library and its Python API use (`format="..."`).
    pub name: &'static str,
    /// The test of the file's first bytes; `None` for a format that has no signature (raw),
    /// which is never detected and, when asked for, accepts any file.
    pub detect: Option<fn(&[u8]) -> bool>,
    pub open: OpenFn,
    /// Memory images carry no notes and name no machine: both come from a scan.
    pub memory_image: bool,
    /// Detected formats this one accepts when it is asked for (either kdump form reads both).
    pub also_accepts: &'static [Format],
}

/// Every format, in detection order: [`detect`] tries the signatures top to bottom, so a row
/// whose signature another row's test also accepts must come first.
pub static FORMATS: [FormatSpec; 6] = [
    FormatSpec {
        format: Format::Elf,
        name: "elf",
        detect: Some(elf::is_elf),
        open: |src, head, o| {
            let mut e = ElfDump::parse(src, head)?;
            e.set_tails_absent(o.elf_tails_absent);
            // The error is located (at EI_CLASS) by the check itself.
            bitness::check_class_for_machine(e.e_machine, e.class64)?;
            Ok(Box::new(e))
        },
        memory_image: false,
        also_accepts: &[],
    },
    // Before plain kdump: a flattened file is read through its reassembled view.
    FormatSpec {
        format: Format::FlattenedKdump,
        name: "flattened-kdump",
        detect: Some(flattened::is_flattened),
        open: |src, _head, o| {
            let f = Flattened::open(src)?;
            let info = f.info();
            // The head read at open is the flattened file's, not the reassembled view's.
            Ok(Box::new(KdumpDump::open(Arc::new(f), &[], Some(info), o.max_note_size)?))
        },
        memory_image: false,
        also_accepts: &[Format::Kdump],
    },
    FormatSpec {
        format: Format::Kdump,
        name: "kdump",
        detect: Some(kdump::is_kdump),
        open: |src, head, o| Ok(Box::new(KdumpDump::open(src, head, None, o.max_note_size)?)),
        memory_image: false,
        also_accepts: &[Format::FlattenedKdump],
    },
    // AVML and LiME share the header layout, not the magic: their tests accept disjoint files,
    // so their order does not matter.
    FormatSpec {
        format: Format::Avml,
        name: "avml",
        detect: Some(avml::is_avml),
        open: |src, _head, _o| Ok(Box::new(AvmlImage::open(src)?)),
        memory_image: true,
        also_accepts: &[],
    },
    FormatSpec {
        format: Format::Lime,
        name: "lime",
        detect: Some(lime::is_lime),
        open: |src, _head, _o| Ok(Box::new(LimeImage::open(src)?)),
        memory_image: true,
        also_accepts: &[],
    },
    // Last: no signature, never detected.
    FormatSpec {
        format: Format::Raw,
        name: "raw",
        detect: None,
        open: |src, _head, _o| Ok(Box::new(RawImage::new(src))),
        memory_image: true,
        also_accepts: &[],
    },
];

impl Format {
    /// Every format, in the order [`detect`] tries their signatures (raw last: it has none).
    pub const ALL: [Format; FORMATS.len()] = {
        let mut all = [Format::Raw; FORMATS.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = FORMATS[i].format;
            i += 1;
        }
        all
    };

    /// This format's row of [`FORMATS`].
    pub fn spec(self) -> &'static FormatSpec {
        // Every variant has a row (the `every_format_has_one_row` test).
        FORMATS.iter().find(|s| s.format == self).expect("a FORMATS row per Format")
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The format named `name` (as [`Format::name`] spells it).
    pub fn from_name(name: &str) -> Option<Format> {
        FORMATS.iter().find(|s| s.name == name).map(|s| s.format)
    }

    /// Memory images (LiME, AVML, raw) carry no notes and no machine: both come from a scan.
    pub fn is_memory_image(self) -> bool {
        self.spec().memory_image
    }
}

/// The format a file's first bytes announce (a raw image announces none).
pub fn detect(head: &[u8]) -> Option<Format> {
    FORMATS.iter().find(|s| s.detect.is_some_and(|is| is(head))).map(|s| s.format)
}

/// The format to read a file as: the one asked for (checked against the file's signature; raw
/// needs none, and either kdump form accepts both) or the one detected.
pub fn choose(requested: Option<Format>, detected: Option<Format>) -> Result<Format> {
    let Some(want) = requested else {
        return detected.ok_or_else(|| {
            Error::hinted(
                crate::error::ErrorKind::Format,
                Some(0),
                "not a dump this library detects: no ELF, KDUMP, makedumpfile, LiME or AVML signature at offset 0",
                crate::error::Hint::UseRawFormat,
            )
        });
    };
    let spec = want.spec();
    match detected {
        _ if spec.detect.is_none() => Ok(want),
        Some(f) if f == want || spec.also_accepts.contains(&f) => Ok(f),
        got => Err(Error::format(
            0,
            format!(
                "format {:?} was asked for, but the file does not start with its signature ({})",
                want.name(),
                got.map_or_else(|| "no known signature at offset 0".to_owned(), |g| format!("it looks like {}", g.name()))
            ),
        )),
    }
}

/// Open `src` as `format` (the constructor of its row).
pub fn open(format: Format, src: Arc<dyn ReadAt>, head: &[u8], options: &OpenOptions) -> Result<Box<dyn DumpFormat>> {
    (format.spec().open)(src, head, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_one_row() {
        let mut seen = std::collections::HashSet::new();
        for s in &FORMATS {
            assert!(seen.insert(s.format), "{:?} has two rows", s.format);
            assert_eq!(Format::from_name(s.name), Some(s.format));
        }
        // Format is non_exhaustive for other crates, not here: a new variant without a row
        // fails to compile this match.
        for f in Format::ALL {
            match f {
                Format::Elf | Format::Kdump | Format::FlattenedKdump | Format::Lime | Format::Avml | Format::Raw => {
                    assert_eq!(f.spec().format, f)
                }
            }
        }
        assert_eq!(Format::ALL.len(), seen.len());
    }

    #[test]
    fn detection_order_is_the_table_order() {
        assert_eq!(Format::ALL, [Format::Elf, Format::FlattenedKdump, Format::Kdump, Format::Avml, Format::Lime, Format::Raw]);
        // AVML and LiME share a header layout, not a magic: each test accepts its own only.
        let avml_head = avml::AVML_MAGIC.to_le_bytes();
        assert!(!lime::is_lime(&avml_head) && avml::is_avml(&avml_head));
        assert!(!avml::is_avml(&lime::LIME_MAGIC.to_le_bytes()));
        assert_eq!(detect(&avml_head), Some(Format::Avml));
        assert_eq!(detect(&lime::LIME_MAGIC.to_le_bytes()), Some(Format::Lime));
    }

    #[test]
    fn choose_keeps_its_rules() {
        assert_eq!(choose(Some(Format::Raw), Some(Format::Elf)).unwrap(), Format::Raw);
        assert_eq!(choose(Some(Format::Raw), None).unwrap(), Format::Raw);
        assert_eq!(choose(Some(Format::Kdump), Some(Format::FlattenedKdump)).unwrap(), Format::FlattenedKdump);
        assert_eq!(choose(Some(Format::FlattenedKdump), Some(Format::Kdump)).unwrap(), Format::Kdump);
        assert_eq!(choose(None, Some(Format::Lime)).unwrap(), Format::Lime);
        let e = choose(Some(Format::Lime), Some(Format::Avml)).unwrap_err();
        assert_eq!(
            e.message,
            "format \"lime\" was asked for, but the file does not start with its signature (it looks like avml)"
        );
        let e = choose(Some(Format::Elf), None).unwrap_err();
        assert_eq!(
            e.message,
            "format \"elf\" was asked for, but the file does not start with its signature (no known signature at offset 0)"
        );
        let e = choose(None, None).unwrap_err();
        assert!(e.message.starts_with("not a dump this library detects: no ELF, KDUMP, makedumpfile, LiME or AVML"));
    }
}
