"""Stable face ids across frames: two-threshold association (ByteTrack's idea), motion, coasting.

A detector misses a face now and then (blur, a turned head, a small face): such a miss must not
end the face's track nor make its box blink. So:

- confident detections (``>= start_confidence``) are matched to tracks first; the ones left over
  start new tracks;
- weak detections (``extend_confidence`` up to ``start_confidence``) may only extend a track that
  the confident ones left unmatched; they never start one, so clutter does not become faces;
- a confirmed track that gets no detection is *coasted*: shown for up to ``coast_s`` seconds on
  the box predicted from its motion, marked ``detected = False``; it ends after ``max_gap_s``.

Identity also rests on appearance (``core.appearance``, when the detections carry descriptors):

- each confirmed track keeps a running descriptor of its face, updated only on frames where the
  face overlaps neither another detection nor the place of another live track: when one person
  passes in front of another, the detector often finds one box holding both faces, and learning it
  would blend the two (measured: the swaps in repeated crossings came from such blended looks);
- a track whose expected place lies inside a face seen on this frame is *hidden* behind that person
  and lives for ``max_hidden_s`` rather than ``max_gap_s``: a pass hides a face for about a second;
- association adds the descriptors' distance to the cost, so when two faces cross, the one that
  comes out from behind the other gets its own id back rather than its neighbour's;
- a strong detection no live track took is compared with the tracks unseen for a while and with
  those that ended less than ``reid_s`` seconds ago: a close enough match takes that id again (a
  person who steps out of view and comes back is the same person), wherever in the frame it is.

Limits are in seconds and scaled by the stream's frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .appearance import appearance_distance
from .detections import Detections
from .geometry import iou_matrix, overlaps_another


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
    # ... unless it is hidden behind another face (its expected place inside a face seen on this
    # frame): two people passing each other hide one for longer than a missed detection lasts.
    max_hidden_s: float = 2.5
    min_hits: int = 3  # detections before a track is confirmed (may coast)
    # Weight of the appearance distance (0-2, see core.appearance) in the association cost, next to
    # 1 - IoU and 0.1 x the centre distance in box widths; 0: position and motion only.
    appearance_weight: float = 1.0
    # A face that comes back within this long after its track ended gets the same id again.
    reid_s: float = 4.0
    # The largest appearance distance that re-identifies: between the median same-face distance (0.08)
    # and the 1st percentile of different faces (0.16) measured in core.appearance.
    max_reid_distance: float = 0.12
    appearance_momentum: float = 0.8  # share of the track's descriptor kept at each clean update

    def __post_init__(self):
        if not 0.0 <= self.extend_confidence <= self.start_confidence <= 1.0:
            raise ValueError("tracker thresholds need 0 <= extend_confidence <= start_confidence <= 1")
        if self.coast_s < 0 or self.max_gap_s < 0 or self.max_hidden_s < 0 or self.reid_s < 0:
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
    appearance: np.ndarray | None = None  # unit descriptor of the face (core.appearance), None until seen clear
    ended_at: int = -1  # frame on which it ended (kept for re-identification), -1 while live
    hidden: bool = False  # unseen, its expected place inside a face seen (behind another person)

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
        self.max_hidden_frames = max(self.max_gap_frames, round(config.max_hidden_s * self.fps))
        self.reid_frames = round(config.reid_s * self.fps)
        self._tracks: list[_Track] = []
        self._ended: list[_Track] = []  # ended tracks that may still be re-identified
        self._next_id = 1
        self._frame = 0
        self.reidentified = 0  # ids given back to a face after a gap or a crossing (a run's statistic)

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
        self._frame += 1
        looks = self._appearance_costs(self._tracks, detections)
        matched: dict[int, int] = {}  # track index -> detection index
        missed = np.array([t.missed for t in self._tracks], np.float32)
        for ti, di in self._match(predicted, boxes[strong], missed, looks[:, strong], allow_distance=True):
            matched[ti] = strong[di]
        left = [ti for ti in range(len(self._tracks)) if ti not in matched]
        # Weak detections extend only on overlap: a distance match would let clutter take over a track.
        for ti, di in self._match(predicted[left], boxes[weak], missed[left], looks[left][:, weak], allow_distance=False):
            matched[left[ti]] = weak[di]
        self._reidentify(detections, strong, matched)

        keep = np.zeros(len(detections), bool)
        clear = self._clear_of_others(boxes, predicted, matched)
        for ti, di in matched.items():
            track = self._tracks[ti]
            steps = track.missed + 1
            # A smoothed constant-velocity estimate of the centre carries a face through a short gap.
            shift = (boxes[di, :2] + boxes[di, 2:] - track.box[:2] - track.box[2:]) / 2
            track.velocity = 0.5 * track.velocity + 0.5 * shift / steps
            track.box, track.missed, track.confidence = boxes[di].copy(), 0, float(detections.confidence[di])
            track.hits += 1
            if clear[di]:
                self._learn_appearance(track, detections.appearance[di])
            detections.tracker_id[di] = track.track_id
            keep[di] = True
        coasted: list[tuple[_Track, np.ndarray]] = []  # (track, its box predicted for this frame)
        for ti, track in enumerate(self._tracks):
            if ti not in matched:
                track.missed += 1
                if track.hits >= config.min_hits and track.missed <= self.coast_frames:
                    coasted.append((track, predicted[ti]))
        self._end_stale_tracks(boxes[list(matched.values())], predicted)
        for di in strong:
            if not keep[di]:  # no track took it: a new face
                track = _Track(self._next_id, boxes[di].copy(), float(detections.confidence[di]))
                if clear[di]:
                    self._learn_appearance(track, detections.appearance[di])
                self._tracks.append(track)
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

    def _clear_of_others(self, boxes: np.ndarray, predicted: np.ndarray, matched: dict[int, int]) -> np.ndarray:
        """Per detection, whether it overlaps neither another detection nor the place of another live
        track (where a matched one was found, where an unmatched one is expected). Only a face seen
        clear teaches its track's looks and motion: a face hidden behind another is not detected, so
        the one box found there may hold both, and learning it would blend the two faces."""
        clear = ~overlaps_another(boxes)
        if not len(self._tracks) or not len(boxes):
            return clear
        owner = {di: ti for ti, di in matched.items()}
        # Tracks brought back by re-identification sit after the predicted ones, all of them matched.
        places = np.array([boxes[matched[ti]] if ti in matched else predicted[ti] for ti in range(len(self._tracks))],
                          np.float32).reshape(-1, 4)
        overlap = iou_matrix(boxes, places) > 0
        for di in range(len(boxes)):
            others = np.ones(len(places), bool)
            if di in owner:
                others[owner[di]] = False
            clear[di] &= not (overlap[di] & others).any()
        return clear

    def _appearance_costs(self, tracks: list[_Track], detections: Detections) -> np.ndarray:
        """``(tracks, detections)`` appearance distances, 0 where either side has no descriptor (no
        evidence either way)."""
        known = [t.appearance is not None for t in tracks]
        costs = np.zeros((len(tracks), len(detections)), np.float32)
        if self.config.appearance_weight > 0 and any(known) and len(detections):
            rows = np.flatnonzero(known)
            distance = appearance_distance(np.stack([tracks[i].appearance for i in rows]), detections.appearance)
            costs[rows] = np.nan_to_num(distance, nan=0.0)
        return costs

    def _learn_appearance(self, track: _Track, descriptor: np.ndarray) -> None:
        if not np.isfinite(descriptor).all():
            return
        if track.appearance is None:
            track.appearance = descriptor.copy()
            return
        blended = self.config.appearance_momentum * track.appearance + (1 - self.config.appearance_momentum) * descriptor
        track.appearance = blended / max(float(np.linalg.norm(blended)), 1e-6)

    def _reidentify(self, detections: Detections, strong: np.ndarray, matched: dict[int, int]) -> None:
        """Strong detections that no live track took, matched by appearance alone to a confirmed track
        unseen for a while (hidden behind another face, out of view) or one that ended less than
        ``reid_s`` ago; a match takes that track (an ended one comes back to life)."""
        taken = set(matched.values())
        free = [di for di in strong if di not in taken and np.isfinite(detections.appearance[di]).all()]
        live = [ti for ti, t in enumerate(self._tracks) if ti not in matched and t.missed > 0
                and t.hits >= self.config.min_hits and t.appearance is not None]
        if not free or not (live or self._ended) or self.config.appearance_weight <= 0:
            return
        candidates = [self._tracks[ti] for ti in live] + self._ended
        distance = appearance_distance(np.stack([t.appearance for t in candidates]), detections.appearance[free])
        cost = np.where(distance <= self.config.max_reid_distance, distance, 1e6)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols):
            if cost[r, c] >= 1e6:
                continue
            track = candidates[r]
            track.box = detections.xyxy[free[c]].copy()  # it reappears elsewhere: no motion from the jump
            if r >= len(live):  # an ended track comes back
                self._ended.remove(track)
                track.ended_at, track.velocity = -1, np.zeros(2, np.float32)
                self._tracks.append(track)
                matched[len(self._tracks) - 1] = free[c]
            else:
                track.velocity = np.zeros(2, np.float32)
                matched[live[r]] = free[c]
            self.reidentified += 1

    def _end_stale_tracks(self, seen: np.ndarray, predicted: np.ndarray) -> None:
        """End the tracks unseen for longer than they may be: ``max_gap_s``, or ``max_hidden_s`` for
        one whose expected place (``predicted``, per track before this frame's re-identifications) has
        its centre inside a face ``seen`` on this frame."""
        def hidden(ti: int) -> bool:
            if ti >= len(predicted) or not len(seen):
                return False
            cx, cy = (predicted[ti, :2] + predicted[ti, 2:]) / 2
            return bool(((seen[:, 0] <= cx) & (cx <= seen[:, 2]) & (seen[:, 1] <= cy) & (cy <= seen[:, 3])).any())

        for ti, track in enumerate(self._tracks):
            track.hidden = track.missed > 0 and hidden(ti)

        def stale(ti: int, track: _Track) -> bool:
            return track.missed > (self.max_hidden_frames if track.hidden else self.max_gap_frames)

        ended = [t for ti, t in enumerate(self._tracks) if stale(ti, t)]
        self._tracks = [t for ti, t in enumerate(self._tracks) if not stale(ti, t)]
        for track in ended:
            if track.hits >= self.config.min_hits and track.appearance is not None and self.reid_frames > 0:
                track.ended_at = self._frame
                self._ended.append(track)
        self._ended = [t for t in self._ended if self._frame - t.ended_at <= self.reid_frames]

    def _match(self, tracks: np.ndarray, boxes: np.ndarray, missed: np.ndarray, looks: np.ndarray,
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
        # Prefer overlap; distance breaks ties and matches fast movers without overlap; appearance
        # tells apart two faces that are both close (a crossing).
        cost = np.where(allowed, (1.0 - iou) + 0.1 * distance + self.config.appearance_weight * looks, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return [(r, c) for r, c in zip(rows, cols) if allowed[r, c]]
