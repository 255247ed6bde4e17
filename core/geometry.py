"""Box geometry shared by detection, tracking and the pipeline."""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two sets of xyxy boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def overlaps_another(boxes: np.ndarray) -> np.ndarray:
    """Per xyxy box, whether it overlaps any other box of the set."""
    if len(boxes) < 2:
        return np.zeros(len(boxes), bool)
    overlap = iou_matrix(boxes, boxes) > 0
    np.fill_diagonal(overlap, False)
    return overlap.any(axis=1)
