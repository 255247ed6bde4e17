"""Int8 versions of the shipped ONNX exports, with the parity record that decides whether they run.

ONNX Runtime's static quantization (QDQ, int8 weights per output channel, uint8 activations:
the u8s8 kernels this CPU's AVX512-VNNI runs) calibrated on training-split faces. The result
``models/NAME.int8.onnx`` is then measured against the float export on every test-split face, and
the card records the measures and the rule (issue #26): every face within
:attr:`QuantizeConfig.max_face_difference` years of the float model and the test MAE within
:attr:`QuantizeConfig.max_mae_difference`. ``--runtime auto`` takes the int8 model only while
that record says the rule holds for this very file (:func:`core.onnx_runner.matching_int8_runner`).

Example (``agecam quantize --model cnn --data ../shared/data/utkface`` does this)::

    record = quantize_model("cnn", QuantizeConfig(data=Path("../shared/data/utkface")))
    record["holds"], record["test"]["max_difference"]
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agecam.core.age_model import AgeModel, ModelError, resolve_model_path
from agecam.core.atomic import atomic_path
from agecam.core.model_card import read_card, update_card
from agecam.core.hardware import int8_kernels
from agecam.core.onnx_runner import INT8_SUFFIX, SOURCE_DIGEST_KEY, OnnxRunner, file_sha256
from .data import load_arrays, scan_folder
from .evaluation.evaluate import predict_in_batches
from .onnx_graph import fold_into_conv, optimize_graph, widen_float16
from .split import DEFAULT_MANIFEST, effective_splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizeConfig:
    """How to quantize and when the int8 model may stand in for the float one."""

    data: Path
    manifest: Path = DEFAULT_MANIFEST
    calibration_faces: int = 512  # training-split faces, a seeded sample
    seed: int = 0
    # Issue #26's parity rule, fixed before any result.
    max_face_difference: float = 0.5  # years, on every test-split face
    max_mae_difference: float = 0.05  # years of test MAE
    # The age head is a small share of the cost and the most sensitive to rounding.
    float_op_types: tuple[str, ...] = ("Gemm", "MatMul")
    # How activation ranges are read from the calibration faces; the one with the smallest largest
    # difference from the float model on validation-split faces is kept (never chosen on test).
    methods: tuple[str, ...] = ("minmax", "percentile")


def split_records(config: QuantizeConfig, split: str):
    splits = effective_splits(config.manifest)
    records = [r for r in scan_folder(config.data).records if splits.get(r.name) == split]
    if not records:
        raise ModelError(f"no {split}-split faces of {config.manifest.name} in {config.data}")
    return records


def calibration_images(config: QuantizeConfig, size: int, alignment=None) -> np.ndarray:
    records = split_records(config, "train")
    rng = np.random.default_rng(config.seed)
    chosen = rng.choice(len(records), min(config.calibration_faces, len(records)), replace=False)
    images, _, _ = load_arrays([records[i] for i in sorted(chosen)], size, alignment=alignment)
    return images.astype(np.float32)


def quantized_model(float_path: Path, images: np.ndarray, config: QuantizeConfig, method: str = "minmax"):
    """The int8 ``onnx.ModelProto`` of the float export at ``float_path``, calibrated on ``images``
    with ``method`` (``minmax``: the full range seen; ``percentile``: 99.999% of it, outliers clipped)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    prepared = widen_float16(onnx.load(str(float_path)))
    prepared, _ = fold_into_conv(optimize_graph(prepared))  # older exports were not folded yet
    input_name = prepared.graph.input[0].name
    keep_float = [n.name for n in prepared.graph.node if n.op_type in config.float_op_types]

    class Faces(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: images[i : i + 16]} for i in range(0, len(images), 16)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(prepared, str(source))
        advice = _WithoutAdvice()  # the graph was already prepared (optimize_graph, fold_into_conv)
        logging.getLogger().addFilter(advice)
        try:  # the percentile calibrator prints its progress: kept off the command's output
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(str(source), str(target), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                                calibrate_method=CALIBRATION_METHODS[method](CalibrationMethod),
                                nodes_to_exclude=keep_float)
        finally:
            logging.getLogger().removeFilter(advice)
        return onnx.load(str(target))


