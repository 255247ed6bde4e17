"""The age stage: decide which faces need a fresh estimate, crop them, infer in one batch."""

from __future__ import annotations


import numpy as np

from contextlib import nullcontext

from .age_model import AgeModel
from .config import EstimatorConfig
from .crop import CropConfig
from .detections import Detections
from .quality import ViewQuality, quality_of


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
        self._estimates: dict[int, int] = {}  # estimates made per track
        self.inferences = 0  # faces sent to the model so far

    def reset(self) -> None:
        """Forget which tracks were estimated when (start of a new video)."""
        self._last_estimate.clear()
        self._estimates.clear()

    def due(self, detections: Detections, frame_index: int) -> np.ndarray:
        """Boolean mask of faces to estimate on this frame."""
        ids = detections.tracker_id
        k = self.refresh_intervals(ids)
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
            # A settled track's longer interval lengthens its wait alike.
            longest = self.config.max_defer_frames + k - max(1, self.config.refresh_every)
            scheduled = (scheduled | (waited >= k)) & (~poor | (waited >= longest))
        return (new | scheduled) & detections.detected

    def refresh_intervals(self, ids: np.ndarray) -> np.ndarray:
        """Frames between refreshes for each track: ``refresh_every``, or the settled interval for a
        track already estimated ``settle_after`` times."""
        k = max(1, self.config.refresh_every)
        settled_k = max(k, self.config.settled_refresh_every)
        if self.config.settle_after <= 0 or settled_k == k:
            return np.full(len(ids), k, np.int64)
        counts = np.array([self._estimates.get(int(t), 0) for t in ids], np.int64)
        return np.where(counts >= self.config.settle_after, settled_k, k)

    def update_with_detections(self, frame_bgr: np.ndarray, detections: Detections) -> Detections:
        """Estimate the due faces (all in one batch) and set their ``raw_age``; return detections."""
        mask = self.due(detections, detections.frame_index)
        if not mask.any():
            return detections
        subset = detections[mask]
        with self._stage("crop"):
            faces = self.model.cut_faces(frame_bgr, subset, self.crop)
        with self._stage("infer"):
            ages = self.model.predict(faces)
        rows = np.flatnonzero(mask)
        detections.raw_age[rows] = ages
        detections.quality[rows] = quality_of(self.quality.assess(subset, faces))
        self.inferences += len(ages)
        for track_id in subset.tracker_id:
            if track_id >= 0:
                self._last_estimate[int(track_id)] = detections.frame_index
                self._estimates[int(track_id)] = self._estimates.get(int(track_id), 0) + 1
        return detections

    def _stage(self, name: str):
        return self.timer.stage(name) if self.timer is not None else nullcontext()
