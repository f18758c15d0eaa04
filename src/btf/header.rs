//! The BTF header (`struct btf_header` of `include/uapi/linux/btf.h`): 24 bytes
//! `{magic u16, version u8, flags u8, hdr_len u32, type_off u32, type_len u32, str_off u32,
//! str_len u32}`, the section offsets relative to the end of the header.

use crate::error::{Error, ErrorKind, Location, Result};

/// The magic number, as the kernel's native byte order writes it.
pub const BTF_MAGIC: u16 = 0xEB9F;
/// The only version the kernel has defined.
pub const BTF_VERSION: u8 = 1;
/// The size of the header this reader knows (a longer `hdr_len` is allowed, a shorter one not).
pub const HEADER_LEN: usize = 24;

/// A validated BTF header: both sections lie inside the blob it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The blob's integers are big-endian (the magic read as `eb 9f`).
    pub big_endian: bool,
    pub version: u8,
    pub flags: u8,
    pub hdr_len: u32,
    pub type_off: u32,
    pub type_len: u32,
    pub str_off: u32,
    pub str_len: u32,
}

/// A Format error at `base_addr + off`.
pub(crate) fn bad_at(base_addr: u64, off: u64, msg: impl Into<String>) -> Error {
    Error::at(ErrorKind::Format, Some(Location::Virt(base_addr.wrapping_add(off))), msg)
}

