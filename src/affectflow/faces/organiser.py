"""Organiser-provided face crops read as a faces record, in both releases' layouts.

- Aff-Wild2 ``cropped_aligned``: ``<root>/<video_id>/00001.jpg, 00002.jpg, ...``,
  numbered from 1 by video frame; frames without a face have no file.
- BAH ``cropped_aligned`` (``cropped-aligned-faces`` in the archives):
  ``<root>/<video path incl. .mp4>/frame-0.jpg, frame-1.jpg, ...``, numbered
  from 0, unpadded, the path as the video's under the videos folder
  (``Videos/82557/Visite_1/<name>.mp4/``).

The record has the same arrays as a detector's, with ``bbox`` and
``landmarks`` unknown (NaN; K = 0 landmarks), ``score`` 1.0 where a crop
exists, and the crop resized to ``crop_size``. Frame count and timestamps come
from the video itself (demuxing only), so the record lines up with the media
stage.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from affectflow.data.units import Unit
from affectflow.faces.errors import VideoError
from affectflow.io.store import VideoRecord

log = logging.getLogger("affectflow.faces")

# `00001.jpg` (Aff-Wild2, from 1) or `frame-0.jpg` (BAH, from 0)
_CROP_FILE = re.compile(r"^(?P<frame>frame-)?(?P<k>\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)


class OrganiserCropsSource:
    """Face crops from ``root/<video_id>/<frame:05d>.jpg`` (from 1) or ``root/<video path>/frame-<k>.jpg``
    (from 0)."""

    name = "organiser"
    weights_sha256 = ""
    n_landmarks = 0

    def __init__(self, root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], crop_size: int = 224,
                 frame_stride: int = 1) -> None:
        # several roots: ABAW-5/6 ship Aff-Wild2's crops as cropped_aligned/ and cropped_aligned_new_50_vids/
        roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
        self.roots = [Path(r) for r in roots]
        for r in self.roots:
            if not r.is_dir():
                raise VideoError(f"organiser crops folder {r} does not exist (faces.organiser_crops_dir)")
        if not self.roots:
            raise VideoError("no organiser crops folder given (faces.organiser_crops_dir)")
        self.crop_size = int(crop_size)
        self.frame_stride = int(frame_stride)

    def crop_folder(self, unit: Unit) -> Path:
        """The video's crops folder: ``<root>/<video_id>`` (Aff-Wild2) or ``<root>/<tail of its path>``, the
        shortest tail that is a folder (BAH's ``<path incl. .mp4>``), in exactly one of the roots."""
        found = [f for r in self.roots if (f := self._folder_in(r, unit)) is not None]
        if len(found) > 1:
            raise VideoError(f"video {unit.video_id!r} has organiser crops in two folders: {found[0]} and "
                             f"{found[1]}")
        if not found:
            where = " or ".join(str(r) for r in self.roots)
            raise VideoError(f"{where}: no organiser crops folder for video {unit.video_id!r} (neither "
                             f"{unit.video_id}/ nor a folder named as its path {unit.path})")
        return found[0]

    @staticmethod
    def _folder_in(root: Path, unit: Unit) -> Path | None:
        folder = root / unit.video_id
        if folder.is_dir():
            return folder
        parts = Path(unit.path).parts
        for n in range(1, len(parts) + 1):
            folder = root.joinpath(*parts[-n:])
            if folder.is_dir():
                return folder
        return None

    @staticmethod
    def crop_files(folder: Path) -> dict[int, Path]:
        """{0-based frame index: crop file} of one video's crops folder."""
        files: dict[int, Path] = {}
        for f in folder.iterdir():
            m = _CROP_FILE.match(f.name)
            if m is None:
                continue
            k = int(m["k"]) - (0 if m["frame"] else 1)
            if k >= 0:
                files[k] = f
        return files

    def read(self, unit: Unit) -> VideoRecord:
        from affectflow.media.decode import probe  # demuxes the video: frame count and true timestamps

        folder = self.crop_folder(unit)
        files = self.crop_files(folder)
        p = probe(unit.path)
        n_total = len(p.timestamps)
        beyond = sorted(i for i in files if i >= n_total)
        if beyond:
            log.warning("%s: %d organiser crops are numbered beyond the video's %d frames (first: %s); ignored",
                        unit.video_id, len(beyond), n_total, files[beyond[0]].name)
        idx = np.arange(0, n_total, self.frame_stride, dtype=np.int32)
        n, s = len(idx), self.crop_size
        crops = np.zeros((n, s, s, 3), np.uint8)
        has_face = np.zeros(n, bool)
        for row, i in enumerate(idx):
            f = files.get(int(i))
            if f is None:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("%s: unreadable organiser crop %s; frame %d counted as no face", unit.video_id, f, i)
                continue
            interp = cv2.INTER_AREA if max(img.shape[:2]) > s else cv2.INTER_LINEAR
            crops[row] = cv2.resize(img, (s, s), interpolation=interp)[:, :, ::-1]
            has_face[row] = True
        width, height = (p.height, p.width) if p.rotation in (90, 270) else (p.width, p.height)
        arrays = {
            "frame_index": idx,
            "timestamps": p.timestamps[idx].astype(np.float64),
            "has_face": has_face,
            "bbox": np.full((n, 4), np.nan, np.float32),
            "score": has_face.astype(np.float32),
            "landmarks": np.full((n, 0, 2), np.nan, np.float32),
            "crops": crops,
            "n_faces": has_face.astype(np.int16),
        }
        attrs = {
            "width": int(width), "height": int(height), "rotation": int(p.rotation),
            "n_frames_decoded": int(n_total), "detector": self.name, "frame_stride": self.frame_stride,
            "n_with_face": int(has_face.sum()), "crops_dir": str(folder),
        }
        return VideoRecord(video_id=unit.video_id, arrays=arrays, attrs=attrs)
