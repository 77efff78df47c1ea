"""Every per-shard stage as a real Snakemake job: its fixed start, and its rate in what ``affectflow plan``
counts.

Why: the plan charges each stage its work over a recorded rate, but a job also
pays a start (Python, Snakemake's script wrapper, the imports, loading and
verifying the model), and four stages (media, contact_sheets, text_features,
frame_predictions) had no rate at all. Here a scratch copy of the workflow runs
a table dataset of two shards: one holds a single 1-second clip, the other
``K`` copies (hard links under other ids) of a demo clip with a face. Each
job is one ``snakemake --cores 2 <its output>`` (its upstream jobs already
done, so it runs alone); its seconds are that command's wall time less the
same command once the output exists (Snakemake's own start and DAG, which a
cluster job's submission pays elsewhere). With the work of each shard (frames,
crops, videos, audio seconds, Whisper windows) the two jobs give

    start = t_small - w_small * per_unit,   per_unit = (t_large - t_small) / (w_large - w_small)

The stages run on the CPU with the project's config.yaml (its models, its
stand-ins, the rules' threads), no labels (so frame_predictions writes the
face models' columns only, no task heads).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.common import Figure, Options, Skip, demo_videos, median, timed

#: the per-shard rules, in the workflow's order, and the unit of work ``affectflow plan`` charges each by. media
#: by videos: a job's time grows with its files (probing, an FFmpeg process for each one's audio), hardly with
#: their frames (it reads packet times, it decodes no picture); text_features by videos too: it reads each
#: video's transcript and embeds its few segments (MiniLM runs hundreds a second: ``text_embedding``)
WORK_UNITS = {"media": "videos", "faces": "frames", "contact_sheets": "videos", "face_features": "crops",
              "audio_features": "audio_s", "transcripts": "windows", "text_features": "videos",
              "frame_predictions": "frames"}
#: the clip copied into the large shard (a face in every frame) and the small shard's 1-second cut of it
CLIP = "calming_01"
SMALL_S = 1.0
N_SHARDS = 2


def ids_for(shard: str, n: int, prefix: str) -> list[str]:
    """``n`` video ids that :func:`~affectflow.data.units.shard_of` puts in ``shard`` of :data:`N_SHARDS`."""
    from affectflow.data.units import shard_of

    out, i = [], 0
    while len(out) < n:
        vid = f"{prefix}_{i:03d}"
        if shard_of(vid, N_SHARDS) == shard:
            out.append(vid)
        i += 1
    return out


def prepare(workdir: Path, clip: Path, copies: int) -> tuple[Any, dict[str, list[Path]]]:
    """The workflow's scratch copy in ``workdir`` with a table dataset: shard s0000 a 1-second cut of ``clip``,
    s0001 ``copies`` hard links of it; the config is the project's with that dataset and 2 shards."""
    from affectflow.data.units import Unit, UnitsTable
    from affectflow.testing.snakerun import make_bare_workdir

    wd = make_bare_workdir(workdir)
    videos = workdir / "videos"
    videos.mkdir(exist_ok=True)
    small = videos / f"small{clip.suffix}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clip), "-t", str(SMALL_S),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-c:a", "aac", str(small)],
                   check=True, timeout=300)
    shards: dict[str, list[Path]] = {"s0000": [], "s0001": []}
    units = []
    for shard, n, src in (("s0000", 1, small), ("s0001", copies, clip)):
        for vid in ids_for(shard, n, f"job_{shard}"):
            dest = videos / f"{vid}{clip.suffix}"
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy2(src, dest)
            shards[shard].append(dest)
            units.append(Unit(vid, str(dest.relative_to(workdir)), "test", shard))
    UnitsTable(units).write_tsv(workdir / "units_table.tsv")
    cfg = wd.config()
    cfg.update(run_name="jobs", n_shards=N_SHARDS, datasets=[{"adapter": "table", "table": "units_table.tsv"}])
    cfg.pop("bundle", None)
    wd.write_config(cfg)
    return wd, shards


def job_seconds(wd: Any, output: str) -> float:
    """The job of ``output`` (relative to the workdir) run alone (``snakemake --cores 2 <output>``), less the same
    command once nothing is left to do."""
    t_run, _ = timed(lambda: wd.run(output, timeout=1800))
    t_noop, proc = timed(lambda: wd.run(output, timeout=600))
    if "Nothing to be done" not in proc.stdout + proc.stderr:
        raise RuntimeError(f"{output}: a second run still had jobs to do:\n{proc.stderr[-2000:]}")
    return max(0.0, t_run - t_noop)


def shard_work(results: Path, cfg: dict[str, Any], shard: str, videos: list[Path]) -> dict[str, float]:
    """What ``affectflow plan`` counts for one shard: probed frames and audio, videos, Whisper windows, and the
    crops the faces stage kept (the face models' work)."""
    import numpy as np

    from affectflow.io.store import ShardReader
    from affectflow.media.decode import probe
    from affectflow.plan.rates import whisper_windows

    probes = [probe(v) for v in videos]
    with ShardReader(results / "faces" / cfg["faces"]["detector"] / f"{shard}.h5") as r:
        crops = sum(int(np.count_nonzero(rec.arrays["has_face"])) for rec in r)
    audio = [float(p.audio_duration) if p.has_audio else 0.0 for p in probes]
    return {"frames": float(sum(int(p.n_frames) for p in probes)), "videos": float(len(videos)),
            "crops": float(crops), "audio_s": sum(audio), "windows": float(sum(whisper_windows(a) for a in audio))}


