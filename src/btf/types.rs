//! The type section: every type indexed once, looked up by id and by name, and the questions
//! the object walkers ask of it (sizes, member offsets through anonymous members, enumerators).

use std::sync::Arc;

use super::header::{bad_at, rd_u32, Header};
use crate::error::{Error, ErrorKind, Location, Result};

/// How many typedef/qualifier links, nested anonymous members or array dimensions a question may
/// follow before the type graph is taken to loop.
const DEPTH: usize = 64;
/// How many members one search through anonymous structs and unions may read.
const SEARCH_BUDGET: usize = 1 << 20;

/// The kinds of `include/uapi/linux/btf.h` (1–19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(k: u32) -> Option<Kind> {
        use Kind::*;
        Some(match k {
            1 => Int,
            2 => Ptr,
            3 => Array,
            4 => Struct,
            5 => Union,
            6 => Enum,
            7 => Fwd,
            8 => Typedef,
            9 => Volatile,
            10 => Const,
            11 => Restrict,
            12 => Func,
            13 => FuncProto,
            14 => Var,
            15 => Datasec,
            16 => Float,
            17 => DeclTag,
            18 => TypeTag,
            19 => Enum64,
            _ => return None,
        })
    }

    /// The kind's name as the Python layer spells it (`"struct"`, `"func_proto"`, ...).
    pub fn name(self) -> &'static str {
        use Kind::*;
        match self {
            Void => "void",
            Int => "int",
            Ptr => "ptr",
            Array => "array",
            Struct => "struct",
            Union => "union",
            Enum => "enum",
            Fwd => "fwd",
            Typedef => "typedef",
            Volatile => "volatile",
            Const => "const",
            Restrict => "restrict",
            Func => "func",
            FuncProto => "func_proto",
            Var => "var",
            Datasec => "datasec",
            Float => "float",
            DeclTag => "decl_tag",
            TypeTag => "type_tag",
            Enum64 => "enum64",
        }
    }

    /// Bytes of trailer after the 12-byte common record, for `vlen` entries.
    fn trailer(self, vlen: u32) -> u64 {
        use Kind::*;
        let v = u64::from(vlen);
        match self {
            Int | Var | DeclTag => 4,
            Array => 12,
            Struct | Union | Datasec | Enum64 => 12 * v,
            Enum | FuncProto => 8 * v,
            _ => 0,
        }
    }

    /// Kinds whose third word is a type id (not a size).
    fn refers(self) -> bool {
        use Kind::*;
        matches!(self, Ptr | Typedef | Volatile | Const | Restrict | Func | FuncProto | Var | DeclTag | TypeTag)
    }
}

/// A type id (0 is `void`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u32);

/// One type's common record, borrowed from the blob.
#[derive(Debug, Clone, Copy)]
pub struct Type<'a> {
    pub id: TypeId,
    pub kind: Kind,
    /// The name (empty for anonymous types).
    pub name: &'a [u8],
    pub vlen: u32,
    pub kind_flag: bool,
    /// `size` for sized kinds, the referred type id for the others (see [`Type::target`]).
    pub size_or_type: u32,
    /// Offset of the record in its blob (trailer follows at `+ 12`).
    off: usize,
}

impl Type<'_> {
    /// The type this one refers to (pointers, typedefs, qualifiers, functions, variables).
    pub fn target(&self) -> Option<TypeId> {
        self.kind.refers().then_some(TypeId(self.size_or_type))
    }
    /// The byte size of sized kinds (ints, floats, structs, unions, enums, datasecs).
    pub fn size(&self) -> Option<u64> {
        match self.kind {
            Kind::Int | Kind::Float | Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 | Kind::Datasec => {
                Some(u64::from(self.size_or_type))
            }
            _ => None,
        }
    }
    /// The name as text (BTF names are ASCII identifiers; anything else is replaced).
    pub fn name_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.name)
    }
}

/// A struct or union member.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub name: &'a [u8],
    pub type_id: TypeId,
    /// Offset from the start of the containing type, in bits.
    pub bit_offset: u64,
    /// Width of a bitfield in bits (0 when the member is not a bitfield).
    pub bit_size: u32,
}

