//! The kernel's own types for the object walkers: the BTF the kernel keeps in its memory, found
//! and parsed once per dump.

use std::sync::Arc;

use super::Dump;
use crate::btf::Btf;
use crate::error::{Error, Result};
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

    /// The modules whose BTF the kernel holds (its `btf_modules` list, a kallsyms symbol), with
    /// where each blob lies.
    pub fn module_btf_list(&self) -> Result<Vec<btf_locate::ModuleBtfRef>> {
        let btf = self.btf()?;
        let head = self.symbols()?.address(b"btf_modules").ok_or_else(|| {
            Error::missing_symbol(
                "kallsyms has no `btf_modules` (the list of modules' BTF; a data symbol, kept only with CONFIG_KALLSYMS_ALL)",
            )
        })?;
        let view = self.kernel_view()?;
        btf_locate::module_btf_list(&view, &btf, head)
    }

    /// Module `name`'s split BTF (its ids and strings continue the kernel's), read on first use
    /// and kept. `MissingType` when no module of that name has BTF.
    pub fn module_btf(&self, name: &str) -> Result<Arc<Btf>> {
        if let Some(b) = self.module_btf.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(b.clone());
        }
        let list = self.module_btf_list()?;
        let Some(m) = list.iter().find(|m| m.name == name) else {
            return Err(Error::missing_type(format!(
                "no module `{name}` on the kernel's btf_modules list ({} modules have BTF)",
                list.len()
            )));
        };
        let view = self.kernel_view()?;
        let b = Arc::new(btf_locate::read_module_btf(&view, self.btf()?, m)?);
        let mut cache = self.module_btf.lock().unwrap_or_else(|p| p.into_inner());
        Ok(cache.entry(name.to_string()).or_insert(b).clone())
    }

    /// The kernel's types, read from its in-memory BTF on first use (the object walkers learn
    /// every structure layout from them).
    pub fn kernel_types(&self) -> Result<Arc<dyn KernelTypes>> {
        Ok(self.btf()?)
    }
}
