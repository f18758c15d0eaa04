#!/usr/bin/env python3
"""Make small, reproducible kdump-compressed test fixtures from real dumps.

Three subcommands; all read and write plain files and never modify their input.

``reduce IN OUT [--paddr ADDR]... [--pfn N]... [--per-kind K] [--run N] [--budget BYTES]``
    IN is a real kdump-compressed file (plain, not flattened; little-endian, 64-bit header
    layout -- every real producer on this machine writes that). OUT keeps only a handful of
    pages and is otherwise the real file:

    * Kept verbatim: block 0 (the whole ``disk_dump_header`` block) and the ``sub_hdr_size``
      sub-header blocks (so the sub-header, the ELF notes and the VMCOREINFO text, which live
      there, are byte-identical, at the same offsets), and every kept page's data bytes (still
      compressed exactly as the producer compressed them) and its descriptor's ``size``,
      ``flags`` and ``page_flags``.
    * Changed: ``max_mapnr`` (the 32-bit header field, and ``max_mapnr_64`` in a version-6
      sub-header) becomes the smallest multiple of ``8 * block_size`` that covers the highest
      kept pfn (never more than the original); ``bitmap_blocks`` shrinks to match. Bitmap 1 is
      the original bitmap 1 cut to the new max_mapnr (so "exists but excluded" pages stay
      visible); bitmap 2 has only the kept pfns. Descriptors are rewritten for the kept pfns in
      pfn order with ``offset`` pointing at the copied data. Page data blocks are copied once
      each in the order of their original offsets; descriptors that shared a data block in the
      original (QEMU's and makedumpfile's shared zero page) share it in OUT too.
    * Kept pages: the pfns holding the given physical addresses (``--paddr``, e.g. the
      VMCOREINFO note's address from the guest's ``/sys/kernel/vmcoreinfo``) and ``--pfn``s; the
      first ``--per-kind`` pages (in pfn order) of each kind: shared zero block, stored raw,
      compressed; and one run of ``--run`` consecutive present pfns (so a reader's parallel
      path is exercised): the first whose non-shared data fits in ``--budget`` bytes and is at
      least half non-shared pages, else the one with the least non-shared data.

``flatten IN OUT --style md|qemu``
    Write IN (a plain kdump file) in makedumpfile's flattened format, laid out like the real
    producers' files: a 4096-byte header ("makedumpfile", type 1, version 1, big-endian), then
    ``{be64 offset, be64 size, data}`` records and the ``-1/-1`` end record. Records: the
    ``disk_dump_header`` struct only (464 bytes; the rest of block 0 is a hole, as in real
    files), then the sub-header struct (104 bytes) and the notes blob (md: notes first, as
    makedumpfile -F does; qemu: sub-header first), one record per bitmap block (md: bitmap 1
    then bitmap 2; qemu: alternating bitmap 1 / bitmap 2 blocks, as QEMU writes them), then
    descriptor records (8 descriptors each) alternating with records holding those pages' data,
    so descriptor records go backwards in the file, as in real files. The script checks that
    reassembling OUT (as ``makedumpfile -R`` would) gives IN byte for byte; gaps are zeros in IN.

``recompress IN OUT --codec zstd|snappy``
    Re-encode the pages of IN (a reduced makedumpfile fixture) the way makedumpfile 1.7 does
    with ``--zstd`` / ``-p``: each page is decompressed (zlib/raw in IN) and compressed with
    the codec (zstd: ``ZSTD_compress`` level 1 frame with its content size; snappy: raw block
    format, as ``snappy_compress``); if the result is not smaller than the page, the page is
    stored raw (flags 0, size = block_size); the shared zero block stays a shared raw page; the
    header's status flag becomes ZSTD (0x20) or SNAPPY (0x4). Everything before the page
    descriptors is copied verbatim except that status word. Needs ``pip install zstandard
    cramjam`` (only this subcommand; the others use the standard library).

Fixtures in tests/fixtures/kdump/ were made with (realdumps = the project's real dump set):
    see tests/fixtures/kdump/README.md (the exact commands).
"""

