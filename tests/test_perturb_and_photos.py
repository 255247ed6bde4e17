"""The robustness suite's perturbations, the photo labels, the cross-dataset evaluation through the
pipeline, and the large-face detection pass."""

import json

import cv2
import numpy as np
import pytest

from agecam.training.perturb import (HARSH_PERTURBATIONS, ROBUSTNESS_SUITE, PhotometricConfig, clahe, colour_cast,
                                     faded_print, film_grain, gaussian_blur, greyscale, margin,
                                     random_photometric, rotation)
from agecam.training.evaluation.photos import LabelError, fgnet_label, labelled_photos, read_label_csv, utkface_label
from conftest import REPO, run_agecam


@pytest.fixture(scope="module")
def face_like():
    """A textured 96 px RGB image: a bright disc (the face) with two dark eyes on a gradient."""
    rng = np.random.default_rng(0)
    image = np.tile(np.linspace(40, 200, 96, dtype=np.float32)[None, :, None], (96, 1, 3))
    cv2.circle(image, (48, 48), 30, (210, 160, 130), -1)
    for x in (36, 60):
        cv2.circle(image, (x, 42), 4, (30, 30, 30), -1)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _sharpness(image):
    return cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()


def test_every_perturbation_is_deterministic_and_keeps_the_shape(face_like):
    assert list(ROBUSTNESS_SUITE)[0] == "clean" and set(HARSH_PERTURBATIONS) <= set(ROBUSTNESS_SUITE)
    for name, perturb in ROBUSTNESS_SUITE.items():
        once, twice = perturb(face_like.copy()), perturb(face_like.copy())
        assert once.shape == face_like.shape and once.dtype == np.uint8, name
        assert np.array_equal(once, twice), name
        if name != "clean":
            assert not np.array_equal(once, face_like), f"{name} changed nothing"


def test_perturbations_have_their_strength(face_like):
    grey = greyscale(face_like)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    warm, cool = colour_cast(face_like, 0.15), colour_cast(face_like, -0.15)
    assert warm[..., 0].mean() > face_like[..., 0].mean() > cool[..., 0].mean()
    assert warm[..., 2].mean() < face_like[..., 2].mean() < cool[..., 2].mean()
    assert _sharpness(gaussian_blur(face_like, 1.5)) < 0.5 * _sharpness(face_like)
    local_std = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)[32:64, 32:64].std()  # noqa: E731
    assert local_std(clahe(face_like, 3.0)) > local_std(face_like)
    # A wider margin shows the face smaller: the bright disc covers less of the crop.
    disc = lambda im: (im[..., 0] > 190).mean()  # noqa: E731
    assert disc(margin(face_like, 1.25)) < disc(face_like) < disc(margin(face_like, 0.85))
    # Rotating the eyes' line by 15 degrees moves one eye up and the other down.
    turned = rotation(face_like, 15.0)
    assert not np.array_equal(turned[42], face_like[42])


def test_random_photometric_is_seeded_and_varies(face_like):
    config = PhotometricConfig()
    a = random_photometric(face_like, np.random.default_rng(5), config)
    b = random_photometric(face_like, np.random.default_rng(5), config)
    assert np.array_equal(a, b)
    outcomes = {random_photometric(face_like, np.random.default_rng(seed), config).tobytes() for seed in range(20)}
    assert len(outcomes) > 10
    off = PhotometricConfig(greyscale=0, cast=0, saturation=0, gamma=0, clahe=0, local_contrast=0, sharpen=0, blur=0,
                            old_print=0, grain=0)
    assert np.array_equal(random_photometric(face_like, np.random.default_rng(1), off), face_like)


def test_old_print_fades_tints_and_grains(face_like):
    grey = face_like.astype(np.float32)
    faded = faded_print(face_like, 0.3).astype(np.float32)
    # Blacks rise, whites fall: the tonal range shrinks by the fade.
    assert faded.std() == pytest.approx(grey.std() * 0.7, rel=0.02)
    assert faded.min() > grey.min() and faded.max() < grey.max()
    yellowed = faded_print(face_like, 0.0, (1.1, 1.0, 0.9)).astype(np.float32)
    assert yellowed[..., 0].mean() > grey[..., 0].mean() and yellowed[..., 2].mean() < grey[..., 2].mean()
    assert np.array_equal(faded_print(face_like, 0.0), face_like)
    grained = film_grain(face_like, 8.0, np.random.default_rng(3)).astype(np.float32)
    noise = grained - grey
    # Luminance grain: the same in every channel, about the asked std, clumped (neighbours agree).
    inside = noise[20:76, 20:76]
    assert np.abs(inside[..., 0] - inside[..., 1]).max() <= 1.0
    assert inside[..., 0].std() == pytest.approx(8.0, rel=0.2)
    assert np.corrcoef(inside[:, :-1, 0].ravel(), inside[:, 1:, 0].ravel())[0, 1] > 0.3
    again = film_grain(face_like, 8.0, np.random.default_rng(3))
    assert np.array_equal(again, grained.astype(np.uint8))


def test_label_parsers():
    assert fgnet_label("001A43a.JPG") == ("001", 43)
    assert fgnet_label("012A05.jpg") == ("012", 5)
    assert fgnet_label("001A43ab.JPG") is None and fgnet_label("A43.JPG") is None
    assert utkface_label("34_1_0_20170101000000000.jpg.chip.jpg") == 34
    assert utkface_label("61_1_20170109142408075.jpg.chip.jpg") is None


