"""Batches of videos: finding them, naming outputs, skipping finished ones, failing one file alone,
stopping cleanly, progress bars, Ray, and the batch benchmark."""

from __future__ import annotations

import csv
import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, run_agecam
from agecam.realtime.batch import (BatchError, BatchOutputs, FileResult, VideoJob, find_videos, plan_jobs, totals,
                            write_combined_jsonl)
from agecam.realtime.config import BatchConfig, StreamConfig
from agecam.realtime.sinks import CSV_COLUMNS, JsonlSink

JSONL_KEYS = {"video", "frame", "time_s", "track_id", "box", "score", "age", "age_low", "age_high", "detected", "age_gate", "quality",
              "age_shown"}


def _clip(path: Path, frames: int, seed: int = 0) -> Path:
    from agecam.realtime.synthetic import SceneConfig, astronaut_face, write_scene

    face = astronaut_face()
    return write_scene(path, [face, cv2.flip(face, 1)], SceneConfig(width=320, height=240, frames=frames,
                                                                     face_size=90, seed=seed))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three short clips and one file that is not a video, in one folder."""
    folder = tmp_path_factory.mktemp("recordings")
    for i in range(3):
        _clip(folder / f"walk{i}.mp4", frames=24 + 6 * i, seed=i)
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    (folder / "notes.txt").write_text("not a video either, and not a video suffix")
    return folder


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return list(reader)


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial-" in p.name]


# Units: finding videos and planning outputs.

def test_find_videos_takes_files_folders_and_patterns_each_once(clips):
    found = find_videos([clips, str(clips / "walk*.mp4"), clips / "walk1.mp4"])
    assert [p.name for p in found] == ["broken.mp4", "walk0.mp4", "walk1.mp4", "walk2.mp4"]
    with pytest.raises(BatchError, match="no file matches"):
        find_videos([str(clips / "*.mkv")])
    with pytest.raises(BatchError, match="no such file, folder or pattern"):
        find_videos([clips / "missing.mp4"])


def test_plan_names_outputs_after_inputs_and_refuses_collisions(tmp_path, clips):
    jobs = plan_jobs([clips / "walk0.mp4"], BatchOutputs(video_dir=tmp_path / "a", csv_dir=tmp_path / "c",
                                                         jsonl=tmp_path / "all.jsonl"))
    assert jobs[0].output == tmp_path / "a" / "walk0.mp4" and jobs[0].csv == tmp_path / "c" / "walk0.csv"
    assert jobs[0].jsonl == tmp_path / ".all.jsonl.parts" / "walk0.jsonl" and jobs[0].frames_expected == 24
    (tmp_path / "x").mkdir()
    twin = _clip(tmp_path / "x" / "walk0.mp4", frames=10)
    with pytest.raises(BatchError, match="would both be written as walk0"):
        plan_jobs([clips / "walk0.mp4", twin], BatchOutputs(csv_dir=tmp_path / "c"))
    with pytest.raises(BatchError, match="would replace an input"):
        plan_jobs([clips / "walk0.mp4"], BatchOutputs(video_dir=clips))


def test_jsonl_sink_schema_and_abort_leaves_nothing(tmp_path):
    from agecam.core.detections import Detections

    detections = Detections(xyxy=np.array([[10, 20, 50, 80]], np.float32), confidence=np.array([0.9], np.float32),
                            tracker_id=np.array([4]), age=np.array([31.26], np.float32))
    with JsonlSink(tmp_path / "f.jsonl", video="clip.mp4") as sink:
        sink.write(7, 0.25, detections)
    record = json.loads((tmp_path / "f.jsonl").read_text())
    assert set(record) == JSONL_KEYS
    assert record["box"] == [10.0, 20.0, 40.0, 60.0] and record["age"] == 31.3 and record["age_low"] is None
    assert (record["video"], record["frame"], record["track_id"], record["detected"]) == ("clip.mp4", 7, 4, True)
    sink = JsonlSink(tmp_path / "g.jsonl", video="clip.mp4")
    sink.write(0, 0.0, detections)
    sink.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jsonl"]


def test_combined_jsonl_follows_input_order_and_leaves_out_failures(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    jobs = []
    for name in ("b", "a", "c"):
        (parts / f"{name}.jsonl").write_text(json.dumps({"video": name}) + "\n")
        jobs.append(VideoJob(Path(f"{name}.mp4"), name, jsonl=parts / f"{name}.jsonl"))
    results = [FileResult("b.mp4", "b", "done"), FileResult("a.mp4", "a", "failed"), FileResult("c.mp4", "c", "skipped")]
    assert write_combined_jsonl(jobs, results, tmp_path / "all.jsonl") == 2
    assert [json.loads(line)["video"] for line in (tmp_path / "all.jsonl").read_text().splitlines()] == ["b", "c"]
    assert totals(results, 2.0)["failed"] == 1


def test_finished_videos_are_skipped_unless_overwrite(tmp_path):
    from agecam.realtime.batch import skip_finished

    done = VideoJob(Path("a.mp4"), "a", csv=tmp_path / "a.csv", jsonl=tmp_path / "a.jsonl")
    half = VideoJob(Path("b.mp4"), "b", csv=tmp_path / "b.csv", jsonl=tmp_path / "b.jsonl")
    for path in (done.csv, done.jsonl, half.csv):
        path.write_text("x")
    todo, skipped = skip_finished([done, half], overwrite=False)
    assert todo == [half] and [r.name for r in skipped] == ["a"] and skipped[0].status == "skipped"
    assert skip_finished([done, half], overwrite=True) == ([done, half], [])
    assert not VideoJob(Path("c.mp4"), "c").finished()  # no output asked for: never counts as done


def test_worker_count_and_stream_waits():
    assert BatchConfig(workers=4).worker_count(videos=2) == 2 and BatchConfig(workers=1).worker_count(9) == 1
    assert BatchConfig().worker_count(100) >= 1
    stream = StreamConfig(reconnect=4, backoff_s=1, max_backoff_s=4, open_timeout_s=5)
    assert stream.waits() == [1, 2, 4, 4] and stream.give_up_after_s() == 11 + 20
    assert StreamConfig().give_up_after_s() == 22  # the README's figure


# The real command line.

def test_batch_folder_outputs_schemas_and_one_bad_file(tmp_path, clips, tiny_model_path):
    out, tables, lines = tmp_path / "annotated", tmp_path / "faces", tmp_path / "faces.jsonl"
    args = ["video", clips, "-o", out, "--csv-dir", tables, "--jsonl", lines, "--workers", "2", "--json",
            "--model", tiny_model_path]
    result = run_agecam(*args)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "agecam: error: 1 of 4 videos failed (see the table)"
    report = json.loads(result.stdout)
    by_name = {f["name"]: f for f in report["files"]}
    assert [f["name"] for f in report["files"]] == ["broken", "walk0", "walk1", "walk2"]
    assert by_name["broken"]["status"] == "failed" and "cannot open video file" in by_name["broken"]["error"]
    for i, name in enumerate(["walk0", "walk1", "walk2"]):
        entry = by_name[name]
        assert entry["status"] == "done" and entry["frames"] == 24 + 6 * i and entry["tracks"] == 2
        rows = _rows(tables / f"{name}.csv")
        assert len(rows) == entry["faces"] and {int(r["frame"]) for r in rows} == set(range(entry["frames"]))
    assert report["totals"] == {**report["totals"], "files": 4, "done": 3, "failed": 1, "frames": 24 + 30 + 36}
    assert sorted(p.name for p in out.iterdir()) == ["walk0.mp4", "walk1.mp4", "walk2.mp4"]
    assert sorted(p.name for p in tables.iterdir()) == ["walk0.csv", "walk1.csv", "walk2.csv"]
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert all(set(r) == JSONL_KEYS for r in records)
    assert len(records) == sum(by_name[n]["faces"] for n in ("walk0", "walk1", "walk2"))
    assert [r["video"] for r in records] == sorted(r["video"] for r in records)  # input order
    assert {Path(r["video"]).name for r in records} == {"walk0.mp4", "walk1.mp4", "walk2.mp4"}
    assert not _partials(tmp_path)

    # Again: the finished videos are skipped (untouched), the bad one fails again on its own.
    stamps = {p: p.stat().st_mtime_ns for p in [*out.iterdir(), *tables.iterdir()]}
    again = run_agecam(*args)
    assert again.returncode == 1
    statuses = {f["name"]: f["status"] for f in json.loads(again.stdout)["files"]}
    assert statuses == {"broken": "failed", "walk0": "skipped", "walk1": "skipped", "walk2": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert [json.loads(line) for line in lines.read_text().splitlines()] == records

    # A missing output makes its video be redone; the table goes to stdout without --json.
    (tables / "walk1.csv").unlink()
    redo = run_agecam(*[a for a in args if a != "--json"])
    assert redo.returncode == 1
    table = {line.split()[0]: line for line in redo.stdout.splitlines()[1:-1]}
    assert "skipped" in table["walk0"] and "done" in table["walk1"] and "failed" in table["broken"]
    assert len(_rows(tables / "walk1.csv")) == by_name["walk1"]["faces"]


@pytest.mark.parametrize("make_args, message", [
    (lambda d: [d / "empty", "--csv-dir", d / "t"], "no video files in folder"),
    (lambda d: [str(d / "*.mkv"), "--csv-dir", d / "t"], "no file matches"),
    (lambda d: [d / "a" / "clip.mp4", d / "b" / "clip.mp4", "--csv-dir", d / "t"], "would both be written as clip"),
    (lambda d: [d / "a", "--csv-dir", d / "a" / "clip.mp4" / "tables"], "cannot make output folder"),
    (lambda d: [d / "a", "-o", d / "one.mp4"], "-o names a folder"),
    (lambda d: [d / "a", "--csv", d / "t.csv"], "use --csv-dir"),
    (lambda d: [d / "a"], "needs somewhere to put its results"),
    (lambda d: [d / "a", "0", "--csv-dir", d / "t"], "give 0 on its own"),
    (lambda d: [d / "a", "--csv-dir", d / "t", "--ray", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
])
def test_batch_bad_input_fails_in_one_line_and_writes_nothing(tmp_path, tiny_model_path, make_args, message):
    for folder in ("empty", "a", "b"):
        (tmp_path / folder).mkdir()
    for folder in ("a", "b"):
        _clip(tmp_path / folder / "clip.mp4", frames=6)
    before = sorted(tmp_path.rglob("*"))
    result = run_agecam("video", *make_args(tmp_path), "--model", tiny_model_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_a_batch_and_unfinished_videos_keep_no_output(tmp_path, tiny_model_path, workers):
    recordings, out = tmp_path / "recordings", tmp_path / "annotated"
    recordings.mkdir()
    _clip(recordings / "a_short.mp4", frames=12)
    for name in ("b_long", "c_long"):
        _clip(recordings / f"{name}.mp4", frames=900)
    args = [*AGECAM, "video", recordings, "-o", out, "--csv-dir", out, "--workers", workers, "--json",
            "--model", tiny_model_path]
    process = subprocess.Popen(list(map(str, args)), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        _wait_for(lambda: (out / "a_short.csv").is_file() or process.poll() is not None, 240)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    statuses = {f["name"]: f["status"] for f in json.loads(stdout)["files"]}
    assert statuses == {"a_short": "done", "b_long": "interrupted", "c_long": "interrupted"}
    assert sorted(p.name for p in out.iterdir()) == ["a_short.csv", "a_short.mp4"]  # no partial file either


def _wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.05)


def _stderr_on_a_terminal(args) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped); its return code and what the terminal got."""
    master, slave = pty.openpty()
    process = subprocess.Popen(list(map(str, args)), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=slave)
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    process.stdout.read()
    return process.wait(timeout=60), received.decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_only_and_not_with_quiet(tmp_path, tiny_model_path):
    clip = _clip(tmp_path / "walk.mp4", frames=30)
    command = ["video", clip, "--no-window", "--csv", tmp_path / "walk.csv", "--model", tiny_model_path]
    code, terminal = _stderr_on_a_terminal([*AGECAM, *command])
    assert code == 0, terminal
    assert "walk.mp4" in terminal and "30/30" in terminal and "frames" in terminal and "ETA" in terminal
    code, terminal = _stderr_on_a_terminal([*AGECAM, "--quiet", *command])
    assert code == 0 and "ETA" not in terminal and "30 frames in" in terminal
    piped = run_agecam(*command)
    assert piped.returncode == 0 and "ETA" not in piped.stderr and "\x1b[" not in piped.stderr


