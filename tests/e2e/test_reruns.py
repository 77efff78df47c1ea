"""Exact reruns on the real demo run: a job reruns when, and only when, something that changes its output changed.

Each change is compared with the plan Snakemake makes for ``--forcerun <the stage's rules>`` on the unchanged
config: exactly that stage's jobs and everything downstream of them, as Snakemake's own DAG says.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import shutil

import h5py
import pytest

from affectflow.cli import main
from affectflow.plan.rerun import WORKFLOW_RUNTIME
from affectflow.stages.catalogue import MODULES, STAGES
from affectflow.testing.snakerun import ConfigChange, parse_plan

pytestmark = pytest.mark.slow


_FORCED: dict[tuple, frozenset] = {}


def forced(done, *rules: str) -> set[tuple[str, str]]:
    """The jobs of ``rules`` (or of output files: a path) and all their dependants (unchanged config), as
    Snakemake plans them."""
    key = (str(done.path), tuple(sorted(rules)))
    if key not in _FORCED:
        _FORCED[key] = frozenset(done.planned_jobs("--forcerun", *key[1]))
    plan = set(_FORCED[key])
    assert {r for r, _ in plan} >= {r for r in rules if "/" not in r}
    assert {o for _, o in plan} >= {r for r in rules if "/" in r}
    return plan


def _reverse(d):
    return {k: _reverse(v) for k, v in reversed(list(d.items()))} if isinstance(d, dict) else d


def test_reordered_config_reruns_nothing(done):
    """Every mapping of config.yaml in reverse key order (as a YAML tool may write it back)."""
    original = done.config_path.read_text()
    try:
        before = list(done.config())
        done.write_config(_reverse(done.config()))
        assert list(done.config()) == before[::-1]
        assert done.planned_jobs() == set()
    finally:
        done.config_path.write_text(original)


def test_newer_script_files_rerun_nothing(done):
    """A fresh clone or a ``git pull`` gives every ``workflow/scripts`` file a new time; the stages' code
    versions in the rerun keys say whether outputs change, so the profiles leave Snakemake's ``code``
    trigger out."""
    scripts = sorted((done.path / "workflow" / "scripts").glob("*.py"))
    times = {p: p.stat().st_mtime_ns for p in scripts}
    try:
        for p in scripts:
            os.utime(p)
        assert done.planned_jobs() == set()
    finally:
        for p, t in times.items():
            os.utime(p, ns=(t, t))


def test_outputs_made_under_other_keys_are_named_where_snakemake_has_no_records(done, capsys):
    """Snakemake's records live in the working directory's .snakemake/: a fresh checkout pointed at the results
    plans nothing for an option changed since. The shard files carry their keys: `affectflow reruns CONFIG`
    compares them on demand, and the workflow names them at its start where Snakemake has no records."""
    args = ["reruns", str(done.config_path), "--workflow", str(done.path)]
    assert main(args) == 0
    assert "every one was made under the key this config plans" in capsys.readouterr().out
    meta = done.path / ".snakemake" / "metadata"
    aside = done.path / ".snakemake" / "metadata.aside"
    original = done.config_path.read_text()
    try:
        cfg = done.config()
        cfg["faces"]["min_score"] = 0.6
        done.write_config(cfg)
        assert main(args) == 1
        out = capsys.readouterr().out
        assert "faces: " in out and "options.min_score: 0.5 -> 0.6" in out and "--forcerun faces" in out
        assert "\nface_features: " not in out  # their keys do not hold the detector's options
        meta.rename(aside)
        proc = done.run("--dry-run")
        assert parse_plan(proc.stdout) == set()  # Snakemake alone sees nothing to do ...
        log = proc.stdout + proc.stderr
        assert "options.min_score: 0.5 -> 0.6" in log and "--forcerun faces" in log  # ... and is told
    finally:
        done.config_path.write_text(original)
        if aside.exists():
            shutil.rmtree(meta, ignore_errors=True)
            aside.rename(meta)
    assert done.planned_jobs() == set()


def test_a_dataset_folder_written_another_way_reruns_nothing(done):
    """``./videos``, ``videos/`` and the absolute path name the same files: one spelling in the units table."""
    def edit(cfg):
        for i, entry in enumerate(cfg["datasets"]):
            for k in ("videos", "labels", "test_list"):
                if entry.get(k):
                    entry[k] = str(done.path / entry[k]) if i % 2 else f"./{entry[k]}"
    with ConfigChange(done, edit) as jobs:
        assert jobs == set()


def test_a_touched_video_of_any_size_reruns_nothing(done):
    """The profiles keep the sha256 of inputs past Snakemake's default 1 MB, so a real video's touch is seen as
    what it is."""
    videos = sorted((done.path / "data" / "demo" / "videos").iterdir(), key=lambda p: p.stat().st_size)
    assert videos[-1].stat().st_size > 1_000_000
    os.utime(videos[-1])
    assert done.planned_jobs() == set()


def test_a_video_replaced_by_an_older_file_reruns_its_shard(done):
    """``cp -p`` or ``rsync -a`` of a re-released video leaves it older than its results, where Snakemake alone
    never looks: its media shard is put before it in time (plan.replaced), so Snakemake compares the checksum it
    kept, and reruns that shard's jobs."""
    from affectflow.io.store import ShardReader

    videos = sorted((done.path / "data" / "demo" / "videos").iterdir(), key=lambda p: p.stat().st_size)
    victim, other = videos[-1], videos[0]
    shards = {}
    for shard in sorted((done.results() / "media").glob("*.h5")):
        with ShardReader(shard) as r:
            shards.update(dict.fromkeys(r.sources(), shard))
    shard = shards[victim.stem]
    aside = done.path / "video.aside"
    shutil.copy2(victim, aside)
    made = shard.stat()
    when = made.st_mtime_ns - 3600 * 10**9  # an hour before its results, as the release was unpacked
    try:
        shutil.copyfile(other, victim)
        os.utime(victim, ns=(when, when))
        jobs = done.planned_jobs()
        media = {out for rule, out in jobs if rule == "media"}
        assert media == {str(shard.relative_to(done.path))}, jobs
        assert {"faces", "face_features", "learn"} <= {rule for rule, _ in jobs}
    finally:  # the run as it was, for the tests after this one
        shutil.copy2(aside, victim)
        aside.unlink()
        os.utime(shard, ns=(made.st_atime_ns, made.st_mtime_ns))
    assert done.planned_jobs() == set()


