import math
from collections import Counter
from pathlib import Path

import pytest

from agecam.training.data import FaceRecord, scan_folder
from agecam.training.metrics import metrics_by_age_band, regression_metrics
from agecam.training.split import (age_band, assign_splits, dropped_test_files, effective_splits, read_manifest,
                            read_manifest_groups, split_records, write_manifest)
from conftest import MANIFEST


def _records(n):
    return [FaceRecord(Path(f"{i % 90 + 1}_0_0_2017{i:08d}.jpg"), i % 90 + 1, 0, 0) for i in range(n)]


def test_split_is_deterministic_and_order_independent():
    records = _records(500)
    assert assign_splits(records) == assign_splits(list(reversed(records)))


def test_split_is_disjoint_complete_and_stratified():
    records = _records(1000)
    assignment = assign_splits(records)
    assert set(assignment) == {r.name for r in records}
    counts = Counter(assignment.values())
    assert counts["test"] == pytest.approx(100, abs=8) and counts["val"] == pytest.approx(100, abs=8)
    for band in {age_band(r.age) for r in records}:
        in_band = [r for r in records if age_band(r.age) == band]
        share = sum(assignment[r.name] == "test" for r in in_band) / len(in_band)
        assert share == pytest.approx(0.1, abs=0.02), band


def test_manifest_round_trip_and_unlisted_files(tmp_path):
    records = _records(300)
    result = split_records(records, None)
    write_manifest(result.assignment, tmp_path / "m.csv", result.groups)
    assert read_manifest(tmp_path / "m.csv") == result.assignment
    # A bigger folder keeps the listed files where they were.
    bigger = records + [FaceRecord(Path(f"33_1_1_2018{i:08d}.jpg"), 33, 1, 1) for i in range(50)]
    merged = split_records(bigger, result.assignment).assignment
    assert all(merged[name] == split for name, split in result.assignment.items())
    assert len(merged) == 350
    assert sum(len(p) for p in result.parts.values()) == 300


def test_new_groups_stay_in_one_split_and_join_listed_copies():
    records = _records(400)
    listed = split_records(records[:200], None).assignment
    # New files 200..399 form groups of four; group 0 also holds a listed file (record 0).
    group_ids = list(range(200)) + [200 + (i - 200) // 4 for i in range(200, 400)]
    group_ids[200] = group_ids[201] = group_ids[202] = group_ids[203] = 0
    result = split_records(records, listed, group_ids=group_ids)
    assert all(result.assignment[n] == s for n, s in listed.items())  # listed files keep their split
    by_group = {}
    for record, gid in zip(records, group_ids):
        if record.name not in listed:
            by_group.setdefault(gid, set()).add(result.assignment[record.name])
    assert all(len(splits) == 1 for splits in by_group.values())
    assert by_group[0] == {listed[records[0].name]}
    assert {s for splits in by_group.values() for s in splits} == {"train", "val", "test"}


def test_test_copies_of_listed_train_faces_are_dropped(tmp_path):
    records = _records(30)
    listed = split_records(records, None).assignment
    train_name = next(n for n, s in listed.items() if s == "train")
    test_name = next(n for n, s in listed.items() if s == "test")
    ids = {r.name: i for i, r in enumerate(records)}
    group_ids = list(range(30))
    group_ids[ids[test_name]] = group_ids[ids[train_name]]  # the two listed files turn out to be copies
    result = split_records(records, listed, group_ids=group_ids)
    assert result.assignment[test_name] == "test"  # still listed as test ...
    assert result.dropped_from_test == [test_name]  # ... but left out of the test split
    assert test_name not in {r.name for part in result.parts.values() for r in part}
    write_manifest(result.assignment, tmp_path / "m.csv", result.groups)
    assert read_manifest_groups(tmp_path / "m.csv")[test_name] == read_manifest_groups(tmp_path / "m.csv")[train_name]
    assert test_name not in effective_splits(tmp_path / "m.csv")
    assert dropped_test_files(result.assignment, result.groups) == {test_name}


def test_committed_manifest_covers_the_shared_folders(utk_dir, utk_full_dir):
    manifest = read_manifest(MANIFEST)
    assert {r.name for r in scan_folder(utk_full_dir).records} == set(manifest)
    part1 = {r.name for r in scan_folder(utk_dir).records}
    assert part1 <= set(manifest)
    counts = Counter(manifest[name] for name in part1)
    assert counts["test"] >= 850 and counts["val"] >= 850
    # No group of near-duplicates straddles splits, except listed test copies that the split drops.
    groups, splits = read_manifest_groups(MANIFEST), effective_splits(MANIFEST)
    by_group = {}
    for name, split in splits.items():
        by_group.setdefault(groups[name], set()).add(split)
    assert all("test" not in s or len(s) == 1 for s in by_group.values())


def test_regression_metrics_against_hand_computed_values():
    m = regression_metrics([20, 30, 40, 50], [22, 27, 40, 54])
    # errors 2, -3, 0, 4 -> MAE 9/4, MSE (4+9+0+16)/4
    assert m["n"] == 4
    assert m["mae"] == pytest.approx(2.25)
    assert m["mse"] == pytest.approx(7.25)
    assert m["rmse"] == pytest.approx(math.sqrt(7.25))


def test_metrics_by_band_and_edge_cases():
    by = metrics_by_age_band([5, 8, 25, 75], [6, 10, 20, 80])
    assert list(by) == ["0-9", "20-29", "70+"]
    assert by["0-9"]["mae"] == pytest.approx(1.5) and by["0-9"]["n"] == 2
    assert by["70+"]["mae"] == pytest.approx(5)
    assert math.isnan(regression_metrics([], [])["mae"])
    with pytest.raises(ValueError):
        regression_metrics([1, 2], [1])
