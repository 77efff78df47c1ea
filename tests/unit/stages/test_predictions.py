"""The predictions stage: the shard tables joined into one Parquet file and one CSV per video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affectflow.predict.frames import BASE_COLUMNS
from affectflow.stages.predictions import run_predictions


def test_csv_timestamps_keep_every_frame_of_a_long_recording_apart(tmp_path: Path) -> None:
    """A 4-hour recording at 29.97 fps: frame times past 10,000 s written to 6 significant digits would give
    two frames one time; the CSV keeps them to the microsecond and the scores to 6 significant digits."""
    n = 432_000
    t = np.arange(n) / 29.97
    table = pd.DataFrame({"video_id": "long", "frame": np.arange(n), "timestamp": t, "face": 1,
                          "m:happy": np.full(n, 1 / 3)})
    assert list(table.columns[:4]) == list(BASE_COLUMNS)
    table.to_parquet(tmp_path / "s0000.parquet", index=False)
    run_predictions([tmp_path / "s0000.parquet"], tmp_path / "predictions", tmp_path / "predictions.parquet")
    csv = pd.read_csv(tmp_path / "predictions" / "long.csv")
    assert len(csv) == n and (np.diff(csv["timestamp"]) > 0).all()
    assert np.abs(csv["timestamp"] - t).max() <= 5e-7
    assert (tmp_path / "predictions" / "long.csv").read_text().splitlines()[1] == "long,0,0.000000,1,0.333333"
    assert pd.read_parquet(tmp_path / "predictions.parquet")["timestamp"].equals(table["timestamp"])


def test_the_shards_are_joined_a_shard_at_a_time(tmp_path: Path) -> None:
    """The run's table is written shard by shard (never held whole): the same rows, in shard order, as the
    shards joined; a CSV per video; other columns or two videos with one CSV name are named and write nothing."""
    import pytest

    from affectflow.stages.predictions import PredictionsError

    shards = []
    for i, vids in enumerate((["a", "b"], ["c"])):
        t = pd.DataFrame({"video_id": np.repeat(vids, 3), "frame": np.tile(np.arange(3), len(vids)),
                          "timestamp": np.tile(np.arange(3) / 25.0, len(vids)), "face": 1,
                          "m:happy": np.linspace(0, 1, 3 * len(vids))})
        t.to_parquet(tmp_path / f"s{i}.parquet", index=False)
        shards.append(tmp_path / f"s{i}.parquet")
    rows = run_predictions(shards, tmp_path / "predictions", tmp_path / "predictions.parquet")
    joined = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    assert rows == 9 and pd.read_parquet(tmp_path / "predictions.parquet").equals(joined)
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["a.csv", "b.csv", "c.csv"]
    before = (tmp_path / "predictions.parquet").read_bytes()
    pd.read_parquet(shards[0]).drop(columns="m:happy").to_parquet(tmp_path / "bad.parquet", index=False)
    out, out_parquet = tmp_path / "predictions", tmp_path / "predictions.parquet"
    with pytest.raises(PredictionsError, match="bad.parquet: columns"):
        run_predictions([shards[0], tmp_path / "bad.parquet"], out, out_parquet)
    with pytest.raises(PredictionsError, match="two videos map to one CSV file name: a, a"):
        run_predictions([shards[0], shards[0]], out, out_parquet)
    assert (tmp_path / "predictions.parquet").read_bytes() == before  # earlier results untouched
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_shard_whose_label_column_holds_no_value_joins_the_others(tmp_path: Path) -> None:
    """A shard where a task predicted nothing (every video skipped) stores its label column as type null; the
    run's file takes the others' type, as joining the tables did."""
    base = {"frame": [0, 1], "timestamp": [0.0, 0.04], "face": [1, 1]}
    none = pd.DataFrame({"video_id": ["a", "a"], **base, "expr:label": [None, None]})
    some = pd.DataFrame({"video_id": ["b", "b"], **base, "expr:label": ["Neutral", "Anger"]})
    for name, t in (("s0.parquet", none), ("s1.parquet", some)):
        t.to_parquet(tmp_path / name, index=False)
    for order in (["s0.parquet", "s1.parquet"], ["s1.parquet", "s0.parquet"]):
        run_predictions([tmp_path / n for n in order], tmp_path / "predictions", tmp_path / "predictions.parquet")
        got = pd.read_parquet(tmp_path / "predictions.parquet").set_index("video_id")["expr:label"]
        assert got.loc["a"].isna().all() and got.loc["b"].tolist() == ["Neutral", "Anger"], order
