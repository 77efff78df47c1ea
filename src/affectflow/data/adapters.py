"""Dataset adapters: turn datasets on disk into the units table, and read labels.

Each adapter knows one layout (``affwild2``, ``hume_vidmimic2``, ``bah``, ``bah_video``, ``folder``,
``table``). ``build_units`` only lists files and checks cheap things, so it stays fast enough to run
when the workflow is parsed. The ``read_*_labels`` functions parse one label file fully and are
called by the jobs that know the decoded frame count: a label file that disagrees with its video is
an error naming both counts, never silently truncated or padded.

Units keep the configured paths as given (so a units table stays valid when the project folder
moves) and video ids exactly as the file stems are; this module never sanitises them.

Which files of a videos folder are videos: a name with one of ``VIDEO_EXTENSIONS`` is taken unlooked
(a broken one is the media stage's to report), a name that says it is something else (labels, images,
sound, ...) is not, and any other file is asked of FFmpeg (:func:`affectflow.media.decode.video_stream_problem`,
a few milliseconds). The ``folder`` adapter lists the files it leaves out, with the reason, in the
table's ``skipped`` (then ``problems.tsv``).

Details (each adapter's layout, what is checked when): docs/features.md, section "Datasets".
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES
from affectflow.data.units import SkippedFile, Unit, UnitsError, UnitsTable, merge_units, shard_of

#: taken as videos without looking inside (case-insensitive)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".vob", ".flv", ".wmv", ".asf", ".3gp", ".3g2", ".mxf", ".ogv")
#: what else a videos folder holds, by extension: left out without looking inside
NOT_VIDEO_EXTENSIONS = {
    "a text or label file": (".txt", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".xml", ".md", ".rst",
                             ".html", ".htm", ".log", ".ini", ".cfg", ".toml", ".pdf", ".doc", ".docx", ".xls",
                             ".xlsx", ".srt", ".vtt", ".ass", ".ssa"),
    "an image": (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic", ".heif", ".svg",
                 ".ppm", ".pgm", ".ico"),
    "a sound file": (".wav", ".mp3", ".flac", ".aac", ".m4a", ".opus", ".oga", ".wma", ".aif", ".aiff"),
    "an archive or data file": (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".npy", ".npz", ".h5",
                                ".hdf5", ".pkl", ".pt", ".pth", ".onnx", ".parquet", ".py", ".sh", ".ipynb"),
}
_NOT_VIDEO = {ext: kind for kind, exts in NOT_VIDEO_EXTENSIONS.items() for ext in exts}
#: files left out that a "no units" error names
_SHOWN_SKIPPED = 5
ADAPTERS = ("affwild2", "hume_vidmimic2", "bah", "bah_video", "folder", "table")

AH_HEADER = ("AH",)
# Folder name -> split for the frame-label challenges (Aff-Wild2, BAH).
_FRAME_LABEL_SPLITS = (("Train_Set", "train"), ("Validation_Set", "val"))
# File name -> split for Hume-Vidmimic2; test rows carry no labels.
_EMI_CSVS = (("train_split.csv", "train"), ("valid_split.csv", "val"), ("test_split.csv", "test"))
# BAH video level: labels/split/<split>.txt, one `<video path>,<0|1>,<transcript>` line per video.
_BAH_SPLIT_FILES = (("train.txt", "train"), ("val.txt", "val"), ("test.txt", "test"))
BAH_ANNOTATIONS = "video_annotation_transcript.yaml"
_ENTRY_KEYS = frozenset({"adapter", "videos", "labels", "test_list", "table"})
# Only ASCII digits: int() would also accept "1_0" or non-ASCII digits.
_INT = re.compile(r"-?[0-9]+")


class LabelError(UnitsError):
    """A dataset or label file is inconsistent; the message names the file and problem.

    Subclasses ``UnitsError`` (itself a ``ValueError``) so a caller of
    ``build_units`` can catch every dataset problem, including the duplicate-id
    errors raised by ``merge_units``, with one except clause.
    """


# ---------------------------------------------------------------- public API


def build_units(datasets: list[dict], n_shards: int, base_dir: str | Path = ".") -> UnitsTable:
    """Build the units table from the ``datasets`` config list.

    Relative paths in the config are looked up under ``base_dir`` but stored
    as given. Entries may share videos (one video labelled for several tasks);
    ``merge_units`` merges them and rejects one id with two different paths.
    The files of ``folder`` entries that are not videos are the table's
    ``skipped``, so that the problems table can say why each was left out.
    """
    shard_of("", n_shards)  # validate n_shards even when no unit is found
    base = Path(base_dir)
    groups = []
    skipped: list[SkippedFile] = []
    for i, entry in enumerate(datasets):
        where = f"datasets[{i}]"
        if not isinstance(entry, Mapping):
            raise LabelError(f"{where}: expected a mapping, got {type(entry).__name__}")
        adapter = entry.get("adapter")
        if adapter not in ADAPTERS:
            raise LabelError(f"{where}: unknown adapter {adapter!r}, expected one of {ADAPTERS}")
        where = f"{where} ({adapter})"
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise LabelError(f"{where}: unknown keys {unknown}")
        if adapter == "table":
            groups.append(sorted(_table_units(entry, n_shards, base, where), key=lambda u: u.video_id))
            continue
        if entry.get("table"):
            raise LabelError(f"{where}: 'table' is only for the table adapter")
        if not entry.get("videos"):
            raise LabelError(f"{where}: 'videos' folder not given")
        if adapter == "folder":
            extra = sorted(k for k in ("labels", "test_list") if entry.get(k))
            if extra:
                raise LabelError(f"{where}: the folder adapter takes no labels, remove {extra}")
        elif adapter == "bah_video" and entry.get("test_list"):
            raise LabelError(f"{where}: the bah_video adapter reads its test videos from split/test.txt, "
                             "remove test_list")
        elif not entry.get("labels"):
            raise LabelError(f"{where}: 'labels' folder not given")

        left_out: list[SkippedFile] = []
        if adapter == "folder":
            units, left_out = _folder_units(entry, n_shards, base)
        else:
            units = _ADAPTER_FUNCS[adapter](entry, n_shards, base)
        if not units:
            raise LabelError(f"{where}: no units found in {entry['videos']} (check the paths and file names)"
                             + _skipped_note(left_out))
        groups.append(sorted(units, key=lambda u: u.video_id))
        skipped += left_out
    return merge_units(groups, skipped)


def read_expr_labels(path: str | os.PathLike[str], n_frames: int | None = None) -> np.ndarray:
    """Per-frame Aff-Wild2 expression classes (int8, index into EXPR_CLASSES; -1 = invalid)."""
    return _read_frame_labels(path, EXPR_CLASSES, range(-1, len(EXPR_CLASSES)), n_frames)


def read_ah_labels(path: str | os.PathLike[str], n_frames: int | None = None) -> np.ndarray:
    """Per-frame BAH ambivalence/hesitancy labels (int8, 0 or 1)."""
    return _read_frame_labels(path, AH_HEADER, range(0, 2), n_frames)


def read_ah_video_label(path: str | os.PathLike[str], video_id: str) -> int:
    """The 0/1 video label of ``video_id`` from a BAH split file, checked against the annotations file.

    When ``video_annotation_transcript.yaml`` sits next to the ``split`` folder,
    its ``global_ah`` for the video must agree with the split file: two sources
    that disagree are an error naming both, never a silent choice.
    """
    shown = os.fspath(path)
    rows = _bah_split_rows(Path(path), shown, labelled=True)
    if video_id not in rows:
        raise LabelError(f"{shown}: no line for video {video_id!r}")
    line, given, label = rows[video_id]
    assert label is not None
    annotations = Path(path).parent.parent / BAH_ANNOTATIONS
    if annotations.is_file():
        known = _bah_annotations(annotations)
        global_ah = known.get(given, known.get(video_id))
        if global_ah is not None and global_ah != label:
            raise LabelError(f"{shown}, line {line}: label {label} for {given!r}, but {annotations} says "
                             f"global_ah: {global_ah}")
    return label


def read_emi_labels(path: str | os.PathLike[str], video_id: str) -> np.ndarray:
    """The six EMI intensities (float32, EMI_EMOTIONS order) of one video from a split csv.

    The whole csv is validated (and cached while the file is unchanged), so a
    bad row anywhere is reported even when asking for another video.
    """
    shown = os.fspath(path)
    rows = _emi_rows(Path(path), shown, with_values=True)
    if video_id not in rows:
        raise LabelError(f"{shown}: no row for video {video_id!r}")
    values = rows[video_id][1]
    assert values is not None
    return values.copy()


def read_task_labels(task: str, path: str | os.PathLike[str], video_id: str, n_frames: int) -> np.ndarray:
    """One video's labels for ``task``: per frame (EXPR class or -1, AH 0/1; int64, ``n_frames`` checked) or
    per video (EMI's six float32 intensities, AH-video's ``[0|1]``)."""
    if task == "expr":
        return read_expr_labels(path, n_frames).astype(np.int64)
    if task == "ah":
        return read_ah_labels(path, n_frames).astype(np.int64)
    if task == "ah_video":
        return np.array([read_ah_video_label(path, video_id)], dtype=np.int64)
    if task == "emi":
        return read_emi_labels(path, video_id)
    raise LabelError(f"unknown task {task!r}")


def is_video_name(name: str) -> bool:
    """Whether a file name has one of VIDEO_EXTENSIONS (any case) and is not hidden.

    Hidden names are skipped because macOS copies leave ``._x.mp4`` resource
    files next to real videos.
    """
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def not_a_video(path: str | os.PathLike[str]) -> str:
    """Why the entry ``path`` of a videos folder is not taken as a video (``""``: it is taken).

    Decided by the name where it says enough (hidden, a video extension,
    another known kind of file), else by asking FFmpeg, so that any file it
    opens with a video stream is taken whatever its name, and a folder of
    thousands of ``.mp4`` files is sorted without opening one.
    """
    p = Path(path)
    if p.name.startswith("."):
        return "hidden file"
    if not p.is_file():  # one stat for a file, the common case
        if p.is_dir():
            return "a folder: only the files directly in the videos folder are read"
        return "not a regular file (a broken link?)"
    ext = p.suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return ""
    if ext in _NOT_VIDEO:
        return f"{_NOT_VIDEO[ext]} ({ext}), not a video"
    from affectflow.media.decode import video_stream_problem  # PyAV: imported only when a file needs it

    return video_stream_problem(p)


# ------------------------------------------------------------------ adapters


class _Videos:
    """The video files directly inside one folder, looked up by id (stem), and the other entries with the
    reason each is left out (:func:`not_a_video`)."""

    def __init__(self, given: str, base: Path) -> None:
        folder = _resolve(given, base)
        if not folder.is_dir():
            raise LabelError(f"{given}: videos folder not found ({folder})")
        self.given = given
        self.by_stem: dict[str, list[str]] = {}
        self.skipped: list[SkippedFile] = []
        for name in sorted(os.listdir(folder)):
            reason = not_a_video(folder / name)
            if reason:
                self.skipped.append(SkippedFile(os.path.join(given, name), reason))
            else:
                self.by_stem.setdefault(os.path.splitext(name)[0], []).append(name)

    def find(self, video_id: str) -> str | None:
        """Path (as given) of the video with this stem, None if there is none."""
        names = self.by_stem.get(video_id)
        if not names:
            return None
        if len(names) > 1:
            raise LabelError(f"{self.given}: several videos for id {video_id!r}: {', '.join(names)}")
        return os.path.join(self.given, names[0])


def _find_affwild2_video(videos: _Videos, video_id: str) -> str | None:
    """Aff-Wild2 labels two people in one video as ``<stem>_left`` / ``<stem>_right``."""
    found = videos.find(video_id)
    if found is None and affwild2_side(video_id):
        return videos.find(video_id[: -len(affwild2_side(video_id)) - 1])
    return found


def affwild2_side(video_id: str) -> str:
    """``left`` / ``right`` for an Aff-Wild2 id of one person of a two-person video, else ``""``."""
    for side in ("left", "right"):
        if video_id.endswith(f"_{side}") and len(video_id) > len(side) + 1:
            return side
    return ""


def _side(videos: _Videos, video_id: str, path: str | None) -> str:
    """The unit's side: only when its video is the shared ``<stem>`` file, not a file of its own."""
    return affwild2_side(video_id) if path is not None and videos.find(video_id) is None else ""


