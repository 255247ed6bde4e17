"""Calibrated age ranges: an interval around each estimate that holds the true age ~80% of the time.

Split-conformal calibration on the validation split, with residuals scaled by a spread that
grows with the predicted age (errors for a 60-year-old are larger than for a 6-year-old):

- spread ``s(a) = max(min_spread, intercept + slope * a)``, fitted to |residual| on validation;
- the scores ``(true - predicted) / s(predicted)`` give the lower and upper quantiles
  ``q_low``, ``q_high`` (at ``(1 - coverage) / 2`` and ``(1 + coverage) / 2``, with the finite
  sample correction of split conformal prediction);
- the range of an estimate ``a`` is ``[a + q_low * s(a), a + q_high * s(a)]``, clipped at 0.

The two quantiles may differ, so a model that reads older faces too young gets a range
reaching further up than down. The calibration is stored in the model card (``age_range``).

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> true = rng.uniform(1, 80, 5000)
>>> predicted = true + rng.normal(0, 1 + 0.1 * true)
>>> calibration = AgeRangeCalibration.fit(true, predicted, coverage=0.8)
>>> low, high = calibration.interval(predicted)
>>> round(float(np.mean((true >= low) & (true <= high))), 2)
0.8
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class AgeRangeCalibration:
    """The fitted spread line and score quantiles of :mod:`core.age_range`."""

    coverage: float
    intercept: float
    slope: float
    q_low: float
    q_high: float
    min_spread: float = 1.0
    n: int = 0  # validation faces it was fitted on

    @classmethod
    def fit(cls, y_true, y_pred, coverage: float = 0.8, min_spread: float = 1.0) -> "AgeRangeCalibration":
        """Fit on held-out ``(true, predicted)`` ages (the validation split, never the test split)."""
        y_true = np.asarray(y_true, np.float64).ravel()
        y_pred = np.asarray(y_pred, np.float64).ravel()
        if y_true.size < 10 or y_true.shape != y_pred.shape:
            raise ValueError(f"need at least 10 pairs of true and predicted ages to calibrate, got {y_true.size}")
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must be between 0 and 1, got {coverage}")
        slope, intercept = np.polyfit(y_pred, np.abs(y_true - y_pred), 1)
        spread = np.maximum(min_spread, intercept + slope * y_pred)
        scores = (y_true - y_pred) / spread
        n = scores.size
        tail = (1 - coverage) / 2
        # Split-conformal ranks: the ceil((n + 1)(1 - tail))-th smallest score for the upper end.
        upper_rank = min(n, math.ceil((n + 1) * (1 - tail)))
        lower_rank = max(1, math.floor((n + 1) * tail))
        ordered = np.sort(scores)
        return cls(coverage=coverage, intercept=float(intercept), slope=float(slope),
                   q_low=float(ordered[lower_rank - 1]), q_high=float(ordered[upper_rank - 1]),
                   min_spread=min_spread, n=int(n))

    @classmethod
    def from_card(cls, card: dict) -> "AgeRangeCalibration | None":
        """The calibration stored in a model card, or None when it has none."""
        return stored_dataclass(cls, card, "age_range", "calibration")

    def to_dict(self) -> dict:
        return asdict(self)

    def interval(self, ages) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` arrays for the estimated ``ages`` (NaN stays NaN)."""
        ages = np.asarray(ages, np.float32)
        spread = np.maximum(self.min_spread, self.intercept + self.slope * ages)
        low = np.maximum(0.0, ages + self.q_low * spread)
        high = ages + self.q_high * spread
        return low.astype(np.float32), high.astype(np.float32)


def stored_dataclass(cls, card, section: str, key: str):
    """``cls`` made from the fields stored at ``card[section][key]``, or None when that is missing or
    does not fit ``cls`` (a card from an older or newer agecam)."""
    stored = (card.get(section) or {}).get(key) if isinstance(card, dict) else None
    if not isinstance(stored, dict):
        return None
    try:
        return cls(**{name: stored[name] for name in cls.__dataclass_fields__ if name in stored})
    except TypeError:
        return None


def coverage_of(y_true, low, high) -> float:
    """Share of true ages inside their ``[low, high]``."""
    y_true = np.asarray(y_true, np.float64)
    if y_true.size == 0:
        return math.nan
    return float(np.mean((y_true >= low) & (y_true <= high)))
