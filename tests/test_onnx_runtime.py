"""The ONNX Runtime inference path: runtime choice, float16 storage, and parity of the shipped exports."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from agecam.core.age_model import AgeModel, ModelError, models_dir
from agecam.core.hardware import int8_kernels
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
    from agecam.training.evaluation.evaluate import predict_in_batches
    from agecam.training.split import read_manifest

    onnx_model = AgeModel.load(name, runtime="onnx")  # also fails if the export is stale
    keras_model = AgeModel.load(name, runtime="keras")
    manifest = read_manifest(MANIFEST)
    records = [r for r in scan_folder(utk_dir).records if manifest.get(r.name) == "test"]
    images, _, _ = load_arrays(records, keras_model.input_size, alignment=keras_model.alignment)  # its own framing
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


def conv_then_affine_model(subtract_from_constant: bool = False) -> onnx.ModelProto:
    """Conv -> Sub -> Mul -> Add -> Relu with per-channel constants, as Keras exports batch norm."""
    rng = np.random.default_rng(3)
    c = lambda name, shape: numpy_helper.from_array(rng.normal(0, 1, shape).astype(np.float32), name)
    sub = ["mean", "conv"] if subtract_from_constant else ["conv", "mean"]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "kernel", "bias"], ["conv"], pads=[1, 1, 1, 1]),
         helper.make_node("Sub", sub, ["centred"]),
         helper.make_node("Mul", ["centred", "scale"], ["scaled"]),
         helper.make_node("Add", ["scaled", "shift"], ["shifted"]),
         helper.make_node("Relu", ["shifted"], ["out"])],
        "conv_affine",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4, 8, 8])],
        [c("kernel", (4, 3, 3, 3)), c("bias", (4,)), c("mean", (1, 4, 1, 1)), c("scale", (4, 1, 1)),
         c("shift", (1, 4, 1, 1))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return OnnxRunner.from_proto(model).session.run(None, {"image": x})[0]


def test_per_channel_steps_after_a_convolution_fold_into_it_with_the_same_numbers():
    from agecam.training.onnx_graph import fold_into_conv

    x = np.random.default_rng(4).normal(0, 1, (2, 3, 8, 8)).astype(np.float32)
    model = conv_then_affine_model()
    expected = _run(model, x)
    folded, steps = fold_into_conv(model)
    assert steps == 3 and [n.op_type for n in folded.graph.node] == ["Conv", "Relu"]
    np.testing.assert_allclose(_run(folded, x), expected, rtol=1e-5, atol=1e-5)
    assert {w.name for w in folded.graph.initializer}.isdisjoint({"mean", "scale", "shift"})  # unused ones dropped
    # "constant - conv" is not "conv - constant": it stays, and so does what follows it.
    kept, steps = fold_into_conv(conv_then_affine_model(subtract_from_constant=True))
    assert steps == 0 and len(kept.graph.node) == 5


def test_float16_weights_widen_back_to_the_same_float32_model(tmp_path):
    from agecam.training.onnx_graph import widen_float16

    scale = np.random.default_rng(0).uniform(0.5, 1.5, (1, 1, 3)).astype(np.float32)
    half = store_float16(mean_pixel_model(8, scale))
    wide = widen_float16(half)
    assert [n.op_type for n in wide.graph.node] == ["Mul", "ReduceMean"]
    assert {w.name: w.data_type for w in wide.graph.initializer}["scale"] == TensorProto.FLOAT
    images = np.random.default_rng(1).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    save(half, tmp_path / "half.onnx")
    save(wide, tmp_path / "wide.onnx")
    np.testing.assert_array_equal(OnnxRunner.load(tmp_path / "half.onnx")(images),
                                  OnnxRunner.load(tmp_path / "wide.onnx")(images))


def _with_int8(keras_path, holds: bool, scale: float = 2.0, kernels: str | None = None):
    """A stand-in int8 model beside ``keras_path`` (ages twice the float stand-in's) and its record."""
    from agecam.core.model_card import write_card
    from agecam.core.onnx_runner import INT8_SUFFIX

    int8 = keras_path.with_name(keras_path.stem + INT8_SUFFIX)
    save(set_metadata(mean_pixel_model(32, np.full((1, 1, 3), scale)), {SOURCE_DIGEST_KEY: file_sha256(keras_path)}), int8)
    write_card(keras_path.with_suffix(".json"), {"int8": {"file": int8.name, "sha256": file_sha256(int8), "holds": holds,
                                                          "int8_kernels": kernels or int8_kernels(),
                                                          "test": {"max_difference": 0.3 if holds else 2.6}}})
    return int8


def test_auto_runs_the_int8_model_only_while_its_parity_record_holds_for_that_file(model_with_export, caplog):
    batch = np.random.default_rng(5).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    with pytest.raises(ModelError, match="no int8 parity record"):
        (model_with_export.with_name("tiny.int8.onnx")).write_bytes(b"")
        AgeModel.load(model_with_export, runtime="int8")
    int8 = _with_int8(model_with_export, holds=True)
    model = AgeModel.load(model_with_export)
    assert model.runtime == "int8"
    np.testing.assert_allclose(model.predict_preprocessed(batch), 2 * batch.mean(axis=(1, 2, 3)), rtol=1e-5)
    assert AgeModel.load(model_with_export, runtime="onnx").runtime == "onnx"  # the float export, when asked

    _with_int8(model_with_export, holds=False)  # the rule missed: auto falls back to float
    assert AgeModel.load(model_with_export).runtime == "onnx"
    with caplog.at_level("WARNING"):
        assert AgeModel.load(model_with_export, runtime="int8").runtime == "int8"  # asked for: run, and say so
    assert "missed its parity rule" in caplog.text

    _with_int8(model_with_export, holds=True)
    save(mean_pixel_model(32, np.full((1, 1, 3), 3.0)), int8)  # replaced after it was measured
    assert AgeModel.load(model_with_export).runtime == "onnx"
    with pytest.raises(ModelError, match="not the file its card's parity record measured"):
        AgeModel.load(model_with_export, runtime="int8")


def test_an_int8_record_measured_on_another_kind_of_cpu_is_not_trusted(model_with_export):
    """A record holds only for the int8 kernels it was measured with: another CPU's are refused,
    even when asked for (on an AVX2-only CPU the shipped models' ages moved by tens of years)."""
    other = "avx2" if int8_kernels() == "vnni" else "vnni"
    _with_int8(model_with_export, holds=True, kernels=other)
    assert AgeModel.load(model_with_export).runtime == "onnx"
    with pytest.raises(ModelError, match=f"measured with {other} int8 kernels and this CPU runs {int8_kernels()}"):
        AgeModel.load(model_with_export, runtime="int8")
    _with_int8(model_with_export, holds=True)
    assert AgeModel.load(model_with_export).runtime == "int8"


def test_the_machine_is_described_from_its_cpu():
    from agecam.core.hardware import machine, machine_text

    described = machine()
    assert described["cores"] >= 1 and described["cpu"] and described["int8_kernels"] == int8_kernels()
    flags = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").is_file() else ""
    if " avx2" in flags and "vnni" not in flags:
        assert int8_kernels() == "avx2"
    assert machine_text(described).startswith(described["cpu"]) and machine_text(None) == "not recorded"


INT8 = [name for name in TRAINED if (models_dir() / f"{name}.int8.onnx").is_file()]


def test_every_shipped_model_has_an_int8_model_and_a_parity_record():
    from agecam.core.model_card import read_card

    assert INT8 == TRAINED
    for name in INT8:
        record = read_card(models_dir() / f"{name}.json")["int8"]
        assert record["sha256"] == file_sha256(models_dir() / f"{name}.int8.onnx")
        assert record["source_sha256"] == file_sha256(models_dir() / f"{name}.keras")
        assert record["int8_kernels"]  # which CPUs the record speaks for (core.hardware.int8_kernels)


@pytest.mark.parametrize("name", INT8)
def test_shipped_int8_parity_record_is_what_the_test_split_gives(name, utk_full_dir):
    """The card's parity numbers are reproduced on the test split, and auto's choice follows its rule."""
    from agecam.core.model_card import read_card
    from agecam.training.data import load_arrays, scan_folder
    from agecam.training.evaluation.evaluate import predict_in_batches
    from agecam.training.split import effective_splits

    record = read_card(models_dir() / f"{name}.json")["int8"]
    if record["int8_kernels"] != int8_kernels():
        # Other kernels give other ages (the loader refuses the model here: the test above).
        pytest.skip(f"{name}'s int8 parity was measured with {record['int8_kernels']} int8 kernels; "
                    f"this CPU runs {int8_kernels()} ones")
    float_model, int8_model = AgeModel.load(name, runtime="onnx"), AgeModel.load(name, runtime="int8")
    splits = effective_splits(MANIFEST)
    records = [r for r in scan_folder(utk_full_dir).records if splits.get(r.name) == "test"]
    images, ages, _ = load_arrays(records, float_model.input_size, alignment=float_model.alignment)
    difference = np.abs(predict_in_batches(int8_model, images) - predict_in_batches(float_model, images))
    test, rule = record["test"], record["rule"]
    assert len(images) == test["n"]
    assert abs(float(difference.max()) - test["max_difference"]) < 0.01
    assert abs(float(np.mean(np.abs(predict_in_batches(int8_model, images) - ages))) - test["mae_int8"]) < 0.005
    holds = difference.max() <= rule["max_face_difference"] and abs(test["mae_int8"] - test["mae_float"]) <= rule["max_mae_difference"]
    assert record["holds"] == bool(holds)
    assert (AgeModel.load(name).runtime == "int8") == record["holds"]


def test_agecam_quantize_writes_the_int8_model_and_a_record_the_runtime_follows(tmp_path, utk_full_dir):
    """The real command on a copy of the shipped CNN: an int8 file, its record in the card, and
    --runtime auto choosing by that record (forced to hold, it is used; the file changed, it is not)."""
    import json
    import os

    from conftest import run_agecam

    for suffix in (".keras", ".onnx", ".json"):
        shutil.copy(models_dir() / f"cnn{suffix}", tmp_path / f"cnn{suffix}")
    env = {**os.environ, "AGECAM_MODELS": str(tmp_path)}
    done = run_agecam("quantize", "--model", "cnn", "--data", utk_full_dir, "--calibration-faces", "32", env=env)
    assert done.returncode == 0, done.stderr
    assert "cnn.int8.onnx" in done.stdout and "parity" in done.stdout and "Finding optimal" not in done.stdout
    record = json.loads((tmp_path / "cnn.json").read_text())["int8"]
    assert record["sha256"] == file_sha256(tmp_path / "cnn.int8.onnx")
    assert record["calibration"]["calibration_faces"] == 32 and record["calibration"]["method"] in ("minmax", "percentile")
    assert record["test"]["n"] > 2000 and 0 < record["test"]["mean_difference"] <= record["test"]["max_difference"]
    assert record["command"].startswith("agecam quantize --model cnn")
    card = json.loads((tmp_path / "cnn.json").read_text())
    card["int8"]["holds"] = True  # as if the rule had held
    (tmp_path / "cnn.json").write_text(json.dumps(card))
    assert AgeModel.load(tmp_path / "cnn.keras").runtime == "int8"
    ensemble = run_agecam("quantize", "--model", "ensemble", "--data", utk_full_dir)
    assert ensemble.returncode == 1 and "quantize its members" in ensemble.stderr and "Traceback" not in ensemble.stderr
