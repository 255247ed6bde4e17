"""Evaluate an age model on a folder of UTKFace-named face crops (no detection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agecam.core.age_model import AgeModel
from ..data import DataError, ScanReport, load_arrays, scan_folder
from ..metrics import metrics_by_age_band, regression_metrics
from ..split import effective_splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate: a data folder, optionally only one split of a manifest."""

    data: Path
    model: str | None = None
    runtime: str = "auto"
    split: str | None = None  # "train", "val" or "test"; None means every image in the folder
    manifest: Path | None = None
    batch_size: int = 64
    degrade: tuple[int, ...] = ()  # effective face widths for the degraded evaluation (training.degrade)
    robustness: bool = False  # also run the robustness suite (training.evaluation.robustness)
    figures: Path | None = None  # also draw the model's figures (training.plots) into this folder
    assurance: bool = False  # also the age-assurance figures by sex and race (training.evaluation.assurance)
    record: bool = False  # write the age-assurance figures into the model's card (assurance.DATA-SPLIT)


def predict_in_batches(model: AgeModel, images: np.ndarray, batch_size: int = 64, progress=None) -> np.ndarray:
    """Ages for uint8/float images already at the model's input size; ``progress(done, total)`` after
    each batch."""
    ages = []
    for start in range(0, len(images), batch_size):
        ages.append(model.predict_preprocessed(images[start : start + batch_size].astype(np.float32)))
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(ages) if ages else np.zeros((0,), np.float32)


def metrics_report(y_true, y_pred) -> dict:
    """``{"n", "mae", "mse", "rmse", "bias", "by_age"}`` for true and predicted ages."""
    return {**regression_metrics(y_true, y_pred), "bias": mean_signed_error(y_true, y_pred),
            "by_age": metrics_by_age_band(y_true, y_pred)}


def mean_signed_error(y_true, y_pred) -> float:
    """Mean of predicted minus true age (negative: faces read too young)."""
    error = np.asarray(y_pred, np.float64).ravel() - np.asarray(y_true, np.float64).ravel()
    return float(error.mean()) if error.size else float("nan")


def degraded_predictions(model: AgeModel, images: np.ndarray, widths, batch_size: int = 64,
                         progress=None) -> dict[int, np.ndarray]:
    """Ages per effective face width, each face re-rendered there with JPEG quality 50
    (:func:`training.degrade.render_at_width`); ``progress(done, total)`` over all widths' faces."""
    from ..degrade import render_at_width

    out = {}
    for step, width in enumerate(widths):
        small = np.stack([render_at_width(image, width) for image in images]) if len(images) else images
        counted = None if progress is None else (
            lambda done, total, step=step: progress(step * total + done, len(widths) * total))
        out[width] = predict_in_batches(model, small, batch_size, counted)
    return out


def degraded_metrics(ages: np.ndarray, predictions: dict[int, np.ndarray]) -> dict:
    """MAE and bias per width from :func:`degraded_predictions`."""
    from ..degrade import EVAL_JPEG_QUALITY

    return {str(width): {"n": int(len(ages)), "mae": regression_metrics(ages, predicted)["mae"],
                         "bias": mean_signed_error(ages, predicted), "jpeg_quality": EVAL_JPEG_QUALITY}
            for width, predicted in predictions.items()}


def degraded_report(model: AgeModel, images: np.ndarray, ages: np.ndarray, widths, batch_size: int = 64,
                    progress=None) -> dict:
    """MAE and bias per effective face width (see :func:`degraded_predictions`)."""
    return degraded_metrics(ages, degraded_predictions(model, images, widths, batch_size, progress))


def coverage_by_band(y_true, low, high) -> dict:
    """Per age band of the true age: ``{"n", "coverage"}`` of the ranges ``[low, high]``."""
    from agecam.core.age_range import coverage_of
    from ..split import AGE_BANDS, age_band

    y_true = np.asarray(y_true, np.float64)
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    bands = np.array([age_band(a) for a in y_true])
    by_band = {}
    for low_age, _ in AGE_BANDS:
        band = age_band(low_age)
        mask = bands == band
        if mask.any():
            by_band[band] = {"n": int(mask.sum()), "coverage": coverage_of(y_true[mask], low[mask], high[mask])}
    return by_band


