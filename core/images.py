"""Decode untrusted image bytes safely: size checked before pixels are decoded."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np

from core.preprocess import to_bgr


class ImageError(ValueError):
    """Bytes that are not a usable image (empty, corrupt, unsupported or too many pixels)."""


@dataclass(frozen=True)
class ImageLimits:
    """Guards against decompression bombs: a 40-megapixel cap checked from the header alone."""

    max_pixels: int = 40_000_000
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Return the image in ``data`` as BGR uint8, or raise :class:`ImageError` with a reason."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as probe:  # reads the header only
            kind, (width, height) = probe.format, probe.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ImageError(f"not a readable image ({type(error).__name__})") from None
    if kind not in limits.formats:
        raise ImageError(f"unsupported image type {kind}; use {', '.join(limits.formats)}")
    if width * height > limits.max_pixels:
        raise ImageError(f"image too large: {width}x{height} pixels (limit {limits.max_pixels / 1e6:.0f} MP)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise ImageError("the image is corrupt or truncated")
    return to_bgr(image)
