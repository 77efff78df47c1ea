"""DAG scale: ``snakemake -n`` on synthetic units tables of 1,000 to 50,000 videos.

A scratch copy of the workflow gets config.yaml with ``datasets: [{adapter:
table, table: units.tsv}]``, where the table comes from
:func:`affectflow.testing.synthetic.write_synthetic_units`, and one empty file per
video (a dry run checks that each job's inputs exist and reads their
modification times; it never opens them). The time is the whole command:
Snakemake's start-up, parsing (the units table is read once), building and
printing the plan. Every shard stage must plan one job per non-empty shard.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import REPO, Figure, Options, interleaved, median, timed

COPY = ("Snakefile", "workflow", "profiles", "config.yaml", "envs", "requirements-nodeps.txt")
# Hume-Vidmimic2 (~15,000 videos) is run with 256 shards (configs/paper/table2_emi.yaml, docs/cluster.md)
N_SHARDS = 256
SHARD_RULES = ("media", "faces", "contact_sheets", "face_features", "audio_features", "transcripts",
               "text_features")
_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$")


def snakemake_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("snakemake")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]


def job_counts(text: str) -> dict[str, int]:
    """Jobs per rule from the first "Job stats" table of Snakemake's output."""
    lines = [line.strip() for line in text.splitlines()]
    if "Job stats:" not in lines:
        return {}
    counts: dict[str, int] = {}
    for line in lines[lines.index("Job stats:") + 1 :]:
        m = _STATS_ROW.match(line)
        if m is None:
            continue
        if m.group(1) == "total":
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def expected_shard_jobs(cfg: dict[str, Any], n_nonempty: int) -> dict[str, int]:
    """Jobs per shard rule: one per non-empty shard and per model (or ASR x text model)."""
    f = cfg["features"]
    jobs = {"media": 1, "faces": 1, "contact_sheets": 1 if cfg["faces"].get("contact_sheets", True) else 0,
            "face_features": len(f["face"]), "audio_features": len(f["audio"]), "transcripts": len(f["asr"]),
            "text_features": len(f["asr"]) * len(f["text"])}
    return {k: v * n_nonempty for k, v in jobs.items() if v}


def prepare(dest: Path, n_videos: int, n_shards: int = N_SHARDS) -> dict[str, Any]:
    """A workflow copy in ``dest`` planning ``n_videos`` synthetic videos; returns what was made."""
    from affectflow.testing.synthetic import touch_videos, write_synthetic_units

    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / name)
    t_table, table = timed(lambda: write_synthetic_units(dest / "synthetic" / "units.tsv", n_videos, n_shards))
    t_touch, _ = timed(lambda: touch_videos(table, dest))
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["run_name"] = f"scale{n_videos}"
    cfg["n_shards"] = n_shards
    cfg["datasets"] = [{"adapter": "table", "table": "synthetic/units.tsv"}]
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return {"config": cfg, "shards": len(table.shards()), "table_s": t_table, "touch_s": t_touch}


def dry_run(workdir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [*snakemake_cmd(), "--profile", "profiles/local", "--cores", "2", "--dry-run"]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake --dry-run failed in {workdir}:\n{proc.stderr[-3000:]}")
    return proc


def measure(opts: Options, n_videos: int, n_shards: int = N_SHARDS) -> dict[str, Any]:
    wd = opts.workdir / f"dag_{n_videos}_{n_shards}"
    made = prepare(wd, n_videos, n_shards)
    out: dict[str, Any] = {}
    reps = 1 if n_videos > 15000 else opts.reps

    def go() -> None:
        out["proc"] = dry_run(wd)

    times = interleaved({"dry_run": go}, reps)["dry_run"]
    text = out["proc"].stdout + out["proc"].stderr
    counts = job_counts(text)
    want = expected_shard_jobs(made["config"], made["shards"])
    wrong = {r: (counts.get(r, 0), n) for r, n in want.items() if counts.get(r, 0) != n}
    if wrong:
        raise RuntimeError(f"{n_videos} videos: unexpected job counts (planned, expected): {wrong}")
    return {"seconds": median(times), "runs_s": times, "jobs": sum(counts.values()), "jobs_per_rule": counts,
            "nonempty_shards": made["shards"], "n_shards": n_shards, "setup_s": made["table_s"] + made["touch_s"]}


def run(opts: Options) -> list[Figure]:
    sizes = [1000] if opts.quick else [1000, 15000, 50000]
    shards = 64 if opts.quick else N_SHARDS  # quick: fewer jobs to plan, a faster smoke test
    figs, base = [], None
    for n in sizes:
        fig = Figure(f"dag_dry_run_{n}", f"snakemake -n, {n:,} synthetic videos, {shards} shards", unit="s",
                     target="< 60 s" if n <= 15000 else "grows no faster than the video count")
        r = measure(opts, n, shards)
        fig.value = r["seconds"]
        fig.details = {k: v for k, v in r.items() if k != "seconds"}
        if base is None:
            base = r["seconds"]
        else:
            fig.baseline, fig.baseline_label = base, f"{sizes[0]:,} videos"
            fig.ratio = r["seconds"] / base
            # what each video adds once the fixed costs (start-up, ~2,000 jobs) are paid
            fig.details["ms_per_extra_video"] = 1000 * (r["seconds"] - base) / (n - sizes[0])
        fig.target_met = r["seconds"] < 60 if n <= 15000 else (fig.ratio or 0) <= n / sizes[0]
        fig.note = (f"{r['jobs']} jobs planned, one per non-empty shard ({r['nonempty_shards']} of {shards}) "
                    f"in each shard stage; includes Snakemake's start-up")
        figs.append(fig)
    if not opts.quick:  # the same 15,000 videos in fewer, larger shards
        r = measure(opts, 15000, 64)
        fig = Figure("dag_dry_run_15000_64_shards", "snakemake -n, 15,000 synthetic videos, 64 shards", unit="s",
                     value=r["seconds"], baseline=figs[1].value, baseline_label=f"15,000 videos, {N_SHARDS} shards",
                     target="< 60 s", target_met=r["seconds"] < 60, details=r)
        fig.ratio = r["seconds"] / figs[1].value if figs[1].value else None
        fig.note = f"{r['jobs']} jobs; fewer shards, fewer jobs, same number of input files"
        figs.append(fig)
    return figs
