//! `Dump` and `Note`: thin wrappers over the core `Dump`.

use std::sync::{Arc, OnceLock, RwLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::buffer::SharedBytes;
use super::fwcfg::FwCfgEntry;
use super::info::VmcoreInfo;
use crate::dump::{Dump as CoreDump, Format, OpenOptions};
use crate::error::{Error, ErrorKind, Location};

/// `notes()` refuses note areas with more notes than this (a zeroed 256 MiB area would make
/// twenty million empty notes).
const MAX_NOTES: usize = 1 << 20;

/// Reads of at least this many bytes release the GIL.
const DETACH_BYTES: usize = 64 * 1024;
/// `read_phys` refuses larger sizes (a `bytes` object this large is better a buffer of the caller's).
pub const MAX_READ_PHYS: u64 = 1 << 30;
/// `read_phys_into` reads through a private chunk of this size.
const INTO_CHUNK: usize = 8 << 20;

/// A guest address argument: any Python int. One outside `0..2**64` is not an `OverflowError`
/// but the error an address the dump cannot reach gets (`AbsentMemoryError` for a physical
/// address, `UnmappedError` for a virtual one), naming the address; `TypeError` for a non-int.
pub(crate) struct GuestAddr<const VIRT: bool>(pub u64);
pub(crate) type PhysAddr = GuestAddr<false>;
pub(crate) type VirtAddr = GuestAddr<true>;

impl<'py, const VIRT: bool> FromPyObject<'_, 'py> for GuestAddr<VIRT> {
    type Error = PyErr;
    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<u64>() {
            Ok(a) => Ok(GuestAddr(a)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => {
                let shown = obj.call_method1("__format__", ("#x",)).map(|s| s.to_string()).unwrap_or_default();
                let (kind, what) = if VIRT { (ErrorKind::Unmapped, "virtual") } else { (ErrorKind::Absent, "physical") };
                let msg = format!("{what} address {shown} is outside 0..2**64 (no guest has it)");
                Err(Error::at(kind, None, msg).into())
            }
            Err(e) => Err(e),
        }
    }
}

/// One ELF note of a dump.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct Note {
    /// Note name without its trailing NUL (e.g. ``"CORE"``, ``"VMCOREINFO"``).
    #[pyo3(get)]
    name: String,
    /// ``n_type``.
    #[pyo3(get)]
    r#type: u32,
    /// File offset of the note header.
    #[pyo3(get)]
    offset: u64,
    /// Whether this note's desc is a Windows dump header (``PAGE`` + ``DU64``/``DUMP``).
    #[pyo3(get)]
    is_windows_dump_header: bool,
    data: Arc<[u8]>,
    desc_start: usize,
    desc_end: usize,
}

