"""`affectflow plan`: the arithmetic on a synthetic corpus, the shard suggestion, the rates' sources, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from affectflow.cli import main
from affectflow.data.units import Unit
from affectflow.media.decode import probe
from affectflow.plan.estimate import (
    NODE_KINDS,
    Corpus,
    Models,
    VideoCount,
    count_units,
    estimate,
    plan_table,
    suggest_shards,
)

REPO = Path(__file__).resolve().parents[3]
# Aff-Wild2's size (about 2.7 M frames at 30 fps): 600 videos of 4,500 frames and 150 s of audio
AFFWILD2 = Corpus(tuple(VideoCount(f"v{i:04d}", 4500, 150.0) for i in range(600)))


def test_hours_are_work_over_the_recorded_rate() -> None:
    cpu, gpu = NODE_KINDS["cpu2"], NODE_KINDS["h100"]
    rows = {r.stage: r for r in estimate(AFFWILD2, Models(face=2, audio=1, asr=1), n_shards=8, face_share=0.5)}
    assert AFFWILD2.frames == 2_700_000 and AFFWILD2.audio_s == 90_000.0
    assert rows["faces"].jobs == 8 and rows["faces"].work == 2_700_000
    assert rows["faces"].hours["cpu2"] == pytest.approx(2_700_000 / cpu.faces_fps / 3600)
    assert rows["faces"].hours["h100"] == pytest.approx(2_700_000 / 799.0 / 3600)
    # two face models, a face in half the frames: 2 x 1.35 M crops, 16 jobs
    assert rows["face_features"].jobs == 16 and rows["face_features"].work == 2_700_000
    assert rows["face_features"].hours["h100"] == pytest.approx(2_700_000 / 10070.0 / 3600)
    assert rows["audio_features"].hours["cpu2"] == pytest.approx(90_000 / cpu.audio_rtf / 3600)
    assert rows["transcripts"].hours["cpu2"] == pytest.approx(90_000 / cpu.asr_rtf / 3600)
    assert gpu.audio_rtf is None and rows["audio_features"].hours["h100"] is None  # never measured there
    only_faces = estimate(AFFWILD2, Models(), n_shards=1)
    assert [r.stage for r in only_faces] == ["faces"]


def test_the_suggested_shards_keep_the_longest_faces_job_within_budget() -> None:
    for kind in NODE_KINDS.values():
        for hours, nodes in ((1.0, 1), (0.25, 1), (1.0, 16)):
            n = suggest_shards(AFFWILD2, kind, job_hours=hours, nodes=nodes)
            longest = max(AFFWILD2.shard_frames(n).values())
            assert longest <= hours * 3600 * kind.faces_fps and n >= nodes, (kind.name, hours, nodes)
            assert n == nodes or n == 1 or max(AFFWILD2.shard_frames(n - 1).values()) > hours * 3600 * kind.faces_fps
    assert suggest_shards(AFFWILD2, NODE_KINDS["cpu2"]) >= math.ceil(2_700_000 / (3600 * 70.25))
    two = Corpus((VideoCount("a", 10**9, 0.0), VideoCount("b", 10**9, 0.0)))
    assert suggest_shards(two, NODE_KINDS["cpu2"]) == 2  # never more shards than videos


def test_wall_hours_spread_over_the_nodes_but_never_under_the_longest_job() -> None:
    table = plan_table(AFFWILD2, Models(face=1), n_shards=4, nodes=2)
    faces = next(line for line in table.splitlines() if line.startswith("| faces |"))
    total = 2_700_000 / 70.25 / 3600
    longest = max(AFFWILD2.shard_frames(4).values()) / 70.25 / 3600
    assert faces.split("|")[4].strip() == f"{max(total / 2, longest):.3g}"
    assert "not measured" not in table  # faces and face features are measured on both kinds
    assert "not measured" in plan_table(AFFWILD2, Models(audio=1), n_shards=4)


def test_the_rates_are_the_recorded_benchmarks() -> None:
    latest = json.loads((REPO / "benchmarks/results/latest.json").read_text())["figures"]
    cpu = NODE_KINDS["cpu2"]
    assert cpu.faces_fps == latest["faces_stage_by_detector"]["value"]
    assert cpu.face_model_cps == latest["face_features_threads"]["value"]
    assert cpu.audio_rtf == latest["audio_embedding"]["value"]
    assert cpu.asr_rtf == latest["asr_faster_vs_openai_whisper"]["value"]
    h100 = json.loads((REPO / "benchmarks/results/gpu-nvidia-h100-80gb-hbm3.json").read_text())["figures"]
    gpu = NODE_KINDS["h100"]
    assert gpu.faces_fps == h100["gpu_face_path"]["details"]["gpu"]["faces_stage_frames_per_s"]
    assert gpu.face_model_cps == h100["gpu_face_features_stage"]["value"]


def test_counting_probes_without_decoding_and_reports_what_it_cannot_read(tmp_path: Path) -> None:
    videos = sorted((REPO / "data/demo/videos").glob("*.mp4"))[:2]
    if not videos:
        pytest.skip("the demo is not built (make demo)")
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(videos[0].read_bytes()[:2000])
    units = [Unit(v.stem, str(v), "train", "s0000") for v in videos] + [Unit("cut", str(bad), "train", "s0000")]
    corpus = count_units(units, threads=2)
    assert [v.frames for v in corpus.videos[:2]] == [probe(v).n_frames for v in videos]
    assert corpus.videos[2].frames == 0 and "cut.mp4" in corpus.videos[2].problem


def test_the_command_on_the_demo_config(capsys) -> None:
    if not (REPO / "data/demo/.complete").exists():
        pytest.skip("the demo is not built (make demo)")
    import os

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert main(["plan", "config.yaml", "--nodes", "2", "--node-kind", "cpu2"]) == 0
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert out.startswith("config: config.yaml\n10 video(s): ") and "models: 2 face, 1 audio, 1 ASR" in out
    assert "with the config's n_shards: 4" in out and "suggested n_shards for cpu2" in out
    for stage in ("faces", "face_features", "audio_features", "transcripts"):
        assert f"| {stage} |" in out
