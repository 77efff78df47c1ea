"""Run the real workflow in a scratch copy and read Snakemake's job plans.

A copy (Snakefile, workflow/, config, profiles; the demo data linked) keeps
each test's .snakemake state and results apart from the developer's own runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from affectflow.testing import REPO

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = ("Snakefile", "workflow", "profiles", "config.yaml", "envs", "requirements-nodeps.txt")


@dataclass
class Workdir:
    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def config(self) -> dict:
        return yaml.safe_load(self.config_path.read_text())

    def write_config(self, cfg: dict) -> None:
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def run(self, *args: str, timeout: float = 1200, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = [SNAKEMAKE, "--profile", "profiles/local", "--cores", "2", *args]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        proc = subprocess.run(cmd, cwd=self.path, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
        return proc

    def planned_jobs(self, *targets: str, env: dict[str, str] | None = None) -> set[tuple[str, str]]:
        """(rule, first output) of every job a dry run would execute (``targets`` may hold options)."""
        proc = self.run("--dry-run", *targets, env=env)
        return parse_plan(proc.stdout + proc.stderr)

    def results(self) -> Path:
        cfg = self.config()
        return self.path / cfg.get("results_dir", "results") / cfg.get("run_name", "demo")


_RULE = re.compile(r"^(?:local)?rule (\w+):\s*$")
_OUTPUT = re.compile(r"^\s+output: (.+)$")


def parse_plan(text: str) -> set[tuple[str, str]]:
    jobs: set[tuple[str, str]] = set()
    rule = None
    for line in text.splitlines():
        m = _RULE.match(line.strip()) if line.startswith(("rule ", "localrule ")) else None
        if m:
            rule = m.group(1)
            continue
        o = _OUTPUT.match(line)
        if o and rule:
            jobs.add((rule, o.group(1).split(", ")[0]))
            rule = None
    return jobs


class ConfigChange:
    """Edit the workdir's config for one dry run (the planned jobs), then restore it byte for byte."""

    def __init__(self, wd: Workdir, edit, env: dict[str, str] | None = None) -> None:
        self.wd, self.edit, self.env = wd, edit, env

    def __enter__(self) -> set[tuple[str, str]]:
        self.original = self.wd.config_path.read_text()
        cfg = self.wd.config()
        self.edit(cfg)
        self.wd.write_config(cfg)
        return self.wd.planned_jobs(env=self.env)

    def __exit__(self, *exc: object) -> None:
        self.wd.config_path.write_text(self.original)


def make_bare_workdir(dest: Path) -> Workdir:
    """A scratch copy of the workflow (Snakefile, workflow/, config, profiles) without the demo data.

    For configs that bring their own units, e.g. a synthetic ``table`` dataset.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return Workdir(dest)


_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$")


def job_counts(text: str) -> dict[str, int]:
    """Jobs per rule from the first "Job stats" table Snakemake prints (a run's or a dry run's plan)."""
    counts: dict[str, int] = {}
    lines = text.splitlines()
    if "Job stats:" not in (line.strip() for line in lines):
        return counts
    start = [line.strip() for line in lines].index("Job stats:")
    for line in lines[start + 1 :]:
        m = _STATS_ROW.match(line.strip())
        if m is None:
            continue  # the "job count" header and the dashes under it
        if m.group(1) == "total":
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def make_workdir(dest: Path, demo: Path | None = None) -> Workdir:
    make_bare_workdir(dest)
    demo = demo or REPO / "data" / "demo"
    if not (demo / ".complete").exists():
        raise AssertionError(f"{demo} is not built: run `make test` (it builds the demo first)")
    (dest / "data").mkdir(exist_ok=True)
    shutil.copytree(demo, dest / "data" / "demo", symlinks=True)
    return Workdir(dest)