import argparse
import struct
import sys
import zlib

HDR_LEN = 464
DESC = struct.Struct("<qIIQ")
ZLIB, LZO, SNAPPY, ZSTD = 0x1, 0x2, 0x4, 0x20
CODECS = ZLIB | LZO | SNAPPY | ZSTD


class Kdump:
    def __init__(self, data):
        if data[:8] != b"KDUMP   ":
            sys.exit("not a plain kdump-compressed file")
        self.data = data
        self.version = struct.unpack_from("<i", data, 8)[0]
        (self.status, self.bs, self.sub_blocks, self.bitmap_blocks, self.max_mapnr32) = struct.unpack_from("<IiiII", data, 424)
        if self.bs <= 0 or self.bs & (self.bs - 1):
            sys.exit("unexpected header layout (expected 64-bit little-endian)")
        bs = self.bs
        self.sub_off = bs
        self.max_mapnr = self.max_mapnr32
        if self.version >= 6:
            self.max_mapnr = struct.unpack_from("<Q", data, bs + 96)[0]
        self.bm_off = bs * (1 + self.sub_blocks)
        half = self.bitmap_blocks * bs // 2
        self.bm1 = data[self.bm_off : self.bm_off + half]
        self.bm2 = data[self.bm_off + half : self.bm_off + 2 * half]
        self.desc_off = self.bm_off + 2 * half
        self.present = [p for p in range(min(self.max_mapnr, half * 8)) if self.bm2[p >> 3] >> (p & 7) & 1]
        self.rank = {p: i for i, p in enumerate(self.present)}

    def desc(self, pfn):
        return DESC.unpack_from(self.data, self.desc_off + DESC.size * self.rank[pfn])

    def page(self, pfn):
        off, size, flags, _ = self.desc(pfn)
        raw = self.data[off : off + size]
        if flags & CODECS == 0:
            return raw
        if flags & CODECS == ZLIB:
            return zlib.decompress(raw)
        sys.exit(f"pfn {pfn}: can only re-encode zlib or raw pages (flags {flags:#x})")

    def sub_locations(self):
        """(offset_vmcoreinfo, size, offset_note, size) from the sub-header."""
        return struct.unpack_from("<QQQQ", self.data, self.sub_off + 32)