def _frame_label_units(
    entry: Mapping[str, Any], n_shards: int, base: Path, task: str, header: tuple[str, ...], pairs: bool
) -> list[Unit]:
    """Shared by affwild2 and bah: ``labels/{Train,Validation}_Set/<id>.txt`` + test_list."""
    find = _find_affwild2_video if pairs else _Videos.find
    videos = _Videos(entry["videos"], base)
    labels_given = entry["labels"]
    labels_dir = _labels_dir(labels_given, base)

    found: dict[str, tuple[str, str]] = {}  # id -> (split, label path as given)
    n_split_dirs = 0
    for sub, split in _FRAME_LABEL_SPLITS:
        folder = labels_dir / sub
        if not folder.is_dir():
            continue
        n_split_dirs += 1
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or not name.endswith(".txt"):
                continue
            video_id = name[: -len(".txt")]
            shown = os.path.join(labels_given, sub, name)
            if video_id in found:
                raise LabelError(f"{shown}: video {video_id!r} also has labels in {found[video_id][1]}")
            _check_header(_read_lines(folder / name, shown), header, shown)
            found[video_id] = (split, shown)
    if not n_split_dirs:
        names = " or ".join(s for s, _ in _FRAME_LABEL_SPLITS)
        raise LabelError(f"{labels_given}: no {names} folder in the labels folder")

    units = []
    for video_id, (split, shown) in found.items():
        path = find(videos, video_id)
        if path is None:
            raise LabelError(f"{shown}: no video for id {video_id!r} in {videos.given}")
        side = _side(videos, video_id, path) if pairs else ""
        units.append(Unit(video_id, path, split, shard_of(video_id, n_shards), **{f"{task}_labels": shown},
                          side=side))
    units += _test_units(entry, base, videos, find, found, n_shards, pairs)
    return units


