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
