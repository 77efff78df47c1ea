"""Which files of a videos folder are videos, and finding a unit's video in one by its id.

A name with one of ``VIDEO_EXTENSIONS`` is taken unlooked (a broken one is the
media stage's to report), a name that says it is something else (labels,
images, sound, ...) is not, and any other file is asked of FFmpeg
(:func:`affectflow.media.decode.video_stream_problem`, a few milliseconds): a
folder of thousands of ``.mp4`` files is sorted without opening one, and any
file FFmpeg opens with a video stream is taken whatever its name.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from affectflow.data.adapters.errors import LabelError
from affectflow.data.adapters.files import existing_folder, name_problem, shown
from affectflow.data.units import SkippedFile

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


def strip_video_ext(name: str) -> str:
    """The video id a label file or list writes as ``<id>`` or ``<id>.<video extension>``."""
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in VIDEO_EXTENSIONS else name


def _decodes_to(name: str, code: str, text: str) -> bool:
    """Whether the bytes of file name ``name`` read in code page ``code`` are ``text``."""
    try:
        return os.fsencode(name).decode(code) == text
    except UnicodeDecodeError:
        return False


class VideoFolder:
    """The video files inside one folder, looked up by id (stem), and the other entries with the reason each is
    left out (:func:`not_a_video`).

    ``subfolders``: also the videos one folder down, by name only (Aff-Wild2
    ships ``batch1/``, ``batch2/`` and ``new_vids/``, ``.mp4`` and ``.avi``
    side by side); deeper folders (``cropped_aligned/<id>/``, a million crops)
    are never walked.
    """

    def __init__(self, given: str, base: Path, subfolders: bool = False) -> None:
        folder = existing_folder(given, base, "videos")
        self.given = given
        self.by_stem: dict[str, list[str]] = {}
        self.skipped: list[SkippedFile] = []
        self.refused: dict[str, str] = {}  # stem -> why a video of that name cannot be used
        for name in sorted(os.listdir(folder)):
            if subfolders and not name.startswith(".") and (folder / name).is_dir():
                for inner in sorted(os.listdir(folder / name)):
                    if is_video_name(inner) and (folder / name / inner).is_file():
                        self._add(os.path.join(name, inner), name_problem(os.path.join(name, inner)))
                continue
            self._add(name, name_problem(name) or not_a_video(folder / name))

    def _add(self, name: str, reason: str) -> None:
        """A video (``reason`` empty), or an entry left out and listed with why (a video name no job can read
        among them, so that one odd name cannot stop the run: files.name_problem)."""
        if not reason:
            self.by_stem.setdefault(os.path.splitext(os.path.basename(name))[0], []).append(name)
            return
        self.skipped.append(SkippedFile(shown(os.path.join(self.given, name)), reason))
        if is_video_name(os.path.basename(name)):
            self.refused[os.path.splitext(os.path.basename(name))[0]] = reason

    def missing(self, video_id: str) -> str:
        """Why no video has the id ``video_id``, for a label file's error: its video's name is refused, or a
        video is named alike in another Unicode form (NFD from a Mac against a label file's NFC)."""
        for stem, reason in self.refused.items():  # a name that is not UTF-8 matches as its code page wrote it
            if stem == video_id or any(_decodes_to(stem, code, video_id) for code in ("cp1252", "latin-1")):
                return f": its video '{shown(stem)}' was left out, {reason}"
        alike = [n for stem, names in self.by_stem.items() for n in names
                 if unicodedata.normalize("NFC", stem) == unicodedata.normalize("NFC", video_id)]
        if alike:
            return (f"; {alike[0]!r} looks the same but is written in another Unicode form (NFC/NFD, as a Mac "
                    "writes names): rename one so that both are written alike")
        return ""

    def find(self, video_id: str) -> str | None:
        """Path (as given) of the video with this stem, None if there is none."""
        names = self.by_stem.get(video_id)
        if not names:
            return None
        if len(names) > 1:
            raise LabelError(f"{self.given}: several videos for id {video_id!r}: {', '.join(names)}")
        return os.path.join(self.given, names[0])


@dataclass(frozen=True)
class Located:
    """Where a labelled id's video is: its path as given, and the person in it when the video holds two."""

    path: str
    side: str = ""  # "left" / "right" (Unit.side); "" for a video of the unit's own


#: how an adapter finds the video of a labelled id (``None``: there is none)
Locate = Callable[[VideoFolder, str], Located | None]


def locate_by_stem(videos: VideoFolder, video_id: str) -> Located | None:
    """The plain rule: the video whose file stem is the id."""
    path = videos.find(video_id)
    return None if path is None else Located(path)
