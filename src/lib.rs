//! vmcoreinfo: find and parse the Linux VMCOREINFO note in guest memory dumps.
//!
//! The core is pyo3-free and split by concern; `python` (behind the `python` feature) is the
//! thin binding layer that maturin builds into `vmcoreinfo._native`.

pub mod error;
pub mod source;
pub mod phys;
pub mod elf;
pub mod notes;
pub mod text;
pub mod fwcfg;
pub mod bitness;
pub mod kdump;
pub mod flattened;
pub mod lime;
pub mod raw;
pub mod scan;
pub mod dump;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, ErrorKind, Result, Rule};