#[pymethods]
impl Note {
    /// The note's desc, a read-only ``memoryview`` over bytes shared with the dump (no copy).
    #[getter]
    fn desc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        SharedBytes::memoryview(py, self.data.clone(), self.desc_start, self.desc_end)
    }

    /// Length of the desc in bytes (``n_descsz``; ``len(note.desc)``).
    #[getter]
    fn size(&self) -> usize {
        self.desc_end - self.desc_start
    }

    /// The note type's name, from the note's name and ``n_type`` (``"NT_PRSTATUS"`` for a
    /// ``CORE`` note of type 1, ``"QEMU_CPUSTATE"`` for QEMU's CPU state, ``"VMCOREINFO"``), or
    /// None for a type this library does not know.
    #[getter]
    fn type_name(&self) -> Option<&'static str> {
        note_type_name(self.name.as_bytes(), self.r#type)
    }

    /// A note from its fields (what unpickling calls); ``desc`` is copied.
    #[new]
    fn py_new(name: String, r#type: u32, offset: u64, desc: &[u8]) -> Note {
        Note {
            name,
            r#type,
            offset,
            is_windows_dump_header: crate::text::is_windows_dump_header(desc),
            data: Arc::from(desc),
            desc_start: 0,
            desc_end: desc.len(),
        }
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, pyo3::types::PyTuple>)> {
        let n = slf.get();
        let py = slf.py();
        let args = (n.name.as_str(), n.r#type, n.offset, PyBytes::new(py, n.desc_bytes())).into_pyobject(py)?;
        Ok((slf.get_type().into_any(), args))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> Py<PyAny> {
        use pyo3::IntoPyObjectExt;
        match other.cast::<Note>() {
            Ok(o) => {
                let o = o.get();
                let eq = (o.name.as_str(), o.r#type, o.offset, o.desc_bytes())
                    == (self.name.as_str(), self.r#type, self.offset, self.desc_bytes());
                eq.into_py_any(py).unwrap_or_else(|_| py.NotImplemented())
            }
            Err(_) => py.NotImplemented(),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Note(name={:?}, type={}, offset={}, size={})",
            self.name,
            self.r#type,
            self.offset,
            self.desc_end - self.desc_start
        )
    }
}

/// The name of note type `n_type` of a note named `name`: the ELF core note types (the kernel's
/// `include/uapi/linux/elf.h`), QEMU's CPU state and VMCOREINFO.
pub(crate) fn note_type_name(name: &[u8], n_type: u32) -> Option<&'static str> {
    let core = name == b"CORE";
    let linux = name == b"LINUX" || core;
    Some(match (n_type, name) {
        (0, b"VMCOREINFO") => "VMCOREINFO",
        (0, b"QEMU") => "QEMU_CPUSTATE",
        (1, _) if core => "NT_PRSTATUS",
        (2, _) if core => "NT_PRFPREG",
        (3, _) if core => "NT_PRPSINFO",
        (4, _) if core => "NT_TASKSTRUCT",
        (6, _) if core => "NT_AUXV",
        (0x5349_4749, _) if core => "NT_SIGINFO",
        (0x4649_4c45, _) if core => "NT_FILE",
        (0x46e6_2b7f, _) if linux => "NT_PRXFPREG",
        (0x200, _) if linux => "NT_386_TLS",
        (0x201, _) if linux => "NT_386_IOPERM",
        (0x202, _) if linux => "NT_X86_XSTATE",
        (0x204, _) if linux => "NT_X86_SHSTK",
        (0x400, _) if linux => "NT_ARM_VFP",
        (0x401, _) if linux => "NT_ARM_TLS",
        (0x402, _) if linux => "NT_ARM_HW_BREAK",
        (0x403, _) if linux => "NT_ARM_HW_WATCH",
        (0x404, _) if linux => "NT_ARM_SYSTEM_CALL",
        (0x405, _) if linux => "NT_ARM_SVE",
        (0x406, _) if linux => "NT_ARM_PAC_MASK",
        (0x407, _) if linux => "NT_ARM_PACA_KEYS",
        (0x408, _) if linux => "NT_ARM_PACG_KEYS",
        (0x409, _) if linux => "NT_ARM_TAGGED_ADDR_CTRL",
        (0x40a, _) if linux => "NT_ARM_PAC_ENABLED_KEYS",
        (0x40b, _) if linux => "NT_ARM_SSVE",
        (0x40c, _) if linux => "NT_ARM_ZA",
        (0x40d, _) if linux => "NT_ARM_ZT",
        _ => return None,
    })
}

impl Note {
    fn desc_bytes(&self) -> &[u8] {
        &self.data[self.desc_start..self.desc_end]
    }
}

/// An opened dump. Use as a context manager, or call ``close()``.
#[pyclass(frozen, module = "vmcoreinfo._native")]
pub struct Dump {
    /// The name as given (a `str`; `os.fsdecode` of a `bytes` name).
    path: Py<pyo3::types::PyString>,
    /// The name errors carry (as the core names the file: U+FFFD for undecodable bytes).
    error_path: Arc<str>,
    inner: RwLock<Option<Arc<CoreDump>>>,
    info: OnceLock<Py<VmcoreInfo>>,
    symbols: OnceLock<Py<super::kview_log::KernelSymbols>>,
}

impl Dump {
    /// The machine and where it comes from (a memory image's scan runs here, without the GIL;
    /// a scan that fails raises instead of reporting an unknown machine).
    fn identity(&self, py: Python<'_>) -> PyResult<crate::dump::Identity> {
        let d = self.scanned(py)?;
        py.detach(|| d.identity()).map_err(|e| e.in_file(d.path()).into())
    }

    /// The dump, with a memory image's implicit scan (what stands in for its notes) run first if
    /// it has not run yet: without the GIL, and interruptible by Ctrl-C (B14; see
    /// [`super::progress`]). Every method that needs the scan's results calls this.
    pub(crate) fn scanned(&self, py: Python<'_>) -> PyResult<Arc<CoreDump>> {
        let d = self.get()?;
        if d.format().is_memory_image() && d.image_scan_if_done().is_none() {
            let mut p = super::progress::Progress::new(None, Some(d.path().clone()));
            let r = py.detach(|| d.image_scan_with(&mut |done, total| p.tick(done, total)));
            p.finish(r, d.path())?;
        }
        Ok(d)
    }

    fn get(&self) -> PyResult<Arc<CoreDump>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        match &*guard {
            Some(d) => Ok(d.clone()),
            None => {
                let mut e = Error::new(ErrorKind::Closed, None, "I/O operation on a closed dump");
                e.path = Some(self.error_path.clone());
                Err(e.into())
            }
        }
    }
}

/// Open a dump file and read its headers and notes (never the whole file).
///
/// ``max_note_size`` is the largest VMCOREINFO note accepted; QEMU's own limit (1 MiB) unless
/// raised explicitly. ``elf_tails`` says how to read the part of an ELF PT_LOAD past
/// ``p_filesz`` (up to ``p_memsz``): ``"absent"`` (the default, the forensic view: data is never
/// invented) raises :class:`AbsentMemoryError` there, since producers use these tails for memory
/// they did not save (makedumpfile ``-E`` for the pages it excluded; QEMU and /proc/vmcore never
/// write them); ``"zeros"`` reads them as zeros, as the ELF format defines (and crash and gdb
/// read them). ``format`` is detected from the file's signature
/// when None (ELF, kdump, flattened kdump, LiME, AVML); every value ``Dump.format`` reports is accepted
/// (``"kdump"`` and ``"flattened-kdump"`` each accept both kdump forms); ``"raw"`` (physical memory from address 0, no
/// header) is never detected and must be asked for; asking for a format whose signature is
/// missing raises :class:`FormatError`. LiME, AVML and raw images carry no notes: their
/// ``vmcoreinfo`` comes from a scan of their memory (run once, on first use). The returned
/// :class:`Dump` is a context manager.
///
/// ``mmap`` (default True) lets the first :meth:`Dump.view_phys` map a regular file read-only
/// (guarded: a file that shrinks under the mapping gives :class:`TruncatedError`, never SIGBUS)
/// so that views are zero-copy; reads and scans still use ``pread``, which measured faster. ``"always"`` also
/// reads and scans through the mapping; ``False`` never maps (views are copies).
// Native so that opening costs no Python frame (identification is measured against the bare
// os.open + pread + fstat + close floor).
#[pyfunction(name = "open")]
#[pyo3(
    signature = (path, *, max_note_size = crate::fwcfg::MAX_GUEST_NOTE_SIZE as u64, elf_tails = "absent", format = None, mmap = None),
    text_signature = "(path, *, max_note_size=MAX_GUEST_NOTE_SIZE, elf_tails='absent', format=None, mmap=True)"
)]
pub fn open_dump(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    max_note_size: u64,
    elf_tails: &str,
    format: Option<&str>,
    mmap: Option<&Bound<'_, PyAny>>,
) -> PyResult<Dump> {
    let path = super::paths::PyPath::extract(path, "open")?;
    let (mmap, mapped_reads) = match mmap {
        None => (true, false),
        Some(m) => match m.extract::<bool>() {
            Ok(b) => (b, false),
            Err(_) if m.extract::<String>().is_ok_and(|s| s == "always") => (true, true),
            Err(_) => return Err(PyValueError::new_err("mmap must be True, False or 'always'")),
        },
    };
    let max_note_size = u32::try_from(max_note_size)
        .ok()
        .filter(|&m| m as usize >= crate::fwcfg::NOTE_HEADER_SIZE)
        .ok_or_else(|| PyValueError::new_err(format!("max_note_size must be between 12 and {}", u32::MAX)))?;
    let elf_tails_absent = match elf_tails {
        "zeros" => false,
        "absent" => true,
        _ => return Err(PyValueError::new_err("elf_tails must be 'zeros' or 'absent'")),
    };
    let format = match format {
        None => None,
        Some(f) => Some(Format::from_name(f).ok_or_else(|| {
            PyValueError::new_err("format must be None, 'elf', 'kdump', 'flattened-kdump', 'lime', 'avml' or 'raw'")
        })?),
    };
    let options = OpenOptions { max_note_size, elf_tails_absent, format, mmap, mapped_reads };
    let d = py.detach(|| CoreDump::open(&path.path, options))?;
    Ok(Dump {
        path: path.name,
        error_path: d.path().clone(),
        inner: RwLock::new(Some(Arc::new(d))),
        info: OnceLock::new(),
        symbols: OnceLock::new(),
    })
}

