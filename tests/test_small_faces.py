"""Small faces: tiles for stills, magnified search around tracks for video, merged by NMS."""

import csv
import itertools

import cv2
import numpy as np
import pytest

from conftest import run_agecam
from agecam.core.detections import Detections
from agecam.core.detector import DetectorConfig, FaceDetector, non_max_suppression, search_region, tile_layout
from agecam.realtime.synthetic import SceneConfig, astronaut_face, background


def _scene_with_small_face(face_width: int, at=(300, 200)):
    """A 640x480 JPEG-compressed scene holding the astronaut with her face ``face_width`` px wide."""
    head = astronaut_face()  # the detector puts her face at ~108 of the head crop's 220 px
    side = int(round(face_width * 220 / 108))
    scene = background(SceneConfig(), np.random.default_rng(1))
    x, y = at
    scene[y:y + side, x:x + side] = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.imdecode(cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_COLOR)


def test_tiles_overlap_and_cover_the_whole_image():
    for (width, height), fraction in itertools.product(((640, 480), (1280, 720), (333, 1000)), (0.5, 0.6)):
        tiles = tile_layout(width, height, fraction=fraction)
        covered = np.zeros((height, width), bool)
        for x1, y1, x2, y2 in tiles:
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            covered[y1:y2, x1:x2] = True
        assert covered.all()
        side = tiles[0][2] - tiles[0][0]
        # Neighbours overlap by more than a small face, so one tile holds each such face whole.
        xs = sorted({t[0] for t in tiles})
        assert all(b - a <= 0.75 * side for a, b in zip(xs, xs[1:]))
    assert tile_layout(150, 120) == []  # too small to gain from tiles
    # Larger tiles (still_tile_fraction 0.6): half as many for a 640x480 or a 400x500 picture.
    assert len(tile_layout(640, 480)) == 12 and len(tile_layout(640, 480, fraction=0.6)) == 6
    assert len(tile_layout(400, 500, fraction=0.6)) == 6


def test_nms_keeps_the_most_confident_of_overlapping_boxes():
    d = Detections(xyxy=[[10, 10, 60, 60], [12, 11, 61, 62], [200, 200, 240, 240], [8, 9, 58, 57]],
                   confidence=[0.7, 0.9, 0.6, 0.5])
    kept = non_max_suppression(d)
    assert kept.xyxy.tolist() == [[12, 11, 61, 62], [200, 200, 240, 240]]
    assert len(non_max_suppression(Detections.empty())) == 0


def test_search_region_is_a_clipped_square_around_the_box():
    assert search_region(np.array([100, 100, 140, 140]), 640, 480) == (76, 76, 164, 164)
    assert search_region(np.array([0, 0, 20, 20]), 640, 480) == (0, 0, 42, 42)  # at least 64 px, clipped


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(DetectorConfig()) as found:
        yield found


def test_a_small_face_in_a_still_is_found_only_with_tiles(detector):
    scene = _scene_with_small_face(38)
    assert len(detector.detect(scene)) == 0  # the whole frame, as the detector sees it, hides her
    faces = detector.detect_tiled(scene)
    assert len(faces) == 1
    x, y, w, h = faces.xywh[0]
    assert 300 < x < 400 and 200 < y < 300 and 25 < w < 60


def test_a_missed_small_face_is_found_in_a_magnified_region(detector):
    scene = _scene_with_small_face(38)
    assert len(detector.detect(scene)) == 0
    truth = detector.detect_tiled(scene).xyxy
    guess = truth + np.array([8, -6, 8, -6], np.float32)  # where a track expects her, a little off
    found = detector.detect_regions(scene, guess)
    assert len(found) == 1 and found.detected.tolist() == [True]
    assert np.abs(found.xyxy[0] - truth[0]).max() < 5
    assert len(detector.detect_regions(scene, [[20, 20, 60, 60]])) == 0  # nothing there: nothing made up


def test_agecam_image_finds_a_small_face_by_default(tmp_path, tiny_model_path):
    path = tmp_path / "small.jpg"
    cv2.imwrite(str(path), _scene_with_small_face(38))
    import json

    result = run_agecam("image", path, "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["faces"]) == 1


def test_video_small_faces_keep_one_track_each_and_coasted_rows_are_marked(tmp_path, test_split_faces,
                                                                           tiny_model_path, utk_dir):
    """5 faces of 80 px drifting with brief occlusions: each face's main track covers >= 95% of frames."""
    from agecam.realtime.measure.field_test import ClipCase, track_coverage
    from agecam.realtime.synthetic import render_scene, write_scene
    from agecam.training.split import effective_splits
    from conftest import MANIFEST

    splits = effective_splits(MANIFEST)
    names = sorted(n for n, s in splits.items() if s == "test" and (utk_dir / n).exists())[:5]
    faces = [cv2.imread(str(utk_dir / n)) for n in names]
    case = ClipCase(5, 80, occlusions=True)
    scene = SceneConfig(frames=300, face_size=case.face_size, seed=4, occlusions=True)
    clip = write_scene(tmp_path / "five.mp4", faces, scene)
    table = tmp_path / "faces.csv"
    result = run_agecam("video", clip, "--no-window", "--csv", table, "--model", tiny_model_path, timeout=600)
    assert result.returncode == 0, result.stderr
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["detected"] for r in rows} == {"0", "1"}  # occluded frames were bridged, and say so
    coverage, tracks, coasted = track_coverage([boxes for _, boxes in render_scene(faces, scene)], rows)
    assert min(coverage) >= 0.95, coverage
    assert max(tracks) <= 2, tracks
    assert 0 < coasted < 0.2


