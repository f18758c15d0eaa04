//! Typed reads of kernel memory: a value is an address and a BTF type ([`ValueRef`]); members,
//! array elements and pointer targets are values too, and scalars, bytes and C strings are read
//! from the memory behind them. Nothing is read until asked for: `member` and `index` on a
//! struct or array only compute addresses (a pointer is read to follow it).
//!
//! Errors: a type or member the kernel's BTF lacks is a `MissingType` error naming both; memory
//! the kernel does not map (or the dump lacks) is the reader's `Unmapped`/`Absent` error at the
//! guest address; a list that does not close is a `Format` error at the list head.

use std::collections::HashSet;

use crate::btf::{Btf, Kind, TypeId};
use crate::error::{Error, Result};
use crate::kview::VirtMemory;

/// The most bytes `bytes()` (and a whole-value read) returns: kernel objects are far smaller
/// (task_struct is under 16 KiB); a larger type is a corrupt or hostile BTF.
pub const MAX_VALUE_BYTES: u64 = 16 << 20;
/// The longest C string read through a `char *` (a char array is bounded by its own length).
pub const MAX_CSTRING: usize = 4096;
/// The most entries a list walk follows before it reports the list as not closing.
pub const MAX_LIST_ENTRIES: usize = 1 << 20;

/// A value of the kernel: the object of type `type_id` at guest virtual address `addr`. A
/// bitfield member keeps its bit position inside the byte at `addr` (`bit_offset` < 8) and its
/// width (`bit_size`, 0 for an ordinary object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueRef {
    pub addr: u64,
    pub type_id: TypeId,
    pub bit_offset: u8,
    pub bit_size: u32,
}

/// A scalar read from memory, by the kind of its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// Unsigned integers, pointers, unsigned enums (up to 128 bits).
    Unsigned(u128),
    /// Signed integers and signed enums, sign-extended.
    Signed(i128),
    Bool(bool),
    Float(f64),
}

impl Scalar {
    /// The value as an integer (a float truncated; `None` for a float that is not finite).
    pub fn as_i128(self) -> Option<i128> {
        match self {
            Scalar::Unsigned(v) => i128::try_from(v).ok(),
            Scalar::Signed(v) => Some(v),
            Scalar::Bool(b) => Some(i128::from(b)),
            Scalar::Float(f) => f.is_finite().then_some(f as i128),
        }
    }
}

impl ValueRef {
    pub fn new(addr: u64, type_id: TypeId) -> ValueRef {
        ValueRef { addr, type_id, bit_offset: 0, bit_size: 0 }
    }
    pub fn is_bitfield(&self) -> bool {
        self.bit_size != 0
    }
}

/// Typed reads through one memory and one BTF.
#[derive(Clone, Copy)]
pub struct Values<'a> {
    pub mem: &'a dyn VirtMemory,
    pub btf: &'a Btf,
}

