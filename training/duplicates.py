"""Group near-identical images, so a split never separates copies of one photo.

UTKFace holds some photos more than once under different names, often with different ages.
Each image gets a 64-bit perceptual hash (OpenCV's ``img_hash.pHash``, from the opencv-contrib
build that mediapipe brings) and a 32x32 gray thumbnail. Two images are one photo when their
hashes differ in at most ``max_distance`` bits *and* their thumbnails differ by at most
``max_pixel_difference`` grey levels on average; groups are closed transitively.

Why both: UTKFace faces are aligned, so distinct faces' hashes sit close (most 6-12 bits
apart). Measured on ../shared/data/utkface (``python -m agecam.training.duplicates DIR``): pairs 0-3
bits apart are copies (median thumbnail difference 1-5 levels), pairs 5+ bits apart are
distinct faces (median 35 levels); at 4 bits both kinds occur, which the thumbnail settles.

Example::

    prints = fingerprint_images([path_a, path_b])
    group_near_duplicates(prints)   # array([0, 0]) when they are copies of one photo
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)
THUMB_SIDE = 32


@dataclass(frozen=True)
class DuplicateConfig:
    """When two images count as one photo (see the module docstring for how these were chosen)."""

    max_distance: int = 5  # hash bits
    max_pixel_difference: float = 10.0  # mean absolute grey-level difference of 32x32 thumbnails


@dataclass
class Fingerprints:
    """Per image: its pHash (N, 8) uint8, its thumbnail (N, 32, 32) uint8, and whether it was readable."""

    hashes: np.ndarray
    thumbs: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.hashes)


def fingerprint(image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An image's pHash (8 bytes) and 32x32 gray thumbnail."""
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    thumb = cv2.resize(gray, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    return cv2.img_hash.pHash(image_bgr).reshape(8), thumb


def fingerprint_images(paths: list[Path]) -> Fingerprints:
    """Fingerprints of image files; an unreadable one is marked invalid and groups with nothing."""
    from .data import read_image

    prints = Fingerprints(np.zeros((len(paths), 8), np.uint8),
                          np.zeros((len(paths), THUMB_SIDE, THUMB_SIDE), np.uint8), np.ones(len(paths), bool))
    for i, path in enumerate(paths):
        image = read_image(path)
        if image is None:
            prints.valid[i] = False
            continue
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        prints.hashes[i], prints.thumbs[i] = fingerprint(image)
    return prints


def hamming_distances(hashes: np.ndarray, rows: slice) -> np.ndarray:
    """Bit distances between ``hashes[rows]`` and every hash: ``(len(rows), N)``."""
    xor = np.bitwise_xor(hashes[rows, None, :], hashes[None, :, :])
    return _POPCOUNT[xor].sum(axis=2, dtype=np.uint16)


def group_near_duplicates(prints: Fingerprints, config: DuplicateConfig = DuplicateConfig(),
                          chunk: int = 256) -> np.ndarray:
    """Group id per image (the smallest index in its group); invalid images stay alone."""
    n = len(prints)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    thumbs = prints.thumbs.astype(np.float32)
    for start in range(0, n, chunk):
        distances = hamming_distances(prints.hashes, slice(start, min(n, start + chunk)))
        close_rows, close_cols = np.nonzero(distances <= config.max_distance)
        for r, c in zip(close_rows + start, close_cols):
            if r >= c or not (prints.valid[r] and prints.valid[c]):
                continue
            if np.abs(thumbs[r] - thumbs[c]).mean() > config.max_pixel_difference:
                continue
            a, b = find(r), find(c)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(n)])


def nearest_other_distance(hashes: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Each image's bit distance to its nearest other image (for choosing the threshold)."""
    n = len(hashes)
    best = np.full(n, 64, np.uint16)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        distances = hamming_distances(hashes, slice(start, stop))
        distances[np.arange(stop - start), np.arange(start, stop)] = 64
        best[start:stop] = distances.min(axis=1)
    return best


def _main() -> None:
    import sys

    from .data import scan_folder

    records = scan_folder(sys.argv[1]).records
    prints = fingerprint_images([r.path for r in records])
    nearest = nearest_other_distance(prints.hashes)
    counts = np.bincount(np.minimum(nearest, 20), minlength=21)
    print("nearest-other distance (bits): images")
    for bits, count in enumerate(counts):
        print(f"{bits:>2}{'+' if bits == 20 else ' '}: {count}")
    groups = group_near_duplicates(prints)
    sizes = np.bincount(groups)
    print(f"{len(records)} images in {np.count_nonzero(sizes)} groups; {np.count_nonzero(sizes > 1)} groups hold copies")


if __name__ == "__main__":
    _main()
