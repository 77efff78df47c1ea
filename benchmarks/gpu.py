"""GPU: EmotiEffNet-B0 embeddings at batch 256, fp16, and the face path on the GPU (only where CUDA is present).

torch: affectflow's EfficientNet-B0 (the architecture of ``enet_b0_8_best_vgaf``;
weights do not change the speed) in half precision, fed uint8 crops from the
host that are normalised on the GPU, the way a feature job feeds a shard's
crops. onnxruntime (when it has the CUDA provider): the stand-in ONNX through
``affectflow.models.faces.load_face_model(device="cuda")``, float32, for
comparison with the file format the workflow really runs.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import Figure, Options, Skip, face_standin_model, gpu_info

BATCH = 256
B0 = "enet_b0_8_best_vgaf"


def _torch_fp16(opts: Options) -> dict[str, Any]:
    import torch

    from affectflow.models import efficientnet

    model = efficientnet.EfficientNet("b0", num_classes=8).eval().requires_grad_(False).cuda().half()
    mean = torch.tensor([0.485, 0.456, 0.406], device="cuda").view(1, 3, 1, 1).half()
    std = torch.tensor([0.229, 0.224, 0.225], device="cuda").view(1, 3, 1, 1).half()
    crops = torch.randint(0, 255, (BATCH, 224, 224, 3), dtype=torch.uint8).pin_memory()

    def step() -> None:
        x = crops.cuda(non_blocking=True).permute(0, 3, 1, 2).half().div_(255).sub_(mean).div_(std)
        model(x)

    with torch.inference_mode():
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        n = 10 if opts.quick else 40
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return {"frames_per_s": n * BATCH / dt, "batches": n}


def _onnx_cuda(opts: Options, precision: str = "fp32", device: str = "cuda", batch: int = BATCH) -> dict[str, Any]:
    """EmotiEffNet-B0 crops/s through load_face_model on ``device`` (the tests run it on the CPU, small)."""
    import numpy as np

    from affectflow.models.faces import load_face_model

    b0 = face_standin_model(B0, opts.workdir / "gpu_models")
    model = load_face_model(B0, b0.root, pins=b0.pins, device=device, batch_size=batch, precision=precision)
    crops = np.random.default_rng(0).integers(0, 255, (batch, 224, 224, 3), dtype=np.uint8)
    model.predict(crops)
    n = 3 if opts.quick else 10
    t0 = time.perf_counter()
    for _ in range(n):
        model.predict(crops)
    return {"frames_per_s": n * batch / (time.perf_counter() - t0), "batches": n,
            "device": getattr(model, "device", "?")}


def _face_path(opts: Options, device: str = "cuda") -> Figure:
    """The face path of benchmarks.face_path with EmotiEffNet-B0 on the GPU: the stages vs the per-frame loop.

    ``device`` is there for the tests, which run this code on the CPU so that it keeps working where no
    GPU is at hand to notice."""
    from benchmarks import face_path
    from benchmarks.common import interleaved, median

    fig = Figure("gpu_face_path_vs_per_frame", f"GPU: face path (EmotiEffNet-B0 on CUDA, batch {BATCH}) vs "
                 "per-frame loop", unit="frames/s", baseline_label="per-frame loop, same models and device",
                 target=">= 3x")
    try:
        videos = face_path._inputs(opts)  # quick: one video
    except Skip as e:
        fig.status, fig.note = "skipped", str(e)
        return fig
    models = face_path.Models(opts)
    done: dict[str, list[dict[str, Any]]] = {"pipeline": [], "per_frame": []}
    counter = iter(range(1000))
    times = interleaved({
        "pipeline": lambda: done["pipeline"].append(face_path.pipeline_pass(
            videos, models, opts, opts.workdir / f"gpu_pipe{next(counter)}", batch_size="auto", device=device,
            crop_compression="none")),
        "per_frame": lambda: done["per_frame"].append(face_path.per_frame_pass(videos, models, opts,
                                                                               device=device)),
    }, opts.reps)
    frames = done["pipeline"][0]["frames"]
    fig.value = frames / median(times["pipeline"])
    fig.baseline = done["per_frame"][0]["frames"] / median(times["per_frame"])
    fig.ratio = fig.value / fig.baseline
    fig.target_met = fig.ratio >= 3.0
    fig.details = {"frames": frames, "all_runs_s": times,
                   "pipeline_stage_s": {k: median([r["times"][k] for r in done["pipeline"]])
                                        for k in done["pipeline"][0]["times"]}}
    fig.note = ("decode + MediaPipe on the CPU in both arms, EmotiEffNet-B0 on onnxruntime CUDA (float32), the "
                "FER2013 mini-Xception on the CPU; model loading timed in both")
    return fig


def run(opts: Options) -> list[Figure]:
    fig = Figure("gpu_enet_b0_fp16", f"GPU: EmotiEffNet-B0 embeddings, batch {BATCH}, fp16", unit="frames/s",
                 baseline_label="onnxruntime CUDA, float32 (the workflow's engine)", target="")
    info = gpu_info()
    try:
        if not (info["torch_cuda"] or info["onnxruntime_cuda"]):
            raise Skip("no CUDA device (torch.cuda.is_available() is False and onnxruntime has no "
                       "CUDAExecutionProvider)")
    except Skip as e:
        fig.status, fig.note = "skipped", str(e)
        return [fig]
    fig.details = {"gpu": info}
    notes = []
    if info["torch_cuda"]:
        r = _torch_fp16(opts)
        fig.value = r["frames_per_s"]
        fig.details["torch_fp16"] = r
    else:
        notes.append("torch has no CUDA here: fp16 not measured")
    extra: list[Figure] = []
    if info["onnxruntime_cuda"]:
        try:
            extra.append(_face_path(opts))
        except Exception as e:  # a CUDA provider that fails to start (missing cuDNN, ...)
            notes.append(f"face path on CUDA failed: {e}")
        try:
            r = _onnx_cuda(opts)
            fig.baseline = r["frames_per_s"]
            fig.details["onnxruntime_cuda_fp32"] = r
            fig.details["onnxruntime_cuda_fp16"] = _onnx_cuda(opts, "fp16")  # features.precision: fp16
        except Exception as e:  # a CUDA provider that fails to start (missing cuDNN, ...)
            notes.append(f"onnxruntime CUDA failed: {e}")
    else:
        notes.append("onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu not installed)")
    if fig.value is None and fig.baseline is not None:
        fig.value, fig.baseline = fig.baseline, None
        fig.title = f"GPU: EmotiEffNet-B0 embeddings, batch {BATCH}, onnxruntime CUDA fp32"
    if fig.value is not None and fig.baseline:
        fig.ratio = fig.value / fig.baseline
    fig.note = "; ".join([f"{info.get('name', 'GPU')}, host uint8 crops -> device, normalised on the GPU", *notes])
    return [fig, *extra]
