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
from affectflow.data.units import OPTIONAL_COLUMNS, Unit, UnitsError, UnitsTable, shard_of

#: the columns a table must have. The rest may be left out: a label column left out is no labels for that task
#: (as an empty cell is), ``side`` is one person, and ``shard`` is recomputed from the id whatever it says
REQUIRED_COLUMNS = ("video_id", "path", "split")
#: the unit fields read from the table (the shard is not one of them)
READ_FIELDS = tuple(f.name for f in dataclasses.fields(Unit) if f.name != "shard")


def check_table_entry(entry: DatasetEntry) -> None:
    """A ``table`` path and no folders: the table gives every path itself."""
    extra = sorted(k for k in ("videos", "labels", "test_list", "split") if getattr(entry, k))
    if extra:
        raise LabelError(f"{entry.where}: the table adapter takes its paths from the table, remove {extra}")
    if not entry.table:
        raise LabelError(f"{entry.where}: 'table' (the units table to read) not given")


def read_rows(path: Path, given: str) -> list[dict[str | None, str | None]]:
    """The table's rows by column name. Why not :meth:`UnitsTable.read_tsv`: that reads the workflow's own
    ``units.tsv``, which has every column, while a table written by hand or by another tool needs only
    :data:`REQUIRED_COLUMNS`; and its errors name the resolved path, where ours name the table as configured."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            header, rows = reader.fieldnames, list(reader)
    except UnicodeDecodeError as e:
        raise LabelError(f"{given}: not UTF-8 text ({e})") from None
    except csv.Error as e:
        raise LabelError(f"{given}: not a tab-separated table ({e})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in (header or REQUIRED_COLUMNS)]
    if missing:
        raise LabelError(f"{given}: missing columns {missing} (a units table needs {', '.join(REQUIRED_COLUMNS)}; "
                         "the label columns and side may be left out, and shard is recomputed)")
    return rows


def row_unit(row: dict[str | None, str | None], given: str, n_shards: int) -> Unit:
    """One row as a unit, its shard from ``n_shards``. A row short of a value for a column of the header is an
    error (a lost tab would shift every later column), except for the columns older tables lack."""
    short = [k for k in READ_FIELDS if k in row and row[k] is None and k not in OPTIONAL_COLUMNS]
    if short:
        raise LabelError(f"{given}: the row of video {row.get('video_id')!r} has too few columns (no {short})")
    values = {k: row.get(k) or "" for k in READ_FIELDS}
    if not values["video_id"] or not values["path"]:
        raise LabelError(f"{given}: a row without video_id or path (video {values['video_id']!r}, "
                         f"path {values['path']!r})")
    return Unit(shard=shard_of(values["video_id"], n_shards), **values)


@register_adapter("table", check=check_table_entry)
def table_units(entry: DatasetEntry, n_shards: int, base: Path) -> FoundUnits:
    """The rows of the table, as written.

    Paths and label paths are kept as written (relative ones are relative to
    the workflow directory, like the config's). The ``shard`` column, if any,
    is recomputed with ``n_shards``, so the config's ``n_shards`` always rules.
    """
    given = entry.table
    path = resolve(given, base)
    if not path.is_file():
        raise LabelError(f"{given}: units table not found ({path})")
    units = [row_unit(r, given, n_shards) for r in read_rows(path, given)]
    if not units:
        raise LabelError(f"{entry.where}: no units in {given}")
    try:
        UnitsTable(units)  # duplicate ids and unknown splits, named with the table's file
    except UnitsError as e:
        raise LabelError(f"{given}: {e}") from None
    return FoundUnits(units)