def test_evaluate_shows_progress_on_a_terminal(tmp_path, utk_dir, tiny_model_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for image in sorted(utk_dir.iterdir())[:40]:  # copies in a temporary folder, deleted with it
        (faces / image.name).write_bytes(image.read_bytes())
    code, terminal = _stderr_on_a_terminal([*AGECAM, "evaluate", "--data", faces, "--model", tiny_model_path])
    assert code == 0, terminal
    assert "predicting" in terminal and "40/40" in terminal and "faces" in terminal


@pytest.mark.slow
def test_ray_batch_gives_the_local_batch_outputs(tmp_path, clips, tiny_model_path):
    pytest.importorskip("ray", reason="Ray is the optional extra agecam[ray] (make test installs it)")
    results = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        extra = ["--ray"] if engine == "ray" else []
        result = run_agecam("video", clips / "walk*.mp4", "-o", out / "video", "--csv-dir", out / "csv",
                            "--jsonl", out / "faces.jsonl", "--workers", "2", "--json", "--model", tiny_model_path,
                            *extra)
        assert result.returncode == 0, result.stderr
        results[engine] = json.loads(result.stdout)
    for engine in results:
        assert [f["status"] for f in results[engine]["files"]] == ["done"] * 3
    assert all(f["worker"].startswith("worker-") for f in results["local"]["files"])
    assert {f["worker"] for f in results["ray"]["files"]}.isdisjoint({f["worker"] for f in results["local"]["files"]})
    for name in ("walk0", "walk1", "walk2"):
        assert (tmp_path / "ray" / "csv" / f"{name}.csv").read_bytes() == (tmp_path / "local" / "csv" / f"{name}.csv").read_bytes()
        assert _frames(tmp_path / "ray" / "video" / f"{name}.mp4") == _frames(tmp_path / "local" / "video" / f"{name}.mp4")
    assert (tmp_path / "ray" / "faces.jsonl").read_text() == (tmp_path / "local" / "faces.jsonl").read_text()


def _frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def test_ray_address_that_accepts_but_never_answers_fails_in_bounded_time(tmp_path, clips):
    pytest.importorskip("ray", reason="Ray is the optional extra agecam[ray] (make test installs it)")
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does), never answers
    port = listener.getsockname()[1]
    code = f"""
import sys
from pathlib import Path
from agecam.realtime.batch import BatchError, BatchOutputs, find_videos, plan_jobs
from agecam.realtime.ray_batch import RayConfig, run_on_ray
jobs = plan_jobs(find_videos([{str(clips / 'walk0.mp4')!r}]), BatchOutputs(csv_dir=Path({str(tmp_path / 't')!r})))
try:
    run_on_ray(jobs, None, RayConfig(address="127.0.0.1:{port}", join_timeout_s=2))
except BatchError as error:
    print(error)
    sys.exit(1)
"""
    try:
        # The stuck connection attempt stays in that process; it must still exit.
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert result.returncode == 1 and result.stdout.strip() == f"Ray at 127.0.0.1:{port} did not answer within 2 s"
    assert not list((tmp_path / "t").iterdir())


