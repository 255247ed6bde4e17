"""The real agecam CLI on generated clips and images: outputs, schemas, and failures."""

import csv
import json
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, run_agecam
from realtime.sinks import CSV_COLUMNS

pytestmark = pytest.mark.slow


def frame_count(path):
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return n, fps


def test_video_headless_outputs(tmp_path, three_face_clip, tiny_model_path):
    clip, faces, config = three_face_clip
    out, table = tmp_path / "out.mp4", tmp_path / "faces.csv"
    result = run_agecam("video", clip, "--no-window", "-o", out, "--csv", table, "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr

    assert frame_count(out) == (config.frames, pytest.approx(config.fps, abs=0.01))
    summary = json.loads(result.stdout)
    assert set(summary) == {"frames", "seconds", "fps", "tracks"}
    assert summary["frames"] == config.frames and summary["fps"] > 0
    assert all(set(t) == {"id", "frames", "age"} for t in summary["tracks"])
    # One track per face, each covering almost every frame.
    assert len(summary["tracks"]) == len(faces)
    assert all(t["frames"] >= 0.95 * config.frames for t in summary["tracks"])

    with open(table, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == sum(t["frames"] for t in summary["tracks"])
    assert {int(r["frame"]) for r in rows} <= set(range(config.frames))
    first = rows[0]
    assert float(first["w"]) > 50 and float(first["h"]) > 50 and float(first["age"]) > 0
    assert float(rows[-1]["time_s"]) == pytest.approx(int(rows[-1]["frame"]) / config.fps, abs=1e-3)


def test_image_json_and_annotated_copies(tmp_path, astronaut_png, tiny_model_path):
    plain = tmp_path / "wall.png"
    cv2.imwrite(str(plain), np.full((240, 320, 3), 90, np.uint8))
    result = run_agecam("image", astronaut_png, plain, "-o", tmp_path / "out", "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["path"] for r in report] == [str(astronaut_png), str(plain)]
    face, = report[0]["faces"]
    assert set(face) == {"box", "score", "age"}
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 300 and 80 < y + h / 2 < 200 and face["score"] > 0.7
    assert report[1]["faces"] == []
    annotated = cv2.imread(str(tmp_path / "out" / "astronaut.png"))
    assert annotated is not None and not np.array_equal(annotated, cv2.imread(str(astronaut_png)))


def test_image_bad_files_are_reported_in_one_line_each(tmp_path, astronaut_png, tiny_model_path):
    (tmp_path / "fake.jpg").write_text("not an image")
    result = run_agecam("image", tmp_path / "fake.jpg", tmp_path / "missing.png", astronaut_png, "--json",
                        "--model", tiny_model_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "fake.jpg: not a readable image" in result.stderr and "missing.png: file not found" in result.stderr
    assert len(json.loads(result.stdout)) == 1  # the good image is still processed


@pytest.mark.parametrize("args, message", [
    (["video", "missing.mp4", "--no-window"], "video file not found"),
    (["video", "setup.cfg", "--no-window"], "cannot open video file"),
    (["video", "63", "--no-window"], "cannot open camera"),
    (["webcam", "--camera", "63", "--no-window"], "cannot open camera"),
    (["video", "--model", "nope", "setup.cfg", "--no-window"], "unknown model"),
])
def test_video_bad_input_fails_in_one_line(args, message, tiny_model_path):
    if "--model" not in args:
        args = [*args, "--model", tiny_model_path]
    result = run_agecam(*args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # exactly one line
    assert message in result.stderr


def test_output_never_overwrites_the_input(three_face_clip, tiny_model_path):
    clip = three_face_clip[0]
    before = clip.read_bytes()
    result = run_agecam("video", clip, "--no-window", "-o", clip, "--model", tiny_model_path)
    assert result.returncode == 1 and "is the input video" in result.stderr
    assert clip.read_bytes() == before


def test_window_needs_a_display(three_face_clip, tiny_model_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run_agecam("video", three_face_clip[0], "--model", tiny_model_path, env=env)
    assert result.returncode == 1 and "--no-window" in result.stderr


def test_video_without_faces(tmp_path, tiny_model_path):
    from realtime.sinks import VideoSink

    clip = tmp_path / "empty_room.mp4"
    with VideoSink(clip, 30, (320, 240)) as sink:
        for _ in range(20):
            sink.write(np.full((240, 320, 3), 70, np.uint8))
    result = run_agecam("video", clip, "--no-window", "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tracks"] == [] and json.loads(result.stdout)["frames"] == 20


def test_ctrl_c_finalises_what_was_processed(tmp_path, test_split_faces, tiny_model_path):
    from realtime.synthetic import SceneConfig, write_scene

    clip = write_scene(tmp_path / "long.mp4", [f for f, _, _ in test_split_faces], SceneConfig(frames=900))
    out = tmp_path / "out" / "annotated.mp4"
    out.parent.mkdir()
    process = subprocess.Popen([*AGECAM, "video", str(clip), "--no-window", "-o", str(out), "--model",
                                str(tiny_model_path)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.time() + 120
    while not any(out.parent.iterdir()) and time.time() < deadline:  # the partial file shows work began
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"]  # no partial file left behind
    frames, _ = frame_count(out)
    assert 0 < frames < 900
