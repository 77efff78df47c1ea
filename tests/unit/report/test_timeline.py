"""Timelines of real demo videos: every panel drawn from the predictions table's columns, odd strings safe."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectflow.data.adapters import read_task_labels
from affectflow.data.units import UnitsTable
from affectflow.report.columns import BASE_COLUMNS, parse_columns
from affectflow.report.timeline import TimelineInputs, render_timeline, title_lines
from affectflow.testing.run_page import page_files

RED = (165, 0, 38)  # timeline.AH_COLOUR: P(A/H) and the A/H strips


@pytest.fixture(scope="module")
def files(run_results: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return page_files(run_results, tmp_path_factory.mktemp("timeline"))


@pytest.fixture(scope="module")
def table(files: dict) -> pd.DataFrame:
    return pd.read_parquet(files["predictions"])


def _image(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _has_colour(img: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool((np.abs(img.astype(int) - rgb).sum(axis=2) < 12).any())


@pytest.mark.slow  # needs the shared e2e run
def test_a_labelled_video_with_every_task_draws_every_panel(files: dict, table: pd.DataFrame) -> None:
    units = UnitsTable.read_tsv(files["units"])
    labelled = [u for u in units if u.expr_labels and u.ah_labels and u.emi_labels]
    with_tasks = set(table.loc[table["expr:Neutral"].notna(), "video_id"])
    u = next(u for u in labelled if u.video_id in with_tasks)
    rows = table[table["video_id"] == u.video_id].reset_index(drop=True)
    base = Path(files["base_dir"])
    n = int(rows["frame"].max()) + 1
    labels = {"expr": read_task_labels("expr", base / u.expr_labels, u.video_id, n)[rows["frame"]],
              "ah": read_task_labels("ah", base / u.ah_labels, u.video_id, n)[rows["frame"]],
              "emi": read_task_labels("emi", base / u.emi_labels, u.video_id, n)}
    cols = parse_columns(list(rows.columns))
    full = _image(render_timeline(TimelineInputs(u.video_id, rows, cols, labels, (np.array([0.1]), ["hello"]))))
    plain = rows[[c for c in rows.columns if c in BASE_COLUMNS or c.split(":")[0] not in cols.tasks]]
    bare = _image(render_timeline(TimelineInputs(u.video_id, plain, parse_columns(list(plain.columns)))))
    assert full.shape[1] == bare.shape[1] == 880
    assert full.shape[0] > bare.shape[0]  # the AH panel and the prediction / label strips
    assert _has_colour(full, RED) and not _has_colour(bare, RED)
    lines = title_lines(TimelineInputs(u.video_id, rows, cols, labels))
    assert lines[0] == u.video_id
    assert lines[1].startswith("EMI: Admiration ") and "| label: " in lines[1]
    assert lines[2].startswith("AH-video: predicted ")


@pytest.mark.slow  # needs the shared e2e run
def test_without_task_columns_the_first_face_models_softmax_is_drawn(table: pd.DataFrame) -> None:
    rows = table[table["video_id"] == table["video_id"].iloc[0]]
    rows = rows[[c for c in rows.columns if not c.startswith(("expr:", "emi:", "ah:", "ah_video:"))]]
    cols = parse_columns(list(rows.columns))
    assert not cols.tasks and cols.first_model_with_classes() == "fer_minixception"
    x = TimelineInputs("v", rows.reset_index(drop=True), cols)
    assert title_lines(x) == ["v"]
    assert _image(render_timeline(x)).shape[1] == 880


@pytest.mark.slow  # needs the shared e2e run
def test_odd_strings_are_drawn_as_they_are(table: pd.DataFrame) -> None:
    """Video ids are file names and words are speech: '$' must not start TeX, '<' and '&' are plain text."""
    rows = table[table["video_id"] == table["video_id"].iloc[0]].head(1).reset_index(drop=True)
    x = TimelineInputs('a $b$ <c> & "d" \\e', rows, parse_columns(list(rows.columns)),
                       words=(np.array([0.0, 0.0]), ["$5", "$x^2$"]))
    assert _image(render_timeline(x)).shape[0] > 100  # one frame, unbalanced TeX: still a picture


def test_columns_are_split_by_owner() -> None:
    cols = parse_columns(["video_id", "frame", "timestamp", "face", "m:a", "m:b", "m:valence", "m:arousal",
                          "ah:probability", "ah:label", "expr:Neutral", "expr:label"])
    assert cols.models == {"m": ("a", "b", "valence", "arousal")} and cols.model_classes("m") == ("a", "b")
    assert list(cols.tasks) == ["expr", "ah"]  # vocabulary order
    with pytest.raises(ValueError, match="face"):
        parse_columns(["video_id", "frame", "timestamp"])
