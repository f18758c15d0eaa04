"""When the suite runs against an installed wheel (scripts/wheel-check.sh sets
VMCOREINFO_EXPECT_INSTALLED_IN to the fresh venv), prove that the package under test is the
installed one, not the source tree, and that its version is the wheel's."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import vmcoreinfo

WHERE = os.environ.get("VMCOREINFO_EXPECT_INSTALLED_IN")


@pytest.mark.skipif(not WHERE, reason="only in scripts/wheel-check.sh (VMCOREINFO_EXPECT_INSTALLED_IN unset)")
def test_the_package_under_test_is_the_installed_wheel():
    venv = pathlib.Path(str(WHERE)).resolve()
    for mod in (vmcoreinfo, vmcoreinfo._native):
        f = pathlib.Path(str(mod.__file__)).resolve()
        assert venv in f.parents, f"{mod.__name__} imported from {f}, not from {venv}"
    want = os.environ.get("VMCOREINFO_EXPECT_VERSION")
    if want:
        assert vmcoreinfo.__version__ == want
    out = subprocess.run([sys.executable, "-m", "vmcoreinfo", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"vmcoreinfo {vmcoreinfo.__version__}"


def test_version_is_the_distribution_version():
    from importlib.metadata import version

    assert vmcoreinfo.__version__ == version("vmcoreinfo")
    assert vmcoreinfo.__version__[0].isdigit()
