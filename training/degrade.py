"""Render a clean face crop as the live pipeline would see it: small, compressed, a little soft.

In a camera frame a face is often 40-100 px wide; the frame is JPEG/H.264 compressed at that
resolution; the pipeline then cuts the crop (bilinear warp) and enlarges it to the model's
input (bilinear, ``core.preprocess``). :func:`degrade_face` does the same to a UTKFace crop:
area-down-scaling to an effective face width (a camera sensor integrates over the area),
optional blur and sensor noise at that size, JPEG re-encoding there, then bilinear up-scaling.

Used two ways: randomly during training (:class:`DegradeConfig`) and at fixed widths with
JPEG quality 50 by ``agecam evaluate --degrade`` (:func:`render_at_width`).

Example::

    rng = np.random.default_rng(0)
    small = render_at_width(face_rgb, width=48, quality=50)   # same size as face_rgb
    random = degrade_face(face_rgb, rng, DegradeConfig())
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The degraded evaluation's JPEG quality (issue #12): a typical webcam stream's.
EVAL_JPEG_QUALITY = 50


@dataclass(frozen=True)
class DegradeConfig:
    """Ranges of the random degradation applied to a training face (on top of the geometric augmentation)."""

    probability: float = 0.6  # share of training faces degraded; the rest stay clean
    width_range: tuple[int, int] = (24, 96)  # effective face width in pixels (log-uniform)
    jpeg_probability: float = 0.8
    jpeg_quality_range: tuple[int, int] = (30, 95)
    blur_probability: float = 0.3
    max_blur_sigma: float = 1.0  # Gaussian sigma in pixels of the small face
    noise_probability: float = 0.3
    max_noise_std: float = 6.0  # grey levels


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (uint8, RGB or BGR: JPEG treats channels alike here) encoded and decoded at ``quality``."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _to_width(image: np.ndarray, width: int) -> np.ndarray:
    width = int(max(4, min(width, image.shape[1])))
    return cv2.resize(image, (width, width), interpolation=cv2.INTER_AREA)


def _back_to(image: np.ndarray, side: int) -> np.ndarray:
    # Bilinear, as crop_faces and preprocess_face enlarge small faces in the live pipeline.
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR)


def render_at_width(face: np.ndarray, width: int, quality: int = EVAL_JPEG_QUALITY,
                    side: int | None = None) -> np.ndarray:
    """``face`` (uint8, square) as seen at ``width`` px with JPEG ``quality``, returned at ``side`` px
    (default: its own size). Deterministic."""
    side = side or face.shape[0]
    small = _to_width(np.asarray(face, np.uint8), width)
    return _back_to(jpeg_roundtrip(small, quality), side)


def degrade_face(face: np.ndarray, rng: np.random.Generator, config: DegradeConfig = DegradeConfig()) -> np.ndarray:
    """A randomly degraded uint8 copy of ``face`` at its own size (or ``face`` itself, unchanged,
    with probability ``1 - config.probability``)."""
    if rng.random() >= config.probability:
        return face
    side = face.shape[0]
    low, high = config.width_range
    width = int(round(np.exp(rng.uniform(np.log(low), np.log(high)))))
    small = _to_width(np.asarray(face, np.uint8), width)
    if rng.random() < config.blur_probability:
        small = cv2.GaussianBlur(small, (0, 0), rng.uniform(0.3, config.max_blur_sigma))
    if rng.random() < config.noise_probability:
        noise = rng.normal(0.0, rng.uniform(1.0, config.max_noise_std), small.shape)
        small = np.clip(small.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_probability:
        small = jpeg_roundtrip(small, int(rng.integers(config.jpeg_quality_range[0], config.jpeg_quality_range[1] + 1)))
    return _back_to(small, side)
