"""Extra training faces from a folder of age folders (``<root>/<split>/<age>/<image>``).

The source this was written for is the public 20-50 celebrity set at
``github:taassburak/AiDataset`` (folder ``20-50``: ``train/`` and ``test/``, one folder per
exact age 20-50, 128x128 JPEGs; it appears to derive from IMDB-WIKI, so ages come from birth
date and photo year and are noisy). Its photos are framed loosely and not aligned, unlike
UTKFace's crops, so each is re-cut the way the live pipeline cuts a face: MediaPipe's
full-range detector on the photo padded by 30% (a face filling the picture is found then),
the face nearest the centre, ``core.crop.crop_faces`` with the calibrated geometry. The faces
then look to a model as camera faces do.

Cleaning, before any split: byte-identical files filed under different ages have no
trustworthy label and are all dropped; byte-identical files under one age keep one copy;
:data:`EXCLUDED` files are never read (a copy of a face the project keeps aside).

Example::

    scan = scan_age_folders("data/aidataset/20-50", splits=("train",))
    faces = load_extra_faces(scan.records, size=96, cache_dir=Path("~/.cache/agecam").expanduser())
    faces.images.shape   # (N, 96, 96, 3) RGB uint8
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agecam.core.images import IMAGE_SUFFIXES
from agecam.core.preprocess import preprocess_face
from .data import DataError, FaceRecord, read_image

log = logging.getLogger(__name__)

# Relative paths (from the folder holding the split folders) never used: 20-50/train/48/1802.jpg
# is a copy of a face this project keeps aside for independent checks (issue #21).
EXCLUDED = ("train/48/1802.jpg",)
PAD_FRACTION = 0.3  # of the photo's side, on every edge, before detection


@dataclass
class ExtraScan:
    """Usable records of an age-folder source and what was dropped, by reason."""

    root: Path
    records: list[FaceRecord] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        parts = [f"{len(self.records)} labelled images"]
        parts += [f"{n} dropped ({reason})" for reason, n in sorted(self.dropped.items()) if n]
        return ", ".join(parts)


def _split_root(root: Path) -> Path:
    """``root`` itself when it holds split folders of age folders, else its only such child (``20-50``)."""
    if any(_age_folders(child) for child in root.iterdir() if child.is_dir()):
        return root
    for child in sorted(root.iterdir()):
        if child.is_dir() and any(_age_folders(grand) for grand in child.iterdir() if grand.is_dir()):
            return child
    raise DataError(f"{root} holds no <split>/<age>/ image folders")


def _age_folders(folder: Path) -> list[Path]:
    return [child for child in folder.iterdir() if child.is_dir() and child.name.isdigit()]


def scan_age_folders(root: str | Path, splits: tuple[str, ...] = ("train",)) -> ExtraScan:
    """The cleaned records of ``root``'s ``splits`` (see the module docstring), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"extra data folder not found: {root}")
    base = _split_root(root)
    scan = ExtraScan(base)
    by_digest: dict[str, list[FaceRecord]] = defaultdict(list)
    for split in splits:
        split_dir = base / split
        if not split_dir.is_dir():
            raise DataError(f"{base} has no {split}/ folder")
        for age_dir in sorted(_age_folders(split_dir), key=lambda p: int(p.name)):
            for path in sorted(age_dir.iterdir()):
                if not path.is_file() or not path.name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                if path.relative_to(base).as_posix() in EXCLUDED:
                    scan.dropped["kept aside (EXCLUDED)"] += 1
                    continue
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
                by_digest[digest].append(FaceRecord(path, int(age_dir.name), -1, -1))
    for copies in by_digest.values():
        if len({record.age for record in copies}) > 1:
            scan.dropped["identical file under different ages"] += len(copies)
            continue
        scan.dropped["identical copy"] += len(copies) - 1
        scan.records.append(copies[0])
    scan.records.sort(key=lambda record: str(record.path))
    if not scan.records:
        raise DataError(f"no usable images in {root} ({scan.summary()})")
    return scan


@dataclass
class ExtraFaces:
    """Re-cut faces of an extra source: RGB uint8 images, ages and the source file of each."""

    images: np.ndarray
    ages: np.ndarray
    names: list[str]
    not_found: int = 0  # photos where no face was detected

    def without(self, drop: np.ndarray) -> "ExtraFaces":
        keep = ~np.asarray(drop, bool)
        return ExtraFaces(self.images[keep], self.ages[keep], [n for n, k in zip(self.names, keep) if k],
                          self.not_found)


def source_name(record: FaceRecord, base: Path) -> str:
    """How a face of an extra source is named in cards and train-file lists: ``aidataset:train/48/12.jpg``."""
    return f"{base.name}:{record.path.relative_to(base).as_posix()}"


def pad_photo(image_bgr: np.ndarray) -> tuple[np.ndarray, int]:
    """The photo with :data:`PAD_FRACTION` of its longer side added on every edge (edge pixels
    repeated), so the detector sees a face that fills the picture in context; and that border."""
    pad = int(round(PAD_FRACTION * max(image_bgr.shape[:2])))
    return cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE), pad


def centre_face(image_bgr: np.ndarray, detector):
    """The padded photo (:func:`pad_photo`), its border, and the detected face nearest the photo's
    centre as one-row ``Detections`` (None when no face is found)."""
    padded, pad = pad_photo(image_bgr)
    faces = detector.detect(padded)
    if not len(faces):
        return padded, pad, None
    height, width = image_bgr.shape[:2]
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    nearest = int(np.argmin(np.linalg.norm(centres - np.array([pad + width / 2, pad + height / 2]), axis=1)))
    return padded, pad, faces[[nearest]]


