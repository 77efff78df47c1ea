"""The run's ``metrics.csv``: written from every learn and fuse ``metrics.json``, read back as ranked tables.

The file is long: columns ``task, stage, name, metric, value`` (plus ``source``, the key the
file was given under without the stand-in mark: ``learn/<task>/<feature set>``, ``fuse/<task>/<fusion>``).
A learn ``metrics.json`` (a :class:`~affectflow.evaluate.metrics.MetricReport`) gives rows named by its key; a fuse
``metrics.json`` gives one group of rows per table line (``<key>: <line>``,
e.g. ``expr/fusion: face+audio, filtering + smoothing``), like the paper's
Tables 1-4. Per-class scores appear as ``f1:<class>`` (EXPR) or ``r:<emotion>``
(EMI). The optional HTML has one table per task with a row per (stage, name)
and a column per scalar metric, values in percent like the paper.

Ranked tables (the paper's Tables 1-4 layout) are what the run page shows.

``metrics.csv`` is long (one row per task, stage, name and metric); a person
wants, per task, every learned feature set and fusion as one row, sorted by
the task's challenge metric, the best one marked and the rows whose features
came from random-weight stand-ins marked as such (their numbers mean nothing).
The row names carry those marks (``(stand-in weights)``, ``(chosen)``), as the
metric table's stage writes them.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.core.errors import AffectflowError
from affectflow.core.vocabulary import AH_CLASSES, EMI_EMOTIONS, EXPR_CLASSES, MAIN_METRIC, TASKS

STANDIN_MARK = " (stand-in weights)"
CHOSEN_MARK = " (chosen)"
METRICS_COLUMNS = ("task", "stage", "name", "metric", "value")
#: the columns the stage writes: the ones a reader needs, and the key each row's file was given under
COLUMNS = (*METRICS_COLUMNS, "source")
_PER_CLASS = {"expr": "f1", "emi": "r", "ah": "f1", "ah_video": "f1"}
#: per-class rows in the organisers' class order (a learn metrics.json is written with sorted keys)
_CLASS_ORDER = {"expr": EXPR_CLASSES, "emi": EMI_EMOTIONS, "ah": AH_CLASSES, "ah_video": AH_CLASSES}


class ReportTableError(AffectflowError, ValueError):
    """A metrics file that is neither a learn nor a fuse metrics.json."""


def _rows_of(key: str, d: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    task = str(d.get("task", ""))
    if "rows" in d:  # fuse
        out = []
        for row in d["rows"]:
            name = f"{key}: {row['name']}" + (CHOSEN_MARK if row.get("chosen") else "")
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
    order = {c: i for i, c in enumerate(_CLASS_ORDER.get(task, ()))}
    classes = sorted(per_class, key=lambda c: order.get(c, len(order)))  # stable: unknown names keep their order
    rows += [dict(task=task, stage=stage, name=name, metric=f"{prefix}:{c}", value=float(per_class[c]),
                  source=source) for c in classes]
    return rows


def metrics_table(metrics_files: Mapping[str, str | os.PathLike[str]]) -> pd.DataFrame:
    """All metrics files as one long table (columns :data:`COLUMNS`), in the order given."""
    rows: list[dict[str, Any]] = []
    for key, path in metrics_files.items():
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ReportTableError(f"{path}: cannot read metrics ({e})") from None
        name = str(key)
        rows += [{**r, "source": name.replace(STANDIN_MARK, "")} for r in _rows_of(name, d, os.fspath(path))]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def metrics_html(table: pd.DataFrame) -> str:
    """Per task one wide table, a row per (stage, name) and a column per scalar metric, in percent."""
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



@dataclass(frozen=True)
class RankedRow:
    """One feature set or fusion line of a task, its scores (fractions, not percent) and its marks."""

    stage: str
    name: str
    scores: dict[str, float]
    standin: bool
    chosen: bool
    best: bool = False


@dataclass(frozen=True)
class RankedTable:
    """One task's rows, best first (rows without the main metric last); ``metrics``: the columns, main first."""

    task: str
    metric: str
    metrics: tuple[str, ...]
    rows: tuple[RankedRow, ...]


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``metrics.csv`` as a frame (an error naming the file when a column is missing)."""
    table = pd.read_csv(path, dtype={"task": str, "stage": str, "name": str, "metric": str})
    missing = [c for c in METRICS_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a metrics table (no column(s) {missing})")
    return table


def display_name(stage: str, task: str, name: str) -> tuple[str, bool, bool]:
    """The row name without its ``<stage>/<task>/`` prefix and marks, whether it used a stand-in, whether
    it is the fusion's chosen line."""
    standin = STANDIN_MARK in name
    chosen = name.endswith(CHOSEN_MARK)
    shown = name.replace(STANDIN_MARK, "")
    shown = shown[: -len(CHOSEN_MARK)] if chosen else shown
    prefix = f"{stage}/{task}/"
    return (shown[len(prefix):] if shown.startswith(prefix) else shown), standin, chosen


def _score(row: RankedRow, metric: str) -> float:
    v = row.scores.get(metric, math.nan)
    return v if math.isfinite(v) else -math.inf


def ranked_table(task: str, long: pd.DataFrame) -> RankedTable:
    """One task's ranked table from its rows of the long metrics table (scalar metrics only)."""
    metric = MAIN_METRIC.get(task, "f1")
    scalar = long[(long["task"] == task) & ~long["metric"].str.contains(":", regex=False)]
    others = sorted(set(scalar["metric"]) - {metric})
    rows = []
    for (stage, name), group in scalar.groupby(["stage", "name"], sort=False):
        shown, standin, chosen = display_name(str(stage), task, str(name))
        scores = {str(m): float(v) for m, v in zip(group["metric"], group["value"], strict=True)}
        rows.append(RankedRow(str(stage), shown, scores, standin, chosen))
    rows.sort(key=lambda r: (-_score(r, metric), r.stage, r.name))
    top = _score(rows[0], metric) if rows else -math.inf
    marked = tuple(RankedRow(r.stage, r.name, r.scores, r.standin, r.chosen,
                             best=math.isfinite(top) and _score(r, metric) == top) for r in rows)
    return RankedTable(task, metric, (metric, *others), marked)


def ranked_tables(long: pd.DataFrame) -> list[RankedTable]:
    """One ranked table per task of the metrics table, in the vocabulary's task order."""
    present = set(long["task"].astype(str))
    return [ranked_table(t, long) for t in TASKS if t in present]