/// Where a member path leads: its offset in bits from the start of the outer type, its width
/// when it is a bitfield, and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberAt {
    pub bit_offset: u64,
    pub bit_size: u32,
    pub type_id: TypeId,
}

/// Integer encoding of an `INT` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntEncoding {
    pub signed: bool,
    pub char: bool,
    pub bool: bool,
    /// Bit offset and width of the value inside the `size` bytes (legacy bitfield encoding).
    pub offset: u32,
    pub bits: u32,
}

/// A parsed BTF blob: the kernel's (`base` None) or a module's split BTF on top of it.
pub struct Btf {
    data: Arc<[u8]>,
    base_addr: u64,
    hdr: Header,
    pointer_size: usize,
    base: Option<Arc<Btf>>,
    /// The id of this blob's first type (1, or one past the base's last).
    first_id: u32,
    /// String offsets below this are the base's.
    str_base: u32,
    /// Offset in `data` of each of this blob's types, in id order.
    offsets: Vec<u32>,
    /// (hash of the name, id) for every named type, sorted.
    names: Vec<(u64, u32)>,
    /// Who the types belong to, for error messages ("Linux 6.1.0-48-cloud-amd64").
    label: Option<Arc<str>>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("base_addr", &format_args!("{:#x}", self.base_addr))
            .field("bytes", &self.data.len())
            .field("types", &self.offsets.len())
            .field("first_id", &self.first_id)
            .finish()
    }
}

