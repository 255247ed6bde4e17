"""Stable face ids across frames: two-threshold association (ByteTrack's idea), motion, coasting.

A detector misses a face now and then (blur, a turned head, a small face): such a miss must not
end the face's track nor make its box blink. So:

- confident detections (``>= start_confidence``) are matched to tracks first; the ones left over
  start new tracks;
- weak detections (``extend_confidence`` up to ``start_confidence``) may only extend a track that
  the confident ones left unmatched; they never start one, so clutter does not become faces;
- a confirmed track that gets no detection is *coasted*: shown for up to ``coast_s`` seconds on
  the box predicted from its motion, marked ``detected = False``; it ends after ``max_gap_s``.

Limits are in seconds and scaled by the stream's frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from agecam.core.detections import Detections
from agecam.core.geometry import iou_matrix


@dataclass(frozen=True)
class TrackerConfig:
    """Association thresholds and how long a missed face keeps its id and its box."""

    start_confidence: float = 0.5  # a detection this confident may start a track
    extend_confidence: float = 0.25  # a weaker one down to this may only extend an existing track
    min_iou: float = 0.2
    # Fast motion can leave no overlap; a centre this close (in box widths) still matches.
    max_centre_distance: float = 1.0
    coast_s: float = 0.5  # a missed, confirmed face is drawn on its predicted box this long
    max_gap_s: float = 1.0  # after this long without a detection the track ends (its id is not reused)
    min_hits: int = 3  # detections before a track is confirmed (may coast)

    def __post_init__(self):
        if not 0.0 <= self.extend_confidence <= self.start_confidence <= 1.0:
            raise ValueError("tracker thresholds need 0 <= extend_confidence <= start_confidence <= 1")
        if self.coast_s < 0 or self.max_gap_s < 0:
            raise ValueError("tracker gap limits must not be negative")


DECAY = 0.8  # per missed frame, of the velocity a coasted box moves on with (at most 5 frames' worth)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    confidence: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # of the centre, px/frame
    missed: int = 0
    hits: int = 1

    def predicted(self) -> np.ndarray:
        """The box expected on the next frame: the last detected box moved on at a decaying velocity
        (a long gap should not fling the box across the frame)."""
        steps = (1 - DECAY ** (self.missed + 1)) / (1 - DECAY)
        # Only the centre moves: the size keeps the last detection's (one odd-sized box must not
        # make the prediction shrink to nothing).
        return self.box + np.tile(self.velocity * steps, 2)


class FaceTracker:
    """Give each face a ``tracker_id`` that stays the same while it moves, and bridge missed frames.

    ``update_with_detections`` returns the tracked faces: weak detections that extend no track
    are dropped, and coasted tracks are added (``detected`` False, box predicted).

    Example:

    >>> tracker = FaceTracker(fps=30)
    >>> d = tracker.update_with_detections(Detections(xyxy=[[0, 0, 10, 10]]))
    >>> int(d.tracker_id[0])
    1
    """

    def __init__(self, config: TrackerConfig = TrackerConfig(), fps: float = 30.0):
        self.config = config
        self.fps = fps if fps > 0 else 30.0
        self.coast_frames = round(config.coast_s * self.fps)
        self.max_gap_frames = max(self.coast_frames, round(config.max_gap_s * self.fps))
        self._tracks: list[_Track] = []
        self._next_id = 1

    def predicted_boxes(self, confirmed_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (xyxy) where live tracks are expected on the next frame, and the frames each has
        gone without a detection (the longer, the less sure the place)."""
        tracks = [t for t in self._tracks if t.hits >= self.config.min_hits or not confirmed_only]
        missed = np.array([t.missed for t in tracks], np.int64)
        return np.array([t.predicted() for t in tracks], np.float32).reshape(-1, 4), missed

    def update_with_detections(self, detections: Detections) -> Detections:
        """Match this frame's detections to the tracks; return the tracked faces (see the class)."""
        config = self.config
        strong = np.flatnonzero(detections.confidence >= config.start_confidence)
        weak = np.flatnonzero((detections.confidence >= config.extend_confidence)
                              & (detections.confidence < config.start_confidence))
        predicted = np.array([t.predicted() for t in self._tracks], np.float32).reshape(-1, 4)
        boxes = detections.xyxy
        matched: dict[int, int] = {}  # track index -> detection index
        missed = np.array([t.missed for t in self._tracks], np.float32)
        for ti, di in self._match(predicted, boxes[strong], missed, allow_distance=True):
            matched[ti] = strong[di]
        left = [ti for ti in range(len(self._tracks)) if ti not in matched]
        # Weak detections extend only on overlap: a distance match would let clutter take over a track.
        for ti, di in self._match(predicted[left], boxes[weak], missed[left], allow_distance=False):
            matched[left[ti]] = weak[di]

        keep = np.zeros(len(detections), bool)
        for ti, di in matched.items():
            track = self._tracks[ti]
            steps = track.missed + 1
            # A smoothed constant-velocity estimate of the centre carries a face through a short gap.
            shift = (boxes[di, :2] + boxes[di, 2:] - track.box[:2] - track.box[2:]) / 2
            track.velocity = 0.5 * track.velocity + 0.5 * shift / steps
            track.box, track.missed, track.confidence = boxes[di].copy(), 0, float(detections.confidence[di])
            track.hits += 1
            detections.tracker_id[di] = track.track_id
            keep[di] = True
        coasted: list[tuple[_Track, np.ndarray]] = []  # (track, its box predicted for this frame)
        for ti, track in enumerate(self._tracks):
            if ti not in matched:
                track.missed += 1
                if track.hits >= config.min_hits and track.missed <= self.coast_frames:
                    coasted.append((track, predicted[ti]))
        self._tracks = [t for t in self._tracks if t.missed <= self.max_gap_frames]
        for di in strong:
            if not keep[di]:  # no track took it: a new face
                self._tracks.append(_Track(self._next_id, boxes[di].copy(), float(detections.confidence[di])))
                detections.tracker_id[di] = self._next_id
                self._next_id += 1
                keep[di] = True
        tracked = detections[keep]
        if not coasted:
            return tracked
        ghosts = Detections(xyxy=np.array([box for _, box in coasted], np.float32),
                            confidence=np.array([t.confidence for t, _ in coasted], np.float32),
                            tracker_id=np.array([t.track_id for t, _ in coasted], np.int64),
                            detected=np.zeros(len(coasted), bool), frame_index=detections.frame_index)
        return Detections.merge([tracked, ghosts])

    def _match(self, tracks: np.ndarray, boxes: np.ndarray, missed: np.ndarray,
               allow_distance: bool) -> list[tuple[int, int]]:
        if len(tracks) == 0 or len(boxes) == 0:
            return []
        iou = iou_matrix(tracks, boxes)
        centres_t = (tracks[:, :2] + tracks[:, 2:]) / 2
        centres_d = (boxes[:, :2] + boxes[:, 2:]) / 2
        widths = np.maximum(tracks[:, 2] - tracks[:, 0], 1.0)
        distance = np.linalg.norm(centres_t[:, None] - centres_d[None], axis=2) / widths[:, None]
        allowed = iou >= self.config.min_iou
        if allow_distance:
            # The longer a face went unseen, the further it may be from where it was expected.
            reach = self.config.max_centre_distance * (1 + 0.1 * np.minimum(missed, 10))
            allowed |= distance <= reach[:, None]
        # Prefer overlap; distance breaks ties and matches fast movers without overlap.
        cost = np.where(allowed, (1.0 - iou) + 0.1 * distance, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(r, c) for r, c in zip(rows, cols) if allowed[r, c]]
