"""The robustness suite: every test face under each named perturbation of ``training.perturb``.

    agecam evaluate --data ../shared/data/utkface --split test --model cnn --robustness

For each perturbation: MAE and bias, and their change from the clean faces. The targets (issue #21):
a perturbation shifts the bias by at most 1.5 years and raises the MAE by at most 20% over clean
(40% for the harsh ones, :data:`training.perturb.HARSH_PERTURBATIONS`).

Example::

    report = robustness_report(model, faces_rgb_uint8, true_ages)
    report["CLAHE"]["bias_shift"]
"""

from __future__ import annotations

import numpy as np

from .evaluate import mean_signed_error, predict_in_batches
from ..metrics import regression_metrics
from ..perturb import HARSH_PERTURBATIONS, ROBUSTNESS_SUITE

MAX_BIAS_SHIFT = 1.5  # years
MAX_MAE_INCREASE = 0.20  # of the clean MAE; the harsh perturbations get twice that
MAX_MAE_INCREASE_HARSH = 0.40


def robustness_report(model, images: np.ndarray, ages: np.ndarray, batch_size: int = 64, progress=None,
                      suite=ROBUSTNESS_SUITE) -> dict:
    """``{name: {"n", "mae", "bias", "mae_increase", "bias_shift", "met"}}`` over ``suite`` for uint8
    faces already at the model's input size; ``progress(done, total)`` over all perturbations."""
    names = list(suite)
    results, clean = {}, None
    for step, name in enumerate(names):
        perturbed = np.stack([suite[name](np.asarray(image, np.uint8)) for image in images]) if len(images) else images
        counted = None if progress is None else (
            lambda done, total, step=step: progress(step * total + done, len(names) * total))
        predicted = predict_in_batches(model, perturbed, batch_size, counted)
        mae, bias = regression_metrics(ages, predicted)["mae"], mean_signed_error(ages, predicted)
        if clean is None:
            clean = (mae, bias)
        limit = MAX_MAE_INCREASE_HARSH if name in HARSH_PERTURBATIONS else MAX_MAE_INCREASE
        increase = mae / clean[0] - 1.0 if clean[0] > 0 else float("nan")
        shift = bias - clean[1]
        results[name] = {"n": int(len(ages)), "mae": mae, "bias": bias, "mae_increase": increase,
                         "bias_shift": shift, "met": bool(increase <= limit and abs(shift) <= MAX_BIAS_SHIFT)}
    return results
