"""The shipped default model on held-out faces: the acceptance checks of the core pipeline."""

import csv
import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from conftest import run_agecam, shipped_model_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shipped_model_available(), reason="no trained model in models/ yet"),
]


def test_three_moving_faces_one_track_each_with_honest_ages(tmp_path, test_split_faces):
    from realtime.synthetic import SceneConfig, render_scene, write_scene

    config = SceneConfig(frames=600, face_size=140, seed=11)
    faces = [f for f, _, _ in test_split_faces]
    clip = write_scene(tmp_path / "three_faces_600.mp4", faces, config)
    truth_boxes = [boxes for _, boxes in render_scene(faces, config)]
    table = tmp_path / "faces.csv"
    result = run_agecam("video", clip, "--no-window", "-o", tmp_path / "out.mp4", "--csv", table, "--json",
                        timeout=900)
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

    for index, (_, true_age, name) in enumerate(test_split_faces):
        track, frames = Counter(ids_per_face[index]).most_common(1)[0]
        assert frames >= 0.95 * config.frames, f"{name}: its main track covers only {frames} of 600 frames"
        median_age = float(np.median(ages_per_track[track]))
        assert abs(median_age - true_age) <= 15, f"{name}: median shown age {median_age:.1f}, true {true_age}"


def test_astronaut_gets_a_plausible_age(astronaut_png):
    result = run_agecam("image", astronaut_png, "--json")
    assert result.returncode == 0, result.stderr
    face, = json.loads(result.stdout)[0]["faces"]
    # Eileen Collins was 42 when the photo was taken (NASA, 1998-99); "plausible" is an adult range.
    assert 25 <= face["age"] <= 60
