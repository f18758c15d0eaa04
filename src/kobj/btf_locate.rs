//! Finding the kernel's BTF in its memory: between the kallsyms symbols `__start_BTF` and
//! `__stop_BTF`, or, when kallsyms has no data symbols (no `CONFIG_KALLSYMS_ALL`, as Debian 12's
//! arm64 kernel), by a scan of the kernel image for a blob whose header and types validate.

use std::sync::Arc;

use super::RootSource;
use crate::btf::{header::HEADER_LEN, Btf, Header};
use crate::error::{Error, ErrorKind, Result};
use crate::kview::kallsyms::KernelSymbols;
use crate::kview::VirtMemory;

/// The largest BTF blob this reader accepts (vmlinux BTF is 4–6 MiB on distribution kernels).
pub const MAX_BTF_BYTES: u64 = 64 << 20;
/// How far past the start of the kernel's text a scan looks for the blob.
pub const SCAN_BYTES: u64 = 96 << 20;
const CHUNK: usize = 4 << 20;

/// The kernel's BTF and how it was found.
pub struct Located {
    pub btf: Arc<Btf>,
    pub source: RootSource,
}

fn read_blob(mem: &dyn VirtMemory, addr: u64, len: u64) -> Result<Arc<[u8]>> {
    if len > MAX_BTF_BYTES {
        return Err(crate::kview::too_big_virt(addr, format!("BTF blob of {len} bytes, over the {MAX_BTF_BYTES}-byte limit")));
    }
    let mut buf = vec![0u8; len as usize];
    mem.read_virt(addr, &mut buf)?;
    Ok(Arc::from(buf))
}

/// A parsed blob must hold the kernel's central types, or it is not vmlinux BTF.
fn plausible(btf: &Btf) -> bool {
    btf.lookup("struct task_struct").is_ok() && btf.lookup("struct list_head").is_ok()
}

/// Find and parse the kernel's BTF. `stext` is the start of the kernel's text (VMCOREINFO's
/// `SYMBOL(_stext)` or kallsyms'), where a scan starts; `release` labels error messages.
pub fn locate(mem: &dyn VirtMemory, syms: Option<&KernelSymbols>, stext: Option<u64>, release: &str) -> Result<Located> {
    let label = format!("Linux {release}");
    if let Some(s) = syms {
        if let (Some(a), Some(b)) = (s.address(b"__start_BTF"), s.address(b"__stop_BTF")) {
            if b <= a {
                return Err(crate::kview::bad_virt(a, format!("kallsyms: __stop_BTF {b:#x} is not after __start_BTF {a:#x}")));
            }
            let data = read_blob(mem, a, b - a)?;
            let btf = Btf::parse(data, a, mem.pointer_size())?.with_label(label);
            return Ok(Located { btf: Arc::new(btf), source: RootSource::Symbol });
        }
    }
    let Some(start) = stext else {
        return Err(no_btf(release, "kallsyms has no __start_BTF and the kernel's text start is unknown"));
    };
    scan(mem, start, &label)?.ok_or_else(|| {
        no_btf(
            release,
            &format!(
                "kallsyms has no __start_BTF, and no valid BTF blob lies in the {} MiB after _stext ({start:#x})",
                SCAN_BYTES >> 20
            ),
        )
    })
}

fn no_btf(release: &str, why: &str) -> Error {
    Error::no_btf(format!(
        "Linux {release} carries no BTF to read its objects with ({why}); it was probably built without CONFIG_DEBUG_INFO_BTF"
    ))
}

