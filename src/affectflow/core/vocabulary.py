"""The tasks, their classes and levels: defined once, imported everywhere else.

A task is *frame*-level (one prediction per video frame: EXPR, AH) or
*video*-level (one per video: EMI's six intensities, AH-video's 0/1).
Class names are the organisers' spelling and order, the order of every
posterior column and submission value.
"""

from __future__ import annotations

EXPR_CLASSES = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
EMI_EMOTIONS = ("Admiration", "Amusement", "Determination", "Empathic Pain", "Excitement", "Joy")
AH_CLASSES = ("no A/H", "A/H")  # 0 / 1, frame (ah) and video (ah_video) level

#: every task, in the order of the units table's label columns
TASKS = ("expr", "emi", "ah", "ah_video")
#: tasks with one prediction per video (the others predict every frame)
VIDEO_TASKS = ("emi", "ah_video")
#: binary tasks (one P(A/H) per frame or video, decided by a threshold)
BINARY_TASKS = ("ah", "ah_video")
#: each task's challenge metric, as metric reports and metrics.csv name it (EXPR, AH: macro F1; EMI: mean r)
MAIN_METRIC = {"expr": "f1", "emi": "pearson_r", "ah": "f1", "ah_video": "f1"}
SPLITS = ("train", "val", "test")
#: the name a fusion gives the pre-trained face model's posteriors (config ``pretrained``), beside its feature sets
PRETRAINED = "pretrained"
#: a feature label's first part (``face/<model>``, ``audio/<model>``, ``text/<asr>/<model>``) -> the stage
#: whose shards hold those features
FEATURE_STAGES = {"face": "face_features", "audio": "audio_features", "text": "text_features"}
MODALITY_KINDS = tuple(FEATURE_STAGES)
#: stage -> the names its outputs' provenance carried before every stage took its rule's name; outputs
#: written then are still read as this stage's (README, "Upgrading")
FORMER_STAGE_NAMES = {"fetch_model": ("models",), "learn": ("predictions",), "fuse": ("fused",),
                      "submit": ("submissions",), "predictions": ("predictions_table",)}
#: Hz of every audio array: wav2vec 2.0, HuBERT and Whisper take 16 kHz mono
SAMPLE_RATE = 16000


def feature_stage(label: str) -> str:
    """The stage whose shards hold a feature label's features (``KeyError`` for an unknown kind)."""
    return FEATURE_STAGES[label.split("/", 1)[0]]


def is_video_task(task: str) -> bool:
    """Whether ``task`` predicts one vector per video (no per-frame alignment, smoothing or filtering)."""
    return task in VIDEO_TASKS
