"""The ``report_tables`` rule: every learn and fuse ``metrics.json`` of a run as ``metrics.csv`` (+ HTML).

Which files, and the row names that mark stand-in weights, come from the config here; the table's
rows and columns are :mod:`affectflow.report.tables`, which also reads the file back for the run page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from affectflow.core import joblog
from affectflow.core.files import atomic_write_text
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, wiring
from affectflow.plan.rerun import Stage
from affectflow.report.tables import STANDIN_MARK, metrics_html, metrics_table

#: bump when metrics.csv / metrics.html change for the same metrics files (docs/reruns.md)
STAGE_VERSION = 2  # 2: per-class rows in class order; `source` without the stand-in mark


@dataclass(frozen=True)
class ReportTablesOptions(StageOptions):
    """No config options; ``rows`` (the row names, which say when a row used stand-in weights) is wiring."""

    SECTION = ""

    rows: tuple[str, ...] = wiring(())


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage("report_tables", STAGE_VERSION, ReportTablesOptions, ("report_tables",), downstream="index_page")


def metrics_files(config: Mapping[str, Any]) -> dict[str, str]:
    """Every learn and fuse ``metrics.json`` of a run by row name, sorted by name (so the table does not
    depend on the order of keys in the config). Rows whose features come from a random-weight stand-in
    say so in their name."""
    out = f"{config['results_dir']}/{config['run_name']}"
    standins = set((config.get("features") or {}).get("standins") or [])
    sets = config.get("feature_sets") or {}

    def mark(feature_sets: list[str]) -> str:
        used = any(label.rsplit("/", 1)[-1] in standins for fs in feature_sets for label in sets[fs])
        return STANDIN_MARK if used else ""

    files = {}
    for task in config.get("tasks") or []:
        for fs in sets:
            files[f"learn/{task}/{fs}{mark([fs])}"] = f"{out}/models/{task}/{fs}/metrics.json"
        for fusion, spec in (config.get("fusions") or {}).items():
            files[f"fuse/{task}/{fusion}{mark(spec['feature_sets'])}"] = f"{out}/fusion/{task}/{fusion}/metrics.json"
    return dict(sorted(files.items()))


def run_report_tables(
    metrics_files: Mapping[str, str | os.PathLike[str]],
    out_csv: str | os.PathLike[str],
    out_html: str | os.PathLike[str] | None = None,
) -> None:
    """Write the long metrics table as CSV (and, optionally, a per-task wide HTML table)."""
    table = metrics_table(metrics_files)
    atomic_write_text(out_csv, table.to_csv(index=False))
    if out_html is not None:
        atomic_write_text(out_html, metrics_html(table))


def run(job: Job) -> None:
    """The rule: every learn and fuse ``metrics.json`` of the config -> ``output.csv`` and ``output.html``."""
    joblog.setup(job.log)
    run_report_tables(metrics_files(job.config), job.output.csv, job.output.html)
