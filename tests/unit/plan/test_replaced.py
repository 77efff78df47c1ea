"""A video replaced by a file not newer than its media shard: the shard is put before it in time, nothing else."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from affectflow.core.files import FileStat
from affectflow.data.units import Unit
from affectflow.io.store import ShardReader
from affectflow.plan.replaced import BEFORE_NS, backdate_replaced
from affectflow.stages.media import run_media

HOUR_NS = 3600 * 10**9


def _shard(tmp_path: Path, video_factory) -> tuple[list[Unit], Path]:
    a, b = video_factory("a.mp4", duration=1.0), video_factory("b.mp4", duration=1.5)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    units = [Unit(p.stem, str(p), "train", "s0000") for p in (a, b, broken)]
    for p in (a, b, broken):  # the dataset as it was unpacked, an hour before the run
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns - HOUR_NS))
    shard = tmp_path / "media" / "s0000.h5"
    run_media(units, shard)  # the broken file is skipped, and recorded too
    return units, shard


def test_the_media_shard_records_every_file_as_read(tmp_path, video_factory) -> None:
    units, shard = _shard(tmp_path, video_factory)
    with ShardReader(shard) as r:
        assert r.video_ids() == ["a", "b"] and [v for v, _ in r.skipped()] == ["broken"]
        assert r.sources() == {u.video_id: FileStat.of(u.path, content=True) for u in units}


def test_a_video_replaced_by_an_older_file_backdates_its_shard_only(tmp_path, video_factory) -> None:
    units, shard = _shard(tmp_path, video_factory)
    made = shard.stat().st_mtime_ns
    a, b = Path(units[0].path), Path(units[1].path)
    assert backdate_replaced({"s0000": units}, lambda s: tmp_path / "media" / f"{s}.h5") == []
    assert shard.stat().st_mtime_ns == made  # unchanged videos: nothing done

    os.utime(a)  # touched, newer than the shard: Snakemake sees it (and compares the checksum) by itself
    assert backdate_replaced({"s0000": units}, lambda s: shard) == [] and shard.stat().st_mtime_ns == made
    day = 24 * HOUR_NS
    os.utime(a, ns=(made - day, made - day))  # `touch -d yesterday`: another time, the same bytes
    assert backdate_replaced({"s0000": units}, lambda s: shard) == [] and shard.stat().st_mtime_ns == made
    whole = b.stat().st_mtime_ns // 10**9 * 10**9
    os.utime(b, ns=(whole, whole))  # restored from a tar archive: whole seconds, not even read again
    with ShardReader(shard) as r:
        recorded = r.sources()["b"]
    assert not recorded.changed(FileStat.of(b)) and recorded.sha256 == FileStat.of(b, content=True).sha256
    assert backdate_replaced({"s0000": units}, lambda s: shard) == [] and shard.stat().st_mtime_ns == made

    old = b.stat().st_mtime_ns
    shutil.copyfile(a, b)  # `cp -p`: another file, with the replaced file's older time
    os.utime(b, ns=(old, old))
    found = backdate_replaced({"s0000": units}, lambda s: shard)
    assert [(f.shard, f.video_ids) for f in found] == [(shard, ("b",))]
    assert shard.stat().st_mtime_ns == old - BEFORE_NS < b.stat().st_mtime_ns  # Snakemake now looks at b
    assert found[0].message() == (f"{shard}: 1 video(s) changed since it was made, by a file not newer than it (b): "
                                  "its modification time is put before theirs, so that Snakemake reruns it")
    with ShardReader(shard) as r:  # the shard itself is untouched
        assert r.video_ids() == ["a", "b"]

    # the next start: b is newer than the shard now, so it is Snakemake's to judge
    assert backdate_replaced({"s0000": units}, lambda s: shard) == []


def test_a_video_found_unchanged_is_not_hashed_again_while_its_size_and_time_stay(tmp_path, video_factory) -> None:
    """`touch -d` on a large dataset: hashed at the first start only. The entry is trusted as Snakemake trusts a
    file's time, so bytes swapped under the same size and nanosecond time pass; a nanosecond more is looked at."""
    units, shard = _shard(tmp_path, video_factory)
    seen = tmp_path / "media" / ".unchanged.json"
    made = shard.stat().st_mtime_ns
    a = Path(units[0].path)
    day = 24 * HOUR_NS
    os.utime(a, ns=(made - day, made - day))  # `touch -d yesterday`: another time, the same bytes
    assert backdate_replaced({"s0000": units}, lambda s: shard, seen=seen) == []
    with ShardReader(shard) as r:
        recorded = r.sources()["a"]
    assert json.loads(seen.read_text()) == {str(a): [recorded.size, made - day, recorded.sha256]}

    # other bytes of the same size under a's time to the nanosecond: taken on the entry's word
    size = a.stat().st_size
    a.write_bytes(Path(units[1].path).read_bytes()[:size].ljust(size, b"\0"))
    os.utime(a, ns=(made - day, made - day))
    assert backdate_replaced({"s0000": units}, lambda s: shard, seen=seen) == [] and shard.stat().st_mtime_ns == made
    # one nanosecond later: hashed again, and found replaced
    os.utime(a, ns=(made - day + 1, made - day + 1))
    assert [f.video_ids for f in backdate_replaced({"s0000": units}, lambda s: shard, seen=seen)] == [("a",)]
    assert json.loads(seen.read_text()) == {}  # a is no longer the recorded bytes: its entry is gone


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"x": 1'])
def test_a_malformed_record_of_unchanged_videos_is_read_as_empty(tmp_path, video_factory, content) -> None:
    units, shard = _shard(tmp_path, video_factory)
    seen = tmp_path / "media" / ".unchanged.json"
    seen.write_text(content)
    old = Path(units[1].path).stat().st_mtime_ns
    shutil.copyfile(units[0].path, units[1].path)
    os.utime(units[1].path, ns=(old, old))
    assert [f.video_ids for f in backdate_replaced({"s0000": units}, lambda s: shard, seen=seen)] == [("b",)]