def _affwild2_units(entry: Mapping[str, Any], n_shards: int, base: Path) -> list[Unit]:
    return _frame_label_units(entry, n_shards, base, "expr", EXPR_CLASSES, pairs=True)


def _bah_units(entry: Mapping[str, Any], n_shards: int, base: Path) -> list[Unit]:
    return _frame_label_units(entry, n_shards, base, "ah", AH_HEADER, pairs=False)


def _hume_units(entry: Mapping[str, Any], n_shards: int, base: Path) -> list[Unit]:
    """Hume-Vidmimic2: one csv per split, one row per video; the csv is the label path."""
    videos = _Videos(entry["videos"], base)
    labels_given = entry["labels"]
    labels_dir = _labels_dir(labels_given, base)

    found: dict[str, tuple[str, str]] = {}  # id -> (split, csv path as given)
    units = []
    for name, split in _EMI_CSVS:
        if not (labels_dir / name).is_file():
            continue
        shown = os.path.join(labels_given, name)
        for video_id, (line, _) in _emi_rows(labels_dir / name, shown, with_values=split != "test").items():
            if video_id in found:
                raise LabelError(f"{shown}, line {line}: video {video_id!r} is also in {found[video_id][1]}")
            found[video_id] = (split, shown)
            path = videos.find(video_id)
            if path is None:
                raise LabelError(f"{shown}, line {line}: no video for Filename {video_id!r} in {videos.given}")
            labels = shown if split != "test" else ""
            units.append(Unit(video_id, path, split, shard_of(video_id, n_shards), emi_labels=labels))
    if not found:
        names = ", ".join(n for n, _ in _EMI_CSVS)
        raise LabelError(f"{labels_given}: none of {names} in the labels folder")
    units += _test_units(entry, base, videos, _Videos.find, found, n_shards)
    return units


