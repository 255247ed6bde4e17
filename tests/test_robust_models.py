"""Issue #12's pieces: near-duplicate grouping, degradation, the distribution head, age ranges,
and the init-from leakage check."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from agecam.core.age_range import AgeRangeCalibration, coverage_of
from agecam.training.degrade import DegradeConfig, degrade_face, render_at_width
from agecam.training.duplicates import Fingerprints, fingerprint, fingerprint_images, group_near_duplicates


def _scene(seed: int, side: int = 200) -> np.ndarray:
    """A smooth random picture (blurred noise plus shapes), distinct per seed."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), (0, 0), 12)
    image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)
    for _ in range(4):
        centre = tuple(int(v) for v in rng.integers(20, side - 20, 2))
        cv2.circle(image, centre, int(rng.integers(10, 50)), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return image


def test_near_identical_images_group_and_distinct_ones_do_not(tmp_path):
    originals = [_scene(seed) for seed in range(6)]
    copies = [
        cv2.imdecode(cv2.imencode(".jpg", originals[0], [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_COLOR),
        cv2.convertScaleAbs(originals[1], alpha=1.0, beta=4),  # slightly brighter
        cv2.resize(cv2.resize(originals[2], (150, 150)), (200, 200)),  # re-sampled
    ]
    paths = []
    for i, image in enumerate(originals + copies):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), image)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths.append(tmp_path / "broken.jpg")
    prints = fingerprint_images(paths)
    assert not prints.valid[-1]
    groups = group_near_duplicates(prints)
    assert groups[6] == groups[0] and groups[7] == groups[1] and groups[8] == groups[2]
    assert len(set(groups[:6])) == 6  # distinct pictures stay apart
    assert groups[9] == 9  # the unreadable file groups with nothing


def test_hash_alone_is_not_enough_the_thumbnail_decides():
    image = _scene(1)
    h, thumb = fingerprint(image)
    other = np.full_like(thumb, 255) - thumb  # same hash forced, very different pixels
    prints = Fingerprints(np.stack([h, h]), np.stack([thumb, other]), np.ones(2, bool))
    assert list(group_near_duplicates(prints)) == [0, 1]


def test_render_at_width_keeps_the_size_and_loses_detail():
    face = _scene(3, 96)
    for width in (24, 48, 96):
        assert render_at_width(face, width).shape == face.shape
    # Fine detail lost at 24 px: a noise pattern's high frequencies are gone.
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    assert render_at_width(noise, 24).std() < 0.5 * noise.std()
    assert np.array_equal(render_at_width(face, 48), render_at_width(face, 48))  # deterministic


def test_degrade_face_is_deterministic_by_seed_and_sometimes_clean():
    face = _scene(4, 96)
    config = DegradeConfig(probability=0.5)
    first = [degrade_face(face, np.random.default_rng([7, i]), config) for i in range(40)]
    again = [degrade_face(face, np.random.default_rng([7, i]), config) for i in range(40)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    unchanged = sum(np.array_equal(a, face) for a in first)
    assert 5 < unchanged < 35  # about half kept clean
    assert all(a.shape == face.shape and a.dtype == np.uint8 for a in first)
    assert degrade_face(face, np.random.default_rng(0), DegradeConfig(probability=0.0)) is face


def test_range_calibration_reaches_its_nominal_coverage_on_fresh_data():
    rng = np.random.default_rng(1)

    def sample(n):
        true = rng.uniform(1, 90, n)
        # Errors grow with age and lean young, like the real models'.
        return true, np.maximum(0.0, true + rng.normal(-0.05 * true, 1 + 0.12 * true))

    calibration = AgeRangeCalibration.fit(*sample(3000), coverage=0.8)
    true, predicted = sample(20000)
    low, high = calibration.interval(predicted)
    assert coverage_of(true, low, high) == pytest.approx(0.8, abs=0.02)
    assert np.all(low <= predicted + 1e-3) and np.all(high >= predicted - 1e-3) and np.all(low >= 0)
    assert np.mean(high[predicted > 60] - low[predicted > 60]) > 2 * np.mean(high[predicted < 15] - low[predicted < 15])
    # Stored in a card and read back, it gives the same ranges.
    card = {"age_range": {"calibration": calibration.to_dict()}}
    again = AgeRangeCalibration.from_card(card).interval(predicted)
    assert np.allclose(again[0], low) and np.allclose(again[1], high)
    assert AgeRangeCalibration.from_card({}) is None
    with pytest.raises(ValueError):
        AgeRangeCalibration.fit([1, 2], [1, 2])


def test_distribution_head_returns_the_expected_age_of_its_bins():
    import keras

    from agecam.training.models import AGE_BINS, build_model, head_of, label_distribution_kl, training_view

    model = build_model("cnn", 32, head="distribution")
    assert head_of(model) == "distribution" and model.output_shape == (None, 1)
    probs_layer = model.get_layer("age_probs")
    kernel, bias = probs_layer.get_weights()
    # All mass on bins 30 and 40 (equal logits there, very low elsewhere): expected age 35.
    bias[:] = -50.0
    bias[[30, 40]] = 10.0
    probs_layer.set_weights([np.zeros_like(kernel), bias])
    age = model.predict_on_batch(np.zeros((2, 32, 32, 3), np.float32))
    assert np.allclose(age, 35.0, atol=1e-3)
    assert set(training_view(model).output) == {"age", "dist"}
    # KL is ~0 when the prediction is the Gaussian label distribution itself, and grows when it is not.
    bins = np.arange(AGE_BINS, dtype=np.float32)
    target = np.exp(-0.5 * ((bins - 35.0) / 2.0) ** 2)
    target /= target.sum()
    near = keras.ops.convert_to_numpy(label_distribution_kl(np.array([35.0]), target[None]))
    far = keras.ops.convert_to_numpy(label_distribution_kl(np.array([60.0]), target[None]))
    assert near[0] == pytest.approx(0.0, abs=1e-4) and far[0] > 10
    assert head_of(build_model("cnn", 32)) == "regression"


def test_init_from_a_model_that_saw_a_test_face_is_refused(tmp_path):
    from agecam.core.age_model import ModelError
    from agecam.training.data import FaceRecord
    from agecam.training.train import check_no_test_leakage, train_files_path

    model = tmp_path / "earlier.keras"
    test = [FaceRecord(Path("30_0_0_1.jpg"), 30, 0, 0), FaceRecord(Path("40_0_0_2.jpg"), 40, 0, 0)]
    groups = {"30_0_0_1.jpg": "30_0_0_1.jpg", "40_0_0_2.jpg": "40_0_0_2.jpg", "41_0_0_3.jpg": "40_0_0_2.jpg"}
    with pytest.raises(ModelError, match="no list of its training faces"):
        check_no_test_leakage(model, test, groups)
    train_files_path(tmp_path / "earlier").write_text("10_0_0_9.jpg\n20_0_0_8.jpg\n")
    check_no_test_leakage(model, test, groups)  # clean: no error
    train_files_path(tmp_path / "earlier").write_text("10_0_0_9.jpg\n41_0_0_3.jpg\n")  # a copy of a test face
    with pytest.raises(ModelError, match="1 face"):
        check_no_test_leakage(model, test, groups)
    train_files_path(tmp_path / "earlier").write_text("30_0_0_1.jpg\n")  # a test face itself
    with pytest.raises(ModelError, match="30_0_0_1"):
        check_no_test_leakage(model, test, groups)


def test_shipped_models_never_trained_on_a_test_face():
    from agecam.training.split import effective_splits
    from agecam.training.train import read_train_files
    from conftest import MANIFEST, REPO

    splits = effective_splits(MANIFEST)
    test = {name for name, split in splits.items() if split == "test"}
    for path in sorted((REPO / "models").glob("*.keras")):
        seen = read_train_files(path)
        assert seen is not None, f"{path.name} has no list of its training faces"
        assert not seen & test, f"{path.name} trained on {len(seen & test)} test faces"


def test_batches_per_epoch_draw_a_fresh_subset_each_epoch_and_never_run_out():
    from agecam.training.augment import AugmentConfig, AugmentedFaces

    images = np.zeros((50, 16, 16, 3), np.uint8)
    faces = AugmentedFaces(images, np.arange(50, dtype=np.float32), batch_size=8, config=AugmentConfig(),
                           batches_per_epoch=3)
    assert len(faces) == 3 and len(AugmentedFaces(images, np.zeros(50), batch_size=8)) == 7
    seen, epochs = set(), []
    for _ in range(4):  # 4 epochs x 3 batches x 8 = 96 faces drawn from 50: more than one pass
        ages = np.concatenate([faces[i][1] for i in range(len(faces))])
        assert len(ages) == 24 and len(set(ages)) == 24  # whole batches, no face twice in an epoch
        epochs.append(tuple(ages))
        seen |= set(ages)
        faces.on_epoch_end()
    assert len(set(epochs)) == 4 and len(seen) > 40  # a new subset each epoch, most faces seen
