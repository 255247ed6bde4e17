"""A deterministic, duplicate-aware train/validation/test split, stratified by age band, kept as a manifest.

The manifest (CSV ``file,split,group``) is committed, so every model is trained and evaluated
on the same faces. Files that a manifest does not list (a user's bigger UTKFace folder) are
assigned by the same stratified rule among themselves, so the listed ones keep their split.

Near-identical images (``training.duplicates``) form a group, named in the ``group`` column by
its first file. A new group goes to one split whole; a new copy of a listed file joins the
listed copy's split. Where listed copies already straddle splits, the test copies whose group
also sits in train or validation are *dropped* from the test split (they stay listed as
"test", so the manifest never changes a listed file; :func:`effective_splits` leaves them out).
"""

from __future__ import annotations

import csv
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from agecam.core.atomic import atomic_path
from .data import FaceRecord

log = logging.getLogger(__name__)

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
    return _assign_units([(r.name, r.age) for r in records], config)


def _assign_units(units: list[tuple[str, float]], config: SplitConfig) -> dict[str, str]:
    """Split ``(name, age)`` units (a file, or a group named by its first file) by age band."""
    by_band: dict[str, list[str]] = defaultdict(list)
    for name, age in units:
        by_band[age_band(age)].append(name)
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
    """Read a manifest's ``file -> split`` (as listed; see :func:`effective_splits`)."""
    with open(path, newline="") as handle:
        return {row["file"]: row["split"] for row in csv.DictReader(handle)}


def read_manifest_groups(path: str | Path) -> dict[str, str]:
    """Read a manifest's ``file -> group`` (the group's first file; itself when it has no copy)."""
    with open(path, newline="") as handle:
        return {row["file"]: row.get("group") or row["file"] for row in csv.DictReader(handle)}


def write_manifest(assignment: dict[str, str], path: str | Path, groups: dict[str, str] | None = None) -> None:
    """Write a manifest sorted by file name (stable diffs), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = groups or {}
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "split", "group"])
        for name in sorted(assignment):
            writer.writerow([name, assignment[name], groups.get(name, name)])


def dropped_test_files(assignment: dict[str, str], groups: dict[str, str]) -> set[str]:
    """Test files with a near-duplicate in train or validation: left out of the test split."""
    outside_test = {groups.get(name, name) for name, split in assignment.items() if split != "test"}
    return {name for name, split in assignment.items() if split == "test" and groups.get(name, name) in outside_test}


def effective_splits(path: str | Path) -> dict[str, str]:
    """A manifest's ``file -> split`` with the dropped test files (:func:`dropped_test_files`) left out."""
    assignment, groups = read_manifest(path), read_manifest_groups(path)
    dropped = dropped_test_files(assignment, groups)
    return {name: split for name, split in assignment.items() if name not in dropped}


@dataclass
class SplitResult:
    """Records per split, the manifest to save (every file, with its group) and the dropped test files."""

    parts: dict[str, list[FaceRecord]]
    assignment: dict[str, str]
    groups: dict[str, str] = field(default_factory=dict)
    dropped_from_test: list[str] = field(default_factory=list)


# Where copies of one photo are listed in several splits, new copies join the first of these.
_JOIN_ORDER = ("train", "val", "test")


def split_records(records: list[FaceRecord], manifest: dict[str, str] | None,
                  config: SplitConfig = SplitConfig(), group_ids=None) -> SplitResult:
    """Split records by ``manifest``; unlisted files are assigned group by group (see module doc).

    ``group_ids``: one group id per record (from :func:`training.duplicates.group_near_duplicates`);
    None treats every file as its own group.
    """
    manifest = dict(manifest or {})
    group_ids = list(range(len(records))) if group_ids is None else list(group_ids)
    members: dict[int, list[FaceRecord]] = defaultdict(list)
    for record, gid in zip(records, group_ids):
        members[gid].append(record)
    group_name = {gid: min(r.name for r in recs) for gid, recs in members.items()}
    groups = {r.name: group_name[gid] for r, gid in zip(records, group_ids)}

    new_units, joined = [], {}
    for gid, recs in members.items():
        listed = {manifest[r.name] for r in recs if r.name in manifest}
        if listed:
            target = next(split for split in _JOIN_ORDER if split in listed)
            joined.update({r.name: target for r in recs if r.name not in manifest})
        else:
            ages = sorted(r.age for r in recs)
            new_units.append((group_name[gid], ages[len(ages) // 2]))
    by_group = _assign_units(new_units, config)
    for record, gid in zip(records, group_ids):
        if record.name not in manifest:
            manifest[record.name] = joined.get(record.name) or by_group[group_name[gid]]

    present = {r.name for r in records}
    assignment = {name: split for name, split in manifest.items() if name in present}
    dropped = dropped_test_files(assignment, groups)
    if dropped:
        log.info("split: %d test faces dropped (a near-duplicate sits in train or validation)", len(dropped))
    parts: dict[str, list[FaceRecord]] = {split: [] for split in SPLITS}
    for record in records:
        if record.name not in dropped:
            parts[assignment[record.name]].append(record)
    return SplitResult(parts, assignment, groups, sorted(dropped))


def held_out_faces(data: str | Path, count: int, manifest: str | Path = DEFAULT_MANIFEST, min_age: int = 18):
    """``count`` test-split faces of ``data`` (adults, spread over the folder's names) as BGR images;
    fewer when the folder or the manifest has fewer. For generated scenes: benchmarks, field tests."""
    import cv2

    from .data import scan_folder

    if not Path(data).is_dir():
        return []
    splits = effective_splits(manifest) if Path(manifest).is_file() else {}
    records = [r for r in scan_folder(data).records if splits.get(r.name, "test") == "test" and r.age >= min_age]
    picked = records[:: max(1, len(records) // count)][:count] if count else []
    faces = [cv2.imread(str(r.path)) for r in picked]
    return [f for f in faces if f is not None]
