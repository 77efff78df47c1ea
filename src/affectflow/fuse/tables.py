"""The rows of the paper's Tables 1-4 for one fusion: each line raw, then with each chosen step added, on val.

Adding the chosen steps one by one (smoothing, filtering + smoothing, the video filter) shows what each
contributes, as the paper's tables do; the row equal to the chosen config is marked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from affectflow.fuse.postprocess import PostConfig
from affectflow.fuse.sweeps import SplitDataset, evaluate


def table_rows(names: list[str], chosen: PostConfig, singles: Mapping[str, PostConfig],
               val: SplitDataset, smoothing_k: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """``metrics.json``'s rows: each single set's steps (its own chosen config), then the blend's.
    ``smoothing_k``: per line (a set's name, or ``fused``) that filters, the kernel chosen without filtering,
    for its "smoothing" row."""
    alone = smoothing_k or {}
    lines = [(n, [n], singles[n], alone.get(n)) for n in names]
    if len(names) > 1:
        lines.append(("+".join(names), names, chosen, alone.get("fused")))
    rows = []
    for title, sets, cfg, k_alone in lines:
        for suffix, step in steps(cfg, k_alone):
            rep = evaluate(val, step)
            rows.append({
                "name": f"{title}, {suffix}" if suffix else title,
                "feature_sets": sets,
                "ensemble": len(sets) > 1,
                "post": {"weights": step.weights, "k": step.k, "smoothing": step.smoothing, "t": step.t,
                         "video_filter": step.video_filter},
                "chosen": step == chosen,
                "metrics": rep.metrics,
                "per_class": rep.per_class,
                "n": rep.n,
            })
    return rows


def steps(cfg: PostConfig, smoothing_k: int | None = None) -> list[tuple[str, PostConfig]]:
    """The table rows for one line: raw, smoothing, filtering + smoothing, + video filter (the ones it uses).

    ``smoothing_k``: the kernel for the "smoothing" row where it differs from the chosen one: with filtering
    on, ``cfg.k`` was chosen with filtering, and smoothing alone is better shown at its own best kernel."""
    raw = replace(cfg, k=1, t=None, video_filter=False)
    out = [("", raw)]
    alone = smoothing_k if cfg.t is not None and smoothing_k else cfg.k
    if alone > 1:
        out.append(("smoothing", replace(raw, k=alone)))
    if cfg.t is not None:
        out.append(("filtering + smoothing" if cfg.k > 1 else "filtering", replace(raw, k=cfg.k, t=cfg.t)))
    if cfg.video_filter:
        label = ", ".join(x for x in ("smoothing" if cfg.k > 1 else "", "video filter") if x)
        out.append((label, cfg))
    return out


def describe(cfg: PostConfig) -> str:
    """One line for the log: the sets and the post-processing steps that are on."""
    parts = []
    if cfg.weights is not None and len(cfg.sources) > 1:
        parts.append("w=" + "/".join(f"{w:.2f}" for w in cfg.weights))
    if cfg.t is not None:
        parts.append(f"t={cfg.t:g}")
    if cfg.k > 1:
        parts.append(f"k={cfg.k} {cfg.smoothing}")
    if cfg.video_filter:
        parts.append("video filter")
    return "+".join(cfg.sources) + (" (" + ", ".join(parts) + ")" if parts else "")