def test_a_replaced_skipped_file_is_found_too(tmp_path, video_factory) -> None:
    units, shard = _shard(tmp_path, video_factory)
    broken = Path(units[2].path)
    old = broken.stat().st_mtime_ns
    shutil.copyfile(units[0].path, broken)  # the dataset's fixed release of a file that was damaged
    os.utime(broken, ns=(old, old))
    assert [f.video_ids for f in backdate_replaced({"s0000": units}, lambda s: shard)] == [("broken",)]


def test_shards_not_made_or_without_records_are_left_to_snakemake(tmp_path, video_factory) -> None:
    units, shard = _shard(tmp_path, video_factory)
    assert backdate_replaced({"s0001": units}, lambda s: tmp_path / "media" / f"{s}.h5") == []  # not made yet
    cut = tmp_path / "media" / "s0002.h5"
    cut.write_bytes(shard.read_bytes()[:1000])  # cut short: Snakemake's rerun-incomplete remakes it
    Path(units[1].path).unlink()  # a video gone: the media stage says so when it runs
    assert backdate_replaced({"s0000": units, "s0002": units}, lambda s: tmp_path / "media" / f"{s}.h5") == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root, to plan as another user (setpriv) on results it cannot change")
def test_a_shard_whose_time_cannot_be_moved_is_reported(video_factory) -> None:
    """Results that this user may read but not change (another user's run): the plan goes on, and the message
    says what to do."""
    import json
    import subprocess
    import sys
    import tempfile

    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]
    if subprocess.run([*nobody, "import affectflow.plan.replaced"], capture_output=True).returncode:
        pytest.skip("another user cannot run this checkout's python (a private folder above it)")
    root = Path(tempfile.mkdtemp(prefix="replaced-"))  # readable by all, unlike pytest's own folders
    try:
        root.chmod(0o755)
        units, shard = _shard(root, lambda name, **kw: shutil.copy(video_factory(name, **kw), root / name))
        a, b = Path(units[0].path), Path(units[1].path)
        old = b.stat().st_mtime_ns
        shutil.copyfile(a, b)
        os.utime(b, ns=(old, old))
        for p in (root, root / "media"):
            p.chmod(0o755)
        made = shard.stat().st_mtime_ns
        code = ("import json, sys; from affectflow.data.units import Unit; "
                "from affectflow.plan.replaced import backdate_replaced; "
                "units = [Unit(**u) for u in json.loads(sys.argv[1])]; "
                "print(json.dumps([[f.video_ids, f.error, f.message()] for f in "
                "backdate_replaced({'s0000': units}, lambda s: sys.argv[2])]))")
        arg = json.dumps([{"video_id": u.video_id, "path": u.path, "split": u.split, "shard": u.shard}
                          for u in units])
        out = subprocess.run([*nobody, code, arg, str(shard)], capture_output=True, text=True, check=True, cwd=root)
        [(ids, error, message)] = json.loads(out.stdout)
        assert ids == ["b"] and error == "Operation not permitted", out.stdout
        assert message.endswith(f"cannot be moved (Operation not permitted): Snakemake will not rerun it; add "
                                f"--forcerun {shard}")
        assert shard.stat().st_mtime_ns == made
    finally:
        shutil.rmtree(root)
