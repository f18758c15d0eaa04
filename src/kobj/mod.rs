//! The kernel's own objects, read from the dump alone: tasks, modules, CPUs and the panic.
//!
//! Walkers here read kernel memory through [`VirtMemory`](crate::kview::VirtMemory) and learn
//! the kernel's structure layouts through [`KernelTypes`] (implemented by the kernel's in-memory
//! BTF, `crate::btf`; tests use small fakes). The roots they start from (`init_task`, `modules`,
//! `__per_cpu_offset`, ...) come from kallsyms or, where kallsyms lacks data symbols, from a
//! search of the kernel's memory; every root says how it was found ([`RootSource`]), nothing is
//! guessed silently. Like `kview`, nothing here knows the dump: `crate::dump` hands it memory,
//! text, symbols and types.

use crate::error::Result;

pub mod btf_locate;
pub mod value;

/// What the object walkers need to know of the kernel's types. Type names are written as C
/// spells them (`"struct task_struct"`, `"union thread_union"`, `"pid_t"`); a member path joins
/// member names with `.` (`"tasks.next"`, `"thread.sp"`), searching through anonymous structs
/// and unions, and may index arrays (`"mem[0].base"`).
///
/// Every lookup that fails is an [`ErrorKind::MissingType`](crate::error::ErrorKind::MissingType)
/// error naming the type and member.
pub trait KernelTypes: Send + Sync {
    /// Byte offset of the member at `path` from the start of `ty` (a bitfield member is an
    /// error: use its containing word).
    fn offset_of(&self, ty: &str, path: &str) -> Result<u64>;
    /// Size in bytes of `ty` (typedefs and qualifiers followed).
    fn size_of(&self, ty: &str) -> Result<u64>;
    /// Size in bytes of the member at `path` in `ty` (e.g. 4 for `task_struct.__state`).
    fn member_size(&self, ty: &str, path: &str) -> Result<u64>;
    /// Whether `ty` has a member at `path` (for layouts that changed between kernel versions).
    fn has_member(&self, ty: &str, path: &str) -> bool;
    /// The value of the enumerator `name` in any enum of the kernel (`MOD_TEXT`, ...).
    fn enumerator(&self, name: &str) -> Option<i64>;
}

/// How a root object was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RootSource {
    /// The address of a kallsyms symbol of that name.
    Symbol,
    /// A `SYMBOL()` line of the VMCOREINFO text.
    Vmcoreinfo,
    /// A search of the kernel's memory for a structure that validates itself (the message of
    /// the walker says which checks it passed).
    Scan,
    /// Derived from another root (e.g. the module list head from a module found by scan).
    Derived,
}

impl RootSource {
    /// A stable, machine-readable name (exposed to Python).
    pub fn name(self) -> &'static str {
        match self {
            RootSource::Symbol => "symbol",
            RootSource::Vmcoreinfo => "vmcoreinfo",
            RootSource::Scan => "scan",
            RootSource::Derived => "derived",
        }
    }
}

/// A root object's address and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    pub addr: u64,
    pub source: RootSource,
}

pub mod cpus;
pub mod modsyms;
pub mod modules;
pub mod panic;
pub mod regs;
pub mod roots;
pub mod tasks;
