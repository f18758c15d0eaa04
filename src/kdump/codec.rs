//! Page codecs: zlib, LZO1X, snappy (raw block format), zstd.

use super::*;

impl KdumpFile {
    /// Turn a page's stored bytes (`data`, as [`check_desc`](Self::check_desc) located them)
    /// into the page (`out`, block_size bytes).
    pub(super) fn decompress(&self, d: &PageDesc, desc_off: u64, pfn: u64, data: &[u8], out: &mut [u8]) -> Result<()> {
        let bs = self.hdr.block_size;
        let pfn_s = if pfn == u64::MAX { String::new() } else { format!("pfn {pfn}: ") };
        let off = d.offset as u64;
        let codec = d.flags & CODEC_BITS;
        if codec == 0 {
            out.copy_from_slice(data);
            return Ok(());
        }
        let fail = |what: &str, detail: String| {
            Error::decompress(desc_off, format!("{pfn_s}{what} page data at {off:#x} ({} bytes): {detail}", d.size))
        };
        match codec {
            DUMP_DH_COMPRESSED_ZLIB => {
                let mut z = flate2::Decompress::new(true);
                match z.decompress(data, out, flate2::FlushDecompress::Finish) {
                    Ok(flate2::Status::StreamEnd) if z.total_out() == u64::from(bs) => Ok(()),
                    Ok(_) => Err(fail("zlib", format!("does not decompress to exactly {bs} bytes"))),
                    Err(e) => Err(fail("zlib", e.to_string())),
                }
            }
            DUMP_DH_COMPRESSED_LZO => decode_lzo(data, out).map_err(|e| match e {
                LzoError::Unsupported => Error::unsupported(
                    Some(desc_off),
                    format!("{pfn_s}LZO page data: this build has no LZO support (cargo feature `lzo`)"),
                ),
                LzoError::Bad(m) => fail("lzo", m),
            }),
            DUMP_DH_COMPRESSED_SNAPPY => {
                match snap::raw::decompress_len(data) {
                    Ok(n) if n == bs as usize => {}
                    Ok(n) => return Err(fail("snappy", format!("declares {n} bytes, not {bs}"))),
                    Err(e) => return Err(fail("snappy", e.to_string())),
                }
                match snap::raw::Decoder::new().decompress(data, out) {
                    Ok(n) if n == bs as usize => Ok(()),
                    Ok(n) => Err(fail("snappy", format!("gave {n} bytes, not {bs}"))),
                    Err(e) => Err(fail("snappy", e.to_string())),
                }
            }
            DUMP_DH_COMPRESSED_ZSTD => match zstd::bulk::decompress_to_buffer(data, out) {
                Ok(n) if n == bs as usize => Ok(()),
                Ok(n) => Err(fail("zstd", format!("gave {n} bytes, not {bs}"))),
                Err(e) => Err(fail("zstd", e.to_string())),
            },
            _ => Err(Error::format(desc_off, format!("{pfn_s}page descriptor flags {:#x} name several codecs", d.flags))),
        }
    }
}

pub(super) enum LzoError {
    #[allow(dead_code)]
    Unsupported,
    #[allow(dead_code)]
    Bad(String),
}

#[cfg(feature = "lzo")]
pub(super) fn decode_lzo(data: &[u8], out: &mut [u8]) -> std::result::Result<(), LzoError> {
    lzo1x::decompress(data, out).map_err(|e| LzoError::Bad(format!("{e:?}")))
}

#[cfg(not(feature = "lzo"))]
pub(super) fn decode_lzo(_data: &[u8], _out: &mut [u8]) -> std::result::Result<(), LzoError> {
    Err(LzoError::Unsupported)
}