def _bah_video_units(entry: Mapping[str, Any], n_shards: int, base: Path) -> list[Unit]:
    """BAH video level: ``labels/split/{train,val,test}.txt`` name each video by its path under ``videos``.

    The id is the file stem; the split file is the label path (test lines carry
    no label that is used). Paths with subfolders (``Videos/<participant>/...``)
    are kept as written under the ``videos`` folder.
    """
    labels_given = entry["labels"]
    split_dir = _labels_dir(labels_given, base) / "split"
    videos_given = entry["videos"]
    videos_dir = _resolve(videos_given, base)
    if not videos_dir.is_dir():
        raise LabelError(f"{videos_given}: videos folder not found ({videos_dir})")
    found: dict[str, tuple[str, str]] = {}  # id -> (where, video path as given in the split file)
    units = []
    for name, split in _BAH_SPLIT_FILES:
        if not (split_dir / name).is_file():
            continue
        shown = os.path.join(labels_given, "split", name)
        for video_id, (line, given, _) in _bah_split_rows(split_dir / name, shown, split != "test").items():
            where = f"{shown}, line {line}"
            if video_id in found:
                raise LabelError(f"{where}: video {video_id!r} ({given}) is also on {found[video_id][0]} "
                                 f"({found[video_id][1]})")
            found[video_id] = (where, given)
            if not (videos_dir / given).is_file():
                raise LabelError(f"{where}: no video {given!r} in {videos_given}")
            units.append(Unit(video_id, os.path.join(videos_given, given), split, shard_of(video_id, n_shards),
                              ah_video_labels=shown if split != "test" else ""))
    if not found:
        names = ", ".join(n for n, _ in _BAH_SPLIT_FILES)
        raise LabelError(f"{labels_given}: none of split/{{{names}}} in the labels folder")
    return units


