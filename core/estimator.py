"""The age stage: decide which faces need a fresh estimate, crop them, infer in one batch."""

from __future__ import annotations


import numpy as np

from contextlib import nullcontext

from agecam.core.age_model import AgeModel
from agecam.core.config import EstimatorConfig
from agecam.core.crop import CropConfig, crop_faces
from agecam.core.detections import Detections
from agecam.core.quality import ViewQuality, quality_of


class AgeEstimator:
    """Fill ``detections.raw_age`` for the faces due an estimate on this frame.

    Example::

        estimator = AgeEstimator(AgeModel.load("cnn"))
        detections = estimator.update_with_detections(frame, detections)
    """

    def __init__(self, model: AgeModel, config: EstimatorConfig = EstimatorConfig(),
                 crop: CropConfig = CropConfig(), timer=None, quality: ViewQuality | None = None):
        self.model, self.config, self.crop = model, config, crop
        self.quality = quality or ViewQuality.from_card(model.card)
        self.timer = timer  # optional StageTimer: records "crop" and "infer" separately
        self._last_estimate: dict[int, int] = {}
        self.inferences = 0  # faces sent to the model so far

    def reset(self) -> None:
        """Forget which tracks were estimated when (start of a new video)."""
        self._last_estimate.clear()

    def due(self, detections: Detections, frame_index: int) -> np.ndarray:
        """Boolean mask of faces to estimate on this frame."""
        k = max(1, self.config.refresh_every)
        ids = detections.tracker_id
        new = np.array([int(t) < 0 or int(t) not in self._last_estimate for t in ids], bool)
        # (frame + id) % k staggers the refreshes of different tracks over the k frames.
        # A coasted face (box predicted, not detected) keeps its age: its crop may be off the face.
        scheduled = (frame_index + ids) % k == 0
        if self.quality.fitted and self.config.defer_above > 0 and len(ids):
            # A poor view (turned, small, weakly found) due a refresh waits for a better one, a few
            # frames at most: the pose, size and score are known before cropping.
            # A face that waited past its turn is due on the first frame with a good view.
            poor = self.quality.assess(detections) > self.config.defer_above
            waited = np.array([frame_index - self._last_estimate.get(int(t), frame_index) for t in ids])
            scheduled = (scheduled | (waited >= k)) & (~poor | (waited >= self.config.max_defer_frames))
        return (new | scheduled) & detections.detected

    def update_with_detections(self, frame_bgr: np.ndarray, detections: Detections) -> Detections:
        """Estimate the due faces (all in one batch) and set their ``raw_age``; return detections."""
        mask = self.due(detections, detections.frame_index)
        if not mask.any():
            return detections
        subset = detections[mask]
        with self._stage("crop"):
            faces = crop_faces(frame_bgr, subset, self.crop)
        with self._stage("infer"):
            ages = self.model.predict(faces)
        rows = np.flatnonzero(mask)
        detections.raw_age[rows] = ages
        detections.quality[rows] = quality_of(self.quality.assess(subset, faces))
        self.inferences += len(ages)
        for track_id in subset.tracker_id:
            if track_id >= 0:
                self._last_estimate[int(track_id)] = detections.frame_index
        return detections

    def _stage(self, name: str):
        return self.timer.stage(name) if self.timer is not None else nullcontext()
