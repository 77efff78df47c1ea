"""``build_units``: the config's ``datasets`` list -> the units table, each entry read by its registered adapter.

This only lists files and checks cheap things, so it stays fast enough to run
when the workflow is parsed; label files are parsed fully by the jobs that know
the decoded frame count (:mod:`affectflow.data.adapters.labels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from affectflow.core.vocabulary import TASKS
from affectflow.data.adapters.entry import DatasetEntry
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import canonical
from affectflow.data.adapters.registry import get_adapter
from affectflow.data.units import SkippedFile, Unit, UnitsTable, merge_units, shard_of

#: files left out that a "no units" error names
_SHOWN_SKIPPED = 5


def build_units(datasets: Sequence[Mapping[str, Any]], n_shards: int, base_dir: str | Path = ".") -> UnitsTable:
    """Build the units table from the ``datasets`` config list.

    Relative paths in the config are looked up under ``base_dir`` and stored
    relative to it, in one spelling (:func:`~affectflow.data.adapters.files.canonical`).
    Entries may share videos (one video labelled for several tasks);
    ``merge_units`` merges them and rejects one id with two different paths.
    The files of ``folder`` entries that are not videos are the table's
    ``skipped``, so that the problems table can say why each was left out.
    """
    shard_of("", n_shards)  # validate n_shards even when no unit is found
    base = Path(base_dir)
    groups: list[list[Unit]] = []
    skipped: list[SkippedFile] = []
    for i, raw in enumerate(datasets):
        where = f"datasets[{i}]"
        if not isinstance(raw, Mapping):
            raise LabelError(f"{where}: expected a mapping, got {type(raw).__name__}")
        adapter = get_adapter(raw.get("adapter"), where)
        entry = DatasetEntry.from_config(raw, adapter.name, f"{where} ({adapter.name})")
        adapter.check(entry)
        found = adapter.build(entry, n_shards, base)
        if not found.units:
            raise LabelError(f"{entry.where}: no units found in {entry.videos} (check the paths and file names)"
                             + _skipped_note(found.skipped))
        groups.append(sorted((_canonical_unit(u, base) for u in found.units), key=lambda u: u.video_id))
        skipped += [replace(s, path=canonical(s.path, base)) for s in found.skipped]
    return merge_units(groups, skipped)


def _canonical_unit(unit: Unit, base: Path) -> Unit:
    """The unit with its video and label files in one spelling each."""
    return replace(unit, path=canonical(unit.path, base),
                   **{f"{t}_labels": canonical(unit.labels(t), base) for t in TASKS})


def _skipped_note(skipped: list[SkippedFile]) -> str:
    """The files a folder without units holds, for its error: what they are tells what went wrong."""
    if not skipped:
        return ""
    shown = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:_SHOWN_SKIPPED])
    more = f"; and {len(skipped) - _SHOWN_SKIPPED} more" if len(skipped) > _SHOWN_SKIPPED else ""
    return f"; left out: {shown}{more}"
