"""Cut face crops out of frames with the geometry the age models were trained on.

UTKFace crops are square, aligned (eyes level) and frame the face with a little margin.
Run on UTKFace crops padded with a border, MediaPipe's short-range box covers a median 92%
of the crop's side, centred 1.7% below the crop's centre (full range: 98%, 2% above);
measured on 300 random crops with ``training.crop_calibration``. Inverting that gives the
expansion below, so a detected face is framed as the training faces were.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detections import Detections

# Per detector range: (crop side / box width, how far the box centre lies below the crop centre,
# as a fraction of the crop side).
CALIBRATED_GEOMETRY = {"short": (1.084, 0.017), "full": (1.021, -0.021)}


@dataclass(frozen=True)
class CropConfig:
    """How a detected box becomes the model's square face crop."""

    scale: float = CALIBRATED_GEOMETRY["full"][0]
    shift_y: float = CALIBRATED_GEOMETRY["full"][1]
    align: bool = True  # rotate so the eyes are level, as in UTKFace
    max_side: int = 256  # crops larger than this are sampled down at once (the model needs ≤ 224)

    @classmethod
    def for_detector_range(cls, detector_range: str, **overrides) -> "CropConfig":
        scale, shift_y = CALIBRATED_GEOMETRY[detector_range]
        return cls(scale=scale, shift_y=shift_y, **overrides)


def crop_square(xyxy: np.ndarray, config: CropConfig = CropConfig()) -> np.ndarray:
    """The square region ``(cx, cy, side)`` to cut for each box, in frame pixels.

    It may reach beyond the frame; :func:`crop_faces` fills that part from the edge pixels.
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    width = xyxy[:, 2] - xyxy[:, 0]
    side = width * config.scale
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 - config.shift_y * side
    return np.stack([cx, cy, side], axis=1)


def eye_angle(keypoints: np.ndarray) -> float:
    """Angle in degrees of the line from the right eye to the left eye (0 when level)."""
    right, left = keypoints[0], keypoints[1]
    if not np.all(np.isfinite(keypoints[:2])):
        return 0.0
    return float(np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))


def crop_faces(frame_bgr: np.ndarray, detections: Detections, config: CropConfig = CropConfig()) -> list[np.ndarray]:
    """One square BGR crop per detection, eye-aligned when ``config.align``.

    Parts of the square outside the frame are filled by repeating the edge pixels, so a face
    at the border keeps its place and scale in the crop instead of being stretched.
    """
    crops = []
    for (cx, cy, side), points in zip(crop_square(detections.xyxy, config), detections.keypoints):
        out_side = int(max(8, min(round(side), config.max_side)))
        angle = eye_angle(points) if config.align else 0.0
        # Affine map from frame to crop: rotate about the face centre, scale to out_side.
        matrix = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, out_side / float(side))
        matrix[:, 2] += (out_side / 2 - cx, out_side / 2 - cy)
        crops.append(cv2.warpAffine(frame_bgr, matrix, (out_side, out_side), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE))
    return crops
