"""Photos labelled by age group (FairFace's layout): parsing, scoring, the report and the default rule."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agecam.training.evaluation.photos import (LabelError, distance_to_group, group_report, labelled_photos, parse_group)
from conftest import REPO, run_agecam

FAIRFACE_DEV = REPO.parent / "shared" / "data" / "fairface-dev"


def test_groups_parse_and_bad_ones_are_refused():
    assert parse_group("20-29") == (20, 29)
    assert parse_group(" 70+ ") == (70, None)
    for bad in ("twenty", "30-20", "5", "-3-4"):
        with pytest.raises(LabelError):
            parse_group(bad)


def test_distance_to_the_group_is_zero_inside_and_signed_outside():
    groups = [(20, 29), (20, 29), (20, 29), (70, None), (0, 2)]
    predicted = [25.0, 29.9, 17.0, 95.0, 4.5]
    # 29.9 still reads as 29 years; 17 is 3 below; 70+ has no upper bound; 4.5 is 1.5 above 0-2 (3.0).
    assert distance_to_group(predicted, groups).tolist() == pytest.approx([0.0, 0.0, -3.0, 0.0, 1.5])


def test_group_report_counts_per_group_gender_children_and_elders():
    groups = [(0, 2), (3, 9), (20, 29), (60, 69), (70, None), (70, None)]
    report = group_report([1.0, 12.0, 25.0, 50.0, 64.0, 80.0], groups,
                          ["female", "male", "female", "male", "female", None])["groups"]
    assert report["n"] == 6 and report["inside"] == pytest.approx(3 / 6)
    assert report["distance"] == pytest.approx((0 + 2 + 0 + 10 + 6 + 0) / 6)
    assert report["signed_distance"] == pytest.approx((2 - 10 - 6) / 6)
    assert list(report["by_group"]) == ["0-2", "3-9", "20-29", "60-69", "70+"]
    assert report["by_group"]["70+"]["n"] == 2
    assert report["children_0_9"]["distance"] == pytest.approx(1.0)
    assert report["over_60"]["signed_distance"] == pytest.approx(-16 / 3)
    assert set(report["by_gender"]) == {"female", "male", "unknown"}


def write_group_folder(folder: Path, rows: list[dict], image: np.ndarray) -> Path:
    (folder / "photos").mkdir(parents=True)
    for row in rows:
        cv2.imwrite(str(folder / "photos" / row["filename"]), image)
    (folder / "ground_truth.json").write_text(json.dumps(rows))
    return folder


def test_a_folder_with_ground_truth_is_read_as_groups(tmp_path, astronaut_bgr):
    rows = [{"filename": "a.jpg", "age": "30-39", "gender": "Female"},
            {"filename": "b.jpg", "age": "70+", "gender": "Male"},
            {"filename": "missing.jpg", "age": "3-9", "gender": "Male"}]
    folder = write_group_folder(tmp_path / "groups", rows[:2], astronaut_bgr)
    (folder / "ground_truth.json").write_text(json.dumps(rows))
    photos = labelled_photos(folder)
    assert [(p.path.name, p.group, p.gender) for p in photos] == [("a.jpg", (30, 39), "female"),
                                                                  ("b.jpg", (70, None), "male")]
    (folder / "ground_truth.json").write_text("{not json")
    with pytest.raises(LabelError, match="cannot read labels"):
        labelled_photos(folder)


@pytest.mark.slow
def test_evaluate_photos_scores_groups_through_the_cli(tmp_path, astronaut_bgr):
    rows = [{"filename": "a.jpg", "age": "20-29", "gender": "Female"},
            {"filename": "b.jpg", "age": "0-2", "gender": "Female"}]
    folder = write_group_folder(tmp_path / "groups", rows, astronaut_bgr)
    result = run_agecam("evaluate-photos", folder, "--model", "cnn", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    groups = summary["groups"]
    assert summary["found"] == 2 and summary["labels"] == "age groups"
    # The same face labelled twice: inside at most one of 20-29 and 0-2, and 0-2 is far from an adult.
    assert groups["by_group"]["0-2"]["inside"] == 0.0 and groups["by_group"]["0-2"]["distance"] > 10
    assert "mae" not in summary
    text = run_agecam("evaluate-photos", folder, "--model", "cnn")
    assert text.returncode == 0 and "inside the age group" in text.stdout


def test_the_report_and_the_default_rule_read_group_records():
    from agecam.core.default_model import selection_scores
    from agecam.training.evaluation.report import age_group_table, cross_dataset_table

    groups = {"n": 270, "inside": 0.4, "distance": 4.0, "signed_distance": -1.0, "median_predicted": 30.0,
              "by_group": {"0-2": {"n": 30, "inside": 0.5, "distance": 1.0, "signed_distance": 1.0,
                                   "median_predicted": 2.5}}}
    cards = {"a": {"metrics": {"test": {"mae": 6.0}}, "cross_dataset": {"fairface-dev": {"groups": groups}}},
             "b": {"metrics": {"test": {"mae": 5.0}},
                   "cross_dataset": {"fairface-dev": {"groups": {**groups, "distance": 6.0}}}}}
    assert selection_scores(cards, ["a", "b"]) == {"a": 5.0, "b": 5.5}
    table = age_group_table(cards)
    assert "`a` on fairface-dev" in table and "40.0%" in table and "50%, 2" in table
    assert cross_dataset_table(cards).startswith("_No cross-dataset record")  # no exact ages here
    del cards["b"]["cross_dataset"]
    cards["a"]["cross_dataset"]["fgnet-dev"] = {"mae": 7.0}
    cards["b"]["cross_dataset"] = {"fgnet-dev": {"mae": 6.0}}
    assert selection_scores(cards, ["a", "b"]) == {"a": 6.5, "b": 5.5}  # fgnet-dev when not all have groups


@pytest.mark.skipif(not FAIRFACE_DEV.is_dir(), reason=f"fairface-dev not found at {FAIRFACE_DEV}")
def test_fairface_dev_labels_parse():
    photos = labelled_photos(FAIRFACE_DEV)
    assert len(photos) == 270
    groups = [p.group for p in photos]
    assert all(groups.count(g) == 30 for g in set(groups)) and len(set(groups)) == 9
