import math
from collections import Counter
from pathlib import Path

import pytest

from training.data import FaceRecord, scan_folder
from training.metrics import metrics_by_age_band, regression_metrics
from training.split import age_band, assign_splits, read_manifest, split_records, write_manifest
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
    parts, assignment = split_records(records, None)
    write_manifest(assignment, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv") == assignment
    # A bigger folder keeps the listed files where they were.
    bigger = records + [FaceRecord(Path(f"33_1_1_2018{i:08d}.jpg"), 33, 1, 1) for i in range(50)]
    _, merged = split_records(bigger, assignment)
    assert all(merged[name] == split for name, split in assignment.items())
    assert len(merged) == 350
    assert sum(len(p) for p in parts.values()) == 300


def test_committed_manifest_covers_the_shared_folder(utk_dir):
    manifest = read_manifest(MANIFEST)
    names = {r.name for r in scan_folder(utk_dir).records}
    assert set(manifest) == names
    counts = Counter(manifest.values())
    assert counts["test"] >= 850 and counts["val"] >= 850


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
