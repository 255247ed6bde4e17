"""The real agecam CLI on generated clips and images: outputs, schemas, and failures."""

import csv
import json
import os
import signal
import shutil
import subprocess
import time

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, run_agecam
from agecam.realtime.sinks import CSV_COLUMNS

pytestmark = pytest.mark.slow


def frame_count(path):
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return n, fps


def wait_for_frames_written(folder: Path, timeout: float = 120) -> None:
    """Return once the partial video in ``folder`` has grown past its header: frames are being written.
    Waits for that event (polling), never for a fixed time."""
    deadline, first_size = time.time() + timeout, None
    while time.time() < deadline:
        sizes = [p.stat().st_size for p in folder.glob(".*.partial-*.mp4")]
        if sizes and first_size is None and sizes[0] > 0:
            first_size = sizes[0]
        elif sizes and first_size is not None and sizes[0] > first_size:
            return
        time.sleep(0.05)
    raise AssertionError(f"no frame was written into {folder} within {timeout} s")


def test_video_headless_outputs(tmp_path, three_face_clip, tiny_model_path):
    clip, faces, config = three_face_clip
    out, table = tmp_path / "out.mp4", tmp_path / "faces.csv"
    result = run_agecam("video", clip, "--no-window", "-o", out, "--csv", table, "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr

    assert frame_count(out) == (config.frames, pytest.approx(config.fps, abs=0.01))
    summary = json.loads(result.stdout)
    assert set(summary) == {"frames", "seconds", "fps", "tracks", "reconnects"} and summary["reconnects"] == 0
    assert summary["frames"] == config.frames and summary["fps"] > 0
    from agecam.core.people import PEOPLE_COLUMNS

    assert all(set(t) == {"id", *PEOPLE_COLUMNS} - {"track_id"} for t in summary["tracks"])
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
    # The tiny model has no calibration: the range columns are there, and empty.
    assert CSV_COLUMNS[-6:-4] == ("age_low", "age_high") and first["age_low"] == first["age_high"] == ""
    assert CSV_COLUMNS[-4] == "detected" and {r["detected"] for r in rows} <= {"0", "1"} and first["detected"] == "1"
    assert CSV_COLUMNS[-3:-1] == ("age_gate", "quality") and {r["age_gate"] for r in rows} == {""}  # no gate asked
    assert all(0 < float(r["quality"]) <= 1 for r in rows if r["quality"])  # on the frames with an estimate
    # A model without a fitted shown-age rule shows its age from the first estimate (#50).
    assert CSV_COLUMNS[-1] == "age_shown" and {r["age_shown"] for r in rows if r["age"]} == {"1"}
    assert float(rows[-1]["time_s"]) == pytest.approx(int(rows[-1]["frame"]) / config.fps, abs=1e-3)


def test_image_json_and_annotated_copies(tmp_path, astronaut_png, tiny_model_path):
    plain = tmp_path / "wall.png"
    cv2.imwrite(str(plain), np.full((240, 320, 3), 90, np.uint8))
    result = run_agecam("image", astronaut_png, plain, "-o", tmp_path / "out", "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [r["path"] for r in report] == [str(astronaut_png), str(plain)]
    face, = report[0]["faces"]
    assert set(face) == {"box", "score", "age", "age_range", "age_gate", "quality"} and face["age_gate"] is None
    assert face["age_range"] is None  # the tiny model has no calibrated range
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
    from agecam.realtime.sinks import VideoSink

    clip = tmp_path / "empty_room.mp4"
    with VideoSink(clip, 30, (320, 240)) as sink:
        for _ in range(20):
            sink.write(np.full((240, 320, 3), 70, np.uint8))
    result = run_agecam("video", clip, "--no-window", "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tracks"] == [] and json.loads(result.stdout)["frames"] == 20


def test_ctrl_c_finalises_what_was_processed(tmp_path, test_split_faces, tiny_model_path):
    from agecam.realtime.synthetic import SceneConfig, write_scene

    clip = write_scene(tmp_path / "long.mp4", [f for f, _, _ in test_split_faces], SceneConfig(frames=900))
    out = tmp_path / "out" / "annotated.mp4"
    out.parent.mkdir()
    # --realtime paces the 900 frames at the clip's 30 fps, so the run lasts 30 s on any machine and
    # the signal always lands mid-run (without it a fast machine finished first).
    process = subprocess.Popen([*AGECAM, "video", str(clip), "--no-window", "-o", str(out), "--realtime", "--json",
                                "--model", str(tiny_model_path)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for_frames_written(out.parent)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"]  # no partial file left behind
    frames, _ = frame_count(out)
    assert 0 < frames < 900
    assert json.loads(stdout)["frames"] == frames  # the summary counts exactly the frames written


def test_colliding_outputs_are_refused_and_same_named_images_both_kept(tmp_path, astronaut_png, tiny_model_path,
                                                                       three_face_clip):
    clip, _, _ = three_face_clip
    same = tmp_path / "same.mp4"
    result = run_agecam("video", clip, "--no-window", "-o", same, "--csv", same, "--model", tiny_model_path)
    assert result.returncode == 1 and "different names" in result.stderr and not same.exists()

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(astronaut_png, tmp_path / folder / "face.png")
    result = run_agecam("image", tmp_path / "a" / "face.png", tmp_path / "b" / "face.png", "-o", tmp_path / "out",
                        "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face.png", "face_2.png"]


def test_huge_side_images_and_blocked_outputs_fail_per_file_without_a_crash(tmp_path, astronaut_png,
                                                                              tiny_model_path):
    huge = tmp_path / "strip.png"
    cv2.imwrite(str(huge), np.zeros((200, 32800), np.uint8))  # aborted MediaPipe (side > 32767) before
    assert huge.stat().st_size < 1_000_000
    bulky = tmp_path / "bulky.jpg"
    with open(bulky, "wb") as handle:  # 2 GiB (sparse): was read whole into memory, then cv2.error
        handle.truncate(2**31)
    out = tmp_path / "out"
    (out / "astronaut.png").mkdir(parents=True)  # a folder where the annotated copy would go
    result = run_agecam("image", huge, bulky, astronaut_png, "-o", out, "--json", "--model", tiny_model_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "strip.png: image too large: 32800x200" in result.stderr
    assert "bulky.jpg: file too large for an image: 2147 MB" in result.stderr
    assert "a folder of that name is in the way" in result.stderr
    report = json.loads(result.stdout)
    assert [r["path"] for r in report] == [str(astronaut_png)] and len(report[0]["faces"]) == 1



@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_termination_signals_finalise_outputs_and_stale_partials_are_cleaned(tmp_path, test_split_faces,
                                                                              tiny_model_path, signum):
    from agecam.realtime.synthetic import SceneConfig, write_scene

    clip = write_scene(tmp_path / "long.mp4", [f for f, _, _ in test_split_faces], SceneConfig(frames=900))
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen(["true"])  # its pid, once it has ended, belongs to no running writer
    child.wait()
    (out / f".faces.partial-{child.pid}.csv").write_text("frame\n")  # what a SIGKILLed run leaves
    process = subprocess.Popen([*AGECAM, "video", str(clip), "--no-window", "-o", str(out / "annotated.mp4"),
                                "--csv", str(out / "faces.csv"), "--realtime", "--model", str(tiny_model_path)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_frames_written(out)  # paced at 30 fps, the clip cannot end before the signal
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["annotated.mp4", "faces.csv"]  # stale partial gone too
    frames, _ = frame_count(out / "annotated.mp4")
    with open(out / "faces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 0 < frames < 900 and {int(r["frame"]) for r in rows} <= set(range(900))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only file system needs root (CI runs as root)")
def test_outputs_on_a_read_only_file_system_fail_in_one_line(tmp_path, astronaut_png, three_face_clip,
                                                              tiny_model_path):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        cases = [("image", astronaut_png, "-o", readonly),
                 ("image", astronaut_png, "-o", readonly / "new"),
                 ("video", three_face_clip[0], "--no-window", "-o", readonly / "out.mp4"),
                 ("video", three_face_clip[0], "--no-window", "--csv", readonly / "faces.csv")]
        for args in cases:
            result = run_agecam(*args, "--model", tiny_model_path)
            assert result.returncode == 1, (args, result.stderr)
            assert "Traceback" not in result.stderr and result.stderr.count("agecam: error:") == 1, result.stderr
            assert "Read-only file system" in result.stderr or "cannot write" in result.stderr, result.stderr
            assert not os.listdir(readonly)
    finally:
        subprocess.run(["umount", str(readonly)])


def test_help_lists_the_user_commands_first_and_the_model_tools_apart():
    result = run_agecam("--help")
    assert result.returncode == 0
    text = result.stdout
    users, tools = text.split("Commands:")[1].split("Building and measuring models:")
    assert [line.split()[0] for line in users.strip().splitlines()] == ["video", "webcam", "image", "web", "serve",
                                                                        "demo"]
    assert {"train", "evaluate", "benchmark", "calibrate"} <= {line.split()[0] for line in tools.strip().splitlines()}
