"""How far each age estimate can be trusted, from what the pipeline already has about the view.

Measures of a view (:func:`view_measures`):

- ``width``: the face box's width in pixels;
- ``score``: the detector's confidence;
- ``roll``: the tilt of the eye line, degrees (from MediaPipe's two eye keypoints);
- ``yaw``: how far the nose tip sits off the middle of the eyes, in eye distances (0 frontal,
  about 0.5 for a head turned ~45 degrees); the ears' visible spread would say the same, less steadily;
- ``pitch``: how far the nose tip sits below the eye line, in eye distances (about 0.55 upright and
  frontal; less when the head tips back, more when it tips forward);
- ``sharpness``: the variance of the Laplacian of the face crop read at 64x64 grey (so a face's size
  does not change it), on a log scale.

The expected error of an estimate relative to a clean view's (:class:`ViewQuality`) is
``exp(b . features)``, with features that are zero for a sharp, frontal, upright, confidently
found face of at least 100 px: ``log(100 / width)`` above 100 px is 0, ``|roll| / 30``, ``|yaw|``,
``|pitch|``, ``(1 - score)``, and how far the log sharpness falls below a sharp view's. The
coefficients ``b`` are fitted per model on held-out faces rendered at many sizes, rotations, yaw
warps, blurs and JPEG qualities (``training.evaluation.track_fusion``, ``agecam track-test``) and kept in the
model's card (``tracks.quality``); without them every view counts alike.

``quality`` = 1 / relative error, capped at 1: 1 for a view as good as a clean one, 0.5 for one
expected to err twice as much.

Example:

>>> import numpy as np
>>> quality = ViewQuality(coefficients={"small": 1.0, "yaw": 2.0})
>>> features = {"small": np.array([0.0, np.log(2)]), "yaw": np.array([0.0, np.log(2) / 2])}
>>> quality.relative_error(features).round(2).tolist()  # half the clean width, and turned: 2 x 2
[1.0, 4.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .detections import Detections

FEATURES = ("small", "roll", "yaw", "pitch", "weak", "blurred")
CLEAN_WIDTH = 100.0  # px: a face at least this wide loses nothing to size
# Defaults until fitted (the fit measures both on the clean views of held-out faces, per model's crop).
FRONTAL_PITCH = 0.55  # nose tip below the eye line, in eye distances, on upright frontal faces
SHARP_LOG_VARIANCE = 6.0  # log variance of the Laplacian of a sharp 64x64 face crop (about e^6 = 400)
MAX_RELATIVE_ERROR = 8.0  # a view is never trusted less than this (its estimate still counts)


def view_measures(detections: Detections, crops: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per face: ``width``, ``score``, ``roll``, ``yaw``, ``pitch`` and (with its crop) ``sharpness``
    (NaN where a measure cannot be read: keypoints missing, no crop)."""
    n = len(detections)
    points = detections.keypoints.astype(np.float64)
    right_eye, left_eye, nose = points[:, 0], points[:, 1], points[:, 2]
    eye_vector = left_eye - right_eye
    eye_distance = np.maximum(np.linalg.norm(eye_vector, axis=1), 1e-6)
    roll = np.degrees(np.arctan2(eye_vector[:, 1], eye_vector[:, 0]))
    # The nose relative to the eyes' middle, in the eye line's own frame (so roll does not read as yaw).
    unit = eye_vector / eye_distance[:, None]
    offset = nose - (right_eye + left_eye) / 2
    along = (offset * unit).sum(axis=1) / eye_distance
    across = (offset[:, 1] * unit[:, 0] - offset[:, 0] * unit[:, 1]) / eye_distance
    sharpness = np.full(n, np.nan)
    if crops is not None:
        sharpness = np.array([crop_sharpness(crop) for crop in crops], np.float64)
    return {"width": (detections.xyxy[:, 2] - detections.xyxy[:, 0]).astype(np.float64),
            "score": detections.confidence.astype(np.float64), "roll": roll, "yaw": along,
            "pitch": across, "sharpness": sharpness}


