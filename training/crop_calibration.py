"""Measure where the face detector's box sits inside UTKFace training crops.

The result gives ``core.crop.CALIBRATED_GEOMETRY``: how much to expand a detected box so
inference crops frame faces as the training crops do. Run with
``python -m agecam.training.crop_calibration ../shared/data/utkface-crop-part1``.
"""

from __future__ import annotations

import json
import random
import sys

import cv2
import numpy as np

from agecam.core.detector import DetectorConfig, FaceDetector
from agecam.core.paths import UTKFACE_CROP_PART1
from .data import read_image, scan_folder

PAD_FRACTION = 0.5  # black border around each crop, so the detector sees the face in context


def measure(folder: str, detector_range: str = "short", samples: int = 300, seed: int = 0) -> dict:
    """Median box geometry relative to the crop side, and the crop expansion it implies."""
    records = scan_folder(folder).records
    random.Random(seed).shuffle(records)
    rows = []
    with FaceDetector(DetectorConfig(range=detector_range)) as detector:
        for record in records[:samples]:
            image = read_image(record.path)
            if image is None:
                continue
            side = image.shape[1]
            pad = int(side * PAD_FRACTION)
            padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
            faces = detector.detect(padded)
            if len(faces) == 0:
                continue
            x1, y1, x2, y2 = faces.xyxy[int(np.argmax(faces.confidence))] - pad
            rows.append(((x2 - x1) / side, ((y1 + y2) / 2) / side - 0.5))
    widths, centre_below = np.asarray(rows).T
    return {
        "range": detector_range,
        "faces_measured": len(rows),
        "box_width_over_side": float(np.median(widths)),
        "scale": float(np.median(1 / widths)),
        "shift_y": float(np.median(centre_below)),
    }


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else UTKFACE_CROP_PART1
    print(json.dumps([measure(folder, r) for r in ("short", "full")], indent=2))
