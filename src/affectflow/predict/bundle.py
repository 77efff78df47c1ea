"""A trained pipeline as a folder: heads, fusion choices and the exact models and settings they need.

A run's heads are only useful on new videos when those videos get the same features: the same model
weights, the same face crops, the same audio windows. A bundle therefore carries, besides the heads, the
weight hashes of every model its feature sets read and the config sections that shape those features;
applying it (config ``bundle:``) extracts with exactly those settings. Every file is listed in
``manifest.json`` with its sha256 and checked before anything is loaded; a file it does not list is
refused. Layout: docs/predictions.md.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectflow import __version__
from affectflow.core.errors import AffectflowError
from affectflow.core.files import atomic_folder, sha256_file
from affectflow.core.vocabulary import BINARY_TASKS, TASKS, is_video_task

FORMAT = "affectflow-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: config sections whose output-affecting options shape the features a head reads
SETTINGS_SECTIONS = ("media", "faces", "audio", "asr", "text")
#: keys of config ``features`` that change feature values (not which models run)
FEATURE_SETTINGS = ("face_engine", "precision")
#: settings bundles made before these options were removed carry, at their one legal value (now a fact of every
#: output): applying such a bundle drops them rather than setting a removed option
RETIRED_SETTINGS = {"media": {"sample_rate": 16000}}
#: files a bundle folder may hold at its top level without the manifest listing them: the manifest itself,
#: the marker Snakemake leaves in every folder a rule writes, and a README a person adds (any case)
UNLISTED_OK = (MANIFEST, ".snakemake_timestamp")
UNLISTED_README = ("readme", "readme.md", "readme.txt")


class BundleError(AffectflowError, ValueError):
    """A bundle that cannot be written, read or trusted; the message names the file."""


@dataclass(frozen=True)
class BundleTask:
    """One task of a bundle: the fusion's feature sets (name -> modality labels, in blend order), the
    chosen post-processing (:class:`~affectflow.fuse.postprocess.PostConfig` as a dict), the face model
    whose softmax filters EXPR frames (None without filtering) and the feature set whose video classifier
    decides AH's video filter (None without it)."""

    task: str
    fusion: str
    feature_sets: dict[str, list[str]]
    postprocess: dict[str, Any]
    pretrained: str | None = None
    video_source: str | None = None
    val: dict[str, float] = field(default_factory=dict)

    def head(self, root: Path, feature_set: str) -> Path:
        return root / "heads" / self.task / feature_set / "head.pt"

    def video_classifier(self, root: Path) -> Path | None:
        return None if self.video_source is None else (
            root / "heads" / self.task / self.video_source / "video_classifier.json")

    def labels(self) -> list[str]:
        """Every modality label the task reads, each once, in order."""
        return list(dict.fromkeys(lb for labels in self.feature_sets.values() for lb in labels))


@dataclass(frozen=True)
class Bundle:
    """A verified bundle (:meth:`load`)."""

    root: Path
    run_name: str
    version: str
    tasks: dict[str, BundleTask]
    models: dict[str, dict[str, Any]]  # name -> {"files": {file: sha256}, "standin": bool}
    settings: dict[str, Any]
    files: dict[str, str]  # relative path -> sha256
    digest: str  # sha256 of manifest.json: what identifies this bundle in rerun keys

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Bundle:
        """Read ``path/manifest.json``, check every listed file's sha256 and refuse files it does not list.

        ``path`` is the bundle folder or its ``manifest.json``; a relative path is read from the working
        directory, and :attr:`root` is the folder as an absolute path (so every message names one)."""
        root = _bundle_folder(path)
        manifest = root / MANIFEST
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BundleError(f"{manifest}: cannot read: {e}") from None
        if m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{manifest}: format {m.get('format')!r} version {m.get('format_version')!r}, "
                              f"this affectflow reads {FORMAT!r} version {FORMAT_VERSION}")
        files = {str(k): str(v) for k, v in (m.get("files") or {}).items()}
        _verify(root, files)
        try:
            tasks = {t: BundleTask(task=t, **d) for t, d in (m.get("tasks") or {}).items()}
        except TypeError as e:
            raise BundleError(f"{manifest}: bad task entry: {e}") from None
        for t, bt in tasks.items():
            if t not in TASKS:
                raise BundleError(f"{manifest}: unknown task {t!r}")
            for fs in bt.feature_sets:
                if bt.head(root, fs).relative_to(root).as_posix() not in files:
                    raise BundleError(f"{manifest}: task {t}: the head of {fs!r} is not listed in 'files'")
        _refuse_unlisted(root, files)
        return cls(root, str(m.get("run_name", "")), str(m.get("affectflow_version", "")), tasks,
                   dict(m.get("models") or {}), dict(m.get("settings") or {}), files, sha256_file(manifest))

    def labels(self) -> list[str]:
        """Every modality label any task reads."""
        return list(dict.fromkeys(lb for t in self.tasks.values() for lb in t.labels()))

    def model_names(self) -> list[str]:
        return list(self.models)

    def check_model(self, name: str, files: Mapping[str, str]) -> None:
        """Refuse weights other than the ones the heads were trained on (``files``: this run's manifest)."""
        want = (self.models.get(name) or {}).get("files") or {}
        for fname, digest in want.items():
            got = files.get(fname)
            if got != digest:
                raise BundleError(f"{self.root}: model {name!r} file {fname!r} has sha256 {got} in this run, but the "
                                  f"bundle's heads were trained on {digest}; use the same weights (model_pins)")

    def describe(self) -> str:
        """What ``affectflow bundle inspect`` prints."""
        lines = [f"bundle {self.root} (from run {self.run_name!r}, affectflow {self.version})",
                 f"files: {len(self.files)}, all sha256-verified, none unlisted; manifest sha256 {self.digest}",
                 "tasks:"]
        for t in self.tasks.values():
            pp = t.postprocess
            keys = ["weights"] + ([] if is_video_task(t.task) else ["k"]) + ["t"] + (
                ["ah_threshold", "video_filter"] if t.task in BINARY_TASKS else [])
            params = ", ".join(f"{k}={_shown(pp.get(k))}" for k in keys if pp.get(k) is not None)
            val = ", ".join(f"{k}={v:.4f}" for k, v in t.val.items())
            order = list(pp.get("sources") or t.feature_sets)
            lines.append(f"  {t.task}: fusion {t.fusion!r} of {', '.join(order)} ({params}); val {val}")
            for fs in order:
                lines.append(f"    {fs}: {', '.join(t.feature_sets[fs])}")
            if t.pretrained:
                lines.append(f"    confidence filter with {t.pretrained}")
        lines.append("models:")
        for name, m in self.models.items():
            mark = " (random-weight stand-in)" if m.get("standin") else ""
            for fname, digest in (m.get("files") or {}).items():
                lines.append(f"  {name}{mark}: {fname} sha256 {digest}")
        lines.append("settings: " + json.dumps(self.settings, sort_keys=True))
        return "\n".join(lines)