def test_a_dataset_moved_with_a_link_left_at_its_old_path_reruns_nothing(done):
    """A video's path is part of what identifies it, so a moved dataset folder would rerun its videos; a link
    at the old path keeps every path (links are not resolved in the units table) and every file's bytes."""
    videos = done.path / "data" / "demo" / "videos"
    moved = done.path / "moved_videos"
    videos.rename(moved)
    try:
        videos.symlink_to(moved, target_is_directory=True)
        assert done.planned_jobs() == set()
    finally:
        if videos.is_symlink():
            videos.unlink()
        moved.rename(videos)
    assert done.planned_jobs() == set()


#: the per-video jobs: decoding, faces and every feature (a day of CPU on Aff-Wild2)
EXTRACTION = {"media", "faces", "contact_sheets", "face_features", "audio_features", "transcripts", "text_features"}


def test_a_label_file_removed_or_changed_reruns_no_extraction(done):
    """Labels feed learning only: a video that loses its label file keeps its shards."""
    labels = done.path / "data" / "demo" / "labels" / "EXPR" / "Train_Set"
    victim = sorted(labels.glob("*.txt"))[0]
    aside = done.path / "label.aside"
    shutil.move(victim, aside)
    try:
        rules = {r for r, _ in done.planned_jobs()}
        assert "learn" in rules and not rules & EXTRACTION, rules
    finally:
        shutil.move(aside, victim)
    assert done.planned_jobs() == set()


# one value per runtime field; a new runtime field without an entry here fails the test below
RUNTIME_VALUES = {
    "batch_size": 3, "device": "cpu", "contact_sheets": False, "crop_compression": "none", "cpu_threads": 1,
    "ca_bundle": "/etc/ssl/certs/ca-certificates.crt", "max_retries": 1, "backoff_s": 0.5, "timeout_s": 9.0,
    "detector_engine": "torch", "decode": "process",
}


