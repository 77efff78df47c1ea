# Shared state computed once at parse time: the units table, its shards and
# every job's rerun key. Per-shard input functions look up dicts built here;
# they never stat files, so the DAG stays fast for tens of thousands of videos.
#
# Rerun keys (affectflow.plan.rerun, docs/reruns.md): each rule's `key` parameter is
# what Snakemake's params trigger compares (the `units` and `skipped` params some rules
# also pass are covered by the key's digest; a new param must be too). It holds the stage's output-affecting
# options in canonical form, its code version, its models' fingerprints and
# (for the stages that read videos) a digest of the shard's units. Settings
# that do not change outputs are not in it: jobs read them from the config
# through their stage's options class (`<Options>.from_config(snakemake.config)`).
import os
from pathlib import Path

from snakemake.logging import logger

from affectflow.data.adapters import build_units
from affectflow.stages.faces import FacesOptions
from affectflow.stages.report_tables import metrics_files
from affectflow.plan.rerun import WorkflowKeys
from affectflow.stages.catalogue import STAGES
from affectflow.submit.formats import SUBMISSION_FILES
from affectflow.data.units import UnitsError
from affectflow.plan.checks import ConfigError
from affectflow.plan.config import settle_config
from affectflow.plan.job_resources import RUNTIME_MIN, learn_mem_mb, per_attempt
from affectflow.plan.recorded import unrecorded_start_warning
from affectflow.plan.replaced import backdate_replaced
from affectflow.plan.scope import PredictionScope, run_notes, run_tasks


# The config validated against workflow/schemas/config.schema.yaml (one line naming a bad key, not the schema
# and config dumped), an applied bundle's models and feature settings merged in, the keys checked together;
# `affectflow plan` settles a config the same way.
try:
    BUNDLE, _notes = settle_config(config, STAGES)
except ConfigError as e:
    raise WorkflowError(str(e)) from None
for _line in _notes:
    logger.info(_line)
OUT = f"{config['results_dir']}/{config['run_name']}"
try:
    UNITS = build_units(config["datasets"], n_shards=config["n_shards"], base_dir=".")
except (UnitsError, ValueError, OSError) as e:
    raise WorkflowError(f"cannot build the units table: {e}") from None
if UNITS.skipped:
    logger.info(f"{len(UNITS.skipped)} file(s) of the videos folders left out, not videos (listed in problems.tsv)")
# Tasks without labelled train and val videos in this run are not trained (one line each, not a failed job);
# trained tasks whose datasets name no test video (no test list given) have no submission, one line each;
# both said before a check of the tasks' settings (faces.people, the templates) can stop the run.
# `affectflow plan` decides with the same function (plan.scope.run_tasks).
def _say_tasks(tasks):
    for line in tasks.skipped.values():
        logger.warning(line)
    for line in tasks.no_tests.values():
        logger.info(line)
    notes = run_notes({**config, "tasks": tasks.active}, tasks.active, tasks.submitting)
    for line in notes if workflow.is_main_process else []:
        logger.warning(line)


try:
    _tasks = run_tasks(config, UNITS, BUNDLE, before_checks=_say_tasks)
except ConfigError as e:
    raise WorkflowError(str(e)) from None
ACTIVE_TASKS, SUBMIT_TASKS = _tasks.active, _tasks.submitting
config["tasks"] = ACTIVE_TASKS
SHARDS = UNITS.shards()
BY_SHARD = UNITS.by_shard()
# A video replaced by an older file (cp -p, rsync -a) is older than its results, so Snakemake would not look at
# it: its media shard is put before it in time, and Snakemake compares the checksum it kept (plan.replaced).
# Once, in the Snakemake that plans the run (a cluster job's own Snakemake plans nothing).
if workflow.is_main_process:
    for _replaced in backdate_replaced(BY_SHARD, lambda shard: f"{OUT}/media/{shard}.h5",
                                       seen=f"{OUT}/media/.unchanged.json"):
        (logger.warning if _replaced.error else logger.info)(_replaced.message())
