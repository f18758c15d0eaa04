#!/usr/bin/env python3
"""Install PyPI pykdumpfile against Debian 12's libkdumpfile-dev 0.5.1.

pykdumpfile (0.3.x-0.5.5.1 on PyPI) ships cffi declarations for libkdumpfile >= 0.5.3;
against Debian's 0.5.1 headers `pip install pykdumpfile` fails to compile
(ADDRXLAT_PTE_ARM/RISCV32/RISCV64 undeclared; kdump_get_typed_attr has 2 arguments in 0.5.1;
kdump_set_filename(s) and kdump_attr_discard do not exist in 0.5.1). This script downloads
the sdist with pip, removes exactly those declarations (and the Python lines that use them:
set_filename(s) become no-ops, attr_discard is not needed with 0.5.1's un-refcounted values),
and pip-installs the result. Needs: apt-get install libkdumpfile-dev.
"""

import glob
import os
import re
import subprocess
import sys
import tarfile
import tempfile

VERSION = os.environ.get("PYKDUMPFILE_VERSION", "0.5.5.1")


def edit(path, old, new, count=1):
    s = open(path).read()
    if s.count(old) != count:
        sys.exit(f"{path}: expected {count}x {old!r}")
    open(path, "w").write(s.replace(old, new))


def main():
    tmp = tempfile.mkdtemp(prefix="pykdumpfile-")
    py = sys.executable
    subprocess.run(
        [py, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", f"pykdumpfile=={VERSION}", "-d", tmp],
        check=True,
    )
    (sdist,) = glob.glob(f"{tmp}/pykdumpfile-*.tar.gz")
    with tarfile.open(sdist) as t:
        t.extractall(tmp, filter="data")
    src = sdist[: -len(".tar.gz")]
    ax, kd = f"{src}/addrxlat.h", f"{src}/kdumpfile.h"
    s = open(ax).read()
    s = re.sub(r"^.*\bADDRXLAT_PTE_(ARM|RISCV32|RISCV64)\b.*\n", "", s, flags=re.M)
    open(ax, "w").write(s)
    edit(
        kd,
        "kdump_status kdump_get_typed_attr(kdump_ctx_t *ctx, const char *key,\n"
        "\t\t\t\t  kdump_attr_type_t type,\n\t\t\t\t  kdump_attr_value_t *valp);",
        "kdump_status kdump_get_typed_attr(kdump_ctx_t *ctx, const char *key,\n\t\t\t\t  kdump_attr_t *valp);",
    )
    edit(kd, "kdump_status kdump_set_filenames(kdump_ctx_t *ctx, unsigned n,\n\t\t\t\t const char *const *names);\n", "")
    edit(kd, "kdump_status kdump_set_filename(kdump_ctx_t *ctx, const char *name);\n", "")
    edit(kd, "void kdump_attr_discard(kdump_ctx_t *ctx, kdump_attr_t *attr);\n", "")
    ob = f"{src}/kdumpfile/objects.py"
    edit(
        ob,
        "status = C.kdump_set_filename(self._cdata, utils.to_bytes(name))",
        "status = OK  # libkdumpfile 0.5.1: no kdump_set_filename",
    )
    edit(
        ob,
        "status = C.kdump_set_filenames(self._cdata, len(names), array)",
        "status = OK  # libkdumpfile 0.5.1: no kdump_set_filenames",
    )
    edit(
        ob,
        "            C.kdump_attr_discard(self._ctx._cdata, v)",
        "            pass  # libkdumpfile 0.5.1: no kdump_attr_discard",
    )
    co = f"{src}/addrxlat/constants.py"
    s = open(co).read()
    s = re.sub(r"^(PTE_(ARM|RISCV32|RISCV64) = C\.)", r"# \1", s, flags=re.M)
    open(co, "w").write(s)
    subprocess.run([py, "-m", "pip", "install", "--quiet", src], check=True)
    subprocess.run([py, "-c", "import kdumpfile; kdumpfile.Context"], check=True, cwd="/")
    print(f"pykdumpfile {VERSION} installed (patched for libkdumpfile 0.5.1)")


if __name__ == "__main__":
    main()
