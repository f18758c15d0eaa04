//! vmcoreinfo: find and parse the Linux VMCOREINFO note in guest memory dumps.
//!
//! The core is pyo3-free and split by concern; `python` (behind the `python` feature) is the
//! thin binding layer that maturin builds into `vmcoreinfo._native`.
//!
//! Unsafe code is denied crate-wide. The exceptions are marked where they are, each with its
//! contract: the guarded file mapping and its SIGBUS handler (`mmap`), the `Pod` impls of the
//! kdump header structs (plain integers over `object::endian` types, `kdump/layout.rs`, shared by
//! the reader and the writer), and in the Python layer the buffer protocol of its shared-bytes
//! and mapped-view objects (`python/buffer.rs`, `python/mapview.rs`) and `PyObject_GC_UnTrack`
//! of batch results (`python/batch.rs`).

#![deny(unsafe_code)]

pub mod avml;
pub mod batch;
pub mod bitness;
pub mod btf;
pub mod details;
pub mod dump;
pub mod elf;
pub mod error;
pub mod extent;
pub mod flattened;
pub mod format;
pub mod fwcfg;
pub mod kdump;
pub mod kobj;
pub mod kview;
pub mod lime;
pub mod machine;
pub mod mmap;
pub mod notes;
pub mod phys;
pub mod raw;
pub mod scan;
pub mod source;
pub mod text;
pub mod textblob;
pub mod write;

// The Python layer implements the buffer protocol for zero-copy `memoryview`s over shared bytes.
#[cfg(feature = "python")]
#[allow(unsafe_code)]
mod python;

pub use error::{Error, ErrorKind, Hint, Location, Result, Rule};
