"""Graph repairs applied to downloaded ONNX files before they are cached. Weights keep their
values; only the graph's bookkeeping and the storage of constant weights change."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import numpy_helper


def strip_graph_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop graph inputs that are initializers or that no node reads (onnxruntime refuses them)."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    consumed = {name for node in graph.node for name in node.input}
    keep = [inp for inp in graph.input if inp.name not in initializers and inp.name in consumed]
    del graph.input[:]
    graph.input.extend(keep)
    return model


def _dequantize(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray:
    quantised = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    has_zero = len(node.input) > 2 and node.input[2]
    zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) if has_zero else None
    attrs = {a.name: a.i for a in node.attribute}
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)

    def expand(values: np.ndarray) -> np.ndarray:
        if values.ndim == 0:
            return values
        if block:  # blocked quantisation: one scale per `block` values along `axis`
            return np.repeat(values, block, axis=axis).take(range(quantised.shape[axis]), axis=axis)
        shape = [1] * quantised.ndim
        shape[axis] = -1
        return values.reshape(shape)

    scale = expand(scale)
    zero = expand(zero) if zero is not None else np.zeros_like(scale)
    return ((quantised - zero) * scale).astype(np.float32)


def fold_dequantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace DequantizeLinear nodes on constant weights by their fp32 result."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(n in inits for n in node.input if n):
            graph.initializer.append(numpy_helper.from_array(_dequantize(node, inits), node.output[0]))
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


REPAIRS: dict[str, Callable[[onnx.ModelProto], onnx.ModelProto]] = {
    "strip_graph_inputs": strip_graph_inputs,
    "fold_dequantize": fold_dequantize,
}


def apply_repairs(data: bytes, names: tuple[str, ...]) -> bytes:
    if not names:
        return data
    model = onnx.load_from_string(data)
    for name in names:
        model = REPAIRS[name](model)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