class _WithoutAdvice(logging.Filter):
    """Drops ONNX Runtime's "consider pre-processing" warning, logged on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


CALIBRATION_METHODS = {"minmax": lambda m: m.MinMax, "percentile": lambda m: m.Percentile}


def parity(float_ages: np.ndarray, int8_ages: np.ndarray, true_ages: np.ndarray, config: QuantizeConfig) -> dict:
    """The int8 model's agreement with the float one on the same faces, and whether the rule holds."""
    difference = np.abs(int8_ages - float_ages)
    mae_float = float(np.mean(np.abs(float_ages - true_ages)))
    mae_int8 = float(np.mean(np.abs(int8_ages - true_ages)))
    measures = {"n": int(len(difference)), "max_difference": round(float(difference.max()), 3),
                "p99_difference": round(float(np.percentile(difference, 99)), 3),
                "mean_difference": round(float(difference.mean()), 3),
                "within_rule": round(float(np.mean(difference <= config.max_face_difference)), 4),
                "mae_float": round(mae_float, 3), "mae_int8": round(mae_int8, 3)}
    holds = difference.max() <= config.max_face_difference and abs(mae_int8 - mae_float) <= config.max_mae_difference
    return {**measures, "holds": bool(holds)}


def quantize_model(name: str, config: QuantizeConfig, command: str = "") -> dict:
    """Write ``NAME.int8.onnx`` beside the shipped model ``name`` and its parity record into the card."""
    import onnx

    from .export_onnx import set_metadata

    keras_path = resolve_model_path(name)
    if keras_path.suffix != ".keras":
        members = read_card(keras_path).get("members", [])
        raise ModelError(f"{name} is an ensemble: quantize its members ({', '.join(members)})")
    float_model = AgeModel.load(keras_path, runtime="onnx")  # an error if the float export is missing or stale
    size = float_model.input_size
    alignment = float_model.alignment  # the model's own framing (aligned chips or box crops)
    calibration = calibration_images(config, size, alignment)
    val_images, _, _ = load_arrays(split_records(config, "val"), size, alignment=alignment)
    val_float = predict_in_batches(float_model, val_images)
    best, val_differences = None, {}
    for method in config.methods:
        log.info("calibrating %s on %d training-split faces (%s)", name, len(calibration), method)
        candidate = quantized_model(float_model.runner.path, calibration, config, method)
        val_int8 = predict_in_batches(AgeModel(OnnxRunner.from_proto(candidate), name, keras_path, {}), val_images)
        val_differences[method] = round(float(np.abs(val_int8 - val_float).max()), 3)
        if best is None or val_differences[method] < val_differences[best[0]]:
            best = method, candidate
    method, proto = best
    source_digest = file_sha256(keras_path)
    set_metadata(proto, {SOURCE_DIGEST_KEY: source_digest, "agecam_source_file": keras_path.name,
                         "agecam_weights_storage": "int8 per channel (QDQ), uint8 activations"})
    target = keras_path.with_name(keras_path.stem + INT8_SUFFIX)
    images, ages, _ = load_arrays(split_records(config, "test"), size, alignment=alignment)
    float_ages = predict_in_batches(float_model, images)
    with atomic_path(target) as tmp_path:
        onnx.save(proto, str(tmp_path))
        int8_ages = predict_in_batches(AgeModel(OnnxRunner.load(tmp_path), name, keras_path, {}), images)
    record = {"file": target.name, "sha256": file_sha256(target), "source_sha256": source_digest,
              "int8_kernels": int8_kernels(),  # the record speaks for CPUs of this kind only
              "rule": {"max_face_difference": config.max_face_difference,
                       "max_mae_difference": config.max_mae_difference},
              "test": parity(float_ages, int8_ages, ages, config),
              "calibration": {**{k: v for k, v in asdict(config).items() if k not in ("data", "manifest")},
                              "method": method, "val_max_difference": val_differences},
              "command": command}
    record["holds"] = record["test"].pop("holds")
    update_card(keras_path.with_suffix(".json"), lambda card: card.__setitem__("int8", record))
    return record
