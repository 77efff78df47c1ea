"""What every benchmark section shares: figures, timing, the machine, the inputs."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
DEMO_VIDEOS = DEMO / "videos"
CACHE = REPO / ".cache" / "bench"  # git-ignored: converted / stand-in models reused between runs
FIGURE_KEYS = ("name", "title", "status", "value", "unit", "baseline", "baseline_label", "ratio", "target",
               "target_met", "note", "details", "seconds", "section")


class Skip(Exception):  # noqa: N818 - a message, not an error
    """A figure cannot be measured here (a prerequisite is missing); the message says which."""


@dataclass
class Figure:
    """One measured figure: ``value`` against ``baseline``; ``ratio`` = value / baseline unless stated."""

    name: str
    title: str
    status: str = "ok"  # ok | skipped | error
    value: float | None = None
    unit: str = ""
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    target: str = ""
    target_met: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    section: str = ""  # the benchmarks.run section that made it

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("value", "baseline", "ratio"):
            if isinstance(d[k], float):
                d[k] = _round(d[k])
        d["details"] = _round_tree(d["details"])
        d["seconds"] = round(self.seconds, 2)
        return d


def _round(x: float) -> float | None:
    """4 significant digits; NaN and infinity become None (JSON has neither)."""
    return float(f"{x:.4g}") if x == x and abs(x) != float("inf") else None


def _round_tree(obj: Any) -> Any:
    if isinstance(obj, float):
        return _round(obj)
    if isinstance(obj, dict):
        return {k: _round_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round_tree(v) for v in obj]
    return obj


@dataclass
class Options:
    quick: bool
    reps: int
    threads: int
    workdir: Path  # scratch folder of this run

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


def chosen(ap: Any, only: str, known: Sequence[str], what: str) -> list[str]:
    """The comma-separated names in ``only`` (every one of ``known`` when it is empty); an argparse error
    naming the unknown ones and the choices."""
    names = [s.strip() for s in only.split(",") if s.strip()] or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"unknown {what} {unknown}; choose from {', '.join(known)}")
    return names


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleaved(arms: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    """Wall times of each arm, run in turn (A B A B ...) so that load from other users hits all arms alike."""
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(reps):
        for name, fn in arms.items():
            times[name].append(timed(fn)[0])
    return times


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def face_standin_model(name: str, root: Path) -> Any:
    """The cached stand-in of face model ``name`` linked at its registry path under ``root``, as a
    :class:`~affectflow.models.catalogue.manifest.PreparedModel` whose pins accept it (what a fetch_model job
    records)."""
    from affectflow.core.files import sha256_file
    from affectflow.models.catalogue.manifest import PreparedModel
    from affectflow.models.catalogue.registry import get
    from affectflow.models.standins import face as standins_face

    source = standins_face.face_standin(name)  # built once, cached under .cache/standins
    (wf,) = get(name).files
    dest = root / wf.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        dest.symlink_to(source.resolve())
    return PreparedModel(name, str(root), {wf.name: sha256_file(dest)}, standin=True)


def demo_videos() -> list[Path]:
    """The demo's videos, sorted by name; Skip when the demo is not built."""
    if not (DEMO / ".complete").exists() or not DEMO_VIDEOS.is_dir():
        raise Skip(f"the demo is not built ({DEMO}): run `affectflow demo build data/demo` (make demo does)")
    videos = sorted(p for p in DEMO_VIDEOS.iterdir() if p.is_file() and not p.name.startswith("."))
    if not videos:
        raise Skip(f"no videos in {DEMO_VIDEOS}")
    return videos


def default_config() -> dict[str, Any]:
    """The project's config.yaml (the settings the benchmark mirrors: batch sizes, crop size, ASR options)."""
    return yaml.safe_load((REPO / "config.yaml").read_text())


def version_of(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> dict[str, Any]:
    info: dict[str, Any] = {"torch_cuda": False, "onnxruntime_cuda": False}
    try:
        import torch

        if torch.cuda.is_available():
            info["torch_cuda"] = True
            info["name"] = torch.cuda.get_device_name(0)
            info["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    except Exception:
        pass
    try:
        import onnxruntime as ort

        info["onnxruntime_cuda"] = "CUDAExecutionProvider" in ort.get_available_providers()
    except Exception:
        pass
    return info


def machine_info() -> dict[str, Any]:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    ffmpeg = None
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=10).stdout
        ffmpeg = out.split("\n", 1)[0].split(" ")[2] if out else None
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores": cores(),
        "cpu_count": os.cpu_count(),
        "memory_gib": mem,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {m: version_of(m) for m in (
            "torch", "onnxruntime", "onnxruntime-gpu", "faster-whisper", "ctranslate2", "openai-whisper",
            "transformers", "sentence-transformers", "mediapipe", "av", "opencv-python-headless", "numpy", "h5py",
            "snakemake")},
        "ffmpeg": ffmpeg,
        "gpu": gpu_info(),
        "git_commit": commit,
    }