def _folder_units(entry: Mapping[str, Any], n_shards: int, base: Path) -> tuple[list[Unit], list[SkippedFile]]:
    """Any folder of videos, for inference: every video is a test unit without labels; every other entry of
    the folder is listed with the reason it is left out."""
    videos = _Videos(entry["videos"], base)
    units = []
    for video_id in videos.by_stem:
        path = videos.find(video_id)
        assert path is not None
        units.append(Unit(video_id, path, "test", shard_of(video_id, n_shards)))
    return units, videos.skipped


def _table_units(entry: Mapping[str, Any], n_shards: int, base: Path, where: str) -> list[Unit]:
    """A ready units table (``units.tsv`` columns), read as it is: no folder is listed, no video is looked at.

    Paths and label paths are kept as written (relative ones are relative to
    the workflow directory, like the config's). The ``shard`` column is
    recomputed with ``n_shards``, so the config's ``n_shards`` always rules.
    """
    extra = sorted(k for k in ("videos", "labels", "test_list") if entry.get(k))
    if extra:
        raise LabelError(f"{where}: the table adapter takes its paths from the table, remove {extra}")
    given = entry.get("table")
    if not given:
        raise LabelError(f"{where}: 'table' (the units table to read) not given")
    path = _resolve(given, base)
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
        raise LabelError(f"{where}: no units in {given}")
    return units


_ADAPTER_FUNCS = {
    "affwild2": _affwild2_units,
    "hume_vidmimic2": _hume_units,
    "bah": _bah_units,
    "bah_video": _bah_video_units,
}


def _test_units(
    entry: Mapping[str, Any],
    base: Path,
    videos: _Videos,
    find: Callable[[_Videos, str], str | None],
    labelled: Mapping[str, tuple[str, str]],
    n_shards: int,
    pairs: bool = False,
) -> list[Unit]:
    """Units for the ids of the optional ``test_list`` (split test, no labels)."""
    given = entry.get("test_list")
    if not given:
        return []
    seen: dict[str, int] = {}
    units = []
    for i, raw in enumerate(_read_lines(_resolve(given, base), given, "test list"), start=1):
        # Whole-line strip: trailing blanks from hand-edited lists are far more
        # common than ids that start or end with a space.
        video_id = _strip_video_ext(raw.strip())
        if not video_id:
            continue
        where = f"{given}, line {i}"
        if video_id in seen:
            raise LabelError(f"{where}: duplicate id {video_id!r} (first on line {seen[video_id]})")
        seen[video_id] = i
        if video_id in labelled:
            raise LabelError(f"{where}: test id {video_id!r} also has labels in {labelled[video_id][1]}")
        path = find(videos, video_id)
        if path is None:
            raise LabelError(f"{where}: no video for test id {video_id!r} in {videos.given}")
        units.append(Unit(video_id, path, "test", shard_of(video_id, n_shards),
                          side=_side(videos, video_id, path) if pairs else ""))
    return units


# ------------------------------------------------------------ label parsing


