//! vmcoreinfo: find and parse the Linux VMCOREINFO note in guest memory dumps.
//!
//! The core is pyo3-free and split by concern; `python` (behind the `python` feature) is the
//! thin binding layer that maturin builds into `vmcoreinfo._native`.

pub mod avml;
pub mod bitness;
pub mod dump;
pub mod elf;
pub mod error;
pub mod flattened;
pub mod fwcfg;
pub mod kdump;
pub mod kview;
pub mod lime;
pub mod mmap;
pub mod notes;
pub mod phys;
pub mod raw;
pub mod scan;
pub mod source;
pub mod text;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Location, Result, Rule};
