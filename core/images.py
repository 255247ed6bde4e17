"""Read untrusted images safely: file size, pixel count and side length checked before decoding.

The one image reader of the CLI, the web app and training. A side over 32767 px aborts the
process inside MediaPipe (not an exception), and a huge file would be read whole into memory,
so both are refused from the file size and the header alone.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import cv2
import numpy as np

from core.preprocess import to_bgr


# File name endings of the image types read (ImageLimits.formats): for scanning folders and naming outputs.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


class ImageError(ValueError):
    """Bytes that are not a usable image (empty, corrupt, unsupported or too many pixels)."""


@dataclass(frozen=True)
class ImageLimits:
    """Guards against decompression bombs: pixel count and side length checked from the header alone,
    file size before reading."""

    max_pixels: int = 40_000_000
    max_side: int = 16_384
    max_bytes: int = 100_000_000
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP")


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
    if max(width, height) > limits.max_side:
        raise ImageError(f"image too large: {width}x{height} pixels (limit {limits.max_side} px a side)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint8:
        raise ImageError("the image is corrupt or truncated")
    return to_bgr(image)


def read_image_file(path: str | os.PathLike, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Read an image file as BGR uint8, or raise :class:`ImageError` (or ``OSError``) with a reason."""
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        raise ImageError(f"file too large for an image: {size / 1e6:.0f} MB (limit {limits.max_bytes / 1e6:.0f} MB)")
    with open(path, "rb") as handle:
        return decode_image(handle.read(), limits)
