"""Aligned face chips: a similarity transform from facial keypoints to fixed places in the chip.

A model trained on aligned chips (its card's ``alignment``) sees every face framed the same way,
whatever the detector's box: the eyes, nose tip and mouth that MediaPipe reports are mapped by
the least-squares similarity (rotation, uniform scale, shift) onto the card's ``template``, the
places those keypoints take in the chips the model was trained on. ``training.fit_alignment``
measures that template on dlib's 5-point chips, the framing the dlib-models age network learnt.

A face whose keypoints are missing (a search that reports boxes only) is framed from its box by
the card's ``box`` rule instead, and :func:`aligned_by_keypoints` says which faces were.

Example::

    alignment = ChipAlignment.from_card(model.card)
    chips = alignment.cut(frame_bgr, detections, 64)  # BGR, 64x64 each
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detections import Detections

# MediaPipe's keypoints the transform uses: right eye, left eye, nose tip, mouth centre. The ear
# points are left out: they slide across the face as it turns.
KEYPOINTS_USED = (0, 1, 2, 3)


@dataclass(frozen=True)
class ChipAlignment:
    """Where the keypoints sit in a model's chips (fractions of the chip's side), and how a face
    without keypoints is framed from its box: the chip's centre shifted by ``box_shift`` box widths
    (x, y) from the box's centre, its side ``box_scale`` box widths."""

    template: tuple[tuple[float, float], ...]
    box_scale: float
    box_shift: tuple[float, float]
    name: str = "keypoints"
    keypoints: tuple[int, ...] = KEYPOINTS_USED

    @classmethod
    def from_dict(cls, record: dict) -> "ChipAlignment":
        return cls(template=tuple(tuple(float(v) for v in point) for point in record["template"]),
                   box_scale=float(record["box_scale"]), box_shift=tuple(float(v) for v in record["box_shift"]),
                   name=record.get("name", "keypoints"), keypoints=tuple(record.get("keypoints", KEYPOINTS_USED)))

    @classmethod
    def from_card(cls, card: dict) -> "ChipAlignment | None":
        """The card's alignment, or None for a model trained on box crops (``core.crop``)."""
        record = card.get("alignment")
        return cls.from_dict(record) if isinstance(record, dict) and "template" in record else None

    def to_dict(self) -> dict:
        return {"method": "similarity transform of keypoints to a template", "name": self.name,
                "keypoints": list(self.keypoints), "template": [list(p) for p in self.template],
                "box_scale": self.box_scale, "box_shift": list(self.box_shift)}

    def matrices(self, detections: Detections, size: int) -> np.ndarray:
        """Affine maps ``(N, 2, 3)`` from frame pixels to chip pixels of a ``size`` chip."""
        template = np.asarray(self.template, np.float64) * size
        maps = np.zeros((len(detections), 2, 3), np.float64)
        keypoints = detections.keypoints
        for i in range(len(detections)):
            points = None if keypoints is None else np.asarray(keypoints[i], np.float64)[list(self.keypoints)]
            maps[i] = self._from_box(detections.xyxy[i], size)
            if points is not None and np.all(np.isfinite(points)):
                try:
                    maps[i] = similarity_transform(points, template)
                except ValueError:  # degenerate keypoints (all in one place): the box frames it
                    pass
        return maps

    def _from_box(self, xyxy: np.ndarray, size: int) -> np.ndarray:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        width = max(x2 - x1, 1.0)
        side = self.box_scale * width
        cx = (x1 + x2) / 2 + self.box_shift[0] * width
        cy = (y1 + y2) / 2 + self.box_shift[1] * width
        scale = size / side
        return np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])

    def cut(self, frame_bgr: np.ndarray, detections: Detections, size: int) -> list[np.ndarray]:
        """One ``size`` x ``size`` BGR chip per face. A face much larger than the chip is sampled at a
        few times its size first, then reduced by area averaging, so no detail aliases into the chip."""
        chips = []
        for matrix in self.matrices(detections, size):
            # How many frame pixels fall on one chip pixel: sample that much finer, up to 4x.
            zoom = int(np.clip(np.floor(1.0 / max(np.sqrt(abs(np.linalg.det(matrix[:, :2]))), 1e-6)), 1, 4))
            fine = matrix * zoom
            chip = cv2.warpAffine(frame_bgr, fine, (size * zoom, size * zoom), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            if zoom > 1:
                chip = cv2.resize(chip, (size, size), interpolation=cv2.INTER_AREA)
            chips.append(chip)
        return chips


def aligned_by_keypoints(detections: Detections, alignment: ChipAlignment) -> np.ndarray:
    """Boolean per face: True where its keypoints framed it, False where its box did."""
    if detections.keypoints is None:
        return np.zeros(len(detections), bool)
    points = np.asarray(detections.keypoints)[:, list(alignment.keypoints)]
    return np.all(np.isfinite(points.reshape(len(detections), -1)), axis=1)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity ``(2, 3)`` taking points ``source`` onto ``target`` (Umeyama's
    closed form for 2-D points, without reflection).

    >>> m = similarity_transform(np.array([[0, 0], [1, 0], [0, 1]]), np.array([[1, 1], [1, 3], [-1, 1]]))
    >>> np.round(m, 6).tolist()
    [[0.0, -2.0, 1.0], [2.0, 0.0, 1.0]]
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    s, d = source - src_mean, target - dst_mean
    norm = float((s ** 2).sum())
    if norm <= 1e-12:
        raise ValueError("keypoints coincide: no transform")
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])
