"""Tests for avse.utils.fs: atomic writes."""

import os

import pytest

from avse.utils.fs import atomic_path


def test_atomic_file_gets_the_usual_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").read_text() == "x"
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o640


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("new")
            raise RuntimeError("boom")
    assert (tmp_path / "out.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
