"""Atomic files and folders: complete or absent, never a half-written result, readable like plain files."""

import os
import stat

import pytest

from affectflow.core.files import atomic_folder, atomic_write_text


def test_atomic_write_gives_the_umask_permissions_not_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_atomic_folder_replaces_the_old_folder_only_when_complete(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.csv").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(out) as tmp:
        (tmp / "new.csv").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left behind
    assert [p.name for p in out.iterdir()] == ["old.csv"]
    with atomic_folder(out) as tmp:
        (tmp / "new.csv").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.csv"]
    assert stat.S_IMODE(out.stat().st_mode) & 0o055 == 0o055  # group and others may read it (umask 022)
