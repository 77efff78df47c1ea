import h5py
import numpy as np
import pytest

from affectflow.io.store import (
    Provenance,
    ShardReader,
    ShardWriter,
    StoreError,
    VideoRecord,
    video_id_from_key,
    video_key,
    write_shard,
)


def _rec(vid: str, n: int = 5) -> VideoRecord:
    return VideoRecord(vid, {"x": np.arange(n, dtype=np.float32), "names": np.array(["a", "b"])}, {"fps": 25.0})


def test_roundtrip_with_provenance(tmp_path):
    p = tmp_path / "s0000.h5"
    prov = Provenance(stage="faces", model="mediapipe", weights_sha256="ab" * 32, config={"crop_size": 224})
    write_shard(p, prov, [_rec("v1"), _rec("v2", 7)])
    with ShardReader(p, stage="faces", model="mediapipe") as r:
        assert r.video_ids() == ["v1", "v2"]
        rec = r.read("v2")
        assert rec.arrays["x"].shape == (7,)
        assert list(rec.arrays["names"]) == ["a", "b"]
        assert rec.attrs["fps"] == 25.0
        assert r.provenance.config == {"crop_size": 224}
        assert r.provenance.weights_sha256 == "ab" * 32


def test_reader_checks_stage_and_model(tmp_path):
    p = write_shard(tmp_path / "a.h5", Provenance(stage="media"), [_rec("v")])
    with pytest.raises(StoreError, match="expected a 'faces' shard"):
        ShardReader(p, stage="faces")
    with pytest.raises(StoreError, match="expected model 'x'"):
        ShardReader(p, model="x")


def test_crash_inside_writer_leaves_nothing_and_keeps_old_file(tmp_path):
    p = tmp_path / "s.h5"
    write_shard(p, Provenance(stage="media"), [_rec("old")])
    before = p.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(p, Provenance(stage="media")) as w:
            w.add(_rec("new"))
            raise RuntimeError("boom")
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["s.h5"]


def test_unfinished_file_is_refused(tmp_path):
    p = tmp_path / "s.h5"
    with h5py.File(p, "w") as f:  # what a writer killed before the rename would have produced
        f.attrs.update(Provenance(stage="media").to_attrs())
        f.attrs["complete"] = False
    with pytest.raises(StoreError, match="incomplete .*: delete it and rerun, and Snakemake makes it again"):
        ShardReader(p)


def test_foreign_and_missing_files_are_refused(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ShardReader(tmp_path / "nope.h5")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(StoreError, match="not a readable HDF5 .*cut short or damaged: delete it and rerun"):
        ShardReader(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "plain.h5", "w"):
        pass
    with pytest.raises(StoreError, match="not an affectflow shard"):
        ShardReader(tmp_path / "plain.h5")


def test_duplicate_video_rejected(tmp_path):
    with pytest.raises(StoreError, match="written twice"):
        write_shard(tmp_path / "d.h5", Provenance(stage="media"), [_rec("v"), _rec("v")])
    assert not (tmp_path / "d.h5").exists()


@pytest.mark.parametrize("vid", ["../../x", "a/b", ".", "..", "name with space", "тест;rm -rf $HOME`", "a%2Fb"])
def test_video_key_is_safe_and_reversible(vid, tmp_path):
    key = video_key(vid)
    assert "/" not in key and key not in (".", "..") and " " not in key
    assert video_id_from_key(key) == vid
    p = write_shard(tmp_path / "k.h5", Provenance(stage="media"), [_rec(vid)])
    with ShardReader(p) as r:
        assert r.video_ids() == [vid]
        assert vid in r
    assert sorted(f.name for f in tmp_path.iterdir()) == ["k.h5"]


def test_skipped_recorded(tmp_path):
    p = tmp_path / "s.h5"
    with ShardWriter(p, Provenance(stage="media")) as w:
        w.add(_rec("ok"))
        w.set_skipped([("bad", "corrupt header")])
    with ShardReader(p) as r:
        assert r.skipped() == [("bad", "corrupt header")]


def test_video_streamed_in_batches_reads_back_whole_and_in_rows(tmp_path):
    p = tmp_path / "s.h5"
    crops = np.arange(23 * 4 * 4 * 3, dtype=np.uint8).reshape(23, 4, 4, 3)
    with ShardWriter(p, Provenance(stage="faces")) as w:
        with w.video("v 1") as out:
            for start in range(0, 23, 10):  # 10 + 10 + 3 rows
                out.append({"crops": crops[start:start + 10], "frame_index": np.arange(start, min(start + 10, 23))})
            out.attrs = {"n": 23, "warnings": ["w"]}
        with w.video("empty") as out:
            out.append({"crops": crops[:0], "frame_index": np.zeros(0, np.int64)})
    with ShardReader(p, stage="faces") as r:
        rec = r.read("v 1")
        np.testing.assert_array_equal(rec.arrays["crops"], crops)
        assert rec.attrs == {"video_id": "v 1", "n": 23, "warnings": ["w"]}
        assert set(r.read("v 1", names=["frame_index"]).arrays) == {"frame_index"}
        with pytest.raises(StoreError, match="no array"):
            r.read("v 1", names=["nope"])
        rows = np.array([0, 1, 5, 6, 7, 20, 22])
        got = list(r.iter_rows("v 1", "crops", rows, batch=3))
        assert [len(b) for b in got] == [3, 3, 1]
        np.testing.assert_array_equal(np.concatenate(got), crops[rows])
        every = list(r.iter_rows("v 1", "crops", np.arange(23), batch=10))  # all rows: contiguous reads
        assert [len(b) for b in every] == [10, 10, 3]
        np.testing.assert_array_equal(np.concatenate(every), crops)
        sparse = list(r.iter_rows("v 1", "crops", np.array([0, 11, 22]), batch=3))  # three reads of one row
        assert [len(b) for b in sparse] == [3]
        np.testing.assert_array_equal(sparse[0], crops[[0, 11, 22]])
        (empty,) = r.iter_rows("v 1", "crops", np.array([], int))
        assert empty.shape == (0, 4, 4, 3) and empty.dtype == np.uint8
        with pytest.raises(ValueError, match="increasing"):
            next(r.iter_rows("v 1", "crops", np.array([3, 2])))
        assert r.read("empty").arrays["crops"].shape == (0, 4, 4, 3)


def test_appended_rows_across_chunks_keep_every_value_and_a_bad_batch_writes_nothing(tmp_path):
    """The appended arrays stay open for the video: batches that end inside a chunk (raw crops of 6 a chunk,
    lzf rows of 4096) still read back whole; a batch whose rows do not fit is refused before any of its arrays
    is written, so the arrays keep one length; a finished video takes no more rows."""
    p = tmp_path / "s.h5"
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (150, 224, 224, 3), dtype=np.uint8)
    score = rng.random(150).astype(np.float32)
    with ShardWriter(p, Provenance(stage="faces")) as w:
        with w.video("v", uncompressed=("crops",)) as out:
            for start in range(0, 150, 13):
                out.append({"crops": crops[start:start + 13], "score": score[start:start + 13]})
            with pytest.raises(ValueError, match="rows of shape"):
                out.append({"score": score[:2], "crops": np.zeros((2, 8, 8, 3), np.uint8)})
            finished = out
        with pytest.raises(ValueError, match="after the video was finished"):
            finished.append({"crops": crops[:1], "score": score[:1]})
    with ShardReader(p, stage="faces") as r:
        rec = r.read("v")
        np.testing.assert_array_equal(rec.arrays["crops"], crops)
        np.testing.assert_array_equal(rec.arrays["score"], score)


