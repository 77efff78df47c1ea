"""`affectflow plan`: the arithmetic on a synthetic corpus, the shard suggestion, the rates' sources, the command."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from affectflow.cli import main
from affectflow.data.adapters import build_units
from affectflow.data.units import Unit, UnitsTable, shard_of
from affectflow.media.decode import probe
from affectflow.plan.estimate import (
    NODE_KINDS,
    Corpus,
    Models,
    StageEstimate,
    VideoCount,
    count_units,
    estimate,
    longest_jobs_over,
    plan_table,
    regrouped,
    setting_notes,
    size_notes,
    suggest_shards,
)
from affectflow.plan.rates import FACES_MEASURED_WITH, NodeRates, SizeRate, whisper_windows

REPO = Path(__file__).resolve().parents[3]
# Aff-Wild2's size (about 2.7 M frames at 30 fps): 600 videos of 4,500 frames and 150 s of audio, at 640 x 360
AFFWILD2 = Corpus(tuple(VideoCount(f"v{i:04d}", 4500, 150.0, width=640, height=360) for i in range(600)))
FER, B0 = "fer_minixception", "enet_b0_8_best_vgaf"
TWO = (FER, B0)  # config.yaml's face models


def jobs_by_stage(rows: list[StageEstimate]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.stage] = out.get(r.stage, 0) + r.jobs
    return out


def test_hours_are_work_over_the_recorded_rate() -> None:
    cpu, gpu = NODE_KINDS["cpu2"], NODE_KINDS["h100"]
    rows = estimate(AFFWILD2, Models(face=TWO, audio=1, asr=1), n_shards=8, face_share=0.5)
    by = {r.stage: r for r in rows}
    assert AFFWILD2.frames == 2_700_000 and AFFWILD2.audio_s == 90_000.0
    assert by["faces"].jobs == 8 and by["faces"].work == 2_700_000
    # 640x360, measured; and a start per job (none measured on h100)
    assert by["faces"].hours["cpu2"] == pytest.approx((2_700_000 / cpu.faces[0].fps + 8 * cpu.start_s("faces")) / 3600)
    assert by["faces"].hours["h100"] == pytest.approx(2_700_000 / 799.0 / 3600) and not gpu.job_start_s
    # two face models, a face in half the frames: a row each, of 1.35 M crops and 8 jobs, at the model's own rate
    features = [r for r in rows if r.stage == "face_features"]
    assert [(r.jobs, r.work, r.unit) for r in features] == [(8, 1_350_000, f"face crops ({FER})"),
                                                          (8, 1_350_000, f"face crops ({B0})")]
    assert features[0].hours["cpu2"] == pytest.approx(
        (1_350_000 / cpu.face_model_cps[FER] + 8 * cpu.start_s("face_features", FER)) / 3600)
    assert features[1].hours["h100"] == pytest.approx(1_350_000 / 10070.0 / 3600)
    assert FER not in gpu.face_model_cps and features[0].hours["h100"] is None  # never measured there
    assert by["audio_features"].hours["cpu2"] == pytest.approx(
        (90_000 / cpu.audio_rtf + 8 * cpu.start_s("audio_features")) / 3600)
    # 150 s of audio a video is 5 windows of 30 s: 3,000 windows
    assert by["transcripts"].work == 3000 and by["transcripts"].unit == "Whisper windows (30 s)"
    assert by["transcripts"].hours["cpu2"] == pytest.approx(
        (3000 * cpu.asr_window_s + 8 * cpu.start_s("transcripts")) / 3600)
    assert gpu.audio_rtf is None and by["audio_features"].hours["h100"] is None  # never measured there
    no_models = estimate(AFFWILD2, Models(), n_shards=1)
    assert [r.stage for r in no_models] == ["media", "faces", "frame_predictions"]  # what every run has


def test_a_video_is_charged_the_faces_rate_of_its_size() -> None:
    """Interpolated in seconds per frame over pixels between measured sizes, extrapolated past the largest,
    the smallest's cost below it or unprobed; one measured size is that size's cost everywhere."""
    kind = NodeRates("k", "", "", faces=(SizeRate(640, 360, 100.0), SizeRate(1280, 720, 20.0)))
    assert kind.faces_seconds_per_frame(640, 360) == pytest.approx(0.01)
    assert kind.faces_seconds_per_frame(1280, 720) == pytest.approx(0.05)
    # 960 x 540 is 518,400 px: 5/12 of the way from 230,400 to 921,600 px
    assert kind.faces_seconds_per_frame(960, 540) == pytest.approx(0.01 + 0.04 * (518_400 - 230_400) / 691_200)
    assert kind.faces_seconds_per_frame(1920, 1080) == pytest.approx(0.05 + 0.04 * (2_073_600 - 921_600) / 691_200)
    assert kind.faces_seconds_per_frame(320, 240) == kind.faces_seconds_per_frame(0, 0) == pytest.approx(0.01)
    # a larger size measured faster than a smaller one (noise): past it, no cheaper than the largest
    noisy = NodeRates("n", "", "", faces=(SizeRate(640, 360, 100.0), SizeRate(1280, 720, 120.0)))
    assert noisy.faces_seconds_per_frame(3840, 2160) == pytest.approx(1 / 120)
    one = NodeRates("o", "", "", faces=(SizeRate(640, 360, 100.0),))
    assert one.faces_seconds_per_frame(1920, 1080) == pytest.approx(0.01)
    mixed = Corpus((VideoCount("a", 1000, 0.0, width=640, height=360), VideoCount("b", 500, 0.0, width=1280,
                                                                                  height=720)))
    assert mixed.faces_seconds(kind) == pytest.approx(1000 * 0.01 + 500 * 0.05)
    rows = {r.stage: r for r in estimate(mixed, Models(), n_shards=1, kinds=(kind, one))}
    assert rows["faces"].hours == pytest.approx({"k": 35 / 3600, "o": 15 / 3600})
    assert mixed.larger_than_measured(kind) == 0 and mixed.larger_than_measured(one) == 500
    notes = size_notes(mixed, (kind, one))
    assert notes == ["note: 33% of the frames are in videos larger than 640x360, the largest size o's faces rate "
                     "was measured at; their faces hours are charged 640x360's rate, too optimistic: a larger "
                     "frame costs more to decode, resize and detect"]
    # the recorded kinds: HD video is slower per frame than the demo's 640x360 on the CPU
    cpu = NODE_KINDS["cpu2"]
    assert cpu.faces_seconds_per_frame(1280, 720) > 2 * cpu.faces_seconds_per_frame(640, 360)


def test_the_wall_hours_never_go_under_the_longest_job_in_its_own_work() -> None:
    """A shard of HD video takes longer than its share of frames says: the floor of the faces row is the
    longest faces job in seconds (the review's case: one 1080p and one 640x360 video of 1,000 frames each)."""
    kind = NODE_KINDS["cpu2"]
    pair = Corpus((VideoCount("v0", 1000, 0.0, width=1920, height=1080),
                   VideoCount("v1", 1000, 0.0, width=640, height=360)))
    n = next(n for n in range(2, 40) if len(pair.shards(n)) == 2)  # the two videos in shards of their own
    longest = max(pair.shard_faces_seconds(n, kind).values())
    assert longest == pytest.approx(1000 * kind.faces_seconds_per_frame(1920, 1080))
    faces = next(r for r in estimate(pair, Models(), n, kinds=(kind,)) if r.stage == "faces")
    assert faces.longest["cpu2"] == pytest.approx((longest + kind.start_s("faces")) / 3600)
    line = next(x for x in plan_table(pair, Models(), n, nodes=2, kinds=(kind,)).splitlines()
                if x.startswith("| faces |"))
    # not half the total: the HD shard is longer
    assert line.split("|")[4].strip() == f"{(longest + kind.start_s('faces')) / 3600:.3g}"
    assert longest > pair.faces_seconds(kind) / 2


def test_each_job_pays_its_stages_fixed_start() -> None:
    """A job's start (Python, imports, the model's load) is paid once per job: a stage's hours are its work over
    its rate plus a start per job, its longest job one start more than its work; a face model's own start comes
    before its stage's, and a stage without one pays none."""
    kind = NodeRates("k", "", "", faces=(SizeRate(640, 360, 100.0),), face_model_cps={B0: 50.0, FER: 400.0},
                     media_videos_per_s=4.0, sheets_per_s=10.0, text_videos_per_s=0.5, predictions_fps=2000.0,
                     job_start_s={"media": 1.0, "faces": 3.0, "face_features": 9.0, f"face_features/{B0}": 2.0,
                                  "text_features": 4.0})
    pair = Corpus((VideoCount("v0", 1000, 10.0, width=640, height=360),
                   VideoCount("v1", 3000, 30.0, width=640, height=360)))
    n = next(n for n in range(2, 40) if len(pair.shards(n)) == 2)  # a shard each: 2 jobs a stage
    rows = estimate(pair, Models(face=(B0, FER), asr=1, text=1, contact_sheets=True), n, kinds=(kind,))
    by = {(r.stage, r.unit): r for r in rows}
    assert by[("media", "videos")].hours["k"] == pytest.approx((2 / 4.0 + 2 * 1.0) / 3600)
    assert by[("faces", "frames")].hours["k"] == pytest.approx((4000 / 100 + 2 * 3.0) / 3600)
    assert by[("faces", "frames")].longest["k"] == pytest.approx((3000 / 100 + 3.0) / 3600)  # one start, not two
    assert by[("face_features", f"face crops ({B0})")].hours["k"] == pytest.approx((4000 / 50 + 2 * 2.0) / 3600)
    assert by[("face_features", f"face crops ({FER})")].hours["k"] == pytest.approx((4000 / 400 + 2 * 9.0) / 3600)
    assert by[("contact_sheets", "videos")].hours["k"] == pytest.approx(2 / 10 / 3600)  # no start measured
    assert by[("text_features", "transcripts")].hours["k"] == pytest.approx((2 / 0.5 + 2 * 4.0) / 3600)
    assert by[("frame_predictions", "frames")].hours["k"] == pytest.approx(4000 / 2000 / 3600)
    assert kind.start_s("faces") == 3.0 and kind.start_s("face_features", B0) == 2.0
    assert kind.start_s("face_features", FER) == 9.0 and kind.start_s("audio_features") == 0.0


def test_a_face_model_alias_has_its_models_rate() -> None:
    config = {"features": {"face": ["fer", "enet_b0_8_best_vgaf"]}}
    assert Models.of(config).face == (FER, B0)
    rows = [r for r in estimate(FIVE, Models.of(config), n_shards=4) if r.stage == "face_features"]
    assert rows[0].unit == f"face crops ({FER})" and rows[0].hours["cpu2"] is not None


def test_transcripts_are_charged_per_whisper_window_of_each_video() -> None:
    """A 3 s clip costs a whole 30 s window (Whisper's encoder always sees 30 s): 100 clips of 3 s are 100
    windows, not the 10 that their 300 s of audio would fill."""
    clips = Corpus(tuple(VideoCount(f"c{i}", 90, 3.0) for i in range(100)))
    assert clips.asr_windows == 100 and whisper_windows(30.0) == 1 and whisper_windows(30.5) == 2
    assert whisper_windows(0.0) == 0  # no audio stream: no ASR
    row = next(r for r in estimate(clips, Models(asr=1), n_shards=1) if r.stage == "transcripts")
    cpu = NODE_KINDS["cpu2"]
    assert row.work == 100 and row.hours["cpu2"] == pytest.approx(
        (100 * cpu.asr_window_s + cpu.start_s("transcripts")) / 3600)


# 5 videos that hash into 2 of 4 shards (the user review's case: the workflow runs 2 faces jobs, not 4)
FIVE = Corpus(tuple(VideoCount(v, 1000, 10.0) for v in ("v0", "v2", "v7", "v3", "v5")))


def test_jobs_are_the_non_empty_shards_of_the_workflows_units(tmp_path: Path) -> None:
    assert {shard_of(v.video_id, 4) for v in FIVE.videos} == {"s0001", "s0003"}  # the case this test is about
    UnitsTable([Unit(v.video_id, f"videos/{v.video_id}.mp4", "test", "") for v in FIVE.videos]).write_tsv(
        tmp_path / "units.tsv")
    units = build_units([{"adapter": "table", "table": "units.tsv"}], n_shards=4, base_dir=tmp_path)
    assert len(units.shards()) == 2  # the workflow's SHARDS (workflow/rules/common.smk): one job per stage each
    rows = jobs_by_stage(estimate(FIVE, Models(face=TWO, audio=1, asr=1, text=1), n_shards=4))
    assert rows == {"media": 2, "faces": 2, "face_features": 4, "audio_features": 2, "transcripts": 2,
                    "text_features": 2, "frame_predictions": 2}
    # without a text model only the first ASR model runs (the run page's transcripts)
    rows = {r.stage: r.jobs for r in estimate(FIVE, Models(asr=2), n_shards=4)}
    assert rows["transcripts"] == 2 and "text_features" not in rows
    assert next(r.jobs for r in estimate(FIVE, Models(asr=2, text=1), 4) if r.stage == "transcripts") == 4
    table = plan_table(FIVE, Models(face=TWO), n_shards=4)
    assert "| faces | 2 |" in table and table.count("| face_features | 2 |") == 2
    # the suggested n_shards is planned with its own non-empty shards, from the same shard_of
    for n in (1, 2, 3, 5, 8):
        jobs = len({shard_of(v.video_id, n) for v in FIVE.videos})
        assert next(r.jobs for r in estimate(FIVE, Models(), n) if r.stage == "faces") == jobs, n


def test_every_per_shard_rule_of_the_workflow_is_a_stage_of_the_plan() -> None:
    per_shard = set()
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", smk.read_text(), re.M | re.S):
            output = re.search(r"^    output:\n(.*?)(?=^    \w+:|\Z)", body, re.M | re.S)
            if output and "{{shard}}" in output.group(1):
                per_shard.add(name)
    assert {"media", "faces", "face_features", "text_features"} <= per_shard  # the parsing finds the rules
    everything = Models(face=(B0,), audio=1, asr=1, text=1, contact_sheets=True)
    assert {r.stage for r in estimate(AFFWILD2, everything, n_shards=4)} == per_shard


def test_models_of_a_config_count_text_models_and_contact_sheets() -> None:
    config = {"features": {"face": ["a", "b"], "audio": [], "asr": ["w"], "text": ["t1", "t2"]},
              "faces": {"contact_sheets": False}}
    assert Models.of(config) == Models(face=("a", "b"), audio=0, asr=1, text=2, contact_sheets=False)
    rows = {r.stage: r for r in estimate(FIVE, Models.of(config), n_shards=4)}
    assert "contact_sheets" not in rows and "audio_features" not in rows
    assert rows["text_features"].jobs == 2 * 2 and rows["text_features"].work == 5 * 2  # each video's transcript
    assert rows["text_features"].unit == "transcripts" and rows["text_features"].hours["h100"] is None
    assert estimate(FIVE, Models(text=1), n_shards=4)[-1].stage == "frame_predictions"  # no ASR, no text jobs


def test_a_frame_stride_counts_the_frames_detected_on_and_says_the_faces_hours_are_an_upper_bound() -> None:
    corpus = Corpus((VideoCount("a", 100, 4.0, width=640, height=360), VideoCount("b", 7, 1.0, width=640, height=360)))
    every = {r.stage: r for r in estimate(corpus, Models(face=(B0,)), n_shards=1)}
    third = {r.stage: r for r in estimate(corpus, Models(face=(B0,), frame_stride=3), n_shards=1)}
    assert corpus.analysed(3) == 34 + 3 and corpus.analysed() == corpus.frames == 107  # 0, 3, ..., 99; 0, 3, 6
    assert third["face_features"].work == 37 and third["frame_predictions"].work == 37
    assert third["frame_predictions"].unit == "frames analysed" and every["frame_predictions"].unit == "frames"
    cpu2 = NODE_KINDS["cpu2"]
    assert third["face_features"].hours["cpu2"] == pytest.approx(
        (37 / cpu2.face_model_cps[B0] + cpu2.start_s("face_features", B0)) / 3600)
    assert third["faces"].hours == every["faces"].hours and third["faces"].work == 107  # every frame is decoded
    assert setting_notes(Models(face=(B0,))) == []
    (line,) = setting_notes(Models(face=(B0,), frame_stride=3))
    assert "faces.frame_stride is 3" in line and "upper bound" in line


def test_the_faces_settings_of_a_config_that_the_rates_were_not_measured_with_are_named() -> None:
    from affectflow.stages.faces import FacesOptions

    defaults = FacesOptions()
    assert FACES_MEASURED_WITH == {"detector": defaults.detector, "frame_stride": defaults.frame_stride}
    assert Models.of({"faces": {}}).detector == defaults.detector and Models.of({}).frame_stride == 1
    models = Models.of({"faces": {"detector": "mediapipe", "frame_stride": 5}})
    assert (models.detector, models.frame_stride) == ("mediapipe", 5)
    lines = setting_notes(models)
    assert len(lines) == 2 and "faces.detector is mediapipe" in lines[0] and defaults.detector in lines[0]


def test_the_suggested_shards_keep_the_longest_faces_job_within_budget() -> None:
    for kind in NODE_KINDS.values():
        for hours, nodes in ((1.0, 1), (0.25, 1), (1.0, 16)):
            n = suggest_shards(AFFWILD2, kind, job_hours=hours, nodes=nodes)
            longest = max(AFFWILD2.shard_faces_seconds(n, kind).values())
            assert longest <= hours * 3600 and n >= nodes, (kind.name, hours, nodes)
            assert n == nodes or n == 1 or max(AFFWILD2.shard_faces_seconds(n - 1, kind).values()) > hours * 3600
    cpu = NODE_KINDS["cpu2"]
    assert suggest_shards(AFFWILD2, cpu) >= math.ceil(2_700_000 / (3600 * cpu.faces[0].fps))
    # the same frames at 1280 x 720 cost more per frame: more shards for the same hour a job
    hd = Corpus(tuple(VideoCount(v.video_id, v.frames, v.audio_s, width=1280, height=720) for v in AFFWILD2.videos))
    assert suggest_shards(hd, cpu) > suggest_shards(AFFWILD2, cpu)
    two = Corpus((VideoCount("a", 10**9, 0.0), VideoCount("b", 10**9, 0.0)))
    assert suggest_shards(two, NODE_KINDS["cpu2"]) == 2  # never more shards than videos


def test_with_the_models_the_suggested_shards_keep_every_stages_longest_job_within_budget() -> None:
    """Hour-long recordings at one frame a second: the audio and ASR jobs, not faces, set the count."""
    talks = Corpus(tuple(VideoCount(f"t{i:03d}", 3600, 3600.0, width=640, height=360) for i in range(200)))
    models = Models(face=(B0,), audio=1, asr=1)
    cpu = NODE_KINDS["cpu2"]
    faces_only = suggest_shards(talks, cpu)
    n = suggest_shards(talks, cpu, models=models)
    assert n > faces_only and longest_jobs_over(talks, models, n, cpu, 3600.0) == {}
    over = longest_jobs_over(talks, models, faces_only, cpu, 3600.0)
    assert "audio_features" in over and all(h > 1.0 for h in over.values()), over
    rows = {r.stage: r.longest["cpu2"] for r in estimate(talks, models, faces_only, kinds=(cpu,))}
    assert over == {s: h for s, h in rows.items() if h is not None and h > 1.0}
    # a stage's own limit: only the stages over theirs
    assert longest_jobs_over(talks, models, faces_only, cpu, {"transcripts": 1e9}) == {}


def test_the_suggested_shards_give_every_node_a_shard_with_frames() -> None:
    assert FIVE.shards(2) == ["s0001"]  # 2 shards for 2 nodes: all five videos hash into one, a node idles
    assert suggest_shards(FIVE, NODE_KINDS["h100"], nodes=2) == 3 and len(FIVE.shards(3)) == 2
    for nodes in range(1, 10):  # as many filled shards as nodes, unless one shard per video is not enough
        n = suggest_shards(FIVE, NODE_KINDS["h100"], nodes=nodes)
        assert n <= len(FIVE.videos) and (len(FIVE.shards(n)) >= nodes or n == len(FIVE.videos)), (nodes, n)


def test_wall_hours_spread_over_the_nodes_but_never_under_the_longest_job() -> None:
    table = plan_table(AFFWILD2, Models(face=(B0,)), n_shards=4, nodes=2)
    faces = next(line for line in table.splitlines() if line.startswith("| faces |"))
    fps = NODE_KINDS["cpu2"].faces[0].fps  # the corpus is 640 x 360
    total = 2_700_000 / fps / 3600
    longest = max(AFFWILD2.shard_frames(4).values()) / fps / 3600
    assert faces.split("|")[4].strip() == f"{max(total / 2, longest):.3g}"
    measured = [line for line in table.splitlines() if line.startswith(("| faces |", "| face_features |"))]
    assert len(measured) == 2 and not any("not measured" in line for line in measured)  # both kinds have rates
    assert "not measured" in plan_table(AFFWILD2, Models(audio=1), n_shards=4)


def test_the_total_sums_the_measured_stages_and_counts_the_others() -> None:
    rows = estimate(AFFWILD2, Models(face=(B0,)), n_shards=1)
    total = next(line for line in plan_table(AFFWILD2, Models(face=(B0,)), n_shards=1).splitlines()
                 if line.startswith("| **all of these** |"))
    cpu = sum(r.hours["cpu2"] for r in rows)  # every stage measured on cpu2; one job each: wall = node-hours
    gpu = sum(r.hours["h100"] for r in rows if r.hours["h100"] is not None)
    assert total.split("|")[4].strip() == f"**{cpu:.3g}**"
    assert total.split("|")[5].strip() == f"**{gpu:.3g}** + 2 stages not measured"  # media, frame_predictions


def test_the_rates_are_the_recorded_benchmarks() -> None:
    latest = json.loads((REPO / "benchmarks/results/latest.json").read_text())["figures"]
    cpu = NODE_KINDS["cpu2"]
    by_size = latest["faces_stage_by_size"]["details"]["frames_per_s"]
    assert {str(r): r.fps for r in cpu.faces} == by_size
    assert cpu.face_model_cps == latest["face_features_threads"]["details"]["crops_per_s_by_model"]
    assert cpu.audio_rtf == latest["audio_embedding"]["value"]
    asr = latest["asr_faster_vs_openai_whisper"]["details"]
    assert cpu.asr_window_s == pytest.approx(asr["faster_whisper_s"] / whisper_windows(asr["audio_s"]))
    # each per-shard job's start, and the rates of the stages no other figure times, from the jobs section: a
    # face model's start by model, the others' by rule (the config's one audio, ASR and text model)
    jobs = latest["stage_job_start"]["details"]
    assert dict(cpu.job_start_s) == {(k if k.startswith("face_features/") else k.split("/")[0]): v
                                     for k, v in jobs["start_s"].items()}
    # a stage whose time did not grow with its work (per_unit_s 0, no rate): its work is charged nothing
    rate = {k.split("/")[0]: math.inf if f["per_unit_s"] == 0 else f["rate"] for k, f in jobs["fits"].items()}
    assert (cpu.media_videos_per_s, cpu.sheets_per_s, cpu.text_videos_per_s, cpu.predictions_fps) == (
        rate["media"], rate["contact_sheets"], rate["text_features"], rate["frame_predictions"])
    units = {k.split("/")[0]: v for k, v in jobs["rate_unit"].items()}
    assert units["media"] == units["contact_sheets"] == units["text_features"] == "videos/s"
    assert units["frame_predictions"] == "frames/s"
    h100 = json.loads((REPO / "benchmarks/results/gpu-nvidia-h100-80gb-hbm3.json").read_text())["figures"]
    gpu = NODE_KINDS["h100"]
    path = h100["gpu_face_path"]["details"]["gpu"]
    # by size since benchmarks.gpu times the faces stage at 1280 x 720 too; before, build_long_video's 640 x 360
    by_size = path.get("faces_stage_frames_per_s_by_size") or {"640x360": path["faces_stage_frames_per_s"]}
    assert {str(r): r.fps for r in gpu.faces} == by_size
    assert gpu.face_model_cps == {B0: h100["gpu_face_features_stage"]["value"]}


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
    assert out.startswith("config: config.yaml\n10 video(s): ") and "models: 2 face, 1 audio, 1 ASR, 1 text" in out
    assert "with the config's n_shards: 4" in out and "suggested n_shards for cpu2" in out
    for stage in ("media", "faces", "contact_sheets", "face_features", "audio_features", "transcripts",
                  "text_features", "frame_predictions"):
        assert f"| {stage} |" in out


def test_another_n_shards_after_a_run_says_how_many_shards_rerun(tmp_path: Path) -> None:
    """The suggestion is for a run's start: on a run with results, another n_shards regroups the videos and
    reruns the extraction of every shard whose videos change."""
    units = [Unit(f"v{i}", f"videos/v{i}.mp4", "train", shard_of(f"v{i}", 4)) for i in range(40)]
    earlier = tmp_path / "units.tsv"
    assert regrouped(earlier, units, 5) == ""  # no results yet
    UnitsTable(units).write_tsv(earlier)
    assert regrouped(earlier, units, 4) == ""
    moved = sum(u.shard != shard_of(u.video_id, 5) for u in units)
    changed = len({shard_of(u.video_id, 5) for u in units})  # with 40 videos, every one of the 5 changes
    assert 0 < moved < 40
    assert regrouped(earlier, units, 5) == (
        f"{moved} of the videos that the results beside {earlier} hold move to another shard, and {changed} of the "
        f"{changed} shards get other videos: their media, faces and feature jobs rerun")
    # a video added to a run keeps the others where they were: no warning for the same n_shards
    assert regrouped(earlier, [*units, Unit("new", "videos/new.mp4", "train", "")], 4) == ""


#: docs/performance.md, "Aff-Wild2 on N nodes": (nodes, the node kind whose suggested n_shards is shown, HD or not)
DOCS_TABLES = ((1, "h100", False), (4, "h100", False), (16, "cpu2", False), (16, "cpu2", True))
DOCS_MODELS = Models(face=(B0,), audio=1, asr=1)  # one face model, one audio model, one ASR model, no text


def docs_tables() -> list[tuple[int, str]]:
    """The suggested n_shards and the plan table of each of :data:`DOCS_TABLES`, as the docs print them."""
    hd = Corpus(tuple(VideoCount(v.video_id, v.frames, v.audio_s, width=1280, height=720) for v in AFFWILD2.videos))
    out = []
    for nodes, kind, is_hd in DOCS_TABLES:
        corpus = hd if is_hd else AFFWILD2
        n = suggest_shards(corpus, NODE_KINDS[kind], nodes=nodes, models=DOCS_MODELS)
        out.append((n, plan_table(corpus, DOCS_MODELS, n, nodes=nodes)))
    return out


def test_the_docs_aff_wild2_tables_are_the_plans() -> None:
    """docs/performance.md's tables are this module's arithmetic on the same corpus with the recorded rates: a
    change of rates or of the plan's charges that leaves them behind fails here (regenerate them with
    :func:`docs_tables`)."""
    doc = (REPO / "docs/performance.md").read_text()
    for (nodes, kind, _), (n, table) in zip(DOCS_TABLES, docs_tables(), strict=True):
        assert table in doc, f"docs/performance.md lacks the plan for {nodes} node(s) ({kind}):\n{table}"
        assert f"{n} shards" in doc or f"suggested for {kind}: {n}**" in doc, (nodes, kind, n)


def test_the_plan_warns_of_jobs_over_their_time_limit_and_of_videos_no_shard_count_splits(capsys) -> None:
    from affectflow.cli import _say_time_limits

    talks = Corpus(tuple(VideoCount(f"t{i:03d}", 3600, 12 * 3600.0, width=640, height=360) for i in range(5)))
    models = Models(face=(B0,), audio=1, asr=1)
    cpu = NODE_KINDS["cpu2"]
    n = suggest_shards(talks, cpu, models=models)
    assert n == 5  # one video a shard: a 12-hour recording's audio job alone is over an hour
    _say_time_limits(talks, models, n, cpu, job_hours=1.0)
    out = capsys.readouterr().out
    assert "the longest audio_features job still takes" in out and "more shards cannot split a video" in out
    _say_time_limits(talks, models, 1, cpu)
    out = capsys.readouterr().out
    assert "warning: n_shards 1: the longest audio_features job takes" in out and "time limit of 240 min there" in out
