"""How long a dataset will take: per stage, the jobs, the work and the hours per node kind, and a shard count.

Why: a user with thousands of videos has to choose ``n_shards`` and a node
kind before the first job runs, and a wrong guess costs a day (one shard a
node for a week) or the scheduler's patience (100,000 tiny jobs). The counts
come from probing the videos (container and packet timestamps, no decoding);
the rates are the ones the benchmarks recorded (``benchmarks/results/``, named
in each :class:`NodeRates`), so a figure here is only as good as that
measurement, and a stage the benchmarks never timed on a node kind says so
instead of guessing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectflow.data.adapters.files import resolve
from affectflow.data.units import Unit, shard_of
from affectflow.media.decode import MediaError, probe
from affectflow.plan.rates import (  # there: --help imports no media library
    FACES_MEASURED_WITH,
    NODE_KINDS,
    NodeRates,
    whisper_windows,
)


@dataclass(frozen=True)
class VideoCount:
    """What probing one video found: its analysed frames, its audio seconds (0 without an audio stream) and its
    frame size (0 x 0: unknown; the faces stage's cost grows with it)."""

    video_id: str
    frames: int
    audio_s: float
    problem: str = ""  # why it could not be probed (the media stage will skip it)
    width: int = 0
    height: int = 0

    def faces_seconds(self, kind: NodeRates) -> float:
        return self.frames * kind.faces_seconds_per_frame(self.width, self.height)

    def analysed(self, frame_stride: int = 1) -> int:
        """The frames the faces stage detects on with ``faces.frame_stride``: the first and every n-th after it
        (each one a row of the faces shard and of the frame table, and a crop where it has a face)."""
        return math.ceil(self.frames / max(1, frame_stride))


@dataclass(frozen=True)
class Corpus:
    """The counts a plan is made from."""

    videos: tuple[VideoCount, ...]

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos)

    @property
    def audio_s(self) -> float:
        return sum(v.audio_s for v in self.videos)

    def analysed(self, frame_stride: int = 1) -> int:
        """The frames the faces stage detects on, over the videos (:meth:`VideoCount.analysed`)."""
        return sum(v.analysed(frame_stride) for v in self.videos)

    @property
    def asr_windows(self) -> int:
        """Whisper's 30 s windows over the videos, each video's audio on its own (:func:`whisper_windows`)."""
        return sum(whisper_windows(v.audio_s) for v in self.videos)

    def faces_seconds(self, kind: NodeRates) -> float:
        """The faces stage's seconds on ``kind``, each video at its own size's rate."""
        return sum(v.faces_seconds(kind) for v in self.videos)

    def larger_than_measured(self, kind: NodeRates) -> int:
        """Frames of videos larger than any size ``kind``'s faces rate was measured at (an estimate for them
        is an extrapolation, or with one measured size, that size's rate)."""
        top = kind.measured_up_to.pixels
        return sum(v.frames for v in self.videos if v.width * v.height > top)

    def per_shard(self, n_shards: int, value: Callable[[VideoCount], float]) -> dict[str, float]:
        """``value`` of the videos summed per shard, under the workflow's own video-to-shard assignment
        (:func:`shard_of`)."""
        out: dict[str, float] = {}
        for v in self.videos:
            s = shard_of(v.video_id, n_shards)
            out[s] = out.get(s, 0) + value(v)
        return out

    def shard_frames(self, n_shards: int) -> dict[str, int]:
        """Frames per shard."""
        return {s: int(f) for s, f in self.per_shard(n_shards, lambda v: v.frames).items()}

    def shard_faces_seconds(self, n_shards: int, kind: NodeRates) -> dict[str, float]:
        """Each shard's faces job in seconds on ``kind``: the heaviest job of a shard, which sizes shards."""
        return self.per_shard(n_shards, lambda v: v.faces_seconds(kind))

    def longest_share(self, n_shards: int, value: Callable[[VideoCount], float]) -> float:
        """The largest shard's part of ``value`` (0 without any): the share of a stage's work its longest job
        holds, when the work grows with ``value``."""
        total = sum(value(v) for v in self.videos)
        return max(self.per_shard(n_shards, value).values(), default=0.0) / total if total else 0.0

    def shards(self, n_shards: int) -> list[str]:
        """The shards that hold a video under ``n_shards``, sorted: the workflow runs one job per stage for each
        of these only (an empty shard never enters its DAG), so with fewer videos than shards, or hashes that
        happen to collide, there are fewer jobs than ``n_shards``. A video that cannot be probed still counts: its
        shard's jobs run (and skip it)."""
        return sorted(self.shard_frames(n_shards))


