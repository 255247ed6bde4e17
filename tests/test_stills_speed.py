"""Folders of photos at speed (issue #51): the small-face search costs what it can find (no tile in a
portrait, every small face of a group photo found), several pipelines give the results of one in input
order, Ctrl-C mid-folder leaves whole outputs, and the stills benchmark runs both sides."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, run_agecam
from agecam.core.detector import (DetectorConfig, FaceDetector, RELIABLE_INPUT_PX, REGION_INPUT, holds_clear_square,
                                  person_regions, still_tiles)
from agecam.realtime.synthetic import SceneConfig, astronaut_face, background


def _paste_face(scene, face_width: int, at):
    """The astronaut's head pasted so that her face is about ``face_width`` px wide."""
    head = astronaut_face()  # the detector puts her face at ~108 of the head crop's 220 px
    side = int(round(face_width * 220 / 108))
    x, y = at
    scene[y:y + side, x:x + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)


def _jpeg(image):
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR)


def test_a_square_fits_beside_a_region_only_where_there_is_room():
    tile = (0, 0, 240, 240)
    assert holds_clear_square(tile, [], 40)
    assert not holds_clear_square(tile, [(-10, -10, 250, 250)], 40)  # covered
    assert holds_clear_square(tile, [(40, -10, 250, 250)], 40)  # a 40 px strip on the left
    assert not holds_clear_square(tile, [(39, -10, 250, 250)], 40)
    # Two regions leaving only a 30 px gap between them: no 40 px square.
    assert not holds_clear_square(tile, [(-5, -5, 100, 250), (130, -5, 250, 250)], 40)
    assert holds_clear_square(tile, [(-5, -5, 100, 250), (140, -5, 250, 250)], 40)


def test_a_portrait_gets_no_tile_and_a_small_picture_none_at_all():
    # A 400x500 portrait whose face (the detector's box) is 240 px wide: the person leaves no room.
    face = np.array([[80, 120, 320, 370]], np.float32)
    assert still_tiles(400, 500, face) == []
    assert len(still_tiles(400, 500, np.zeros((0, 4)))) > 0  # the same picture with no face found
    # A face 120 px wide leaves room beside the head and below: tiles are searched.
    assert len(still_tiles(400, 500, np.array([[140, 60, 260, 200]], np.float32))) > 0
    # Small enough for the whole pass to show a 40 px face at the reliable size: no tile needed.
    side = int(40 * REGION_INPUT / RELIABLE_INPUT_PX)
    assert still_tiles(side, side, np.zeros((0, 4))) == []
    assert still_tiles(side + 40, side, np.zeros((0, 4))) != []


def test_tiles_are_big_enough_to_show_the_smallest_face_reliably_and_no_bigger_than_needed():
    for width, height in ((640, 480), (400, 500), (300, 400), (1600, 1200)):
        tiles = still_tiles(width, height, np.zeros((0, 4)))
        sides = {x2 - x1 for x1, _, x2, _ in tiles}
        assert len(sides) == 1
        side = sides.pop()
        assert side == max(int(min(width, height) * 0.5), min(240, min(width, height)))
    assert len(still_tiles(640, 480, np.zeros((0, 4)))) == 12  # as before on the field test's size
    assert len(still_tiles(400, 500, np.zeros((0, 4)))) == 6  # was 12 with tiles of half the shorter side


def test_a_found_person_blocks_the_head_and_only_a_near_ones_body():
    head, body = person_regions((100, 100, 200, 220), 600, reliable_face=50)
    assert head[0] < 100 and head[2] > 200 and head[1] < 100 and head[3] > 220
    assert body[1] == 220 and body[3] == 600 and body[0] < head[0] and body[2] > head[2]
    # A face less than twice the reliable size: a face in front of its body may be too small to be found.
    assert len(person_regions((100, 100, 160, 170), 600, reliable_face=50)) == 1


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(DetectorConfig()) as found:
        yield found


