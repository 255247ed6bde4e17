import numpy as np
import pytest

from agecam.core.age_model import AgeModel, ModelError, resolve_model_path
from agecam.core.annotator import AgeAnnotator, AnnotatorConfig
from agecam.core.detections import Detections
from agecam.core.estimator import AgeEstimator, EstimatorConfig


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path):
    return AgeModel.load(tiny_model_path)


def test_load_by_path_and_predict_in_one_batch(tiny_model):
    assert tiny_model.input_size == 32
    faces = [np.full((80, 70, 3), v, np.uint8) for v in (0, 128, 255)]
    ages = tiny_model.predict(faces)
    assert ages.shape == (3,) and ages.dtype == np.float32 and np.isfinite(ages).all()
    assert tiny_model.predict([]).shape == (0,)
    # A batch gives the same answers as one face at a time.
    assert ages[1] == pytest.approx(tiny_model.predict([faces[1]])[0], abs=1e-4)


def test_model_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_model_path(tmp_path / "missing.keras")
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model_path("vgg99", folder=tmp_path)
    with pytest.raises(ModelError, match="no model"):
        resolve_model_path(None, folder=tmp_path)
    bogus = tmp_path / "bogus.keras"
    bogus.write_text("not a model")
    with pytest.raises(ModelError, match="cannot load"):
        AgeModel.load(bogus)


def test_default_model_follows_the_card_flag(tmp_path):
    from agecam.core.age_model import default_model_name

    for name in ("cnn", "resnet50"):
        (tmp_path / f"{name}.keras").write_text("")
    assert default_model_name(tmp_path) == "resnet50"
    (tmp_path / "cnn.json").write_text('{"default": true}')
    assert default_model_name(tmp_path) == "cnn"


def test_estimator_refreshes_new_tracks_at_once_then_every_k_staggered(tiny_model):
    estimator = AgeEstimator(tiny_model, EstimatorConfig(refresh_every=3))
    frame = np.full((240, 320, 3), 120, np.uint8)
    estimated = {1: [], 2: []}
    for t in range(12):
        d = Detections(xyxy=[[10, 10, 90, 90], [150, 60, 230, 140]], tracker_id=[1, 2], frame_index=t)
        estimator.update_with_detections(frame, d)
        for tid, raw in zip(d.tracker_id, d.raw_age):
            if np.isfinite(raw):
                estimated[int(tid)].append(t)
    assert estimated[1][0] == 0 and estimated[2][0] == 0  # every new face is estimated on its first frame
    assert np.all(np.diff(estimated[1][1:]) == 3) and np.all(np.diff(estimated[2][1:]) == 3)
    assert set(estimated[1][1:]).isdisjoint(estimated[2][1:])  # staggered: never both on one frame
    assert estimator.inferences == len(estimated[1]) + len(estimated[2])


def test_a_settled_track_is_refreshed_less_often(tiny_model):
    """After settle_after estimates a track is refreshed every settled_refresh_every frames."""
    config = EstimatorConfig(refresh_every=3, settle_after=4, settled_refresh_every=9)
    estimator = AgeEstimator(tiny_model, config)
    frame = np.full((240, 320, 3), 120, np.uint8)
    estimated = []
    for t in range(60):
        d = Detections(xyxy=[[10, 10, 90, 90]], tracker_id=[1], frame_index=t)
        estimator.update_with_detections(frame, d)
        if np.isfinite(d.raw_age[0]):
            estimated.append(t)
    gaps = np.diff(estimated)
    assert gaps[:3].tolist() == [2, 3, 3]  # (t + id) % 3 after the first frame, until 4 estimates
    assert set(gaps[4:].tolist()) == {9}  # settled
    unsettled = AgeEstimator(tiny_model, EstimatorConfig(refresh_every=3, settle_after=0))
    assert unsettled.refresh_intervals(np.array([1])).tolist() == [3]
    # Never faster than refresh_every: a settled interval below it is refresh_every.
    slow = AgeEstimator(tiny_model, EstimatorConfig(refresh_every=12, settle_after=1, settled_refresh_every=9))
    assert slow.refresh_intervals(np.array([1])).tolist() == [12]


def test_annotator_draws_box_and_label(tiny_model):
    frame = np.zeros((240, 320, 3), np.uint8)
    d = Detections(xyxy=[[100, 100, 200, 200], [10, 150, 60, 200]], tracker_id=[4, 5], age=[33.4, np.nan])
    out = AgeAnnotator(AnnotatorConfig(show_fps=True)).annotate(frame, d, fps=29.7)
    assert not frame.any()  # input untouched
    assert out[100:200, 100].any() and out[150, 110:190].sum() == 0  # box outline, not filled
    assert out[70:100, 100:160].any()  # the label tag above the box
    assert out[0:30, 0:80].any()  # FPS tag


def test_annotator_shows_the_age_range_only_when_asked():
    plain, ranged = AgeAnnotator(), AgeAnnotator(AnnotatorConfig(show_range=True))
    assert plain.age_text(34.2, 29.4, 40.1) == "34"
    assert ranged.age_text(34.2, 29.4, 40.1) == "34 (29-40)"
    assert ranged.age_text(34.2, np.nan, np.nan) == "34"  # a model without calibration
    assert ranged.age_text(np.nan, 1.0, 2.0) == "..."
    frame = np.zeros((240, 320, 3), np.uint8)
    d = Detections(xyxy=[[100, 100, 200, 200]], tracker_id=[4], age=[33.4], age_low=[28.0], age_high=[41.0])
    short, wide = plain.annotate(frame, d), ranged.annotate(frame, d)
    # The longer label makes a wider tag above the box.
    assert np.count_nonzero(wide[70:100].any(axis=(0, 2))) > np.count_nonzero(short[70:100].any(axis=(0, 2)))