fn fnv(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Btf {
    /// Parse a vmlinux BTF blob that lies at guest virtual address `base_addr` (errors name the
    /// address of the bad record). `pointer_size` is the kernel's pointer width (BTF does not say).
    pub fn parse(data: Arc<[u8]>, base_addr: u64, pointer_size: usize) -> Result<Btf> {
        Self::build(data, base_addr, pointer_size, None)
    }

    /// Parse a module's split BTF on top of `base` (its ids and string offsets continue the base's).
    pub fn parse_split(data: Arc<[u8]>, base_addr: u64, base: Arc<Btf>) -> Result<Btf> {
        let ps = base.pointer_size;
        Self::build(data, base_addr, ps, Some(base))
    }

    fn build(data: Arc<[u8]>, base_addr: u64, pointer_size: usize, base: Option<Arc<Btf>>) -> Result<Btf> {
        let hdr = Header::parse(&data, base_addr)?;
        if base.is_none() {
            hdr.check_base_strings(&data, base_addr)?;
        }
        if let Some(b) = &base {
            if b.hdr.big_endian != hdr.big_endian {
                return Err(bad_at(base_addr, 0, "split BTF: its byte order differs from the base's"));
            }
        }
        let (first_id, str_base) = match &base {
            Some(b) => {
                let ids = b.first_id.checked_add(b.offsets.len() as u32);
                let strs = b.str_base.checked_add(b.hdr.str_len);
                match ids.zip(strs) {
                    Some(v) => v,
                    None => return Err(bad_at(base_addr, 0, "split BTF: the base's ids or strings fill the 32-bit space")),
                }
            }
            None => (1, 0),
        };
        let (t0, t1) = (hdr.type_start(), hdr.type_end());
        // Every type takes at least 12 bytes: no more offsets than that can exist.
        let mut offsets = Vec::with_capacity((t1 - t0) / 12);
        let mut off = t0;
        while off < t1 {
            if t1 - off < 12 {
                return Err(bad_at(
                    base_addr,
                    off as u64,
                    format!("BTF type {}: record cut by the end of the type section", first_id as usize + offsets.len()),
                ));
            }
            let id = first_id as usize + offsets.len();
            let info = rd_u32(&data, off + 4, hdr.big_endian);
            let raw = (info >> 24) & 0x1f;
            let Some(kind) = Kind::from_raw(raw) else {
                return Err(bad_at(
                    base_addr,
                    off as u64,
                    format!("BTF type {id}: unknown kind {raw} (this reader knows kinds 1-19)"),
                ));
            };
            let need = 12 + kind.trailer(info & 0xffff);
            if need > (t1 - off) as u64 {
                return Err(bad_at(
                    base_addr,
                    off as u64,
                    format!("BTF type {id} ({}): {} entries run past the end of the type section", kind.name(), info & 0xffff),
                ));
            }
            if id >= u32::MAX as usize {
                return Err(bad_at(base_addr, off as u64, "BTF: more than 2^32 types"));
            }
            offsets.push(off as u32);
            off += need as usize;
        }
        let mut btf =
            Btf { data, base_addr, hdr, pointer_size, base, first_id, str_base, offsets, names: Vec::new(), label: None };
        let mut names = Vec::with_capacity(btf.offsets.len());
        for i in 0..btf.offsets.len() {
            let off = btf.offsets[i] as usize;
            let name_off = btf.rd(off);
            if name_off != 0 {
                let name = btf.string(name_off, off)?;
                names.push((fnv(name), btf.first_id + i as u32));
            }
        }
        names.sort_unstable();
        btf.names = names;
        btf.check_refs()?;
        Ok(btf)
    }

    /// Every type id a record refers to exists (this blob's or the base's), so later questions
    /// only meet missing ids through loops, never through dangling references.
    fn check_refs(&self) -> Result<()> {
        let max = self.max_id();
        let bad = |off: usize, id: u32, what: &str, r: u32| {
            bad_at(self.base_addr, off as u64, format!("BTF type {id}: {what} refers to type {r}, past the last id {max}"))
        };
        for (i, &off) in self.offsets.iter().enumerate() {
            let off = off as usize;
            let id = self.first_id + i as u32;
            let info = self.rd(off + 4);
            let kind = Kind::from_raw((info >> 24) & 0x1f).expect("kinds are checked at parse");
            let vlen = (info & 0xffff) as usize;
            let third = self.rd(off + 8);
            if kind.refers() && third > max {
                return Err(bad(off, id, kind.name(), third));
            }
            let check = |o: usize, what: &str| {
                let r = self.rd(o);
                if r > max {
                    Err(bad(o, id, what, r))
                } else {
                    Ok(())
                }
            };
            match kind {
                Kind::Array => {
                    check(off + 12, "its element")?;
                    check(off + 16, "its index")?;
                }
                Kind::Struct | Kind::Union => {
                    for m in 0..vlen {
                        check(off + 12 + 12 * m + 4, "a member")?;
                    }
                }
                Kind::FuncProto => {
                    for p in 0..vlen {
                        check(off + 12 + 8 * p + 4, "a parameter")?;
                    }
                }
                Kind::Datasec => {
                    for v in 0..vlen {
                        check(off + 12 + 12 * v, "a variable")?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Name whose types these are, used in error messages (e.g. `Linux 6.1.0-48-cloud-amd64`).
    pub fn with_label(mut self, label: impl Into<Arc<str>>) -> Btf {
        self.label = Some(label.into());
        self
    }

    fn whose(&self) -> String {
        match &self.label {
            Some(l) => format!("the BTF of {l}"),
            None => "the kernel's BTF".to_string(),
        }
    }

    fn rd(&self, off: usize) -> u32 {
        rd_u32(&self.data, off, self.hdr.big_endian)
    }

    /// The blob's bytes (one copy, shared).
    pub fn data(&self) -> &Arc<[u8]> {
        &self.data
    }
    /// Guest virtual address of the blob.
    pub fn base_addr(&self) -> u64 {
        self.base_addr
    }
    /// Kernel pointer width in bytes.
    pub fn pointer_size(&self) -> usize {
        self.pointer_size
    }
    /// The base BTF of a split blob.
    pub fn base(&self) -> Option<&Arc<Btf>> {
        self.base.as_ref()
    }
    /// The last valid type id (ids run from 1, or the base's ids first).
    pub fn max_id(&self) -> u32 {
        self.first_id + self.offsets.len() as u32 - 1
    }
    /// Whether the integers of the blob are big-endian.
    pub fn big_endian(&self) -> bool {
        self.hdr.big_endian
    }

    /// The NUL-terminated string at `name_off` (base strings first for split BTF); `at` is the
    /// record that names it, for the error.
    fn string(&self, name_off: u32, at: usize) -> Result<&[u8]> {
        if name_off < self.str_base {
            return match &self.base {
                Some(b) => b
                    .string(name_off, at)
                    .map_err(|e| Error { location: Some(Location::Virt(self.base_addr.wrapping_add(at as u64))), ..e }),
                None => Err(bad_at(self.base_addr, at as u64, "BTF: string offset below the section")),
            };
        }
        let rel = (name_off - self.str_base) as usize;
        let (s0, s1) = (self.hdr.str_start(), self.hdr.str_end());
        if rel >= s1 - s0 {
            return Err(bad_at(
                self.base_addr,
                at as u64,
                format!("BTF: string offset {name_off} past the string section ({} bytes)", s1 - s0),
            ));
        }
        let s = &self.data[s0 + rel..s1];
        match memchr::memchr(0, s) {
            Some(n) => Ok(&s[..n]),
            None => Err(bad_at(self.base_addr, (s0 + rel) as u64, "BTF: string not terminated inside the string section")),
        }
    }

    /// The type with id `id` (id 0 is `void`).
    pub fn ty(&self, id: TypeId) -> Result<Type<'_>> {
        if id.0 == 0 {
            return Ok(Type { id, kind: Kind::Void, name: b"void", vlen: 0, kind_flag: false, size_or_type: 0, off: 0 });
        }
        if id.0 < self.first_id {
            return match &self.base {
                Some(b) => b.ty(id),
                None => Err(self.no_id(id)),
            };
        }
        let Some(&off) = self.offsets.get((id.0 - self.first_id) as usize) else {
            return Err(self.no_id(id));
        };
        let off = off as usize;
        let info = self.rd(off + 4);
        let kind = Kind::from_raw((info >> 24) & 0x1f).expect("kinds are checked at parse");
        Ok(Type {
            id,
            kind,
            name: self.string(self.rd(off), off)?,
            vlen: info & 0xffff,
            kind_flag: info >> 31 != 0,
            size_or_type: self.rd(off + 8),
            off,
        })
    }

    fn no_id(&self, id: TypeId) -> Error {
        Error::at(
            ErrorKind::Format,
            Some(Location::Virt(self.base_addr)),
            format!("BTF: type id {} does not exist (the blob has ids up to {})", id.0, self.max_id()),
        )
    }

    /// The blob (this one or the base) that holds a type's trailer.
    fn owner(&self, id: TypeId) -> &Btf {
        match &self.base {
            Some(b) if id.0 < self.first_id => b.owner(id),
            _ => self,
        }
    }

    /// The members of a struct or union (empty for other kinds).
    pub fn members(&self, id: TypeId) -> Result<Vec<Member<'_>>> {
        let t = self.ty(id)?;
        if !matches!(t.kind, Kind::Struct | Kind::Union) {
            return Ok(Vec::new());
        }
        let o = self.owner(id);
        let mut out = Vec::with_capacity(t.vlen as usize);
        for i in 0..t.vlen as usize {
            let m = t.off + 12 + 12 * i;
            let raw = o.rd(m + 8);
            let (bit_offset, bit_size) = if t.kind_flag { (raw & 0x00ff_ffff, raw >> 24) } else { (raw, 0) };
            out.push(Member {
                name: o.string(o.rd(m), m)?,
                type_id: TypeId(o.rd(m + 4)),
                bit_offset: u64::from(bit_offset),
                bit_size,
            });
        }
        Ok(out)
    }

    /// An array's element type, index type and element count.
    pub fn array(&self, id: TypeId) -> Result<(TypeId, TypeId, u32)> {
        let t = self.ty(id)?;
        if t.kind != Kind::Array {
            return Err(self.not_kind(&t, "an array"));
        }
        let o = self.owner(id);
        Ok((TypeId(o.rd(t.off + 12)), TypeId(o.rd(t.off + 16)), o.rd(t.off + 20)))
    }

    /// The integer encoding of an INT type.
    pub fn int_encoding(&self, id: TypeId) -> Result<IntEncoding> {
        let t = self.ty(id)?;
        if t.kind != Kind::Int {
            return Err(self.not_kind(&t, "an integer"));
        }
        let e = self.owner(id).rd(t.off + 12);
        Ok(IntEncoding {
            signed: (e >> 24) & 1 != 0,
            char: (e >> 24) & 2 != 0,
            bool: (e >> 24) & 4 != 0,
            offset: (e >> 16) & 0xff,
            bits: e & 0xff,
        })
    }

    /// The enumerators of an ENUM or ENUM64 type, with their values (signed when the type says so).
    pub fn enumerators(&self, id: TypeId) -> Result<Vec<(&[u8], i128)>> {
        let t = self.ty(id)?;
        let o = self.owner(id);
        let mut out = Vec::with_capacity(t.vlen as usize);
        match t.kind {
            Kind::Enum => {
                for i in 0..t.vlen as usize {
                    let e = t.off + 12 + 8 * i;
                    let raw = o.rd(e + 4);
                    let v = if t.kind_flag { i128::from(raw as i32) } else { i128::from(raw) };
                    out.push((o.string(o.rd(e), e)?, v));
                }
            }
            Kind::Enum64 => {
                for i in 0..t.vlen as usize {
                    let e = t.off + 12 + 12 * i;
                    let raw = u64::from(o.rd(e + 4)) | u64::from(o.rd(e + 8)) << 32;
                    let v = if t.kind_flag { i128::from(raw as i64) } else { i128::from(raw) };
                    out.push((o.string(o.rd(e), e)?, v));
                }
            }
            _ => return Err(self.not_kind(&t, "an enum")),
        }
        Ok(out)
    }

    /// The parameters of a FUNC_PROTO (name, type); the return type is its target.
    pub fn params(&self, id: TypeId) -> Result<Vec<(&[u8], TypeId)>> {
        let t = self.ty(id)?;
        if t.kind != Kind::FuncProto {
            return Err(self.not_kind(&t, "a function prototype"));
        }
        let o = self.owner(id);
        (0..t.vlen as usize)
            .map(|i| {
                let p = t.off + 12 + 8 * i;
                Ok((o.string(o.rd(p), p)?, TypeId(o.rd(p + 4))))
            })
            .collect()
    }

    /// The variables of a DATASEC: (var type id, offset, size).
    pub fn datasec_vars(&self, id: TypeId) -> Result<Vec<(TypeId, u32, u32)>> {
        let t = self.ty(id)?;
        if t.kind != Kind::Datasec {
            return Err(self.not_kind(&t, "a data section"));
        }
        let o = self.owner(id);
        Ok((0..t.vlen as usize)
            .map(|i| {
                let v = t.off + 12 + 12 * i;
                (TypeId(o.rd(v)), o.rd(v + 4), o.rd(v + 8))
            })
            .collect())
    }

    fn not_kind(&self, t: &Type<'_>, what: &str) -> Error {
        Error::missing_type(format!("{}: type {} ({} {}) is not {what}", self.whose(), t.id.0, t.kind.name(), t.name_str()))
    }

    /// Every type id with this exact name (this blob's and the base's).
    pub fn find_all(&self, name: &[u8]) -> Vec<TypeId> {
        let mut out = self.base.as_ref().map_or_else(Vec::new, |b| b.find_all(name));
        let h = fnv(name);
        let start = self.names.partition_point(|&(k, _)| k < h);
        for &(k, id) in &self.names[start..] {
            if k != h {
                break;
            }
            if self.ty(TypeId(id)).is_ok_and(|t| t.name == name) {
                out.push(TypeId(id));
            }
        }
        out
    }

    /// The first type of this name and kind (a complete struct before a forward declaration).
    pub fn find(&self, name: &[u8], kind: Kind) -> Option<TypeId> {
        self.find_all(name).into_iter().find(|&id| self.ty(id).is_ok_and(|t| t.kind == kind))
    }

    /// A type by its C spelling: `struct task_struct`, `union thread_union`, `enum pid_type`,
    /// typedef and base type names (`pid_t`, `unsigned long`, `char`), and pointers (`char *`).
    pub fn lookup(&self, spelling: &str) -> Result<TypeId> {
        self.lookup_depth(spelling, spelling, 0)
    }

    fn lookup_depth(&self, spelling: &str, whole: &str, depth: usize) -> Result<TypeId> {
        let s = spelling.trim();
        if let Some(inner) = s.strip_suffix('*') {
            if depth >= 8 {
                return Err(self.missing(whole, "more than 8 levels of pointer"));
            }
            let target = self.lookup_depth(inner, whole, depth + 1)?;
            return self.pointer_to(target).ok_or_else(|| self.missing(whole, "no pointer type to it"));
        }
        let words: Vec<&str> = s.split_whitespace().collect();
        let (kinds, name): (&[Kind], String) = match words.as_slice() {
            ["struct", n] => (&[Kind::Struct, Kind::Fwd], n.to_string()),
            ["union", n] => (&[Kind::Union, Kind::Fwd], n.to_string()),
            ["enum", n] => (&[Kind::Enum, Kind::Enum64, Kind::Fwd], n.to_string()),
            _ => (
                &[Kind::Typedef, Kind::Int, Kind::Float, Kind::Struct, Kind::Union, Kind::Enum, Kind::Enum64],
                base_type_name(&words),
            ),
        };
        let all = self.find_all(name.as_bytes());
        for k in kinds {
            if let Some(&id) = all.iter().find(|&&id| self.ty(id).is_ok_and(|t| t.kind == *k)) {
                return Ok(id);
            }
        }
        if s == "void" {
            return Ok(TypeId(0));
        }
        Err(self.missing(spelling, "no such type"))
    }

    fn missing(&self, spelling: &str, why: &str) -> Error {
        Error::missing_type(format!("{} has no type `{spelling}` ({why})", self.whose()))
    }

    /// A PTR type whose target is `target` (after the base's).
    pub fn pointer_to(&self, target: TypeId) -> Option<TypeId> {
        if let Some(p) = self.base.as_ref().and_then(|b| b.pointer_to(target)) {
            return Some(p);
        }
        (0..self.offsets.len() as u32)
            .map(|i| TypeId(self.first_id + i))
            .find(|&id| self.ty(id).is_ok_and(|t| t.kind == Kind::Ptr && t.size_or_type == target.0))
    }

    /// Follow typedefs and qualifiers (const, volatile, restrict, type tags) to the type beneath.
    pub fn resolve(&self, id: TypeId) -> Result<TypeId> {
        let mut cur = id;
        for _ in 0..DEPTH {
            let t = self.ty(cur)?;
            match t.kind {
                Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag => cur = TypeId(t.size_or_type),
                _ => return Ok(cur),
            }
        }
        Err(self.looped(id))
    }

    fn looped(&self, id: TypeId) -> Error {
        Error::at(
            ErrorKind::Format,
            Some(Location::Virt(self.base_addr)),
            format!("BTF: type {} refers back to itself (more than {DEPTH} links)", id.0),
        )
    }

    /// The size of a type in bytes.
    pub fn size_of(&self, id: TypeId) -> Result<u64> {
        self.size_depth(id, 0)
    }

    fn size_depth(&self, id: TypeId, depth: usize) -> Result<u64> {
        if depth > DEPTH {
            return Err(self.looped(id));
        }
        let r = self.resolve(id)?;
        let t = self.ty(r)?;
        match t.kind {
            Kind::Ptr => Ok(self.pointer_size as u64),
            Kind::Array => {
                let (elem, _, n) = self.array(r)?;
                let es = self.size_depth(elem, depth + 1)?;
                es.checked_mul(u64::from(n)).ok_or_else(|| {
                    Error::at(
                        ErrorKind::Format,
                        Some(Location::Virt(self.base_addr)),
                        format!("BTF: the size of array type {} overflows 64 bits", r.0),
                    )
                })
            }
            _ => t.size().ok_or_else(|| {
                Error::missing_type(format!("{}: type {} ({} {}) has no size", self.whose(), r.0, t.kind.name(), t.name_str()))
            }),
        }
    }

    /// Whether `id`, resolved, is a struct or union, with its name for messages.
    fn spelled(&self, id: TypeId) -> String {
        match self.ty(id) {
            Ok(t) if t.name.is_empty() => format!("(anonymous {})", t.kind.name()),
            Ok(t) => match t.kind {
                Kind::Struct | Kind::Union | Kind::Enum => format!("{} {}", t.kind.name(), t.name_str()),
                _ => t.name_str().into_owned(),
            },
            Err(_) => format!("type {}", id.0),
        }
    }

    /// The member named `name` of struct/union `id`, searched through anonymous members, with its
    /// offset from the start of `id` in bits.
    pub fn member(&self, id: TypeId, name: &[u8]) -> Result<Option<MemberAt>> {
        // Anonymous members may share types: bound the whole search, not only its depth.
        let mut budget = SEARCH_BUDGET;
        self.member_depth(id, name, 0, &mut budget)
    }

    fn member_depth(&self, id: TypeId, name: &[u8], depth: usize, budget: &mut usize) -> Result<Option<MemberAt>> {
        if depth > DEPTH {
            return Err(self.looped(id));
        }
        let r = self.resolve(id)?;
        let members = self.members(r)?;
        if members.len() >= *budget {
            return Err(Error::at(
                ErrorKind::Format,
                Some(Location::Virt(self.base_addr)),
                format!("BTF: the anonymous members under type {} take more than {SEARCH_BUDGET} members to search", id.0),
            ));
        }
        *budget -= members.len() + 1;
        for m in members {
            if m.name == name {
                return Ok(Some(MemberAt { bit_offset: m.bit_offset, bit_size: m.bit_size, type_id: m.type_id }));
            }
            if m.name.is_empty() {
                if let Some(inner) = self.member_depth(m.type_id, name, depth + 1, budget)? {
                    let bit_offset = m.bit_offset.checked_add(inner.bit_offset).ok_or_else(|| self.looped(id))?;
                    return Ok(Some(MemberAt { bit_offset, ..inner }));
                }
            }
        }
        Ok(None)
    }

    /// Follow a member path (`tasks.next`, `thread.sp`, `mem[0].base`) from type `id`.
    pub fn member_at(&self, id: TypeId, path: &str) -> Result<MemberAt> {
        let overflow = |path: &str| Error::missing_type(format!("member path `{path}`: offset overflows"));
        let mut at = MemberAt { bit_offset: 0, bit_size: 0, type_id: id };
        for (n, part) in path.split('.').enumerate() {
            if n >= DEPTH {
                return Err(Error::missing_type(format!("member path `{path}` is too long")));
            }
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                let r = self.resolve(at.type_id)?;
                let m = self.member(r, name.as_bytes())?.ok_or_else(|| {
                    Error::missing_type(format!("{} has no member `{name}` in {} (path `{path}`)", self.whose(), self.spelled(r)))
                })?;
                let bit_offset = at.bit_offset.checked_add(m.bit_offset).ok_or_else(|| overflow(path))?;
                at = MemberAt { bit_offset, ..m };
            }
            while let Some(r0) = rest.strip_prefix('[') {
                let close = r0.find(']').ok_or_else(|| Error::missing_type(format!("member path `{path}`: `[` without `]`")))?;
                let idx: u64 = r0[..close]
                    .trim()
                    .parse()
                    .map_err(|_| Error::missing_type(format!("member path `{path}`: bad index `{}`", &r0[..close])))?;
                rest = &r0[close + 1..];
                let r = self.resolve(at.type_id)?;
                let (elem, _, count) = self
                    .array(r)
                    .map_err(|_| Error::missing_type(format!("member path `{path}`: `{}` is not an array", self.spelled(r))))?;
                if idx >= u64::from(count) && count != 0 {
                    return Err(Error::missing_type(format!(
                        "member path `{path}`: index {idx} is past the array's {count} elements"
                    )));
                }
                let es = self.size_of(elem)?;
                let bits = idx.checked_mul(es).and_then(|b| b.checked_mul(8)).ok_or_else(|| overflow(path))?;
                let bit_offset = at.bit_offset.checked_add(bits).ok_or_else(|| overflow(path))?;
                at = MemberAt { bit_offset, bit_size: 0, type_id: elem };
            }
            if !rest.is_empty() {
                return Err(Error::missing_type(format!("member path `{path}`: cannot read `{rest}`")));
            }
        }
        Ok(at)
    }

    /// The value of enumerator `name` in any enum of the kernel.
    pub fn enumerator(&self, name: &str) -> Option<i128> {
        for i in 0..self.offsets.len() as u32 {
            let id = TypeId(self.first_id + i);
            let Ok(t) = self.ty(id) else { continue };
            if !matches!(t.kind, Kind::Enum | Kind::Enum64) {
                continue;
            }
            if let Ok(es) = self.enumerators(id) {
                if let Some(&(_, v)) = es.iter().find(|(n, _)| *n == name.as_bytes()) {
                    return Some(v);
                }
            }
        }
        self.base.as_ref().and_then(|b| b.enumerator(name))
    }

    /// Number of types in this blob (not counting the base's).
    pub fn len(&self) -> usize {
        self.offsets.len()
    }
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
    /// The ids of this blob's types.
    pub fn ids(&self) -> impl Iterator<Item = TypeId> + '_ {
        (0..self.offsets.len() as u32).map(|i| TypeId(self.first_id + i))
    }

    /// A type's name as C spells it (`struct task_struct`, `char *`, `int[16]`, `pid_t`).
    pub fn type_name(&self, id: TypeId) -> String {
        self.name_depth(id, 0)
    }

    fn name_depth(&self, id: TypeId, depth: usize) -> String {
        if depth > 16 {
            return "...".into();
        }
        let Ok(t) = self.ty(id) else { return format!("<type {}>", id.0) };
        match t.kind {
            Kind::Ptr => format!("{} *", self.name_depth(TypeId(t.size_or_type), depth + 1)),
            Kind::Const | Kind::Volatile | Kind::Restrict => {
                format!("{} {}", t.kind.name(), self.name_depth(TypeId(t.size_or_type), depth + 1))
            }
            Kind::TypeTag => self.name_depth(TypeId(t.size_or_type), depth + 1),
            Kind::Array => match self.array(id) {
                Ok((e, _, n)) => format!("{}[{n}]", self.name_depth(e, depth + 1)),
                Err(_) => "<array>".into(),
            },
            Kind::FuncProto => "function".into(),
            _ => self.spelled(id),
        }
    }
}

/// BTF names base types as DWARF does (`long unsigned int`); accept the common C spellings.
fn base_type_name(words: &[&str]) -> String {
    let s = words.join(" ");
    match s.as_str() {
        "unsigned long" => "long unsigned int",
        "unsigned long int" => "long unsigned int",
        "long" => "long int",
        "unsigned long long" => "long long unsigned int",
        "long long" => "long long int",
        "unsigned short" => "short unsigned int",
        "short" => "short int",
        "unsigned" => "unsigned int",
        "signed char" => "signed char",
        _ => return s,
    }
    .to_string()
}

impl crate::kobj::KernelTypes for Btf {
    fn offset_of(&self, ty: &str, path: &str) -> Result<u64> {
        let id = self.lookup(ty)?;
        let at = self.member_at(id, path)?;
        if at.bit_size != 0 || at.bit_offset % 8 != 0 {
            return Err(Error::missing_type(format!(
                "{}: `{path}` in {ty} is a bitfield (bit {}, {} bits)",
                self.whose(),
                at.bit_offset,
                at.bit_size
            )));
        }
        Ok(at.bit_offset / 8)
    }
    fn size_of(&self, ty: &str) -> Result<u64> {
        let id = self.lookup(ty)?;
        Btf::size_of(self, id)
    }
    fn member_size(&self, ty: &str, path: &str) -> Result<u64> {
        let id = self.lookup(ty)?;
        let at = self.member_at(id, path)?;
        Btf::size_of(self, at.type_id)
    }
    fn has_member(&self, ty: &str, path: &str) -> bool {
        self.lookup(ty).and_then(|id| self.member_at(id, path)).is_ok()
    }
    fn enumerator(&self, name: &str) -> Option<i64> {
        Btf::enumerator(self, name).and_then(|v| i64::try_from(v).ok())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
