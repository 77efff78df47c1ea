"""`affectflow plan CONFIG` reads the config the run gets: the workflow's config.yaml with CONFIG merged on top, the
schema's checks and defaults, an applied bundle's models; a config it cannot use is one line naming the file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from affectflow.cli import main
from affectflow.data.units import shard_of
from affectflow.plan.checks import ConfigError
from affectflow.plan.config import workflow_config
from affectflow.predict.bundle import TaskSource, write_bundle
from affectflow.stages.catalogue import STAGES

REPO = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def videos(video_factory, tmp_path: Path) -> Path:
    """Two real videos (10 and 5 frames, with audio) in a folder of their own."""
    video_factory("videos/a.mp4", duration=1.0, fps=10)
    video_factory("videos/b.mp4", duration=0.5, fps=10)
    return tmp_path / "videos"


def _config(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _folder(tmp_path: Path, videos: Path, extra: str = "") -> Path:
    """A config whose datasets are the one folder ``videos``, after the lines ``extra``."""
    return _config(tmp_path, f"{extra}datasets: [{{adapter: folder, videos: {videos}}}]\n")


def _plan(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["plan", str(config), "--workflow", str(REPO), "--threads", "2", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _models_line(face: int, audio: int, asr: int) -> str:
    return f"models: {face} face, {audio} audio, {asr} ASR"


def test_the_readme_s_two_line_config_gets_the_workflow_s_defaults(videos: Path, tmp_path: Path, capsys) -> None:
    """README's config names a run and a folder; the run gets config.yaml's n_shards and models, and so does
    the plan."""
    mine = _folder(tmp_path, videos, "run_name: mine\n")
    rc, out, err = _plan(capsys, mine)
    assert rc == 0, err
    feats = DEFAULTS["features"]
    assert out.startswith(f"config: {REPO / 'config.yaml'} + {mine} (merged in this order")
    assert "2 video(s): 15 frames" in out
    assert _models_line(len(feats["face"]), len(feats["audio"]), len(feats["asr"])) in out
    filled = len({shard_of(v, DEFAULTS["n_shards"]) for v in ("a", "b")})  # the shards the run's jobs are for
    assert f"with the config's n_shards: {DEFAULTS['n_shards']} ({filled} of them hold videos" in out
    assert "| face_features |" in out and "| transcripts |" in out


def test_nested_keys_merge_as_snakemake_merges_them(videos: Path, tmp_path: Path) -> None:
    """A mapping merges key by key onto the defaults' (snakemake.utils.update_config); a list replaces theirs;
    the schema fills in what neither sets."""
    mine = _folder(tmp_path, videos, "n_shards: 2\nfaces: {batch_size: 8}\n")
    wc = workflow_config(mine, REPO)
    assert wc.files == [str(REPO / "config.yaml"), str(mine)]
    c = wc.config
    assert c["n_shards"] == 2 and c["run_name"] == DEFAULTS["run_name"]
    assert c["faces"]["batch_size"] == 8 and c["faces"]["detector"] == DEFAULTS["faces"]["detector"]
    assert c["datasets"] == [{"adapter": "folder", "videos": str(videos)}]
    assert c["features"]["face"] == DEFAULTS["features"]["face"]
    alone = workflow_config(mine, REPO, replace=True)  # --replace-workflow-config: the schema's defaults only
    assert alone.files == [str(mine)] and alone.config["features"]["face"] != DEFAULTS["features"]["face"]


def test_a_users_file_drops_the_stand_in_face_model(videos: Path, tmp_path: Path) -> None:
    """Narrowing features.face to the model with real weights: config.yaml's feature set of the dropped model
    stays after the merge and is named with how to drop it; ``null`` drops it, and config.yaml's standins list,
    which names the dropped model, is no problem (a stand-in for a model the run does not use changes nothing)."""
    narrowed = _folder(tmp_path, videos, "features: {face: [fer_minixception]}\n")
    assert "enet_b0_8_best_vgaf" in DEFAULTS["features"]["standins"] and "enet" in DEFAULTS["feature_sets"]
    with pytest.raises(ConfigError) as err:
        workflow_config(narrowed, REPO, stages=STAGES)
    lines = str(err.value).splitlines()
    assert any(line.strip().startswith("feature_sets.enet: ") for line in lines), lines
    assert not any("standins" in line for line in lines), lines
    assert "`feature_sets: {<name>: null}` or `fusions: {<name>: null}` drops one" in str(err.value)
    dropped = _folder(tmp_path, videos, "features: {face: [fer_minixception]}\nfeature_sets: {enet: null}\n")
    c = workflow_config(dropped, REPO, stages=STAGES).config
    assert "enet" not in c["feature_sets"] and set(c["feature_sets"]) == set(DEFAULTS["feature_sets"]) - {"enet"}
    assert c["features"]["face"] == ["fer_minixception"]


def test_an_applied_bundle_s_models_are_planned(videos: Path, tmp_path: Path, capsys) -> None:
    """`bundle:` adds the models its heads read to extraction (affectflow.plan.scope.merge_bundle, as the
    workflow does), so the plan counts their jobs."""
    fusion, head = tmp_path / "run/fusion", tmp_path / "run/models/b2"
    fusion.mkdir(parents=True)
    head.mkdir(parents=True)
    (fusion / "chosen.json").write_text(json.dumps({"feature_sets": ["b2"], "config": {}}), encoding="utf-8")
    (head / "head.pt").write_bytes(b"not read by the plan")
    (head / "head.pt.json").write_text(json.dumps({"extra": {"features": [
        "face/enet_b2_8", "audio/hubert_large_ls960_ft"]}}), encoding="utf-8")
    bundle = write_bundle(tmp_path / "bundle", [TaskSource("emi", "b2", fusion, {"b2": head})],
                          {"enet_b2_8": {"files": {}}, "hubert_large_ls960_ft": {"files": {}}}, {}, "earlier")
    mine = _folder(tmp_path, videos, f"bundle: {bundle}\n")
    rc, out, err = _plan(capsys, mine)
    assert rc == 0, err
    feats = DEFAULTS["features"]
    assert "bundle: models added to features: face/enet_b2_8, audio/hubert_large_ls960_ft" in out
    assert _models_line(len(feats["face"]) + 1, len(feats["audio"]) + 1, len(feats["asr"])) in out


BAD = {
    "notes.txt": ("some notes about the run\n", "not a config: a YAML or JSON mapping of config keys is expected"),
    "empty.yaml": ("", "not a config: a YAML or JSON mapping of config keys is expected"),
    "shards.yaml": ("n_shards: four\n", "config key n_shards: 'four' is not of type 'integer'"),
    "broken.yaml": ("run_name: [x\n", "not valid YAML (line 2, column 1: expected ',' or ']'"),
    "mapping.yaml": ("datasets:\n  adapter: folder\n  videos: v\n", "config key datasets: {'adapter': 'folder', "
                     "'videos': 'v'} is not of type 'array'"),
    "none.yaml": ("datasets: []\n", "config key datasets: [] should be non-empty"),
    "typo.yaml": ("n_shard: 4\n", "config key n_shard is not one the workflow knows; did you mean n_shards?"),
    "model.yaml": ("features: {face: [no_such_model]}\n", "the config does not fit together"),
    # `bundle: $BUNDLE` with the variable unset: not silently a run without the bundle's task columns
    "bundle.yaml": ("bundle: ''\n", "config key bundle: '' should be non-empty"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_config_it_cannot_use_is_one_line_naming_the_file(name: str, tmp_path: Path, capsys) -> None:
    text, problem = BAD[name]
    rc, out, err = _plan(capsys, _config(tmp_path, text, name))
    assert rc == 1 and out == ""
    assert err.startswith(f"affectflow: error: {tmp_path / name}: ") and problem in err, err
    assert "Traceback" not in err and (name == "model.yaml" or err.count("\n") == 1)


def test_datasets_without_videos_say_so(tmp_path: Path, capsys) -> None:
    (tmp_path / "nothing").mkdir()
    (tmp_path / "empty").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "empty" / name).write_bytes(b"")
    rc, out, err = _plan(capsys, _folder(tmp_path, tmp_path / "nothing"))
    assert rc == 1 and "| faces |" not in out
    assert err.startswith(f"affectflow: error: {tmp_path / 'mine.yaml'}: cannot build the units table: ")
    assert "no units found" in err and err.count("\n") == 1
    rc, out, err = _plan(capsys, _folder(tmp_path, tmp_path / "empty"))
    assert rc == 1 and "| faces |" not in out and out.count("cannot be probed") == 2
    assert err == f"affectflow: error: {tmp_path / 'mine.yaml'}: none of its 2 video(s) can be probed (above); " \
                  "nothing to plan\n"


def test_a_missing_file_or_workflow_is_named(tmp_path: Path, capsys) -> None:
    rc, _, err = _plan(capsys, tmp_path / "absent.yaml")
    assert rc == 1 and err == f"affectflow: error: {tmp_path / 'absent.yaml'}: no such config file\n"
    with pytest.raises(ConfigError, match="not the workflow's directory"):
        workflow_config(_config(tmp_path, "run_name: x\n"), tmp_path)


def test_the_command_exits_non_zero_without_a_traceback(tmp_path: Path) -> None:
    """The real entry point, in its own process: the YAML scalar that raised AttributeError."""
    notes = _config(tmp_path, "some notes\n", "some_notes.txt")
    p = subprocess.run([sys.executable, "-m", "affectflow.cli", "plan", str(notes)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == (f"affectflow: error: {notes}: not a config: a YAML or JSON mapping of config keys is "
                        "expected at the top level\n")


def test_a_task_s_learn_section_overrides_common_key_by_key_and_is_type_checked(videos: Path, tmp_path: Path) -> None:
    """``learn.expr.train.lr`` changes the learning rate of EXPR's heads only, keeping common's other training
    settings; a per-task value of the wrong type stops the run as a common one does."""
    mine = _folder(tmp_path, videos, "learn: {expr: {train: {lr: 0.002}}}\n")
    c = workflow_config(mine, REPO, stages=STAGES).config
    learn = STAGES["learn"].options
    expr = learn.from_config(c, task="expr", features=("face/fer_minixception",)).train
    emi = learn.from_config(c, task="emi", features=("face/fer_minixception",)).train
    common = DEFAULTS["learn"]["common"]["train"]
    assert expr["lr"] == 0.002 and emi["lr"] == common["lr"] != 0.002
    assert {k: expr[k] for k in common if k != "lr"} == {k: v for k, v in common.items() if k != "lr"}
    for bad, where in (('{ah_video: {class_weighted: "false"}}', "learn.ah_video.class_weighted"),
                       ('{emi: {train: {hidden: "64"}}}', "learn.emi.train.hidden")):
        with pytest.raises(ConfigError, match=re.escape(where)):
            workflow_config(_folder(tmp_path, videos, f"learn: {bad}\n"), REPO)


def test_the_plan_names_skipped_tasks_and_stops_at_a_half_labelled_one(videos: Path, tmp_path: Path, capsys) -> None:
    """As the workflow does at its start: a task no dataset labels is named as skipped; one labelled for train
    but not val stops with the split that lacks labels."""
    from affectflow.core.vocabulary import EXPR_CLASSES

    rc, out, err = _plan(capsys, _folder(tmp_path, videos))
    assert rc == 0, err
    assert "task expr skipped: no dataset of this run has expr labels\n" in out
    train = tmp_path / "labels" / "Train_Set"
    train.mkdir(parents=True)
    (train / "a.txt").write_text(",".join(EXPR_CLASSES) + "\n" + "0\n" * 10)
    half = _config(tmp_path, f"datasets: [{{adapter: affwild2, videos: {videos}, labels: {tmp_path / 'labels'}}}]\n")
    rc, out, err = _plan(capsys, half)
    assert rc == 1 and "| faces |" not in out
    assert err.startswith(f"affectflow: error: {half}: task expr: the datasets give expr labels for split 'train' "
                          "but none for 'val'")


def test_plan_refuses_what_the_workflow_refuses_at_its_start(tmp_path: Path, capsys) -> None:
    """faces.people: all with labelled datasets stops the workflow before any job; the plan says so too."""
    mine = _config(tmp_path, "faces: {people: all}\n")
    rc, _, err = _plan(capsys, mine)
    assert rc == 1 and "faces.people: all keeps every person's face, but tasks" in err