#[pymethods]
impl Dump {
    /// The file name as given to ``open``, as a ``str`` (a ``bytes`` or ``os.PathLike`` name is
    /// ``os.fsdecode``'d: a name that is not UTF-8 holds surrogate escapes, and
    /// ``os.fsencode(dump.path)`` gives its bytes back). Errors name the file in ``exc.path``
    /// with undecodable bytes replaced by U+FFFD.
    #[getter]
    fn path(&self, py: Python<'_>) -> Py<pyo3::types::PyString> {
        self.path.clone_ref(py)
    }

    /// The container format: one of the names in ``vmcoreinfo.FORMATS`` (``"elf"``, ``"avml"``, ...).
    #[getter]
    fn format(&self) -> PyResult<&'static str> {
        Ok(self.get()?.format().name())
    }

    /// The guest's machine: ``"x86_64"``, ``"aarch64"``, ``"i386"``, ``"arm"``, ... For LiME and
    /// raw images it comes from the scanned VMCOREINFO text (the first use runs the scan).
    #[getter]
    fn machine(&self, py: Python<'_>) -> PyResult<&'static str> {
        let id = self.identity(py)?;
        Ok(crate::bitness::machine_name(id.e_machine, id.class64))
    }

    /// The class of the file's ELF structures: 32 or 64 (for ELF files the ELF header's, for
    /// kdump files their header layout's, which is also their notes' class). ``None`` for LiME
    /// and raw images: no ELF structure is involved (``details()["address_bits"]`` gives the
    /// guest's address width for every format).
    #[getter]
    fn elf_class(&self, py: Python<'_>) -> PyResult<Option<u32>> {
        let d = self.get()?;
        if d.format().is_memory_image() {
            return Ok(None);
        }
        Ok(Some(if self.identity(py)?.class64 { 64 } else { 32 }))
    }

    /// ``"little"`` or ``"big"``. For LiME, AVML and raw images, the byte order of the note the scan found.
    #[getter]
    fn byteorder(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(if self.identity(py)?.big_endian { "big" } else { "little" })
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        // As `get` and `close` do, a poisoned lock is read through: its state is one value,
        // consistent whatever panicked (B19: `closed` said True while `close` did nothing).
        self.inner.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// Every ELF note of the dump, in file order.
    fn notes(&self) -> PyResult<Vec<Note>> {
        let d = self.get()?;
        let mut out = Vec::new();
        for (seg, n) in d.notes() {
            if out.len() >= MAX_NOTES {
                let mut e =
                    Error::limit(seg.file_offset, format!("more than {MAX_NOTES} notes; the note area is not a real one"));
                e.path = Some(d.path().clone());
                return Err(e.into());
            }
            let n = n.map_err(|e| e.in_file(d.path()))?;
            out.push(Note {
                name: String::from_utf8_lossy(n.name).into_owned(),
                r#type: n.n_type,
                offset: seg.file_offset + n.offset as u64,
                is_windows_dump_header: crate::text::is_windows_dump_header(n.desc),
                data: seg.data.clone(),
                desc_start: n.desc_offset,
                desc_end: n.desc_offset + n.desc.len(),
            });
        }
        Ok(out)
    }

    /// The VMCOREINFO text (parsed once, then cached). Raises ``NoVmcoreinfoError`` when the
    /// dump has none, with what to do about it.
    #[getter]
    fn vmcoreinfo(&self, py: Python<'_>) -> PyResult<Py<VmcoreInfo>> {
        let d = self.scanned(py)?;
        if let Some(v) = self.info.get() {
            return Ok(v.clone_ref(py));
        }
        // An ELF dump's notes were read at open: nothing to wait for, so keep the GIL (releasing
        // and taking it back costs more than the lookup). Other formats read or scan the file.
        let blob = if d.format() == crate::dump::Format::Elf { d.vmcoreinfo() } else { py.detach(|| d.vmcoreinfo()) }
            .map_err(|e| e.in_file(d.path()))?;
        let mut info = VmcoreInfo::new(blob.clone(), Some(d.path().clone()));
        if let Some(s) = d.format().is_memory_image().then(|| d.image_scan_if_done()).flatten() {
            if let Some(msg) = s.multiple_candidates(&blob) {
                info = info.with_diagnostic("multiple-candidates", blob.file_offset.unwrap_or(0), msg);
            }
        }
        let v = Py::new(py, info)?;
        Ok(self.info.get_or_init(|| v).clone_ref(py))
    }

    /// Read ``size`` bytes of guest-physical memory at ``addr``. Memory the dump does not hold
    /// raises ``AbsentMemoryError`` (it is never invented as zeros), checked before anything is
    /// allocated; a range the dump holds but larger than ``MAX_READ_PHYS`` (1 GiB) raises
    /// ``LimitError`` (use ``read_phys_into`` with a buffer of your own for more).
    fn read_phys<'py>(&self, py: Python<'py>, addr: PhysAddr, size: usize) -> PyResult<Bound<'py, PyBytes>> {
        let addr = addr.0;
        let d = self.get()?;
        if size >= DETACH_BYTES {
            py.detach(|| d.check_backed(addr, size as u64)).map_err(|e| e.in_file(d.path()))?;
        }
        if size as u64 > MAX_READ_PHYS {
            let e = Error::at(
                ErrorKind::Limit,
                Some(Location::Phys(addr)),
                format!("read_phys of {size} bytes is more than MAX_READ_PHYS ({MAX_READ_PHYS}); use read_phys_into"),
            );
            return Err(e.in_file(d.path()).into());
        }
        let read = |buf: &mut [u8]| d.read_phys(addr, buf).map_err(|e| e.in_file(d.path()));
        PyBytes::new_with(py, size, |buf| {
            if size >= DETACH_BYTES {
                py.detach(|| read(buf))?;
            } else {
                read(buf)?;
            }
            Ok(())
        })
    }

    /// A read-only ``memoryview`` of guest-physical ``[addr, addr + size)``. Zero-copy (a view of
    /// the file's mapping) when the file is mapped and stores the range as one run of plain bytes
    /// (raw, LiME, one ELF PT_LOAD's file bytes); otherwise (kdump pages are compressed; a range
    /// spanning stored runs; ``mmap=False``) the bytes are copied into a buffer the view owns.
    /// ``view.obj.mapped`` says which. A view keeps its mapping alive after ``close()``; a file
    /// that shrinks under a live view reads as zeros past its new end (no SIGBUS), and reads of
    /// the dump then raise ``TruncatedError``. Absent memory raises ``AbsentMemoryError``; a
    /// copy above ``MAX_READ_PHYS`` raises ``LimitError``.
    fn view_phys<'py>(&self, py: Python<'py>, addr: PhysAddr, size: usize) -> PyResult<Bound<'py, PyAny>> {
        let addr = addr.0;
        let d = self.get()?;
        let mapped = d.phys_file_offset(addr, size as u64).is_some() && d.map_now().is_some();
        if !mapped && size as u64 > MAX_READ_PHYS {
            let e = Error::at(
                ErrorKind::Limit,
                Some(Location::Phys(addr)),
                format!("a copied view_phys of {size} bytes is more than MAX_READ_PHYS ({MAX_READ_PHYS})"),
            );
            return Err(e.in_file(d.path()).into());
        }
        let v = py.detach(|| d.view_phys(addr, size)).map_err(|e| e.in_file(d.path()))?;
        super::mapview::PyPhysView::memoryview(py, v)
    }

    /// Fill a writable buffer (``bytearray``, ``memoryview``, numpy array of bytes) from
    /// guest-physical memory at ``addr``. The buffer must be writable and C-contiguous; its whole
    /// length in bytes is read. The dump is read with the GIL released into a private chunk of at
    /// most 8 MiB, which is then copied into ``buffer`` through the buffer protocol with the GIL
    /// held: the library never writes the caller's memory while other Python threads run, and
    /// never reads it. Chunks are written front to back; on an error the buffer holds the chunks
    /// read before it.
    fn read_phys_into(&self, py: Python<'_>, addr: PhysAddr, buffer: &Bound<'_, PyAny>) -> PyResult<()> {
        let addr = addr.0;
        // A flat byte view of the caller's buffer (C-contiguous; any item type).
        let view = pyo3::types::PyMemoryView::from(buffer)?;
        if view.getattr("readonly")?.is_truthy()? {
            return Err(PyValueError::new_err("read_phys_into needs a writable buffer"));
        }
        if !view.getattr("c_contiguous")?.is_truthy()? {
            return Err(PyValueError::new_err("read_phys_into needs a C-contiguous buffer"));
        }
        let flat = view.call_method1("cast", ("B",))?;
        let len: usize = flat.len()?;
        let d = self.get()?;
        if len == 0 {
            return Ok(());
        }
        if len >= DETACH_BYTES {
            py.detach(|| d.check_backed(addr, len as u64)).map_err(|e| e.in_file(d.path()))?;
        }
        let mut chunk = vec![0u8; len.min(INTO_CHUNK)];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(INTO_CHUNK);
            let at = addr.checked_add(done as u64).ok_or_else(|| {
                Error::absent(addr, "the range runs past the top of the physical address space").in_file(d.path())
            })?;
            let part = &mut chunk[..n];
            if n >= DETACH_BYTES { py.detach(|| d.read_phys(at, part)) } else { d.read_phys(at, part) }
                .map_err(|e| e.in_file(d.path()))?;
            let target = if n == len {
                flat.clone()
            } else {
                flat.get_item(pyo3::types::PySlice::new(py, done as isize, (done + n) as isize, 1))?
            };
            pyo3::buffer::PyBuffer::<u8>::get(&target)?.copy_from_slice(py, part)?;
            done += n;
        }
        Ok(())
    }

    /// The guest-physical address of kernel virtual address ``vaddr``, from the kernel's own page
    /// tables (found through VMCOREINFO). ``UnmappedError`` when the kernel does not map it.
    fn translate(&self, py: Python<'_>, vaddr: VirtAddr) -> PyResult<u64> {
        super::kview::translate(py, &*self.scanned(py)?, vaddr.0)
    }

    /// Read ``size`` bytes of kernel virtual memory at ``vaddr``: ``UnmappedError`` for an address
    /// the kernel does not map, ``AbsentMemoryError`` for memory the dump lacks.
    fn read_virt<'py>(&self, py: Python<'py>, vaddr: VirtAddr, size: usize) -> PyResult<Bound<'py, PyBytes>> {
        super::kview::read_virt(py, &*self.scanned(py)?, vaddr.0, size)
    }

    /// Fill a writable buffer from kernel virtual memory at ``vaddr``, as ``read_phys_into`` does
    /// (a strided buffer of bytes is accepted too).
    fn read_virt_into(&self, py: Python<'_>, vaddr: VirtAddr, buffer: &Bound<'_, PyAny>) -> PyResult<()> {
        super::kview::read_virt_into(py, &*self.scanned(py)?, vaddr.0, buffer)
    }

    /// The kernel log, oldest record first (lockless ring of 5.10+, or log_buf of 3.5–5.9).
    fn kernel_log(&self, py: Python<'_>) -> PyResult<Vec<super::kview_log::LogRecord>> {
        super::kview_log::kernel_log(py, &*self.scanned(py)?)
    }

    /// The kernel log as ``makedumpfile --dump-dmesg`` writes it; ``caller_id=True`` adds the
    /// ``[  T123]`` column of makedumpfile 1.7.5+.
    #[pyo3(signature = (caller_id = false))]
    fn dmesg(&self, py: Python<'_>, caller_id: bool) -> PyResult<String> {
        super::kview_log::dmesg(py, &*self.scanned(py)?, caller_id)
    }

    /// The kernel's symbols (kallsyms, Linux 6.0+), decoded once and cached.
    #[getter]
    fn symbols(&self, py: Python<'_>) -> PyResult<Py<super::kview_log::KernelSymbols>> {
        super::kview_log::symbols(py, &self.scanned(py)?, &self.symbols)
    }

    /// Every thread, from init_task (pid 0 ``swapper/0`` included), read with the kernel's own
    /// types (its BTF): :class:`NoBtfError` without them.
    fn tasks(&self, py: Python<'_>) -> PyResult<Vec<super::objects::Task>> {
        super::objects::tasks(py, &*self.scanned(py)?)
    }

    /// The loaded modules, newest first (as /proc/modules lists them).
    fn modules(&self, py: Python<'_>) -> PyResult<Vec<super::objects::Module>> {
        super::objects::modules(py, &*self.scanned(py)?)
    }

    /// The symbol ``address`` is in (the kernel's kallsyms inside the kernel image, else a
    /// module's symbols), or None.
    fn symbolize(&self, py: Python<'_>, address: u64) -> PyResult<Option<super::objects::Symbol>> {
        super::objects::symbolize(py, &*self.scanned(py)?, address)
    }

    /// The kernel's own types, from the BTF it keeps in memory (found through kallsyms'
    /// ``__start_BTF``, or by a scan of the kernel image when kallsyms has no data symbols).
    /// ``NoBtfError`` when the kernel has none (built without ``CONFIG_DEBUG_INFO_BTF``).
    #[getter]
    fn types(&self, py: Python<'_>) -> PyResult<super::types::Types> {
        super::types::types(py, &*self.scanned(py)?)
    }

    /// Module ``name``'s own types: its split BTF, found through the kernel's ``btf_modules``
    /// list (a data symbol: kallsyms must hold it). ``MissingTypeError`` when no loaded module of
    /// that name has BTF.
    fn module_types(&self, py: Python<'_>, name: &str) -> PyResult<super::types::Types> {
        super::types::module_types(py, &*self.scanned(py)?, name)
    }

    /// The kernel's symbols decoded afresh (not cached) from one source: ``"auto"`` (as
    /// ``symbols``: VMCOREINFO's ``SYMBOL(kallsyms_*)`` when present, else a scan),
    /// ``"vmcoreinfo"`` or ``"scan"`` (find the tables in the kernel image by their structure
    /// even when VMCOREINFO names them).
    #[pyo3(signature = (source = "auto"))]
    fn kernel_symbols(&self, py: Python<'_>, source: &str) -> PyResult<super::kview_log::KernelSymbols> {
        super::kview_log::kernel_symbols(py, &self.scanned(py)?, source)
    }

    /// The kernel object of type ``type`` (a C spelling: ``"struct task_struct"``) at a symbol
    /// (kallsyms, then the VMCOREINFO text's ``SYMBOL()``) or at a kernel virtual address.
    /// ``MissingSymbolError`` for an unknown symbol, ``MissingTypeError`` for an unknown type.
    fn value(&self, py: Python<'_>, symbol_or_address: &Bound<'_, PyAny>, r#type: &str) -> PyResult<super::value::Value> {
        super::value::value(py, self.scanned(py)?, symbol_or_address, r#type)
    }

    /// Every vCPU of the dump: registers from its notes (NT_PRSTATUS, and QEMU's CPU state on
    /// x86), ``pc`` symbolized, and the task it was running (the kernel's per-CPU data).
    fn cpus(&self, py: Python<'_>) -> PyResult<Vec<super::cpus::Cpu>> {
        super::cpus::cpus(py, &*self.scanned(py)?)
    }

    /// Why the guest crashed: the panic CPU and task, the panic or Oops message and its log
    /// record, the taint, CRASHTIME; None when the guest did not panic (a live dump).
    fn panic_info(&self, py: Python<'_>) -> PyResult<Option<super::cpus::PanicInfo>> {
        super::cpus::panic_info(py, &*self.scanned(py)?)
    }

    /// The kernel's address-space layout as the translation sees it: ``arch``, ``levels``,
    /// ``page_size``, ``va_bits``, ``root`` (physical address of the top page table),
    /// ``page_offset`` (start of the direct map: on x86_64 discovered from the page tables),
    /// ``page_offset_error``, ``pae`` (i386).
    fn kernel_layout(&self, py: Python<'_>) -> PyResult<super::records::KernelLayout> {
        super::kview::kernel_layout(py, &*self.scanned(py)?)
    }

    /// Scan guest-physical memory for VMCOREINFO notes at page starts (4 KiB steps: the kernel's
    /// note buffer is page-aligned): a note header with namesz 11, descsz 1..1 MiB, type 0 in the
    /// dump's byte order (either for LiME, AVML and raw), name ``VMCOREINFO``, text starting
    /// ``OSRELEASE=``, and QEMU's intake rules. Returns every readable candidate in address order
    /// (``note_paddr`` says where). ``progress(done_bytes, total_bytes)`` is called at most every
    /// 100 ms and at the end; returning ``False`` cancels the scan (``CancelledError``). The GIL
    /// is released while scanning; Ctrl-C interrupts it.
    #[pyo3(signature = (progress = None))]
    fn scan_vmcoreinfo(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<Vec<VmcoreInfo>> {
        let d = self.get()?;
        let mut p = super::progress::Progress::new(progress, Some(d.path().clone()));
        let found = py.detach(|| {
            let report = d.scan_vmcoreinfo(&mut |done, total| p.tick(done, total))?;
            let found = report.valid().filter_map(|c| d.read_candidate(c).ok()).collect::<Vec<_>>();
            d.check_mapping()?;
            Ok::<_, Error>(found)
        });
        let blobs = p.finish(found, d.path())?;
        Ok(blobs.into_iter().map(|b| VmcoreInfo::new(b, Some(d.path().clone()))).collect())
    }

    /// Guest-physical ranges the dump holds: sorted, merged ``(start, end)`` pairs, end exclusive.
    fn memory_ranges(&self) -> PyResult<Vec<(u64, u64)>> {
        let d = self.get()?;
        let ranges = d.memory_ranges().map_err(|e| e.in_file(d.path()))?;
        Ok(ranges.into_iter().map(|r| (r.start, r.end)).collect())
    }

    /// Read the guest note that ``entry`` (the fw_cfg ``etc/vmcoreinfo`` contents) points at,
    /// exactly as QEMU does at dump time, with QEMU's intake rules applied.
    fn read_guest_note(&self, py: Python<'_>, entry: &FwCfgEntry) -> PyResult<VmcoreInfo> {
        let d = self.get()?;
        let e = entry.core();
        let blob = py.detach(|| d.read_guest_note(&e)).map_err(|err| err.in_file(d.path()))?;
        Ok(VmcoreInfo::new(blob, Some(d.path().clone())))
    }

    /// Format-specific facts (header fields, compression, phys_base sources, ...) as a frozen
    /// :class:`Details`: fields that do not apply to the format are None. It also reads like the
    /// dict it used to be (``det["block_size"]``, ``"compression" in det``, ``det.as_dict()``),
    /// without the keys that do not apply. With ``pages=True``, kdump page counts and codecs too
    /// (scans every page descriptor once). Gathered with the GIL released (a memory image's
    /// scan may run here; Ctrl-C interrupts it).
    #[pyo3(signature = (*, pages = false))]
    fn details(&self, py: Python<'_>, pages: bool) -> PyResult<crate::details::DumpDetails> {
        let d = self.scanned(py)?;
        py.detach(|| crate::details::DumpDetails::of(&d, pages)).map_err(|e| e.in_file(d.path()).into())
    }

    /// Write the dump as a standard ELF core at ``path``: program headers right after the ELF
    /// header, one PT_NOTE with the dump's notes and the VMCOREINFO note last, one PT_LOAD per
    /// physical range (``p_paddr`` = ``p_vaddr`` = the physical address). ``exclude_zero`` leaves
    /// zero pages out of the file as ``p_filesz < p_memsz`` tails (as ``makedumpfile -E``; one
    /// more read pass). A dump without a VMCOREINFO note gets the one a scan of its memory finds
    /// (reported in ``diagnostics``). The file is written under a temporary name and renamed
    /// when complete: an error, or an exception from ``progress(done, total)`` (KeyboardInterrupt
    /// included), leaves no file. The GIL is released; ``progress`` is called at most 4 times a
    /// second. Returns a :class:`WriteReport` (``vmcoreinfo``: ``"note"``, ``"scan"`` or
    /// ``"absent"``, ``diagnostics``, ``segments``, ``pages``, ``zero_pages``, ``file_bytes``,
    /// ...; it also reads like the dict it used to be). ``path`` is a ``str``, ``bytes`` or
    /// ``os.PathLike``; returning ``False`` from ``progress`` cancels (``CancelledError``).
    #[pyo3(signature = (path, *, exclude_zero = false, progress = None))]
    fn write_elf(
        &self,
        py: Python<'_>,
        path: super::paths::PyPath,
        exclude_zero: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<super::records::WriteReport> {
        super::convert::elf(py, self.get()?, path.path, exclude_zero, progress)
    }

    /// Write the dump as a kdump-compressed file (header version 6) at ``path``, pages compressed
    /// with ``compression`` (``"zlib"``, ``"zstd"``, ``"snappy"``, ``"lzo"`` or ``"none"``) on all
    /// cores, zero pages stored once. utsname names the machine and the release, the sub-header
    /// holds phys_base as the VMCOREINFO text gives it (QEMU's header misreads x86_64's decimal
    /// text as hex), the VMCOREINFO text and the notes. ``"lzo"`` raises
    /// ``UnsupportedFormatError`` in a build without the (GPL-2.0) ``lzo`` feature.
    /// ``flattened=True`` writes makedumpfile's flattened format straight to ``path`` (a pipe,
    /// ``/dev/stdout``; ``makedumpfile -R`` reassembles it): a stream cannot be taken back, so
    /// after an error it ends without its end marker. Otherwise as :meth:`write_elf`.
    #[pyo3(signature = (path, compression = "zlib", *, flattened = false, progress = None))]
    fn write_kdump(
        &self,
        py: Python<'_>,
        path: super::paths::PyPath,
        compression: &str,
        flattened: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<super::records::WriteReport> {
        super::convert::kdump(py, self.get()?, path.path, compression, flattened, progress)
    }

    /// Close the dump; further use raises ``ClosedError``. Idempotent.
    fn close(&self) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let path = self.path.bind(py).to_string_lossy().into_owned();
        match self.get() {
            Ok(d) => format!(
                "<vmcoreinfo.Dump {:?} format={} machine={}>",
                path,
                d.format().name(),
                d.machine_if_known().unwrap_or("(not scanned yet)")
            ),
            Err(_) => format!("<vmcoreinfo.Dump {:?} closed>", path),
        }
    }
}
