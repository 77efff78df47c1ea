"""BAH's annotation YAML files, read as the dataset authors publish them.

Two files share one shape, a mapping of video path -> record:

- ABAW-8's frame-level release has one ``annotation.yml`` per split folder,
  keyed by the video's path under ``videos`` (``82557/Visite 1/<name>.mp4``:
  a space in ``Visite 1``), with ``frame_annotation`` (``[[<key>/frame-<k>.jpg,
  0|1], ...]``, ``k`` from 0 without gaps, the names of the
  ``cropped_aligned/<key>/frame-<k>.jpg`` crops), ``global_ah``,
  ``fr_detailed_ah`` and ``time_detailed_ah``.
- The later full release's ``video_annotation_transcript.yaml`` is keyed by
  ``Videos/<pid>/Visite_1/<name>.mp4`` and adds the transcript and the cues.

Both are PyYAML dumps; the per-video transcripts beside them
(``transcription/<path>/<stem>.yml``) write Whisper's timestamps with the
``!!python/tuple`` tag, which :class:`AnnotationLoader` reads as a list while
every other Python tag stays an error, so no file can construct objects.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from affectflow.core.yaml_errors import yaml_problem
from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import cached

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: a full release is tens of MB
_FRAME_NAME = re.compile(r"(?:^|/)frame-(?P<k>[0-9]+)\.jpg$")


class AnnotationLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe YAML plus ``!!python/tuple`` (read as a list); any other Python tag is an error."""


AnnotationLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                                 lambda loader, node: loader.construct_sequence(node))


@dataclass(frozen=True)
class AnnotatedVideo:
    """One video's record: the key it is listed under (its path under ``videos``), ``global_ah`` (None when
    the file has none) and the per-frame labels (None without ``frame_annotation``)."""

    key: str
    global_ah: int | None
    frames: np.ndarray | None


def load_yaml(path: Path, shown: str) -> Any:
    """The document of a BAH YAML file; unreadable or malformed files are a :class:`LabelError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=AnnotationLoader)  # noqa: S506 - a safe loader plus the tuple tag
    except FileNotFoundError:
        raise LabelError(f"{shown}: annotations file not found") from None
    except yaml.YAMLError as e:
        raise LabelError(f"{shown}: unreadable annotations ({yaml_problem(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{shown}: unreadable annotations ({str(e).splitlines()[0]})") from None


def annotation_keys(path: str | os.PathLike[str], shown: str | None = None) -> dict[str, str]:
    """The videos of an annotations file, id (file stem) -> key, without parsing the records.

    A release's ``annotation.yml`` is tens of MB (a pair per frame of every
    video) and slow to parse whole even with libyaml, while the units table is
    built every time the workflow is parsed, on every cluster job too. The
    organisers' files are PyYAML block dumps, whose keys are the lines that
    start in column 0; each such line is parsed alone
    (so quoting is YAML's). Any other shape is parsed whole. The records
    themselves are checked by :func:`read_annotations` when labels are read.
    """
    shown = shown or os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\r\n") for line in f if line[:1] not in ("", " ", "\t", "-", "#", "\n", "\r")]
    except FileNotFoundError:
        raise LabelError(f"{shown}: annotations file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{shown}: unreadable annotations ({e})") from None
    keys = [_top_level_key(line) for line in lines]
    if not keys or None in keys:  # not a block dump of a mapping: read it the slow, sure way
        return {vid: rec.key for vid, rec in read_annotations(path, shown).items()}
    out: dict[str, str] = {}
    for key in keys:
        assert key is not None
        out[_video_id(key, out, shown)] = key
    return out


def _video_id(key: str, seen: Mapping[str, object], shown: str) -> str:
    """The id (file stem) of the video listed under ``key``; one not a video path, or listed twice, is an error."""
    video_id = os.path.splitext(os.path.basename(key))[0]
    if not video_id:
        raise LabelError(f"{shown}: video {key!r}: the key is not a video path")
    if video_id in seen:
        other = seen[video_id]
        raise LabelError(f"{shown}: video {key!r}: the video {video_id!r} is also listed as "
                         f"{getattr(other, 'key', other)!r}")
    return video_id


def _top_level_key(line: str) -> str | None:
    """The key of a block mapping's ``<key>:`` line (its value on the lines below), else None."""
    if not line.endswith(":") or line.startswith(("?", "{", "[", "%", "---", "...", "!", "&", "*")):
        return None
    try:
        doc = yaml.load(f"{line} null", Loader=AnnotationLoader)  # noqa: S506 - a safe loader plus the tuple tag
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict) or len(doc) != 1:
        return None
    return str(next(iter(doc)))


def read_annotations(path: str | os.PathLike[str], shown: str | None = None) -> dict[str, AnnotatedVideo]:
    """Every video of an annotations file by id (the file stem), checked whole and cached while the file is
    unchanged: a bad record anywhere is reported whichever video is asked for."""
    return cached(_parse, Path(path), shown or os.fspath(path), "annotations file")


@functools.lru_cache(maxsize=4)
def _parse(path: str, shown: str, _mtime_ns: int, _size: int) -> dict[str, AnnotatedVideo]:
    data = load_yaml(Path(path), shown)
    if not isinstance(data, Mapping) or not data:
        got = "an empty file" if not data else type(data).__name__
        raise LabelError(f"{shown}: expected a mapping of video path -> annotations, got {got}")
    out: dict[str, AnnotatedVideo] = {}
    for key, rec in data.items():
        key = str(key)
        where = f"{shown}: video {key!r}"
        if not isinstance(rec, Mapping):
            raise LabelError(f"{where}: expected a mapping of annotations, got {type(rec).__name__}")
        video_id = _video_id(key, out, shown)
        global_ah = rec.get("global_ah")
        if global_ah is not None and global_ah not in (0, 1):
            raise LabelError(f"{where}: global_ah {global_ah!r} is not 0 or 1")
        frames = rec.get("frame_annotation")
        out[video_id] = AnnotatedVideo(key, None if global_ah is None else int(global_ah),
                                       None if frames is None else _frame_labels(frames, where))
    return out


def _frame_labels(items: object, where: str) -> np.ndarray:
    """``frame_annotation``'s labels, checked: ``[<...>/frame-<k>.jpg, 0|1]`` pairs with ``k`` = 0, 1, ... in
    order (a gap or a shuffle would move every later label onto the wrong frame)."""
    if not isinstance(items, list) or not items:
        raise LabelError(f"{where}: frame_annotation is not a non-empty list")
    out = np.empty(len(items), dtype=np.int8)
    for k, item in enumerate(items):
        at = f"{where}: frame_annotation[{k}]"
        if not isinstance(item, list) or len(item) != 2:
            raise LabelError(f"{at}: expected [frame-<k>.jpg, 0|1], got {item!r}")
        name, label = item
        m = _FRAME_NAME.search(str(name))
        if m is None:
            raise LabelError(f"{at}: {name!r} is not a frame-<k>.jpg name")
        if int(m["k"]) != k:
            raise LabelError(f"{at}: {name!r} where frame-{k}.jpg was expected (frames must run from 0, in order)")
        if label not in (0, 1) or isinstance(label, bool):
            raise LabelError(f"{at}: label {label!r} is not 0 or 1")
        out[k] = label
    return out
