"""Atomic files and folders: complete or absent, never a half-written result, readable like plain files."""

import os
import stat

import pytest

from affectflow.core.files import atomic_files_in, atomic_folder, atomic_write_text, remove_stale_folders


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


def test_atomic_folder_takes_the_place_of_a_file_or_a_link_and_leaves_nothing_beside_it(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    for old in ("file", "link"):
        out = tmp_path / "sub" / old
        out.parent.mkdir(exist_ok=True)
        if old == "file":
            out.write_text("a file")
        else:
            out.symlink_to(elsewhere, target_is_directory=True)
        with atomic_folder(out) as tmp:
            (tmp / "new.csv").write_text("new")
        assert out.is_dir() and not out.is_symlink() and [p.name for p in out.iterdir()] == ["new.csv"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["file", "link"]
    assert (elsewhere / "keep.txt").read_text() == "kept"  # a link is replaced, never followed


def test_remove_stale_folders_removes_only_what_dead_writers_left(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    import socket

    host = socket.gethostname()
    out = tmp_path / "demo"
    stale = [tmp_path / f".demo.building-{dead}-abc", tmp_path / f".demo.old-{dead}",
             tmp_path / f".demo.building-{dead}@{host}-q1_z", tmp_path / f".demo.old-{dead}@{host}-q1_z"]
    live = [tmp_path / f".demo.building-{os.getpid()}-xyz", tmp_path / f".demos.building-{dead}-abc",
            tmp_path / f".demo.building-{os.getpid()}@{host}-xyz",
            tmp_path / f".demo.building-{dead}@node-07.cluster-abc"]  # another host's: its process is not ours
    for p in stale + live:
        p.mkdir()
    assert sorted(remove_stale_folders(out)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(live)
    assert remove_stale_folders(tmp_path / "missing" / "demo") == []


def test_atomic_files_in_swaps_files_into_a_folder_that_stays(tmp_path):
    dest = tmp_path / "checkpoint"
    dest.mkdir()
    (dest / "config.json").write_text("old")
    (dest / "extra.txt").write_text("kept")
    reader = open(dest / "config.json")  # a job that has the old file open keeps reading its bytes
    with pytest.raises(RuntimeError), atomic_files_in(dest) as tmp:
        (tmp / "config.json").write_text("half")
        raise RuntimeError("killed")
    assert (dest / "config.json").read_text() == "old"
    with atomic_files_in(dest) as tmp:
        (tmp / "config.json").write_text("new")
        (tmp / "model.bin").write_bytes(b"\0")
    assert reader.read() == "old"
    reader.close()
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "extra.txt", "model.bin"]
    assert (dest / "config.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temporary folder left


def test_a_name_past_the_file_system_limit_is_cut_and_tagged_and_written_atomically(tmp_path):
    from affectflow.core.files import NAME_MAX, atomic_write_text, bounded_name

    assert bounded_name("single face", ".csv") == "single face.csv"
    fits = "x" * (NAME_MAX - 4)
    assert bounded_name(fits, ".csv") == fits + ".csv"
    a, b = "访" * 100 + "a", "访" * 100 + "b"  # 301 bytes each, the same first 300
    na, nb = bounded_name(a, ".csv"), bounded_name(b, ".csv")
    assert na != nb and all(len(n.encode()) <= NAME_MAX for n in (na, nb))
    assert na.startswith("访" * 79) and na.endswith(".csv") and na.encode().decode() == na  # cut between characters
    assert bounded_name(a, ".csv") == na  # the same id, the same file, in every run
    for name in (na, fits + ".csv"):  # the temporary file beside it fits as well
        atomic_write_text(tmp_path / name, "x")
        assert (tmp_path / name).read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([na, fits + ".csv"])


def test_a_writer_removes_what_a_killed_writer_of_the_same_folder_left(tmp_path):
    """A killed predictions job leaves ``.predictions.building-<pid>-*`` (20,000 CSVs on a large run): the next
    job's writer removes it first, and its own folder is the only one that ends up there."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    left = tmp_path / f".predictions.building-{dead}-abc"
    (left / "sub").mkdir(parents=True)
    (left / "sub" / "v.csv").write_text("x")
    with atomic_folder(tmp_path / "predictions") as tmp:
        assert not left.exists()
        (tmp / "v.csv").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["predictions"]
