from collections import Counter

import pytest

from affectflow.data.units import Unit, UnitsError, UnitsTable, merge_units, shard_of


def test_shard_is_stable_and_spread():
    assert shard_of("video_1", 8) == shard_of("video_1", 8)
    counts = Counter(shard_of(f"vid{i}", 8) for i in range(4000))
    assert set(counts) == {f"s{i:04d}" for i in range(8)}
    assert min(counts.values()) > 400  # roughly uniform (expected 500)


def test_shard_known_value():
    # a fixed value guards against an accidental change of the hash (it would reshuffle every dataset)
    assert shard_of("video_1", 100) == "s0084"


def test_only_nonempty_shards():
    t = UnitsTable([Unit("a", "a.mp4", "train", shard_of("a", 50)), Unit("b", "b.mp4", "val", shard_of("b", 50))])
    assert t.shards() == sorted({shard_of("a", 50), shard_of("b", 50)})


def test_tsv_roundtrip(tmp_path):
    t = UnitsTable([Unit("a b", "x/a b.mp4", "train", "s0001", expr_labels="l/a b.txt")])
    t.write_tsv(tmp_path / "u.tsv")
    assert UnitsTable.read_tsv(tmp_path / "u.tsv").units == t.units


def test_duplicates_and_bad_split():
    with pytest.raises(UnitsError, match="duplicate video id 'a'"):
        UnitsTable([Unit("a", "1.mp4", "train", "s0000"), Unit("a", "2.mp4", "train", "s0000")])
    with pytest.raises(UnitsError, match="split 'dev'"):
        UnitsTable([Unit("a", "1.mp4", "dev", "s0000")])


def test_merge_combines_tasks(tmp_path):
    a = [Unit("v", "d/v.mp4", "train", "s0000", expr_labels="e.txt")]
    b = [Unit("v", "d/v.mp4", "train", "s0000", emi_labels="emi.csv")]
    t = merge_units([a, b])
    assert t.get("v").expr_labels == "e.txt" and t.get("v").emi_labels == "emi.csv"
    with pytest.raises(UnitsError, match="duplicate video id"):
        merge_units([a, [Unit("v", "other/v.mp4", "train", "s0000")]])
    with pytest.raises(UnitsError, match="split"):
        merge_units([a, [Unit("v", "d/v.mp4", "val", "s0000")]])
