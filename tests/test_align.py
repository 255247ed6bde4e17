"""Aligned chips (core.align): the same face framed the same way however it is turned, moved or sized."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agecam.core.align import ChipAlignment, aligned_by_keypoints, similarity_transform
from agecam.core.detections import Detections

REPO = Path(__file__).resolve().parent.parent
SHIPPED_TEMPLATE = REPO / "training" / "alignment" / "dlib_chip.json"


@pytest.fixture(scope="module")
def alignment() -> ChipAlignment:
    return ChipAlignment.from_dict(json.loads(SHIPPED_TEMPLATE.read_text()))


@pytest.fixture(scope="module")
def astronaut_face(astronaut_bgr):
    """The astronaut photo and MediaPipe's detection of her face (box and six keypoints)."""
    from agecam.core.detector import FaceDetector

    with FaceDetector() as detector:
        faces = detector.detect(astronaut_bgr)
    assert len(faces) == 1
    return astronaut_bgr, faces


def moved(image: np.ndarray, angle: float, scale: float, shift: tuple[float, float]):
    """``image`` turned by ``angle`` degrees, scaled and shifted on a larger canvas; and that map."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    matrix[:, 2] += shift
    canvas = (int(width * 1.3), int(height * 1.3))
    return cv2.warpAffine(image, matrix, canvas, borderMode=cv2.BORDER_REPLICATE), matrix


def test_similarity_transform_recovers_a_known_map():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (4, 2))
    truth = cv2.getRotationMatrix2D((10, 20), 25.0, 1.7)
    mapped = points @ truth[:, :2].T + truth[:, 2]
    assert np.allclose(similarity_transform(points, mapped), truth, atol=1e-9)
    with pytest.raises(ValueError):
        similarity_transform(np.ones((4, 2)), mapped)


def test_a_turned_moved_scaled_face_gives_the_same_chip(alignment, astronaut_face):
    image, faces = astronaut_face
    reference = alignment.cut(image, faces, 64)[0].astype(np.float32)
    for angle, scale, shift in ((20.0, 0.8, (40.0, -30.0)), (-15.0, 1.25, (-60.0, 50.0))):
        other, matrix = moved(image, angle, scale, shift)
        # The keypoints carried by the same map: the chip must come out the same, up to resampling.
        carried = Detections(xyxy=np.zeros((1, 4), np.float32) + [0, 0, 10, 10],
                             keypoints=(faces.keypoints[0] @ matrix[:, :2].T + matrix[:, 2])[None].astype(np.float32))
        chip = alignment.cut(other, carried, 64)[0].astype(np.float32)
        # Resampling alone differs by a few grey levels; a chip 3 px off (a framing error) by far more.
        off = carried.keypoints + np.float32(3.0 * scale * (faces.xyxy[0, 2] - faces.xyxy[0, 0]) / 64)
        shifted = alignment.cut(other, Detections(xyxy=carried.xyxy, keypoints=off), 64)[0].astype(np.float32)
        assert np.abs(chip - reference).mean() < 6.0 < np.abs(shifted - reference).mean(), (angle, scale)


def framing_error(alignment, detections, matrix, reference) -> float:
    """How far (in chip pixels, mean over the corners) the chip cut for ``detections`` in a moved image
    lies from ``reference`` (the upright image's chip map), once ``matrix`` is undone."""
    corners = np.array([[0, 0, 1], [63, 0, 1], [0, 63, 1], [63, 63, 1]], np.float64)
    in_moved = corners @ cv2.invertAffineTransform(alignment.matrices(detections, 64)[0]).T
    back = np.hstack([in_moved, np.ones((4, 1))]) @ cv2.invertAffineTransform(matrix).T
    upright = corners @ cv2.invertAffineTransform(reference).T
    scale = np.sqrt(abs(np.linalg.det(reference[:, :2])))
    return float(np.linalg.norm(back - upright, axis=1).mean() * scale)


def test_detected_keypoints_frame_a_turned_face_better_than_its_box(alignment, astronaut_face):
    """Through the detector itself: the keypoints place a turned face's chip within a few pixels of the
    upright one's (MediaPipe's keypoints wander by a few percent of the face); the box rule, blind to
    the turn, does not."""
    from agecam.core.detector import FaceDetector

    image, faces = astronaut_face
    reference = alignment.matrices(faces, 64)[0]
    with FaceDetector() as detector:
        for angle, margin in ((10.0, 1.0), (25.0, 2.0)):
            other, matrix = moved(image, angle, 0.9, (30.0, 20.0))
            found = detector.detect(other)
            assert len(found) == 1
            by_keypoints = framing_error(alignment, found, matrix, reference)
            by_box = framing_error(alignment, Detections(xyxy=found.xyxy), matrix, reference)
            assert by_keypoints < 4.0 and by_keypoints * margin < by_box, (angle, by_keypoints, by_box)


def test_missing_keypoints_fall_back_to_the_box_and_say_so(alignment, astronaut_face):
    image, faces = astronaut_face
    boxes_only = Detections(xyxy=faces.xyxy)  # keypoints NaN, as a search that reports boxes only
    assert aligned_by_keypoints(faces, alignment).tolist() == [True]
    assert aligned_by_keypoints(boxes_only, alignment).tolist() == [False]
    chip = alignment.cut(image, boxes_only, 64)[0]
    assert chip.shape == (64, 64, 3)
    # The box rule places the chip where the keypoints would, within a few pixels on an upright face.
    centre_box = cv2.invertAffineTransform(alignment.matrices(boxes_only, 64)[0]) @ [32, 32, 1]
    centre_kp = cv2.invertAffineTransform(alignment.matrices(faces, 64)[0]) @ [32, 32, 1]
    width = float(faces.xyxy[0, 2] - faces.xyxy[0, 0])
    assert np.linalg.norm(centre_box - centre_kp) < 0.15 * width


def test_a_large_face_is_reduced_without_aliasing(alignment):
    """A face ten times the chip's size: area-averaged, so a fine stripe pattern comes out grey, not moiré."""
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255
    face = Detections(xyxy=np.array([[100, 100, 700, 700]], np.float32))
    chip = alignment.cut(stripes, face, 64)[0].astype(np.float32)
    assert abs(chip.mean() - 127.5) < 20 and chip.std() < 40


def test_the_shipped_template_records_how_it_was_fitted(alignment):
    record = json.loads(SHIPPED_TEMPLATE.read_text())
    fitted = record["fitted"]
    assert fitted["fit_faces"] > 1000 and "fit_alignment" in fitted["command"]
    assert set(fitted["published_network_on_check_faces"]) >= {"dlib_5_point", "mediapipe_keypoints"}
    eyes = np.array(alignment.template[:2])
    assert eyes[0, 0] < eyes[1, 0]  # the right eye (image left) left of the left eye
    assert 0.0 < alignment.template[0][1] < alignment.template[3][1] < 1.0  # eyes above the mouth


def test_a_model_card_with_an_alignment_cuts_chips(alignment, astronaut_face, tiny_model_path):
    from agecam.core.age_model import AgeModel
    from agecam.core.crop import CropConfig

    model = AgeModel.load(tiny_model_path, runtime="keras")
    image, faces = astronaut_face
    box_crops = model.cut_faces(image, faces, CropConfig())
    assert model.alignment is None and box_crops[0].shape[0] != 32  # box crops keep their own size
    model.card = {"alignment": alignment.to_dict()}
    chips = model.cut_faces(image, faces, CropConfig())
    assert model.alignment == alignment and chips[0].shape == (32, 32, 3)  # at the model's input size