def crop_sharpness(crop_bgr: np.ndarray) -> float:
    """log(1 + variance of the Laplacian) of the crop read at 64x64 grey."""
    grey = cv2.cvtColor(cv2.resize(crop_bgr, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return float(np.log1p(cv2.Laplacian(grey, cv2.CV_64F).var()))


def quality_features(measures: dict[str, np.ndarray], frontal_pitch: float = FRONTAL_PITCH,
                     sharp_log_variance: float = SHARP_LOG_VARIANCE) -> dict[str, np.ndarray]:
    """The measures as features that are 0 for a clean view and grow as it gets worse (NaN -> 0:
    what cannot be read does not count against a view)."""
    def clean(values):
        return np.nan_to_num(np.asarray(values, np.float64), nan=0.0)

    width = np.maximum(np.nan_to_num(measures["width"], nan=CLEAN_WIDTH), 1.0)
    return {"small": np.maximum(0.0, np.log(CLEAN_WIDTH / width)),
            "roll": np.abs(clean(measures["roll"])) / 30.0,
            "yaw": np.abs(clean(measures["yaw"])),
            "pitch": np.abs(np.nan_to_num(measures["pitch"], nan=frontal_pitch) - frontal_pitch),
            "weak": np.clip(1.0 - np.nan_to_num(measures["score"], nan=1.0), 0.0, 1.0),
            "blurred": np.maximum(0.0, sharp_log_variance - np.nan_to_num(measures["sharpness"], nan=sharp_log_variance))}


@dataclass(frozen=True)
class ViewQuality:
    """The fitted expected-error model of :mod:`core.quality` (see there): one coefficient per feature."""

    coefficients: dict = field(default_factory=dict)
    frontal_pitch: float = FRONTAL_PITCH
    sharp_log_variance: float = SHARP_LOG_VARIANCE
    n: int = 0  # views it was fitted on

    @classmethod
    def from_card(cls, card: dict) -> "ViewQuality":
        """The card's fitted model (``tracks.quality``), or one that counts every view alike."""
        stored = (card.get("tracks") or {}).get("quality") if isinstance(card, dict) else None
        if not isinstance(stored, dict) or not isinstance(stored.get("coefficients"), dict):
            return cls()
        return cls({k: float(v) for k, v in stored["coefficients"].items() if k in FEATURES},
                   float(stored.get("frontal_pitch", FRONTAL_PITCH)),
                   float(stored.get("sharp_log_variance", SHARP_LOG_VARIANCE)), int(stored.get("n", 0)))

    def to_dict(self) -> dict:
        return {"coefficients": dict(self.coefficients), "frontal_pitch": self.frontal_pitch,
                "sharp_log_variance": self.sharp_log_variance, "n": self.n}

    @property
    def fitted(self) -> bool:
        return bool(self.coefficients)

    def relative_error(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Each view's expected error relative to a clean view's, 1 to ``MAX_RELATIVE_ERROR``."""
        n = len(next(iter(features.values()))) if features else 0
        log_error = np.zeros(n)
        for name, coefficient in self.coefficients.items():
            log_error += max(coefficient, 0.0) * features[name]  # worse views never err less
        return np.clip(np.exp(log_error), 1.0, MAX_RELATIVE_ERROR)

    def assess(self, detections: Detections, crops: list[np.ndarray] | None = None) -> np.ndarray:
        """Relative expected errors of the faces' views (see :meth:`relative_error`)."""
        return self.relative_error(self.features(view_measures(detections, crops)))

    def features(self, measures: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return quality_features(measures, self.frontal_pitch, self.sharp_log_variance)


def quality_of(relative_error) -> np.ndarray:
    """The 0-1 quality shown to users: 1 / relative error."""
    return (1.0 / np.asarray(relative_error, np.float64)).astype(np.float32)
