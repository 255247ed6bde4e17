"""Measure a trained model the way the product is judged, and record it in the model card.

    agecam calibrate --model cnn --data ../shared/data/utkface --part1 ../shared/data/utkface-crop-part1

One pass over the split manifest's validation and test faces (near-duplicates of training
faces left out of test, see ``training.split``):

- clean metrics on the validation split, the whole test split and the test faces of the
  ``--part1`` folder (the 879 crop-part1 test faces earlier figures refer to, less dropped copies);
- the calibrated 80% age range (``core.age_range``) fitted on validation, with its coverage on
  both test sets, overall and per age band. The fit sees each validation face twice: as it is and
  once as a camera or photo app might render it (one seeded draw of the training augmentation's
  photometric and degradation changes, no geometry), so the range allows for the spread that
  faces from other cameras and sources add, not only for UTKFace's own (issue #21: on FG-NET the
  clean-only fit held the true age 55% of the time);
- the age gate's one-sided 98% bounds (``core.age_gate``), fitted on the same validation faces, and
  how gates at 18 and 25 decide on both test sets (minors called over, clear adults called over, the
  share sent to check);
- the degraded evaluation: each test face re-rendered at effective widths 32/48/64/96 px with
  JPEG quality 50 (``training.degrade``), MAE and bias per width;
- the robustness suite (``training.evaluation.robustness``) on the test split: MAE and bias per perturbation.

The card gains ``metrics.test_part1``, ``age_range``, ``degraded`` and ``robustness``; ``metrics.val`` and
``metrics.test`` are replaced by this pass's numbers, and ``assessed`` records when and how.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from agecam.core.age_model import AgeModel, ModelError
from agecam.core.age_gate import CONFIDENCE, fit_gate_bounds
from agecam.core.age_range import AgeRangeCalibration
from agecam.core.model_card import update_card
from ..data import load_arrays, scan_folder
from .evaluate import (degraded_metrics, degraded_predictions, gate_report, metrics_report,
                                      predict_in_batches, range_report)
from .robustness import robustness_report
from ..split import DEFAULT_MANIFEST, effective_splits

log = logging.getLogger(__name__)

DEGRADE_WIDTHS = (32, 48, 64, 96)


@dataclass(frozen=True)
class AssessConfig:
    """The data to measure on and the range's nominal coverage."""

    data: Path
    part1: Path | None = None
    manifest: Path = DEFAULT_MANIFEST
    coverage: float = 0.8
    widths: tuple[int, ...] = DEGRADE_WIDTHS
    batch_size: int = 64
    shifted_calibration: bool = True  # fit the range on clean and camera-rendered validation faces
    seed: int = 21
    robustness_faces: int = 1000  # test faces the robustness suite renders 18 ways


def camera_renderings(images: np.ndarray, seed: int) -> np.ndarray:
    """Each uint8 face once through the training augmentation's photometric and degradation changes
    (seeded; no flip, shift, zoom or rotation: the crop stays the pipeline's)."""
    from ..augment import AugmentConfig, camera_rendering

    config = AugmentConfig()
    rng = np.random.default_rng(seed)
    return np.stack([camera_rendering(np.asarray(image, np.uint8), rng, config) for image in images])


def card_path_of(model: AgeModel) -> Path:
    """Where a loaded model's card lives: ``NAME.json`` beside the model (an ensemble is its card)."""
    return model.path if model.path.suffix == ".json" else model.path.with_suffix(".json")


