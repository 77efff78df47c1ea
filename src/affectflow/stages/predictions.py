"""The ``predictions`` stage: the shards' frame tables -> one CSV per video and one Parquet file per run.

People open one video's CSV in a spreadsheet; scripts read the whole run from ``predictions.parquet``.
Both are put in place only when complete: the folder of CSVs is written beside its target and renamed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from affectflow.core import joblog
from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_folder, atomic_path, bounded_name
from affectflow.core.job import Job
from affectflow.core.options import StageOptions
from affectflow.plan.rerun import Stage, stage_key

log = logging.getLogger("affectflow.predict")

#: bump when the CSVs or the Parquet file change for the same shard tables (docs/reruns.md)
STAGE_VERSION = 2  # 2: CSV timestamps to the microsecond, not 6 significant digits (equal past 10,000 s)


class PredictionsError(AffectflowError, ValueError):
    """Shard tables that do not fit together (other columns, a video twice)."""


@dataclass(frozen=True)
class PredictionsOptions(StageOptions):
    """No options: the columns are decided by the shard tables."""

    SECTION = ""


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "predictions",
    STAGE_VERSION,
    PredictionsOptions,
    ("predictions",),
    downstream="index_page",
)


def csv_name(video_id: str) -> str:
    """A video's CSV file name (ids are file stems; a path separator, never expected, is replaced; an id too
    long for a file name is cut and tagged with its hash)."""
    return bounded_name(video_id.replace(os.sep, "_").replace("/", "_"), ".csv")


def run_predictions(shard_tables: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                      out_parquet: str | os.PathLike[str], *, key: str | None = None) -> int:
    """Write both outputs from the shard tables (same columns, each video once), a shard at a time: a run's
    table (9 M rows for Hume-Vidmimic2) is never held whole. Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stage_key(STAGE, PredictionsOptions(), expected=key)
    schemas = [pq.read_schema(p) for p in shard_tables]  # the files' footers only
    for path, schema in zip(shard_tables[1:], schemas[1:], strict=True):
        if schema.names != schemas[0].names:
            raise PredictionsError(f"{path}: columns {schema.names} differ from {shard_tables[0]}'s; "
                                   "rerun its frame_predictions job")
    # a shard whose label column holds no value (no prediction, every video skipped) has it as type null:
    # one schema for all, as joining the tables gave
    schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
    seen: dict[str, str] = {}  # CSV name -> video
    rows = 0
    with atomic_folder(Path(out_dir)) as folder, atomic_path(out_parquet, suffix=".parquet") as tmp:
        if schema is None:  # no shard: an empty table, as the page reads it
            pd.DataFrame().to_parquet(tmp, index=False)
        else:
            with pq.ParquetWriter(tmp, schema) as writer:
                for path in shard_tables:
                    table = pd.read_parquet(path)
                    _write_csvs(table, folder, seen)
                    writer.write_table(pa.Table.from_pandas(table, preserve_index=False).cast(schema))
                    rows += len(table)
    log.info("%d frames of %d videos -> %s and %s", rows, len(seen), out_dir, out_parquet)
    return rows


def _write_csvs(table: pd.DataFrame, out: Path, seen: dict[str, str]) -> None:
    """One CSV per video of a shard's table into ``out``; ``seen``: the CSV names written so far, by video."""
    for vid, group in table.groupby("video_id", sort=False) if len(table) else []:
        name = csv_name(str(vid))
        if name in seen:
            raise PredictionsError(f"two videos map to one CSV file name: {seen[name]}, {vid}")
        seen[name] = str(vid)
        # scores to 6 significant digits keep the files small; a frame's time needs a fixed number of
        # decimals (6 digits of 10010.0333 s would write it as the frame before it)
        group = group.assign(timestamp=group["timestamp"].map("{:.6f}".format))
        group.to_csv(out / name, index=False, float_format="%.6g")


def run(job: Job) -> None:
    """The rule: ``input`` (every shard's table) -> ``output.folder`` (CSVs) and ``output.parquet``."""
    joblog.setup(job.log)
    run_predictions(list(job.input), job.output.folder, job.output.parquet, key=job.params.key)
