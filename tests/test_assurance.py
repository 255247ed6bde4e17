"""Age-assurance figures (issue #46): rates from known confusions, empty cells reported as such, seeded
bootstrap intervals that narrow with more faces, and `agecam evaluate --assurance` end to end."""

import json
import shutil

import cv2
import numpy as np
import pytest

from agecam.core.age_range import AgeRangeCalibration
from agecam.training.evaluation.assurance import (MIN_CELL, assurance_report, bootstrap_interval, cells, error_by_cell,
                                       gate_target, group_assurance, rate)
from conftest import run_agecam


def test_a_known_confusion_gives_known_rates():
    # Six under-18s (two estimated 25+), four 18-24s (one 25+), two 30s; men are codes 0, women 1.
    true = np.array([10, 12, 15, 16, 17, 17, 18, 20, 22, 24, 30, 30], float)
    pred = np.array([26, 9, 14, 30, 16, 15, 26, 19, 21, 23, 31, 29], float)
    sexes = np.array([0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1])
    report = assurance_report(true, pred, sexes)
    c25 = report["challenge_25"]["under_18_estimated_25_plus"]
    assert (c25["all"]["n"], c25["all"]["value"]) == (6, 2 / 6)
    assert (c25["male"]["value"], c25["female"]["value"]) == (1 / 3, 1 / 3)
    assert report["challenge_25"]["18_24_estimated_25_plus"]["all"]["value"] == 1 / 4
    # 13-16s: 15 -> 14 and 16 -> 30; one of two inside 13-16. 8-12s: none inside. 17-22s: 17 -> 16, 17 -> 15.
    safety = report["child_safety"]
    assert safety["13_16_estimated_13_16"]["all"]["value"] == 0.5
    assert safety["8_12_estimated_13_16"]["all"]["value"] == 0.0
    assert safety["17_22_estimated_13_16"]["all"]["value"] == 2 / 5
    assert report["error"]["cells"]["all"]["mae"] == pytest.approx(np.abs(pred - true).mean())


def test_empty_cells_are_reported_as_empty_not_as_zero():
    assert rate([]) == {"n": 0, "value": None, "ci": None}
    report = assurance_report([30, 40], [31, 38], sexes=[0, 0], races=[0, 0])
    assert report["error"]["cells"]["female"] == {"n": 0, "mae": None, "mae_ci": None, "bias": None, "bias_ci": None}
    assert report["challenge_25"]["under_18_estimated_25_plus"]["all"]["value"] is None
    assert set(report["error"]["cells"]) >= {"male/Black", "female/Others"}  # every cell listed, empty or not
    assert report["error"]["spread"] is None  # nothing to rank


def test_the_spread_ranks_only_cells_with_enough_faces():
    rng = np.random.default_rng(1)
    sexes, races = np.repeat([0, 0, 1], [MIN_CELL, MIN_CELL, MIN_CELL - 1]), np.repeat([0, 1, 2], [MIN_CELL] * 2 + [MIN_CELL - 1])
    true = rng.uniform(20, 60, sexes.size)
    pred = true + np.where(races == 1, 6.0, 2.0)  # male/Black reads 6 years off, male/White 2
    spread = error_by_cell(true, pred, cells(sexes, races))["spread"]
    assert (spread["best"], spread["worst"], spread["cells_ranked"]) == ("male/White", "male/Black", 2)
    assert spread["mae_spread"] == pytest.approx(4.0)


def test_bootstrap_intervals_are_seeded_and_narrow_with_more_faces():
    rng = np.random.default_rng(0)
    few, many = rng.random(40) < 0.3, rng.random(4000) < 0.3
    assert bootstrap_interval(few) == bootstrap_interval(few)
    errors = rng.normal(5, 3, 40)  # a continuous statistic: another seed resamples otherwise
    assert bootstrap_interval(errors, seed=1) != bootstrap_interval(errors, seed=2)
    low_few, high_few = bootstrap_interval(few)
    low_many, high_many = bootstrap_interval(many)
    assert high_many - low_many < (high_few - low_few) / 3
    assert low_many < many.mean() < high_many
    assert bootstrap_interval([]) is None


def test_the_gate_rates_and_their_target_per_cell():
    bounds = AgeRangeCalibration(coverage=0.96, intercept=1.0, slope=0.0, q_low=-2.0, q_high=2.0)  # +-2 years
    # 40 male/White under-18s, one estimated 30 (called over at 18); 40 female/Asian under-18s, none over.
    true = np.full(80, 15.0)
    pred = np.full(80, 10.0)
    pred[0] = 30.0
    sexes, races = np.repeat([0, 1], 40), np.repeat([0, 2], 40)
    report = assurance_report(true, pred, sexes, races, gate_bounds=bounds)
    over = report["gates"]["18"]["under_age_called_over"]
    assert over["male/White"]["value"] == 1 / 40 and over["female/Asian"]["value"] == 0.0
    assert over["male/Black"]["n"] == 0 and over["male/Black"]["value"] is None
    assert report["gates"]["18"]["of_age_called_over"]["all"]["n"] == 0
    target = gate_target(report)
    assert target["cells_checked"] == ["female/Asian", "male/White"]
    assert target["cells_missed"] == {"male/White": 1 / 40} and not target["met"]


def test_age_group_labels_give_what_the_groups_allow():
    groups = [(10, 19)] * 4 + [(3, 9)] * 2 + [(20, 29)] * 2
    pred = [26, 12, 30, 18, 14, 5, 15, 25]
    genders = ["male", "female"] * 4
    report = group_assurance(pred, groups, genders)
    assert report["10_19_estimated_25_plus"]["all"]["value"] == 0.5
    assert report["0_9_estimated_13_16"]["all"]["value"] == 0.5
    assert report["20_29_estimated_13_16"]["all"]["value"] == 0.5
    assert report["10_19_estimated_25_plus"]["male"]["n"] == 2


@pytest.mark.slow
def test_evaluate_reports_and_records_the_assurance_figures(tmp_path, tiny_model_path, astronaut_bgr):
    """A handful of labelled faces (the astronaut's, named as UTKFace names its faces) through the CLI."""
    faces = tmp_path / "faces"
    faces.mkdir()
    face = cv2.resize(astronaut_bgr[40:260, 150:330], (200, 200))
    for i, (age, sex, race) in enumerate([(8, 0, 0), (15, 1, 2), (16, 0, 1), (20, 1, 0), (30, 0, 3), (45, 1, 4)]):
        cv2.imwrite(str(faces / f"{age}_{sex}_{race}_2017011{i}000000000.jpg.chip.jpg"), face)
    model = tmp_path / "tiny.keras"
    shutil.copy(tiny_model_path, model)
    gate = {"calibration": {"coverage": 0.96, "intercept": 2.0, "slope": 0.1, "q_low": -2.0, "q_high": 2.0}}
    (tmp_path / "tiny.json").write_text(json.dumps({"name": "tiny", "age_range": {"gate": gate}}))
    result = run_agecam("evaluate", "--data", faces, "--model", model, "--assurance", "--record", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["assurance"]
    assert report["faces"] == 6 and report["error"]["cells"]["female/Asian"]["n"] == 1
    assert report["challenge_25"]["under_18_estimated_25_plus"]["all"]["n"] == 3
    assert set(report["gates"]) == {"18", "21", "25"}
    recorded = json.loads((tmp_path / "tiny.json").read_text())["assurance"]["faces-all"]
    assert recorded["faces"] == 6 and "target_gate_18" in recorded
    refused = run_agecam("evaluate", "--data", faces, "--model", model, "--record")
    assert refused.returncode == 2 and "--record needs --assurance" in refused.stderr