def test_batch_benchmark_reports_each_worker_count(tmp_path, tiny_model_path):
    saved = tmp_path / "batch.json"
    result = run_agecam("benchmark", "--batch", "--clips", "2", "--frames", "20", "--faces", "2", "--size", "320x240",
                        "--workers", "1,2", "--no-ray", "--model", tiny_model_path, "--save", saved)
    assert result.returncode == 0, result.stderr
    report = json.loads(saved.read_text())
    assert [(r["engine"], r["workers"], r["frames"]) for r in report["rows"]] == [("processes", 1, 40),
                                                                                 ("processes", 2, 40)]
    assert all(r["fps"] > 0 and r["wall_s"] > 0 for r in report["rows"])
    assert report["command"].startswith("agecam benchmark --batch") and report["cpu_cores"] >= 1

    from agecam.training.evaluation.report import batch_throughput_table

    table = batch_throughput_table(report)
    assert "| processes | 2 |" in table and "agecam benchmark --batch" in table


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended: nobody reaps it in some containers


def test_workers_whose_parent_is_killed_while_they_load_stop_and_write_nothing(tmp_path, tiny_model_path):
    recordings, out = tmp_path / "recordings", tmp_path / "out"
    recordings.mkdir()
    for i in range(4):
        _clip(recordings / f"v{i}.mp4", frames=60, seed=i)
    args = [*AGECAM, "video", recordings, "--csv-dir", out, "--workers", "2", "--model", tiny_model_path]
    process = subprocess.Popen(list(map(str, args)), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # The two workers exist (spawned, still importing the libraries): kill the parent now.
        _wait_for(lambda: len([c for c in _children_of(process.pid)
                               if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]) >= 2
                  or process.poll() is not None, 120)
        workers = [c for c in _children_of(process.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert process.poll() is None and len(workers) == 2
        process.kill()
        process.wait(timeout=30)
        _wait_for(lambda: not any(_running(pid) for pid in workers), 60)
    finally:
        process.kill()
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_worker_killed_mid_batch_fails_its_own_video_only(tmp_path, tiny_model_path, engine):
    """The local pool and Ray behave alike: the dead worker's video fails, a new worker takes the rest."""
    if engine == "ray":
        pytest.importorskip("ray", reason="Ray is the optional extra agecam[ray] (make test installs it)")
    recordings, out = tmp_path / "recordings", tmp_path / "csv"
    recordings.mkdir()
    for i in range(4):
        _clip(recordings / f"v{i}.mp4", frames=240, seed=i)
    args = [*AGECAM, "video", recordings, "--csv-dir", out, "--workers", "2", "--json", "--model", tiny_model_path,
            *(["--ray"] if engine == "ray" else [])]
    process = subprocess.Popen(list(map(str, args)), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        # A worker writing a video names its temporary file after its own pid: kill that worker.
        _wait_for(lambda: _partials(out) or process.poll() is not None, 240)
        assert process.poll() is None, process.communicate()
        victim = _partials(out)[0]
        os.kill(int(victim.name.split(".partial-")[1].split(".")[0]), signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 1, stderr
    statuses = {f["name"]: f["status"] for f in json.loads(stdout)["files"]}
    assert sorted(statuses.values()) == ["done", "done", "done", "failed"], statuses
    assert statuses[victim.name.split(".partial-")[0].lstrip(".")] == "failed"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        f"{name}.csv" for name, status in statuses.items() if status == "done")
