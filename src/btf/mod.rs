//! The kernel's own type information, BTF (`include/uapi/linux/btf.h`), read from the blob the
//! kernel keeps in memory (`__start_BTF`..`__stop_BTF`) or a module's split BTF.
//!
//! [`Btf::parse`] checks the header and indexes every type once (one offset per type and a
//! sorted name-hash index); everything else reads the borrowed blob on demand: types by id
//! ([`Btf::ty`]), by C spelling ([`Btf::lookup`]), members through anonymous structs and unions
//! ([`Btf::member_at`]), sizes, enumerators. Hostile blobs (unknown kinds, records past the
//! section, type loops) end in typed errors at the blob's guest address.

pub mod header;
mod types;

pub use header::Header;
pub use types::{Btf, IntEncoding, Kind, Member, MemberAt, Type, TypeId};
