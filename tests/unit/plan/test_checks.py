"""The configs that reproduce the paper's tables stay valid against the schema and registry."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from affectflow.plan.checks import check_config, schema_problem
from affectflow.stages.catalogue import STAGES

REPO = Path(__file__).resolve().parents[3]
CONFIGS = sorted((REPO / "configs" / "paper").glob("*.yaml")) + [REPO / "config.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_and_consistent(path):
    """The schema, then the checks the workflow runs at parse time (models, feature sets, fusions, options)."""
    cfg = yaml.safe_load(path.read_text())
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    check_config(cfg, STAGES)


def test_bad_key_or_value_is_named():
    from snakemake.exceptions import WorkflowError

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["faces"]["crop_szie"] = 224
    with pytest.raises(WorkflowError, match="crop_szie"):
        validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["on_bad_video"] = "ignore"
    with pytest.raises(WorkflowError, match="ignore"):
        validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    for ok in ("auto", 1, 256):
        cfg = yaml.safe_load((REPO / "config.yaml").read_text())
        cfg["features"]["batch_size"] = ok
        validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    for bad in ("big", 0):
        cfg["features"]["batch_size"] = bad
        with pytest.raises(WorkflowError, match="batch_size"):
            validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def _schema_error(cfg):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError) as e:
        validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return schema_problem(e.value)


def test_a_schema_problem_is_one_line_naming_the_key():
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["n_shard"] = 8
    assert _schema_error(cfg) == ("config key n_shard is not one the workflow knows; did you mean n_shards? "
                                  "(workflow/schemas/config.schema.yaml lists them)")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["faces"]["crop_szie"] = 224
    assert "config key faces.crop_szie is not one the workflow knows; did you mean faces.crop_size?" in \
        _schema_error(cfg)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["on_bad_video"] = "ignore"
    line = _schema_error(cfg)
    assert line.startswith("config key on_bad_video: 'ignore' is not one of") and "\n" not in line
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["fusions"]["fer_text"]["k"] = "many"
    line = _schema_error(cfg)
    assert line.startswith("config key fusions.fer_text.k: ") and len(line) < 400
    # a value the schema does not offer gets the key's description, which says why
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["asr"]["compute_type"] = "auto"
    line = _schema_error(cfg)
    assert line.startswith("config key asr.compute_type: 'auto' is not one of") and "\n" not in line
    assert "auto is not offered: it chose float16 on CUDA and int8 on a CPU" in line


def test_the_workflow_stops_on_a_misspelt_key_with_that_line_only(tmp_path):
    """What a user sees: Snakemake's own error, a few lines, no schema or config dumped."""
    from affectflow.testing.snakerun import make_bare_workdir

    wd = make_bare_workdir(tmp_path / "wd")
    proc = wd.run("--dry-run", "--config", "n_shard=8", check=False, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key n_shard is not one the workflow knows; did you mean n_shards?" in out
    assert len(out.splitlines()) < 15 and "$defs" not in out, out


def test_schema_fills_defaults():
    cfg = {"datasets": [{"adapter": "folder", "videos": "v"}]}
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert cfg["n_shards"] == 4 and cfg["faces"]["crop_size"] == 224 and cfg["on_bad_video"] == "skip"
    assert cfg["features"]["batch_size"] == "auto"


def _problems(**changes) -> str:
    """What the workflow says of config.yaml with ``changes`` (a ``__``-separated key -> value) when it reads it
    (plan.config.settle_config: nulls taken out, the schema, the checks across keys); '' when nothing."""
    from affectflow.plan.checks import ConfigError
    from affectflow.plan.config import settle_config

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = cfg
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    try:
        settle_config(cfg, STAGES, REPO)
    except ConfigError as e:
        return str(e)
    return ""


def test_fusion_and_learn_values_that_would_fail_a_job_are_refused_when_the_config_is_read():
    """Each of these passed the schema and failed the fuse or learn job, after the whole extraction."""
    fer_text = yaml.safe_load((REPO / "config.yaml").read_text())["fusions"]["fer_text"]
    assert "fusions.fer_text.t: [0.1] below 1/7" in _problems(fusions={"fer_text": {**fer_text, "t": [0.1, 0.6]}})
    assert "ah_video_source: 'fer_txt' is not one of its feature_sets ['fer', 'text']" in _problems(
        fusions={"fer_text": {**fer_text, "ah_video_source": "fer_txt"}})
    assert "weights: non-negative, not all zero" in _problems(
        fusions={"three": {"feature_sets": ["fer", "text", "enet"], "weights": [0, 0, 0]}})
    assert "feature_sets.pretrained: the name is the pre-trained face model's" in _problems(
        feature_sets__pretrained=["face/fer_minixception"])
    assert "emi_weights: six non-negative numbers, not all zero" in _problems(
        learn__emi={"emi_weights": [0, 0, 0, 0, 0, 0]})
    # text settings apply to every text model: a GoEmotions head on MiniLM would be random logits
    assert "kind 'goemotions' does not fit text model 'all_minilm_l6_v2' (its kind is 'sentence'" in _problems(
        text={"kind": "goemotions"})
    assert _problems() == ""


def test_the_schema_refuses_values_no_job_could_run():
    for dotted, value, why in (("learn__common__train__device", "gpu", "learn.common.train.device: 'gpu'"),
                               ("learn__emi__stat_parts", [], "learn.emi.stat_parts"),
                               ("fusions__dup", {"feature_sets": ["fer", "fer"]}, "non-unique"),
                               ("feature_sets__twice", ["face/fer_minixception", "face/fer_minixception"],
                                "non-unique"),
                               ("feature_sets__my/set", ["face/fer_minixception"], "'my/set' does not match"),
                               ("n_shards", 10001, "10001 is greater than the maximum of 10000"),
                               ("fusions__..", {"feature_sets": ["fer"]}, "'..' does not match"),
                               ("run_name", "..", "config key run_name: '..' does not match")):
        assert why in _problems(**{dotted: value}), (dotted, _problems(**{dotted: value}))
    assert _problems(n_shards=10000) == "" and _problems(learn__common__train__device="cuda:1") == ""


def test_a_misspelt_pretrained_model_is_named_not_a_traceback():
    problems = _problems(features__face=["fer_minixcepton", "enet_b0_8_best_vgaf"], pretrained="fer_minixcepton")
    assert "features.face: 'fer_minixcepton' is not a registered model" in problems


def test_a_users_file_drops_a_fusion_of_config_yaml_with_null():
    """config.yaml's fer_text fuses the text set: a file that drops that set drops the fusion with it."""
    assert "fusions.fer_text.feature_sets: 'text' is not a feature set" in _problems(feature_sets__text=None)
    assert "`fusions: {<name>: null}` drops one" in _problems(feature_sets__text=None)
    assert _problems(feature_sets__text=None, fusions__fer_text=None, submit_fusion=None) == ""


def test_a_misspelt_pin_and_a_missing_template_are_named_when_the_config_is_read():
    assert ("model_pins: 'hf/facebook--wav2vec2-base-960h/pytorch_model.bim' is no weight file of a registered "
            "model; did you mean 'hf/facebook--wav2vec2-base-960h/pytorch_model.bin'?") in _problems(
        model_pins={"hf/facebook--wav2vec2-base-960h/pytorch_model.bim": "0" * 64})
    assert _problems(model_pins={"emotiefflib/enet_b0_8_best_vgaf.pt": "0" * 64}) == ""  # face_engine timm's file
    from affectflow.plan.checks import ConfigError, check_templates

    cfg = {"submission_template": {"expr": "templates/expr.txt", "ah": "templates/ah.txt"}}
    with pytest.raises(ConfigError, match="submission_template.expr: templates/expr.txt: no such file"):
        check_templates(cfg, ["expr"], REPO)
    check_templates(cfg, ["emi"], REPO)  # the run does not submit EXPR or AH: their templates are never read
    check_templates({"submission_template": {"expr": str(REPO / "config.yaml")}}, ["expr"], REPO)
