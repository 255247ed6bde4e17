"""Stable face ids across frames: IoU matching with a centroid fallback and short memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from core.detections import Detections


@dataclass(frozen=True)
class TrackerConfig:
    """Matching gates and how long a lost face keeps its id."""

    min_iou: float = 0.2
    # Fast motion can leave no overlap; a centre this close (in box widths) still matches.
    max_centre_distance: float = 1.0
    max_missed_frames: int = 20  # a brief occlusion (~0.7 s at 30 fps) keeps the same id


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    missed: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity * (self.missed + 1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two sets of xyxy boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


class FaceTracker:
    """Give each face a ``tracker_id`` that stays the same while it moves.

    Example:

    >>> tracker = FaceTracker()
    >>> d = tracker.update_with_detections(Detections(xyxy=[[0, 0, 10, 10]]))
    >>> int(d.tracker_id[0])
    1
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update_with_detections(self, detections: Detections) -> Detections:
        """Set ``detections.tracker_id`` in place and return the detections."""
        boxes = detections.xyxy
        predicted = np.array([t.predicted() for t in self._tracks], np.float32).reshape(-1, 4)
        matches = self._match(predicted, boxes)
        matched_tracks, matched_dets = set(), set()
        for ti, di in matches:
            track = self._tracks[ti]
            steps = track.missed + 1
            # Smoothed constant-velocity estimate carries a face through a short occlusion.
            track.velocity = 0.5 * track.velocity + 0.5 * (boxes[di] - track.box) / steps
            track.box, track.missed = boxes[di].copy(), 0
            detections.tracker_id[di] = track.track_id
            matched_tracks.add(ti)
            matched_dets.add(di)
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.config.max_missed_frames]
        for di in range(len(detections)):
            if di not in matched_dets:
                self._tracks.append(_Track(self._next_id, boxes[di].copy()))
                detections.tracker_id[di] = self._next_id
                self._next_id += 1
        return detections

    def _match(self, tracks: np.ndarray, boxes: np.ndarray) -> list[tuple[int, int]]:
        if len(tracks) == 0 or len(boxes) == 0:
            return []
        iou = iou_matrix(tracks, boxes)
        centres_t = (tracks[:, :2] + tracks[:, 2:]) / 2
        centres_d = (boxes[:, :2] + boxes[:, 2:]) / 2
        widths = np.maximum(tracks[:, 2] - tracks[:, 0], 1.0)
        distance = np.linalg.norm(centres_t[:, None] - centres_d[None], axis=2) / widths[:, None]
        allowed = (iou >= self.config.min_iou) | (distance <= self.config.max_centre_distance)
        # Prefer overlap; distance breaks ties and matches fast movers without overlap.
        cost = np.where(allowed, (1.0 - iou) + 0.1 * distance, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(r, c) for r, c in zip(rows, cols) if allowed[r, c]]
