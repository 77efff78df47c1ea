"""A fusion's files: ``metrics.json`` and ``chosen.json`` (the val results) and ``test_predictions.h5``.

``test_predictions.h5`` (store stage ``fuse``; files of its former name ``fused`` are read too) is what the
submission and the report read: per test video the ``decisions``, the post-processed ``posteriors`` and the
``timestamps``, under the chosen config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from affectflow.core.files import atomic_write_text
from affectflow.core.vocabulary import BINARY_TASKS
from affectflow.evaluate.metrics import MetricReport
from affectflow.fuse.inputs import LearnedPredictions
from affectflow.fuse.postprocess import PostConfig, decide, postprocess_video
from affectflow.fuse.selection import Selection
from affectflow.fuse.sweeps import SplitDataset, evaluate
from affectflow.fuse.tables import table_rows
from affectflow.io.store import Provenance, ShardWriter, VideoRecord


def write_val_results(out: Path, task: str, preds: LearnedPredictions, sel: Selection, val: SplitDataset,
                      pretrained_classes: list[str] | None, vsource: str | None,
                      excluded: list[tuple[str, str]]) -> tuple[MetricReport, list[Path]]:
    """``metrics.json`` (the table rows) and ``chosen.json``; returns the chosen config's val report too."""
    names, chosen = preds.names, sel.chosen()
    rows = table_rows(names, chosen, sel.singles, val, sel.smoothing_k)
    report = evaluate(val, chosen)
    files = [atomic_write_text(out / "metrics.json", json.dumps(
        {"task": task, "split": "val", "main": report.main, "feature_sets": names, "rows": rows},
        indent=2, default=_json_default) + "\n")]
    files.append(atomic_write_text(out / "chosen.json", json.dumps({
        "task": task,
        "feature_sets": names,
        "predictions": dict(preds.paths),
        "config": chosen.to_dict(),
        "val": report.metrics,
        "sweeps": sel.summary,
        "pretrained_classes": pretrained_classes,
        "video_filter_source": vsource,
        "excluded": excluded,
    }, indent=2, default=_json_default) + "\n"))
    return report, files


def write_test(path: Path, provenance: Provenance, task: str, names: list[str], cfg: PostConfig, vids: list[str],
               sources: Mapping[str, Mapping[str, np.ndarray]], frames: Mapping[str, np.ndarray],
               keep: Mapping[str, int] | None, excluded: list[tuple[str, str]]) -> Path:
    """``test_predictions.h5`` under ``cfg``; ``provenance`` (the job's rerun key) gains the chosen config."""
    prov = replace(provenance, model="+".join(names), config={**provenance.config, "chosen": cfg.to_dict()})
    with ShardWriter(path, prov) as w:
        for vid in vids:
            per = {n: sources[n][vid] for n in cfg.needed_sources}
            k = True if keep is None else bool(keep.get(vid, 1))
            post = postprocess_video(per, cfg, k)
            dec = decide(post, cfg)
            attrs: dict[str, Any] = {"split": "test", "n_frames": int(len(frames[vid])), "task": task}
            if task in BINARY_TASKS and keep is not None:
                attrs["video_keep"] = int(k)
            w.add(VideoRecord(vid, {"decisions": dec, "posteriors": post, "timestamps": frames[vid]}, attrs))
        w.set_skipped(list(excluded))
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, os.PathLike)):
        return os.fspath(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
