"""Ranked metric tables: the paper's Tables 1-4 layout, read from the run's ``metrics.csv``.

``metrics.csv`` is long (one row per task, stage, name and metric); a person
wants, per task, every learned feature set and fusion as one row, sorted by
the task's challenge metric, the best one marked and the rows whose features
came from random-weight stand-ins marked as such (their numbers mean nothing).
The row names carry those marks (``(stand-in weights)``, ``(chosen)``), as the
metric table's stage writes them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd

from affectflow.core.vocabulary import MAIN_METRIC, TASKS

STANDIN_MARK = " (stand-in weights)"
CHOSEN_MARK = " (chosen)"
METRICS_COLUMNS = ("task", "stage", "name", "metric", "value")


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
