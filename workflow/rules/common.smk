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
