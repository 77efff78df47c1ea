"""The configs that reproduce the paper's tables stay valid against the schema and registry."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from affectflow.face_models import supported_models
from affectflow.models.registry import get

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "paper").glob("*.yaml")) + [REPO / "config.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_and_consistent(path):
    cfg = yaml.safe_load(path.read_text())
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    feats = cfg["features"]
    for name in feats["face"] + feats["audio"] + feats["asr"] + feats["text"]:
        get(name)  # every model is in the registry
    assert set(feats["face"]) <= set(supported_models()), "a face model that load_face_model cannot run"
    declared = {
        "face": set(feats["face"]),
        "audio": set(feats["audio"]),
    }
    for fs, modalities in cfg["feature_sets"].items():
        for label in modalities:
            kind, _, rest = label.partition("/")
            if kind == "text":
                asr, model = rest.split("/")
                assert asr in feats["asr"] and model in feats["text"], (fs, label)
            else:
                assert rest in declared[kind], (fs, label)
    for fusion in cfg["fusions"].values():
        assert set(fusion["feature_sets"]) <= set(cfg["feature_sets"])
    if cfg["pretrained"]:
        assert cfg["pretrained"] in feats["face"]
    if cfg["submit_fusion"]:
        assert cfg["submit_fusion"] in cfg["fusions"]
    assert set(feats["standins"]) <= set(feats["face"]) | set(feats["audio"])


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