impl<'a> Values<'a> {
    pub fn new(mem: &'a dyn VirtMemory, btf: &'a Btf) -> Values<'a> {
        Values { mem, btf }
    }

    /// The value named by a C type spelling at `addr` (`"struct task_struct"`).
    pub fn at(&self, addr: u64, ty: &str) -> Result<ValueRef> {
        Ok(ValueRef::new(addr, self.btf.lookup(ty)?))
    }

    /// The kind of `v`'s type with typedefs and qualifiers followed, and that type's id.
    pub fn kind(&self, v: &ValueRef) -> Result<(Kind, TypeId)> {
        let r = self.btf.resolve(v.type_id)?;
        Ok((self.btf.ty(r)?.kind, r))
    }

    /// C spelling of `v`'s type.
    pub fn type_name(&self, v: &ValueRef) -> String {
        self.btf.type_name(v.type_id)
    }

    fn not_a(&self, v: &ValueRef, what: &str, wanted: &str) -> Error {
        Error::missing_type(format!("{what}: a value of type `{}` at {:#x} is not {wanted}", self.type_name(v), v.addr))
    }

    /// The member at `path` (`"comm"`, `"tasks.next"`, `"mem[0].base"`) of a struct or union,
    /// or of the struct a pointer points to (read through the pointer, as C's `->`).
    pub fn member(&self, v: &ValueRef, path: &str) -> Result<ValueRef> {
        let (kind, r) = self.kind(v)?;
        let base = match kind {
            Kind::Struct | Kind::Union => *v,
            Kind::Ptr => self.deref(v)?,
            _ => return Err(self.not_a(v, &format!("member `{path}`"), "a struct, a union or a pointer to one")),
        };
        if v.is_bitfield() {
            return Err(self.not_a(v, &format!("member `{path}`"), "a struct (it is a bitfield)"));
        }
        let base_type = if kind == Kind::Ptr { base.type_id } else { r };
        let at = self.btf.member_at(base_type, path).map_err(|e| {
            if e.kind == crate::error::ErrorKind::MissingType {
                e
            } else {
                Error::missing_type(format!("member `{path}` of `{}`: {}", self.btf.type_name(base_type), e.message))
            }
        })?;
        let byte = at.bit_offset / 8;
        let addr = base.addr.checked_add(byte).ok_or_else(|| Error::unmapped(base.addr, "member address wraps"))?;
        Ok(ValueRef { addr, type_id: at.type_id, bit_offset: (at.bit_offset % 8) as u8, bit_size: at.bit_size })
    }

    /// Element `i` of an array (bounded by its length when it has one) or of the memory a
    /// pointer points to.
    pub fn index(&self, v: &ValueRef, i: i64) -> Result<ValueRef> {
        let (kind, r) = self.kind(v)?;
        let (elem, base) = match kind {
            Kind::Array => {
                let (elem, _, count) = self.btf.array(r)?;
                if i < 0 || (count != 0 && i as u64 >= u64::from(count)) {
                    return Err(Error::missing_type(format!(
                        "index {i} is outside `{}` ({count} elements) at {:#x}",
                        self.type_name(v),
                        v.addr
                    )));
                }
                (elem, v.addr)
            }
            Kind::Ptr => {
                let p = self.deref(v)?;
                (p.type_id, p.addr)
            }
            _ => return Err(self.not_a(v, &format!("index {i}"), "an array or a pointer")),
        };
        let size = self.btf.size_of(elem)?;
        let off = (i as i128) * i128::from(size);
        let addr = i128::from(base) + off;
        let addr =
            u64::try_from(addr).map_err(|_| Error::unmapped(base, format!("element {i} lies outside the address space")))?;
        Ok(ValueRef::new(addr, elem))
    }

    /// The value a pointer points to (its target type at the address read from the pointer; a
    /// NULL pointer gives a value at 0, whose reads fail at address 0).
    pub fn deref(&self, v: &ValueRef) -> Result<ValueRef> {
        let (kind, r) = self.kind(v)?;
        if kind != Kind::Ptr || v.is_bitfield() {
            return Err(self.not_a(v, "dereference", "a pointer"));
        }
        let target = self.btf.ty(r)?.target().unwrap_or(TypeId(0));
        Ok(ValueRef::new(self.read_pointer(v.addr)?, target))
    }

    /// A kernel pointer at `addr` (the BTF's pointer width).
    pub fn read_pointer(&self, addr: u64) -> Result<u64> {
        match self.btf.pointer_size() {
            4 => self.mem.read_u32(addr).map(u64::from),
            _ => self.mem.read_u64(addr),
        }
    }

    /// Size in bytes of `v` (for a bitfield, the bytes that hold it).
    pub fn size(&self, v: &ValueRef) -> Result<u64> {
        if v.is_bitfield() {
            return Ok((u64::from(v.bit_offset) + u64::from(v.bit_size)).div_ceil(8));
        }
        self.btf.size_of(v.type_id)
    }

    /// The bytes of `v` (at most [`MAX_VALUE_BYTES`]).
    pub fn bytes(&self, v: &ValueRef) -> Result<Vec<u8>> {
        let n = self.size(v)?;
        if n > MAX_VALUE_BYTES {
            return Err(crate::kview::too_big_virt(
                v.addr,
                format!("`{}` is {n} bytes, over the {MAX_VALUE_BYTES}-byte limit of a value read", self.type_name(v)),
            ));
        }
        let mut buf = vec![0u8; n as usize];
        self.mem.read_virt(v.addr, &mut buf)?;
        Ok(buf)
    }

    /// Read `v` as a scalar: integers by their encoding (signed or not, bool, bitfields), enums
    /// (signed when the BTF says so), pointers (unsigned), floats.
    pub fn scalar(&self, v: &ValueRef) -> Result<Scalar> {
        let n = self.size(v)?;
        if n > 16 {
            return Err(self.not_a(v, "reading a scalar", "an integer, enum, pointer or float"));
        }
        let mut buf = [0u8; 17];
        self.mem.read_virt(v.addr, &mut buf[..n as usize])?;
        self.decode(v, &buf[..n as usize])
    }

    /// Decode scalar `v` from `bytes`, the `size(v)` bytes at its address.
    pub fn decode(&self, v: &ValueRef, bytes: &[u8]) -> Result<Scalar> {
        let (kind, r) = self.kind(v)?;
        let be = self.mem.big_endian();
        let raw = |b: &[u8]| -> u128 {
            let mut x: u128 = 0;
            if be {
                for &c in b {
                    x = (x << 8) | u128::from(c);
                }
            } else {
                for &c in b.iter().rev() {
                    x = (x << 8) | u128::from(c);
                }
            }
            x
        };
        let sign = |x: u128, bits: u32| -> i128 {
            if bits == 0 || bits >= 128 {
                return x as i128;
            }
            let shift = 128 - bits;
            ((x << shift) as i128) >> shift
        };
        let mask = |bits: u32| -> u128 {
            if bits >= 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            }
        };
        // Bits of the value inside `bytes` (its offset from the least significant end, width).
        let total = (bytes.len() * 8) as u32;
        let (mut shift, mut width) = (0u32, total);
        if v.is_bitfield() {
            width = v.bit_size;
            shift = if be { total - u32::from(v.bit_offset) - v.bit_size } else { u32::from(v.bit_offset) };
        }
        if bytes.len() > 16 || width > 128 || shift + width > total {
            return Err(self.not_a(v, "reading a scalar", "a scalar of at most 16 bytes"));
        }
        let field = |x: u128| (x >> shift) & mask(width);
        let x = field(raw(bytes));
        Ok(match kind {
            Kind::Int => {
                let e = self.btf.int_encoding(r)?;
                // A legacy encoding's own offset and width inside the integer.
                let (x, bits) = if !v.is_bitfield() && e.bits != 0 && (e.offset != 0 || e.bits < width) {
                    ((x >> e.offset) & mask(e.bits), e.bits)
                } else {
                    (x, width)
                };
                if e.bool {
                    Scalar::Bool(x != 0)
                } else if e.signed {
                    Scalar::Signed(sign(x, bits))
                } else {
                    Scalar::Unsigned(x)
                }
            }
            Kind::Enum | Kind::Enum64 => {
                if self.btf.ty(r)?.kind_flag {
                    Scalar::Signed(sign(x, width))
                } else {
                    Scalar::Unsigned(x)
                }
            }
            Kind::Ptr => Scalar::Unsigned(x),
            Kind::Float => match bytes.len() {
                4 => Scalar::Float(f64::from(f32::from_bits(x as u32))),
                8 => Scalar::Float(f64::from_bits(x as u64)),
                _ => return Err(self.not_a(v, "reading a float", "a 4- or 8-byte float")),
            },
            _ => return Err(self.not_a(v, "reading a scalar", "an integer, enum, pointer or float")),
        })
    }

    /// Read `v` as an integer (see [`Values::scalar`]; a float is an error).
    pub fn int(&self, v: &ValueRef) -> Result<i128> {
        match self.scalar(v)? {
            Scalar::Float(_) => Err(self.not_a(v, "reading an integer", "an integer (it is a float)")),
            s => s.as_i128().ok_or_else(|| self.not_a(v, "reading an integer", "an integer that fits 127 bits")),
        }
    }

    /// A C string: a char array up to its first NUL (or its length), or the NUL-terminated
    /// bytes a `char *` points to (at most `limit` bytes, [`MAX_CSTRING`] by default).
    pub fn string(&self, v: &ValueRef, limit: Option<usize>) -> Result<Vec<u8>> {
        let (kind, r) = self.kind(v)?;
        let elem = match kind {
            Kind::Array => self.btf.array(r)?.0,
            Kind::Ptr => self.btf.ty(r)?.target().unwrap_or(TypeId(0)),
            _ => return Err(self.not_a(v, "reading a string", "a char array or a char pointer")),
        };
        let er = self.btf.resolve(elem)?;
        let et = self.btf.ty(er)?;
        if !(et.kind == Kind::Int && et.size() == Some(1)) {
            return Err(self.not_a(v, "reading a string", "a char array or a char pointer"));
        }
        if kind == Kind::Array {
            let mut b = self.bytes(v)?;
            if let Some(limit) = limit {
                b.truncate(limit);
            }
            if let Some(z) = memchr::memchr(0, &b) {
                b.truncate(z);
            }
            return Ok(b);
        }
        let p = self.read_pointer(v.addr)?;
        self.cstring_at(p, limit.unwrap_or(MAX_CSTRING))
    }

    /// The NUL-terminated bytes at `addr`, at most `limit` (read a page at a time, so a string
    /// that ends just before an unmapped page is read whole).
    pub fn cstring_at(&self, addr: u64, limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < limit {
            let room = 4096 - (at & 0xfff) as usize;
            let n = room.min(limit - out.len());
            let start = out.len();
            out.resize(start + n, 0);
            self.mem.read_virt(at, &mut out[start..])?;
            if let Some(z) = memchr::memchr(0, &out[start..]) {
                out.truncate(start + z);
                return Ok(out);
            }
            at = at.checked_add(n as u64).ok_or_else(|| Error::unmapped(addr, "string runs past the top of memory"))?;
        }
        Ok(out)
    }

    /// Walk the circular `struct list_head` list whose head is at `head`: the addresses of its
    /// nodes (the `list_head` inside each entry), head excluded, in `next` order. A NULL or
    /// repeating `next`, or more than `limit` nodes, is a `Format` error at the head.
    pub fn list_nodes(&self, head: u64, limit: usize) -> Result<Vec<u64>> {
        let lh = self.btf.lookup("struct list_head")?;
        let next_off = self.btf.member_at(lh, "next")?.bit_offset / 8;
        walk_list(self.mem, head, next_off, self.btf.pointer_size(), limit)
    }
}

