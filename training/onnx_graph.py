"""Rewrites of an exported ONNX age model that keep its numbers and cut its cost.

Keras exports a batch normalisation as ``Sub``, ``Mul`` and ``Add`` with per-channel constants
after each convolution, and ONNX Runtime does not fuse those into the convolution, so a ResNet50
spends a third of its time on them (measured: 90 -> 132 faces/s at batch 1 once folded). They are
also what would make int8 quantization lose most: each becomes a separately quantized tensor.

Example::

    import onnx
    model, folded = fold_into_conv(optimize_graph(onnx.load("models/cnn.onnx")))
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

# Element-wise steps that commute into a convolution's weights and bias when their second
# operand is a constant per output channel (or one number).
FOLDABLE = ("Add", "Sub", "Mul", "Div")


def optimize_graph(model):
    """``model`` after ONNX Runtime's basic, machine-independent rewrites (constant folding, and
    the layout transposes Keras adds around each convolution pushed out), metadata kept."""
    import onnx
    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(source))
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(target)
        onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(str(target))
    del optimized.metadata_props[:]
    optimized.metadata_props.extend(model.metadata_props)
    return optimized


def per_channel(constant: np.ndarray, channels: int) -> np.ndarray | None:
    """``constant`` as one value per output channel of an NCHW convolution, or None if it is not one."""
    if constant.size == 1:
        return np.full(channels, float(constant.reshape(-1)[0]), np.float32)
    shape = constant.shape
    if constant.size == channels and len(shape) >= 3 and shape[-3] == channels and shape[-2:] == (1, 1):
        return constant.reshape(-1).astype(np.float32)
    return None


def _foldable_pair(graph, weights: dict):
    """The first (convolution, step after it, its weights, the step's per-channel constant), or None."""
    from onnx import numpy_helper

    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    for conv in graph.node:
        if conv.op_type != "Conv" or conv.input[1] not in weights or conv.output[0] in graph_outputs:
            continue
        users = consumers.get(conv.output[0], [])
        if len(users) != 1:
            continue
        step = users[0]
        # Only "conv - c", not "c - conv": the convolution must be the first operand.
        if step.op_type not in FOLDABLE or step.input[0] != conv.output[0] or step.input[1] not in weights:
            continue
        kernel = numpy_helper.to_array(weights[conv.input[1]]).astype(np.float32)
        constant = per_channel(numpy_helper.to_array(weights[step.input[1]]), kernel.shape[0])
        if constant is not None:
            return conv, step, kernel, constant
    return None


def fold_into_conv(model):
    """``model`` with every constant per-channel Add/Sub/Mul/Div that directly follows a convolution
    merged into its weights and bias; returns ``(model, steps folded)``. Exact up to float rounding."""
    from onnx import numpy_helper

    graph = model.graph
    folded = 0
    while True:
        weights = {w.name: w for w in graph.initializer}
        found = _foldable_pair(graph, weights)
        if found is None:
            break
        conv, step, kernel, constant = found
        has_bias = len(conv.input) > 2 and conv.input[2]
        bias = (numpy_helper.to_array(weights[conv.input[2]]).astype(np.float32) if has_bias
                else np.zeros(kernel.shape[0], np.float32))
        if step.op_type == "Add":
            bias = bias + constant
        elif step.op_type == "Sub":
            bias = bias - constant
        elif step.op_type == "Mul":
            kernel, bias = kernel * constant[:, None, None, None], bias * constant
        else:
            kernel, bias = kernel / constant[:, None, None, None], bias / constant
        kernel_name, bias_name = f"{conv.name}/folded_kernel_{folded}", f"{conv.name}/folded_bias_{folded}"
        graph.initializer.extend([numpy_helper.from_array(kernel, kernel_name), numpy_helper.from_array(bias, bias_name)])
        source = conv.input[0]
        del conv.input[:]
        conv.input.extend([source, kernel_name, bias_name])
        conv.output[0] = step.output[0]
        graph.node.remove(step)
        folded += 1
    used = {name for node in graph.node for name in node.input}
    kept = [w for w in graph.initializer if w.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model, folded


def widen_float16(model):
    """``model`` with weights stored as float16 plus a Cast (``export_onnx.store_float16``) turned
    back into float32 weights, so graph rewrites and quantization see plain constants."""
    from onnx import numpy_helper

    graph = model.graph
    suffix = "__float16"
    casts = {node.output[0] for node in graph.node
             if node.op_type == "Cast" and node.input and node.input[0].endswith(suffix)}
    if not casts:
        return model
    widened = [numpy_helper.from_array(numpy_helper.to_array(w).astype(np.float32), w.name[: -len(suffix)])
               if w.name.endswith(suffix) else w for w in graph.initializer]
    nodes = [node for node in graph.node if node.output[0] not in casts]
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(widened)
    graph.node.extend(nodes)
    return model
