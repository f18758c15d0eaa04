//! The kernel's own type information, BTF (`include/uapi/linux/btf.h`), read from the blob the
//! kernel keeps in memory (`__start_BTF`..`__stop_BTF`) or a module's split BTF.

pub mod header;

pub use header::Header;
