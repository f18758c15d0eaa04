"""Real-guest conformance of typed values and module BTF, on every guest with a kernel BTF:

- ``Dump.value`` reads ``init_task`` (``comm`` ``swapper/0``, pid 0), ``init_uts_ns`` (its
  release equals VMCOREINFO's ``OSRELEASE``) and ``saved_command_line`` (a ``char *``: equals
  the command line the guest reported) -- wherever kallsyms or VMCOREINFO names the symbol;
- ``list_for_each_entry`` over ``init_task.tasks`` gives the thread-group leaders that
  ``Dump.tasks()`` lists, in order, and ``container_of`` of ``init_task.tasks.next`` is the first;
- missing types and members raise the typed errors naming them;
- ``Dump.module_types(name)``: every module the guest loaded has split BTF whose bytes in guest
  memory equal the ``.BTF`` section of the module's ``.ko`` file (the kernel keeps that section
  verbatim), whose types continue the kernel's, and whose own types are found through it.

Run:  VMCOREINFO_REALGUEST_DIR=... pytest -m realguest tests/realguest/test_value_realguest.py
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

try:
    import vmcoreinfo
except ImportError as e:  # collected even under -m "not realguest": fail only when run
    vmcoreinfo = None
    _IMPORT_ERROR = e
from realguest_support import generator, record

pytestmark = pytest.mark.realguest

# Values are read through the kernel view (tested in every format elsewhere): two formats here,
# QEMU's ELF and its compressed kdump file (makedumpfile -d 31 drops pages some walks need).
FORMATS = ("qemu-elf.core", "qemu-kdump-zlib.kdump")
CASES = [
    pytest.param(g, f, req, id=f"{g}/{f}")
    for g, s in generator.GUESTS.items()
    if s["driver"]
    for f, req in generator.PRODUCTS[g]
    if f in FORMATS
]
NO_BTF_ARCHES = {"i386"}


@pytest.fixture(autouse=True)
def _need_vmcoreinfo():
    if vmcoreinfo is None:
        pytest.fail(
            f"the vmcoreinfo extension is not importable ({_IMPORT_ERROR}); build it with `maturin develop`", pytrace=False
        )


def reported(guest, key: str) -> str | None:
    for line in guest.report.splitlines():
        if line.startswith(f"RGUEST {key} "):
            return line.split(" ", 2)[2]
    return None


def elf_section(data: bytes, want: bytes) -> bytes | None:
    """The bytes of section ``want`` of an ELF relocatable file (a kernel module)."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    is64, end = data[4] == 2, "<" if data[5] == 1 else ">"
    if is64:
        shoff, shentsize, shnum, shstrndx = struct.unpack_from(end + "Q10xHHH", data, 0x28)
        hdr = end + "IIQQQQIIQQ"
    else:
        shoff, shentsize, shnum, shstrndx = struct.unpack_from(end + "I10xHHH", data, 0x20)
        hdr = end + "IIIIIIIIII"
    secs = [struct.unpack_from(hdr, data, shoff + i * shentsize) for i in range(shnum)]
    names_at = secs[shstrndx][4]
    for s in secs:
        name = data[names_at + s[0] : data.index(b"\0", names_at + s[0])]
        if name == want:
            return data[s[4] : s[4] + s[5]]
    return None


