"""One fusion: learned posteriors of several feature sets -> one chosen post-processing, swept on val.

The post-processing (:mod:`affectflow.fuse.postprocess`: blend weight ``w``, EXPR confidence threshold ``t``
with the pre-trained face model, smoothing kernel ``k``, AH video filter) is chosen on the val split only
(:mod:`affectflow.fuse.selection`), then applied to every test video: choosing on test would leak its labels
into the submission.

Output contract (``out_dir``): ``sweep_<w|t|k>.csv`` and ``.png`` for the sweeps that apply,
``chosen.json``, ``metrics.json`` (rows like the paper's Tables 1-4, val split) and ``test_predictions.h5``
(store stage ``fused``: per test video ``decisions``, post-processed ``posteriors`` and ``timestamps``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from affectflow.core.vocabulary import PRETRAINED
from affectflow.data.units import UnitsTable
from affectflow.evaluate.metrics import MetricReport
from affectflow.fuse.errors import FuseError
from affectflow.fuse.inputs import fusion_videos, read_frames, read_predictions, set_posteriors, val_labels
from affectflow.fuse.outputs import write_test, write_val_results
from affectflow.fuse.postprocess import PostConfig
from affectflow.fuse.pretrained import pretrained_for_filter
from affectflow.fuse.selection import select
from affectflow.fuse.settings import FuseSettings
from affectflow.fuse.sweeps import SplitDataset
from affectflow.fuse.tables import describe
from affectflow.fuse.video_filter import video_keep
from affectflow.io.store import Provenance

log = logging.getLogger("affectflow.fuse")


@dataclass
class FuseResult:
    """What a fusion chose and wrote."""

    task: str
    out_dir: Path
    chosen: PostConfig
    report: MetricReport  # the chosen config on val
    files: list[Path] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)


def fuse_task(task: str, units_tsv: str | os.PathLike[str], media_shards: Sequence[str | os.PathLike[str]],
              predictions: Mapping[str, str | os.PathLike[str]], pretrained: Sequence[str | os.PathLike[str]] | None,
              out_dir: str | os.PathLike[str], settings: FuseSettings, provenance: Provenance) -> FuseResult:
    """Sweep and choose the post-processing of ``predictions`` (feature set -> learn ``predictions.h5``) on val,
    apply it to test; ``provenance`` (the job's rerun key) goes into ``test_predictions.h5``."""
    names = list(predictions)
    if PRETRAINED in names:
        raise FuseError(f"a feature set may not be called {PRETRAINED!r} (reserved for the pre-trained model)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    units = UnitsTable.read_tsv(units_tsv)

    preds = read_predictions(task, predictions)
    vids = fusion_videos(task, preds)
    frames = read_frames(task, media_shards, vids.val + vids.test)
    labels = val_labels(task, units, units_tsv, vids.val, frames, names)
    if not vids.test:
        log.warning("fuse %s: no test video predicted by all feature sets", task)

    val_vids = sorted(labels)
    sources = set_posteriors(task, preds, frames, val_vids)
    pre = pretrained_for_filter(task, pretrained, settings.t, frames, val_vids + vids.test)
    if pre is not None:
        sources[PRETRAINED] = {v: pre.proba[v] for v in val_vids}
    vsource, keep = video_keep(task, settings.ah_video_source, preds, vids.common)
    val = SplitDataset("val", task, labels, sources, None if keep is None else {v: keep[v] for v in val_vids})

    sel = select(task, names, settings, val, None if pre is None else pre.mapping, keep is not None, out)
    chosen = sel.chosen()
    report, written = write_val_results(out, task, preds, sel, val, None if pre is None else pre.classes, vsource,
                                        vids.excluded)
    files = [*sel.files, *written]

    test_sources = set_posteriors(task, preds, frames, vids.test)
    if pre is not None:
        test_sources[PRETRAINED] = {v: pre.proba[v] for v in vids.test}
    files.append(write_test(out / "test_predictions.h5", provenance, task, names, chosen, vids.test, test_sources,
                            frames, keep, vids.excluded))
    log.info("fuse %s: chosen %s -> val %s = %.4f", task, describe(chosen), report.main, report.score)
    return FuseResult(task, out, chosen, report, files, vids.excluded)