def count_units(units: Iterable[Unit], threads: int = 8, base_dir: str | os.PathLike[str] = ".") -> Corpus:
    """Probe every unit's video (no decoding), in ``threads`` threads; a video that cannot be probed counts
    0 frames and carries its reason. ``base_dir``: the workflow's directory, which relative paths are under."""
    def one(u: Unit) -> VideoCount:
        try:
            p = probe(resolve(u.path, Path(base_dir)))
        except MediaError as e:
            return VideoCount(u.video_id, 0, 0.0, str(e))
        return VideoCount(u.video_id, int(p.n_frames), float(p.audio_duration) if p.has_audio else 0.0,
                          width=int(p.width), height=int(p.height))

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return Corpus(tuple(pool.map(one, list(units))))


@dataclass(frozen=True)
class Models:
    """What the config runs per shard besides media, faces and frame_predictions (every run has those): the face
    models (each a job per shard, at its own rate), how many models of each other kind (each a job per shard;
    text models, one per ASR model and shard) and whether the faces stage draws contact sheets (a job per
    shard); and the faces settings that change how much work there is: the detector and the stride of the frames
    it detects on (only those frames become rows and crops)."""

    face: tuple[str, ...] = ()
    audio: int = 0
    asr: int = 0
    text: int = 0
    contact_sheets: bool = False
    detector: str = FACES_MEASURED_WITH["detector"]
    frame_stride: int = 1

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Models:
        """The config's models; a face model by its registry name (an alias, ``fer``, has its model's rate)."""
        from affectflow.models.catalogue.registry import find

        feats = config.get("features") or {}
        faces = config.get("faces") or {}
        face = tuple((spec.name if (spec := find(name)) else name) for name in feats.get("face") or ())
        return cls(tuple(dict.fromkeys(face)), len(feats.get("audio") or []), len(feats.get("asr") or []),
                   len(feats.get("text") or []), bool(faces.get("contact_sheets")),
                   str(faces.get("detector") or FACES_MEASURED_WITH["detector"]), int(faces.get("frame_stride") or 1))


@dataclass(frozen=True)
class StageEstimate:
    """One stage of the plan: its jobs, its work and the node-hours it takes on each node kind (None: the
    benchmarks have no rate for it there)."""

    stage: str
    jobs: int
    work: float
    unit: str
    hours: dict[str, float | None] = field(default_factory=dict)
    longest: dict[str, float | None] = field(default_factory=dict)  # hours of the stage's longest job


def _at(work: float, rate: Callable[[NodeRates], float | None]) -> Callable[[NodeRates], float | None]:
    """Seconds of ``work`` at a node kind's recorded ``rate`` (None where it has none)."""
    def seconds(kind: NodeRates) -> float | None:
        r = rate(kind)
        return None if r is None else work / r
    return seconds


def _row(stage: str, jobs: int, work: float, unit: str, kinds: Sequence[NodeRates],
         seconds: Callable[[NodeRates], float | None], longest: Callable[[NodeRates], float],
         model: str = "") -> StageEstimate:
    """``seconds``: the stage's work on a node kind (None: no rate there); ``longest``: the share of it that its
    longest job takes. Each job also pays the stage's fixed start on that kind (:meth:`NodeRates.start_s`)."""
    hours: dict[str, float | None] = {}
    most: dict[str, float | None] = {}
    for k in kinds:
        s = seconds(k)
        start = k.start_s(stage, model)
        hours[k.name] = None if s is None else (s + jobs * start) / 3600.0
        most[k.name] = None if s is None else (s * longest(k) + start) / 3600.0
    return StageEstimate(stage, jobs, work, unit, hours, most)


