"""Faces hidden on request (issue #48): a hidden face is found by neither the detector nor the
appearance descriptor, in video, stills and the report, while boxes and ages stay drawn."""

import base64
import json
import re

import cv2
import numpy as np
import pytest

from conftest import run_agecam
from agecam.core.annotator import AgeAnnotator, AnnotatorConfig
from agecam.core.appearance import appearance_distance, face_descriptor
from agecam.core.blur import hide_faces
from agecam.core.detector import DetectorConfig, FaceDetector
from agecam.core.tracker import TrackerConfig
from agecam.realtime.synthetic import SceneConfig, astronaut_face, render_scene


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(DetectorConfig()) as found:
        yield found


@pytest.fixture(scope="module")
def demo_frames():
    """Frames of the demo clip (`agecam demo`: the astronaut and her mirror image walking about), each
    with the boxes of the faces' tiles as pasted."""
    face = astronaut_face()
    return list(render_scene([face, cv2.flip(face, 1)], SceneConfig(frames=60)))[::6]


def test_hidden_faces_are_not_found_by_the_detector(detector, demo_frames):
    from agecam.core.detections import Detections

    seen = 0
    for frame, boxes in demo_frames:
        seen += len(detector.detect_tiled(frame))
        faces = Detections(xyxy=boxes[np.isfinite(boxes).all(axis=1)])
        hidden = AgeAnnotator(AnnotatorConfig(blur_faces=True)).annotate(frame, faces)
        assert len(detector.detect_tiled(hidden)) == 0
    assert seen >= len(demo_frames)  # there were faces to hide


def test_a_hidden_face_is_not_matched_by_the_appearance_descriptor(detector, demo_frames):
    frame = demo_frames[0][0]
    box = detector.detect(frame).xyxy[0]
    hidden = frame.copy()
    hide_faces(hidden, [box])
    distance = float(appearance_distance(face_descriptor(frame, box)[None], face_descriptor(hidden, box)[None])[0, 0])
    assert distance > TrackerConfig().max_reid_distance


def test_the_video_images_and_report_hide_faces_and_keep_labels(tmp_path, tiny_model_path, astronaut_png, detector):
    from agecam.realtime.synthetic import write_scene

    face = astronaut_face()
    clip = write_scene(tmp_path / "clip.mp4", [face, cv2.flip(face, 1)], SceneConfig(frames=30))
    out = tmp_path / "hidden.mp4"
    result = run_agecam("video", clip, "--no-window", "--blur-faces", "-o", out, "--report", tmp_path / "report",
                        "--report-faces", "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    capture, frames = cv2.VideoCapture(str(out)), 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames += 1
        assert len(detector.detect(frame)) == 0
    assert frames == 30
    thumbnails = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", (tmp_path / "report" / "report.html").read_text())
    assert thumbnails
    for encoded in thumbnails:
        picture = cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_COLOR)
        padded = cv2.copyMakeBorder(picture, 60, 60, 60, 60, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        assert len(detector.detect(padded)) == 0
    shown = run_agecam("image", astronaut_png, "--blur-faces", "-o", tmp_path / "stills", "--json", "--model",
                       tiny_model_path)
    assert shown.returncode == 0 and len(json.loads(shown.stdout)[0]["faces"]) == 1  # still found and aged
    still = cv2.imread(str(tmp_path / "stills" / astronaut_png.name))
    assert len(detector.detect(still)) == 0
