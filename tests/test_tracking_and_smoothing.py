import numpy as np
import pytest

from core.detections import Detections
from core.smoothing import AgeSmoother, SmootherConfig
from core.tracker import FaceTracker, TrackerConfig, iou_matrix


def _frame(*boxes):
    return Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4))


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert iou_matrix(a, b)[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0])


def test_ids_stay_stable_through_motion():
    tracker = FaceTracker()
    ids = []
    for t in range(60):
        # Two faces moving towards each other and past vertically separated lanes.
        d = tracker.update_with_detections(_frame([10 + 4 * t, 50, 90 + 4 * t, 130], [400 - 4 * t, 250, 480 - 4 * t, 330]))
        ids.append(tuple(d.tracker_id))
    assert set(ids) == {(1, 2)}


def test_fast_motion_without_overlap_still_matches():
    tracker = FaceTracker()
    for t in range(10):
        x = 45 * t  # jumps 45 px per frame with 50 px boxes: IoU 0.05 between frames
        d = tracker.update_with_detections(_frame([x, 0, x + 50, 50]))
    assert d.tracker_id.tolist() == [1]


def test_brief_occlusion_keeps_the_id_and_long_absence_does_not():
    tracker = FaceTracker(TrackerConfig(max_missed_frames=10))
    for t in range(10):
        tracker.update_with_detections(_frame([100 + 2 * t, 100, 180 + 2 * t, 180]))
    for _ in range(8):  # hidden for 8 frames
        tracker.update_with_detections(_frame())
    back = tracker.update_with_detections(_frame([136, 100, 216, 180]))
    assert back.tracker_id.tolist() == [1]
    for _ in range(12):
        tracker.update_with_detections(_frame())
    assert tracker.update_with_detections(_frame([136, 100, 216, 180])).tracker_id.tolist() == [2]


def test_new_face_gets_a_new_id():
    tracker = FaceTracker()
    tracker.update_with_detections(_frame([0, 0, 50, 50]))
    d = tracker.update_with_detections(_frame([0, 0, 50, 50], [300, 300, 350, 350]))
    assert sorted(d.tracker_id.tolist()) == [1, 2]


def test_smoother_is_unbiased_and_ignores_missing_estimates():
    rng = np.random.default_rng(0)
    smoother = AgeSmoother(SmootherConfig(window=10))
    raw_values, shown = [], []
    for t in range(300):
        raw = 40 + rng.normal(0, 6) if t % 3 == 0 else np.nan  # an estimate every third frame
        if np.isfinite(raw):
            raw_values.append(raw)
        d = smoother.update_with_detections(Detections(xyxy=[[0, 0, 9, 9]], tracker_id=[7], raw_age=[raw]))
        shown.append(float(d.age[0]))
    assert abs(np.mean(shown) - np.mean(raw_values)) < 1.0
    assert np.std(shown[30:]) < np.std(raw_values) / 2  # and much steadier than the raw estimates


def test_smoother_keeps_tracks_apart_and_waits_for_a_first_estimate():
    smoother = AgeSmoother()
    d = smoother.update_with_detections(Detections(xyxy=[[0, 0, 9, 9]] * 2, tracker_id=[1, 2], raw_age=[20, np.nan]))
    assert d.age[0] == 20 and np.isnan(d.age[1])
    d = smoother.update_with_detections(Detections(xyxy=[[0, 0, 9, 9]] * 2, tracker_id=[1, 2], raw_age=[30, 60]))
    assert d.age.tolist() == [25, 60]
