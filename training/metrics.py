"""Regression metrics for age: MAE, MSE, RMSE, overall and per age band."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .split import AGE_BANDS, age_band


def regression_metrics(y_true, y_pred) -> dict:
    """Return ``{"n", "mae", "mse", "rmse"}`` for two equal-length sequences of ages.

    >>> regression_metrics([10, 20], [12, 16])
    {'n': 2, 'mae': 3.0, 'mse': 10.0, 'rmse': 3.1622776601683795}
    """
    y_true = np.asarray(y_true, np.float64).ravel()
    y_pred = np.asarray(y_pred, np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"length mismatch: {y_true.size} true vs {y_pred.size} predicted ages")
    if y_true.size == 0:
        return {"n": 0, "mae": math.nan, "mse": math.nan, "rmse": math.nan}
    error = y_pred - y_true
    mse = float(np.mean(error**2))
    return {"n": int(y_true.size), "mae": float(np.mean(np.abs(error))), "mse": mse, "rmse": math.sqrt(mse)}


def metrics_by_age_band(y_true, y_pred) -> dict[str, dict]:
    """Metrics per age band of the true age, in band order; empty bands are left out."""
    groups: dict[str, list[int]] = defaultdict(list)
    y_true = np.asarray(y_true, np.float64).ravel()
    y_pred = np.asarray(y_pred, np.float64).ravel()
    for i, age in enumerate(y_true):
        groups[age_band(age)].append(i)
    ordered = [age_band(low) for low, _ in AGE_BANDS]
    return {band: regression_metrics(y_true[groups[band]], y_pred[groups[band]]) for band in ordered if band in groups}