def estimate(corpus: Corpus, models: Models, n_shards: int, face_share: float = 1.0,
             kinds: Sequence[NodeRates] = tuple(NODE_KINDS.values())) -> list[StageEstimate]:
    """The per-stage plan: every stage the workflow runs per shard, in its order, with one job per non-empty shard
    (:meth:`Corpus.shards`) and model. ``face_share``: the share of frames with a face (each is a crop for every
    face model; 1.0, one face in every frame, is the upper bound for one person per video).

    faces is charged per video at the rate of its frame size; face_features per model (one row each, as each
    is a job of its own); transcripts per Whisper window of each video's audio; media, contact_sheets and
    text_features per video (a transcript's few segments cost less than reading and writing it); frame_predictions
    per frame row. Every job adds its stage's fixed start."""
    shards = len(corpus.shards(n_shards))
    videos = len(corpus.videos)
    stride = models.frame_stride
    analysed = corpus.analysed(stride)  # faces.frame_stride: the frames detected on, cropped and tabled
    crops = analysed * face_share
    frames_share = corpus.longest_share(n_shards, lambda v: v.analysed(stride))
    videos_share = corpus.longest_share(n_shards, lambda v: 1.0)
    rows = [_row("media", shards, videos, "videos", kinds, _at(videos, lambda k: k.media_videos_per_s),
                 lambda k: videos_share),
            _row("faces", shards, corpus.frames, "frames", kinds, corpus.faces_seconds,
                 lambda k: corpus.longest_share(n_shards, lambda v: v.faces_seconds(k)))]
    if models.contact_sheets:
        rows.append(_row("contact_sheets", shards, videos, "videos", kinds, _at(videos, lambda k: k.sheets_per_s),
                         lambda k: videos_share))
    for name in models.face:
        rows.append(_row("face_features", shards, crops, f"face crops ({name})", kinds,
                         _at(crops, lambda k, name=name: k.face_model_cps.get(name)), lambda k: frames_share,
                         model=name))
    if models.audio:  # a job per model and shard: the longest is one model's on the fullest shard
        work = corpus.audio_s * models.audio
        audio_share = corpus.longest_share(n_shards, lambda v: v.audio_s) / models.audio
        rows.append(_row("audio_features", shards * models.audio, work, "audio s", kinds,
                         _at(work, lambda k: k.audio_rtf), lambda k: audio_share))
    # transcripts run for the text models (every ASR model) and for the run page (the first one only)
    asr = models.asr if models.text else min(models.asr, 1)
    if asr:
        windows = corpus.asr_windows * asr
        window_share = corpus.longest_share(n_shards, lambda v: whisper_windows(v.audio_s)) / asr
        rows.append(_row("transcripts", shards * asr, windows, "Whisper windows (30 s)", kinds,
                         lambda k: None if k.asr_window_s is None else windows * k.asr_window_s,
                         lambda k: window_share))
    if models.asr and models.text:
        pairs = models.asr * models.text
        work = videos * pairs
        rows.append(_row("text_features", shards * pairs, work, "transcripts", kinds,
                         _at(work, lambda k: k.text_videos_per_s), lambda k: videos_share / pairs))
    rows.append(_row("frame_predictions", shards, analysed, "frames" if stride == 1 else "frames analysed", kinds,
                     _at(analysed, lambda k: k.predictions_fps), lambda k: frames_share))
    return rows


def _fits(shard_seconds: Mapping[str, float], budget: float, busy: int) -> bool:
    """Whether no shard's faces job takes more than ``budget`` seconds and at least ``busy`` shards have one."""
    filled = [f for f in shard_seconds.values() if f]
    return max(filled, default=0.0) <= budget and len(filled) >= busy