def test_field_test_command_writes_what_the_readme_table_reads(tmp_path, tiny_model_path, utk_dir):
    import json

    from agecam.realtime.measure.field_test import FieldTestConfig
    from agecam.training.evaluation.report import field_test_table

    saved = tmp_path / "field-test.json"
    result = run_agecam("field-test", "--seeds", "0", "--frames", "30", "--stills", "6", "--empty-stills", "3",
                        "--data", utk_dir, "--model", tiny_model_path, "--save", saved, timeout=600)
    assert result.returncode == 0, result.stderr
    record = json.loads(saved.read_text())
    assert len(record["clips"]) == len(FieldTestConfig().cases) and record["command"].startswith("agecam field-test --seeds 0")
    assert all(len(c["main_track_coverage"]) == len(c["tracks_per_face"]) for c in record["clips"])
    assert all(0 <= c["people"] and c["faces"] == len(c["tracks_per_face"]) for c in record["clips"])
    assert sum(v["n"] for band, v in record["stills"]["recall"].items() if band != "40-200") == 6
    table = field_test_table(record)
    assert "| 3 faces of 120 px, 640x480 (30 frames) | 1 |" in table and "| no face (a face reported) | 3 |" in table
    bad = run_agecam("field-test", "--seeds", "x", "--model", tiny_model_path)
    assert bad.returncode != 0 and "--seeds takes numbers" in bad.stderr


def test_agecam_stream_yields_each_frame_with_its_faces_and_stage_times(tiny_model_path):
    from agecam.core import AgeCam, AgeCamConfig
    from agecam.realtime.synthetic import render_scene

    head = astronaut_face()
    scene = SceneConfig(frames=20, face_size=150, seed=2)
    frames = [frame for frame, _ in render_scene([head, cv2.flip(head, 1)], scene)]
    with AgeCam(AgeCamConfig(model=str(tiny_model_path))) as cam:
        results = list(cam.stream(iter(frames), fps=scene.fps))
        assert [r.frame is f for r, f in zip(results, frames)] == [True] * 20
        ids = [tuple(sorted(r.detections.tracker_id.tolist())) for r in results]
        assert set(ids) <= {(1,), (2,), (1, 2)} and ids.count((1, 2)) >= 15  # two faces, two stable ids
        assert all({"decode", "detect", "track", "smooth"} <= set(r.timings) for r in results)
        assert sum(r.faces_inferred for r in results) >= 2 and results[0].timings["infer"] > 0
        again = next(cam.stream(iter(frames[-1:])))  # a new stream starts its ids afresh
        assert min(again.detections.tracker_id.tolist()) == 1


class _LiveFrames(list):
    live = True  # what realtime.sources.VideoSource says of a camera or URL


def test_a_stream_read_ahead_gives_what_frame_by_frame_gives(tiny_model_path):
    """Decoding and detecting the next frame in a worker thread changes no face, id or age; a live
    source is never read ahead; a stream stopped early leaves no worker behind."""
    import threading

    from agecam.core import AgeCam, AgeCamConfig
    from agecam.realtime.synthetic import render_scene

    head = astronaut_face()
    scene = SceneConfig(frames=40, face_size=70, seed=3, occlusions=True)
    frames = [frame for frame, _ in render_scene([head, cv2.flip(head, 1), cv2.convertScaleAbs(head, alpha=0.8)], scene)]
    seen = {}
    for look_ahead in (False, True):
        with AgeCam(AgeCamConfig(model=str(tiny_model_path), look_ahead=look_ahead)) as cam:
            seen[look_ahead] = [(r.detections.xyxy.round(2).tolist(), r.detections.tracker_id.tolist(),
                                 np.nan_to_num(r.detections.age, nan=-1).round(4).tolist(), r.faces_inferred)
                                for r in cam.stream(iter(frames), fps=scene.fps)]
            threads = {t.name for t in threading.enumerate()}
            assert not any(name.startswith("agecam-detect") for name in threads)
            live = cam.stream(_LiveFrames(frames[:3]), fps=scene.fps)
            next(live)
            assert not any(t.name.startswith("agecam-detect") for t in threading.enumerate())  # in turn
            live.close()
            early = cam.stream(iter(frames), fps=scene.fps)
            next(early)
            early.close()  # the worker reading ahead is waited for, then gone
            assert not any(t.name.startswith("agecam-detect") for t in threading.enumerate())
    assert len(seen[True]) == 40 and seen[True] == seen[False]
    assert sum(len(ids) for _, ids, _, _ in seen[True]) > 60


