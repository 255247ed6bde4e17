"""Per-track age smoothing: show a stable age without biasing it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from agecam.core.detections import Detections


@dataclass(frozen=True)
class SmootherConfig:
    """``window``: how many recent estimates of a track are averaged.

    A plain mean of recent estimates is unbiased (its average equals the estimates' average),
    unlike a median or an exponential filter started at the first value.
    """

    window: int = 15
    forget_after_frames: int = 300


class AgeSmoother:
    """Turn each track's per-inference ``raw_age`` into a steady displayed ``age``.

    Example:

    >>> smoother = AgeSmoother()
    >>> d = Detections(xyxy=[[0, 0, 9, 9]], tracker_id=[1], raw_age=[30.0])
    >>> float(smoother.update_with_detections(d).age[0])
    30.0
    """

    def __init__(self, config: SmootherConfig = SmootherConfig()):
        self.config = config
        self._history: dict[int, deque] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0

    def update_with_detections(self, detections: Detections) -> Detections:
        """Add this frame's estimates to their tracks and set ``detections.age``."""
        self._frame += 1
        for i, (track_id, raw) in enumerate(zip(detections.tracker_id, detections.raw_age)):
            track_id = int(track_id)
            history = self._history.setdefault(track_id, deque(maxlen=self.config.window))
            if np.isfinite(raw):
                history.append(float(raw))
            self._last_seen[track_id] = self._frame
            detections.age[i] = np.mean(history) if history else np.nan
        self._forget_old_tracks()
        return detections

    def _forget_old_tracks(self) -> None:
        stale = [t for t, seen in self._last_seen.items() if self._frame - seen > self.config.forget_after_frames]
        for track_id in stale:
            del self._history[track_id], self._last_seen[track_id]
