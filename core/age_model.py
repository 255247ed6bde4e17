"""Load an age model by name or path and estimate ages for batches of face crops."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import RUNTIMES
from .model_card import read_card
from .paths import SHIPPED_MODELS
from .preprocess import preprocess_face

log = logging.getLogger(__name__)

MODELS_ENV = "AGECAM_MODELS"
# Used only when no card carries "default": true (e.g. a folder of the user's own models).
DEFAULT_MODEL_ORDER = ("resnet50", "cnn")


def models_dir() -> Path:
    """Folder of the shipped models: the repository's models/, or $AGECAM_MODELS."""
    return Path(os.environ.get(MODELS_ENV, SHIPPED_MODELS))


class ModelError(Exception):
    """A model name or file that cannot be resolved or loaded."""




class KerasRunner:
    """Ages for preprocessed face batches, computed by the Keras model itself."""

    runtime = "keras"

    def __init__(self, keras_model, batch_size: int = 32, stored_float16: bool = False):
        self.keras_model = keras_model
        self.batch_size = batch_size
        self.stored_float16 = stored_float16  # the file holds float16 weights (run in float32)
        self.input_size = int(keras_model.input_shape[1])

    @classmethod
    def load(cls, path: Path) -> "KerasRunner":
        try:
            import keras  # imported here: loading Keras takes seconds, and the ONNX path does not need it
        except ImportError:
            raise ModelError(f"{path.name} runs on Keras, which is not installed (the ONNX runtime needs none): "
                             "pip install 'agecam[train]'") from None

        try:
            keras_model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # Keras raises many types for files that are not models
            raise ModelError(f"cannot load model {path}: {first_line(error)}") from error
        from .float16 import convert, is_float16

        stored_float16 = is_float16(keras_model)
        if stored_float16:  # stored in float16 to halve the file; run in float32
            keras_model = convert(keras_model, "float32")
        shape = keras_model.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ModelError(f"{path} is not an age model (input shape {shape}, expected square RGB)")
        return cls(keras_model, stored_float16=stored_float16)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        # predict_on_batch runs the compiled graph: ~3x faster per call than an eager model(x)
        # on this CPU (measured 9 ms vs 27 ms for one 96 px face).
        outputs = [np.asarray(self.keras_model.predict_on_batch(batch[i : i + self.batch_size]))
                   for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(outputs).reshape(-1).astype(np.float32)


def combined_runtime(runtimes) -> str:
    """The runtime of an ensemble whose members run on ``runtimes``: theirs, or ``mixed``."""
    kinds = set(runtimes)
    return kinds.pop() if len(kinds) == 1 else "mixed"


class EnsembleRunner:
    """The weighted mean of member models' ages; members may take different input sizes.

    One numeric path for live inference and evaluation alike: faces are preprocessed once at the
    largest member's size, and a smaller member gets that batch resized down (area interpolation),
    so a card's metrics measure exactly what users get.
    """

    def __init__(self, members: list["AgeModel"], weights: list[float]):
        if not members or len(weights) != len(members):
            raise ModelError(f"an ensemble needs one weight per member (got {len(members)} members, {len(weights)} weights)")
        self.members = members
        self.weights = np.asarray(weights, np.float32) / np.sum(weights)
        # Batches come at the largest member's size, so no member sees an enlarged face.
        self.input_size = max(m.input_size for m in members)
        self.runtime = combined_runtime(m.runtime for m in members)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Ages for a batch preprocessed at :attr:`input_size`; smaller members get it resized down."""
        return sum(w * m.predict_preprocessed(resize_batch(batch, m.input_size))
                   for w, m in zip(self.weights, self.members)).astype(np.float32)


def resize_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """A preprocessed batch at ``size`` pixels (area interpolation, as in preprocessing)."""
    if batch.shape[1] == size:
        return batch
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) for image in batch])


@dataclass
class AgeModel:
    """A loaded age model, its card, and the runtime that computes it.

    ``runtime="auto"`` uses the model's int8 model (``NAME.int8.onnx``) when its card's parity
    record says it matches the float model, else its ONNX export (``NAME.onnx`` beside
    ``NAME.keras``) with ONNX Runtime when one made from this very file is there, else Keras.

    Example::

        model = AgeModel.load("cnn")
        ages = model.predict([face_crop_bgr])
        model.runtime  # "int8", "onnx" or "keras"
    """

    runner: object  # KerasRunner or core.onnx_runner.OnnxRunner
    name: str
    path: Path
    card: dict

    @property
    def input_size(self) -> int:
        return self.runner.input_size

    @property
    def runtime(self) -> str:
        return self.runner.runtime

    @property
    def keras_model(self):
        """The Keras model (only when loaded with the Keras runtime)."""
        if not isinstance(self.runner, KerasRunner):
            raise ModelError(f"{self.name} runs on {self.runtime}; load it with runtime='keras' for the Keras model")
        return self.runner.keras_model

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None, runtime: str = "auto", threads: int = 0) -> "AgeModel":
        """Load a shipped model by name (``cnn``, ``resnet50``) or a ``.keras`` file by path.

        ``runtime``: ``auto`` (int8 when its parity holds, else ONNX Runtime when a matching export
        is there, else Keras), ``onnx`` (the float export; an error if there is none), ``int8`` (an
        error if there is none made from this file, a warning if it missed its parity rule) or ``keras``. ``threads``: ONNX Runtime's threads
        per model (0: its default, every core); Keras keeps TensorFlow's process-wide setting.
        """
        if runtime not in RUNTIMES:
            raise ModelError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
        path = resolve_model_path(name_or_path)
        if path.suffix == ".json":  # an ensemble: a card naming shipped member models
            card = _load_card(path)
            if "members" not in card:
                raise ModelError(f"{path} is not an ensemble card (it names no members)")
            members = [cls.load(path.parent / f"{name}.keras", runtime, threads) for name in card["members"]]
            if any(m.alignment is not None for m in members):
                raise ModelError(f"{path.name}: a member cut by keypoint alignment cannot share the ensemble's "
                                 "box crops")
            return cls(EnsembleRunner(members, card["member_weights"]), name=path.stem, path=path, card=card)
        card_path = path.with_suffix(".json")
        card = _load_card(card_path) if card_path.is_file() else {}
        runner = None
        if runtime in ("auto", "int8"):
            from .onnx_runner import matching_int8_runner

            runner, why_not = matching_int8_runner(path, card, threads, need_parity=runtime == "auto")
            if runner is None and runtime == "int8":
                raise ModelError(f"no usable int8 model of {path}: {why_not}")
            if runner is None:
                log.info("not running %s in int8: %s", path.name, why_not)
            elif not card["int8"].get("holds"):
                log.warning("%s in int8 missed its parity rule: ages differ from the float model's by up to "
                            "%.2f years", path.name, card["int8"]["test"]["max_difference"])
        if runner is None and runtime != "keras":
            from .onnx_runner import matching_onnx_runner

            runner, why_not = matching_onnx_runner(path, threads)
            if runner is None and runtime == "onnx":
                raise ModelError(f"no usable ONNX export of {path}: {why_not}")
            if runner is None:
                log.info("running %s with Keras: %s", path.name, why_not)
        runner = runner or KerasRunner.load(path)
        return cls(runner, name=path.stem, path=path, card=card)

    @property
    def alignment(self):
        """How the model's faces are cut (:class:`core.align.ChipAlignment`): None for a model trained on
        box crops (:func:`core.crop.crop_faces`)."""
        from .align import ChipAlignment

        return ChipAlignment.from_card(self.card)

    def cut_faces(self, frame_bgr: np.ndarray, detections, crop) -> list[np.ndarray]:
        """The faces of ``detections`` cut from the frame as this model was trained to see them: aligned
        chips at its input size when its card has an alignment, else box crops by ``crop``
        (a :class:`core.crop.CropConfig`)."""
        alignment = self.alignment
        if alignment is not None:
            return alignment.cut(frame_bgr, detections, self.input_size)
        from .crop import crop_faces

        return crop_faces(frame_bgr, detections, crop)

    @property
    def age_range(self):
        """The model's calibrated age range (:class:`core.age_range.AgeRangeCalibration`), or None."""
        from .age_range import AgeRangeCalibration

        return AgeRangeCalibration.from_card(self.card)

    @property
    def gate_bounds(self):
        """The model's one-sided 98% bounds for age-gate decisions (:mod:`core.age_gate`), or None."""
        from .age_gate import gate_bounds_from_card

        return gate_bounds_from_card(self.card)

    def require_gate_bounds(self):
        """:attr:`gate_bounds`, or ``ModelError`` saying how to fit them when the card has none."""
        bounds = self.gate_bounds
        if bounds is None:
            raise ModelError(f"model {self.name} has no age-gate calibration in its card; "
                             f"run agecam calibrate --model {self.name} to fit it")
        return bounds

    def predict_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        """Ages for a float32 batch already made by :func:`core.preprocess.preprocess_face`."""
        if len(batch) == 0:
            return np.zeros((0,), np.float32)
        return self.runner(batch)

    def predict(self, faces_bgr: list[np.ndarray]) -> np.ndarray:
        """Ages (years, float32) for a list of BGR face crops, all in one batch."""
        if not faces_bgr:
            return np.zeros((0,), np.float32)
        # Every runner, an ensemble included, takes a batch at its input size (see EnsembleRunner).
        batch = np.stack([preprocess_face(face, self.input_size) for face in faces_bgr])
        return self.predict_preprocessed(batch)


def available_models(folder: Path | None = None) -> list[str]:
    """Names of the models shipped in ``folder`` (default :func:`models_dir`): ``.keras`` files
    and ensembles (cards with ``"members"``)."""
    folder = Path(folder or models_dir())
    return sorted({p.stem for p in folder.glob("*.keras")} | {p.stem for p in folder.glob("*.json") if is_ensemble(p)})


def is_ensemble(card_path: Path) -> bool:
    """Whether ``card_path`` is an ensemble's card (the weights are its members')."""
    return "members" in _read_card(card_path)


def load_cards(folder: Path | None = None) -> dict[str, dict]:
    """Every shipped model's card (ensembles included), by model name."""
    folder = Path(folder or models_dir())
    return {name: read_card(folder / f"{name}.json")
            for name in available_models(folder) if (folder / f"{name}.json").is_file()}


def _read_card(card_path: Path) -> dict:
    """A card's content; empty when the file is missing or unusable (for telling what a file is)."""
    try:
        return read_card(card_path)
    except (OSError, ValueError):
        return {}


def _load_card(card_path: Path) -> dict:
    """A model's card, or :class:`ModelError` with the one-line reason it cannot be used."""
    try:
        return read_card(card_path)
    except (OSError, ValueError) as error:
        raise ModelError(str(error)) from None


def default_model_name(folder: Path | None = None) -> str:
    """The shipped model the tools use by default: the card's ``default`` flag, else by order."""
    folder = Path(folder or models_dir())
    names = available_models(folder)
    if not names:
        raise ModelError(f"no model in {folder}; train one with 'agecam train' or pass --model PATH")
    for name in names:
        card_path = folder / f"{name}.json"
        if card_path.is_file() and _read_card(card_path).get("default"):
            return name
    for name in DEFAULT_MODEL_ORDER:
        if name in names:
            return name
    return names[0]


def resolve_model_path(name_or_path: str | os.PathLike | None, folder: Path | None = None) -> Path:
    """Turn a model name, a path or None (the default model) into an existing file path."""
    folder = Path(folder or models_dir())
    if name_or_path is None:
        name_or_path = default_model_name(folder)
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix == ".keras" or os.sep in text or candidate.exists():
        if not candidate.is_file():
            raise ModelError(f"model file not found: {candidate}")
        return candidate
    shipped = folder / f"{text}.keras"
    if not shipped.is_file() and is_ensemble(folder / f"{text}.json"):
        return folder / f"{text}.json"
    if not shipped.is_file():
        known = ", ".join(available_models(folder)) or "none"
        raise ModelError(f"unknown model {text!r} (shipped: {known}); give a name or a .keras path")
    return shipped


def first_line(error: Exception) -> str:
    """The first line of an exception's message (library errors can be pages long)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