def test_every_runtime_setting_changed_at_once_reruns_nothing(done):
    covered = []

    def edit(cfg):
        cfg["models_dir"] = str(done.path / "elsewhere")
        cfg["features"]["gpu"] = True
        for stage in STAGES.values():
            cls = stage.options
            for name in cls.runtime_fields():
                if name not in cls.config_fields():
                    continue
                section, _, key = cls.config_key(name).partition(".")
                cfg.setdefault(section, {})[key] = RUNTIME_VALUES[name]
                covered.append(cls.config_key(name))

    with ConfigChange(done, edit) as jobs:
        assert jobs == set()
    assert {"faces.batch_size", "features.batch_size", "features.device", "text.timeout_s"} <= set(covered)
    assert set(WORKFLOW_RUNTIME) == {"models_dir", "features.gpu"}


def test_contact_sheets_toggle_touches_only_the_sheet_jobs(done):
    with ConfigChange(done, lambda cfg: cfg["faces"].update(contact_sheets=False)) as jobs:
        assert jobs == set()
    sheets = done.results() / "faces" / done.config()["faces"]["detector"] / "sheets"
    aside = done.path / "sheets.aside"
    shutil.move(sheets, aside)
    try:
        jobs = done.planned_jobs()
        assert jobs and {r for r, _ in jobs} == {"contact_sheets"}
        assert jobs == {(r, o) for r, o in forced(done, "contact_sheets")}
    finally:
        shutil.move(aside, sheets)
    assert done.planned_jobs() == set()


# one output-affecting option per stage (models: test_workflow's pin test; units: a video added there)
OUTPUT_CHANGES = {
    "media": (lambda cfg: cfg.update(on_bad_video="fail"), ("media",)),
    "faces": (lambda cfg: cfg["faces"].update(min_score=0.6), ("faces",)),
    # fp16 is EfficientNet-B0's (fer_minixception runs in float32 always: docs/reruns.md)
    "face_features": (lambda cfg: cfg["features"].update(precision="fp16"),
                      tuple(f"results/demo/features/face/enet_b0_8_best_vgaf/s000{i}.h5" for i in range(4))),
    "audio_features": (lambda cfg: cfg["audio"].update(hop_s=0.25), ("audio_features",)),
    "transcripts": (lambda cfg: cfg["asr"].update(beam_size=2), ("transcripts",)),
    "text_features": (lambda cfg: cfg["text"].update(prefix="query: "), ("text_features",)),
    "predictions": (lambda cfg: cfg["learn"]["common"].update(standardize=False), ("learn",)),
    # smoothing is per frame: the fusions of EXPR and AH, not of the per-video tasks
    "fused": (lambda cfg: cfg["fusions"]["fer_text"].update(smoothing="median"),
              ("results/demo/fusion/expr/fer_text", "results/demo/fusion/ah/fer_text")),
    "problems": (lambda cfg: cfg.setdefault("problems", {}).update(face_missing_share=0.1), ("problems",)),
    "index_page": (lambda cfg: cfg.setdefault("report", {}).update(max_videos=3), ("index_page",)),
}


@pytest.mark.parametrize("stage", sorted(OUTPUT_CHANGES))
def test_an_output_option_reruns_its_stage_and_exactly_its_dependants(done, stage):
    edit, rules = OUTPUT_CHANGES[stage]
    with ConfigChange(done, edit) as jobs:
        assert jobs == forced(done, *rules)


