import cv2
import numpy as np
import pytest

from agecam.core.crop import CALIBRATED_GEOMETRY, CropConfig, crop_faces, crop_square, eye_angle
from agecam.core.detections import Detections
from agecam.core.detector import DetectorConfig, FaceDetector
from agecam.core.preprocess import preprocess_face


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(DetectorConfig(range="full")) as d:
        yield d


def test_crop_square_follows_the_calibrated_geometry():
    config = CropConfig(scale=1.2, shift_y=0.05, align=False)
    (cx, cy, side), = crop_square(np.array([[100, 100, 200, 200]]), config)
    assert side == pytest.approx(120)
    assert cx == pytest.approx(150)
    assert cy == pytest.approx(150 - 0.05 * 120)


def test_crop_at_frame_edge_keeps_face_centred_and_scaled():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[:, 0] = (0, 0, 255)  # a red left edge, to see what fills the crop beyond the frame
    cv2.circle(frame, (25, 100), 20, (255, 255, 255), -1)  # a "face" near the left edge
    config = CropConfig(scale=1.0, shift_y=0.0, align=False)
    crop, = crop_faces(frame, Detections(xyxy=[[-15, 70, 65, 130]]), config)
    assert crop.shape == (80, 80, 3)  # square, side = box width x scale
    # The disc centre stays in the middle of the crop (not shifted by clamping).
    ys, xs = np.nonzero(crop[:, :, 0] > 128)
    assert xs.mean() == pytest.approx(40, abs=1) and ys.mean() == pytest.approx(40, abs=1)
    # Beyond the frame the edge pixels are repeated, not black padding.
    assert crop[40, 5].tolist() == [0, 0, 255]


def test_alignment_levels_the_eyes():
    frame = np.zeros((200, 200, 3), np.uint8)
    right_eye, left_eye = np.array([80.0, 90.0]), np.array([120.0, 110.0])  # tilted by ~26.6 degrees
    for x, y in (right_eye, left_eye):
        cv2.circle(frame, (int(x), int(y)), 6, (255, 255, 255), -1)
    points = np.full((1, 6, 2), np.nan, np.float32)
    points[0, 0], points[0, 1] = right_eye, left_eye
    d = Detections(xyxy=[[50, 50, 150, 150]], keypoints=points)
    assert eye_angle(points[0]) == pytest.approx(np.degrees(np.arctan2(20, 40)))
    crop, = crop_faces(frame, d, CropConfig(scale=1.0, shift_y=0.0, align=True))
    blobs = cv2.connectedComponentsWithStats((crop[:, :, 0] > 128).astype(np.uint8))[3][1:]
    assert len(blobs) == 2
    assert abs(blobs[0][1] - blobs[1][1]) < 2  # both eyes on one row after alignment


def test_crop_config_per_detector_range():
    assert CropConfig.for_detector_range("short").scale == CALIBRATED_GEOMETRY["short"][0]
    assert CropConfig().scale == CALIBRATED_GEOMETRY["full"][0]


def test_preprocess_matches_training_input():
    gray = np.full((50, 40), 100, np.uint8)
    out = preprocess_face(gray, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32 and np.allclose(out, 100)
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR becomes the last channel in RGB
    assert preprocess_face(bgr, 10)[0, 0].tolist() == [0, 0, 255]


def test_detects_the_astronaut(detector, astronaut_bgr):
    faces = detector.detect(astronaut_bgr)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.xyxy[0]
    # Her face is around x 180-275, y 80-180 in the 512x512 photo.
    assert 150 < (x1 + x2) / 2 < 300 and 80 < (y1 + y2) / 2 < 200
    assert faces.confidence[0] > 0.7
    assert np.isfinite(faces.keypoints[0]).all()


def test_detects_every_face_of_a_synthetic_scene(detector, test_split_faces):
    from agecam.realtime.synthetic import SceneConfig, render_scene

    config = SceneConfig(frames=10, face_size=140, seed=1)
    for frame, truth in render_scene([f for f, _, _ in test_split_faces], config):
        faces = detector.detect(frame)
        assert len(faces) == len(truth)
        centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
        for x1, y1, x2, y2 in truth:
            assert np.any(np.all(np.abs(centres - [(x1 + x2) / 2, (y1 + y2) / 2]) < 35, axis=1))


def test_no_face_in_a_plain_frame(detector):
    assert len(detector.detect(np.full((480, 640, 3), 90, np.uint8))) == 0


def test_detector_config_is_validated():
    with pytest.raises(ValueError):
        DetectorConfig(range="medium")
    with pytest.raises(ValueError):
        DetectorConfig(min_confidence=1.5)
