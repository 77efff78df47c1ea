# Shared state computed once at parse time: the units table and its shards.
# Per-shard input functions look up a dict built here; they never stat files,
# so the DAG stays fast for tens of thousands of videos.
import hashlib
import json

from affectflow.datasets import build_units
from affectflow.units import UnitsError


OUT = f"{config['results_dir']}/{config['run_name']}"
try:
    UNITS = build_units(config["datasets"], n_shards=config["n_shards"], base_dir=".")
except (UnitsError, ValueError, OSError) as e:
    raise WorkflowError(f"cannot build the units table: {e}") from None
SHARDS = UNITS.shards()
BY_SHARD = UNITS.by_shard()
DETECTOR = config["faces"]["detector"]

if not SHARDS:
    raise WorkflowError("the datasets in config.yaml contain no videos")


wildcard_constraints:
    shard=r"s\d{4}",
    detector=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9_]+",
    asr=r"[A-Za-z0-9_]+",

# Feature rules ask for a GPU only when the config says so (a cluster with GPUs);
# the code picks CUDA by itself whenever torch/onnxruntime see one.
GPU = 1 if config["features"]["gpu"] else 0


def shard_videos(wildcards):
    """Video files of one shard: touching one reruns only its shard."""
    return [u.path for u in BY_SHARD[wildcards.shard]]


def shard_units(wildcards):
    """Units of one shard as plain dicts (a rule param: adding a video changes it)."""
    return [vars(u) for u in BY_SHARD[wildcards.shard]]


def units_digest():
    blob = json.dumps([vars(u) for u in UNITS], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


rule units:
    output:
        f"{OUT}/units.tsv",
    params:
        digest=units_digest(),
        datasets=config["datasets"],
        n_shards=config["n_shards"],
    log:
        f"{OUT}/logs/units.log",
    localrule: True
    script:
        "../scripts/units.py"


def model_fingerprint(name):
    """What identifies a model's weights without reading them: the registry's
    file names and hashes (or the user's pins), and whether it is a stand-in.
    A rule param: changing the weights or version of one model reruns its jobs."""
    from affectflow.models.registry import get

    pins = config["model_pins"]
    files = [
        [wf.name, pins.get(wf.name, wf.sha256 or getattr(wf, "git_sha1", ""))]
        for wf in get(name).files
    ]
    return {"files": files, "standin": name in config["features"]["standins"]}


def feature_cfg(wildcards):
    """The feature settings that change outputs (not batch size or device)."""
    f = config["features"]
    return {"face_engine": f["face_engine"]}
