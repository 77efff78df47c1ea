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
