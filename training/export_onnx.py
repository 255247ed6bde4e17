"""Export a trained ``.keras`` age model to ONNX, for the faster ONNX Runtime inference path.

Keras 3 exports ONNX through ``torch.onnx`` (its TensorFlow route needs tf2onnx, which is not
installable here), so this runs under the torch backend, in any environment that has torch,
onnx and onnxscript, e.g. a separate one::

    python -m venv /tmp/export && /tmp/export/bin/pip install torch==2.13.0 keras onnx onnxscript onnxruntime "numpy<2" h5py
    KERAS_BACKEND=torch /tmp/export/bin/python -m agecam.training.export_onnx models/resnet50.keras

It writes ``models/resnet50.onnx`` beside the model, batch normalisation folded into the
convolutions (``training.onnx_graph``), with its weights stored as the ``.keras``
file stores them: float16 for ResNet50 (half the file; each weight is widened by a Cast that
ONNX Runtime folds once at load, so it computes in float32), float32 otherwise; and the SHA-256 of the ``.keras`` file in its metadata, so agecam uses the export only while
it matches that model. ``tests/test_onnx_runtime.py`` checks every shipped export against its
Keras model on the test split.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from agecam.core.atomic import atomic_path
from agecam.core.onnx_runner import SOURCE_DIGEST_KEY, OnnxRunner, file_sha256
from .onnx_graph import fold_into_conv, optimize_graph

log = logging.getLogger(__name__)


def store_float16(model):
    """``model`` (an ``onnx.ModelProto``) with every float32 weight stored as float16 plus a Cast back."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    casts, kept = [], []
    for weight in graph.initializer:
        if weight.data_type != onnx.TensorProto.FLOAT:
            kept.append(weight)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(weight).astype(np.float16), f"{weight.name}__float16")
        kept.append(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [weight.name], to=onnx.TensorProto.FLOAT))
    weight_names = {node.output[0] for node in casts}
    inputs = [i for i in graph.input if i.name not in weight_names]  # older exporters list weights as inputs
    del graph.initializer[:], graph.input[:]
    graph.initializer.extend(kept)
    graph.input.extend(inputs)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def set_metadata(model, values: dict[str, str]):
    """``model`` with ``values`` in its metadata (replacing keys it already has)."""
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def export(keras_path: Path) -> Path:
    """Write ``keras_path`` with an ``.onnx`` suffix; returns its path."""
    import keras
    import onnx

    from agecam.core.age_model import KerasRunner

    if keras.backend.backend() != "torch":
        raise RuntimeError("run the export under the torch backend: KERAS_BACKEND=torch python -m agecam.training.export_onnx ...")
    keras_path = Path(keras_path)
    runner = KerasRunner.load(keras_path)
    model, size = runner.keras_model, runner.input_size
    probe = np.random.default_rng(0).uniform(0, 1, (4, size, size, 3)).astype(np.float32)
    expected = runner(probe)  # also builds the model, which the exporter requires
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        model.export(str(raw), format="onnx")
        proto = onnx.load(str(raw))
    # Batch normalisation folded into the convolutions: same numbers, ~1.3-1.5x faster (onnx_graph).
    proto, folded = fold_into_conv(optimize_graph(proto))
    log.info("folded %d per-channel steps into convolutions", folded)
    if runner.stored_float16:  # keep the export as small as its source
        proto = store_float16(proto)
    storage = "float16, widened to float32 at load" if runner.stored_float16 else "float32"
    set_metadata(proto, {SOURCE_DIGEST_KEY: file_sha256(keras_path), "agecam_source_file": keras_path.name,
                         "agecam_weights_storage": storage})
    onnx.checker.check_model(proto)
    target = keras_path.with_suffix(".onnx")
    with atomic_path(target) as tmp_path:
        onnx.save(proto, str(tmp_path))
        difference = float(np.max(np.abs(OnnxRunner.load(tmp_path)(probe) - expected)))
    log.info("wrote %s (%.1f MB); largest difference from Keras on a probe batch: %.4f years",
             target, target.stat().st_size / 1e6, difference)
    return target


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if len(sys.argv) < 2:
        sys.exit("usage: KERAS_BACKEND=torch python -m agecam.training.export_onnx MODEL.keras [MODEL.keras ...]")
    for argument in sys.argv[1:]:
        export(Path(argument))
