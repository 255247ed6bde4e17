"""Named image perturbations: what cameras, phones, scanners and crops do to a face.

Two uses, one set of functions, so training sees what the robustness suite measures:

- :data:`ROBUSTNESS_SUITE`: every test face under each named perturbation at a fixed strength
  (``agecam evaluate --robustness``); deterministic.
- :func:`random_photometric`: random strengths of the same families for training
  (:class:`PhotometricConfig`, used by ``training.augment``).

All functions take and return uint8 RGB (or BGR: only the colour casts care, see their names)
square face crops of any size.

Example::

    face = np.full((96, 96, 3), 128, np.uint8)
    for name, perturb in ROBUSTNESS_SUITE.items():
        out = perturb(face)          # same shape, uint8
    rng = np.random.default_rng(0)
    augmented = random_photometric(face, rng, PhotometricConfig())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .degrade import jpeg_roundtrip, render_at_width


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def greyscale(image: np.ndarray) -> np.ndarray:
    """The face in grey, kept in three channels (old scans, night cameras, black-and-white photos)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def colour_cast(image: np.ndarray, warmth: float) -> np.ndarray:
    """A white-balance error: ``warmth`` > 0 raises red and lowers blue (RGB order), < 0 the reverse."""
    gains = np.array([1.0 + warmth, 1.0, 1.0 - warmth], np.float32)
    return _u8(image.astype(np.float32) * gains)


def saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Colour saturation scaled by ``factor`` around each pixel's grey level."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
    return _u8(grey + (image.astype(np.float32) - grey) * factor)


def gamma(image: np.ndarray, value: float) -> np.ndarray:
    """Tone curve ``out = in ** value`` (below 1 brightens the shadows, above 1 darkens them)."""
    table = _u8(255.0 * (np.arange(256) / 255.0) ** value)
    return cv2.LUT(np.ascontiguousarray(image), table)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Global contrast scaled by ``factor`` around the image's mean."""
    out = image.astype(np.float32)
    mean = out.mean()
    return _u8((out - mean) * factor + mean)


def clahe(image: np.ndarray, clip_limit: float = 3.0, grid: int = 8) -> np.ndarray:
    """Local contrast enhancement on the lightness channel (what phone cameras and HDR modes do)."""
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)
    enhancer = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(grid, grid))
    lab[:, :, 0] = enhancer.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def local_contrast(image: np.ndarray, amount: float, radius: float = 0.08) -> np.ndarray:
    """Detail relative to a wide blur (sigma ``radius`` of the side) scaled by ``amount``: above 1
    enhances local contrast (HDR-like), below 1 flattens it (soft, foggy, beauty filters)."""
    sigma = max(1.0, radius * image.shape[0])
    base = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma)
    return _u8(base + (image.astype(np.float32) - base) * amount)


def unsharp(image: np.ndarray, amount: float = 1.0, sigma: float = 1.0) -> np.ndarray:
    """Unsharp masking (camera sharpening): ``image + amount * (image - blur)``."""
    blurred = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma * image.shape[0] / 96.0)
    return _u8(image.astype(np.float32) * (1 + amount) - blurred * amount)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels at a 96 px face (scaled with the crop's side)."""
    return cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0), sigma * image.shape[0] / 96.0)


def faded_print(image: np.ndarray, fade: float, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """An aged photographic print: blacks lifted and whites dulled towards paper grey by ``fade``
    (0: none, 0.4: strongly faded), then the dyes' colour shift as per-channel ``tint`` gains
    (RGB order; e.g. a yellowed or magenta-shifted print)."""
    out = image.astype(np.float32)
    out = out * (1.0 - fade) + 150.0 * fade
    return _u8(out * np.asarray(tint, np.float32))


def film_grain(image: np.ndarray, std: float, rng: np.random.Generator, clump: float = 0.8) -> np.ndarray:
    """Film grain of a scanned print: luminance noise of ``std`` grey levels whose grains clump over
    ``clump`` px at a 96 px face (scaled with the crop's side), the same in every channel."""
    side = image.shape[0]
    noise = rng.standard_normal(image.shape[:2]).astype(np.float32)
    sigma = clump * side / 96.0
    if sigma > 0.3:
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        noise /= max(float(noise.std()), 1e-6)
    return _u8(image.astype(np.float32) + std * noise[..., None])


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encoding at ``quality`` at the crop's own size."""
    return jpeg_roundtrip(image, quality)


def face_width(image: np.ndarray, width: int) -> np.ndarray:
    """The face seen ``width`` px wide (area-down-scaled, JPEG quality 90 there), enlarged back."""
    return render_at_width(image, width, quality=90)


def margin(image: np.ndarray, factor: float) -> np.ndarray:
    """The crop's side times ``factor`` around the same centre: above 1 shows more around the face
    (edges filled by repeating the border, as ``core.crop`` does), below 1 cuts closer."""
    side = image.shape[0]
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), 0.0, 1.0 / factor)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def rotation(image: np.ndarray, degrees: float) -> np.ndarray:
    """The face rotated by ``degrees`` in the image plane (a tilted head the eye alignment missed)."""
    side = image.shape[0]
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), degrees, 1.0)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