def test_a_video_that_fails_part_way_is_left_out(tmp_path):
    p = tmp_path / "s.h5"
    with ShardWriter(p, Provenance(stage="faces")) as w:
        with pytest.raises(RuntimeError, match="decoder died"):
            with w.video("bad") as out:
                out.append({"x": np.ones(5)})
                raise RuntimeError("decoder died")
        with w.video("good") as out:
            out.append({"x": np.ones(2)})
        with pytest.raises(ValueError, match="unequal"):
            with w.video("uneven") as out:
                out.append({"x": np.ones(2), "y": np.ones(3)})
        with pytest.raises(ValueError, match="differ"):
            with w.video("renamed") as out:
                out.append({"x": np.ones(2)})
                out.append({"z": np.ones(2)})
        with pytest.raises(StoreError, match="twice"):
            with w.video("good"):
                pass
    with ShardReader(p) as r:
        assert r.video_ids() == ["good"]
        assert r.provenance.stage == "faces"


def test_the_shard_is_written_through_the_one_atomic_write(tmp_path):
    """core.files.atomic_path: the temporary file is one remove_stale_temps knows, and the finished shard
    is readable like any output (the umask's permissions, not a private temporary file's)."""
    import os
    import stat

    from affectflow.io.store import remove_stale_temps

    p = tmp_path / "s0000.h5"
    old = os.umask(0o022)
    try:
        with ShardWriter(p, Provenance(stage="media")) as w:
            w.add(_rec("v"))
            (tmp,) = tmp_path.iterdir()
            assert tmp.name.startswith(".s0000.h5.") and tmp.suffix == ".tmp"
            assert remove_stale_temps(p) == []  # HDF5 holds it locked: a live writer's file
    finally:
        os.umask(old)
    assert [f.name for f in tmp_path.iterdir()] == ["s0000.h5"]
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


@pytest.mark.parametrize("rows", [[5], [0, 1, 2, 3], [0, 2, 4, 6], [0, 1, 1000, 1001], [0, 3, 4, 5, 6, 7, 40],
                                  list(range(0, 72000, 40)), [3, 4, 9, 10, 11, 12, 13, 30]])
def test_read_spans_cover_the_rows_and_read_at_most_twice_as_many(rows):
    """A few faces scattered over a 2-hour video must not read the whole video's crops (72,000 rows) at once."""
    from affectflow.io.store import read_spans

    rows = np.asarray(rows)
    spans = read_spans(rows)
    np.testing.assert_array_equal(np.concatenate(spans), rows)
    for span in spans:
        assert span[-1] - span[0] + 1 <= max(2 * len(span), 1), span
    if np.all(np.diff(rows) == 1):
        assert len(spans) == 1  # consecutive rows: one read
