"""Scale helpers and the benchmark runner: the ``table`` adapter, synthetic units, ``benchmarks.run --quick``.

Behaviour only: no test here asserts a timing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from affectflow.data.adapters import LabelError, build_units
from affectflow.data.units import COLUMNS, Unit, UnitsTable, shard_of
from affectflow.testing.dataset_fixtures import make_videos
from affectflow.testing.synthetic import split_counts, synthetic_ids, touch_videos, write_synthetic_units

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------ synthetic units


def test_synthetic_units_are_hume_like_and_split_70_15_15(tmp_path: Path) -> None:
    table = write_synthetic_units(tmp_path / "units.tsv", n_videos=1000, n_shards=16, seed=3)
    assert len(table) == 1000
    ids = [u.video_id for u in table]
    assert len(set(ids)) == 1000 and all(len(i) == 5 and i.isdigit() for i in ids)
    assert Counter(u.split for u in table) == {"train": 700, "val": 150, "test": 150}
    assert all(u.path == f"videos/{u.video_id}.mp4" and u.shard == shard_of(u.video_id, 16) for u in table)
    assert all(not u.expr_labels and not u.emi_labels and not u.ah_labels for u in table)
    again = UnitsTable.read_tsv(tmp_path / "units.tsv")
    assert sorted(again.units, key=lambda u: u.video_id) == sorted(table.units, key=lambda u: u.video_id)
    assert (tmp_path / "units.tsv").read_text().splitlines()[0].split("\t") == list(COLUMNS)
    assert not (tmp_path / "videos").exists()  # no media


def test_synthetic_units_are_reproducible_and_seeded(tmp_path: Path) -> None:
    write_synthetic_units(tmp_path / "a.tsv", 200, 8, seed=0)
    write_synthetic_units(tmp_path / "b.tsv", 200, 8, seed=0)
    write_synthetic_units(tmp_path / "c.tsv", 200, 8, seed=1)
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    a = {u.video_id: u.split for u in UnitsTable.read_tsv(tmp_path / "a.tsv")}
    c = {u.video_id: u.split for u in UnitsTable.read_tsv(tmp_path / "c.tsv")}
    assert a.keys() == c.keys() and a != c


def test_synthetic_ids_widen_past_five_digits_and_splits_round_into_train() -> None:
    assert len(synthetic_ids(0)) == 0
    assert all(len(i) == 6 for i in synthetic_ids(150_000))
    assert split_counts(7) == {"train": 7 - 2 * math.floor(7 * 0.15), "val": 1, "test": 1}
    with pytest.raises(ValueError):
        synthetic_ids(-1)


def test_touch_videos_creates_empty_files_and_keeps_existing_ones(tmp_path: Path) -> None:
    table = write_synthetic_units(tmp_path / "units.tsv", 50, 4, videos_dir="media/v")
    first = table.units[0]
    (tmp_path / first.path).parent.mkdir(parents=True)
    (tmp_path / first.path).write_bytes(b"real")
    assert touch_videos(table, tmp_path) == 50
    assert len(list((tmp_path / "media" / "v").iterdir())) == 50
    assert (tmp_path / first.path).read_bytes() == b"real"
    assert (tmp_path / table.units[1].path).stat().st_size == 0


# ------------------------------------------------------------ the table adapter


def test_table_adapter_reads_the_table_and_reshards_with_the_configs_n_shards(tmp_path: Path) -> None:
    write_synthetic_units(tmp_path / "in" / "units.tsv", 300, n_shards=4)
    table = build_units([{"adapter": "table", "table": "in/units.tsv"}], n_shards=64, base_dir=tmp_path)
    assert len(table) == 300
    assert all(u.shard == shard_of(u.video_id, 64) for u in table)
    assert len(table.shards()) > 4
    # paths kept exactly as written in the table (no folder listed, no video looked at: none exists)
    assert all(u.path == f"videos/{u.video_id}.mp4" for u in table)
    assert not (tmp_path / "videos").exists()


def test_table_adapter_keeps_labels_and_merges_with_other_adapters(tmp_path: Path) -> None:
    UnitsTable([
        Unit("x1", "data/videos/x1.mp4", "train", "s0009", expr_labels="labels/x1.txt"),
        Unit("x2", "/abs/x2.mp4", "test", "s0009"),
    ]).write_tsv(tmp_path / "t.tsv")
    make_videos(tmp_path / "folder", ["f1.mp4"])
    table = build_units(
        [{"adapter": "table", "table": str(tmp_path / "t.tsv")}, {"adapter": "folder", "videos": "folder"}],
        n_shards=2, base_dir=tmp_path,
    )
    by_id = {u.video_id: u for u in table}
    assert sorted(by_id) == ["f1", "x1", "x2"]
    assert by_id["x1"].expr_labels == "labels/x1.txt" and by_id["x1"].split == "train"
    assert by_id["x2"].path == "/abs/x2.mp4"
    assert {u.shard for u in table} <= {"s0000", "s0001"}


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"adapter": "table"}, "'table' (the units table to read) not given"),
        ({"adapter": "table", "table": "missing.tsv"}, "missing.tsv: units table not found"),
        ({"adapter": "table", "table": "t.tsv", "videos": "v"}, "takes its paths from the table, remove ['videos']"),
        ({"adapter": "folder", "videos": "v", "table": "t.tsv"}, "'table' is only for the table adapter"),
    ],
)
def test_table_adapter_config_errors(tmp_path: Path, entry: dict, match: str) -> None:
    write_synthetic_units(tmp_path / "t.tsv", 3, 2)
    with pytest.raises(LabelError) as info:
        build_units([entry], n_shards=2, base_dir=tmp_path)
    assert match in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("\t".join(COLUMNS) + "\n", "no units in bad.tsv"),
        ("", "no units in bad.tsv"),
        ("video_id\tpath\n" + "a\tb\n", "missing columns"),
        ("\t".join(COLUMNS) + "\n" + "a\tv/a.mp4\ttrain\ts0000\t\t\t\n" + "a\tv/b.mp4\ttrain\ts0000\t\t\t\n",
         "duplicate video id 'a'"),
        ("\t".join(COLUMNS) + "\n" + "a\tv/a.mp4\tdev\ts0000\t\t\t\n", "split 'dev'"),
        ("\t".join(COLUMNS) + "\n" + "\tv/a.mp4\ttrain\ts0000\t\t\t\n", "without video_id or path"),
    ],
)
def test_table_adapter_rejects_bad_tables_naming_the_file(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "bad.tsv").write_text(text)
    with pytest.raises(LabelError) as info:
        build_units([{"adapter": "table", "table": "bad.tsv"}], n_shards=2, base_dir=tmp_path)
    assert match in str(info.value) and "bad.tsv" in str(info.value)


def test_table_adapter_reads_15000_units_without_touching_the_videos(tmp_path: Path) -> None:
    write_synthetic_units(tmp_path / "u.tsv", 15000, 256)
    table = build_units([{"adapter": "table", "table": "u.tsv"}], n_shards=256, base_dir=tmp_path)
    assert len(table) == 15000 and len(table.shards()) == 256
    assert sum(len(v) for v in table.by_shard().values()) == 15000


# ------------------------------------------------------------ benchmarks.run --quick

FIGURE_KEYS = {"name", "title", "status", "value", "unit", "baseline", "baseline_label", "ratio", "target",
               "target_met", "note", "details", "seconds"}
EXPECTED_FIGURES = {
    "face_path_vs_per_frame", "face_path_vs_decode", "face_features_threads", "face_crop_storage",
    "asr_faster_vs_openai_whisper",
    "text_embedding", "audio_embedding", "dag_dry_run_1000", "memory_media_stage", "memory_faces_stage",
    "gpu_enet_b0_fp16",
    "faces_stage_by_detector", "detection_mediapipe_full", "detection_mediapipe", "detection_retinaface",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("bench") / "x.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900, env=env)
    assert out.is_file(), f"no JSON written:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc, json.loads(out.read_text())


@pytest.mark.slow
def test_quick_run_writes_valid_json_with_every_figure(quick_run) -> None:
    proc, doc = quick_run
    errors = {k: f["note"] for k, f in doc["figures"].items() if f["status"] == "error"}
    assert not errors, f"{errors}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert doc["mode"] == "quick" and doc["schema_version"] == 1
    assert set(doc["figures"]) == EXPECTED_FIGURES
    for name, fig in doc["figures"].items():
        assert set(fig) == FIGURE_KEYS, name
        assert fig["name"] == name and fig["status"] in ("ok", "skipped")
        assert fig["note"], f"{name}: every figure says what it measured or why it was skipped"
        if fig["status"] == "ok":
            assert isinstance(fig["value"], int | float) and fig["value"] > 0, name
            assert fig["unit"], name
            if fig["baseline"] is not None:
                assert fig["ratio"] == pytest.approx(fig["value"] / fig["baseline"], rel=0.01), name
    assert doc["summary"]["ok"] + doc["summary"]["skipped"] == len(EXPECTED_FIGURES)


@pytest.mark.slow
def test_quick_run_records_the_machine_and_prints_a_table(quick_run) -> None:
    proc, doc = quick_run
    m = doc["machine"]
    for key in ("date", "cpu_model", "cores", "versions", "load_average_at_start", "gpu"):
        assert key in m, key
    assert m["cores"] >= 1 and m["versions"]["torch"] and m["versions"]["onnxruntime"]
    for name in doc["figures"]:
        assert name in proc.stdout
    assert "written to" in proc.stdout


@pytest.mark.slow
def test_quick_run_checks_what_it_measured(quick_run) -> None:
    _, doc = quick_run
    figs = doc["figures"]
    dag = figs["dag_dry_run_1000"]["details"]
    per_shard = {r: n for r, n in dag["jobs_per_rule"].items() if r in ("media", "faces", "transcripts")}
    assert set(per_shard.values()) == {dag["nonempty_shards"]}
    asr = figs["asr_faster_vs_openai_whisper"]
    if asr["status"] == "ok":  # both backends ran the same weights: they agree on the words
        assert asr["details"]["wer_between_backends"] <= 0.3, asr["details"]
    face = figs["face_path_vs_per_frame"]
    if face["status"] == "ok":
        assert face["details"]["per_frame_frames"] == face["details"]["frames"]
        assert face["details"]["per_frame_crops"] == face["details"]["frames_with_face"]
    full = figs["detection_mediapipe_full"]["details"]  # the default detector finds the five of multi_face.jpg
    assert full["recall"]["multi_face"] == 1.0 and full["faces"]["multi_face"] == 5
    assert figs["detection_retinaface"]["status"] == "skipped"  # no real weights here: no recall figure
    gpu = figs["gpu_enet_b0_fp16"]
    if not (doc["machine"]["gpu"]["torch_cuda"] or doc["machine"]["gpu"]["onnxruntime_cuda"]):
        assert gpu["status"] == "skipped" and "CUDA" in gpu["note"]


@pytest.mark.slow
def test_gpu_section_code_runs_on_the_cpu(tmp_path: Path) -> None:
    """The GPU section only runs where CUDA is; its code is run here on the CPU so that it cannot rot unseen."""
    if not (REPO / "data" / "demo" / ".complete").exists():
        pytest.skip("the demo is not built (make demo)")
    code = (
        "import json, sys; from pathlib import Path; from benchmarks import gpu; "
        "from benchmarks.common import Options; "
        "o = Options(quick=True, reps=1, threads=1, workdir=Path(sys.argv[1])); "
        "f = gpu._face_path(o, device='cpu').to_json(); "
        "r = gpu._onnx_cuda(o, device='cpu', batch=4); r16 = gpu._onnx_cuda(o, 'fp16', device='cpu', batch=4); "
        "print(json.dumps({'face': f, 'fp32': r, 'fp16': r16}))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    face = out["face"]
    assert face["status"] == "ok" and face["name"] == "gpu_face_path_vs_per_frame"
    assert face["value"] > 0 and face["ratio"] == pytest.approx(face["value"] / face["baseline"], rel=0.01)
    assert set(face["details"]["pipeline_stage_s"]) == {"faces_stage", "fer_minixception", "enet_b0_8_best_vgaf"}
    for r in (out["fp32"], out["fp16"]):
        assert r["frames_per_s"] > 0 and r["device"] == "CPUExecutionProvider"


def test_unknown_section_is_an_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only", "nope", "--out", os.devnull], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "unknown sections" in proc.stderr