# The robustness suite (issue #21): name -> perturbation of fixed strength. Applied to the test
# faces before the model's own preprocessing; "clean" is the reference.
ROBUSTNESS_SUITE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda image: image,
    "greyscale": greyscale,
    "warm cast": lambda image: colour_cast(image, 0.15),
    "cool cast": lambda image: colour_cast(image, -0.15),
    "saturation x0.5": lambda image: saturation(image, 0.5),
    "saturation x1.5": lambda image: saturation(image, 1.5),
    "gamma 0.6": lambda image: gamma(image, 0.6),
    "gamma 1.6": lambda image: gamma(image, 1.6),
    "contrast x0.6": lambda image: contrast(image, 0.6),
    "CLAHE": lambda image: clahe(image, 3.0),
    "unsharp mask": lambda image: unsharp(image, 1.0),
    "blur sigma 1.5": lambda image: gaussian_blur(image, 1.5),
    "JPEG q30": lambda image: jpeg(image, 30),
    "face 48 px": lambda image: face_width(image, 48),
    "margin x0.85": lambda image: margin(image, 0.85),
    "margin x1.25": lambda image: margin(image, 1.25),
    "rotation +15": lambda image: rotation(image, 15.0),
    "rotation -15": lambda image: rotation(image, -15.0),
}
# Perturbations that destroy detail outright: allowed a larger MAE increase (issue #21's targets).
HARSH_PERTURBATIONS = ("face 48 px", "JPEG q30")


@dataclass(frozen=True)
class PhotometricConfig:
    """Probability and strength range of each random photometric change of a training face.

    Strength ranges reach a little beyond the robustness suite's fixed strengths, so the suite's
    cases lie inside what training saw.
    """

    greyscale: float = 0.15
    cast: float = 0.3
    max_warmth: float = 0.2
    saturation: float = 0.3
    saturation_range: tuple[float, float] = (0.4, 1.7)
    gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.55, 1.8)
    clahe: float = 0.15
    clahe_clip_range: tuple[float, float] = (1.5, 4.0)
    local_contrast: float = 0.15
    local_contrast_range: tuple[float, float] = (0.5, 1.8)
    sharpen: float = 0.15
    max_sharpen: float = 1.5
    blur: float = 0.1
    max_blur_sigma: float = 2.0
    # Old photographs and their scans (family albums, ID photos): a faded, dye-shifted print
    # and film grain, each on its own.
    old_print: float = 0.2
    max_fade: float = 0.35
    max_tint: float = 0.12
    grain: float = 0.2
    grain_std_range: tuple[float, float] = (2.0, 12.0)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def random_photometric(image: np.ndarray, rng: np.random.Generator, config: PhotometricConfig) -> np.ndarray:
    """A copy of uint8 ``image`` with each family of :class:`PhotometricConfig` applied with its
    probability and a random strength: colour first, then tone, then detail (the order a camera
    pipeline and a photo app apply them)."""
    out = image
    if rng.random() < config.greyscale:
        out = greyscale(out)
    elif rng.random() < config.cast:
        out = colour_cast(out, rng.uniform(-config.max_warmth, config.max_warmth))
    if rng.random() < config.saturation:
        out = saturation(out, _log_uniform(rng, *config.saturation_range))
    if rng.random() < config.gamma:
        out = gamma(out, _log_uniform(rng, *config.gamma_range))
    if rng.random() < config.clahe:
        out = clahe(out, rng.uniform(*config.clahe_clip_range))
    elif rng.random() < config.local_contrast:
        out = local_contrast(out, _log_uniform(rng, *config.local_contrast_range))
    if rng.random() < config.old_print:
        tint = 1.0 + rng.uniform(-config.max_tint, config.max_tint, size=3)
        out = faded_print(out, rng.uniform(0.05, config.max_fade), tuple(tint))
    if rng.random() < config.grain:
        out = film_grain(out, rng.uniform(*config.grain_std_range), rng)
    if rng.random() < config.sharpen:
        out = unsharp(out, rng.uniform(0.2, config.max_sharpen))
    elif rng.random() < config.blur:
        out = gaussian_blur(out, rng.uniform(0.5, config.max_blur_sigma))
    return out
