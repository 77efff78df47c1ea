"""The configs that reproduce the paper's tables stay valid against the schema and registry."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from affectflow.plan.checks import check_config
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


def test_schema_fills_defaults():
    cfg = {"datasets": [{"adapter": "folder", "videos": "v"}]}
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert cfg["n_shards"] == 4 and cfg["faces"]["crop_size"] == 224 and cfg["on_bad_video"] == "skip"
    assert cfg["features"]["batch_size"] == "auto"
