//! The kernel's own types for the object walkers: the BTF the kernel keeps in its memory.

use std::sync::Arc;

use super::Dump;
use crate::error::{Error, Result};
use crate::kobj::KernelTypes;

impl Dump {
    /// The kernel's types, read from its in-memory BTF on first use (the object walkers learn
    /// every structure layout from them). Until the BTF reader is wired in, a `NoBtf` error.
    pub fn kernel_types(&self) -> Result<Arc<dyn KernelTypes>> {
        Err(Error::no_btf("reading the kernel's BTF is not wired in yet"))
    }
}
