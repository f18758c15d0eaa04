//! The kernel's own types for the object walkers: the BTF the kernel keeps in its memory, found
//! and parsed once per dump.

use std::sync::Arc;

use super::Dump;
use crate::btf::Btf;
use crate::error::Result;
use crate::kobj::{btf_locate, KernelTypes, RootSource};

impl Dump {
    /// The kernel's BTF, found in its memory (kallsyms `__start_BTF`, or a scan of the kernel
    /// image) and parsed on first use; a failure is retried on the next call.
    pub fn btf(&self) -> Result<Arc<Btf>> {
        Ok(self.btf_located()?.0)
    }

    /// How the kernel's BTF was found (`Symbol` or `Scan`).
    pub fn btf_source(&self) -> Result<RootSource> {
        Ok(self.btf_located()?.1)
    }

    fn btf_located(&self) -> Result<(Arc<Btf>, RootSource)> {
        if let Some(b) = self.btf.get() {
            return Ok(b.clone());
        }
        let view = self.kernel_view()?;
        let (stext, release) = self.with_vmcoreinfo(|vi| {
            Ok((vi.symbol("_stext")?, vi.osrelease().map(|s| s.into_owned()).unwrap_or_else(|| "(unknown release)".into())))
        })?;
        let syms = self.symbols().ok();
        let stext = stext.or_else(|| syms.as_ref().and_then(|s| s.address(b"_stext")));
        let found = btf_locate::locate(&view, syms.as_deref(), stext, &release)?;
        Ok(self.btf.get_or_init(|| (found.btf, found.source)).clone())
    }

    /// The kernel's types, read from its in-memory BTF on first use (the object walkers learn
    /// every structure layout from them).
    pub fn kernel_types(&self) -> Result<Arc<dyn KernelTypes>> {
        Ok(self.btf()?)
    }
}
