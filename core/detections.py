"""The one small dataclass of faces that flows through every stage of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np


APPEARANCE_SIZE = 80  # floats in a face's appearance descriptor (core.appearance)


def _empty(shape, dtype, fill=0):
    return np.full(shape, fill, dtype=dtype)


@dataclass
class Detections:
    """Faces found in one frame; every array has one row per face.

    - ``xyxy``: boxes in pixels ``(x1, y1, x2, y2)``, float32 ``(N, 4)``
    - ``confidence``: detector scores, float32 ``(N,)``
    - ``keypoints``: six MediaPipe landmarks in pixels (right eye, left eye, nose tip, mouth,
      right ear, left ear), float32 ``(N, 6, 2)``
    - ``tracker_id``: stable id per face across frames, ``-1`` before tracking, int64 ``(N,)``
    - ``raw_age``: the model's estimate made on this frame, NaN where none was made
    - ``age``: the age to show (smoothed over the track), NaN while unknown
    - ``age_low``, ``age_high``: the calibrated 80% range around ``age`` (``core.age_range``),
      NaN while unknown or when the model has no calibration
    - ``detected``: True where the detector found the face on this frame, False where a tracker
      carried it over a missed frame on a predicted box (``core.tracker``)
    - ``verdict``: the age gate's decision on ``age`` (``core.age_gate``: 1 over, 0 check, -1 under),
      -2 where none was made (no gate set, age unknown), int8
    - ``quality``: how much this frame's estimate can be trusted, 0-1 (``core.quality``: 1 is a sharp,
      frontal face of 100 px or more; 0.5 a view expected to err twice as much), NaN where no
      estimate was made on this frame
    - ``age_shown``: True where ``age`` itself goes on screen, False where the track's range (or a
      placeholder) is shown instead because the range is still too wide for one number to hold
      (``core.fusion.ShownAgeRule``); always True for stills
    - ``appearance``: the face's appearance descriptor (``core.appearance``), float32
      ``(N, APPEARANCE_SIZE)``, NaN where not computed

    Example:

    >>> d = Detections(xyxy=np.array([[10, 20, 50, 70]], np.float32))
    >>> len(d), d.xywh.tolist()
    (1, [[10.0, 20.0, 40.0, 50.0]])
    """

    xyxy: np.ndarray
    confidence: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    tracker_id: np.ndarray | None = None
    raw_age: np.ndarray | None = None
    age: np.ndarray | None = None
    age_low: np.ndarray | None = None
    age_high: np.ndarray | None = None
    detected: np.ndarray | None = None
    verdict: np.ndarray | None = None
    quality: np.ndarray | None = None
    age_shown: np.ndarray | None = None
    appearance: np.ndarray | None = None
    frame_index: int = field(default=0, compare=False)

    def __post_init__(self):
        self.xyxy = np.asarray(self.xyxy, np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        defaults = {
            "confidence": ((n,), np.float32, 1.0),
            "keypoints": ((n, 6, 2), np.float32, np.nan),
            "tracker_id": ((n,), np.int64, -1),
            "raw_age": ((n,), np.float32, np.nan),
            "age": ((n,), np.float32, np.nan),
            "age_low": ((n,), np.float32, np.nan),
            "age_high": ((n,), np.float32, np.nan),
            "detected": ((n,), bool, True),
            "verdict": ((n,), np.int8, -2),
            "quality": ((n,), np.float32, np.nan),
            "age_shown": ((n,), bool, True),
            "appearance": ((n, APPEARANCE_SIZE), np.float32, np.nan),
        }
        for name, (shape, dtype, fill) in defaults.items():
            value = getattr(self, name)
            value = _empty(shape, dtype, fill) if value is None else np.asarray(value, dtype).reshape(shape)
            setattr(self, name, value)

    @classmethod
    def empty(cls, frame_index: int = 0) -> "Detections":
        return cls(xyxy=np.zeros((0, 4), np.float32), frame_index=frame_index)

    @classmethod
    def merge(cls, parts: list["Detections"]) -> "Detections":
        """One Detections holding the rows of ``parts`` in order (frame index of the first)."""
        if not parts:
            return cls.empty()
        arrays = {f.name: np.concatenate([getattr(p, f.name) for p in parts])
                  for f in fields(cls) if f.name != "frame_index"}
        return cls(**arrays, frame_index=parts[0].frame_index)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> "Detections":
        """A subset by boolean mask, integer array or slice."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        arrays = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "frame_index"}
        return Detections(**arrays, frame_index=self.frame_index)

    def shifted(self, dx: float, dy: float) -> "Detections":
        """The same faces with boxes and keypoints moved by ``(dx, dy)`` pixels (tile to frame)."""
        moved = self[np.arange(len(self))]
        moved.xyxy = moved.xyxy + np.array([dx, dy, dx, dy], np.float32)
        moved.keypoints = moved.keypoints + np.array([dx, dy], np.float32)
        return moved

    @property
    def xywh(self) -> np.ndarray:
        """Boxes as ``(x, y, width, height)`` in pixels."""
        out = self.xyxy.copy()
        out[:, 2:] -= out[:, :2]
        return out
