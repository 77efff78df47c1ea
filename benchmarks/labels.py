"""Reading a release's label files at dataset scale: BAH's ``annotation.yml`` when the workflow is parsed.

The units table is built every time Snakemake parses the workflow (on a cluster,
for every job too), and ABAW-8's ``annotation.yml`` holds a pair per frame of
every video. The figure compares what building the units reads of it, the keys
line by line (:func:`affectflow.data.adapters.bah_annotation.annotation_keys`),
with a whole parse by libyaml (:func:`~affectflow.data.adapters.bah_annotation.read_annotations`,
what the jobs that read labels pay once). The file is synthetic, in the
release's form: a PyYAML block dump, keys ``<pid>/Visite 1/<name>.mp4``.
"""

from __future__ import annotations

import yaml

from benchmarks.common import Figure, Options, interleaved, median

#: ABAW-8's train split: about 700 videos of about 900 frames (30 s at 30 frames/s)
FULL = (700, 900)
QUICK = (70, 900)


def write_annotations(path, n_videos: int, n_frames: int) -> int:
    """A synthetic ``annotation.yml`` of ``n_videos`` x ``n_frames`` pairs; returns its size in bytes."""
    recs = {}
    for v in range(n_videos):
        key = f"8{v:04d}/Visite 1/8{v:04d}_Question_{v % 7 + 1}_2024-08-22 14-46-11_Video.mp4"
        recs[key] = {"fr_detailed_ah": [[1, 30]], "global_ah": 1,
                     "frame_annotation": [[f"{key}/frame-{k}.jpg", int(k % 50 < 20)] for k in range(n_frames)],
                     "time_detailed_ah": [["00:00:00.033", "00:00:01.000"]]}
    text = yaml.dump(recs, Dumper=getattr(yaml, "CDumper", yaml.Dumper))
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def run(opts: Options) -> list[Figure]:
    from affectflow.data.adapters.bah_annotation import _parse, annotation_keys, read_annotations

    n_videos, n_frames = QUICK if opts.quick else FULL
    path = opts.workdir / "annotation.yml"
    size = write_annotations(path, n_videos, n_frames)

    def whole() -> None:
        _parse.cache_clear()  # a fresh job: nothing cached
        read_annotations(path)

    times = interleaved({"keys": lambda: annotation_keys(path), "whole": whole}, max(1, opts.reps))
    keys, full = median(times["keys"]), median(times["whole"])
    return [Figure(
        "labels_annotation_keys", f"BAH annotation.yml ({n_videos} videos x {n_frames} frames): units read keys",
        value=keys, unit="s", baseline=full, baseline_label="whole parse (libyaml)", ratio=keys / full,
        target="< 1 s for ABAW-8's train split (the units table is built at every workflow parse)",
        target_met=keys < 1.0 if not opts.quick else None,
        note="keys line by line vs a whole safe parse with libyaml, the same file, interleaved runs",
        details={"bytes": size, "videos": n_videos, "frames_per_video": n_frames, "times": times,
                 "libyaml": hasattr(yaml, "CSafeLoader")})]
