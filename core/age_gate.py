"""Age-gate decisions: is this person over the threshold, under it, or should someone check?

A decision is read off one-sided bounds on the true age, fitted on held-out faces like the 80% range
(:mod:`core.age_range`): the same spread line, with the scores' 2% and 98% quantiles instead of the
10% and 90%. So for a face estimated at ``a``:

- ``low(a)``: the true age is at or above it 98% of the time,
- ``high(a)``: the true age is at or below it 98% of the time,

and for a gate at ``N`` years:

- ``over`` only when ``low >= N`` (a face is called over only when its lower bound clears the gate:
  at most about 2% of the faces whose true age is below ``low`` are, and far fewer of those under
  ``N``, most of whom are estimated well below it);
- ``under`` when ``high < N``;
- ``check`` otherwise: the evidence does not settle it (the Challenge 25 practice of asking for ID).

The bounds are stored in the model card (``age_range.gate``) by ``agecam calibrate``.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> true = rng.uniform(1, 80, 5000)
>>> bounds = fit_gate_bounds(true, true + rng.normal(0, 1 + 0.1 * true))
>>> gate = AgeGate(18, bounds)
>>> [verdict_name(v) for v in gate.decide([8.0, 18.0, 40.0])]
['under', 'check', 'over']
"""

from __future__ import annotations


import numpy as np

from .age_range import AgeRangeCalibration
from .config import AgeGateConfig
from .detections import Detections

CONFIDENCE = 0.98  # each bound holds the true age on its side this often
OVER, CHECK, UNDER, NO_VERDICT = 1, 0, -1, -2
VERDICTS = {OVER: "over", CHECK: "check", UNDER: "under"}


def verdict_name(code: int) -> str:
    """``over``, ``check`` or ``under``; ``""`` where no verdict was made (no gate, age unknown)."""
    return VERDICTS.get(int(code), "")


def fit_gate_bounds(y_true, y_pred, confidence: float = CONFIDENCE) -> AgeRangeCalibration:
    """The one-sided bounds fitted on held-out ``(true, predicted)`` ages: a two-sided interval of
    coverage ``2 * confidence - 1`` has each tail ``1 - confidence``."""
    return AgeRangeCalibration.fit(y_true, y_pred, coverage=2 * confidence - 1)


def gate_bounds_from_card(card: dict) -> AgeRangeCalibration | None:
    """The bounds stored in a model card (``age_range.gate.calibration``), or None."""
    gate = card.get("age_range", {}).get("gate") if isinstance(card, dict) else None
    return AgeRangeCalibration.from_card({"age_range": gate}) if isinstance(gate, dict) else None


def verdicts(low, high, threshold: int) -> np.ndarray:
    """Verdict codes for bounds ``low``, ``high`` at a gate of ``threshold`` years (NaN: no verdict)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    out = np.where(low >= threshold, OVER, np.where(high < threshold, UNDER, CHECK)).astype(np.int8)
    out[~(np.isfinite(low) & np.isfinite(high))] = NO_VERDICT
    return out


class AgeGate:
    """Decide ``over``/``under``/``check`` for every face from its shown age's 98% bounds.

    Example:

    >>> bounds = AgeRangeCalibration(coverage=0.96, intercept=2.0, slope=0.1, q_low=-2.0, q_high=2.0)
    >>> d = Detections(xyxy=[[0, 0, 9, 9], [20, 0, 29, 9]], age=[12.0, 45.0])
    >>> [verdict_name(v) for v in AgeGate(25, bounds).update_with_detections(d).verdict]
    ['under', 'over']
    """

    def __init__(self, threshold: int, bounds: AgeRangeCalibration):
        if isinstance(threshold, np.integer):
            threshold = int(threshold)
        self.threshold = AgeGateConfig(threshold).threshold  # checked there: a whole age, 1-100
        self.bounds = bounds

    def decide(self, ages) -> np.ndarray:
        """Verdict codes for estimated ``ages``."""
        return verdicts(*self.bounds.interval(ages), self.threshold)

    def update_with_detections(self, detections: Detections) -> Detections:
        """Set ``detections.verdict`` from ``detections.age``."""
        if len(detections):
            detections.verdict[:] = self.decide(detections.age)
        return detections


def gate_outcomes(y_true, codes, threshold: int, margin: float = 5.0) -> dict:
    """How a gate went on faces of known age: the share of those under ``threshold`` called ``over``
    (the error a gate must keep rare), the share of adults ``margin`` or more years over it called
    ``over`` (what it is for), and the share of all faces sent to ``check``."""
    y_true, codes = np.asarray(y_true, np.float64), np.asarray(codes)
    under, clear_adults = y_true < threshold, y_true >= threshold + margin

    def share(mask, verdict):
        return float(np.mean(codes[mask] == verdict)) if mask.any() else None

    return {"gate": int(threshold), "faces": int(y_true.size), "under_age": int(under.sum()),
            "under_age_called_over": share(under, OVER), "under_age_called_under": share(under, UNDER),
            f"adults_{margin:g}_over": int(clear_adults.sum()), "adults_called_over": share(clear_adults, OVER),
            "sent_to_check": share(np.ones(y_true.size, bool), CHECK)}
