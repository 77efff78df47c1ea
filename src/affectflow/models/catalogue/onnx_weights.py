"""The weights of an ONNX file, put onto a plain-torch module of the same architecture.

One weight format, two runtimes: the verified ONNX file that onnxruntime runs
also feeds a torch module (the repository's own rebuild of the architecture),
so a GPU node needs neither onnxruntime-gpu nor timm, and nothing is unpickled.

How the mapping works, and why it is safe: ``torch.onnx.export`` writes the
graph in the order the module ran, so the graph's parameterised nodes (Conv,
BatchNormalization, Gemm/MatMul, PRelu, InstanceNormalization with its affine
Mul/Add, GroupNormalization) come in the same order as the module's
parameterised layers (Conv2d, BatchNorm, Linear, PReLU, GroupNorm) are called
on an example input. The two lists are walked together and every tensor's
shape is checked against the layer it goes to; any mismatch, or a node or a
layer left over, is an error naming both. Exporters in eval mode fold each
BatchNorm into the convolution before it (the conv gains a bias): where the
graph has no BatchNormalization after a conv whose layer has one, the layer's
BatchNorm is dropped from the module (its activation, if it carries one, is
kept), and the folded weights and bias are used as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from affectflow.core.errors import AffectflowError

__all__ = ["OnnxWeightsError", "load_onnx_weights", "parameter_nodes"]

#: layers that carry weights, in the order their forward runs
LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.PReLU, nn.GroupNorm)


class OnnxWeightsError(AffectflowError, ValueError):
    """The ONNX graph does not fit the module it is loaded into (another architecture, or an unknown export)."""


@dataclass
class ParamNode:
    """One parameterised node of the graph, with its constant inputs as arrays."""

    op: str  # "Conv", "BatchNormalization", "Linear", "PRelu", "GroupNorm"
    name: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.tensors.items())
        return f"{self.op} node {self.name!r} ({shapes})"


def _constants(model: Any) -> dict[str, np.ndarray]:
    """Initialisers and the values of Constant nodes, by tensor name."""
    from onnx import helper, numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = numpy_helper.to_array(helper.get_attribute_value(a))
    return out


def _consumers(model: Any) -> dict[str, list[Any]]:
    users: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _const_operand(node: Any, consts: dict[str, np.ndarray]) -> np.ndarray | None:
    """The constant input of a binary node (Mul, Add) whose other input is computed, or None."""
    ins = [n for n in node.input if n in consts]
    return consts[ins[0]] if len(ins) == 1 and len(node.input) == 2 else None


def _follow(start: str, users: dict[str, list[Any]], op: str, skip: tuple[str, ...] = ("Reshape",)) -> Any | None:
    """The single node of type ``op`` reached from tensor ``start`` through single-consumer ``skip`` nodes."""
    name = start
    while True:
        nodes = users.get(name, [])
        if len(nodes) != 1:
            return None
        if nodes[0].op_type == op:
            return nodes[0]
        if nodes[0].op_type not in skip:
            return None
        name = nodes[0].output[0]


def parameter_nodes(model: Any) -> list[ParamNode]:
    """The graph's parameterised nodes in graph order, each with the constant tensors a torch layer needs."""
    consts, users = _constants(model), _consumers(model)
    out: list[ParamNode] = []
    for node in model.graph.node:
        op, ins = node.op_type, list(node.input)
        if op == "Conv" and len(ins) >= 2 and ins[1] in consts:
            t = {"weight": consts[ins[1]]}
            if len(ins) > 2 and ins[2]:
                t["bias"] = consts[ins[2]]
            out.append(ParamNode("Conv", node.name, t, _attrs(node)))
        elif op == "BatchNormalization":
            t = dict(zip(("weight", "bias", "running_mean", "running_var"), (consts[n] for n in ins[1:5]), strict=True))
            out.append(ParamNode("BatchNormalization", node.name, t, _attrs(node)))
        elif op == "Gemm" and len(ins) >= 2 and ins[1] in consts:
            a = _attrs(node)
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise OnnxWeightsError(f"Gemm node {node.name!r} has unsupported attributes {a}")
            w = consts[ins[1]]
            t = {"weight": w if a.get("transB", 0) else w.T}
            if len(ins) > 2 and ins[2]:
                t["bias"] = consts[ins[2]].reshape(-1)
            out.append(ParamNode("Linear", node.name, t))
        elif op == "MatMul" and ins[1] in consts:
            t = {"weight": consts[ins[1]].T}
            add = _follow(node.output[0], users, "Add", skip=())
            bias = _const_operand(add, consts) if add is not None else None
            if bias is not None:
                t["bias"] = bias.reshape(-1)
            out.append(ParamNode("Linear", node.name, t))
        elif op == "PRelu":
            out.append(ParamNode("PRelu", node.name, {"weight": consts[ins[1]].reshape(-1)}))
        elif op == "InstanceNormalization":
            # GroupNorm as exporters write it: Reshape -> InstanceNormalization -> Reshape -> Mul -> Add
            mul = _follow(node.output[0], users, "Mul")
            add = _follow(mul.output[0], users, "Add", skip=()) if mul is not None else None
            scale = _const_operand(mul, consts) if mul is not None else None
            shift = _const_operand(add, consts) if add is not None else None
            if scale is None or shift is None:
                raise OnnxWeightsError(f"InstanceNormalization node {node.name!r} is not followed by the affine "
                                       "Mul and Add of a GroupNorm")
            out.append(ParamNode("GroupNorm", node.name, {"weight": scale.reshape(-1), "bias": shift.reshape(-1)},
                                 _attrs(node)))
        elif op == "GroupNormalization":
            t = {"weight": consts[ins[1]].reshape(-1), "bias": consts[ins[2]].reshape(-1)}
            out.append(ParamNode("GroupNorm", node.name, t, _attrs(node)))
    return out


