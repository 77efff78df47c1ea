"""Synthetic units tables: many video ids and paths, no media, for measuring the DAG at dataset scale.

    write_synthetic_units("scale/units.tsv", n_videos=15000, n_shards=64)

gives a ``units.tsv`` (the columns of :mod:`affectflow.data.units`) that the
``table`` dataset adapter reads, so ``snakemake -n`` can plan a 15,000-video run
without any video on disk. Ids look like Hume-Vidmimic2's (five digits,
``"00042"``; past 100,000 videos they simply get longer), paths are
``<videos_dir>/<id>.mp4``, and splits are 70/15/15 train/val/test, drawn with a
seeded generator so the same arguments always give the same bytes.
:func:`touch_videos` creates the (empty) files when a dry run should find its
inputs.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from affectflow.data.units import Unit, UnitsTable, shard_of

SPLIT_FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))


def synthetic_ids(n_videos: int, seed: int = 0) -> list[str]:
    """``n_videos`` distinct Hume-style ids (zero-padded numbers, at least five digits), in a seeded order."""
    if n_videos < 0:
        raise ValueError(f"n_videos must be >= 0, got {n_videos}")
    width = max(5, len(str(max(n_videos - 1, 0))))
    ids = [f"{i:0{width}d}" for i in range(n_videos)]
    random.Random(seed).shuffle(ids)
    return ids


def split_counts(n_videos: int) -> dict[str, int]:
    """How many videos go to train/val/test: 70/15/15, rounding leftovers into train."""
    val = int(n_videos * 0.15)
    test = int(n_videos * 0.15)
    return {"train": n_videos - val - test, "val": val, "test": test}


def synthetic_units(
    n_videos: int, n_shards: int, seed: int = 0, videos_dir: str = "videos", ext: str = ".mp4"
) -> UnitsTable:
    """The units of ``n_videos`` synthetic videos (no labels, no media)."""
    ids = synthetic_ids(n_videos, seed)
    counts = split_counts(n_videos)
    splits = [s for s, _ in SPLIT_FRACTIONS for _ in range(counts[s])]
    random.Random(seed + 1).shuffle(splits)
    units = [
        Unit(video_id=vid, path=os.path.join(videos_dir, vid + ext), split=split, shard=shard_of(vid, n_shards))
        for vid, split in zip(ids, splits, strict=True)
    ]
    return UnitsTable(units)


def write_synthetic_units(
    path: str | os.PathLike[str],
    n_videos: int,
    n_shards: int,
    seed: int = 0,
    videos_dir: str = "videos",
    ext: str = ".mp4",
) -> UnitsTable:
    """Write a units table of ``n_videos`` synthetic videos to ``path`` (tsv); return it.

    ``videos_dir`` is written into every path as given (relative paths are
    relative to the directory Snakemake runs in). Nothing is created under it:
    see :func:`touch_videos`.
    """
    table = synthetic_units(n_videos, n_shards, seed, videos_dir, ext)
    table.write_tsv(path)
    return table


def touch_videos(table: UnitsTable, base_dir: str | os.PathLike[str] = ".") -> int:
    """Create every video of ``table`` as an empty file under ``base_dir`` (existing files are kept); return the count.

    A dry run checks that each job's input files exist and reads their
    modification times, so a scale test needs the files, not their content.
    """
    base = Path(base_dir)
    made = set()
    n = 0
    for u in table:
        p = base / u.path
        if p.parent not in made:
            p.parent.mkdir(parents=True, exist_ok=True)
            made.add(p.parent)
        if not p.exists():
            p.touch()
        n += 1
    return n
