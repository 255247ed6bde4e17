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

from .preprocess import to_bgr


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
    if image is None:
        raise ImageError("the image is corrupt or truncated")
    return apply_exif_orientation(to_bgr(to_8_bits(image)), exif_orientation(data))


def to_8_bits(image: np.ndarray) -> np.ndarray:
    """A 16-bit (or float) image scaled to uint8 (16-bit PNGs from scanners and raw converters)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ImageError(f"unsupported pixel type {image.dtype}")


# EXIF orientation -> (cv2.rotate code or None, flip horizontally first): how to make the stored
# pixels upright (a phone stores a portrait photo sideways with orientation 6).
_ORIENTATIONS = {2: (None, True), 3: (cv2.ROTATE_180, False), 4: (cv2.ROTATE_180, True),
                 5: (cv2.ROTATE_90_CLOCKWISE, True), 6: (cv2.ROTATE_90_CLOCKWISE, False),
                 7: (cv2.ROTATE_90_COUNTERCLOCKWISE, True), 8: (cv2.ROTATE_90_COUNTERCLOCKWISE, False)}


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag of an encoded image (1, upright, when it has none)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as probe:
            value = probe.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block must not make a readable picture unreadable
        return 1
    return value if value in _ORIENTATIONS else 1


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` turned upright for its EXIF ``orientation`` (as viewers show it)."""
    if orientation not in _ORIENTATIONS:
        return image
    rotation, mirror = _ORIENTATIONS[orientation]
    if mirror:
        image = cv2.flip(image, 1)
    return cv2.rotate(image, rotation) if rotation is not None else image


def read_image_file(path: str | os.PathLike, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    """Read an image file as BGR uint8, upright (EXIF orientation applied), 16-bit images scaled to 8,
    or raise :class:`ImageError` (or ``OSError``) with a reason. A path that is not a regular file
    (a FIFO, a device) is refused before it is opened: reading one could block forever."""
    import stat

    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder, not an image")
    if not stat.S_ISREG(mode):
        raise ImageError("not a regular file (a pipe or a device); give an image file")
    size = os.path.getsize(path)
    if size > limits.max_bytes:
        raise ImageError(f"file too large for an image: {size / 1e6:.0f} MB (limit {limits.max_bytes / 1e6:.0f} MB)")
    with open(path, "rb") as handle:
        return decode_image(handle.read(), limits)
