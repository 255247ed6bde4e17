"""The shipped default model on held-out faces: the acceptance checks of the core pipeline.

One 600-frame 640x480 clip of three moving test-split faces (the first test face aged 25, 45
and 65, a rule fixed before any model existed) runs through the real CLI.
"""

import csv
import json
from collections import Counter, defaultdict

import cv2
import numpy as np
import pytest

from conftest import run_agecam, shipped_model_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shipped_model_available(), reason="no trained model in models/ yet"),
]


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory, test_split_faces):
    """Run the CLI on the clip; per face: (frames in its main track, median shown age)."""
    from agecam.realtime.synthetic import SceneConfig, render_scene, write_scene

    tmp = tmp_path_factory.mktemp("acceptance")
    config = SceneConfig(frames=600, face_size=140, seed=11)
    faces = [f for f, _, _ in test_split_faces]
    clip = write_scene(tmp / "three_faces_600.mp4", faces, config)
    truth_boxes = [boxes for _, boxes in render_scene(faces, config)]
    table = tmp / "faces.csv"
    result = run_agecam("video", clip, "--no-window", "-o", tmp / "out.mp4", "--csv", table, "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 600

    # Match every CSV row to the face whose true box centre is nearest.
    ids_per_face, ages_per_track = defaultdict(list), defaultdict(list)
    with open(table, newline="") as handle:
        for row in csv.DictReader(handle):
            boxes = truth_boxes[int(row["frame"])]
            centre = np.array([float(row["x"]) + float(row["w"]) / 2, float(row["y"]) + float(row["h"]) / 2])
            distances = np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - centre, axis=1)
            if distances.min() < config.face_size / 2:
                ids_per_face[int(np.argmin(distances))].append(int(row["track_id"]))
            if row["age"]:
                ages_per_track[int(row["track_id"])].append(float(row["age"]))
    per_face = []
    for index in range(len(faces)):
        track, frames = Counter(ids_per_face[index]).most_common(1)[0]
        per_face.append((frames, float(np.median(ages_per_track[track]))))
    return per_face


def test_each_face_is_one_track_and_shows_what_the_model_sees(clip_run, test_split_faces):
    from agecam.core.age_model import AgeModel

    model = AgeModel.load(None)
    for (frames, shown), (face, _, name) in zip(clip_run, test_split_faces):
        assert frames >= 0.95 * 600, f"{name}: its main track covers only {frames} of 600 frames"
        # Detection, crop, alignment and smoothing keep the model's judgement of the face: the age
        # shown stays near the model's estimate on the face tile exactly as pasted into the scene.
        tile = cv2.resize(face, (140, 140), interpolation=cv2.INTER_AREA)
        raw = float(model.predict([tile])[0])
        assert abs(shown - raw) <= 10, f"{name}: shown {shown:.1f} in the scene, model on the tile {raw:.1f}"


def test_each_face_shown_within_15_years_of_its_true_age(clip_run, test_split_faces):
    for (_, shown), (_, true_age, name) in zip(clip_run, test_split_faces):
        assert abs(shown - true_age) <= 15, f"{name}: median shown age {shown:.1f}, true {true_age}"


def test_astronaut_gets_a_plausible_age(astronaut_png):
    result = run_agecam("image", astronaut_png, "--json")
    assert result.returncode == 0, result.stderr
    face, = json.loads(result.stdout)[0]["faces"]
    # Eileen Collins was 42 when the photo was taken (NASA, 1998-99); "plausible" is an adult's age.
    # The default reads her young (dlib-resnet10 24.5, the ensemble before it 33.7: a known miss on
    # this smiling studio portrait, docs/model-history.md); an adult she must still be.
    assert 18 <= face["age"] <= 60