def _call_order(module: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The weighted layers of ``module`` as one forward pass on ``example`` calls them."""
    names = {id(m): n for n, m in module.named_modules()}
    order: list[tuple[str, nn.Module]] = []
    hooks = [m.register_forward_pre_hook(lambda m, _a: order.append((names[id(m)], m)))
             for m in module.modules() if isinstance(m, LAYERS)]
    try:
        with torch.no_grad():
            module.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return order


def _put(layer: nn.Module, attr: str, value: np.ndarray, where: str) -> None:
    """Set ``layer.attr`` (a parameter or buffer, created when absent) to ``value``, shapes checked."""
    current = getattr(layer, attr, None)
    tensor = torch.from_numpy(np.array(value, dtype=np.float32))  # a writable copy
    if current is not None:
        if tuple(current.shape) != tuple(tensor.shape):
            raise OnnxWeightsError(f"{where}: {attr} {tuple(tensor.shape)} does not fit {tuple(current.shape)}")
        with torch.no_grad():
            current.copy_(tensor)
    elif attr == "bias":
        layer.bias = nn.Parameter(tensor)  # a folded BatchNorm gives a layer without bias one
    else:
        raise OnnxWeightsError(f"{where}: the layer has no {attr}")


def _is_bn(layer: nn.Module) -> bool:
    return isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d)


def _load_bn(layer: nn.Module, node: ParamNode, where: str) -> None:
    for k, v in node.tensors.items():
        _put(layer, k, v, where)
    layer.eps = float(node.attrs.get("epsilon", 1e-5))


def _folded_away(bn: nn.Module) -> nn.Module:
    """What replaces a BatchNorm the export folded into the layer before it: its activation, if it has one."""
    act = getattr(bn, "act", None)
    return act if isinstance(act, nn.Module) else nn.Identity()


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(module.get_submodule(parent_name) if parent_name else module, child, new)


def _check(node: ParamNode | None, want: str, layer_name: str, layer: nn.Module) -> ParamNode:
    if node is None or node.op != want:
        got = node.describe() if node is not None else "the end of the graph"
        raise OnnxWeightsError(f"layer {layer_name!r} ({type(layer).__name__}) meets {got}, not a {want} node")
    return node


def load_onnx_weights(module: nn.Module, model: Any, example: torch.Tensor, *, what: str) -> nn.Module:
    """``module`` (float32, CPU) with the weights of ONNX ``model`` (a ModelProto), in eval mode.

    ``example``: an input of the right shape (its values do not matter); one
    forward pass on it gives the order of the layers. ``what`` names the file
    in errors. BatchNorms folded by the export are removed from ``module``.
    """
    try:
        nodes = parameter_nodes(model)
        order = _call_order(module, example)
        dropped = _assign(order, nodes)
    except OnnxWeightsError as e:
        raise OnnxWeightsError(f"{what}: {e}") from None
    for name, bn in dropped:
        _replace(module, name, _folded_away(bn))
    return module.eval().requires_grad_(False)


class _Nodes:
    """The graph's weighted nodes, consumed in order."""

    def __init__(self, nodes: list[ParamNode]) -> None:
        self.nodes, self.j = nodes, 0

    def peek(self) -> ParamNode | None:
        return self.nodes[self.j] if self.j < len(self.nodes) else None

    def take(self) -> ParamNode | None:
        node = self.peek()
        self.j += 1
        return node

    def next_is(self, op: str, weight: np.ndarray | None = None) -> bool:
        node = self.peek()
        return node is not None and node.op == op and (weight is None or np.array_equal(node.tensors["weight"], weight))


def _assign(order: list[tuple[str, nn.Module]], nodes: list[ParamNode]) -> list[tuple[str, nn.Module]]:
    """Walk layers and nodes together, filling each layer; the BatchNorms found folded into their layer."""
    graph = _Nodes(nodes)
    dropped: list[tuple[str, nn.Module]] = []
    loaded: dict[str, np.ndarray] = {}  # layer -> the weight it was given
    i = 0
    while i < len(order):
        name, layer = order[i]
        nxt = order[i + 1] if i + 1 < len(order) else None
        with_bn = nxt is not None and _is_bn(nxt[1]) and isinstance(layer, nn.Conv2d | nn.Linear)
        if name in loaded:
            # A layer the forward pass calls again (RetinaFace's SSH runs one conv twice): the graph holds the
            # call again, with the same weights, or the exporter merged both calls into one node.
            if graph.next_is(_op_of(layer), loaded[name]):
                graph.take()
                if with_bn and nxt not in dropped and graph.next_is("BatchNormalization"):
                    graph.take()
        elif isinstance(layer, nn.Conv2d | nn.Linear):
            node = _check(graph.take(), _op_of(layer), name, layer)
            where = f"layer {name!r} <- {node.describe()}"
            _put(layer, "weight", node.tensors["weight"], where)
            if with_bn and not graph.next_is("BatchNormalization"):
                # folded by the export: the node's bias is the BatchNorm's shift
                _put(layer, "bias", node.tensors.get("bias", np.zeros(layer.weight.shape[0], np.float32)), where)
                dropped.append(nxt)
            elif "bias" in node.tensors:
                _put(layer, "bias", node.tensors["bias"], where)
            elif layer.bias is not None:
                raise OnnxWeightsError(f"{where}: the layer has a bias, the node none")
            if with_bn and nxt not in dropped:
                _load_bn(nxt[1], graph.take(), f"layer {nxt[0]!r}")
                loaded[nxt[0]] = nxt[1].weight.detach().numpy().copy()
            loaded[name] = node.tensors["weight"]
        else:
            node = _check(graph.take(), _op_of(layer), name, layer)
            if _is_bn(layer):
                _load_bn(layer, node, f"layer {name!r}")
            else:
                for k in node.tensors:
                    _put(layer, k, node.tensors[k], f"layer {name!r} <- {node.describe()}")
                if isinstance(layer, nn.GroupNorm):
                    layer.eps = float(node.attrs.get("epsilon", layer.eps))
            loaded[name] = node.tensors["weight"]
        i += 2 if with_bn else 1
    if graph.peek() is not None:
        raise OnnxWeightsError(f"{len(nodes) - graph.j} weighted node(s) of the graph match no layer, the first "
                               f"being {graph.peek().describe()}")
    return dropped


_OPS: tuple[tuple[type, str], ...] = ((nn.Conv2d, "Conv"), (nn.Linear, "Linear"), (nn.PReLU, "PRelu"),
                                       (nn.GroupNorm, "GroupNorm"), (nn.BatchNorm1d, "BatchNormalization"),
                                       (nn.BatchNorm2d, "BatchNormalization"))


def _op_of(layer: nn.Module) -> str:
    """The graph node type that holds ``layer``'s weights (subclasses such as a same-padding conv included)."""
    return next(op for kind, op in _OPS if isinstance(layer, kind))
