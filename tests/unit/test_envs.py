"""The conda environment of the rules lists exactly pyproject's pins."""

from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[2]


def test_conda_env_matches_pyproject():
    env = yaml.safe_load((REPO / "envs" / "affectflow.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = {p for p in pip if not p.startswith("-")}
    deps = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    assert pinned - {"torch==2.13.0"} == deps
    assert "-r ../requirements-nodeps.txt" in pip and "--editable .." in pip
    assert "ffmpeg" in env["dependencies"]


def test_every_rule_uses_the_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        n_rules = text.count("\nrule ") + text.startswith("rule ") + text.count("    rule:")
        assert text.count('conda:\n') >= n_rules, smk.name