def suggest_shards(corpus: Corpus, rates: NodeRates, job_hours: float = 1.0, nodes: int = 1,
                   most: int = 4096, models: Models | None = None) -> int:
    """The smallest ``n_shards`` whose longest faces job (the heaviest stage per shard) fits in ``job_hours`` on
    ``rates``' node kind, and with a shard of frames for every node (else nodes idle), at most one shard per
    video and at most ``most`` (the DAG's cost grows with shards). With ``models``, the longest job of every
    other stage that has a rate on that kind must fit too (a long recording's audio, say, can outweigh its
    frames).

    Shards are filled by a hash of the video id, not by length, so the longest shard, not the mean, is what
    is checked, and ``nodes`` shards may leave some of them empty: the shards that hold frames are counted.
    """
    limit = max(1, min(most, sum(1 for v in corpus.videos if v.frames)))
    budget = job_hours * 3600.0
    cost = {v.video_id: v.faces_seconds(rates) for v in corpus.videos}  # once, not once per n tried
    n = max(1, min(limit, max(nodes, math.ceil(sum(cost.values()) / budget))))
    while n < limit and not _fits(corpus.per_shard(n, lambda v: cost[v.video_id]), budget, min(nodes, limit)):
        n += 1
    while models is not None and n < limit and longest_jobs_over(corpus, models, n, rates, budget):
        n = min(limit, n + max(1, n // 20))  # a stage's longest job shrinks with it, about as 1/n
    return n


def longest_jobs_over(corpus: Corpus, models: Models, n_shards: int, kind: NodeRates,
                      seconds: float | Mapping[str, float]) -> dict[str, float]:
    """The stages whose longest job on ``kind`` with ``n_shards`` takes more than ``seconds`` (one budget for
    all, or a stage's own: its rule's time limit) -> that job's hours; stages without a rate there are left out."""
    over = {}
    for row in estimate(corpus, models, n_shards, kinds=(kind,)):
        hours = row.longest[kind.name]
        limit = seconds.get(row.stage) if isinstance(seconds, Mapping) else seconds
        if hours is not None and limit is not None and hours * 3600.0 > limit:
            over[row.stage] = max(hours, over.get(row.stage, 0.0))
    return over


def _total_cell(hours: float, not_measured: int) -> str:
    """The last row's cell: the measured stages' sum, and how many stages it leaves out. Why not "n/a" as soon
    as one stage has no rate: a node kind may lack some (h100 has no rate for the CPU stages, audio or ASR), and
    the sum of the others is still what sizes the run."""
    cell = f"**{hours:.3g}**"
    return cell if not not_measured else f"{cell} + {not_measured} stage{'s' * (not_measured > 1)} not measured"


def plan_table(corpus: Corpus, models: Models, n_shards: int, nodes: int = 1,
               kinds: Sequence[NodeRates] = tuple(NODE_KINDS.values())) -> str:
    """The markdown table ``affectflow plan`` prints: per stage, jobs, work, and wall-clock hours on ``nodes``
    nodes of each kind (a stage's jobs spread over the nodes; never fewer hours than its longest job)."""
    rows = estimate(corpus, models, n_shards, kinds=kinds)
    head = "| stage | jobs | work | " + " | ".join(f"hours on {nodes} × {k.name}" for k in kinds) + " |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(kinds)]
    total = dict.fromkeys((k.name for k in kinds), 0.0)
    missing = dict.fromkeys((k.name for k in kinds), 0)
    for r in rows:
        cells = []
        for k in kinds:
            h = r.hours[k.name]
            if h is None:
                cells.append("not measured")
                missing[k.name] += 1
                continue
            wall = max(h / max(1, min(nodes, r.jobs)), r.longest[k.name] or 0.0)
            cells.append(f"{wall:.3g}")
            total[k.name] += wall
        lines.append(f"| {r.stage} | {r.jobs} | {r.work:,.0f} {r.unit} | " + " | ".join(cells) + " |")
    lines.append("| **all of these** | | | " + " | ".join(_total_cell(total[k.name], missing[k.name]) for k in kinds)
                 + " |")
    return "\n".join(lines) + "\n"


def size_notes(corpus: Corpus, kinds: Sequence[NodeRates] = tuple(NODE_KINDS.values())) -> list[str]:
    """A line per node kind whose faces rate was measured only on smaller videos than some of the corpus': its
    faces hours for them are an extrapolation (several measured sizes) or that size's rate, too optimistic
    (one measured size)."""
    lines = []
    for k in kinds:
        larger = corpus.larger_than_measured(k)
        if not larger or not corpus.frames:
            continue
        top = k.measured_up_to
        how = ("extrapolated from the two largest measured sizes" if len(k.faces) > 1 else
               f"charged {top}'s rate, too optimistic: a larger frame costs more to decode, resize and detect")
        lines.append(f"note: {larger / corpus.frames:.0%} of the frames are in videos larger than {top}, the largest "
                     f"size {k.name}'s faces rate was measured at; their faces hours are {how}")
    return lines


def setting_notes(models: Models) -> list[str]:
    """A line per faces setting that differs from those the faces rates were measured with
    (:data:`~affectflow.plan.rates.FACES_MEASURED_WITH`): the faces hours are then not what the config costs."""
    lines = []
    if models.detector != FACES_MEASURED_WITH["detector"]:
        lines.append(f"note: faces.detector is {models.detector}; the faces rates were measured with "
                     f"{FACES_MEASURED_WITH['detector']}, so the faces hours are that detector's "
                     "(benchmarks/results/latest.json, faces_stage_by_detector, compares them on the demo clips)")
    if models.frame_stride > 1:
        lines.append(f"note: faces.frame_stride is {models.frame_stride}; the face crops and frame rows count the "
                     "frames detected on, but the faces hours are those of detecting on every frame, an upper "
                     "bound: every frame is still decoded, the rest of the stage's work shrinks with the stride")
    return lines


def regrouped(earlier: Path, units: Iterable[Unit], n_shards: int) -> str:
    """A warning when a run's results exist (``earlier``: its ``units.tsv``) and ``n_shards`` groups the videos
    they hold otherwise ('' when it does not): a shard whose videos change reruns its media, faces and feature
    jobs. Why here: the plan's suggested ``n_shards`` is for a run's start, and taking it later costs much of
    the extraction again."""
    from collections import defaultdict

    from affectflow.data.units import UnitsError, UnitsTable

    try:
        before = {u.video_id: u.shard for u in UnitsTable.read_tsv(earlier)}
    except (OSError, UnitsError, ValueError, TypeError):
        return ""
    old: dict[str, set[str]] = defaultdict(set)
    new: dict[str, set[str]] = defaultdict(set)
    for v, shard in before.items():
        old[shard].add(v)
    for u in units:
        new[shard_of(u.video_id, n_shards)].add(u.video_id)
    changed = sorted(s for s in new if new[s] != old.get(s))
    moved = sum(1 for u in units if u.video_id in before and before[u.video_id] != shard_of(u.video_id, n_shards))
    if not moved:
        return ""
    return (f"{moved} of the videos that the results beside {earlier} hold move to another shard, and {len(changed)} "
            f"of the {len(new)} shards get other videos: their media, faces and feature jobs rerun")
