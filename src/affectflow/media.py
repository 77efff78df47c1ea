"""Media stage: probe a video, recover true frame timestamps, extract 16 kHz mono audio.

Everything downstream aligns on the timestamps written here, so they come from
the container's presentation times (demuxed packets), not from ``i / fps``:
variable-frame-rate phone videos would otherwise drift by seconds. Audio is
decoded by ffmpeg to 16 kHz mono float32, the input rate of wav2vec 2.0,
HuBERT and Whisper.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np

from affectflow.store import Provenance, ShardWriter, VideoRecord
from affectflow.units import Unit

log = logging.getLogger("affectflow.media")

SAMPLE_RATE = 16000
SILENCE_RMS = 1e-4


class MediaError(RuntimeError):
    """A video cannot be used; the message names the file and the problem."""


@dataclass
class Probe:
    """What the container says about a video, plus what demuxing found."""

    path: str
    width: int
    height: int
    rotation: int
    codec: str
    n_frames: int
    duration: float
    fps: float
    variable_frame_rate: bool
    has_audio: bool
    audio_duration: float
    timestamps: np.ndarray = field(repr=False)


def _ffprobe(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    except FileNotFoundError as e:
        raise MediaError("ffprobe is not installed (apt-get install ffmpeg)") from e
    if out.returncode != 0:
        msg = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "unknown error"
        raise MediaError(f"{path}: not a readable video ({msg})")
    return json.loads(out.stdout or "{}")


def _rotation(stream: dict) -> int:
    for sd in stream.get("side_data_list", []) or []:
        if "rotation" in sd:
            return int(round(float(sd["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag else 0


def frame_timestamps(path: Path) -> np.ndarray:
    """Presentation times (s) of every video frame, sorted, from demuxing alone.

    Demuxing reads packet headers without decoding pixels, so it is cheap even
    for long videos; packets arrive in decode order, hence the sort.
    """
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tb = float(stream.time_base)
            start = stream.start_time or 0
            # Edit lists mark pre-roll packets as discard: decoders drop them, so must we,
            # or frame counts disagree with decoded frames and per-frame labels.
            pts = [
                p.pts for p in container.demux(stream)
                if p.pts is not None and p.size > 0 and not p.is_discard and p.pts >= start
            ]
    except (av.FFmpegError, IndexError) as e:
        raise MediaError(f"{path}: cannot demux video stream ({e})") from e
    ts = (np.sort(np.asarray(pts, dtype=np.int64)) - start) * tb
    return ts.astype(np.float64)


def probe(path: str | Path) -> Probe:
    """Probe a video file; raise MediaError naming it if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    info = _ffprobe(path)
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and s.get("disposition", {}).get(
        "attached_pic", 0) == 0), None)
    if video is None:
        raise MediaError(f"{path}: no video stream")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    ts = frame_timestamps(path)
    if len(ts) == 0:
        raise MediaError(f"{path}: video stream has no frames")
    diffs = np.diff(ts)
    if len(diffs):
        step = float(np.median(diffs))
        duration = float(ts[-1] - ts[0] + step)
        vfr = bool(step > 0 and np.any(np.abs(diffs - step) > 0.1 * step))
        fps = len(ts) / duration if duration > 0 else float("nan")
    else:
        duration = float(info.get("format", {}).get("duration", 0.0) or 0.0)
        vfr = False
        rate = video.get("avg_frame_rate", "0/1")
        num, den = (int(x) for x in rate.split("/"))
        fps = num / den if den else float("nan")
    audio_duration = 0.0
    if audio is not None:
        audio_duration = float(audio.get("duration") or info.get("format", {}).get("duration") or 0.0)
    return Probe(
        path=str(path),
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        rotation=_rotation(video),
        codec=str(video.get("codec_name", "")),
        n_frames=len(ts),
        duration=duration,
        fps=fps,
        variable_frame_rate=vfr,
        has_audio=audio is not None,
        audio_duration=audio_duration,
        timestamps=ts,
    )


def extract_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``."""
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-vn",
        "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0:
        msg = out.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"{path}: cannot decode audio ({msg[-1] if msg else 'ffmpeg failed'})")
    return np.frombuffer(out.stdout, dtype=np.float32).copy()


@dataclass
class MediaRecord:
    """The media stage's result for one video."""

    probe: Probe
    audio: np.ndarray
    sample_rate: int
    warnings: list[str]

    def to_record(self, video_id: str) -> VideoRecord:
        meta = {k: v for k, v in asdict(self.probe).items() if k != "timestamps"}
        meta.update(sample_rate=self.sample_rate, warnings=self.warnings)
        return VideoRecord(
            video_id=video_id,
            arrays={"timestamps": self.probe.timestamps, "audio": self.audio},
            attrs=meta,
        )


def process_video(path: str | Path, sample_rate: int = SAMPLE_RATE) -> MediaRecord:
    """Probe and extract audio, turning survivable oddities into warnings.

    A video without an audio stream gets silence of the video's length (so the
    audio branch still has input) and a warning; silent audio and audio shorter
    than the video are kept as they are, with a warning.
    """
    p = probe(path)
    warnings: list[str] = []
    n_video = int(math.ceil(p.duration * sample_rate))
    if not p.has_audio:
        warnings.append("no audio stream: silence of the video's length used")
        audio = np.zeros(n_video, dtype=np.float32)
    else:
        audio = extract_audio(path, sample_rate)
        if len(audio) == 0:
            warnings.append("audio stream decodes to no samples: silence of the video's length used")
            audio = np.zeros(n_video, dtype=np.float32)
        else:
            if float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
                warnings.append("audio is silent")
            short = p.duration - len(audio) / sample_rate
            if short > 0.5:
                warnings.append(f"audio is {short:.2f} s shorter than the video")
    if p.variable_frame_rate:
        warnings.append("variable frame rate: per-frame timestamps used")
    for w in warnings:
        log.warning("%s: %s", path, w)
    return MediaRecord(probe=p, audio=audio, sample_rate=sample_rate, warnings=warnings)


@dataclass
class StageResult:
    """What a shard stage wrote and what it skipped (video_id, reason)."""

    written: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def run_media_stage(
    units: list[Unit],
    out_path: str | Path,
    media_cfg: dict,
    on_bad_video: str = "skip",
) -> StageResult:
    """Write the media shard for ``units``; bad videos are skipped or fatal by policy."""
    sample_rate = int(media_cfg.get("sample_rate", SAMPLE_RATE))
    result = StageResult()
    prov = Provenance(stage="media", config=media_cfg)
    with ShardWriter(out_path, prov) as writer:
        for unit in units:
            try:
                rec = process_video(unit.path, sample_rate)
            except MediaError as e:
                if on_bad_video == "fail":
                    raise
                log.warning("skipping video %r: %s", unit.video_id, e)
                result.skipped.append((unit.video_id, str(e)))
                continue
            writer.add(rec.to_record(unit.video_id))
            result.written.append(unit.video_id)
        writer.set_skipped(result.skipped)
    return result


def accepted_units(media_shard: str | Path, units: list[Unit]) -> list[Unit]:
    """The units the media stage wrote, so every later stage skips the same videos."""
    from affectflow.store import ShardReader

    with ShardReader(media_shard, stage="media") as r:
        ok = set(r.video_ids())
    return [u for u in units if u.video_id in ok]
