//! The on-disk layouts of block 0 (`disk_dump_header`), the sub-header (`kdump_sub_header`) and
//! the page descriptor, as `#[repr(C)]` structs over `object::endian` types: the reader parses
//! them ([`header`](super::header)) and the writer ([`crate::write::kdump`]) builds them, so the
//! two cannot drift.

use std::mem::{offset_of, size_of};

use object::endian::{Endian, Endianness, I32, I64, U32, U64};
use object::pod::Pod;

/// Bytes of each `utsname` field (`__NEW_UTS_LEN + 1`).
pub(crate) const UTS_LEN: usize = 65;

/// The ten 32-bit fields that follow the timestamp in every `disk_dump_header` layout.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct HeaderTail<E: Endian> {
    pub status: U32<E>,
    pub block_size: U32<E>,
    pub sub_hdr_size: U32<E>,
    pub bitmap_blocks: U32<E>,
    pub max_mapnr: U32<E>,
    pub total_ram_blocks: U32<E>,
    pub device_blocks: U32<E>,
    pub written_blocks: U32<E>,
    pub current_cpu: U32<E>,
    pub nr_cpus: I32<E>,
}

/// `disk_dump_header` of 64-bit producers: `struct timeval` is two 8-byte longs, aligned to 8.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct DiskDumpHeader64<E: Endian> {
    pub signature: [u8; 8],
    pub header_version: I32<E>,
    pub utsname: [[u8; UTS_LEN]; 6],
    pub _pad: [u8; 6],
    pub tv_sec: I64<E>,
    pub tv_usec: I64<E>,
    pub tail: HeaderTail<E>,
}

/// `disk_dump_header` of 32-bit producers: `struct timeval` is two 4-byte longs, aligned to 4.
/// QEMU's packed header puts a 10-byte timestamp right after utsname instead; both end at the
/// same place, so `status` is at 412 either way (QEMU writes a zero timestamp).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct DiskDumpHeader32<E: Endian> {
    pub signature: [u8; 8],
    pub header_version: I32<E>,
    pub utsname: [[u8; UTS_LEN]; 6],
    pub _pad: [u8; 2],
    pub tv_sec: I32<E>,
    pub tv_usec: I32<E>,
    pub tail: HeaderTail<E>,
}

/// `kdump_sub_header` of 64-bit producers (every 64-bit makedumpfile, QEMU for 64-bit targets).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct SubHeader64<E: Endian> {
    pub phys_base: U64<E>,
    pub dump_level: I32<E>,
    pub split: I32<E>,
    pub start_pfn: U64<E>,
    pub end_pfn: U64<E>,
    pub offset_vmcoreinfo: U64<E>,
    pub size_vmcoreinfo: U64<E>,
    pub offset_note: U64<E>,
    pub note_size: U64<E>,
    pub offset_eraseinfo: U64<E>,
    pub size_eraseinfo: U64<E>,
    pub start_pfn_64: U64<E>,
    pub end_pfn_64: U64<E>,
    pub max_mapnr_64: U64<E>,
}

/// `kdump_sub_header` of 32-bit producers with 4-byte-aligned `off_t`: QEMU's packed
/// `KdumpSubHeader32`, i386 makedumpfile.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct SubHeaderPacked32<E: Endian> {
    pub phys_base: U32<E>,
    pub dump_level: I32<E>,
    pub split: I32<E>,
    pub start_pfn: U32<E>,
    pub end_pfn: U32<E>,
    pub offset_vmcoreinfo: U64<E>,
    pub size_vmcoreinfo: U32<E>,
    pub offset_note: U64<E>,
    pub note_size: U32<E>,
    pub offset_eraseinfo: U64<E>,
    pub size_eraseinfo: U32<E>,
    pub start_pfn_64: U64<E>,
    pub end_pfn_64: U64<E>,
    pub max_mapnr_64: U64<E>,
}

/// `kdump_sub_header` of 32-bit producers with 8-byte-aligned `off_t` and `u64`: makedumpfile
/// built for ARM or MIPS (crash's `arm_kdump_header_adjust`).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct SubHeaderAligned32<E: Endian> {
    pub phys_base: U32<E>,
    pub dump_level: I32<E>,
    pub split: I32<E>,
    pub start_pfn: U32<E>,
    pub end_pfn: U32<E>,
    pub _pad0: [u8; 4],
    pub offset_vmcoreinfo: U64<E>,
    pub size_vmcoreinfo: U32<E>,
    pub _pad1: [u8; 4],
    pub offset_note: U64<E>,
    pub note_size: U32<E>,
    pub _pad2: [u8; 4],
    pub offset_eraseinfo: U64<E>,
    pub size_eraseinfo: U32<E>,
    pub _pad3: [u8; 4],
    pub start_pfn_64: U64<E>,
    pub end_pfn_64: U64<E>,
    pub max_mapnr_64: U64<E>,
}

/// One page descriptor as stored: `{off_t offset; u32 size; u32 flags; u64 page_flags}`.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct PageDescRaw<E: Endian> {
    pub offset: I64<E>,
    pub size: U32<E>,
    pub flags: U32<E>,
    pub page_flags: U64<E>,
}

// SAFETY (the `Pod` contract): each struct is `#[repr(C)]`, made only of byte arrays and
// `object::endian` integers (byte arrays with alignment 1 under object's `unaligned` feature), so
// every byte pattern is valid and there is no padding: explicit `_pad` arrays stand where a C
// compiler would pad, and the size assertions below pin every layout.
macro_rules! endian_pod {
    ($($t:ident),*) => { $(
        #[allow(unsafe_code)]
        unsafe impl<E: Endian> Pod for $t<E> {}
    )* };
}
endian_pod!(HeaderTail, DiskDumpHeader64, DiskDumpHeader32, SubHeader64, SubHeaderPacked32, SubHeaderAligned32, PageDescRaw);

const _: () = {
    assert!(size_of::<HeaderTail<Endianness>>() == 40);
    assert!(size_of::<DiskDumpHeader64<Endianness>>() == 464);
    assert!(offset_of!(DiskDumpHeader64<Endianness>, tail) == 424);
    assert!(size_of::<DiskDumpHeader32<Endianness>>() == 452);
    assert!(offset_of!(DiskDumpHeader32<Endianness>, tail) == 412);
    assert!(size_of::<SubHeader64<Endianness>>() == 104);
    assert!(size_of::<SubHeaderPacked32<Endianness>>() == 80);
    assert!(size_of::<SubHeaderAligned32<Endianness>>() == 96);
    assert!(offset_of!(SubHeaderAligned32<Endianness>, offset_vmcoreinfo) == 24);
    assert!(size_of::<PageDescRaw<Endianness>>() == super::DESC_SIZE as usize);
};
