"""The fusion's choice of post-processing on val: one parameter at a time, in the order it is applied.

Blend weight ``w`` -> EXPR confidence threshold ``t`` -> smoothing kernel ``k`` -> AH video filter (paper
sections 3.1, 4.1; Figures 2-5). Each step is swept for each single feature set and for the blend, so the
tables can compare them; the blend's (or the only set's) winner is the chosen config. Each sweep writes its
``sweep_<param>.csv`` and ``.png``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.core.files import atomic_write_text
from affectflow.core.vocabulary import BINARY_TASKS, PRETRAINED, is_video_task
from affectflow.fuse.errors import FuseError
from affectflow.fuse.postprocess import PostConfig
from affectflow.fuse.settings import FuseSettings
from affectflow.fuse.sweeps import SplitDataset, SweepResult, evaluate, plot_sweep, sweep, sweep_many

log = logging.getLogger("affectflow.fuse")


def select(task: str, names: list[str], settings: FuseSettings, val: SplitDataset,
           pretrained_mapping: tuple[int, ...] | None, can_filter_videos: bool, out: Path) -> Selection:
    """Coordinate-wise sweeps w -> t -> k -> video filter on ``val``; ``t`` only for EXPR with the pre-trained
    model (``pretrained_mapping``: its classes onto Aff-Wild2's)."""
    sel = Selection.start(task, names, settings, val, pretrained_mapping, out)
    sel.sweep_w()
    if task == "expr" and pretrained_mapping is not None:
        sel.sweep_t()
    sel.sweep_k()
    sel.choose_video_filter(can_filter_videos)
    return sel


#: the most weight vectors ``weights_on_val`` evaluates on val (each a full evaluation)
MOST_WEIGHT_VECTORS = 5000
_UNIT = 10**6  # grid values in millionths: sums compared exactly


def simplex(n: int, grid: tuple[float, ...]) -> list[tuple[float, ...]]:
    """Every weight vector of ``n`` values of ``grid`` summing to 1, the most even first (built a value at a
    time with what is left to sum, not by trying every combination)."""
    values = sorted({round(float(v) * _UNIT) for v in grid})

    def rest(k: int, left: int) -> list[tuple[int, ...]]:
        if k == 1:
            return [(left,)] if left in values else []
        return [(v, *tail) for v in values if v <= left for tail in rest(k - 1, left - v)]

    found = [tuple(x / _UNIT for x in v) for v in rest(n, _UNIT)] if n >= 1 else []
    return sorted(found, key=lambda v: (sum((x - 1.0 / n) ** 2 for x in v), v))


@dataclass
class Selection:
    """The configs chosen so far -- the blend's (``fused``) and each single feature set's -- and what the sweeps
    recorded (``summary``) and wrote (``files``). Each step fixes one parameter on val, in post-processing order."""

    task: str
    names: list[str]
    settings: FuseSettings
    val: SplitDataset
    out: Path
    fused: PostConfig
    singles: dict[str, PostConfig]
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    #: per line that filters (t chosen): the smoothing kernel chosen with filtering off, for the tables'
    #: "smoothing" row (the chosen k was swept with filtering on, and alone can score below no smoothing)
    smoothing_k: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, task: str, names: list[str], settings: FuseSettings, val: SplitDataset,
              pretrained_mapping: tuple[int, ...] | None, out: Path) -> Selection:
        """Unprocessed configs: the blend (``weights`` as given, with more than one set) and each set alone."""
        s = settings
        common: dict[str, Any] = dict(smoothing=s.smoothing, sigma=s.sigma, pretrained=PRETRAINED,
                                      filter_mode=s.filter_mode, ah_threshold=float(s.ah_threshold))
        if pretrained_mapping is not None:
            common["mapping"] = pretrained_mapping
        fused = PostConfig(task, tuple(names), weights=s.weights if len(names) > 1 else None, **common)
        singles = {n: PostConfig(task, (n,), **common) for n in names}
        return cls(task, names, settings, val, out, fused, singles)

    @property
    def main(self) -> str:
        """The line whose sweep decides the chosen config: the blend, or the only set."""
        return "fused" if len(self.names) > 1 else self.names[0]

    def lines(self) -> dict[str, PostConfig]:
        """One curve per single set, plus the blend with several sets."""
        return {**self.singles, **({"fused": self.fused} if len(self.names) > 1 else {})}

    def record(self, param: str, results: dict[str, SweepResult], title: str, name: str = "") -> None:
        """Write ``sweep_<name>.csv`` and ``.png`` (``name``: the parameter's by default) and note each line's
        winner in the summary under ``name``."""
        name = name or param
        for r in results.values():
            r.table = r.table.sort_values(param, kind="stable").reset_index(drop=True)
        table = pd.concat([r.table.assign(config=label)[["config", *r.table.columns]]
                           for label, r in results.items()], ignore_index=True)
        self.files.append(atomic_write_text(self.out / f"sweep_{name}.csv", table.to_csv(index=False)))
        self.files.append(plot_sweep(results if len(results) > 1 else next(iter(results.values())),
                                     self.out / f"sweep_{name}.png", title=title))
        self.summary[name] = {label: {"best": r.best_value, "score": r.best_score, "metric": r.metric}
                              for label, r in results.items()}

    def sweep_w(self) -> None:
        """The blend weight of the first set, with exactly two sets; more sets keep ``weights`` (or equal)."""
        names, grid = self.names, self.settings.w
        if len(names) == 2 and grid:
            res = sweep_many(self.val, {"fused": self.fused}, "w", grid)
            self.record("w", res, f"{self.task.upper()}: blend weight of {names[0]} (val)")
            self.fused = res["fused"].best_config(self.fused)
        elif len(names) > 2 and self.settings.weights_on_val and grid:
            self.sweep_weights(simplex(len(names), grid))
        elif len(names) > 2:
            log.info("fuse %s: %d feature sets, blend weights %s (w is swept for two sets only; weights_on_val "
                     "chooses them on val)", self.task, len(names), self.settings.weights or "equal")

    def sweep_weights(self, candidates: list[tuple[float, ...]]) -> None:
        """More than two sets: the blend's weight vector on val (the paper weighs each modality by its
        reliability, section 3.2), from ``candidates``, the most even first (ties go to the more even blend);
        ``sweep_weights.csv`` has a column per set."""
        res = sweep(self.val, self.fused, "weights", candidates)
        table = pd.DataFrame([dict(zip(self.names, v, strict=True)) for v in res.table["weights"]])
        table = pd.concat([table, res.table.drop(columns="weights")], axis=1)
        self.files.append(atomic_write_text(self.out / "sweep_weights.csv", table.to_csv(index=False)))
        self.summary["weights"] = {"fused": {"best": list(res.best_value), "score": res.best_score,
                                             "metric": res.metric, "candidates": len(candidates)}}
        self.fused = res.best_config(self.fused)
        log.info("fuse %s: blend weights %s chosen on val among %d", self.task,
                 "/".join(f"{w:.2f}" for w in res.best_value), len(candidates))

    def sweep_t(self) -> None:
        """EXPR's confidence threshold per line; ``t = 1`` (no filtering) is always in the grid and wins ties."""
        grid = sorted(set(self.settings.t) | {1.0}, reverse=True)  # ties -> larger t (less filtering)
        res = sweep_many(self.val, self.lines(), "t", grid)
        self.record("t", res, "EXPR: confidence threshold t (t = 1: no filtering; val)")

        def best_t(r: SweepResult) -> float | None:
            return None if float(r.best_value) >= 1.0 else float(r.best_value)

        self.singles = {n: replace(cfg, t=best_t(res[n])) for n, cfg in self.singles.items()}
        self.fused = replace(self.fused, t=best_t(res[self.main]))

    def sweep_k(self) -> None:
        """The smoothing kernel per line (frame tasks only: a video task has one prediction per video)."""
        task, grid = self.task, self.settings.k
        if not is_video_task(task) and grid:
            res = sweep_many(self.val, self.lines(), "k", grid)
            self.record("k", res, f"{task.upper()}: smoothing kernel k ({self.settings.smoothing}; val)")
            self.singles = {n: replace(cfg, k=int(res[n].best_value)) for n, cfg in self.singles.items()}
            self.fused = replace(self.fused, k=int(res[self.main].best_value))
            filtering = {label: replace(cfg, t=None) for label, cfg in self.lines().items() if cfg.t is not None}
            if filtering:  # the paper's "smoothing" rows: k alone, chosen without filtering (k = 1 among them)
                alone = sweep_many(self.val, filtering, "k", sorted(set(grid) | {1}))
                self.record("k", alone, f"{task.upper()}: smoothing kernel k without filtering "
                            f"({self.settings.smoothing}; val)", name="k_without_filtering")
                self.smoothing_k = {label: int(r.best_value) for label, r in alone.items()}
        elif is_video_task(task) and grid and grid != (1,):
            log.info("fuse %s: one prediction per video, no smoothing sweep", task)

    def choose_video_filter(self, can_filter_videos: bool) -> None:
        """AH and AH-video: the video filter per line, forced by ``ah_video_filter: true`` or kept where it
        raises val F1 (``auto``)."""
        mode = self.settings.ah_video_filter
        if self.task in BINARY_TASKS and can_filter_videos and mode is not False:
            def with_filter(cfg: PostConfig) -> PostConfig:
                if mode is True:
                    return replace(cfg, video_filter=True)
                on = replace(cfg, video_filter=True)
                return on if evaluate(self.val, on).score > evaluate(self.val, cfg).score else cfg

            self.singles = {n: with_filter(cfg) for n, cfg in self.singles.items()}
            self.fused = with_filter(self.fused)
            self.summary["video_filter"] = {label: cfg.video_filter for label, cfg in self.lines().items()}
        elif self.task in BINARY_TASKS and mode is True:
            raise FuseError("ah_video_filter is true but the predictions carry no video classifier decisions")

    def chosen(self) -> PostConfig:
        """The blend with several sets, else the only set's config."""
        return self.fused if len(self.names) > 1 else self.singles[self.names[0]]