def assess(model: AgeModel, config: AssessConfig, command: str | None = None) -> dict:
    """Measure ``model`` (see the module docstring), write the results into its card, return the card."""
    splits = effective_splits(config.manifest)
    report = scan_folder(config.data)
    by_split = {name: [r for r in report.records if splits.get(r.name) == name] for name in ("val", "test")}
    if not by_split["val"] or not by_split["test"]:
        raise ModelError(f"{config.data} has no validation or test faces in {config.manifest}")
    part1_names = {r.name for r in scan_folder(config.part1).records} if config.part1 else set()

    x_val, y_val, _ = load_arrays(by_split["val"], model.input_size, report, alignment=model.alignment)
    x_test, y_test, kept_test = load_arrays(by_split["test"], model.input_size, report, alignment=model.alignment)
    val_pred = predict_in_batches(model, x_val, config.batch_size)
    test_pred = predict_in_batches(model, x_test, config.batch_size)
    fit_true, fit_pred = y_val, val_pred
    if config.shifted_calibration:
        shifted_pred = predict_in_batches(model, camera_renderings(x_val, config.seed), config.batch_size)
        fit_true, fit_pred = np.concatenate([y_val, y_val]), np.concatenate([val_pred, shifted_pred])
    calibration = AgeRangeCalibration.fit(fit_true, fit_pred, config.coverage)
    gate_bounds = fit_gate_bounds(fit_true, fit_pred)
    in_part1 = np.array([r.name in part1_names for r in kept_test], bool)

    card_path = card_path_of(model)
    card = dict(model.card) if model.card else {}
    metrics = dict(card.get("metrics", {}))
    metrics["val"] = metrics_report(y_val, val_pred)
    metrics["test"] = metrics_report(y_test, test_pred)
    sets = {"test": np.ones(len(y_test), bool)}
    if in_part1.any():
        metrics["test_part1"] = metrics_report(y_test[in_part1], test_pred[in_part1])
        sets["test_part1"] = in_part1
    card["metrics"] = metrics
    from ..train import target_status  # Keras is loaded already to run the model

    target = target_status(card.get("architecture", ""), metrics.get("test_part1", metrics["test"])["mae"])
    if target is not None:
        card["target"] = {**target, "measured_on": "test_part1" if "test_part1" in metrics else "test"}
    card["age_range"] = {
        "method": ("split-conformal on validation residuals scaled by a spread linear in the predicted age"
                   + ("; each validation face counted clean and once camera-rendered (training augmentation's "
                      "photometric and degradation changes, seeded)" if config.shifted_calibration else "")),
        "calibration": calibration.to_dict(),
        **{name: range_report(calibration, y_test[mask], test_pred[mask]) for name, mask in sets.items()},
        "gate": {"method": f"one-sided {CONFIDENCE:.0%} bounds: the same fit with the scores' "
                           f"{1 - CONFIDENCE:.0%} and {CONFIDENCE:.0%} quantiles (core.age_gate)",
                 "calibration": gate_bounds.to_dict(),
                 **{name: gate_report(gate_bounds, y_test[mask], test_pred[mask]) for name, mask in sets.items()}},
    }
    degraded = degraded_predictions(model, x_test, config.widths, config.batch_size)  # once, then per subset
    card["degraded"] = {name: degraded_metrics(y_test[mask], {w: p[mask] for w, p in degraded.items()})
                        for name, mask in sets.items()}
    # The suite on a fixed, seeded sample of the test split (18 renderings of every face would cost
    # an ensemble half an hour on this CPU); the sample is recorded with the results.
    sample = np.sort(np.random.default_rng(config.seed).permutation(len(y_test))[:config.robustness_faces])
    card["robustness"] = {"test": robustness_report(model, x_test[sample], y_test[sample], config.batch_size),
                          "faces": int(len(sample)), "sample": f"{len(sample)} test faces, seed {config.seed}"}
    card["assessed"] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "data": str(config.data), "part1": str(config.part1) if config.part1 else None,
                        "runtime": model.runtime, "command": command}
    assessed = ("metrics", "target", "age_range", "degraded", "robustness", "assessed")
    card = update_card(card_path, lambda stored: stored.update({k: card[k] for k in assessed if k in card}))
    log.info("%s: test MAE %.2f; 80%% range coverage on test %.3f; MAE at 48/64 px %s", model.name,
             metrics["test"]["mae"], card["age_range"]["test"]["coverage"],
             [round(card["degraded"]["test"][str(w)]["mae"], 2) for w in config.widths if w in (48, 64)])
    return card


def command_line(model: str | None, config: AssessConfig) -> str:
    """The command that reproduces an assessment (stored in the card)."""
    parts = ["agecam", "calibrate", "--model", model or "(default)", "--data", str(config.data)]
    if config.part1:
        parts += ["--part1", str(config.part1)]
    if config.robustness_faces != AssessConfig.robustness_faces:
        parts += ["--robustness-faces", str(config.robustness_faces)]
    return shlex.join(parts)
