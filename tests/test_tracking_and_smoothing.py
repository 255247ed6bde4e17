import numpy as np
import pytest

from agecam.core.detections import Detections
from agecam.core.age_range import AgeRangeCalibration
from agecam.core.fusion import TrackAgeFusion, TrackRangeCalibration
from agecam.core.tracker import FaceTracker, TrackerConfig, iou_matrix


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


def _weak(*boxes, score=0.3):
    d = _frame(*boxes)
    d.confidence[:] = score
    return d


def test_a_track_coasts_through_missed_frames_and_ends_after_the_gap_limit():
    # At 10 fps: coasted (drawn on a predicted box) for 0.5 s = 5 frames, ended after 1 s = 10 frames.
    tracker = FaceTracker(TrackerConfig(coast_s=0.5, max_gap_s=1.0), fps=10)
    for t in range(10):
        tracker.update_with_detections(_frame([100 + 2 * t, 100, 180 + 2 * t, 180]))
    shown = [tracker.update_with_detections(_frame()) for _ in range(8)]  # hidden for 8 frames
    assert [len(d) for d in shown] == [1] * 5 + [0] * 3
    assert all(d.tracker_id.tolist() == [1] and d.detected.tolist() == [False] for d in shown[:5])
    # The coasted box keeps moving the way the face moved (2 px a frame, slowing down).
    lefts = [float(d.xyxy[0, 0]) for d in shown[:5]]
    assert 118 < lefts[0] < lefts[-1] < 130
    back = tracker.update_with_detections(_frame([136, 100, 216, 180]))
    assert back.tracker_id.tolist() == [1] and back.detected.tolist() == [True]
    for _ in range(11):
        tracker.update_with_detections(_frame())
    assert tracker.update_with_detections(_frame([136, 100, 216, 180])).tracker_id.tolist() == [2]