def test_label_csv(tmp_path):
    good = tmp_path / "ages.csv"
    good.write_text("file,age\na.jpg,31\nb.png,4.5\n\n")
    assert read_label_csv(good) == {"a.jpg": 31.0, "b.png": 4.5}
    for text, reason in (("a.jpg,old\nb.jpg,x\n", "not a number"), ("a.jpg\n", "expected"), ("a.jpg,200\n", "outside")):
        bad = tmp_path / "bad.csv"
        bad.write_text("file,age\n" + text)
        with pytest.raises(LabelError, match=reason):
            read_label_csv(bad)


def test_labelled_photos_choose_the_parser(tmp_path):
    for name in ("001A10.JPG", "001A12a.JPG", "002A30.JPG", "notes.txt", "33_0_0_20170101000000000.jpg.chip.jpg"):
        (tmp_path / name).write_bytes(b"x")
    photos = labelled_photos(tmp_path, "auto")
    assert [(p.path.name, p.age, p.person) for p in photos] == [
        ("001A10.JPG", 10, "001"), ("001A12a.JPG", 12, "001"), ("002A30.JPG", 30, "002")]
    assert [p.age for p in labelled_photos(tmp_path, "utkface")] == [33]
    (tmp_path / "ages.csv").write_text("002A30.JPG,31\n")
    assert [(p.path.name, p.age) for p in labelled_photos(tmp_path, str(tmp_path / "ages.csv"))] == [("002A30.JPG", 31)]
    with pytest.raises(LabelError):
        labelled_photos(tmp_path / "missing", "auto")


def _filling_frame(face_bgr, fraction=0.8, side=480):
    """The central ``fraction`` of a face crop enlarged to ``side``: a face that fills the picture."""
    s = face_bgr.shape[0]
    cut = int(s * fraction)
    start = (s - cut) // 2
    return cv2.resize(face_bgr[start:start + cut, start:start + cut], (side, side), interpolation=cv2.INTER_LINEAR)


def test_the_large_face_pass_finds_a_face_that_fills_the_frame(test_split_faces):
    from agecam.core.config import DetectorConfig
    from agecam.core.detector import FaceDetector

    frames = [_filling_frame(face) for face, _, _ in test_split_faces]
    with FaceDetector(DetectorConfig()) as detector, FaceDetector(DetectorConfig(large_face_pad=0)) as plain:
        whole = [len(plain.detect(frame)) for frame in frames]
        assert sum(whole) < len(frames), "the whole-frame pass finds these faces: the test shows nothing"
        for frame in frames:
            faces = detector.detect_tiled(frame)
            assert len(faces) == 1
            width = faces.xyxy[0, 2] - faces.xyxy[0, 0]
            assert width > 0.5 * frame.shape[1]
        # Streams: the rotation reaches the large-face pass once per round of tiles.
        found = [len(detector.detect_with_tile(frames[0], step)) for step in range(12)]
        assert max(found) == 1


@pytest.mark.slow
def test_evaluate_photos_runs_the_pipeline_on_labelled_photos(tmp_path, test_split_faces):
    """Generated labelled photos (held-out faces in larger pictures, FG-NET names) through the real CLI."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for person, (face, age, _) in enumerate(test_split_faces, start=1):
        canvas = rng.integers(60, 200, (360, 300, 3), dtype=np.uint8)
        canvas = cv2.GaussianBlur(canvas, (0, 0), 6)
        canvas[80:280, 50:250] = face
        if person == 1:  # a black-and-white photo
            canvas = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(folder / f"{person:03d}A{age:02d}.JPG"), canvas)
    cv2.imwrite(str(folder / "009A07.JPG"), np.full((300, 300, 3), 128, np.uint8))  # no face
    saved = tmp_path / "result.json"
    done = run_agecam("evaluate-photos", folder, "--labels", "fgnet", "--model", "cnn", "--save", saved)
    assert done.returncode == 0, done.stderr
    result = json.loads(saved.read_text())
    assert result["photos"] == 4 and result["found"] == 3 and result["missed"] == ["009A07.JPG"]
    assert result["found_rate"] == pytest.approx(0.75)
    assert result["people"] == 3 and result["n"] == 3
    assert {kind: part["n"] for kind, part in result["by_colour"].items()} == {"greyscale": 1, "colour": 2}
    assert "greyscale photos" in done.stdout
    assert 0 <= result["mae"] < 30 and result["range_coverage"] is not None
    assert "evaluate-photos" in result["command"] and "MAE" in done.stdout
    assert result["seconds_per_photo"] > 0  # the stills throughput the README's table shows
    assert set(result["age_gate"]) == {"18", "25"} and result["age_gate"]["18"]["faces"] == 3
    # --record writes the summary into the model's card, where the README table and the default rule read it.
    import shutil

    for suffix in (".keras", ".json"):
        shutil.copy(REPO / "models" / f"cnn{suffix}", tmp_path / f"cnn{suffix}")
    recorded = run_agecam("evaluate-photos", folder, "--model", tmp_path / "cnn.keras", "--record", "--json")
    assert recorded.returncode == 0, recorded.stderr
    card = json.loads((tmp_path / "cnn.json").read_text())
    assert card["cross_dataset"]["photos"]["mae"] == pytest.approx(json.loads(recorded.stdout)["mae"])
    assert "missed" not in card["cross_dataset"]["photos"]
    bad = run_agecam("evaluate-photos", tmp_path / "nowhere")
    assert bad.returncode != 0 and "photo folder not found" in bad.stderr and "Traceback" not in bad.stderr


def test_monochrome_photos_include_tinted_scans_and_not_colour_faces(astronaut_png):
    from agecam.training.evaluation.photos import is_monochrome

    colour = cv2.imread(str(astronaut_png))
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    warm_scan = np.clip(grey.astype(np.float32) * np.array([0.97, 1.0, 1.02]), 0, 255).astype(np.uint8)
    assert is_monochrome(grey) and is_monochrome(warm_scan) and is_monochrome(grey[..., 0])
    assert not is_monochrome(colour)
