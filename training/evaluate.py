"""Evaluate an age model on a folder of UTKFace-named face crops (no detection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.age_model import AgeModel
from training.data import ScanReport, load_arrays, scan_folder
from training.metrics import metrics_by_age_band, regression_metrics
from training.split import read_manifest

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


def predict_in_batches(model: AgeModel, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Ages for uint8/float images already at the model's input size."""
    ages = [model.predict_preprocessed(images[i : i + batch_size].astype(np.float32))
            for i in range(0, len(images), batch_size)]
    return np.concatenate(ages) if ages else np.zeros((0,), np.float32)


def metrics_report(y_true, y_pred) -> dict:
    """``{"n", "mae", "mse", "rmse", "by_age"}`` for true and predicted ages."""
    return {**regression_metrics(y_true, y_pred), "by_age": metrics_by_age_band(y_true, y_pred)}


def evaluate(config: EvaluateConfig, model: AgeModel | None = None) -> tuple[dict, ScanReport]:
    """Run ``model`` over the folder (or one split of it) and return the metrics and scan report."""
    model = model or AgeModel.load(config.model, config.runtime)
    report = scan_folder(config.data)
    records = report.records
    if config.split:
        if config.manifest is None or not Path(config.manifest).is_file():
            raise FileNotFoundError(f"split manifest not found: {config.manifest}")
        manifest = read_manifest(config.manifest)
        records = [r for r in records if manifest.get(r.name) == config.split]
        if not records:
            raise ValueError(f"no image of {config.data} is in the {config.split!r} split of {config.manifest}")
    images, ages, _ = load_arrays(records, model.input_size, report)
    predicted = predict_in_batches(model, images, config.batch_size)
    result = metrics_report(ages, predicted)
    result["skipped"] = dict(report.skipped)
    return result, report
