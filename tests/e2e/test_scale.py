"""The DAG at dataset scale: ``snakemake -n`` plans 15,000 synthetic videos quickly, one job per shard and stage.

The videos are empty files: a dry run checks that every job's inputs exist and
reads their modification times, it never opens them, and the ``table``
adapter reads the units table without listing a folder or looking at a video.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from affectflow.core.vocabulary import TASKS
from affectflow.data.units import UnitsTable
from affectflow.testing.snakerun import job_counts, make_bare_workdir
from affectflow.testing.synthetic import touch_videos, write_synthetic_units

pytestmark = pytest.mark.slow

N_VIDEOS = 15_000
# Hume-Vidmimic2 (~15,000 videos) is run with 256 shards: configs/paper/table2_emi.yaml, docs/performance.md
N_SHARDS = 256
BUDGET_S = 60.0


def _expected(cfg: dict, n_shards: int) -> dict[str, int]:
    f = cfg["features"]
    per_shard = {
        "media": 1, "faces": 1, "contact_sheets": int(bool(cfg["faces"].get("contact_sheets", True))),
        "face_features": len(f["face"]), "audio_features": len(f["audio"]), "transcripts": len(f["asr"]),
        "text_features": len(f["asr"]) * len(f["text"]), "frame_predictions": 1,
    }
    return {rule: k * n_shards for rule, k in per_shard.items() if k}


@pytest.fixture(scope="module")
def scale_workdir(tmp_path_factory):
    wd = make_bare_workdir(tmp_path_factory.mktemp("scale"))
    table = write_synthetic_units(wd.path / "synthetic" / "units.tsv", N_VIDEOS, N_SHARDS)
    # labelled train and val videos (one label file per task, as Hume-Vidmimic2's csv): every task is planned
    labels = {f"{t}_labels": f"synthetic/labels/{t}.txt" for t in TASKS}
    table = UnitsTable([replace(u, **labels) if u.split != "test" else u for u in table])
    table.write_tsv(wd.path / "synthetic" / "units.tsv")
    for path in labels.values():
        (wd.path / path).parent.mkdir(parents=True, exist_ok=True)
        (wd.path / path).touch()
    touch_videos(table, wd.path)
    cfg = wd.config()
    cfg["run_name"] = "scale"
    cfg["n_shards"] = N_SHARDS
    cfg["datasets"] = [{"adapter": "table", "table": "synthetic/units.tsv"}]
    wd.write_config(cfg)
    return wd, table


def test_dry_run_of_15000_videos_is_fast_and_plans_one_job_per_shard(scale_workdir) -> None:
    wd, table = scale_workdir
    t0 = time.perf_counter()
    proc = wd.run("--dry-run", timeout=10 * BUDGET_S)
    elapsed = time.perf_counter() - t0
    counts = job_counts(proc.stdout + proc.stderr)
    nonempty = len(table.shards())
    assert nonempty == N_SHARDS  # 15,000 ids over 256 shards: none is empty
    expected = _expected(wd.config(), nonempty)
    assert {r: counts.get(r, 0) for r in expected} == expected
    # the dataset-level stages stay one job each, whatever the video count
    cfg = wd.config()
    assert counts["units"] == 1
    assert counts["learn"] == len(cfg["tasks"]) * len(cfg["feature_sets"])
    assert counts["fuse"] == len(cfg["tasks"]) * len(cfg["fusions"])
    assert elapsed < BUDGET_S, f"snakemake -n took {elapsed:.1f} s for {N_VIDEOS} videos (budget {BUDGET_S:.0f} s)"


def test_only_nonempty_shards_enter_the_dag(tmp_path) -> None:
    wd = make_bare_workdir(tmp_path / "wf")
    table = write_synthetic_units(wd.path / "synthetic" / "units.tsv", 40, 64)  # 40 videos: many empty shards
    touch_videos(table, wd.path)
    cfg = wd.config()
    cfg["n_shards"] = 64
    cfg["datasets"] = [{"adapter": "table", "table": "synthetic/units.tsv"}]
    wd.write_config(cfg)
    out = wd.run("--dry-run", timeout=300).stdout
    counts = job_counts(out)
    nonempty = len(table.shards())
    assert nonempty < 64
    assert {r: counts.get(r, 0) for r in ("media", "faces", "transcripts")} == dict.fromkeys(
        ("media", "faces", "transcripts"), nonempty)
    # the plan names the shards of the table, and no other
    planned = {line.strip().removeprefix("output: ").rsplit("/", 1)[-1].removesuffix(".h5")
               for line in out.splitlines() if line.strip().startswith("output: ") and "/media/" in line}
    assert planned == set(table.shards())


def test_a_missing_video_is_named_by_the_dry_run(tmp_path) -> None:
    wd = make_bare_workdir(tmp_path / "wf")
    table = write_synthetic_units(wd.path / "synthetic" / "units.tsv", 30, 8)
    touch_videos(table, wd.path)
    gone = table.units[0]
    (wd.path / gone.path).unlink()
    cfg = wd.config()
    cfg["n_shards"] = 8
    cfg["datasets"] = [{"adapter": "table", "table": "synthetic/units.tsv"}]
    wd.write_config(cfg)
    proc = wd.run("--dry-run", timeout=300, check=False)
    assert proc.returncode != 0
    assert "MissingInputException" in proc.stderr + proc.stdout and gone.path in proc.stderr + proc.stdout
