//! Page codecs: zlib, LZO1X, snappy (raw block format), zstd. Pure functions over one page's
//! stored bytes; the caller names the page and the descriptor in errors.

use super::{DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD};

/// Each codec flag (in the header's `status` and a descriptor's `flags`) and its name.
pub const CODECS: [(u32, &str); 4] = [
    (DUMP_DH_COMPRESSED_ZLIB, "zlib"),
    (DUMP_DH_COMPRESSED_LZO, "lzo"),
    (DUMP_DH_COMPRESSED_SNAPPY, "snappy"),
    (DUMP_DH_COMPRESSED_ZSTD, "zstd"),
];

/// The names of the codecs whose flags are set in `flags`, in flag order.
pub fn codec_names(flags: u32) -> impl Iterator<Item = &'static str> {
    CODECS.into_iter().filter(move |&(f, _)| flags & f != 0).map(|(_, n)| n)
}

/// Why a page did not decompress.
#[derive(Debug)]
pub(super) enum CodecError {
    /// A codec this build lacks (LZO without the `lzo` feature).
    #[cfg_attr(feature = "lzo", allow(dead_code))]
    Unsupported(&'static str),
    /// The flags name more than one codec.
    Several,
    /// The data is not valid for the codec, or does not give exactly the page.
    Bad(&'static str, String),
}

/// Decompress `data` with the one codec flagged in `codec` into `out`, which it must fill exactly.
pub(super) fn decompress(codec: u32, data: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    let want = out.len();
    match codec {
        DUMP_DH_COMPRESSED_ZLIB => {
            let mut z = flate2::Decompress::new(true);
            match z.decompress(data, out, flate2::FlushDecompress::Finish) {
                Ok(flate2::Status::StreamEnd) if z.total_out() == want as u64 => Ok(()),
                Ok(_) => Err(CodecError::Bad("zlib", format!("does not decompress to exactly {want} bytes"))),
                Err(e) => Err(CodecError::Bad("zlib", e.to_string())),
            }
        }
        DUMP_DH_COMPRESSED_LZO => decode_lzo(data, out),
        DUMP_DH_COMPRESSED_SNAPPY => {
            match snap::raw::decompress_len(data) {
                Ok(n) if n == want => {}
                Ok(n) => return Err(CodecError::Bad("snappy", format!("declares {n} bytes, not {want}"))),
                Err(e) => return Err(CodecError::Bad("snappy", e.to_string())),
            }
            match snap::raw::Decoder::new().decompress(data, out) {
                Ok(n) if n == want => Ok(()),
                Ok(n) => Err(CodecError::Bad("snappy", format!("gave {n} bytes, not {want}"))),
                Err(e) => Err(CodecError::Bad("snappy", e.to_string())),
            }
        }
        DUMP_DH_COMPRESSED_ZSTD => match zstd::bulk::decompress_to_buffer(data, out) {
            Ok(n) if n == want => Ok(()),
            Ok(n) => Err(CodecError::Bad("zstd", format!("gave {n} bytes, not {want}"))),
            Err(e) => Err(CodecError::Bad("zstd", e.to_string())),
        },
        _ => Err(CodecError::Several),
    }
}

#[cfg(feature = "lzo")]
fn decode_lzo(data: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    lzo1x::decompress(data, out).map_err(|e| CodecError::Bad("lzo", format!("{e:?}")))
}

#[cfg(not(feature = "lzo"))]
fn decode_lzo(_data: &[u8], _out: &mut [u8]) -> Result<(), CodecError> {
    Err(CodecError::Unsupported("LZO"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_errors() {
        assert_eq!(codec_names(0x1 | 0x8 | 0x20).collect::<Vec<_>>(), ["zlib", "zstd"]);
        let mut out = [0u8; 64];
        assert!(matches!(decompress(0x3, b"", &mut out), Err(CodecError::Several)));
        assert!(matches!(decompress(DUMP_DH_COMPRESSED_ZLIB, b"junk", &mut out), Err(CodecError::Bad("zlib", _))));
        let z = zstd::bulk::compress(&[7u8; 64], 1).unwrap();
        decompress(DUMP_DH_COMPRESSED_ZSTD, &z, &mut out).unwrap();
        assert_eq!(out, [7u8; 64]);
        assert!(matches!(decompress(DUMP_DH_COMPRESSED_ZSTD, &z, &mut [0u8; 65]), Err(CodecError::Bad("zstd", _))));
    }
}
