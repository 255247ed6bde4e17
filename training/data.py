"""UTKFace: parse labels from file names, read images, report what was skipped.

UTKFace names its files ``[age]_[gender]_[race]_[date&time].jpg(.chip.jpg)``. A few published
names miss a field; those, ages outside the valid range and unreadable images are skipped and
counted, never fatal.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agecam.core.images import IMAGE_SUFFIXES, ImageError, read_image_file
from agecam.core.utkface import parse_name
from agecam.core.preprocess import preprocess_face

log = logging.getLogger(__name__)

MIN_AGE, MAX_AGE = 0, 116


class DataError(Exception):
    """The data folder cannot be used at all (missing, empty, no parsable names)."""


@dataclass(frozen=True)
class FaceRecord:
    """One labelled UTKFace image."""

    path: Path
    age: int
    gender: int
    race: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class ScanReport:
    """What a folder scan found: usable records and skip counts by reason."""

    records: list[FaceRecord] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        parts = [f"{len(self.records)} labelled images"]
        parts += [f"{n} skipped ({reason})" for reason, n in sorted(self.skipped.items())]
        return ", ".join(parts)


def scan_folder(folder: str | Path) -> ScanReport:
    """List the labelled images of ``folder`` (not recursive), sorted by name.

    Raises :class:`DataError` when the folder is missing or holds no parsable name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    report = ScanReport()
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not path.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        parsed = parse_name(path.name)
        if parsed is None:
            report.skipped["malformed name"] += 1
            continue
        age, gender, race = parsed
        if not MIN_AGE <= age <= MAX_AGE:
            report.skipped["age out of range"] += 1
            continue
        report.records.append(FaceRecord(path, age, gender, race))
    if not report.records:
        raise DataError(f"no UTKFace-named images in {folder} ({report.summary()})")
    return report


def read_image(path: str | Path) -> np.ndarray | None:
    """Read an image as BGR uint8 (gray and alpha converted), or None when unreadable or too large
    (the checks of :func:`core.images.read_image_file`)."""
    try:
        return read_image_file(path)
    except (ImageError, OSError):
        return None


def load_arrays(
    records: list[FaceRecord], size: int, report: ScanReport | None = None, progress=None,
    alignment=None, cache_dir: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, list[FaceRecord]]:
    """Load records as ``(images uint8 N×size×size×3 RGB, ages float32, kept records)``.

    Images are kept as uint8 to hold a whole split in memory cheaply; corrupt files are
    skipped and counted in ``report``. ``progress(done, total)`` is called every 256 files.
    With ``alignment`` (a :class:`core.align.ChipAlignment`, a model card's), each face is cut as
    an aligned chip the way the live pipeline cuts it (:mod:`training.chips`), else the whole crop
    is resized.
    """
    if alignment is not None:
        from .chips import load_aligned_chips

        chips = load_aligned_chips(records, alignment, size, cache_dir, progress)
        if report is not None and len(chips.kept) < len(records):
            report.skipped["unreadable image"] += len(records) - len(chips.kept)
        return chips.images, np.asarray([r.age for r in chips.kept], np.float32), chips.kept
    images, ages, kept = [], [], []
    for done, record in enumerate(records):
        if progress is not None and done % 256 == 0:
            progress(done, len(records))
        image = read_image(record.path)
        if image is None:
            if report is not None:
                report.skipped["unreadable image"] += 1
            log.warning("skipping unreadable image %s", record.path)
            continue
        images.append(preprocess_face(image, size).astype(np.uint8))
        ages.append(record.age)
        kept.append(record)
    if progress is not None:
        progress(len(records), len(records))
    if not images:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0,), np.float32), kept
    return np.stack(images), np.asarray(ages, np.float32), kept
