#!/usr/bin/env python3
"""A corpus of real-shaped dump files for the batch benches: copies of the committed real
fixtures, each with a distinct VMCOREINFO text, plus a manifest of what every file must yield.

    python3 benches/make_corpus.py OUTDIR [--files 10000] [--mix] [--bad N]

Each copy is a committed fixture (real QEMU / makedumpfile dumps reduced by tools/reduce_elf.py)
with two values of its VMCOREINFO note rewritten in place, same length, so every header and
offset stays valid: BUILD-ID becomes the SHA-1 of "<fixture>:<n>" and KERNELOFFSET a distinct
value of the same number of hex digits. The text edited is the note's (at the file offset the
fixture's VMCOREINFO is read from); the copy in the fixture's memory pages is left alone.

Default: the four ELF fixtures in turn. ``--mix`` adds the QEMU and makedumpfile kdump files
(plain and flattened; for flattened files the text is found by its unique BUILD-ID). ``--bad N``
adds N broken files among them (truncated copies, the real dump without a note, a text file),
whose expected result is the error type.

manifest.tsv columns: path, format, machine, osrelease, build_id, kernel_offset, phys_base,
page_size, vmcoreinfo_offset, error_type (empty fields are None). Writing is skipped when
OUTDIR already holds a manifest for the same arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from vmcoreinfo._schema import IDENTITY_COLUMNS, IDENTITY_FIELDS

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"

ELF = ["x86_64-qemu-elf.core", "arm64-qemu-elf.core", "x86_64-makedumpfile-d31.elf", "x86_64-qemu-elf-paging.core"]
MIX = [
    "kdump/qemu-x86_64-zlib.kdump",
    "kdump/md-x86_64-zlib-d31.kdump",
    "kdump/qemu-x86_64-zlib.flat",
    "kdump/qemu-arm64-zlib.kdump",
]
# The manifest's columns: the Identity columns (vmcoreinfo._schema, the one schema of CSV, Parquet
# and dask) that the generator knows in advance, in the same order.
_NOT_IN_MANIFEST = (
    "vmcoreinfo_size",
    "note_paddr",
    "memory_declared_bytes",
    "memory_stored_bytes",
    "error_message",
    "error_offset",
)
COLUMNS = [c for c in IDENTITY_FIELDS if c not in _NOT_IN_MANIFEST]
_INTS = {c.name for c in IDENTITY_COLUMNS if c.kind != "str"}


def _reference(name: str) -> dict:
    """What the fixture itself yields, read once with the single-file API, and where its
    BUILD-ID and KERNELOFFSET values lie in the file."""
    import vmcoreinfo

    data = (FIX / name).read_bytes()
    with vmcoreinfo.open(FIX / name) as d:
        vi = d.vmcoreinfo
        ref = {
            "format": d.format,
            "machine": d.machine,
            "osrelease": vi.osrelease,
            "phys_base": vi.phys_base,
            "page_size": vi.page_size,
            "vmcoreinfo_offset": vi.offset_in_file,
            "raw": vi.raw,
            "build_id": vi.build_id,
            "kernel_offset": vi.get("KERNELOFFSET"),
        }
    raw = ref["raw"]
    if ref["format"] == "flattened-kdump":
        at = data.find(raw)  # the text is stored whole in one record
        if at < 0 or data.count(raw) != 1:
            raise SystemExit(f"{name}: the text is not stored once, whole")
    else:
        at = ref["vmcoreinfo_offset"]
        assert data[at : at + len(raw)] == raw, name
    ref["text_at"] = at
    for key in ("BUILD-ID", "KERNELOFFSET"):
        k = raw.find(b"\n" + key.encode() + b"=")
        if k < 0:
            ref[key] = None
            continue
        v0 = k + 2 + len(key)
        v1 = raw.index(b"\n", v0)
        ref[key] = (at + v0, v1 - v0)
    return ref


def make(out: Path, files: int, mix: bool = False, bad: int = 0) -> Path:
    """Write the corpus (unless already there) and return the manifest path."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.tsv"
    stamp = out / "corpus.json"
    args = {"files": files, "mix": mix, "bad": bad, "version": 1}
    if manifest.exists() and stamp.exists() and json.loads(stamp.read_text()) == args:
        return manifest
    names = ELF + (MIX if mix else [])
    refs = {n: _reference(n) for n in names}
    blobs = {n: (FIX / n).read_bytes() for n in names}
    rows = []
    bad_every = files // bad if bad else 0
    for i in range(files):
        sub = out / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(exist_ok=True)
        if bad_every and i % bad_every == bad_every - 1:
            rows.append(_bad(sub, i, blobs))
            continue
        name = names[i % len(names)]
        ref = refs[name]
        buf = bytearray(blobs[name])
        bid = hashlib.sha1(f"{name}:{i}".encode()).hexdigest()
        off, n = ref["BUILD-ID"]
        assert n == 40
        buf[off : off + n] = bid.encode()
        ko = None
        if ref["KERNELOFFSET"]:
            off, n = ref["KERNELOFFSET"]
            ko = (i * 0x200000) % (16**n)
            buf[off : off + n] = f"{ko:0{n}x}".encode()
        p = sub / f"{i:06d}-{Path(name).name}"
        p.write_bytes(buf)
        rows.append(
            [
                str(p),
                ref["format"],
                ref["machine"],
                ref["osrelease"],
                bid,
                ko,
                ref["phys_base"],
                ref["page_size"],
                ref["vmcoreinfo_offset"],
                None,
            ]
        )
    with open(manifest, "w") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join("" if v is None else str(v) for v in r) + "\n")
    stamp.write_text(json.dumps(args))
    return manifest


