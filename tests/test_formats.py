"""The one format list: the native table is what every Python surface accepts."""

import typing

import vmcoreinfo
from vmcoreinfo import _types


def test_formats_are_the_native_table_with_raw_last() -> None:
    names = [name for name, _ in vmcoreinfo.FORMATS]
    assert len(names) == len(set(names))
    assert names[-1] == "raw"
    images = {name for name, image in vmcoreinfo.FORMATS if image}
    assert images == {"lime", "avml", "raw"}


def test_format_name_literal_is_the_native_table() -> None:
    assert set(typing.get_args(_types.FormatName)) == {name for name, _ in vmcoreinfo.FORMATS}
