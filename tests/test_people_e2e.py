"""Issue #23 through the real CLI: people tables, age-gate verdicts, report pages, stills in bulk."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess

import cv2
import numpy as np
import pytest

from agecam.core.config import EstimatorConfig

from conftest import AGECAM, REPO, run_agecam, shipped_model_available
from agecam.core.people import PEOPLE_COLUMNS
from agecam.realtime.people import read_people_csv
from agecam.realtime.stills import STILLS_CSV_COLUMNS

pytestmark = pytest.mark.slow
needs_shipped = pytest.mark.skipif(not shipped_model_available(), reason="no shipped model in models/")


def _one_error_line(result, code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agecam: error:") and text in lines[0], result.stderr


@needs_shipped
def test_people_table_verdicts_and_report_of_a_three_person_clip(tmp_path, three_face_clip):
    clip, faces, config = three_face_clip
    people, table, report = tmp_path / "people.csv", tmp_path / "faces.csv", tmp_path / "report"
    result = run_agecam("video", clip, "--no-window", "--people", people, "--csv", table, "--report", report,
                        "--age-gate", "18", "--json", "--model", "cnn")
    assert result.returncode == 0, result.stderr

    rows = read_people_csv(people)
    assert len(rows) == len(faces) == 3
    with open(people, newline="") as handle:
        assert tuple(csv.DictReader(handle).fieldnames) == PEOPLE_COLUMNS
    truth = sorted(age for _, age, _ in faces)  # 25, 45, 65: far enough apart to pair by order
    for row, age in zip(sorted(rows, key=lambda r: r["age"]), truth):
        assert abs(row["age"] - age) <= 12, (rows, truth)
        assert row["age_low"] < row["age"] < row["age_high"]
        # Every 3rd frame until settled (EstimatorConfig.settle_after estimates), then every 10th.
        settle = EstimatorConfig()
        expected = settle.settle_after + (config.frames - settle.refresh_every * settle.settle_after) // settle.settled_refresh_every
        assert row["frames"] >= 0.95 * config.frames and row["estimates"] >= expected - 2
        assert row["first_s"] < 0.2 and row["last_s"] == pytest.approx((config.frames - 1) / config.fps, abs=0.05)
        assert row["seconds_seen"] == pytest.approx(row["frames"] / config.fps, abs=0.05)
        assert 0.5 < row["quality"] <= 1.0
        assert row["age_gate"] in ("over", "check")  # adults: never called under 18
    assert sum(r["age_gate"] == "over" for r in rows) >= 2

    with open(table, newline="") as handle:
        verdicts = {r["age_gate"] for r in csv.DictReader(handle)}
    assert verdicts <= {"over", "check", "under"} and "over" in verdicts

    summary = json.loads(result.stdout)
    assert sorted(t["id"] for t in summary["tracks"]) == sorted(r["track_id"] for r in rows)
    assert {t["id"]: t["age_gate"] for t in summary["tracks"]} == {r["track_id"]: r["age_gate"] for r in rows}

    assert [p.name for p in report.iterdir()] == ["report.html"]
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "data:image/jpeg" not in page  # no face unless asked
    assert page.count("<tr><td>") == 3


def test_bad_gate_report_and_people_arguments_fail_in_one_line(tmp_path, three_face_clip, tiny_model_path):
    clip, _, _ = three_face_clip
    for gate in ("0", "101", "adult"):
        result = run_agecam("video", clip, "--no-window", "--age-gate", gate, "--model", tiny_model_path)
        _one_error_line(result, 2, "--age-gate")
    result = run_agecam("image", clip, "--age-gate", "18", "--model", tiny_model_path)
    _one_error_line(result, 1, "no age-gate calibration")

    blocker = tmp_path / "report"
    blocker.write_text("a file where the report folder would go")
    people = tmp_path / "people.csv"
    result = run_agecam("video", clip, "--no-window", "--report", blocker, "--people", people, "--model",
                        tiny_model_path)
    _one_error_line(result, 2, "is a file")
    assert not people.exists() and blocker.read_text().startswith("a file")

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anyway
            result = run_agecam("video", clip, "--no-window", "--report", locked, "--model", tiny_model_path)
            _one_error_line(result, 1, "not writable")
    finally:
        locked.chmod(0o700)

    copy = tmp_path / "clip.mp4"
    shutil.copy(clip, copy)
    result = run_agecam("video", copy, "--no-window", "--people", copy, "--model", tiny_model_path)
    _one_error_line(result, 1, "is the input video")
    assert copy.read_bytes() == clip.read_bytes()
    result = run_agecam("video", clip, "--no-window", "--report-faces", "--model", tiny_model_path)
    _one_error_line(result, 1, "--report")


def test_ctrl_c_leaves_a_whole_people_table_and_report(tmp_path, test_split_faces, tiny_model_path):
    from agecam.realtime.synthetic import SceneConfig, write_scene

    clip = write_scene(tmp_path / "long.mp4", [f for f, _, _ in test_split_faces], SceneConfig(frames=900))
    out = tmp_path / "out"
    out.mkdir()
    people, report = out / "people.json", out / "report"
    # --realtime paces the clip at 30 fps: the signal lands mid-run on any machine.
    process = subprocess.Popen([*AGECAM, "video", str(clip), "--no-window", "-o", str(out / "annotated.mp4"),
                                "--people", str(people), "--report", str(report), "--report-faces", "--realtime",
                                "--json", "--model", str(tiny_model_path)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    from test_cli_e2e import wait_for_frames_written

    wait_for_frames_written(out)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    frames = json.loads(stdout)["frames"]
    rows = json.loads(people.read_text())
    assert rows and all(0 < r["frames"] <= frames for r in rows)
    assert {r["track_id"] for r in rows} == {t["id"] for t in json.loads(stdout)["tracks"]}
    page = (report / "report.html").read_text()
    assert page.rstrip().endswith("</html>") and page.count("data:image/jpeg;base64,") == len(rows)
    assert sorted(p.name for p in out.iterdir()) == ["annotated.mp4", "people.json", "report"]  # no partial files


def test_image_folder_and_glob_with_a_csv_of_faces(tmp_path, astronaut_png, tiny_model_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(astronaut_png, photos / "astronaut.png")
    cv2.imwrite(str(photos / "wall.jpg"), np.full((240, 320, 3), 90, np.uint8))
    (photos / "notes.txt").write_text("not an image")
    table = tmp_path / "faces.csv"
    result = run_agecam("image", photos, "--csv", table, "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert [r["path"] for r in json.loads(result.stdout)] == [str(photos / "astronaut.png"), str(photos / "wall.jpg")]
    with open(table, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == STILLS_CSV_COLUMNS
        rows = list(reader)
    assert [(r["path"], r["face"]) for r in rows] == [(str(photos / "astronaut.png"), "1")]  # the wall has none
    assert float(rows[0]["w"]) > 50 and float(rows[0]["age"]) > 0 and rows[0]["age_gate"] == ""

    result = run_agecam("image", str(tmp_path / "photos" / "*.jpg"), "--json", "--model", tiny_model_path)
    assert result.returncode == 0 and [r["path"] for r in json.loads(result.stdout)] == [str(photos / "wall.jpg")]
    result = run_agecam("image", photos / "astronaut.png", "--csv", photos / "astronaut.png", "--model",
                        tiny_model_path)
    _one_error_line(result, 1, "is one of the input images")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_error_line(run_agecam("image", empty, "--model", tiny_model_path), 1, "no images in")


def test_batch_writes_a_people_table_per_video_and_one_for_all(tmp_path, tiny_model_path):
    from test_batch import _clip

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(2):
        _clip(videos / f"walk{i}.mp4", frames=20 + 5 * i, seed=i)
    people = tmp_path / "people"
    result = run_agecam("video", videos, "--people-dir", people, "--report", tmp_path / "reports", "--workers", "1",
                        "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in people.iterdir()) == ["all-people.csv", "walk0.csv", "walk1.csv"]
    combined = read_people_csv(people / "all-people.csv")
    for i in range(2):
        own = read_people_csv(people / f"walk{i}.csv")
        assert own and [{k: v for k, v in r.items() if k != "video"} for r in combined
                        if r["video"] == str(videos / f"walk{i}.mp4")] == own
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["walk0.html", "walk1.html"]
    # A second run finds every output complete and skips both videos; the combined table is kept.
    result = run_agecam("video", videos, "--people-dir", people, "--report", tmp_path / "reports", "--workers", "1",
                        "--json", "--model", tiny_model_path)
    assert result.returncode == 0 and json.loads(result.stdout)["totals"]["skipped"] == 2
    assert read_people_csv(people / "all-people.csv") == combined
