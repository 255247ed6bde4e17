"""The one image-to-tensor function shared by training and inference.

Training reads UTKFace crops from disk and inference cuts crops out of camera frames; both
go through :func:`preprocess_face` so a model always sees the same pixels it was trained on.
Pixel scaling lives inside the models (a ``Rescaling`` layer), so this stays a plain resize
and colour-order change.
"""

from __future__ import annotations

import cv2
import numpy as np


def preprocess_face(face_bgr: np.ndarray, size: int) -> np.ndarray:
    """Return a ``(size, size, 3)`` float32 RGB array in 0..255 from a BGR (or gray/BGRA) crop.

    >>> import numpy as np
    >>> preprocess_face(np.zeros((200, 180, 3), np.uint8), 96).shape
    (96, 96, 3)
    """
    face = to_bgr(face_bgr)
    interpolation = cv2.INTER_AREA if min(face.shape[:2]) > size else cv2.INTER_LINEAR
    face = cv2.resize(face, (size, size), interpolation=interpolation)
    return cv2.cvtColor(face, cv2.COLOR_BGR2RGB).astype(np.float32)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Convert a grayscale or BGRA uint8 image to 3-channel BGR; BGR passes through."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
