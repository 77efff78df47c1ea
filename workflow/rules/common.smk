# Shared state computed once at parse time: the units table and its shards.
# Per-shard input functions look up a dict built here; they never stat files,
# so the DAG stays fast for tens of thousands of videos.
import hashlib
import json
import os

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


# Feature rules ask for a GPU only when the config says so (a cluster with GPUs);
# the code picks CUDA by itself whenever torch/onnxruntime see one.
GPU = 1 if config["features"]["gpu"] else 0


def shard_videos(wildcards):
    """Video files of one shard: touching one reruns only its shard."""
    return [u.path for u in BY_SHARD[wildcards.shard]]


def shard_units(wildcards):
    """Units of one shard as plain dicts (a parameter of the rules: adding a video changes it)."""
    return [vars(u) for u in BY_SHARD[wildcards.shard]]


def units_digest():
    blob = json.dumps([vars(u) for u in UNITS], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def model_fingerprint(name):
    """What identifies a model's weights without reading them: the registry's
    file names and hashes (or the user's pins), and whether it is a stand-in.
    As a parameter of the rules, changing the weights or version of one model reruns its jobs."""
    from affectflow.models.registry import get

    pins = config["model_pins"]
    files = [
        [wf.name, pins.get(wf.name, wf.sha256 or getattr(wf, "git_sha1", ""))]
        for wf in get(name).files
    ]
    return {"files": files, "standin": name in config["features"]["standins"]}


def model_pins_for(name):
    """The user's pins of this model's files only (other models' pins do not concern it)."""
    from affectflow.models.registry import get

    names = {wf.name for wf in get(name).files}
    return {k: v for k, v in config["model_pins"].items() if k in names}


DETECTOR_MODELS = {"mediapipe": "mediapipe_face_short_range", "retinaface": "retinaface"}


def detector_pins():
    """Pins of the configured face detector's weights only."""
    name = DETECTOR_MODELS.get(DETECTOR)
    return model_pins_for(name) if name else {}


def feature_cfg(wildcards):
    """The feature settings that change outputs (not batch size or device)."""
    f = config["features"]
    return {"face_engine": f["face_engine"], "precision": f["precision"]}


# --- used by faces.smk

def sheets_targets():
    if not config["faces"]["contact_sheets"]:
        return []
    return expand(f"{OUT}/faces/{DETECTOR}/sheets/{{shard}}", shard=SHARDS)


# --- used by fuse.smk

def fusion_sets(fusion):
    return config["fusions"][fusion]["feature_sets"]


def fuse_cfg(wildcards):
    cfg = {k: v for k, v in config["fusions"][wildcards.fusion].items() if k != "feature_sets"}
    return cfg


def pretrained_shards():
    if not config["pretrained"]:
        return []
    return expand(f"{OUT}/features/face/{config['pretrained']}/{{shard}}.h5", shard=SHARDS)


# --- used by learn.smk

def modality_shards(label):
    """Feature shard paths of one modality label, for every shard."""
    kind, _, rest = label.partition("/")
    return expand(f"{OUT}/features/{kind}/{rest}/{{shard}}.h5", shard=SHARDS)


def feature_set_shards(wildcards):
    return {label: modality_shards(label) for label in config["feature_sets"][wildcards.feature_set]}


def learn_cfg(wildcards):
    learn = config["learn"]
    return {**learn.get("common", {}), **learn.get(wildcards.task, {})}


# --- used by report.smk

SUBMISSION_FILES = {"expr": "expr_predictions.txt", "emi": "emi_predictions.csv", "ah": "ah_predictions"}


def submission_path(task):
    return f"{OUT}/submissions/{task}/{SUBMISSION_FILES[task]}"


def submission_output(task):
    """AH submissions are a folder of per-video files."""
    return directory(submission_path(task)) if task == "ah" else submission_path(task)


def uses_standin(feature_set):
    """Whether a feature set has a modality computed by a random-weight stand-in."""
    names = set(config["features"]["standins"])
    return any(os.path.basename(label) in names for label in config["feature_sets"][feature_set])


def metrics_files():
    """Rows of the metric table; sets that use stand-in weights say so in their name."""
    files = {}
    for task in config["tasks"]:
        for fs in config["feature_sets"]:
            mark = " (stand-in weights)" if uses_standin(fs) else ""
            files[f"learn/{task}/{fs}{mark}"] = f"{OUT}/models/{task}/{fs}/metrics.json"
        for fusion in config["fusions"]:
            mark = " (stand-in weights)" if any(map(uses_standin, fusion_sets(fusion))) else ""
            files[f"fuse/{task}/{fusion}{mark}"] = f"{OUT}/fusion/{task}/{fusion}/metrics.json"
    return files