@pytest.mark.parametrize("g,fname,required", CASES)
def test_values_of_the_kernels_own_variables(guests, g, fname, required):
    guest = guests[g]
    path = guest.path(fname, required)
    with vmcoreinfo.open(path) as dump:
        if generator.GUESTS[g]["arch"] in NO_BTF_ARCHES:
            with pytest.raises(vmcoreinfo.NoBtfError):
                dump.value(0, "struct task_struct")
            return
        tasks = dump.tasks()
        init = dump.value(tasks[0].address, "struct task_struct")
        assert init.comm.string_() == b"swapper/0" and int(init.pid) == 0 and init.type.name == "struct task_struct"
        assert init.member_("tasks.next").address == init.address + dump.types.offsetof("struct task_struct", "tasks.next")
        if "init_task" in dump.symbols:
            assert dump.value("init_task", "struct task_struct").address == init.address
        else:
            with pytest.raises(vmcoreinfo.MissingSymbolError, match="init_task"):
                dump.value("init_task", "struct task_struct")

        leaders = [t.address for t in tasks if t.pid == t.tgid and t.pid != 0]
        entries = list(vmcoreinfo.list_for_each_entry("struct task_struct", init.tasks, "tasks"))
        assert [e.address for e in entries] == leaders, path
        assert [int(e.pid) for e in entries] == [t.pid for t in tasks if t.pid == t.tgid and t.pid != 0]
        first = vmcoreinfo.container_of(init.tasks.next, "struct task_struct", "tasks")
        assert first.address == entries[0].address and first.comm.string_() == entries[0].comm.string_()

        uts = dump.value("init_uts_ns", "struct uts_namespace")  # VMCOREINFO's SYMBOL(init_uts_ns)
        assert uts.name.release.string_().decode() == dump.vmcoreinfo["OSRELEASE"]
        cmdline = reported(guest, "cmdline")
        if "saved_command_line" in dump.symbols:
            assert dump.value("saved_command_line", "char *").string_().decode() == cmdline
        field = "__state" if "__state" in {m.name for m in dump.types["struct task_struct"].members} else "state"
        assert isinstance(int(init.member_(field)), int)

        with pytest.raises(vmcoreinfo.MissingTypeError, match="struct no_such_type"):
            dump.value(init.address, "struct no_such_type")
        with pytest.raises(vmcoreinfo.MissingTypeError, match="no_such_member"):
            init.member_("no_such_member")
        with pytest.raises(AttributeError, match="no_such_member"):
            init.no_such_member  # noqa: B018
    record(path, f"values: init_task, init_uts_ns, {len(entries)} thread-group leaders by list_for_each_entry")


BTF_GUESTS = [g for g, s in generator.GUESTS.items() if s["driver"] and s["arch"] not in NO_BTF_ARCHES]


@pytest.mark.parametrize("g", BTF_GUESTS)
def test_module_btf_equals_the_modules_btf_section(guests, g):
    guest = guests[g]
    path = guest.path("qemu-elf.core", True)
    kos = [Path(p) for p in guest.manifest.get("extra_modules", [])]
    if guest.manifest.get("module"):
        kos.append(Path(guest.manifest["module"]))
    if not kos or not all(p.exists() for p in kos):
        pytest.skip(f"{g}: the guest's module files are not at the paths its manifest names")
    with vmcoreinfo.open(path) as dump:
        if "btf_modules" not in dump.symbols:
            # Debian's arm64 6.1 and x86_64 5.10 kallsyms hold no data symbols
            with pytest.raises(vmcoreinfo.MissingSymbolError, match="btf_modules"):
                dump.module_types("nls_utf8")
            record(path, "module types: MissingSymbolError (no btf_modules in kallsyms)")
            return
        kernel = dump.types
        loaded = {m.name for m in dump.modules()}
        checked = []
        for ko in kos:
            name = ko.name.split(".ko")[0].replace("-", "_")
            assert name in loaded, f"{path}: {name} not loaded"
            section = elf_section(generator.module_bytes(ko), b".BTF")
            assert section, f"{ko} has no .BTF section"
            mt = dump.module_types(name)
            assert mt.nbytes == len(section), f"{path}: {name}"
            assert dump.read_virt(mt.address, mt.nbytes) == section, f"{path}: {name}'s BTF differs from {ko}"
            assert len(mt) > 0
            own = [mt.by_id(len(kernel) + 1 + i) for i in range(len(mt))]
            assert {t.id for t in own} == set(range(len(kernel) + 1, len(kernel) + 1 + len(mt)))
            # the kernel's types are found through the module's, with the kernel's ids
            assert mt["struct list_head"].id == kernel["struct list_head"].id and mt["struct list_head"].size == 16
            if name == "qemu_fw_cfg":  # a type of the module's own, unknown to the kernel's BTF
                assert "struct fw_cfg_sysfs_entry" in mt and "struct fw_cfg_sysfs_entry" not in kernel
                assert mt.sizeof("struct fw_cfg_sysfs_entry") > 0
            checked.append(f"{name} ({len(mt)} types)")
        with pytest.raises(vmcoreinfo.MissingTypeError, match="no_such_module"):
            dump.module_types("no_such_module")
    record(path, "module BTF equals the .ko's .BTF: " + ", ".join(checked))
