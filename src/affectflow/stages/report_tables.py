"""One metrics table for the report: every learn and fuse ``metrics.json`` as long rows.

Columns: ``task, stage, name, metric, value`` (plus ``source``, the key the
file was given under). A learn ``metrics.json`` (a
:class:`~affectflow.evaluate.metrics.MetricReport`) gives rows named by its key; a fuse
``metrics.json`` gives one group of rows per table line (``<key>: <line>``,
e.g. ``expr/fusion: face+audio, filtering + smoothing``), like the paper's
Tables 1-4. Per-class scores appear as ``f1:<class>`` (EXPR) or ``r:<emotion>``
(EMI). The optional HTML has one table per task with a row per (stage, name)
and a column per scalar metric, values in percent like the paper.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.core import joblog
from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_write_text
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, wiring
from affectflow.plan.rerun import Stage

#: bump when metrics.csv / metrics.html change for the same metrics files (docs/reruns.md)
STAGE_VERSION = 1


@dataclass(frozen=True)
class ReportTablesOptions(StageOptions):
    """No config options; ``rows`` (the row names, which say when a row used stand-in weights) is wiring."""

    SECTION = ""

    rows: tuple[str, ...] = wiring(())


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage("report_tables", STAGE_VERSION, ReportTablesOptions, ("report_tables",), downstream="index_page")

COLUMNS = ("task", "stage", "name", "metric", "value", "source")
_PER_CLASS = {"expr": "f1", "emi": "r", "ah": "f1", "ah_video": "f1"}


class ReportTableError(AffectflowError, ValueError):
    """A metrics file that is neither a learn nor a fuse metrics.json."""


def _rows_of(key: str, d: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    task = str(d.get("task", ""))
    if "rows" in d:  # fuse
        out = []
        for row in d["rows"]:
            name = f"{key}: {row['name']}" + (" (chosen)" if row.get("chosen") else "")
            out += _metric_rows(task, "fuse", name, row.get("metrics", {}), row.get("per_class", {}), key)
        return out
    if "metrics" in d and "split" in d:  # learn (MetricReport)
        return _metric_rows(task, "learn", key, d["metrics"], d.get("per_class", {}), key)
    raise ReportTableError(f"{path}: not a learn or fuse metrics.json (no 'metrics' or 'rows')")


def _metric_rows(task: str, stage: str, name: str, metrics: Mapping[str, float], per_class: Mapping[str, float],
                 source: str) -> list[dict[str, Any]]:
    rows = [dict(task=task, stage=stage, name=name, metric=m, value=float(v), source=source)
            for m, v in metrics.items()]
    prefix = _PER_CLASS.get(task, "score")
    rows += [dict(task=task, stage=stage, name=name, metric=f"{prefix}:{c}", value=float(v), source=source)
             for c, v in per_class.items()]
    return rows


def metrics_table(metrics_files: Mapping[str, str | os.PathLike[str]]) -> pd.DataFrame:
    """All metrics files as one long table (columns :data:`COLUMNS`), in the order given."""
    rows: list[dict[str, Any]] = []
    for key, path in metrics_files.items():
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ReportTableError(f"{path}: cannot read metrics ({e})") from None
        rows += _rows_of(str(key), d, os.fspath(path))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _html(table: pd.DataFrame) -> str:
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>affectflow metrics</title>",
             "<style>table{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,td:nth-child(2),th{text-align:left}</style></head><body>",
             "<h1>Validation metrics</h1><p>Scores in percent (EMI: mean Pearson r &times; 100).</p>"]
    scalar = table[~table["metric"].str.contains(":", regex=False)]
    for task, group in scalar.groupby("task", sort=False):
        wide = group.pivot_table(index=["stage", "name"], columns="metric", values="value", sort=False)
        wide = (wide * 100).round(2).reset_index()
        parts.append(f"<h2>{html.escape(str(task).upper())}</h2>")
        parts.append(wide.to_html(index=False, na_rep="", escape=True, border=0))
    if scalar.empty:
        parts.append("<p>No metrics.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def metrics_files(config: Mapping[str, Any]) -> dict[str, str]:
    """Every learn and fuse ``metrics.json`` of a run by row name, sorted by name (so the table does not
    depend on the order of keys in the config). Rows whose features come from a random-weight stand-in
    say so in their name."""
    out = f"{config['results_dir']}/{config['run_name']}"
    standins = set((config.get("features") or {}).get("standins") or [])
    sets = config.get("feature_sets") or {}

    def mark(feature_sets: list[str]) -> str:
        used = any(label.rsplit("/", 1)[-1] in standins for fs in feature_sets for label in sets[fs])
        return " (stand-in weights)" if used else ""

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
        atomic_write_text(out_html, _html(table))


def run(job: Job) -> None:
    """The rule: every learn and fuse ``metrics.json`` of the config -> ``output.csv`` and ``output.html``."""
    joblog.setup(job.log)
    run_report_tables(metrics_files(job.config), job.output.csv, job.output.html)