DETECTOR = config["faces"]["detector"]
# The detector's weights manifest (rule fetch_model), for detectors whose weights are downloaded or stood in for.
_FETCHED_DETECTOR = FacesOptions.from_config(config).fetched_model()
DETECTOR_MANIFEST = [f"{OUT}/models/{_FETCHED_DETECTOR}.json"] if _FETCHED_DETECTOR else []
KEYS = WorkflowKeys(config, UNITS, STAGES)
# Snakemake's records of earlier jobs live in the working directory: a fresh checkout (or a removed .snakemake/)
# pointed at earlier results has none, and Snakemake would plan nothing for an option changed since. The shard
# files record their keys; those made under another key are named once, at the start (affectflow.plan.recorded).
if workflow.is_main_process and not os.path.isdir(os.path.join(".snakemake", "metadata")):
    for _line in unrecorded_start_warning(Path(OUT), config, KEYS, SHARDS):
        logger.warning(_line)

if not SHARDS:
    raise WorkflowError("the datasets in config.yaml contain no videos")


# Feature rules ask for a GPU only when the config says so (a cluster with GPUs);
# the code picks CUDA by itself whenever torch/onnxruntime see one.
GPU = 1 if config["features"]["gpu"] else 0


def shard_videos(wildcards):
    """Video files of one shard: touching one reruns only its shard."""
    return [u.path for u in BY_SHARD[wildcards.shard]]


def shard_units(wildcards):
    """The shard's videos, the work list of its job: their video fields only, so that a label file or
    split changed reruns no per-video job (the key's units digest already covers them)."""
    return [u.video() for u in BY_SHARD[wildcards.shard]]


# --- used by faces.smk


def sheets_targets():
    if not config["faces"]["contact_sheets"]:
        return []
    return expand(f"{OUT}/faces/{DETECTOR}/sheets/{{shard}}", shard=SHARDS)


# --- used by fuse.smk


def fusion_sets(fusion):
    return config["fusions"][fusion]["feature_sets"]


def pretrained_shards():
    if not config["pretrained"]:
        return []
    return expand(f"{OUT}/features/face/{config['pretrained']}/{{shard}}.h5", shard=SHARDS)


# --- used by learn.smk


def label_shard(label, shard):
    """The feature shard of a modality label (face/<m>, audio/<m>, text/<asr>/<m>)."""
    kind, _, rest = label.partition("/")
    return f"{OUT}/features/{kind}/{rest}/{shard}.h5"


def modality_shards(label):
    """Feature shard paths of one modality label, for every shard."""
    return [label_shard(label, s) for s in SHARDS]


def feature_set_inputs(wildcards):
    """One named input per modality of the feature set, in its order (f0, f1, ...)."""
    labels = config["feature_sets"][wildcards.feature_set]
    return {f"f{i}": modality_shards(label) for i, label in enumerate(labels)}


def learn_mem(wildcards, input, attempt):
    """learn's memory from its feature shards, the rule's first inputs (its media shards hold the audio, which
    it never stacks); Snakemake sizes the files once they exist."""
    n = sum(len(files) for files in feature_set_inputs(wildcards).values())
    return learn_mem_mb(sum(input.size_files_mb[:n]), attempt)


# --- used by report.smk

def submission_path(task):
    return f"{OUT}/submissions/{task}/{SUBMISSION_FILES[task]}"


def submission_template(task):
    """The organisers' example file of the task's test set, when the config names one (an input: a new
    template reruns the submission)."""
    return (config.get("submission_template") or {}).get(task) or []


METRICS = metrics_files(config)


# --- used by predict.smk: the bundle whose tasks give the per-frame predictions their task columns
SCOPE = PredictionScope.of(config, BUNDLE)
OWN = PredictionScope.own_bundle(config)  # the bundle this run writes (when it trains a task)