def _bad(sub: Path, i: int, blobs: dict) -> list:
    kind = (i // 7) % 3
    if kind == 0:  # a real dump cut short inside its program headers
        p = sub / f"{i:06d}-truncated.core"
        p.write_bytes(blobs["x86_64-qemu-elf.core"][:100])
        return [str(p), None, None, None, None, None, None, None, None, "TruncatedError"]
    if kind == 1:  # the real QEMU dump of a guest without the vmcoreinfo driver
        p = sub / f"{i:06d}-no-vmcoreinfo.core"
        p.write_bytes((FIX / "x86_64-qemu-elf-no-vmcoreinfo.core").read_bytes())
        return [str(p), "elf", "x86_64", None, None, None, None, None, None, "NoVmcoreinfoError"]
    p = sub / f"{i:06d}-not-a-dump.txt"
    p.write_bytes((FIX / "x86_64.VMCOREINFO.txt").read_bytes())
    return [str(p), None, None, None, None, None, None, None, None, "FormatError"]


def load_manifest(path: Path) -> list[dict]:
    lines = Path(path).read_text().splitlines()
    cols = lines[0].split("\t")
    ints = _INTS
    out = []
    for ln in lines[1:]:
        d = {}
        for c, v in zip(cols, ln.split("\t")):
            d[c] = None if v == "" else int(v) if c in ints else v
        out.append(d)
    return out


def check(results, manifest: list[dict]) -> int:
    """Every result against its manifest row (same order); returns how many were checked."""
    n = 0
    for r, want in zip(results, manifest, strict=True):
        got = {c: getattr(r, c) for c in COLUMNS if c != "error_type"}
        got["error_type"] = r.error_type
        if want["error_type"] is not None:
            assert r.error_type == want["error_type"], (r, want)
            assert r.format == want["format"] and r.machine == want["machine"], (r, want)
        else:
            assert got == want, (got, want)
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--mix", action="store_true", help="add kdump and flattened files")
    ap.add_argument("--bad", type=int, default=0, help="this many broken files among them")
    a = ap.parse_args()
    m = make(a.out, a.files, a.mix, a.bad)
    print(m, file=sys.stderr)


if __name__ == "__main__":
    main()