def range_report(calibration, y_true, y_pred) -> dict:
    """Coverage of the calibrated age ranges, overall and per age band of the true age."""
    from agecam.core.age_range import coverage_of

    low, high = calibration.interval(y_pred)
    y_true = np.asarray(y_true, np.float64)
    return {"n": int(y_true.size), "coverage": coverage_of(y_true, low, high),
            "mean_width": float(np.mean(high - low)) if y_true.size else float("nan"),
            "by_age": coverage_by_band(y_true, low, high)}


GATES = (18, 25)  # the age gates measured and reported (docs/usage.md, "People, age gates and reports")


def gate_report(bounds, y_true, y_pred, gates=GATES) -> dict:
    """How age gates at ``gates`` decide on faces of known age with the one-sided ``bounds``
    (``core.age_gate``): per gate, the share of minors called over, of clear adults called over, sent
    to check (:func:`core.age_gate.gate_outcomes`)."""
    from agecam.core.age_gate import AgeGate, gate_outcomes

    return {str(gate): gate_outcomes(y_true, AgeGate(gate, bounds).decide(y_pred), gate) for gate in gates}


def evaluate(config: EvaluateConfig, model: AgeModel | None = None, progress=None) -> tuple[dict, ScanReport]:
    """Run ``model`` over the folder (or one split of it) and return the metrics and scan report.

    ``progress(stage, done, total)``, when given, hears how far each stage is: ``reading`` the images,
    ``predicting`` their ages, ``degraded`` (the re-rendered faces of ``config.degrade``), ``robustness``
    (the perturbed faces of the robustness suite)."""
    def stage(name):
        return None if progress is None else lambda done, total: progress(name, done, total)

    model = model or AgeModel.load(config.model, config.runtime)
    report = scan_folder(config.data)
    records = report.records
    if config.split:
        if config.manifest is None or not Path(config.manifest).is_file():
            raise FileNotFoundError(f"split manifest not found: {config.manifest}")
        manifest = effective_splits(config.manifest)  # near-duplicates of train faces left out of test
        records = [r for r in records if manifest.get(r.name) == config.split]
        if not records:
            raise ValueError(f"no image of {config.data} is in the {config.split!r} split of {config.manifest}")
    images, ages, kept = load_arrays(records, model.input_size, report, stage("reading"), alignment=model.alignment)
    if len(images) == 0:
        raise DataError(f"no readable image to evaluate in {config.data} ({report.summary()})")
    predicted = predict_in_batches(model, images, config.batch_size, stage("predicting"))
    result = metrics_report(ages, predicted)
    result["skipped"] = dict(report.skipped)
    if config.degrade:
        result["degraded"] = degraded_report(model, images, ages, config.degrade, config.batch_size,
                                             stage("degraded"))
    if config.robustness:
        from .robustness import robustness_report

        result["robustness"] = robustness_report(model, images, ages, config.batch_size, stage("robustness"))
    from agecam.core.age_range import AgeRangeCalibration

    calibration = AgeRangeCalibration.from_card(model.card)
    if calibration is not None:
        result["age_range"] = range_report(calibration, ages, predicted)
    if config.assurance:
        from .assurance import assurance_report

        result["assurance"] = assurance_report(ages, predicted, [r.gender for r in kept], [r.race for r in kept],
                                               model.gate_bounds)
        if config.record:
            from .assurance import record_in_card

            record_in_card(model, f"{Path(config.data).resolve().name}-{config.split or 'all'}", result["assurance"])
    if config.figures is not None:
        from ..plots import write_model_figures

        subset = f"{config.split} split" if config.split else Path(config.data).name
        card, stages = model.card, None
        if card.get("earlier_stages") and "metrics" in card:  # trained in stages, epoch losses not kept
            stages = (card["earlier_stages"], {"epochs": card["training"]["epochs_run"],
                                               "val_mae": card["metrics"]["val"]["mae"],
                                               "test_mae": card["metrics"]["test"]["mae"]})
        result["figures"] = [str(path) for path in write_model_figures(
            card.get("architecture", "model"), config.figures, ages, predicted, result["by_age"],
            card.get("training", {}).get("history"), subset, stages)]
    return result, report
