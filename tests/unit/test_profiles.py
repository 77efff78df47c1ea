"""The Snakemake profiles ask only for output that says something about this workflow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILES = sorted((REPO / "profiles").glob("*/config.yaml"))
#: a ``shell:`` directive of a rule (the workflow's rules run ``script:`` or ``run:``)
SHELL = re.compile(r"^\s+shell\s*:", re.M)


def _rules_with_shell() -> list[str]:
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    return [str(p.relative_to(REPO)) for p in files if SHELL.search(p.read_text(encoding="utf-8"))]


def test_the_shell_scan_finds_a_shell_directive() -> None:
    assert SHELL.search('rule a:\n    output: "x"\n    shell:\n        "touch {output}"\n')
    assert not SHELL.search('rule a:\n    script:\n        "../scripts/a.py"\n')


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.parent.name)
def test_no_profile_prints_shell_commands_the_workflow_does_not_have(profile: Path) -> None:
    """With ``printshellcmds`` Snakemake prints ``Shell command: None`` for every job of a rule without ``shell:``."""
    conf = yaml.safe_load(profile.read_text(encoding="utf-8")) or {}
    if _rules_with_shell():
        pytest.skip(f"rules with shell: in {_rules_with_shell()}")
    assert not conf.get("printshellcmds"), f"{profile.relative_to(REPO)} sets printshellcmds"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.parent.name)
def test_no_profile_reruns_a_stage_for_a_newer_script_file(profile: Path) -> None:
    """Snakemake's ``code`` trigger compares a ``script:`` file's time with the outputs': a fresh clone or a
    ``git pull`` would rerun every stage. The rerun key holds the stage's code version instead."""
    conf = yaml.safe_load(profile.read_text(encoding="utf-8")) or {}
    assert conf.get("rerun-triggers") == ["mtime", "params", "input", "software-env"], profile
