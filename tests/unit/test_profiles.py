"""The Snakemake profiles ask only for output that says something about this workflow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def _dry_run_resources(tmp_path: Path, env: dict[str, str]) -> str:
    """The resources line snakemake -n prints for a face_features job under profiles/slurm (no cluster is
    asked anything in a dry run)."""
    (tmp_path / "Snakefile").write_text('rule face_features:\n    output: "f.txt"\n    resources: gpu=1\n'
                                        '    shell: "touch {output}"\n')
    full = {k: v for k, v in os.environ.items() if not k.startswith("AFFECTFLOW_SLURM")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", str(REPO / "profiles" / "slurm")],
                          cwd=tmp_path, env={**full, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in (proc.stdout + proc.stderr).splitlines() if "resources:" in x and "runtime=120" in x]
    return line


def test_the_slurm_profile_asks_for_gpus_unless_told_the_cluster_has_none(tmp_path: Path) -> None:
    """The GPU stages ask for one GPU on the GPU partition; AFFECTFLOW_SLURM_GPUS=0 (a CPU-only cluster) asks
    for none and keeps them on the CPU partition, whatever the rule's own gpu resource says."""
    on_gpus = _dry_run_resources(tmp_path, {"AFFECTFLOW_SLURM_PARTITION": "cpu",
                                            "AFFECTFLOW_SLURM_GPU_PARTITION": "gpu"})
    assert "gpu=1" in on_gpus and "slurm_partition=gpu" in on_gpus, on_gpus
    cpu_only = _dry_run_resources(tmp_path, {"AFFECTFLOW_SLURM_PARTITION": "cpu",
                                             "AFFECTFLOW_SLURM_GPU_PARTITION": "gpu", "AFFECTFLOW_SLURM_GPUS": "0"})
    assert "gpu=0" in cpu_only and "slurm_partition=cpu" in cpu_only, cpu_only
