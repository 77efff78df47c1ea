"""Decoding: probe a video, recover true frame timestamps, extract 16 kHz mono audio.

Everything downstream aligns on the timestamps written here, so they come from
the container's presentation times (demuxed packets), not from ``i / fps``:
variable-frame-rate phone videos would otherwise drift by seconds. The clock
starts at the first frame a decoder shows; MPEG transport and program streams
get theirs mended where recordings were joined (:class:`VideoClock`, the rule
the faces stage decodes by too). Audio is decoded by ffmpeg to 16 kHz mono
float32, the input rate of wav2vec 2.0, HuBERT and Whisper.
:func:`video_stream_problem` tells cheaply whether a file is a video at all.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from affectflow.core.errors import AffectflowError
from affectflow.core.vocabulary import SAMPLE_RATE
from affectflow.media.avi_index import ChunkPlaces, read_chunk_index

log = logging.getLogger("affectflow.media")

SILENCE_RMS = 1e-4
# A container's frame count and the frames demuxed may differ by a few (an AVI
# index counts one more); more than this is a cut-off file (shared with the
# faces stage, which checks decoded frames the same way).
MISSING_FRAMES_TOLERATED = 5
MISSING_FRACTION_TOLERATED = 0.05
# An audio stream that starts this much before or after the first video frame is reported; any offset is
# corrected (AAC priming alone moves audio starts by tens of milliseconds, which is not worth a warning).
AUDIO_OFFSET_REPORTED_S = 0.1
# Audio this much shorter or longer than the video is reported (an encoder's last frame of padding is not).
AUDIO_LENGTH_REPORTED_S = 0.5
# A frame whose time is not after its predecessor's gets the predecessor's time plus this (seconds).
REPEATED_TIME_STEP_S = 1e-3
# In an MPEG stream, a decode time this far past the previous one is a gap between joined recordings, not a
# frame step (FFmpeg's own -dts_delta_threshold).
TIMESTAMP_JUMP_S = 10.0
#: Containers that store decode times only: an AVI holds one chunk per frame interval, so a frame's time is its
#: chunk's, and the presentation time FFmpeg's demuxer gives a packet is a guess (one frame late for H.264 and
#: MPEG-4 Part 2, out of order with B-frames). The k-th frame shown is at the k-th chunk's time.
DECODE_TIME_FORMATS = frozenset({"avi"})
# Audio is read from ffmpeg and written to the shard this many seconds at a time (640 KB at 16 kHz).
AUDIO_CHUNK_S = 10.0


class MediaError(AffectflowError, RuntimeError):
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
    listed_duration: float  # what the container states for the video stream (0: nothing)
    timestamps: np.ndarray = field(repr=False)
    audio_offset: float = 0.0  # first audio sample - first video frame (s); > 0: the audio starts later
    repaired_timestamps: int = 0  # frames whose time was not after the previous one's (see strictly_increasing)
    timestamp_jumps: int = 0  # restarts of an MPEG stream's clock mended by VideoClock (joined recordings)
    #: what probing found to warn about, not in a shard's attributes (its ``warnings`` hold them): fewer frames
    #: in the file than its index lists, within the tolerance that is no error (a cut near a long recording's
    #: end), or more than one video stream
    notes: tuple[str, ...] = ()


def ffmpeg_url(path: str | os.PathLike[str]) -> str:
    """``path`` as an FFmpeg/PyAV input that is always read as a local file.

    Bare relative names are otherwise misread: ``12:30.mp4`` as a URL with
    protocol ``12``, ``concat:x.mp4`` as the concat protocol, ``-x.mp4`` as an
    ffprobe option. The ``file:`` protocol takes the rest of the string verbatim.
    """
    return "file:" + os.fspath(path)


def too_many_missing(found: int, listed: int) -> bool:
    """Whether ``found`` frames of the ``listed`` ones the container indexes means a cut-off file."""
    return listed > 0 and listed - found > max(MISSING_FRAMES_TOLERATED, MISSING_FRACTION_TOLERATED * listed)


#: demuxers that present a file that is no video as a video stream: still images (``image2``, ``<codec>_pipe``)
#: and text shown as ANSI art or binary text (``.nfo``, ``.bin``, ...)
STILL_OR_TEXT_FORMATS = ("image2", "tty", "bin", "xbin", "adf", "idf")


def still_or_text(format_name: str) -> str:
    """Why a file FFmpeg reads in ``format_name`` (its demuxer; ffprobe may list several, comma-separated) is
    no video, or ``""``: a still image or text, which FFmpeg shows as a one-frame video stream whatever the
    file's name says (a JPEG renamed ``.mp4``)."""
    name = format_name.split(",")[0]
    if name in STILL_OR_TEXT_FORMATS or name.endswith("_pipe"):
        return f"not a video: a still image or text to FFmpeg (format {name})"
    return ""