def test_gap_limits_are_seconds_scaled_by_the_frame_rate():
    config = TrackerConfig(coast_s=0.5, max_gap_s=1.0)
    for fps, frames in ((10, 10), (30, 30), (60, 60)):
        tracker = FaceTracker(config, fps=fps)
        assert (tracker.coast_frames, tracker.max_gap_frames) == (frames // 2, frames)


def test_weak_detections_extend_a_track_but_never_start_one():
    tracker = FaceTracker(TrackerConfig(start_confidence=0.5, extend_confidence=0.2), fps=30)
    assert len(tracker.update_with_detections(_weak([0, 0, 50, 50]))) == 0  # clutter starts nothing
    for t in range(5):
        tracker.update_with_detections(_frame([200 + t, 100, 260 + t, 160]))
    d = tracker.update_with_detections(_weak([206, 100, 266, 160], [0, 0, 50, 50]))
    assert d.tracker_id.tolist() == [1] and d.detected.tolist() == [True]  # extended, still detected
    assert len(tracker.update_with_detections(_weak([400, 400, 450, 450]))) == 1  # only the coasted track
    with pytest.raises(ValueError):
        TrackerConfig(start_confidence=0.3, extend_confidence=0.6)


def test_an_unconfirmed_track_is_not_coasted():
    tracker = FaceTracker(TrackerConfig(min_hits=3), fps=30)
    tracker.update_with_detections(_frame([0, 0, 50, 50]))  # a one-frame false alarm
    assert len(tracker.update_with_detections(_frame())) == 0


def test_new_face_gets_a_new_id():
    tracker = FaceTracker()
    tracker.update_with_detections(_frame([0, 0, 50, 50]))
    d = tracker.update_with_detections(_frame([0, 0, 50, 50], [300, 300, 350, 350]))
    assert sorted(d.tracker_id.tolist()) == [1, 2]


def _estimate(fusion, track_id, raw, quality=1.0):
    d = Detections(xyxy=[[0, 0, 9, 9]], tracker_id=[track_id], raw_age=[raw], quality=[quality])
    return fusion.update_with_detections(d)


def test_fusion_is_steady_unbiased_and_ignores_frames_without_an_estimate():
    rng = np.random.default_rng(0)
    fusion = TrackAgeFusion()
    raw_values, shown = [], []
    for t in range(300):
        raw = 40 + rng.normal(0, 6) if t % 3 == 0 else np.nan  # an estimate every third frame
        if np.isfinite(raw):
            raw_values.append(raw)
        shown.append(float(_estimate(fusion, 7, raw).age[0]))
    assert abs(shown[-1] - np.mean(raw_values)) < 1.0
    assert np.ptp(shown[60:]) < np.std(raw_values) / 2  # after 2 s it barely moves


def test_fusion_keeps_tracks_apart_and_waits_for_a_first_estimate():
    fusion = TrackAgeFusion()
    d = fusion.update_with_detections(Detections(xyxy=[[0, 0, 9, 9]] * 2, tracker_id=[1, 2], raw_age=[20, np.nan]))
    assert d.age[0] == 20 and np.isnan(d.age[1])
    d = fusion.update_with_detections(Detections(xyxy=[[0, 0, 9, 9]] * 2, tracker_id=[1, 2], raw_age=[30, 60]))
    assert d.age.tolist() == [25, 60]


def test_a_poor_view_moves_the_age_less_than_a_good_one():
    moved = {}
    for quality in (1.0, 0.25):
        fusion = TrackAgeFusion()
        for raw in (30.0, 31.0, 29.0, 30.0):
            _estimate(fusion, 1, raw)
        moved[quality] = float(_estimate(fusion, 1, 40.0, quality).age[0]) - 30.0
    assert 0 < moved[0.25] < moved[1.0] / 4


def test_one_wild_estimate_cannot_drag_the_age():
    fusion = TrackAgeFusion(age_range=AgeRangeCalibration(0.8, 1.0, 0.1, -1.3, 1.3))
    for raw in (30.0, 31.0, 29.0, 30.0, 30.5, 29.5):
        _estimate(fusion, 1, raw)
    assert abs(float(_estimate(fusion, 1, 90.0).age[0]) - 30.0) < 1.5  # a plain mean would move by 8.6


def test_the_track_range_narrows_with_good_views_but_not_with_poor_ones():
    calibration = AgeRangeCalibration(0.8, 1.0, 0.1, -1.3, 1.3)
    track_range = TrackRangeCalibration(rho=0.5, q_low=-1.3, q_high=1.3)
    widths = {}
    for quality in (1.0, 0.25):
        fusion = TrackAgeFusion(age_range=calibration, track_range=track_range)
        spans = []
        for _ in range(30):
            d = _estimate(fusion, 1, 30.0, quality)
            spans.append(float(d.age_high[0] - d.age_low[0]))
        widths[quality] = spans
    good, poor = widths[1.0], widths[0.25]
    assert good[-1] < good[0] and good[-1] == pytest.approx(good[0] * np.sqrt(0.5 + 0.5 / 30), rel=1e-3)
    assert poor[0] == pytest.approx(4 * good[0]) and poor[-1] > 3 * good[-1]  # poor views only: still wide


def test_track_range_coverage_holds_on_simulated_tracks_with_shared_errors():
    """Views of one face share part of their error: a range that assumed independence would cover
    far less than 80% on long tracks. Fitted rho and quantiles hold it on fresh tracks."""
    from agecam.training.evaluation.track_fusion import fit_track_range

    rng = np.random.default_rng(1)
    calibration = AgeRangeCalibration(0.8, 2.0, 0.0, -1.3, 1.3)

    def tracks(count):
        out = []
        for _ in range(count):
            true = rng.uniform(5, 70)
            quality = rng.uniform(0.3, 1.0, 40)
            shared = rng.normal(0, 2.0 * np.sqrt(0.6))
            raw = true + (shared + rng.normal(0, 2.0 * np.sqrt(0.4), 40)) / quality  # 60% of the variance shared
            out.append((true, raw, 1 / quality))
        return out

    fitted = fit_track_range(tracks(400), calibration)
    assert 0.5 < fitted.rho < 0.7
    covered = []
    for true, raw, errors in tracks(400):
        fusion = TrackAgeFusion(age_range=calibration, track_range=fitted)
        for a, r in zip(raw, errors):
            d = _estimate(fusion, 1, a, 1 / r)
            covered.append(d.age_low[0] <= true <= d.age_high[0])
    assert 0.76 < np.mean(covered) < 0.86


# --- appearance: crossings and short exits (issue #22) -----------------------------------------

def _looks(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=80).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _seen(boxes, looks):
    d = _frame(*boxes)
    d.appearance[:] = np.stack(looks)
    return d


def test_faces_that_cross_keep_their_ids_by_appearance():
    """Two faces walk towards each other in one row; the second hides the first while they meet
    (only one detection then, on the front face), then each walks back the way it came. Motion alone
    expects them to pass and swaps the ids; appearance keeps them apart."""
    a, b = _looks(1), _looks(2)
    results = {}
    for weight in (0.0, 1.0):
        tracker = FaceTracker(TrackerConfig(appearance_weight=weight), fps=30)
        ids_a, ids_b = set(), set()
        for t in range(80):
            step = t if t < 40 else 80 - t  # they meet at t = 40 and turn back
            xa, xb = 20 + 6 * step, 500 - 6 * step
            if abs(xa - xb) < 40:  # b is in front: a is hidden
                d = tracker.update_with_detections(_seen([[xb, 100, xb + 80, 180]], [b]))
                ids_b.add(int(d.tracker_id[d.detected][0]))
                continue
            d = tracker.update_with_detections(_seen([[xa, 100, xa + 80, 180], [xb, 100, xb + 80, 180]], [a, b]))
            ids_a.add(int(d.tracker_id[0]))
            ids_b.add(int(d.tracker_id[1]))
        results[weight] = (ids_a, ids_b)
    assert results[1.0] == ({1}, {2})
    assert results[0.0] != ({1}, {2})  # the case is one position alone gets wrong


def test_a_face_that_comes_back_within_reid_s_gets_its_id_again():
    a, stranger = _looks(1), _looks(9)
    tracker = FaceTracker(TrackerConfig(reid_s=4.0), fps=30)
    for _ in range(20):
        tracker.update_with_detections(_seen([[100, 100, 180, 180]], [a]))
    for _ in range(60):  # two seconds out of view: longer than a track lives unseen (max_gap_s 1)
        tracker.update_with_detections(_frame())
    back = tracker.update_with_detections(_seen([[400, 200, 480, 280]], [a]))  # elsewhere in the frame
    assert back.tracker_id.tolist() == [1] and tracker.reidentified == 1
    other = tracker.update_with_detections(_seen([[400, 200, 480, 280], [100, 300, 180, 380]], [a, stranger]))
    assert other.tracker_id.tolist() == [1, 2]  # someone else is a new person


def test_after_reid_s_a_returning_face_is_a_new_track():
    a = _looks(1)
    tracker = FaceTracker(TrackerConfig(reid_s=2.0), fps=30)
    for _ in range(20):
        tracker.update_with_detections(_seen([[100, 100, 180, 180]], [a]))
    for _ in range(30 + 61 + 5):  # the track ends after 1 s and is remembered 2 s more
        tracker.update_with_detections(_frame())
    assert tracker.update_with_detections(_seen([[100, 100, 180, 180]], [a])).tracker_id.tolist() == [2]


def test_the_appearance_descriptor_tells_faces_apart_and_knows_one_again(astronaut_bgr):
    import cv2

    from agecam.core.appearance import appearance_distance, face_descriptor
    from agecam.core.tracker import TrackerConfig

    head = astronaut_bgr[30:250, 115:335]
    limit = TrackerConfig().max_reid_distance

    def seen_at(image, width, quality=80):
        small = cv2.resize(image, (width, width), interpolation=cv2.INTER_AREA)
        small = cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
        return face_descriptor(small, [0, 0, width, width])

    again = appearance_distance(seen_at(head, 140), seen_at(head, 60, 50))[0, 0]
    brighter = appearance_distance(seen_at(head, 140), seen_at(cv2.convertScaleAbs(head, alpha=1.1, beta=10), 100))[0, 0]
    other = appearance_distance(seen_at(head, 140), seen_at(head[:, :, ::-1], 140))[0, 0]  # another complexion
    assert again < limit and brighter < limit < other
    assert np.isnan(face_descriptor(head, [500, 500, 600, 600])).all()  # a box off the picture


# --- repeated crossings (issue #50) --------------------------------------------------------------

def _blend(*looks):
    vector = np.sum(looks, axis=0)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_a_box_holding_two_faces_teaches_no_track_its_looks():
    """b walks over to a and stands in front of it; the detector then finds one box holding both (its
    looks a blend of the two) and no box for a. That box overlaps the place where a's track expects
    a, so the track that takes it must not learn it: both tracks keep their own looks."""
    from agecam.core.appearance import appearance_distance

    a, b = _looks(1), _looks(2)
    tracker = FaceTracker(fps=30)
    for step in range(16):
        x = 260 - 10 * step
        tracker.update_with_detections(_seen([[100, 100, 180, 180], [x, 100, x + 80, 180]], [a, b]))
    for _ in range(20):
        d = tracker.update_with_detections(_seen([[100, 100, 185, 180]], [_blend(a, b)]))
    assert len(d[d.detected]) == 1
    looks = {t.track_id: t.appearance for t in tracker._tracks}
    assert appearance_distance(looks[1], a)[0, 0] < 0.01 and appearance_distance(looks[2], b)[0, 0] < 0.01


def test_a_face_hidden_behind_another_for_longer_than_max_gap_keeps_its_id():
    """b walks over to a and stands in front of it for 1.8 s (a unseen, its expected place inside b's
    face), then a steps out beside b with looks still half b's: a's track was kept alive as hidden and takes it. The
    same absence with nobody in front ends the track after max_gap_s: a new id."""
    a, b = _looks(1), _looks(2)
    half_hidden = _blend(a, 0.6 * b)
    for in_front in (True, False):
        tracker = FaceTracker(TrackerConfig(max_gap_s=1.0, max_hidden_s=2.5), fps=30)
        for step in range(20):  # b walks over to a
            x = 300 - 10 * step
            tracker.update_with_detections(_seen([[100, 100, 180, 180], [x, 100, x + 80, 180]], [a, b]))
        for _ in range(54):
            tracker.update_with_detections(_seen([[110, 100, 190, 180]], [b]) if in_front else _frame())
        d = tracker.update_with_detections(_seen([[40, 100, 120, 180], [130, 100, 210, 180]], [half_hidden, b]))
        assert (d.tracker_id[0] == 1) == in_front


# --- the shown age (issue #50) -------------------------------------------------------------------

def test_the_range_is_shown_until_it_is_narrow_then_one_age_that_stays():
    """A track seen poorly at first (a small face) has a wide range: the label shows the range; once
    good views narrow it below the rule's width, the single age goes on screen and stays there."""
    from agecam.core.annotator import AgeAnnotator
    from agecam.core.fusion import ShownAgeRule

    calibration = AgeRangeCalibration(0.8, 1.0, 0.1, -1.3, 1.3)
    track_range = TrackRangeCalibration(rho=0.5, q_low=-1.3, q_high=1.3)
    fusion = TrackAgeFusion(age_range=calibration, track_range=track_range, shown_age=ShownAgeRule(max_width=10.0))
    annotator = AgeAnnotator()
    labels, shown = [], []
    for quality in [0.25] * 5 + [1.0] * 20 + [0.2] * 5:
        d = _estimate(fusion, 1, 40.0, quality)
        shown.append(bool(d.age_shown[0]))
        labels.append(annotator.age_text(d.age[0], d.age_low[0], d.age_high[0], d.age_shown[0]))
    first = shown.index(True)
    assert 5 <= first < 25 and all(shown[first:])  # the poor views at the end do not take it back
    assert all("-" in label for label in labels[:first]) and labels[-1] == "40"
    assert TrackAgeFusion(age_range=calibration, track_range=track_range).update_with_detections(
        Detections(xyxy=[[0, 0, 9, 9]], tracker_id=[1], raw_age=[40.0], quality=[0.25])).age_shown[0]  # no rule: shown


def test_the_fitted_width_keeps_the_shown_age_within_its_movement():
    """On simulated tracks whose first views are poor, the fitted width holds the shown age's
    movement after it is first shown to the rule's years on fresh tracks, and a looser width does not."""
    from agecam.core.fusion import ShownAgeRule
    from agecam.training.evaluation.track_fusion import fit_shown_age, shown_movement

    rng = np.random.default_rng(3)
    calibration = AgeRangeCalibration(0.8, 3.0, 0.1, -1.3, 1.3)
    track_range = TrackRangeCalibration(rho=0.3, q_low=-1.3, q_high=1.3)

    def replays(count, views=30, best_quality=1.0, noise=3.0):
        out = []
        for _ in range(count):
            true = rng.uniform(10, 70)
            quality = np.clip(np.linspace(0.3, best_quality, views) + rng.normal(0, 0.1, views), 0.3, 1.0)
            fusion = TrackAgeFusion(age_range=calibration, track_range=track_range)
            ages, lows, highs = [], [], []
            for q in quality:  # a model's estimates stay within its ages
                d = _estimate(fusion, 1, float(np.clip(true + rng.normal(0, noise) / q, 1, 90)), q)
                ages.append(d.age[0]), lows.append(d.age_low[0]), highs.append(d.age_high[0])
            out.append({"age": np.array(ages), "low": np.array(lows), "high": np.array(highs)})
        return out

    rule = fit_shown_age(replays(800), max_move=4.0, share=0.95)
    fresh = replays(800)
    moves = [shown_movement(r, rule.max_width) or 0.0 for r in fresh]
    assert isinstance(rule, ShownAgeRule) and 0 < rule.max_width
    assert np.quantile(moves, 0.95) <= 4.75  # 4 years, give or take the sampling of a 95th percentile
    looser = [shown_movement(r, rule.max_width * 2) or 0.0 for r in fresh]
    assert np.quantile(looser, 0.95) > 6

    # short tracks of small faces (noisier estimates, 2 s): fitted with them, the width is narrower and
    # holds the movement there too; fitted on whole tracks alone, it lets the small faces' age swing
    def noisy_replays(count, noise):  # 2 s of views no better than fair
        return replays(count, views=20, best_quality=0.6, noise=noise)

    both = fit_shown_age({"whole": replays(800), "first_2s_faces_24_40px": noisy_replays(400, 6.0)})
    assert both.max_width < rule.max_width and both.n == 800 and both.n_short_small == 400
    fresh_small = noisy_replays(400, 6.0)
    assert np.quantile([shown_movement(r, both.max_width) or 0.0 for r in fresh_small], 0.95) <= 4.75
    assert np.quantile([shown_movement(r, rule.max_width) or 0.0 for r in fresh_small], 0.95) > 4.75