/// The nodes of the circular list at `head` whose `next` pointer is at `next_off` in each node
/// (see [`Values::list_nodes`]).
pub fn walk_list(mem: &dyn VirtMemory, head: u64, next_off: u64, pointer_size: usize, limit: usize) -> Result<Vec<u64>> {
    let rd = |a: u64| -> Result<u64> {
        let at = a.checked_add(next_off).ok_or_else(|| Error::unmapped(a, "list node address wraps"))?;
        if pointer_size == 4 {
            mem.read_u32(at).map(u64::from)
        } else {
            mem.read_u64(at)
        }
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut cur = rd(head)?;
    while cur != head {
        if cur == 0 {
            let after = out.last().map_or_else(|| "the head".to_string(), |a| format!("node {a:#x}"));
            return Err(crate::kview::bad_virt(
                head,
                format!("the list at {head:#x} does not close: a NULL next pointer after {after} ({} nodes)", out.len()),
            ));
        }
        if !seen.insert(cur) {
            return Err(crate::kview::bad_virt(
                head,
                format!(
                    "the list at {head:#x} does not close: node {cur:#x} comes again after {} nodes without returning to the head",
                    out.len()
                ),
            ));
        }
        if out.len() >= limit {
            return Err(crate::kview::too_big_virt(head, format!("the list at {head:#x} has more than {limit} nodes")));
        }
        out.push(cur);
        cur = rd(cur)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
