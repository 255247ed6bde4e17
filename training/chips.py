"""Aligned chips of labelled face crops, cut as the live pipeline cuts them (:mod:`core.align`).

A UTKFace crop is padded with its edge pixels (so the detector sees a face in context, as in a
frame), MediaPipe finds the face nearest the centre, and its keypoints place the chip. A crop in
which no face is found is framed by the alignment's box rule on the median box of the faces that
were found (UTKFace crops all frame their face alike); :class:`AlignedChips` counts those.

Cutting takes about 6 ms a face; with ``cache_dir`` the chips are kept there under a name made of
the file list, the alignment and the size, so later runs and evaluations read them back (the cache
holds derived images of the data: keep it outside the repository).

Example::

    chips = load_aligned_chips(records, alignment, 64, cache_dir=Path("~/.cache/agecam").expanduser())
    chips.images.shape, chips.fallback  # (N, 64, 64, 3) RGB uint8, faces framed by the box rule
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agecam.core.align import ChipAlignment
from agecam.core.config import DetectorConfig
from agecam.core.detections import Detections
from agecam.core.preprocess import preprocess_face
# The border the detector sees a crop in: the same as for extra faces and the template's fit.
from .extra_faces import PAD_FRACTION, centre_face, pad_photo

log = logging.getLogger(__name__)



@dataclass
class AlignedChips:
    """Chips (RGB uint8), one per readable record, and how many were framed by the box rule."""

    images: np.ndarray
    kept: list  # the records whose image could be read, in order
    fallback: int


def cache_key(paths, alignment: ChipAlignment, size: int) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([alignment.to_dict(), size, PAD_FRACTION]).encode())
    for path in paths:
        digest.update(str(Path(path).name).encode() + b"\0")
    return digest.hexdigest()[:20]


def load_aligned_chips(records, alignment: ChipAlignment, size: int, cache_dir: Path | None = None,
                       progress=None) -> AlignedChips:
    """Aligned ``size`` px chips of ``records`` (objects with ``.path``; unreadable files skipped)."""
    from .data import read_image

    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"chips-{cache_key([r.path for r in records], alignment, size)}.npz"
        if cache.is_file():
            try:
                with np.load(cache) as stored:
                    kept_idx = stored["kept"]
                    return AlignedChips(stored["images"], [records[i] for i in kept_idx], int(stored["fallback"]))
            except (OSError, ValueError, KeyError) as error:
                log.warning("ignoring the unreadable chip cache %s (%s)", cache, error)
    from agecam.core.detector import FaceDetector

    chips: dict[int, np.ndarray] = {}
    missed, relative_boxes = [], []
    with FaceDetector(DetectorConfig(range="full")) as detector:
        for index, record in enumerate(records):
            if progress is not None and index % 256 == 0:
                progress(index, len(records))
            image = read_image(record.path)
            if image is None:
                log.warning("skipping unreadable image %s", record.path)
                continue
            padded, pad, face = centre_face(image, detector)
            if face is None:
                missed.append(index)
                continue
            chips[index] = preprocess_face(alignment.cut(padded, face, size)[0], size).astype(np.uint8)
            height, width = image.shape[:2]
            x1, y1, x2, y2 = face.xyxy[0] - pad
            relative_boxes.append((x1 / width, y1 / height, x2 / width, y2 / height))
    # A crop without a detected face: the median detected box of the others, placed by the box rule.
    median_box = np.median(np.array(relative_boxes), axis=0) if relative_boxes else np.array([0.1, 0.1, 0.9, 0.9])
    for index in missed:
        image = read_image(records[index].path)
        height, width = image.shape[:2]
        padded, pad = pad_photo(image)
        box = median_box * np.array([width, height, width, height]) + pad
        face = Detections(xyxy=box[None].astype(np.float32))
        chips[index] = preprocess_face(alignment.cut(padded, face, size)[0], size).astype(np.uint8)
    kept = sorted(chips)
    images = [chips[i] for i in kept]
    fallback = len(missed)
    if progress is not None:
        progress(len(records), len(records))
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    if cache is not None:
        from agecam.core.atomic import atomic_path

        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, images=stacked, kept=np.array(kept, np.int64), fallback=fallback)
    if fallback:
        log.info("%d of %d faces had no face found by the detector: framed by the box rule", fallback, len(kept))
    return AlignedChips(stacked, [records[i] for i in kept], fallback)
