"""Who was seen in a stream: per track, when, how clearly, and every age estimate made on it.

A person's age is the track's age as last shown: in a stream, the quality-weighted, outlier-robust
fusion of every estimate made on the track (``core.fusion``), with its range, which narrowed as good
views came in; for a log of raw estimates alone (no fused age shown), their median with the model's
calibrated 80% range around it. With an age gate, the gate's verdict on that age (``core.age_gate``). ``quality`` is the mean detector score over the frames
the face was found on (0-1): how clearly it was seen. The files that hold these rows belong to
``realtime.people``.
"""

from __future__ import annotations

import base64
from collections import defaultdict

import cv2
import numpy as np

from .age_gate import verdict_name
from .blur import hide_faces

PEOPLE_COLUMNS = ("track_id", "first_s", "last_s", "seconds_seen", "frames", "estimates", "age", "age_low",
                  "age_high", "quality", "age_gate")


class TrackLog:
    """Per track: frames seen, when, the ages shown, the model's raw estimates, detector scores, and
    how many frames its first age took.

    Example:

    >>> from agecam.core.detections import Detections
    >>> log = TrackLog()
    >>> log.add(Detections(xyxy=[[0, 0, 9, 9]], tracker_id=[1], raw_age=[30.0], age=[30.0]), 0.0)
    >>> log.people()[0]["age"], log.people()[0]["frames"]
    (30.0, 1)
    """

    def __init__(self, frame_seconds: float = 1 / 30, keep_faces: bool = False, blur_faces: bool = False):
        self.keep_faces = keep_faces  # keep each track's clearest view (highest detector score) as a thumbnail
        self.blur_faces = blur_faces  # those thumbnails hidden as the annotated frames are (core.blur)
        self.faces: dict[int, str] = {}
        self.frame_seconds = frame_seconds  # the first frame's duration (later ones: the clock's steps)
        self.ages: dict[int, list[float]] = defaultdict(list)
        self.last_shown: dict[int, tuple[float, float, float]] = {}  # the last shown age, low, high
        self.raw: dict[int, list[float]] = defaultdict(list)
        self.frames: dict[int, int] = defaultdict(int)
        self.frames_to_first_age: dict[int, int] = {}
        self.first_s: dict[int, float] = {}
        self.last_s: dict[int, float] = {}
        self.seconds_seen: dict[int, float] = defaultdict(float)
        self.scores: dict[int, list[float]] = defaultdict(list)
        self._previous_s: float | None = None

    def add(self, detections, time_s: float = 0.0, image=None) -> None:
        """Log one frame's faces, shown at ``time_s`` seconds into the run (``image``: the frame, for
        the thumbnails of ``keep_faces``)."""
        step = self.frame_seconds if self._previous_s is None else max(0.0, time_s - self._previous_s)
        self._previous_s = time_s
        for track_id, age, raw, score, detected, box, low, high in zip(
                detections.tracker_id, detections.age, detections.raw_age, detections.confidence,
                detections.detected, detections.xyxy, detections.age_low, detections.age_high):
            track_id = int(track_id)
            self.frames[track_id] += 1
            self.first_s.setdefault(track_id, time_s)
            self.last_s[track_id] = time_s
            self.seconds_seen[track_id] += step
            if detected:
                if self.keep_faces and image is not None and score > max(self.scores[track_id], default=-1.0):
                    self.faces[track_id] = face_thumbnail(image, box, hide=self.blur_faces)
                self.scores[track_id].append(float(score))
            if np.isfinite(raw):
                self.raw[track_id].append(float(raw))
            if np.isfinite(age):
                self.ages[track_id].append(float(age))
                self.last_shown[track_id] = (float(age), float(low), float(high))
                self.frames_to_first_age.setdefault(track_id, self.frames[track_id])

    def people(self, age_range=None, gate=None) -> list[dict]:
        """One dict per track (``PEOPLE_COLUMNS``), in id order; ``age_range`` (the model's
        ``AgeRangeCalibration``) gives the range, ``gate`` (a ``core.age_gate.AgeGate``) the verdict.
        Unknown values are None."""
        rows = []
        for track_id in sorted(self.frames):
            raw = self.raw[track_id]
            age = float(np.median(raw)) if raw else None
            low = high = None
            verdict = None
            shown = self.last_shown.get(track_id)
            if age is not None and shown is not None:
                age = shown[0]
                if np.isfinite(shown[1]) and np.isfinite(shown[2]):
                    low, high = shown[1], shown[2]
            if age is not None and low is None and age_range is not None:
                low, high = (float(v[0]) for v in age_range.interval([age]))
            if age is not None and gate is not None:
                verdict = verdict_name(gate.decide([age])[0]) or None
            scores = self.scores[track_id]
            rows.append({"track_id": track_id, "first_s": round(self.first_s[track_id], 3),
                         "last_s": round(self.last_s[track_id], 3),
                         "seconds_seen": round(self.seconds_seen[track_id], 3), "frames": self.frames[track_id],
                         "estimates": len(raw), "age": _rounded(age), "age_low": _rounded(low),
                         "age_high": _rounded(high), "quality": _rounded(np.mean(scores) if scores else None, 3),
                         "age_gate": verdict})
        return rows

    def smoothing_bias(self) -> dict[int, float]:
        """Per track: mean shown age minus mean raw estimate (near 0 when the shown age follows the
        estimates; the fused age weighs good views more, so it may differ by design)."""
        return {t: float(np.mean(self.ages[t]) - np.mean(self.raw[t])) for t in self.frames if self.raw[t]}


def _rounded(value, digits: int = 1):
    return None if value is None else round(float(value), digits)


def face_thumbnail(image: np.ndarray, box, size: int = 96, hide: bool = False) -> str:
    """A base64 JPEG of the face in ``box`` (x1, y1, x2, y2) of a BGR ``image``, ``size`` px high;
    ``hide``: pixelated beyond recognition (core.blur)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    crop = image[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
    if crop.size == 0:
        return ""
    if hide:
        crop = crop.copy()
        hide_faces(crop, [[0, 0, crop.shape[1], crop.shape[0]]])
    scale = size / crop.shape[0]
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), size), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(encoded.tobytes()).decode("ascii") if ok else ""