def video_stream_problem(path: str | os.PathLike[str]) -> str:
    """Why ``path`` is not a video to FFmpeg (``""``: it is one): the check of a file whose name does not say.

    Only the container's header and stream list are read (a few milliseconds),
    so a dataset folder can be sorted when the workflow is parsed. A video is
    a file FFmpeg opens that has a video stream other than a cover picture, in
    a format that is not a still image or text (which FFmpeg also shows as
    video streams). Whether its frames decode is the media stage's concern.
    """
    try:
        with av.open(ffmpeg_url(path)) as container:
            still = still_or_text(container.format.name)
            if still:
                return still
            streams = container.streams.video
            if not streams:
                return "not a video: no video stream"
            if all(s.disposition & av.stream.Disposition.attached_pic for s in streams):
                return "not a video: its only picture is a cover image (a sound file)"
    except (av.FFmpegError, OSError, ValueError) as e:
        return f"not a video: FFmpeg cannot read it ({getattr(e, 'strerror', None) or e})"
    return ""


def _ffprobe(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", ffmpeg_url(path)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    except FileNotFoundError as e:
        raise MediaError("ffprobe is not installed (apt-get install ffmpeg)") from e
    if out.returncode != 0:
        msg = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "unknown error"
        raise MediaError(f"{path}: not a readable video ({msg.replace(ffmpeg_url(path), str(path))})")
    return json.loads(out.stdout or "{}")


def _rotation(stream: dict) -> int:
    for sd in stream.get("side_data_list", []) or []:
        if "rotation" in sd:
            return int(round(float(sd["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag else 0


def strictly_increasing(times: np.ndarray, previous: float | None = None) -> tuple[np.ndarray, int]:
    """``times`` made strictly increasing, and how many were changed.

    The rule (the media and faces stages both apply it, so their clocks agree):
    a frame whose time is not after its predecessor's (after repair; ``previous``
    is the time before ``times[0]``, for streams repaired a batch at a time)
    gets the predecessor's time plus ``REPEATED_TIME_STEP_S``. Repeated
    timestamps from careless concatenation or broken muxers thus become
    distinct, in order, and stay within a few milliseconds of what the file said.
    """
    out = np.asarray(times, dtype=np.float64).copy()
    last = -np.inf if previous is None else float(previous)
    changed = 0
    for i in range(out.shape[0]):
        if out[i] <= last:
            out[i] = last + REPEATED_TIME_STEP_S
            changed += 1
        last = out[i]
    return out, changed


class VideoClock:
    """Where each packet of a video stream lies on the video's clock: the one rule of the media and faces stages.

    MPEG transport and program streams (``.ts``, ``.mts``, ``.m2ts``, ``.mpg``: the formats FFmpeg flags as
    having timestamp discontinuities) need two things other containers do not:

    * recordings joined byte by byte (``cat a.ts b.ts``, a camcorder's split files) restart their clock: a
      packet whose decode time goes back, or forward by more than ``TIMESTAMP_JUMP_S``, starts a new part,
      which is moved to follow the one before by one frame step (FFmpeg's own tools do the same, so the audio
      that ``extract_audio`` decodes runs on alike);
    * captures start mid-stream, with packets that need pictures from before the file's start: no decoder can
      show a frame before the first keyframe, nor the pictures that keyframe's group shows before it (open-GOP
      leading pictures), so those packets are no frames of the video and the clock starts at that keyframe.

    Containers that store decode times only (:data:`DECODE_TIME_FORMATS`, AVI) have frames at their chunks'
    times: :meth:`admit` gives each packet its decode time as its time (:attr:`decode_times`), and the k-th
    frame a decoder shows is at the k-th such time, since the decoder shows frames in order. With ``path``, an
    AVI's own index (:mod:`affectflow.media.avi_index`) gives each chunk its place, so frames after a chunk the
    demuxer passed over (a damaged header) keep their times (:class:`~affectflow.media.avi_index.ChunkPlaces`).
    Other containers keep their times, starting at the stream's start time; their pre-roll (edit lists) is
    marked by the demuxer. Feed every packet of the stream, in decode order, to :meth:`admit`.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.VideoStream,
                 path: str | os.PathLike[str] | None = None) -> None:
        self.mend = bool(container.format.flags & av.format.Flags.ts_discont.value)
        self.decode_times = not self.mend and container.format.name in DECODE_TIME_FORMATS
        index = read_chunk_index(path, stream.index) if self.decode_times and path is not None else None
        self.places = ChunkPlaces(index) if index is not None else None
        self.repeated = False  # the last packet admitted is a chunk read before (an AVI's): pass it over, undecoded
        tb = float(stream.time_base) if stream.time_base else 0.0
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        self._step = max(1, round(1.0 / (rate * tb))) if tb else 1
        self._jump = round(TIMESTAMP_JUMP_S / tb) if tb else 0
        self.zero: int = 0 if self.mend else (stream.start_time or 0)  # the first frame's time (stream time base)
        self.jumps = 0  # clock restarts mended
        self._offset = 0
        self._last_dts: int | None = None
        self._started = not self.mend

    def admit(self, packet: av.Packet) -> bool:
        """Whether ``packet`` holds a frame of the video (False: pass it over); its times are moved onto the
        clock in place first. Packets without data (the decoder's flush) and without a time are let through."""
        self.repeated = False
        if self.decode_times and packet.dts is not None:
            if self.places is not None and packet.size:
                placed = self.places.time(packet.pos, packet.dts, packet.size)
                if placed is None:
                    self.repeated = True
                    return False
                packet.dts = placed
            packet.pts = packet.dts
        if not self.mend or not packet.size or packet.pts is None:
            return self._started
        if packet.dts is not None:
            dts = packet.dts + self._offset
            last = self._last_dts
            if last is not None and (dts < last or dts - last > self._jump):
                self._offset += last + self._step - dts
                self.jumps += 1
            packet.dts += self._offset
            self._last_dts = packet.dts
        packet.pts += self._offset
        if not self._started and packet.is_keyframe:
            self._started, self.zero = True, packet.pts
        return self._started and packet.pts >= self.zero

    def listed(self, header: int) -> int:
        """The frames a container lists, from its header's count: an AVI's header counts its empty chunks (a
        capture's dropped frames, repeated), which its index tells apart."""
        believed = self.places is not None and self.places.trusted
        return max(0, header - self.places.index.n_empty) if believed else header

    def lost(self) -> list[int]:
        """The times of the frames whose chunks the demuxer passed over (an AVI's damaged chunk headers)."""
        return [self.places.index.start + p for p in self.places.lost()] if self.places is not None else []

    def shows(self, pts: int | None) -> bool:
        """Whether a decoded frame with (admitted) time ``pts`` is a frame of the video: what :meth:`admit` said of
        its packet, for a decoder that was fed every packet (it may need the parameter sets of a packet that
        shows no frame)."""
        return not self.mend or (self._started and (pts is None or pts >= self.zero))


@dataclass(frozen=True)
class _Demuxed:
    """What demuxing a video stream found."""

    times: np.ndarray  # of the frames (s), sorted
    n_packets: int  # demuxed, pre-roll included
    listed: int  # frames the container lists (0: none)
    start: float  # the first frame's time on the container's clock (s)
    jumps: int  # clock restarts mended (VideoClock)
    mpeg: bool  # an MPEG transport or program stream (VideoClock.mend)


def _demux(path: Path) -> _Demuxed:
    """The frames' times and counts from demuxing alone (see :class:`_Demuxed`)."""
    try:
        with av.open(ffmpeg_url(path)) as container:
            stream = container.streams.video[0]
            tb = float(stream.time_base)
            clock = VideoClock(container, stream, path)
            n_packets, pts = 0, []  # the packets' times only: a long video's packets (its whole size) are not kept
            for p in container.demux(stream):
                if p.size > 0 and clock.admit(p) and p.pts is not None:
                    n_packets += 1
                    if not p.is_discard:
                        pts.append(p.pts)
            listed = clock.listed(int(stream.frames or 0))
    except (av.FFmpegError, IndexError, OSError) as e:
        raise MediaError(f"{path}: cannot demux video stream ({str(e).replace(ffmpeg_url(path), str(path))})") from e
    # Edit lists mark pre-roll packets as discard: decoders drop them, so must we,
    # or frame counts disagree with decoded frames and per-frame labels.
    start = clock.zero
    kept = np.asarray(pts + clock.lost(), dtype=np.int64)  # an AVI's chunks passed over are frames too
    ts = (np.sort(kept[kept >= start]) - start) * tb
    return _Demuxed(ts.astype(np.float64), n_packets, listed, float(start * tb), clock.jumps, clock.mend)


def audio_start(path: str | Path) -> float | None:
    """Time (s, container clock) of the first decoded audio sample of the first audio stream; None without one.

    Decoded, not read from the stream header: decoders drop encoder priming
    that an edit list marks, so the first decoded frame is where the samples
    that ffmpeg extracts really begin.
    """
    try:
        with av.open(ffmpeg_url(path)) as container:
            if not container.streams.audio:
                return None
            for frame in container.decode(container.streams.audio[0]):
                if frame.pts is not None and frame.time_base is not None:
                    return float(frame.pts * frame.time_base)
    except (av.FFmpegError, OSError):
        return None  # extract_audio reports an undecodable stream, naming the file
    return None


def frame_timestamps(path: Path) -> np.ndarray:
    """Presentation times (s) of every video frame, sorted and strictly increasing, from demuxing alone.

    Demuxing reads packet headers without decoding pixels, so it is cheap even
    for long videos; packets arrive in decode order, hence the sort.
    """
    return strictly_increasing(_demux(Path(path)).times)[0]


def probe(path: str | Path) -> Probe:
    """Probe a video file; raise MediaError naming it if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    info = _ffprobe(path)
    still = still_or_text(str(info.get("format", {}).get("format_name", "")))
    if still:  # a folder's files named as videos are not opened when listed: an image renamed .mp4 ends here
        raise MediaError(f"{path}: {still}")
    streams = info.get("streams", [])
    pictures = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get(
        "attached_pic", 0)]  # not a cover picture
    if not pictures:
        raise MediaError(f"{path}: no video stream")
    video = pictures[0]
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    demuxed = _demux(path)
    n_packets, listed = demuxed.n_packets, demuxed.listed
    ts, repaired = strictly_increasing(demuxed.times)
    if len(ts) == 0:
        raise MediaError(f"{path}: video stream has no frames")
    if too_many_missing(n_packets, listed):
        # the index (moov at the front, AVI header) survives a cut-off download; the frames do not
        raise MediaError(
            f"{path}: only {n_packets} of the {listed} frames the container lists are in the file; "
            "the file is truncated or corrupt"
        )
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
    audio_duration, offset = 0.0, 0.0
    if audio is not None:
        audio_duration = float(audio.get("duration") or info.get("format", {}).get("duration") or 0.0)
        first = audio_start(path)
        offset = 0.0 if first is None else first - demuxed.start
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
        # an MPEG stream states no duration: FFmpeg's is its guess from the timestamps, which says nothing of a cut
        listed_duration=0.0 if demuxed.mpeg else _listed_duration(video),
        timestamps=ts,
        audio_offset=offset,
        repaired_timestamps=repaired,
        timestamp_jumps=demuxed.jumps,
        notes=_probe_notes(listed, n_packets, pictures),
    )


def _probe_notes(listed: int, found: int, pictures: list[dict]) -> tuple[str, ...]:
    """The warnings of :attr:`Probe.notes` (``pictures``: the video streams that are no cover picture)."""
    notes = []
    if listed - found > MISSING_FRAMES_TOLERATED:
        notes.append(f"only {found} of the {listed} frames the container lists are in the file "
                     f"({listed - found} missing, fewer than makes it an error): truncated?")
    if len(pictures) > 1:
        notes.append(f"{len(pictures)} video streams: the first (stream {pictures[0].get('index', 0)}) is used")
    return tuple(notes)


def _listed_duration(video: dict) -> float:
    """The video stream's stated duration: its own field, else the MKV/WebM ``DURATION`` tag; 0 if none."""
    value = video.get("duration")
    tag = next((v for k, v in (video.get("tags") or {}).items() if k.upper() == "DURATION"), None)
    try:
        if value is None and tag:
            h, m, sec = str(tag).split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0


def truncation_warning(p: Probe) -> str:
    """A warning when the stated duration is well past the last frame.

    MKV/WebM have no frame index to count against, and a cut-off file of that
    kind still demuxes; its stated duration is the only hint left.
    """
    step = 1.0 / p.fps if p.fps > 0 and math.isfinite(p.fps) else 0.0
    gap = p.listed_duration - p.duration
    if p.listed_duration > 0 and gap > max(MISSING_FRAMES_TOLERATED * step, MISSING_FRACTION_TOLERATED * p.duration):
        return f"the video stream ends at {p.duration:.2f} s but the file says {p.listed_duration:.2f} s: truncated?"
    return ""


def audio_chunks(path: str | Path, sample_rate: int = SAMPLE_RATE,
                 chunk_s: float = AUDIO_CHUNK_S) -> Iterator[np.ndarray]:
    """The first audio stream as mono float32 at ``sample_rate``, ``chunk_s`` seconds at a time, read from
    ffmpeg as it decodes: a 2-hour recording (460 MB of samples) never sits in memory whole.

    A decoding failure raises :class:`MediaError` naming the file, after the chunks decoded before it.
    """
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", ffmpeg_url(path), "-map", "0:a:0", "-vn",
        "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]
    n_bytes = max(1, int(chunk_s * sample_rate)) * 4
    # stderr to a file: a pipe left unread fills up and stops ffmpeg when a damaged stream logs many errors
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            while buf := proc.stdout.read(n_bytes):  # blocks until n_bytes or the end
                yield np.frombuffer(buf, dtype=np.float32, count=len(buf) // 4)
        finally:
            proc.stdout.close()  # a consumer that stops early ends ffmpeg (broken pipe)
            code = proc.wait()
        if code != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace").strip().splitlines()
            why = msg[-1].replace(ffmpeg_url(path), str(path)) if msg else "ffmpeg failed"
            raise MediaError(f"{path}: cannot decode audio ({why})")


def extract_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``, whole (:func:`audio_chunks`)."""
    return _joined(list(audio_chunks(path, sample_rate)))


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


@dataclass
class MediaInfo:
    """What the media stage learns of one video besides its samples (they go to a sink as they decode)."""

    probe: Probe
    n_samples: int
    sample_rate: int
    warnings: list[str]

    def attrs(self) -> dict[str, Any]:
        """The video's attributes in the media shard."""
        meta = {k: v for k, v in asdict(self.probe).items() if k not in ("timestamps", "notes")}
        meta.update(sample_rate=self.sample_rate, warnings=self.warnings)
        return meta


@dataclass
class MediaRecord:
    """The media stage's result for one video, its audio whole (:func:`process_video`)."""

    probe: Probe
    audio: np.ndarray
    sample_rate: int
    warnings: list[str]


def on_video_clock(chunks: Iterable[np.ndarray], offset: float, sample_rate: int) -> Iterator[np.ndarray]:
    """Audio ``chunks`` (starting ``offset`` s after the first video frame) re-based so that sample 0 is that
    frame: a later start is padded with silence, an earlier one cut."""
    n = int(round(abs(offset) * sample_rate))
    if offset > 0:
        yield from silence(n, sample_rate)
        n = 0
    for chunk in chunks:
        if n >= len(chunk):
            n -= len(chunk)
            continue
        yield chunk[n:]
        n = 0


def silence(n: int, sample_rate: int, chunk_s: float = AUDIO_CHUNK_S) -> Iterator[np.ndarray]:
    """``n`` zero samples, a chunk at a time."""
    step = max(1, int(chunk_s * sample_rate))
    for start in range(0, n, step):
        yield np.zeros(min(step, n - start), dtype=np.float32)


class _Tally:
    """Samples passed on to a sink, counted, with their sum of squares (the silence check)."""

    def __init__(self, sink: Callable[[np.ndarray], None]) -> None:
        self.sink, self.n, self.sum_sq = sink, 0, 0.0

    def feed(self, chunks: Iterable[np.ndarray]) -> None:
        for chunk in chunks:
            if len(chunk):
                self.sink(chunk)
                self.n += len(chunk)
                self.sum_sq += float(np.square(chunk, dtype=np.float64).sum())

    def rms(self) -> float:
        return math.sqrt(self.sum_sq / self.n) if self.n else 0.0


def stream_video(path: str | Path, sink: Callable[[np.ndarray], None],
                 sample_rate: int = SAMPLE_RATE) -> MediaInfo:
    """Probe ``path`` and pass its audio to ``sink`` a chunk at a time, turning survivable oddities into warnings.

    Audio is put on the video's clock (sample 0 = the first video frame, see
    :func:`on_video_clock`), so every later stage shares one time axis. A video
    without an audio stream gets silence of the video's length (so the audio
    branch still has input) and a warning; silent audio and audio shorter than
    the video are kept as they are, with a warning, as is audio that runs on past
    the last frame; repeated frame timestamps are repaired
    (:func:`strictly_increasing`), with a warning giving their count.
    ``sink`` sees at least one chunk (empty for a video of no length). On a :class:`MediaError` it may
    have seen part of the audio: the caller drops what it kept.
    """
    p = probe(path)
    warnings: list[str] = []
    n_video = int(math.ceil(p.duration * sample_rate))
    tally = _Tally(sink)
    if not p.has_audio:
        warnings.append("no audio stream: silence of the video's length used")
        tally.feed(silence(n_video, sample_rate))
    else:
        tally.feed(on_video_clock(audio_chunks(path, sample_rate), p.audio_offset, sample_rate))
        if p.audio_offset >= AUDIO_OFFSET_REPORTED_S:
            warnings.append(f"audio starts {p.audio_offset:.2f} s after the first video frame: "
                            f"{p.audio_offset:.2f} s of silence put before it")
        elif p.audio_offset <= -AUDIO_OFFSET_REPORTED_S:
            warnings.append(f"audio starts {-p.audio_offset:.2f} s before the first video frame: "
                            f"its first {-p.audio_offset:.2f} s cut")
        if tally.n == 0:
            warnings.append("audio stream decodes to no samples: silence of the video's length used")
            tally.feed(silence(n_video, sample_rate))
        else:
            if tally.rms() < SILENCE_RMS:
                warnings.append("audio is silent")
            short = p.duration - tally.n / sample_rate
            if short > AUDIO_LENGTH_REPORTED_S:
                warnings.append(f"audio is {short:.2f} s shorter than the video")
            elif -short > AUDIO_LENGTH_REPORTED_S:
                warnings.append(f"audio is {-short:.2f} s longer than the video: kept whole, so audio features "
                                "and transcripts cover sound after the last frame")
    if tally.n == 0:
        sink(np.zeros(0, dtype=np.float32))
    if p.variable_frame_rate:
        warnings.append("variable frame rate: per-frame timestamps used")
    if p.repaired_timestamps:
        warnings.append(f"{p.repaired_timestamps} frame(s) with a timestamp not after the previous frame's: "
                        f"each set {REPEATED_TIME_STEP_S * 1000:g} ms after its predecessor")
    if p.timestamp_jumps:
        warnings.append(f"the video's clock restarts {p.timestamp_jumps} time(s) (recordings joined together?): "
                        "each part put one frame after the one before")
    cut = truncation_warning(p)
    if cut:
        warnings.append(cut)
    warnings += [n for n in p.notes if not (cut and n.endswith("truncated?"))]
    for w in warnings:
        log.warning("%s: %s", path, w)
    return MediaInfo(probe=p, n_samples=tally.n, sample_rate=sample_rate, warnings=warnings)


def process_video(path: str | Path, sample_rate: int = SAMPLE_RATE) -> MediaRecord:
    """:func:`stream_video` with the audio kept whole, for a caller that wants it in memory."""
    chunks: list[np.ndarray] = []
    info = stream_video(path, chunks.append, sample_rate)
    return MediaRecord(probe=info.probe, audio=_joined(chunks), sample_rate=sample_rate, warnings=info.warnings)
