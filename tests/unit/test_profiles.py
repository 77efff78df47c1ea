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


def _dry_run_resources(tmp_path: Path, env: dict[str, str], *, profile: str = "slurm", rule: str = "face_features",
                       attempt: int = 1) -> str:
    """The resources line snakemake -n prints for the job of a one-rule workflow (``rule``, a 4-hour
    ``runtime`` and a GPU of its own, as the workflow's GPU stages declare) under ``profile``, on try ``attempt``
    (no cluster is asked anything in a dry run)."""
    (tmp_path / "Snakefile").write_text(f'rule {rule}:\n    output: "f.txt"\n    resources: gpu=1, runtime=240\n'
                                        '    shell: "touch {output}"\n')
    full = {k: v for k, v in os.environ.items() if not k.startswith("AFFECTFLOW_SLURM")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--attempt", str(attempt), "--profile",
                           str(REPO / "profiles" / profile)],
                          cwd=tmp_path, env={**full, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in (proc.stdout + proc.stderr).splitlines() if "resources:" in x]
    return line


def _resource(line: str, name: str) -> str:
    found = re.search(rf"\b{name}=([^,\s]+)", line)
    assert found, (name, line)
    return found.group(1)


def test_the_slurm_profile_asks_for_gpus_unless_told_the_cluster_has_none(tmp_path: Path) -> None:
    """The GPU stages ask for one GPU on the GPU partition; AFFECTFLOW_SLURM_GPUS=0 (a CPU-only cluster) asks
    for none and keeps them on the CPU partition, whatever the rule's own gpu resource says, with the rule's
    own time limit (the profile's shorter one is a GPU's)."""
    on_gpus = _dry_run_resources(tmp_path, {"AFFECTFLOW_SLURM_PARTITION": "cpu",
                                            "AFFECTFLOW_SLURM_GPU_PARTITION": "gpu"})
    assert "gpu=1" in on_gpus and "slurm_partition=gpu" in on_gpus and "runtime=120," in on_gpus, on_gpus
    cpu_only = _dry_run_resources(tmp_path, {"AFFECTFLOW_SLURM_PARTITION": "cpu",
                                             "AFFECTFLOW_SLURM_GPU_PARTITION": "gpu", "AFFECTFLOW_SLURM_GPUS": "0"})
    assert "gpu=0" in cpu_only and "slurm_partition=cpu" in cpu_only and "runtime=240," in cpu_only, cpu_only


@pytest.mark.parametrize(("profile", "rule", "env"), [
    ("slurm", "face_features", {}), ("slurm-gpu", "faces", {}),
    ("slurm-gpu", "faces", {"AFFECTFLOW_SLURM_DECODE_CPUS": "16"}), ("slurm-gpu", "audio_features", {})])
def test_a_retried_job_asks_for_twice_the_time_and_memory(tmp_path: Path, profile: str, rule: str,
                                                          env: dict[str, str]) -> None:
    """A job killed at its time or memory limit is retried (``retries: 1``) with more, not with the limit that
    killed it: the profiles' own values grow with ``attempt`` as the rules' do."""
    first, second = (_dry_run_resources(tmp_path, env, profile=profile, rule=rule, attempt=a) for a in (1, 2))
    for name in ("runtime", "mem_mb"):
        assert int(_resource(second, name)) == 2 * int(_resource(first, name)), (name, first, second)
    if rule == "faces":  # 0.8 GB a decoding thread (8 by default) besides the CUDA context and the writer
        cpus = int(env.get("AFFECTFLOW_SLURM_DECODE_CPUS", "8"))
        assert int(_resource(first, "mem_mb")) == 3500 + 800 * cpus, first


def test_every_rule_asks_for_more_time_and_memory_on_each_try() -> None:
    """A rule with a fixed ``runtime`` or ``mem_mb`` would be retried with the limit that killed it; a rule's time
    limit is its own entry of RUNTIME_MIN, which ``affectflow plan`` checks the longest jobs against."""
    from affectflow.plan.job_resources import RUNTIME_MIN

    declared = re.compile(r"^rule (\w+):|^\s+(runtime|mem_mb)=(.+),$", re.M)
    found, rule = [], ""
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for name, resource, value in declared.findall(smk.read_text(encoding="utf-8")):
            rule = name or rule
            if not resource:
                continue
            found.append((rule, resource))
            if resource == "runtime":
                assert value == f'per_attempt(RUNTIME_MIN["{rule}"])', (smk.name, rule, value)
            else:
                assert value.startswith("per_attempt(") or value == "learn_mem", (smk.name, rule, value)
    assert {r for r, res in found if res == "runtime"} == set(RUNTIME_MIN), found
    assert len([r for r, res in found if res == "mem_mb"]) >= 10, found


def test_the_job_resources_grow_with_each_try() -> None:
    from affectflow.plan.job_resources import LEARN_FLOOR_MB, learn_mem_mb, per_attempt

    assert [per_attempt(120)(None, a) for a in (1, 2, 3)] == [120, 240, 360]
    assert learn_mem_mb(10, 1) == LEARN_FLOOR_MB and learn_mem_mb(10, 2) == 2 * LEARN_FLOOR_MB
    assert learn_mem_mb(20_000, 1) == 30_000  # learn stacks its rows: it grows with the feature shards


def test_the_plans_gpu_time_limits_are_the_gpu_profiles() -> None:
    """``affectflow plan`` warns against profiles/slurm-gpu's limits on a GPU node: they must be the profile's."""
    from affectflow.plan.job_resources import SLURM_GPU_RUNTIME_MIN, time_limits

    conf = yaml.safe_load((REPO / "profiles" / "slurm-gpu" / "config.yaml").read_text(encoding="utf-8"))
    profile = {rule: int(str(res["runtime"]).split("*")[0]) for rule, res in conf["set-resources"].items()}
    assert profile == SLURM_GPU_RUNTIME_MIN
    assert time_limits(True)["face_features"] == 60 and time_limits(False)["face_features"] == 120
    assert time_limits(True)["learn"] == time_limits(False)["learn"]
