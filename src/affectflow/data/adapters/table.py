"""The ``table`` adapter: a ready units table (``units.tsv`` columns), read as it is.

For generated or very large datasets: no folder is listed and no video is
looked at, so building the units stays fast whatever the dataset's size.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from affectflow.data.adapters.entry import DatasetEntry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import resolve
from affectflow.data.adapters.registry import FoundUnits, register_adapter
from affectflow.data.units import UnitsError, UnitsTable, shard_of


def check_table_entry(entry: DatasetEntry) -> None:
    """A ``table`` path and no folders: the table gives every path itself."""
    extra = sorted(k for k in ("videos", "labels", "test_list", "split") if getattr(entry, k))
    if extra:
        raise LabelError(f"{entry.where}: the table adapter takes its paths from the table, remove {extra}")
    if not entry.table:
        raise LabelError(f"{entry.where}: 'table' (the units table to read) not given")


@register_adapter("table", check=check_table_entry)
def table_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """The rows of the table, as written.

    Paths and label paths are kept as written (relative ones are relative to
    the workflow directory, like the config's). The ``shard`` column is
    recomputed with ``n_shards``, so the config's ``n_shards`` always rules.
    """
    given = entry.table
    path = resolve(given, base)
    if not path.is_file():
        raise LabelError(f"{given}: units table not found ({path})")
    try:
        table = UnitsTable.read_tsv(path)
    except UnicodeDecodeError as e:
        raise LabelError(f"{given}: not UTF-8 text ({e})") from None
    except (UnitsError, csv.Error, TypeError) as e:
        raise LabelError(f"{given}: {e}") from None
    units = []
    for u in table:
        values = vars(u)
        short = [k for k, v in values.items() if v is None]
        if short:
            raise LabelError(f"{given}: the row of video {u.video_id!r} has too few columns (no {short})")
        if not u.video_id or not u.path:
            raise LabelError(f"{given}: a row without video_id or path (video {u.video_id!r}, path {u.path!r})")
        units.append(dataclasses.replace(u, shard=shard_of(u.video_id, n_shards)))
    if not units:
        raise LabelError(f"{entry.where}: no units in {given}")
    return FoundUnits(units)