def test_a_run_writes_the_same_csv_and_video_read_ahead_or_in_turn(tmp_path, tiny_model_path):
    """The faster path (look-ahead, the encoding thread) leaves every output as it was: the same CSV
    rows, the same number of video frames."""
    import av

    from agecam.core import AgeCam, AgeCamConfig
    from agecam.realtime.runner import RunConfig, run
    from agecam.realtime.sources import VideoSource
    from agecam.realtime.synthetic import write_scene

    head = astronaut_face()
    clip = write_scene(tmp_path / "clip.mp4", [head, cv2.flip(head, 1)], SceneConfig(frames=30, face_size=90, seed=4))
    outputs = {}
    for look_ahead in (False, True):
        folder = tmp_path / str(look_ahead)
        folder.mkdir()
        with AgeCam(AgeCamConfig(model=str(tiny_model_path), look_ahead=look_ahead)) as cam, \
                VideoSource(str(clip)) as source:
            summary = run(cam, source, RunConfig(show_window=False, output=folder / "out.mp4", csv=folder / "faces.csv"))
        with av.open(str(folder / "out.mp4")) as container:
            stored = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
        outputs[look_ahead] = (summary.frames, stored, (folder / "faces.csv").read_text())
    assert outputs[True] == outputs[False]
    assert outputs[True][:2] == (30, 30) and outputs[True][2].count("\n") > 40


def test_age_images_streams_one_result_per_image_and_never_overwrites(tmp_path, astronaut_png, tiny_model_path):
    from agecam.core import AgeCam, AgeCamConfig
    from agecam.realtime.stills import age_images

    other = tmp_path / "b" / astronaut_png.name
    other.parent.mkdir()
    other.write_bytes(astronaut_png.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    with AgeCam(AgeCamConfig(model=str(tiny_model_path))) as cam:
        results = list(age_images(cam, [astronaut_png, tmp_path / "missing.jpg", other], out))
    assert [r.error for r in results] == [None, "file not found", None]
    assert [r.written.name if r.written else None for r in results] == ["astronaut.png", None, "astronaut_2.png"]
    assert len(results[0].faces) == 1 and results[0].as_json()["faces"][0]["box"][2] > 50
    assert results[1].as_json() == {"path": str(tmp_path / "missing.jpg"), "faces": []}


def test_crossing_scenes_overlap_in_pairs_and_coverage_leaves_overlapped_frames_out():
    from agecam.realtime.measure.field_test import track_coverage
    from agecam.realtime.synthetic import face_paths

    config = SceneConfig(frames=240, face_size=100, crossing=True)
    corners = face_paths(4, config, np.random.default_rng(0))
    gap = np.abs(corners[:, 0, 0] - corners[:, 1, 0])
    assert gap.max() > 400 and gap.min() < 10  # the pair starts apart and meets
    truth = [np.array([[x, y, x + 100, y + 100] for x, y in frame], np.float32) for frame in corners]
    # One id per face, except face 0 handing its id to face 1 after they met: a swap.
    meet = int(np.argmin(gap[:120]))
    rows = [{"frame": str(f), "x": str(b[0]), "y": str(b[1]), "w": "100", "h": "100",
             "track_id": str(i + 1 if (f < meet or i > 1) else 2 - i), "detected": "1"}
            for f, boxes in enumerate(truth) for i, b in enumerate(boxes)]
    coverage, tracks, _ = track_coverage(truth, rows)
    assert tracks[:2] == [2, 2] and tracks[2:] == [1, 1] and max(coverage[:2]) < 0.9 and min(coverage[2:]) == 1.0


def test_the_tile_step_seen_by_a_companion_detector_finds_the_same_faces(detector):
    """The whole frame and the tile seen at once by two detectors give what one gives in turn."""
    scene = _scene_with_small_face(38)
    layout = tile_layout(640, 480)
    step = next(i for i, (x1, y1, x2, y2) in enumerate(layout) if x1 <= 300 and y1 <= 200 and x2 >= 400 and y2 >= 300)
    with FaceDetector(DetectorConfig()) as companion:
        for number in (step, len(layout), 0):  # the tile holding her, the large-face step, another tile
            alone = detector.detect_with_tile(scene, number)
            together = detector.detect_with_tile(scene, number, companion=companion)
            np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=1e-4)
        assert len(detector.detect_with_tile(scene, step, companion=companion)) == 1  # found in her tile
