"""Extra training faces (AiDataset's layout): cleaning, the excluded file, re-cutting, age balance."""

import cv2
import numpy as np
import pytest

from agecam.training.data import DataError
from agecam.training.extra_faces import (EXCLUDED, age_balance_weights, load_extra_faces, near_duplicates_of,
                                         scan_age_folders)


def _photo(face_bgr, seed):
    """A held-out face in a loose 160 px photo, as the source frames its faces."""
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur(rng.integers(40, 220, (160, 160, 3), dtype=np.uint8), (0, 0), 5)
    canvas[30:130, 30:130] = cv2.resize(face_bgr, (100, 100), interpolation=cv2.INTER_AREA)
    return canvas


@pytest.fixture
def source(tmp_path, test_split_faces):
    """``20-50/{train,test}/AGE/`` with three faces, a copy under another age, a copy under the same
    age, the excluded file and a stray text file."""
    root = tmp_path / "AiDataset" / "20-50"
    faces = [face for face, _, _ in test_split_faces]
    files = {"train/25/1.jpg": _photo(faces[0], 1), "train/45/2.jpg": _photo(faces[1], 2),
             "test/30/3.jpg": _photo(faces[2], 3)}
    for relative, image in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / relative), image)
    conflicting = (root / "train/25/1.jpg").read_bytes()
    (root / "train/26").mkdir()
    (root / "train/26/9.jpg").write_bytes(conflicting)  # the same file filed under another age
    (root / "train/45/7.jpg").write_bytes((root / "train/45/2.jpg").read_bytes())  # same age: one copy kept
    (root / EXCLUDED[0]).parent.mkdir(parents=True, exist_ok=True)
    (root / EXCLUDED[0]).write_bytes((root / "test/30/3.jpg").read_bytes())
    (root / "train/45/readme.txt").write_text("not an image")
    return tmp_path / "AiDataset"


def test_scan_cleans_the_source(source):
    scan = scan_age_folders(source, splits=("train",))  # the parent of 20-50 is accepted too
    assert [(r.path.relative_to(scan.root).as_posix(), r.age) for r in scan.records] == [("train/45/2.jpg", 45)]
    assert scan.dropped == {"identical file under different ages": 2, "identical copy": 1,
                            "kept aside (EXCLUDED)": 1}
    both = scan_age_folders(source / "20-50", splits=("train", "test"))
    assert sorted(r.age for r in both.records) == [30, 45]
    with pytest.raises(DataError):
        scan_age_folders(source / "20-50" / "train" / "25")


def test_faces_are_recut_as_the_pipeline_cuts_them_and_cached(source, tmp_path):
    scan = scan_age_folders(source, splits=("train", "test"))
    faces = load_extra_faces(scan.records, 64, cache_dir=tmp_path / "cache")
    assert faces.images.shape == (2, 64, 64, 3) and faces.not_found == 0
    assert list(faces.ages) == [30, 45] and faces.names == ["20-50:test/30/3.jpg", "20-50:train/45/2.jpg"]
    again = load_extra_faces(scan.records, 64, cache_dir=tmp_path / "cache")
    assert np.array_equal(again.images, faces.images) and again.names == faces.names
    assert len(list((tmp_path / "cache").glob("extra-faces-*.npz"))) == 1


def test_near_duplicates_of_held_out_faces_are_found(source, tmp_path, test_split_faces):
    scan = scan_age_folders(source, splits=("train", "test"))
    faces = load_extra_faces(scan.records, 96)
    # A held-out face cut from the same photo is a near-duplicate of it; an unrelated face is not.
    cut = tmp_path / "held_out.png"
    cv2.imwrite(str(cut), cv2.cvtColor(faces.images[0], cv2.COLOR_RGB2BGR))
    other = tmp_path / "other.png"
    cv2.imwrite(str(other), test_split_faces[0][0])
    assert list(near_duplicates_of(faces, [cut, other])) == [True, False]


def test_age_balance_gives_the_reference_distribution():
    reference = np.array([2] * 30 + [30] * 50 + [70] * 20, np.float32)
    combined = np.concatenate([reference, np.full(400, 30.0)])  # an extra source of 30-year-olds
    weights = age_balance_weights(combined, reference)
    assert weights.mean() == pytest.approx(1.0)
    share = {age: weights[combined == age].sum() / weights.sum() for age in (2, 30, 70)}
    assert share == pytest.approx({2: 0.3, 30: 0.5, 70: 0.2})


def test_a_flatter_age_balance_weighs_rare_bands_more_within_a_cap():
    reference = np.array([2] * 10 + [30] * 80 + [70] * 10, np.float32)
    flat = age_balance_weights(reference, reference, power=0.0, max_weight=100.0)
    share = {age: flat[reference == age].sum() / flat.sum() for age in (2, 30, 70)}
    assert share == pytest.approx({2: 1 / 3, 30: 1 / 3, 70: 1 / 3})
    half = age_balance_weights(reference, reference, power=0.5, max_weight=100.0)
    assert flat[reference == 2][0] > half[reference == 2][0] > half[reference == 30][0]
    capped = age_balance_weights(reference, reference, power=0.0, max_weight=2.0)
    assert capped.max() / np.median(capped) == pytest.approx(2.0)
    assert capped.mean() == pytest.approx(1.0)