def fit(small: float, large: float, w_small: float, w_large: float) -> tuple[float, float | None]:
    """(start seconds, seconds per unit of work) from a small and a large job: the line through the two, with
    the start never below 0 (noise can tilt it) and no per-unit cost where the work did not grow."""
    if w_large <= w_small:
        return small, None
    per_unit = max(0.0, (large - small) / (w_large - w_small))
    return max(0.0, small - w_small * per_unit), per_unit


def measure(opts: Options, copies: int) -> dict[str, Any]:
    """Time every per-shard job of both shards (``opts.reps`` times, the outputs removed between) and fit each
    rule's (and model's) start and rate."""
    if shutil.which("ffmpeg") is None:
        raise Skip("ffmpeg is not installed")
    clip = next((v for v in demo_videos() if v.stem == CLIP), None)
    if clip is None:
        raise Skip(f"no demo clip {CLIP}")
    from affectflow.plan.shard_outputs import shard_outputs
    from affectflow.stages.faces import DETECTOR_MODELS, FETCHED_DETECTORS

    wd, shards = prepare(opts.workdir / "stage_jobs", clip, copies)
    cfg = wd.config()
    results = wd.results()
    det, feats = cfg["faces"]["detector"], cfg["features"]
    fetched = [DETECTOR_MODELS[det]] if det in FETCHED_DETECTORS else []
    fetched += [*feats["face"], *feats["audio"], *feats["asr"], *feats["text"]]
    # the weights fetched and verified first, untimed: each model's job needs its manifest
    wd.run(*(os.path.relpath(results / "models" / f"{m}.json", wd.path) for m in fetched), timeout=1800)
    times: dict[str, dict[str, list[float]]] = {s: {} for s in shards}
    for rep in range(opts.reps):
        for shard in shards:
            for job in shard_outputs(results, cfg, shard):  # every per-shard job, in the workflow's order
                if rep:  # again: the output removed, so the job (and nothing downstream of it yet) runs
                    shutil.rmtree(job.path) if job.path.is_dir() else job.path.unlink()
                key = f"{job.stage}/{job.label}" if job.label else job.stage
                times[shard].setdefault(key, []).append(job_seconds(wd, os.path.relpath(job.path, wd.path)))
    work = {s: shard_work(results, cfg, s, videos) for s, videos in shards.items()}
    fits = {}
    for key in times["s0000"]:
        unit = WORK_UNITS[key.split("/")[0]]
        t_small, t_large = median(times["s0000"][key]), median(times["s0001"][key])
        start, per_unit = fit(t_small, t_large, work["s0000"][unit], work["s0001"][unit])
        fits[key] = {"unit": unit, "start_s": start, "per_unit_s": per_unit,
                     "rate": None if not per_unit else 1.0 / per_unit,
                     "small_job_s": t_small, "large_job_s": t_large}
    return {"fits": fits, "work": work, "all_runs_s": times, "copies": copies, "clip": clip.name}


def run(opts: Options) -> list[Figure]:
    copies = 4 if opts.quick else 16
    fig = Figure("stage_job_start", "per-shard jobs as Snakemake runs them: a shard's fixed starts vs its jobs",
                 unit="s", baseline_label=f"every per-shard job of a shard of {copies} copies of {CLIP}")
    try:
        m = measure(opts, copies)
    except Skip as e:
        fig.status, fig.note = "skipped", str(e)
        return [fig]
    fits = m["fits"]
    fig.value = sum(f["start_s"] for f in fits.values())
    fig.baseline = sum(f["large_job_s"] for f in fits.values())
    fig.ratio = fig.value / fig.baseline
    big = m["work"]["s0001"]
    fig.note = (f"{len(fits)} jobs a shard; their starts add up to {fig.value:.1f} s, {fig.ratio:.0%} of the jobs of "
                f"a shard of {copies} copies of {CLIP} ({big['frames']:.0f} frames, {big['audio_s']:.0f} audio s); "
                "start by job: " + ", ".join(f"{k} {f['start_s']:.1f} s" for k, f in fits.items()) +
                f"; median of {opts.reps}, each job run alone by snakemake --cores 2, its own start and DAG "
                "left out")
    fig.details = {
        "start_s": {k: f["start_s"] for k, f in fits.items()},
        "rate": {k: f["rate"] for k, f in fits.items()},
        "rate_unit": {k: f"{f['unit']}/s" for k, f in fits.items()},
        "fits": fits, "work": m["work"], "all_runs_s": m["all_runs_s"], "copies": copies, "clip": m["clip"],
        "small_clip_s": SMALL_S,
    }
    if any(f["rate"] is None for f in fits.values()):
        fig.note += "; a job whose time did not grow with its work has no rate"
    return [fig]
