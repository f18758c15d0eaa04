//! The kernel's view of a dump: its translator, built from the VMCOREINFO text on first use,
//! and the kernel log and symbols read through it. `kview` does the reading from a memory and
//! a text; this is where the dump hands it both.

use std::sync::Arc;

use super::Dump;
use crate::error::Result;
use crate::kview::kallsyms::{self, KernelSymbols, SymLimits, SymbolSource};
use crate::kview::printk::{self, LogLimits, LogRecord};
use crate::kview::{build_translator, KernelView};
use crate::text::View;

impl Dump {
    /// The kernel's virtual address space, translated through its own page tables (built from the
    /// VMCOREINFO text on first use; a failed build is retried on the next call).
    pub fn kernel_view(&self) -> Result<KernelView<'_>> {
        if let Some(t) = self.kview.get() {
            return Ok(KernelView::new(self, t));
        }
        let blob = self.vmcoreinfo()?;
        let id = self.identity()?;
        let t = build_translator(self, id.e_machine, id.big_endian, blob.bytes()).map_err(|e| blob.place(e))?;
        Ok(KernelView::new(self, self.kview.get_or_init(|| t)))
    }

    /// The kernel view if an earlier call built it (never reads anything).
    pub fn kernel_view_if_built(&self) -> Option<KernelView<'_>> {
        self.kview.get().map(|t| KernelView::new(self, t))
    }

    /// Run `f` on the dump's VMCOREINFO text; its errors located in the text are placed where the
    /// dump holds the text (a file offset, or a physical address for a scanned note).
    pub fn with_vmcoreinfo<R>(&self, f: impl FnOnce(&View<'_>) -> Result<R>) -> Result<R> {
        let blob = self.vmcoreinfo()?;
        let idx = crate::text::Index::build(blob.bytes());
        f(&idx.view(blob.bytes())).map_err(|e| blob.place(e))
    }

    /// The kernel log (oldest record first), read through the kernel view.
    pub fn kernel_log(&self, limits: &LogLimits) -> Result<Vec<LogRecord>> {
        let view = self.kernel_view()?;
        self.with_vmcoreinfo(|vi| printk::read_log(&view, vi, limits))
    }

    /// The kernel's symbols, read through the kernel view.
    pub fn kernel_symbols(&self, limits: &SymLimits) -> Result<KernelSymbols> {
        self.kernel_symbols_from(limits, None)
    }

    /// The kernel's symbols from one source (`None`: VMCOREINFO's keys when present, else a
    /// scan of the kernel image), decoded afresh.
    pub fn kernel_symbols_from(&self, limits: &SymLimits, source: Option<SymbolSource>) -> Result<KernelSymbols> {
        let view = self.kernel_view()?;
        self.with_vmcoreinfo(|vi| kallsyms::read_symbols_from(&view, vi, limits, source))
    }

    /// The kernel's symbols with the default limits, decoded once and shared (a failed decode is
    /// retried on the next call). The object walkers and the Python layer use this one copy.
    pub fn symbols(&self) -> Result<Arc<KernelSymbols>> {
        if let Some(s) = self.symbols.get() {
            return Ok(s.clone());
        }
        let s = Arc::new(self.kernel_symbols(&SymLimits::default())?);
        Ok(self.symbols.get_or_init(|| s).clone())
    }
}