pub fn rd_u32(b: &[u8], off: usize, big_endian: bool) -> u32 {
    let a = [b[off], b[off + 1], b[off + 2], b[off + 3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

impl Header {
    /// Parse and validate the header of the BTF blob `blob`, which lies in guest memory at
    /// virtual address `base_addr` (errors name the address of the bad field).
    pub fn parse(blob: &[u8], base_addr: u64) -> Result<Header> {
        if blob.len() < HEADER_LEN {
            return Err(Error::at(
                ErrorKind::Truncated,
                Some(Location::Virt(base_addr)),
                format!("BTF header: {} bytes, shorter than the {HEADER_LEN}-byte header", blob.len()),
            ));
        }
        let big_endian = match [blob[0], blob[1]] {
            [0x9f, 0xeb] => false,
            [0xeb, 0x9f] => true,
            m => {
                return Err(bad_at(
                    base_addr,
                    0,
                    format!("BTF header: magic {:02x} {:02x}, not 0xEB9F in either byte order", m[0], m[1]),
                ))
            }
        };
        let version = blob[2];
        if version != BTF_VERSION {
            return Err(bad_at(base_addr, 2, format!("BTF header: version {version}, only {BTF_VERSION} is known")));
        }
        let flags = blob[3];
        let u = |off: usize| rd_u32(blob, off, big_endian);
        let hdr_len = u(4);
        let (type_off, type_len, str_off, str_len) = (u(8), u(12), u(16), u(20));
        if (hdr_len as usize) < HEADER_LEN {
            return Err(bad_at(base_addr, 4, format!("BTF header: hdr_len {hdr_len} is less than {HEADER_LEN}")));
        }
        if hdr_len as u64 > blob.len() as u64 {
            return Err(bad_at(
                base_addr,
                4,
                format!("BTF header: hdr_len {hdr_len} is past the end of the {}-byte blob", blob.len()),
            ));
        }
        // A longer header than ours must be zero beyond what we know (as the kernel checks).
        if blob[HEADER_LEN..hdr_len as usize].iter().any(|&b| b != 0) {
            return Err(bad_at(base_addr, HEADER_LEN as u64, "BTF header: unknown non-zero header bytes past 24"));
        }
        let h = Header { big_endian, version, flags, hdr_len, type_off, type_len, str_off, str_len };
        let len = blob.len() as u64;
        let check = |name: &str, field_off: u64, off: u32, size: u32| -> Result<()> {
            let start = hdr_len as u64 + off as u64; // u32 + u32 cannot overflow u64
            let end = start + size as u64;
            if end > len {
                return Err(bad_at(
                    base_addr,
                    field_off,
                    format!(
                        "BTF header: {name} section [{start:#x}, {end:#x}) (off {off}, len {size}) is past the end of the {len}-byte blob"
                    ),
                ));
            }
            Ok(())
        };
        check("type", 8, type_off, type_len)?;
        check("string", 16, str_off, str_len)?;
        if type_off % 4 != 0 {
            return Err(bad_at(base_addr, 8, format!("BTF header: type_off {type_off} is not 4-byte aligned")));
        }
        // The sections must not overlap (the kernel requires it too).
        let (t0, t1) = (type_off as u64, type_off as u64 + type_len as u64);
        let (s0, s1) = (str_off as u64, str_off as u64 + str_len as u64);
        if t0 < s1 && s0 < t1 {
            return Err(bad_at(
                base_addr,
                16,
                format!("BTF header: the type section [{t0}, {t1}) and the string section [{s0}, {s1}) overlap"),
            ));
        }
        Ok(h)
    }

    /// Base BTF's string section is not empty and starts with the empty string (offset 0 is "");
    /// split BTF's strings continue the base's: it may be empty or start with any string (the
    /// kernel's checks are the same).
    pub fn check_base_strings(&self, blob: &[u8], base_addr: u64) -> Result<()> {
        if self.str_len == 0 {
            return Err(bad_at(base_addr, 20, "BTF header: str_len 0 (the string section must hold at least a NUL)"));
        }
        let at = self.str_start();
        if blob[at] != 0 {
            return Err(bad_at(base_addr, at as u64, format!("BTF string section starts with byte {:#04x}, not NUL", blob[at])));
        }
        Ok(())
    }

    /// Offset in the blob of the type section's first byte.
    pub fn type_start(&self) -> usize {
        self.hdr_len as usize + self.type_off as usize
    }
    /// Offset in the blob just past the type section.
    pub fn type_end(&self) -> usize {
        self.type_start() + self.type_len as usize
    }
    /// Offset in the blob of the string section's first byte.
    pub fn str_start(&self) -> usize {
        self.hdr_len as usize + self.str_off as usize
    }
    /// Offset in the blob just past the string section.
    pub fn str_end(&self) -> usize {
        self.str_start() + self.str_len as usize
    }

    /// The blob's length as the header declares it: the header plus the end of the later
    /// section (a scanner uses it to find where a blob in memory ends).
    pub fn total_len(&self) -> u64 {
        let t = self.type_off as u64 + self.type_len as u64;
        let s = self.str_off as u64 + self.str_len as u64;
        self.hdr_len as u64 + t.max(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(be: bool, fields: [u32; 5], extra: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let w16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
        let w32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
        w16(&mut v, BTF_MAGIC);
        v.push(1);
        v.push(0);
        for f in fields {
            w32(&mut v, f);
        }
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn parses_both_byte_orders() {
        for be in [false, true] {
            // types: 12 bytes of zeros (not interpreted here), strings "\0a\0"
            let mut b = hdr(be, [24, 0, 12, 12, 3], &[0; 12]);
            b.extend_from_slice(b"\0a\0");
            let h = Header::parse(&b, 0x1000).unwrap();
            assert_eq!(h.big_endian, be);
            assert_eq!((h.type_start(), h.type_end(), h.str_start(), h.str_end()), (24, 36, 36, 39));
            assert_eq!(h.total_len(), 39);
            // trailing bytes past the blob do not change total_len
            b.extend_from_slice(&[0xff; 8]);
            assert_eq!(Header::parse(&b, 0).unwrap().total_len(), 39);
        }
    }

    #[test]
    fn rejects_bad_fields_with_their_address() {
        let good = {
            let mut b = hdr(false, [24, 0, 0, 0, 1], &[]);
            b.push(0);
            b
        };
        assert!(Header::parse(&good, 0).is_ok());
        let at = |b: &[u8]| {
            let e = Header::parse(b, 0x1000).unwrap_err();
            (e.kind, e.location, e.message)
        };
        let (k, l, m) = at(&good[..10]);
        assert_eq!((k, l), (ErrorKind::Truncated, Some(Location::Virt(0x1000))));
        assert!(m.contains("header"), "{m}");
        let mut b = good.clone();
        b[0] = 0;
        let (k, l, m) = at(&b);
        assert_eq!((k, l), (ErrorKind::Format, Some(Location::Virt(0x1000))));
        assert!(m.contains("magic"), "{m}");
        let mut b = good.clone();
        b[2] = 2;
        let (_, l, m) = at(&b);
        assert_eq!(l, Some(Location::Virt(0x1002)));
        assert!(m.contains("version 2"), "{m}");
        let mut b = good.clone();
        b[4] = 20;
        let (_, l, m) = at(&b);
        assert_eq!(l, Some(Location::Virt(0x1004)));
        assert!(m.contains("hdr_len 20"), "{m}");
        let mut b = good.clone();
        b[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert!(at(&b).2.contains("hdr_len 1000"));
        // type section past the blob, with offsets near u32::MAX (no overflow)
        let mut b = hdr(false, [24, u32::MAX, u32::MAX, 0, 1], &[]);
        b.push(0);
        let (_, l, m) = at(&b);
        assert_eq!(l, Some(Location::Virt(0x1008)));
        assert!(m.contains("type section"), "{m}");
        let mut b = hdr(false, [24, 0, 0, 0, 2], &[]);
        b.push(0);
        let (_, l, m) = at(&b);
        assert_eq!(l, Some(Location::Virt(0x1010)));
        assert!(m.contains("string section"), "{m}");
        // base BTF's strings start with "", split BTF's need not
        let mut b = hdr(false, [24, 0, 0, 0, 1], &[]);
        b.push(b'x');
        let h = Header::parse(&b, 0x1000).unwrap();
        let e = h.check_base_strings(&b, 0x1000).unwrap_err();
        assert_eq!(e.location, Some(Location::Virt(0x1018)));
        assert!(e.message.contains("NUL"), "{}", e.message);
        let b = hdr(false, [24, 0, 0, 0, 0], &[0]);
        let e = Header::parse(&b, 0).unwrap().check_base_strings(&b, 0).unwrap_err();
        assert!(e.message.contains("str_len 0"), "{}", e.message);
        // overlapping sections
        let b = hdr(false, [24, 0, 4, 0, 4], &[0; 4]);
        assert!(at(&b).2.contains("overlap"));
        // a longer header with non-zero unknown bytes
        let mut b = hdr(false, [28, 0, 0, 0, 1], &[1, 0, 0, 0]);
        b.push(0);
        assert!(at(&b).2.contains("past 24"));
        let mut b = hdr(false, [28, 0, 0, 0, 1], &[0, 0, 0, 0]);
        b.push(0);
        assert_eq!(Header::parse(&b, 0).unwrap().str_start(), 28);
    }
}