def _shown(value: Any) -> str:
    """A fusion choice as a person reads it: floats to 6 significant digits (the blend weights are sums of
    grid steps: 0.19999999999999996 is 0.2), lists item by item."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _bundle_folder(path: str | os.PathLike[str]) -> Path:
    """The bundle folder ``path`` names (the folder itself or its manifest), absolute; a :class:`BundleError`
    saying what is there instead."""
    given = Path(path)
    where = given.absolute()
    rel = "" if given.is_absolute() else f" (the bundle path {os.fspath(path)!r} is read from the working directory)"
    if given.is_file() and given.name == MANIFEST:
        return where.parent
    if not given.exists():
        raise BundleError(f"{where}: no such bundle folder, the path does not exist{rel}")
    if not given.is_dir():
        raise BundleError(f"{where}: a file, not a bundle folder{rel}; give the folder that holds {MANIFEST}")
    if not (given / MANIFEST).is_file():
        hint = f"; did you mean {where / 'bundle'}?" if (given / "bundle" / MANIFEST).is_file() else ""
        raise BundleError(f"{where}: not a bundle, no {MANIFEST} in this folder{rel}{hint}")
    return where


def _refuse_unlisted(root: Path, files: Mapping[str, str]) -> None:
    """A file the manifest does not list (besides :data:`UNLISTED_OK` and a README at the top) is refused by
    name: it was not verified, so the folder is not the bundle the manifest describes."""
    listed = set(files)
    seen: set[str] = set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walked already
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        top = Path(folder) == root
        for name in sorted(names):
            p = Path(folder) / name
            if p.relative_to(root).as_posix() in listed:
                continue
            if top and (name in UNLISTED_OK or name.lower() in UNLISTED_README):
                continue
            why = " (a hidden file: perhaps left by an interrupted copy)" if name.startswith(".") else ""
            raise BundleError(f"{p}: in the bundle folder but not listed in its manifest{why}; a bundle holds only "
                              "the files its manifest lists: delete it, or copy the bundle again from the run "
                              "that wrote it")


def _verify(root: Path, files: Mapping[str, str]) -> None:
    for rel, digest in files.items():
        p = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise BundleError(f"{root / MANIFEST}: file {rel!r} lies outside the bundle")
        if not p.is_file():
            raise BundleError(f"{p}: listed in the bundle's manifest but missing")
        got = sha256_file(p)
        if got != digest:
            raise BundleError(f"{p}: sha256 {got} does not match the bundle's manifest ({digest}); "
                              "the file was changed or damaged, refusing the bundle")


@dataclass(frozen=True)
class TaskSource:
    """Where a run keeps one task's parts: its fusion folder (``chosen.json``) and each feature set's
    ``models/<task>/<feature_set>`` folder."""

    task: str
    fusion: str
    fusion_dir: Path
    head_dirs: Mapping[str, Path]
    pretrained: str | None = None  # config `pretrained`: the face model of the confidence filter


def write_bundle(out_dir: str | os.PathLike[str], sources: Sequence[TaskSource],
                 models: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any], run_name: str) -> Path:
    """Copy the heads, record the choices and hashes, and put the folder in place in one rename."""
    out = Path(out_dir)
    with atomic_folder(out) as tmp:
        tasks = {s.task: _copy_task(tmp, s) for s in sources}
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "affectflow_version": __version__,
                    "run_name": run_name, "tasks": tasks, "models": {k: dict(v) for k, v in models.items()},
                    "settings": dict(settings), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def _copy_task(root: Path, s: TaskSource) -> dict[str, Any]:
    chosen_path = s.fusion_dir / "chosen.json"
    try:
        chosen = json.loads(chosen_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(f"{chosen_path}: cannot read the fusion's choices: {e}") from None
    feature_sets: dict[str, list[str]] = {}
    for fs in chosen["feature_sets"]:
        src = s.head_dirs[fs]
        dst = root / "heads" / s.task / fs
        dst.mkdir(parents=True)
        for name in ("head.pt", "head.pt.json", "video_classifier.json"):
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
        sidecar = json.loads((src / "head.pt.json").read_text(encoding="utf-8"))
        feature_sets[fs] = list(sidecar["extra"]["features"])
    post = dict(chosen["config"])
    return {"fusion": s.fusion, "feature_sets": feature_sets, "postprocess": post,
            "pretrained": s.pretrained if post.get("t") is not None else None,
            "video_source": chosen.get("video_filter_source") if post.get("video_filter") else None,
            "val": {k: float(v) for k, v in (chosen.get("val") or {}).items()}}