/// Scan `[start, start + SCAN_BYTES)` for a BTF header (magic in the kernel's byte order,
/// version 1, 4-byte aligned) whose blob parses and holds the kernel's central types. Unreadable
/// chunks (holes in the mapping) are skipped.
fn scan(mem: &dyn VirtMemory, start: u64, label: &str) -> Result<Option<Located>> {
    let magic: [u8; 3] = if mem.big_endian() { [0xeb, 0x9f, 1] } else { [0x9f, 0xeb, 1] };
    let mut buf = vec![0u8; CHUNK + HEADER_LEN];
    let start = start & !3;
    let mut pos = start;
    while pos < start.saturating_add(SCAN_BYTES) {
        if mem.read_virt(pos, &mut buf).is_err() {
            // Read what can be read of the chunk page by page? Holes inside the image are rare;
            // a chunk that fails is skipped whole.
            pos += CHUNK as u64;
            continue;
        }
        for i in memchr::memmem::find_iter(&buf[..CHUNK + 3], &magic) {
            if i % 4 != 0 || i + HEADER_LEN > buf.len() {
                continue;
            }
            let addr = pos + i as u64;
            // The header's own fields give the blob's length; the whole blob is then read and
            // validated (the header again, then every type).
            let f = |o: usize| crate::btf::header::rd_u32(&buf, i + o, mem.big_endian());
            let (hdr_len, t_end, s_end) =
                (u64::from(f(4)), u64::from(f(8)) + u64::from(f(12)), u64::from(f(16)) + u64::from(f(20)));
            let total = hdr_len + t_end.max(s_end);
            if hdr_len < HEADER_LEN as u64 || hdr_len > 256 || f(12) == 0 || f(20) == 0 || total > MAX_BTF_BYTES {
                continue;
            }
            let Ok(data) = read_blob(mem, addr, total) else { continue };
            let Ok(h) = Header::parse(&data, addr) else { continue };
            if data[h.str_start()] != 0 {
                continue;
            }
            match Btf::parse(data, addr, mem.pointer_size()) {
                Ok(btf) if plausible(&btf) => {
                    return Ok(Some(Located { btf: Arc::new(btf.with_label(label.to_string())), source: RootSource::Scan }));
                }
                Ok(_) => continue,
                Err(e) if e.kind == ErrorKind::Format || e.kind == ErrorKind::Truncated => continue,
                Err(e) => return Err(e),
            }
        }
        pos += CHUNK as u64;
    }
    Ok(None)
}

/// The MODULE_NAME_LEN bound of a module's name (`struct module.name`).
const MODULE_NAME_MAX: usize = 64;
/// The most modules a `btf_modules` walk follows.
const MAX_MODULES: usize = 1 << 16;

/// Where one module's split BTF lies, from the kernel's `btf_modules` list
/// (`struct btf_module {list, module, btf, ...}`; `struct btf {data, ..., data_size}`; every
/// offset from the vmlinux BTF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleBtfRef {
    /// The module's name (`struct module.name`).
    pub name: String,
    /// Address of the `struct module`.
    pub module: u64,
    /// Address of the `struct btf`.
    pub btf: u64,
    /// Address and size of the raw blob (`btf->data`, `btf->data_size`).
    pub data: u64,
    pub data_size: u64,
}

/// The modules on the `btf_modules` list at `head` and where their BTF lies.
pub fn module_btf_list(mem: &dyn VirtMemory, vmlinux: &Btf, head: u64) -> Result<Vec<ModuleBtfRef>> {
    use crate::kobj::KernelTypes;
    let list = vmlinux.offset_of("struct btf_module", "list")?;
    let module = vmlinux.offset_of("struct btf_module", "module")?;
    let btf = vmlinux.offset_of("struct btf_module", "btf")?;
    let name = vmlinux.offset_of("struct module", "name")?;
    let name_len = (vmlinux.member_size("struct module", "name")? as usize).min(MODULE_NAME_MAX);
    let data = vmlinux.offset_of("struct btf", "data")?;
    let data_size = vmlinux.offset_of("struct btf", "data_size")?;
    let next = vmlinux.offset_of("struct list_head", "next")?;
    let vals = crate::kobj::value::Values::new(mem, vmlinux);
    let nodes = crate::kobj::value::walk_list(mem, head, next, vmlinux.pointer_size(), MAX_MODULES)?;
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let bm = node.wrapping_sub(list);
        let m = vals.read_pointer(bm + module)?;
        let b = vals.read_pointer(bm + btf)?;
        if m == 0 || b == 0 {
            continue; // a module whose BTF is being registered or torn down
        }
        let mut raw = vec![0u8; name_len];
        mem.read_virt(m + name, &mut raw)?;
        let end = memchr::memchr(0, &raw).unwrap_or(raw.len());
        out.push(ModuleBtfRef {
            name: String::from_utf8_lossy(&raw[..end]).into_owned(),
            module: m,
            btf: b,
            data: vals.read_pointer(b + data)?,
            data_size: u64::from(mem.read_u32(b + data_size)?),
        });
    }
    Ok(out)
}

/// Read and parse one module's split BTF on top of the kernel's.
pub fn read_module_btf(mem: &dyn VirtMemory, vmlinux: Arc<Btf>, m: &ModuleBtfRef) -> Result<Btf> {
    let data = read_blob(mem, m.data, m.data_size)?;
    Ok(Btf::parse_split(data, m.data, vmlinux)?.with_label(format!("module {}", m.name)))
}