def test_a_group_photo_with_a_large_face_and_small_ones_finds_them_all(detector):
    scene = background(SceneConfig(width=960, height=640), np.random.default_rng(4))
    _paste_face(scene, 170, (20, 150))  # a near face, found by the whole pass
    small = [(480, 60), (640, 60), (800, 60), (480, 380), (640, 380), (800, 380)]
    for i, at in enumerate(small):
        _paste_face(scene, 40 + 4 * i, at)  # faces of 40-60 px
    image = _jpeg(scene)
    whole = detector.detect(image)
    assert len(whole) < 1 + len(small)  # the whole pass alone misses some of them
    faces = detector.detect_tiled(image)
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    for i, (x, y) in enumerate(small):
        side = (40 + 4 * i) * 220 / 108
        assert (np.linalg.norm(centres - (x + side / 2, y + side / 2), axis=1) < side / 2).any(), (x, y)


def test_a_portrait_is_found_with_no_tile_searched(detector, monkeypatch):
    scene = background(SceneConfig(width=360, height=480), np.random.default_rng(5))
    _paste_face(scene, 175, (0, 40))  # her face half the picture's width: a close portrait
    calls = []
    monkeypatch.setattr(detector, "_detect_tile", lambda *args: calls.append(args))
    faces = detector.detect_tiled(_jpeg(scene))
    assert len(faces) == 1 and calls == []


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut_bgr):
    """Twelve different photos: the astronaut at several sizes and places, and two without a face."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    for i in range(12):
        scene = background(SceneConfig(width=480, height=400), rng)
        if i % 6 != 5:
            _paste_face(scene, int(rng.integers(45, 150)), (int(rng.integers(0, 150)), int(rng.integers(0, 80))))
        cv2.imwrite(str(folder / f"p{i:02d}.jpg"), scene)
    return folder


@pytest.mark.slow
def test_two_workers_give_the_results_of_one_in_input_order(photos, tmp_path, tiny_model_path):
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        result = run_agecam("image", photos, "--json", "-o", out, "--csv", tmp_path / f"{workers}.csv", "--workers",
                            workers, "--model", tiny_model_path)
        assert result.returncode == 0, result.stderr
        runs[workers] = (json.loads(result.stdout), (tmp_path / f"{workers}.csv").read_text(), sorted(os.listdir(out)))
    assert [r["path"] for r in runs[2][0]] == sorted(str(p) for p in photos.iterdir())
    assert runs[1] == runs[2]


@pytest.mark.slow
def test_ctrl_c_mid_folder_leaves_whole_outputs(photos, tmp_path, tiny_model_path):
    folder = tmp_path / "many"
    folder.mkdir()
    names = sorted(os.listdir(photos))
    for i in range(400):  # links: many photos, no disk
        os.link(photos / names[i % len(names)], folder / f"{i:03d}_{names[i % len(names)]}")
    out, table = tmp_path / "out", tmp_path / "faces.csv"
    process = subprocess.Popen([*AGECAM, "image", str(folder), "-o", str(out), "--csv", str(table), "--workers", "2",
                                "--model", str(tiny_model_path)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out.is_dir() and len(os.listdir(out)) >= 20) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the event: the first annotated copies in place
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    written = os.listdir(out)
    assert 20 <= len(written) < 400 and not [n for n in written if n.startswith(".")]  # no partial file
    for name in written:
        assert cv2.imread(str(out / name)) is not None, name  # each copy whole
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {os.path.basename(r["path"]) for r in rows} <= set(written)  # a row only for an image done
    assert all(r["quality"] != "" or r["age"] for r in rows)  # whole rows


@pytest.mark.slow
def test_the_stills_benchmark_times_agecam_and_the_peer(photos, tmp_path, tiny_model_path):
    peer = tmp_path / "peer-python"  # a stand-in peer: the real one needs its own environment
    peer.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import json,sys; "
                    "print(json.dumps({\"peer\": \"fake 1.0\", \"photos\": 12, \"unreadable\": 0, \"faces\": 10}))'\n")
    peer.chmod(0o755)
    saved = tmp_path / "stills.json"
    result = run_agecam("benchmark", "--stills", photos, "--peer", peer, "--repeats", 1, "--model", tiny_model_path,
                        "--save", saved)
    assert result.returncode == 0, result.stderr
    record = json.loads(saved.read_text())
    assert record["kind"] == "stills" and record["photos"] == 12 and record["peer"]["peer"] == "fake 1.0"
    assert record["ratio"] == pytest.approx(record["agecam"]["photos_per_s"] / record["peer"]["photos_per_s"], abs=0.01)
    assert record["command"].startswith("agecam benchmark --stills")
    assert "x the peer" in result.stdout