def choose(kd, paddrs, pfns, per_kind, run, budget):
    keep = set(pfns) | {a // kd.bs for a in paddrs}
    for p in keep:
        if p not in kd.rank:
            sys.exit(f"pfn {p} is not present in the input")
    # Shared data blocks: offsets used by more than one descriptor.
    uses = {}
    for p in kd.present:
        uses[kd.desc(p)[0]] = uses.get(kd.desc(p)[0], 0) + 1
    kinds = {"shared": [], "raw": [], "compressed": []}
    for p in kd.present:
        off, size, flags, _ = kd.desc(p)
        k = "shared" if uses[off] > 1 else ("raw" if flags & CODECS == 0 else "compressed")
        if len(kinds[k]) < per_kind:
            kinds[k].append(p)
        if all(len(v) >= per_kind for v in kinds.values()):
            break
    for v in kinds.values():
        keep.update(v)
    if run:
        best = None
        for i in range(len(kd.present) - run + 1):
            a, b = kd.present[i], kd.present[i + run - 1]
            if b - a != run - 1:
                continue
            cost = sum(kd.desc(p)[1] for p in kd.present[i : i + run] if uses[kd.desc(p)[0]] == 1)
            nonzero = sum(1 for p in kd.present[i : i + run] if uses[kd.desc(p)[0]] == 1)
            if cost <= budget and nonzero >= run // 2:
                best = kd.present[i : i + run]
                break
        if best is None:  # fall back to the cheapest run (e.g. all shared zero pages)
            best_cost = None
            for i in range(len(kd.present) - run + 1):
                if kd.present[i + run - 1] - kd.present[i] == run - 1:
                    cost = sum(kd.desc(p)[1] for p in kd.present[i : i + run] if uses[kd.desc(p)[0]] == 1)
                    if best_cost is None or cost < best_cost:
                        best, best_cost = kd.present[i : i + run], cost
        if best is None:
            sys.exit(f"no run of {run} consecutive present pfns")
        keep.update(best)
    return sorted(keep)


def ceil_div(a, b):
    return -(-a // b)


def build(kd, keep, page_data=None, status=None):
    """Write a kdump file holding `keep` pfns. page_data(pfn, desc) -> (bytes, size, flags)
    lets `recompress` substitute data; by default data is copied verbatim."""
    bs = kd.bs
    bits_per_block = 8 * bs
    new_mapnr = max(1, -(-(keep[-1] + 1) // bits_per_block)) * bits_per_block
    new_mapnr = min(new_mapnr, kd.max_mapnr)
    half_blocks = ceil_div(ceil_div(new_mapnr, 8), bs)
    half = half_blocks * bs
    out = bytearray(kd.data[: bs * (1 + kd.sub_blocks)])
    struct.pack_into("<I", out, 436, 2 * half_blocks)  # bitmap_blocks
    if kd.max_mapnr32:
        struct.pack_into("<I", out, 440, min(new_mapnr, 0xFFFFFFFF))  # max_mapnr (32-bit)
    if kd.version >= 6:
        struct.pack_into("<Q", out, bs + 96, new_mapnr)  # max_mapnr_64
    if status is not None:
        struct.pack_into("<I", out, 424, status)
    bm1 = bytearray(half)
    n1 = min(len(kd.bm1), -(-new_mapnr // 8))
    bm1[:n1] = kd.bm1[:n1]
    for p in range(n1 * 8):  # clear bits past the new max_mapnr
        if p >= new_mapnr:
            bm1[p >> 3] &= ~(1 << (p & 7)) & 0xFF
    bm2 = bytearray(half)
    for p in keep:
        bm2[p >> 3] |= 1 << (p & 7)
    out += bm1 + bm2
    desc_off = len(out)
    data_off = desc_off + DESC.size * len(keep)
    # Data blocks, once each, in original offset order.
    blocks = {}
    for p in keep:
        off, size, flags, pf = kd.desc(p)
        if off not in blocks:
            blocks[off] = page_data(p, (off, size, flags, pf)) if page_data else (kd.data[off : off + size], size, flags)
    placed = {}
    data = bytearray()
    for off in sorted(blocks):
        placed[off] = data_off + len(data)
        data += blocks[off][0]
    for p in keep:
        off, size, flags, pf = kd.desc(p)
        _, nsize, nflags = blocks[off]
        out += DESC.pack(placed[off], nsize, nflags, pf)
    out += data
    return bytes(out)


def cmd_reduce(a):
    kd = Kdump(open(a.input, "rb").read())
    keep = choose(kd, [int(x, 0) for x in a.paddr], [int(x, 0) for x in a.pfn], a.per_kind, a.run, a.budget)
    out = build(kd, keep)
    open(a.output, "wb").write(out)
    print(f"{a.output}: {len(out)} bytes, {len(keep)} pages: {keep}")


def cmd_recompress(a):
    kd = Kdump(open(a.input, "rb").read())
    codec = {"zstd": ZSTD, "snappy": SNAPPY}[a.codec]
    if a.codec == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(level=1, write_content_size=True, write_checksum=False)
        comp = cctx.compress
    else:
        import cramjam

        def comp(b):
            return bytes(cramjam.snappy.compress_raw(b))

    uses = {}
    for p in kd.present:
        uses[kd.desc(p)[0]] = uses.get(kd.desc(p)[0], 0) + 1

    def page_data(pfn, d):
        page = kd.page(pfn)
        assert len(page) == kd.bs
        if uses[d[0]] > 1:  # the shared zero block stays raw, as makedumpfile writes it
            return page, kd.bs, 0
        c = comp(page)
        if len(c) < kd.bs:
            return c, len(c), codec
        return page, kd.bs, 0

    status = (kd.status & ~CODECS) | codec
    out = build(kd, kd.present, page_data, status)
    open(a.output, "wb").write(out)
    print(f"{a.output}: {len(out)} bytes, {len(kd.present)} pages re-encoded with {a.codec}")


def cmd_flatten(a):
    data = open(a.input, "rb").read()
    kd = Kdump(data)
    bs = kd.bs
    recs = [(0, data[:HDR_LEN])]
    _, _, note_off, note_size = kd.sub_locations()
    sub = (bs, data[bs : bs + 104])
    # The sub-header blocks beyond the struct: notes (which hold VMCOREINFO) and whatever else
    # is non-zero there (eraseinfo).
    notes = (note_off, data[note_off : note_off + note_size]) if note_size else None
    recs += [x for x in ([notes, sub] if a.style == "md" else [sub, notes]) if x]
    covered = bytearray(len(data))
    for o, d in recs:
        covered[o : o + len(d)] = b"\1" * len(d)
    for o in range(bs, kd.bm_off):
        if data[o] and not covered[o]:
            sys.exit(f"non-zero sub-header byte at {o:#x} outside the sub-header and notes")
    half_blocks = kd.bitmap_blocks // 2
    b1 = [(kd.bm_off + i * bs, data[kd.bm_off + i * bs : kd.bm_off + (i + 1) * bs]) for i in range(half_blocks)]
    b2 = [
        (kd.bm_off + (half_blocks + i) * bs, data[kd.bm_off + (half_blocks + i) * bs : kd.bm_off + (half_blocks + i + 1) * bs])
        for i in range(half_blocks)
    ]
    if a.style == "md":
        recs += b1 + b2
    else:
        for x, y in zip(b1, b2):
            recs += [x, y]
    n = len(kd.present)
    data_start = kd.desc_off + DESC.size * n
    written_to = data_start
    for i in range(0, n, 8):
        lo = kd.desc_off + DESC.size * i
        hi = kd.desc_off + DESC.size * min(n, i + 8)
        recs.append((lo, data[lo:hi]))
        # Data of these pages not yet written (shared blocks were written earlier).
        end = max(written_to, max(o + s for o, s, _, _ in (DESC.unpack_from(data, x) for x in range(lo, hi, DESC.size))))
        if end > written_to:
            recs.append((written_to, data[written_to:end]))
            written_to = end
    if written_to < len(data):
        recs.append((written_to, data[written_to:]))
    out = bytearray(b"makedumpfile".ljust(16, b"\0") + struct.pack(">qq", 1, 1))
    out += bytes(4096 - len(out))
    for o, d in recs:
        out += struct.pack(">qq", o, len(d)) + d
    out += struct.pack(">qq", -1, -1)
    # Check: reassembling gives the input.
    re = bytearray(max(o + len(d) for o, d in recs))
    for o, d in recs:
        re[o : o + len(d)] = d
    if bytes(re) != data:
        sys.exit("internal error: the flattened records do not reassemble to the input")
    open(a.output, "wb").write(out)
    print(f"{a.output}: {len(out)} bytes, {len(recs)} records")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    r = sp.add_parser("reduce")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("--paddr", action="append", default=[])
    r.add_argument("--pfn", action="append", default=[])
    r.add_argument("--per-kind", type=int, default=3)
    r.add_argument("--run", type=int, default=0)
    r.add_argument("--budget", type=int, default=64 * 1024)
    r.set_defaults(fn=cmd_reduce)
    f = sp.add_parser("flatten")
    f.add_argument("input")
    f.add_argument("output")
    f.add_argument("--style", choices=["md", "qemu"], required=True)
    f.set_defaults(fn=cmd_flatten)
    c = sp.add_parser("recompress")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--codec", choices=["zstd", "snappy"], required=True)
    c.set_defaults(fn=cmd_recompress)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