def cut_face(image_bgr: np.ndarray, detector, size: int, alignment=None) -> np.ndarray | None:
    """The face nearest the centre of a photo, cut as the live pipeline cuts it for a model (an aligned
    chip with ``alignment``, a :class:`core.align.ChipAlignment`; else a box crop), as RGB uint8, or None."""
    from agecam.core.crop import CropConfig, crop_faces

    padded, _, face = centre_face(image_bgr, detector)
    if face is None:
        return None
    if alignment is not None:
        return preprocess_face(alignment.cut(padded, face, size)[0], size).astype(np.uint8)
    return preprocess_face(crop_faces(padded, face, CropConfig())[0], size).astype(np.uint8)


def load_extra_faces(records: list[FaceRecord], size: int, cache_dir: Path | None = None,
                     progress=None, alignment=None) -> ExtraFaces:
    """Detect and cut every record's face at ``size`` px (about 4 ms a photo on this CPU).

    With ``cache_dir``, the result is kept there under a name made of the file list and ``size``,
    so a resumed or repeated run reads it back instead (the cache holds derived images of the
    source: keep it outside the repository).
    """
    from agecam.core.config import DetectorConfig
    from agecam.core.detector import FaceDetector

    base = _common_base(records)
    names = [source_name(record, base) for record in records]
    framing = "" if alignment is None else "\n" + json.dumps(alignment.to_dict(), sort_keys=True)
    key = hashlib.sha1(("\n".join(names) + f"\n{size}\nv1" + framing).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"extra-faces-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            log.info("extra faces read from %s", cache)
            return ExtraFaces(stored["images"], stored["ages"], list(stored["names"]), int(stored["not_found"]))
    images, ages, kept, missing = [], [], [], 0
    with FaceDetector(DetectorConfig(range="full", tile_stills=False)) as detector:
        for done, (record, name) in enumerate(zip(records, names)):
            if progress is not None and done % 500 == 0:
                progress(done, len(records))
            image = read_image(record.path)
            face = None if image is None else cut_face(image, detector, size, alignment)
            if face is None:
                missing += 1
                continue
            images.append(face)
            ages.append(record.age)
            kept.append(name)
    faces = ExtraFaces(np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
                       np.asarray(ages, np.float32), kept, missing)
    log.info("extra faces: %d cut, %d photos without a detected face", len(kept), missing)
    if cache is not None:
        from agecam.core.atomic import atomic_path

        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, images=faces.images, ages=faces.ages, names=np.array(kept), not_found=missing)
    return faces


def _common_base(records: list[FaceRecord]) -> Path:
    """The folder holding the split folders (two levels above each image)."""
    bases = {record.path.parent.parent.parent for record in records}
    if len(bases) != 1:
        raise DataError(f"extra faces come from several folders: {sorted(map(str, bases))[:3]}")
    return bases.pop()


def near_duplicates_of(faces: ExtraFaces, reference_paths: list[Path]) -> np.ndarray:
    """Which extra faces are near-duplicates (``training.duplicates`` rule) of a reference image,
    e.g. a UTKFace validation or test face: such a face must not be trained on."""
    from .duplicates import DuplicateConfig, Fingerprints, fingerprint, fingerprint_images, hamming_distances

    config = DuplicateConfig()
    ref = fingerprint_images(reference_paths)
    n = len(faces.images)
    mine = Fingerprints(np.zeros((n, 8), np.uint8), np.zeros((n, 32, 32), np.uint8), np.ones(n, bool))
    for i, image in enumerate(faces.images):
        mine.hashes[i], mine.thumbs[i] = fingerprint(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    both = np.concatenate([mine.hashes, ref.hashes[ref.valid]])
    ref_thumbs = ref.thumbs[ref.valid].astype(np.float32)
    drop = np.zeros(n, bool)
    for start in range(0, n, 256):
        rows = slice(start, min(n, start + 256))
        distances = hamming_distances(both, rows)[:, n:]
        for r, c in zip(*np.nonzero(distances <= config.max_distance)):
            i = start + r
            if np.abs(mine.thumbs[i].astype(np.float32) - ref_thumbs[c]).mean() <= config.max_pixel_difference:
                drop[i] = True
    return drop


def age_balance_weights(ages: np.ndarray, reference_ages: np.ndarray, band: int = 5, power: float = 1.0,
                        max_weight: float = 4.0) -> np.ndarray:
    """Per-face loss weights (mean 1) under which ``ages`` have ``reference_ages``' distribution over
    ``band``-year bands. Used so an extra source that covers only 20-50 adds faces, not age skew:
    children and the over-60s keep the share of the loss they have in UTKFace.

    ``power`` < 1 flattens the target: each band's share goes as its reference share to that power
    (0: every band alike). A regression net pulls rare ages towards the common ones; a flatter target
    weighs the rare bands (teenagers, the old) more. No face weighs more than ``max_weight`` times the
    median face (a band of a handful of 95-year-olds must not dominate a batch)."""
    bins = np.minimum(np.asarray(ages) // band, 200 // band).astype(int)
    ref_bins = np.minimum(np.asarray(reference_ages) // band, 200 // band).astype(int)
    size = max(bins.max(), ref_bins.max()) + 1
    have = np.bincount(bins, minlength=size) / len(bins)
    want = (np.bincount(ref_bins, minlength=size) / len(ref_bins)) ** power
    want = np.where(np.bincount(ref_bins, minlength=size) > 0, want, 0.0)
    want = want / want.sum()
    ratio = np.where(have > 0, want / np.maximum(have, 1e-12), 0.0)
    weights = ratio[bins]
    if power != 1.0:
        weights = np.minimum(weights, max_weight * np.median(weights))
    return (weights / weights.mean()).astype(np.float32)
