"""The ONNX Runtime inference path: runtime choice, float16 storage, and parity of the shipped exports."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from agecam.core.age_model import AgeModel, ModelError, models_dir
from agecam.core.onnx_runner import SOURCE_DIGEST_KEY, OnnxRunner, file_sha256
from agecam.training.export_onnx import set_metadata, store_float16

from conftest import MANIFEST


def mean_pixel_model(size: int, scale: np.ndarray) -> onnx.ModelProto:
    """A stand-in age model: age = mean of (image * scale) per face, with a float32 weight."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["image", "scale"], ["scaled"]),
         helper.make_node("ReduceMean", ["scaled", "axes"], ["age"], keepdims=1)],
        "stand_in",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("age", TensorProto.FLOAT, ["batch", 1, 1, 1])],
        [numpy_helper.from_array(scale.astype(np.float32), "scale"),
         numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def save(model: onnx.ModelProto, path) -> None:
    onnx.save(model, str(path))


def test_float16_storage_halves_the_weights_and_computes_with_their_rounded_values(tmp_path):
    scale = np.random.default_rng(0).uniform(0.5, 1.5, (1, 1, 3)).astype(np.float32)
    model = store_float16(mean_pixel_model(8, scale))
    assert [w.data_type for w in model.graph.initializer if w.name.startswith("scale")] == [TensorProto.FLOAT16]
    assert model.graph.node[0].op_type == "Cast"
    onnx.checker.check_model(model)
    save(model, tmp_path / "m.onnx")
    images = np.random.default_rng(1).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    expected = (images * scale.astype(np.float16).astype(np.float32)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(OnnxRunner.load(tmp_path / "m.onnx")(images), expected, rtol=1e-6)


@pytest.fixture()
def model_with_export(tmp_path, tiny_model_path):
    """A copy of the tiny Keras model with a stand-in ONNX export made 'from' it."""
    keras_path = tmp_path / "tiny.keras"
    shutil.copy(tiny_model_path, keras_path)
    export = set_metadata(mean_pixel_model(32, np.ones((1, 1, 3))), {SOURCE_DIGEST_KEY: file_sha256(keras_path)})
    save(export, keras_path.with_suffix(".onnx"))
    return keras_path


def test_auto_runtime_uses_the_export_made_from_this_model(model_with_export):
    model = AgeModel.load(model_with_export)
    assert model.runtime == "onnx" and model.input_size == 32
    batch = np.random.default_rng(2).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict_preprocessed(batch), batch.mean(axis=(1, 2, 3)), rtol=1e-5)
    with pytest.raises(ModelError, match="runtime='keras'"):
        model.keras_model


def test_a_stale_export_is_not_used(model_with_export):
    export = onnx.load(str(model_with_export.with_suffix(".onnx")))
    save(set_metadata(export, {SOURCE_DIGEST_KEY: "0" * 64}), model_with_export.with_suffix(".onnx"))
    assert AgeModel.load(model_with_export).runtime == "keras"
    with pytest.raises(ModelError, match="exported from another version"):
        AgeModel.load(model_with_export, runtime="onnx")


def test_runtime_choices(model_with_export, tiny_model_path):
    assert AgeModel.load(model_with_export, runtime="keras").runtime == "keras"
    assert AgeModel.load(tiny_model_path).runtime == "keras"  # no export beside it
    with pytest.raises(ModelError, match="no tiny.onnx"):
        AgeModel.load(tiny_model_path, runtime="onnx")
    with pytest.raises(ModelError, match="unknown runtime"):
        AgeModel.load(tiny_model_path, runtime="tflite")
    model_with_export.with_suffix(".onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot be read"):
        AgeModel.load(model_with_export, runtime="onnx")


TRAINED = sorted(p.stem for p in models_dir().glob("*.keras"))  # ensembles reuse their members' exports
SHIPPED = [name for name in TRAINED if (models_dir() / f"{name}.onnx").is_file()]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_export_matches_its_keras_model_on_the_test_split(name, utk_dir):
    """Issue #5's parity bound: within 0.1 year of the Keras model on every test-split face."""
    from agecam.training.data import load_arrays, scan_folder
    from agecam.training.evaluate import predict_in_batches
    from agecam.training.split import read_manifest

    onnx_model = AgeModel.load(name, runtime="onnx")  # also fails if the export is stale
    keras_model = AgeModel.load(name, runtime="keras")
    manifest = read_manifest(MANIFEST)
    records = [r for r in scan_folder(utk_dir).records if manifest.get(r.name) == "test"]
    images, _, _ = load_arrays(records, keras_model.input_size)
    difference = np.abs(predict_in_batches(onnx_model, images) - predict_in_batches(keras_model, images))
    assert len(images) > 800
    assert difference.max() <= 0.1, f"largest difference {difference.max():.3f} years"


def test_every_shipped_model_has_an_export():
    assert SHIPPED == TRAINED


def test_a_thread_share_reaches_the_onnx_session(model_with_export):
    """A batch worker's share of the cores (``threads``) is ONNX Runtime's intra-op thread count."""
    pinned = AgeModel.load(model_with_export, "auto", threads=1)
    assert pinned.runtime == "onnx"
    assert pinned.runner.session.get_session_options().intra_op_num_threads == 1
    default = AgeModel.load(model_with_export, "auto")
    assert default.runner.session.get_session_options().intra_op_num_threads == 0  # ONNX Runtime's own choice
    batch = np.random.default_rng(0).uniform(0, 255, (3, pinned.input_size, pinned.input_size, 3)).astype(np.float32)
    np.testing.assert_allclose(pinned.predict_preprocessed(batch), default.predict_preprocessed(batch), atol=1e-4)
