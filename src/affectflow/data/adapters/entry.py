"""One item of the config's ``datasets`` list, as a typed record, and the checks adapters share on it.

The config gives each dataset as a loose mapping; turning it into a
``DatasetEntry`` once (unknown keys rejected, the error prefix fixed) lets
every adapter read fields instead of probing keys, and keeps each adapter's
"this key is not for me" rule next to that adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from affectflow.data.adapters.errors import LabelError

#: the keys a datasets entry may have (workflow/schemas/config.schema.yaml)
ENTRY_KEYS = frozenset({"adapter", "videos", "labels", "test_list", "table", "split"})


@dataclass(frozen=True)
class DatasetEntry:
    """A datasets entry: the paths as the config writes them (``""``: not given), and where it is in the config.

    Values are kept as given, never resolved, so the units keep the config's
    own paths. ``where`` (``datasets[<i>] (<adapter>)``) starts every error
    about the entry itself.
    """

    adapter: str
    where: str
    videos: str = ""
    labels: str = ""
    test_list: str = ""
    table: str = ""
    split: str = ""  # the split of every labelled video, for releases that ship one folder per split (BAH ABAW-8)

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], adapter: str, where: str) -> DatasetEntry:
        """The entry ``raw`` of the registered ``adapter``; a key the schema does not know is an error."""
        unknown = sorted(set(raw) - ENTRY_KEYS)
        if unknown:
            raise LabelError(f"{where}: unknown keys {unknown}")
        # an empty or null value is "not given", like a missing key
        paths = {k: raw.get(k) or "" for k in ("videos", "labels", "test_list", "table", "split")}
        return cls(adapter, where, **paths)


def check_videos_entry(entry: DatasetEntry, split: bool = False) -> None:
    """What every adapter that lists a videos folder needs: that folder, and no ``table``; ``split`` only for
    an adapter that reads it."""
    if entry.split and not split:
        raise LabelError(f"{entry.where}: 'split' is only for the bah adapter (an ABAW-8 split folder)")
    if entry.table:
        raise LabelError(f"{entry.where}: 'table' is only for the table adapter")
    if not entry.videos:
        raise LabelError(f"{entry.where}: 'videos' folder not given")


def check_labels_given(entry: DatasetEntry) -> None:
    """A challenge layout cannot be read without its labels folder."""
    if not entry.labels:
        raise LabelError(f"{entry.where}: 'labels' folder not given")


def check_labelled_entry(entry: DatasetEntry) -> None:
    """The frame- and video-label challenge layouts: videos and labels folders, an optional ``test_list``."""
    check_videos_entry(entry)
    check_labels_given(entry)