def _read_frame_labels(
    path: str | os.PathLike[str], header: tuple[str, ...], allowed: range, n_frames: int | None
) -> np.ndarray:
    """Parse a header line then one integer per frame; every problem names file and line."""
    shown = os.fspath(path)
    lines = _read_lines(Path(path), shown)
    _check_header(lines, header, shown)
    end = len(lines)
    while end > 1 and not lines[end - 1].strip():  # trailing newlines are harmless
        end -= 1
    values = np.empty(end - 1, dtype=np.int8)
    for i in range(1, end):
        text = lines[i].strip()
        if not _INT.fullmatch(text):
            problem = f"{text!r} is not an integer" if text else "empty line"
            raise LabelError(f"{shown}, line {i + 1}: {problem}")
        value = int(text)
        if value not in allowed:
            raise LabelError(f"{shown}, line {i + 1}: value {value} out of range {allowed.start}..{allowed.stop - 1}")
        values[i - 1] = value
    if not values.size:
        raise LabelError(f"{shown}: header only, no frame labels")
    if n_frames is not None and values.size != n_frames:
        raise LabelError(f"{shown}: {values.size} frame labels but the video has {n_frames} frames")
    return values


def _check_header(lines: list[str], header: tuple[str, ...], shown: str) -> None:
    if not any(line.strip() for line in lines):
        raise LabelError(f"{shown}: empty label file")
    got = tuple(c.strip() for c in lines[0].split(","))
    if got != header:
        expected = ",".join(header)
        if _INT.fullmatch(lines[0].strip()):
            raise LabelError(f"{shown}, line 1: missing header line {expected!r} (found {lines[0].strip()!r})")
        raise LabelError(f"{shown}, line 1: header {lines[0].strip()!r} is not {expected!r}")


def _cached(parse: Callable[..., Any], path: Path, shown: str, what: str, *args: Any) -> Any:
    """``parse`` (an lru-cached parser) of the file at ``path``, keyed by its mtime and size: a file that
    changes is read again, an unchanged one once per process."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LabelError(f"{shown}: {what} not found") from None
    return parse(str(path.resolve()), shown, *args, st.st_mtime_ns, st.st_size)


def _emi_rows(path: Path, shown: str, with_values: bool) -> dict[str, tuple[int, np.ndarray | None]]:
    """Rows of an EMI csv: id -> (line, intensities or None)."""
    return _cached(_parse_emi_csv, path, shown, "label file", with_values)


@functools.lru_cache(maxsize=32)
def _parse_emi_csv(
    path: str, shown: str, with_values: bool, _mtime_ns: int, _size: int
) -> dict[str, tuple[int, np.ndarray | None]]:
    need = EMI_EMOTIONS if with_values else ()
    rows: dict[str, tuple[int, np.ndarray | None]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if not any(header):
                raise LabelError(f"{shown}: empty label file")
            missing = [c for c in ("Filename", *need) if c not in header]
            if missing:
                raise LabelError(f"{shown}, line 1: header lacks columns {missing}")
            if len(set(header)) != len(header):
                raise LabelError(f"{shown}, line 1: repeated column names in header")
            name_col = header.index("Filename")
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise LabelError(f"{shown}, line {line}: {len(row)} fields but the header has {len(header)}")
                filename = row[name_col].strip()
                video_id = _strip_video_ext(filename)
                if not video_id:
                    raise LabelError(f"{shown}, line {line}: empty Filename")
                if video_id in rows:
                    raise LabelError(
                        f"{shown}, line {line}: duplicate Filename {filename!r} (first on line {rows[video_id][0]})"
                    )
                rows[video_id] = (line, _emi_values(row, header, shown, line) if need else None)
    except (UnicodeDecodeError, csv.Error) as e:
        raise LabelError(f"{shown}: unreadable csv ({e})") from None
    if not rows:
        raise LabelError(f"{shown}: no rows after the header")
    return rows


def _bah_split_rows(path: Path, shown: str, labelled: bool) -> dict[str, tuple[int, str, int | None]]:
    """Lines of a BAH split file: id -> (line, video path as written, 0/1 or None)."""
    return _cached(_parse_bah_split, path, shown, "split file", labelled)


@functools.lru_cache(maxsize=8)
def _parse_bah_split(path: str, shown: str, labelled: bool, _mtime_ns: int,
                     _size: int) -> dict[str, tuple[int, str, int | None]]:
    rows: dict[str, tuple[int, str, int | None]] = {}
    for i, raw in enumerate(_read_lines(Path(path), shown, "split file"), start=1):
        if not raw.strip():
            continue
        # the transcript (third field) may hold commas of its own
        fields = [f.strip() for f in raw.split(",", 2)]
        given = fields[0]
        if i == 1 and given.lower() in ("video_path", "path", "video", "filename"):
            continue  # a header line
        video_id = os.path.splitext(os.path.basename(given))[0]
        if not video_id or not is_video_name(os.path.basename(given)):
            raise LabelError(f"{shown}, line {i}: {given!r} is not a video path (expected <path>.mp4,<0|1>,<text>)")
        if video_id in rows:
            raise LabelError(f"{shown}, line {i}: video {video_id!r} again (first on line {rows[video_id][0]}: "
                             f"{rows[video_id][1]})")
        label = None
        if labelled:
            value = fields[1] if len(fields) > 1 else ""
            if value not in ("0", "1"):
                got = f"{value!r}" if value else "no label"
                raise LabelError(f"{shown}, line {i}: {got} for {given!r}, expected 0 or 1")
            label = int(value)
        rows[video_id] = (i, given, label)
    if not rows:
        raise LabelError(f"{shown}: no video line")
    return rows


class _AnnotationLoader(yaml.SafeLoader):
    """Safe YAML plus the ``!!python/tuple`` tag the BAH annotations use (read as a list); any other
    Python tag stays an error, so the file can never construct objects."""


_AnnotationLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                                  lambda loader, node: loader.construct_sequence(node))


def _bah_annotations(path: Path) -> dict[str, int]:
    st = path.stat()
    return _parse_bah_annotations(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _parse_bah_annotations(path: str, _mtime_ns: int, _size: int) -> dict[str, int]:
    """``global_ah`` per video of ``video_annotation_transcript.yaml``, keyed by the path it is listed under
    and by the file stem."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_AnnotationLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise LabelError(f"{path}: unreadable annotations ({str(e).splitlines()[0]})") from None
    if not isinstance(data, Mapping):
        raise LabelError(f"{path}: expected a mapping of video -> annotations, got {type(data).__name__}")
    out: dict[str, int] = {}
    for key, rec in data.items():
        value = rec.get("global_ah") if isinstance(rec, Mapping) else None
        if value is None:
            continue
        if value not in (0, 1):
            raise LabelError(f"{path}: video {key!r}: global_ah {value!r} is not 0 or 1")
        out[str(key)] = int(value)
        out.setdefault(os.path.splitext(os.path.basename(str(key)))[0], int(value))
    return out


