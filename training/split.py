"""A deterministic train/validation/test split, stratified by age band, kept as a manifest.

The manifest (CSV ``file,split``) is committed, so every model is trained and evaluated on
the same faces. Files that a manifest does not list (a user's bigger UTKFace folder) are
assigned by the same stratified rule among themselves, so the listed ones keep their split.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from core.atomic import atomic_path
from training.data import FaceRecord

SPLITS = ("train", "val", "test")
# One manifest for UTKFace: the part-1 folder's files are listed; a bigger UTKFace folder adds
# its other files (split by the same rule) while the listed ones keep their split.
DEFAULT_MANIFEST = Path(__file__).resolve().parent / "splits" / "utkface.csv"
AGE_BANDS = ((0, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of each age band that go to validation and test, and the shuffle seed."""

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 1337


def age_band(age: float) -> str:
    """Label of the age band holding ``age``, e.g. ``"20-29"`` or ``"70+"``."""
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}+" if high >= 200 else f"{low}-{high}"
    return f"{AGE_BANDS[-1][0]}+"


def assign_splits(records: list[FaceRecord], config: SplitConfig = SplitConfig()) -> dict[str, str]:
    """Map each record's file name to a split, stratified by age band and seeded.

    The result depends only on the set of file names, not on their order.
    """
    by_band: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_band[age_band(record.age)].append(record.name)
    rng = random.Random(config.seed)
    assignment: dict[str, str] = {}
    for band in sorted(by_band):
        names = sorted(by_band[band])
        rng.shuffle(names)
        n_test = round(len(names) * config.test_fraction)
        n_val = round(len(names) * config.val_fraction)
        for i, name in enumerate(names):
            assignment[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return assignment


def read_manifest(path: str | Path) -> dict[str, str]:
    """Read a ``file,split`` CSV manifest."""
    with open(path, newline="") as handle:
        return {row["file"]: row["split"] for row in csv.DictReader(handle)}


def write_manifest(assignment: dict[str, str], path: str | Path) -> None:
    """Write a manifest sorted by file name (stable diffs), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "split"])
        for name in sorted(assignment):
            writer.writerow([name, assignment[name]])


def split_records(
    records: list[FaceRecord], manifest: dict[str, str] | None, config: SplitConfig = SplitConfig()
) -> tuple[dict[str, list[FaceRecord]], dict[str, str]]:
    """Split records by ``manifest``; unlisted files are assigned by :func:`assign_splits`.

    Returns the records per split and the complete assignment (to save as the new manifest).
    """
    manifest = dict(manifest or {})
    unlisted = [r for r in records if r.name not in manifest]
    manifest.update(assign_splits(unlisted, config))
    present = {r.name for r in records}
    manifest = {name: split for name, split in manifest.items() if name in present}
    parts: dict[str, list[FaceRecord]] = {split: [] for split in SPLITS}
    for record in records:
        parts[manifest[record.name]].append(record)
    return parts, manifest