def test_one_task_learn_option_reruns_that_tasks_heads_only(done):
    with ConfigChange(done, lambda cfg: cfg["learn"]["emi"].update(standardize=False)) as jobs:
        learns = {o for r, o in jobs if r == "learn"}
        assert learns == {f"results/demo/models/emi/{fs}/metrics.json" for fs in done.config()["feature_sets"]}
        assert {r for r, _ in jobs} == {"learn", "fuse", "submit_emi", "report_tables", "bundle", "frame_predictions",
                                        "predictions", "index_page"}
    # an option EMI cannot use (the AH video classifier's) reruns nothing (docs/reruns.md, unused options)
    with ConfigChange(done, lambda cfg: cfg["learn"]["emi"].update(ah_video_C=2.0)) as jobs:
        assert jobs == set()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_version_bump_reruns_that_stage_and_its_dependants(done, tmp_path, stage):
    """An upgraded affectflow whose stage computes differently: its outputs are stale, and only they."""
    spec = STAGES[stage]
    module = next(m.__name__ for m in MODULES if m.STAGE is spec)
    (tmp_path / "sitecustomize.py").write_text(
        f"import dataclasses, {module} as m\nm.STAGE = dataclasses.replace(m.STAGE, version={spec.version + 1})\n")
    jobs = done.planned_jobs(env={"PYTHONPATH": str(tmp_path)})
    assert jobs == forced(done, *spec.rules)
    assert done.planned_jobs() == set()  # the real version again: nothing
    # the rerun table names every rule Snakemake's DAG reruns after the stage (it may name more: "of sets with
    # an audio model" is none of the demo's submitted fusion)
    after = {r for r, _ in jobs} - set(spec.rules)
    assert spec.downstream == "every later stage" or after <= _named_rules(spec.downstream), (stage, after)


def _named_rules(text: str) -> set[str]:
    """The rules a stage's ``downstream`` text names (``submit_<task>``: each task's)."""
    import re

    rules = {r for s in STAGES.values() for r in s.rules}
    named = {r for r in rules if re.search(rf"(?<![\w<]){r}(?![\w>])", text)}
    return named | ({r for r in rules if r.startswith("submit_")} if "submit_<task>" in text else set())


def _metadata(done, output: str) -> dict:
    name = base64.b64encode(output.encode()).decode()
    return json.loads((done.path / ".snakemake" / "metadata" / name).read_text())


def _key_param(record: dict) -> str:
    """The rerun key among a job's recorded params (they are stored as reprs)."""
    values = [ast.literal_eval(p) for p in record["params"]]
    keys = [v for v in values if isinstance(v, str) and v.startswith("{") and '"stage"' in v]
    assert len(keys) == 1, record["params"]
    return keys[0]


def test_each_output_carries_the_key_its_job_was_planned_with(done):
    res = done.results()
    outputs = {
        "media": "results/demo/media/s0000.h5",
        "faces": f"results/demo/faces/{done.config()['faces']['detector']}/s0000.h5",
        "face_features": "results/demo/features/face/fer_minixception/s0000.h5",
        "audio_features": "results/demo/features/audio/wav2vec2_base_960h/s0000.h5",
        "transcripts": "results/demo/transcripts/faster_whisper_tiny_en/s0000.h5",
        "text_features": "results/demo/features/text/faster_whisper_tiny_en/all_minilm_l6_v2/s0000.h5",
        "learn": "results/demo/models/expr/fer/predictions.h5",
    }
    shards = sorted(p.stem for p in (res / "media").glob("*.h5"))
    for stage, out in outputs.items():
        out = out.replace("s0000", shards[0])
        key = _key_param(_metadata(done, out))
        assert json.loads(key)["version"] == STAGES[stage].version and json.loads(key)["stage"] == stage
        with h5py.File(done.path / out, "r") as f:
            assert f.attrs["rerun_key"] == key and int(f.attrs["stage_version"]) == STAGES[stage].version, out
    fused = "results/demo/fusion/expr/fer_text"
    with h5py.File(done.path / fused / "test_predictions.h5", "r") as f:
        assert f.attrs["rerun_key"] == _key_param(_metadata(done, fused))
    manifest = "results/demo/models/fer_minixception.json"
    assert json.loads((done.path / manifest).read_text())["rerun_key"] == _key_param(_metadata(done, manifest))
    # the rules that write no provenance still rerun by their key, which names their stage and version
    for stage, out in {"units": "results/demo/units.tsv", "problems": "results/demo/problems.tsv",
                       "report_tables": "results/demo/metrics.csv"}.items():
        key = json.loads(_key_param(_metadata(done, out)))
        assert (key["stage"], key["version"]) == (stage, STAGES[stage].version)
