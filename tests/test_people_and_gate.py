"""Issue #23: the age gate's verdicts and bounds, the people table, the report page, stills in bulk."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from agecam.core.age_gate import (CHECK, NO_VERDICT, OVER, UNDER, AgeGate, fit_gate_bounds, gate_bounds_from_card,
                                  gate_outcomes, verdict_name, verdicts)
from agecam.core.age_range import AgeRangeCalibration
from agecam.core.config import AgeGateConfig
from agecam.core.detections import Detections
from agecam.core.people import PEOPLE_COLUMNS, TrackLog
from agecam.realtime.people import PeopleSink, combined_people_text, people_text, read_people_csv
from agecam.realtime.run_report import ReportSink, report_html

NARROW = AgeRangeCalibration(coverage=0.96, intercept=2.0, slope=0.0, q_low=-1.0, q_high=1.0)  # age ± 2


def test_verdict_rule_on_hand_made_ranges():
    low = np.array([18.0, 10.0, 17.9, 25.0, np.nan])
    high = np.array([30.0, 17.9, 25.0, 18.0, np.nan])
    assert verdicts(low, high, 18).tolist() == [OVER, UNDER, CHECK, OVER, NO_VERDICT]
    # Exactly at the gate: a lower bound of 18 is over 18; an upper bound of 18 is not under it.
    assert verdicts([17.0], [18.0], 18).tolist() == [CHECK]
    assert [verdict_name(c) for c in (OVER, CHECK, UNDER, NO_VERDICT)] == ["over", "check", "under", ""]


def test_gate_decides_from_the_shown_age():
    d = Detections(xyxy=np.zeros((4, 4)), age=[10.0, 19.0, 21.0, np.nan])
    AgeGate(18, NARROW).update_with_detections(d)
    # 10 -> [8, 12] under; 19 -> [17, 21] check; 21 -> [19, 23] over; unknown age: no verdict.
    assert d.verdict.tolist() == [UNDER, CHECK, OVER, NO_VERDICT]


@pytest.mark.parametrize("threshold", [0, 101, 18.5, True, "18"])
def test_a_gate_outside_1_to_100_years_is_refused(threshold):
    with pytest.raises(ValueError, match="1-100"):
        AgeGateConfig(threshold)
    with pytest.raises(ValueError, match="1-100"):
        AgeGate(threshold, NARROW)


def test_bounds_fitted_on_synthetic_residuals_hold_98_percent_each_side():
    rng = np.random.default_rng(1)

    def draw(n):
        true = rng.uniform(1, 80, n)
        return true, true + rng.normal(0.5, 1 + 0.12 * true)  # a slight bias, spread growing with age

    bounds = fit_gate_bounds(*draw(20000))
    true, predicted = draw(20000)
    low, high = bounds.interval(predicted)
    assert np.mean(true < low) == pytest.approx(0.02, abs=0.005)
    assert np.mean(true > high) == pytest.approx(0.02, abs=0.005)
    outcome = gate_outcomes(true, AgeGate(18, bounds).decide(predicted), 18)
    assert outcome["under_age_called_over"] <= 0.02  # the error the bound controls
    assert outcome["adults_called_over"] > 0.9  # adults 5+ years over the gate mostly pass
    assert 0 < outcome["sent_to_check"] < 0.2


def test_gate_bounds_are_read_from_a_card():
    card = {"age_range": {"gate": {"calibration": NARROW.to_dict()}}}
    assert gate_bounds_from_card(card) == NARROW
    assert gate_bounds_from_card({"age_range": {}}) is None and gate_bounds_from_card({}) is None


def _frame(ids, raw, scores=None, detected=None, boxes=None):
    n = len(ids)
    return Detections(xyxy=boxes if boxes is not None else np.tile([0, 0, 10, 10], (n, 1)), tracker_id=ids,
                      raw_age=raw, age=[np.nan if np.isnan(r) else r for r in raw],
                      confidence=scores if scores is not None else np.ones(n), detected=detected)


def test_people_of_a_track_log():
    log = TrackLog(frame_seconds=0.1)
    log.add(_frame([1], [30.0], [0.9]), 0.0)
    log.add(_frame([1, 2], [np.nan, 12.0], [0.7, 0.8]), 0.1)
    log.add(_frame([1, 2], [34.0, np.nan], [0.5, 0.6], detected=[False, True]), 0.2)
    log.add(_frame([1], [31.0], [0.8]), 0.5)  # after a gap of frames where no one was seen
    one, two = log.people(NARROW, AgeGate(18, NARROW))
    assert set(one) == set(PEOPLE_COLUMNS)
    assert (one["track_id"], one["first_s"], one["last_s"], one["frames"], one["estimates"]) == (1, 0.0, 0.5, 4, 3)
    assert one["seconds_seen"] == pytest.approx(0.1 + 0.1 + 0.1 + 0.3)
    assert one["age"] == 31.0 and (one["age_low"], one["age_high"]) == (29.0, 33.0)  # the last shown age (here: no fused age, the last raw one)
    assert one["quality"] == pytest.approx((0.9 + 0.7 + 0.8) / 3, abs=1e-3)  # the carried-over frame not counted
    assert one["age_gate"] == "over" and two["age_gate"] == "under"
    assert (two["first_s"], two["last_s"], two["estimates"], two["age"]) == (0.1, 0.2, 1, 12.0)
    # Without calibration or gate: the age alone.
    bare = log.people()
    assert bare[0]["age_low"] is None and bare[0]["age_gate"] is None


def test_a_track_never_estimated_has_no_age():
    log = TrackLog()
    log.add(_frame([5], [np.nan]), 0.0)
    (row,) = log.people(NARROW, AgeGate(18, NARROW))
    assert row["age"] is None and row["age_low"] is None and row["age_gate"] is None and row["estimates"] == 0


def test_people_table_csv_and_json_round_trip(tmp_path):
    log = TrackLog()
    log.add(_frame([1, 2], [30.0, 12.0]), 0.0)
    rows = log.people(NARROW, AgeGate(18, NARROW))
    with PeopleSink(tmp_path / "people.csv", lambda: rows):
        assert not (tmp_path / "people.csv").exists()  # appears only when complete
    assert read_people_csv(tmp_path / "people.csv") == rows
    with PeopleSink(tmp_path / "people.json", lambda: rows):
        pass
    assert json.loads((tmp_path / "people.json").read_text()) == rows
    combined = combined_people_text([("a.mp4", rows), ("b.mp4", rows[:1])], as_json=False)
    table = list(csv.DictReader(combined.splitlines()))
    assert [(r["video"], r["track_id"]) for r in table] == [("a.mp4", "1"), ("a.mp4", "2"), ("b.mp4", "1")]
    assert people_text([], False).strip() == ",".join(PEOPLE_COLUMNS)


def test_people_table_and_report_are_absent_when_the_run_fails(tmp_path):
    log = TrackLog()
    log.add(_frame([1], [30.0]), 0.0)
    people = PeopleSink(tmp_path / "people.csv", log.people)
    report = ReportSink(tmp_path / "report.html", log.people, lambda: {"frames": 1})
    people.abort()
    report.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="report folder not found"):
        ReportSink(tmp_path / "missing" / "report.html", log.people, dict)


def test_report_page_holds_figures_numbers_and_people_but_no_face_unless_asked(tmp_path):
    log = TrackLog(keep_faces=True)
    image = np.full((40, 40, 3), 128, np.uint8)
    log.add(_frame([1, 2], [30.0, 12.0], boxes=np.array([[0, 0, 20, 20], [20, 20, 40, 40]])), 0.0, image)
    rows = log.people(NARROW, AgeGate(18, NARROW))
    page = report_html(rows, {"frames": 1, "people": 2}, gate=18)
    assert page.count("data:image/png;base64,") == 3  # ages, presence, verdicts
    assert "data:image/jpeg" not in page and "<td>under</td>" in page and "<td>over</td>" in page
    with_faces = report_html(rows, {"frames": 1}, gate=None, faces=log.faces)
    assert with_faces.count("data:image/jpeg;base64,") == 2 and with_faces.count("data:image/png;base64,") == 2
    assert TrackLog().faces == {}  # nothing kept unless asked