def _emi_values(row: list[str], header: list[str], shown: str, line: int) -> np.ndarray:
    values = np.empty(len(EMI_EMOTIONS), dtype=np.float32)
    for k, emotion in enumerate(EMI_EMOTIONS):
        col = header.index(emotion)
        cell = row[col].strip()
        where = f"{shown}, line {line}, column {col + 1} ({emotion})"
        if not cell:
            raise LabelError(f"{where}: missing value")
        try:
            value = float(cell)
        except ValueError:
            raise LabelError(f"{where}: {cell!r} is not a number") from None
        if not 0.0 <= value <= 1.0:  # also rejects nan
            raise LabelError(f"{where}: value {cell} out of range [0, 1]")
        values[k] = value
    return values


# ------------------------------------------------------------------ helpers


def _resolve(given: str, base: Path) -> Path:
    p = Path(given)
    return p if p.is_absolute() else base / p


def _labels_dir(given: str, base: Path) -> Path:
    folder = _resolve(given, base)
    if not folder.is_dir():
        raise LabelError(f"{given}: labels folder not found ({folder})")
    return folder


def _read_lines(path: Path, shown: str, what: str = "label file") -> list[str]:
    """Text lines (universal newlines, BOM dropped); missing/undecodable -> LabelError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelError(f"{shown}: {what} not found") from None
    except IsADirectoryError:
        raise LabelError(f"{shown}: is a folder, expected a file") from None
    except UnicodeDecodeError as e:
        raise LabelError(f"{shown}: not UTF-8 text ({e})") from None
    return text.split("\n")


def _skipped_note(skipped: list[SkippedFile]) -> str:
    """The files a folder without units holds, for its error: what they are tells what went wrong."""
    if not skipped:
        return ""
    shown = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:_SHOWN_SKIPPED])
    more = f"; and {len(skipped) - _SHOWN_SKIPPED} more" if len(skipped) > _SHOWN_SKIPPED else ""
    return f"; left out: {shown}{more}"


def _strip_video_ext(name: str) -> str:
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in VIDEO_EXTENSIONS else name
