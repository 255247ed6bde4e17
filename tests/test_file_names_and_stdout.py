"""Issue #49's promises, through the real CLI: file names that are not valid UTF-8 reach every writer
(OpenCV crashed on them), data on standard output stays parsable, results printed to a closed or full
standard output are an error, a batch with nothing finished leaves no combined file, a refused
``agecam web`` says only why, and ``train --resume`` says what it resumes or that it cannot."""

import json
import os
import socket
import subprocess

import pytest

from conftest import AGECAM, REPO, run_agecam

pytestmark = pytest.mark.slow

ODD = "\udcff\udce9"  # the bytes \xff\xe9, as Python carries them in a str
ODD_TEXT = "\\xff\\xe9"  # how text outputs write them (core.file_names)


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory, astronaut_bgr):
    """A folder holding a picture and a folder holding a clip, each named with non-UTF-8 bytes."""
    import cv2

    from agecam.realtime.synthetic import SceneConfig, astronaut_face, write_scene

    root = tmp_path_factory.mktemp("odd")
    (root / "pictures").mkdir()
    picture = root / "pictures" / f"astro_{ODD}.jpg"
    picture.write_bytes(cv2.imencode(".jpg", astronaut_bgr)[1].tobytes())
    (root / "clips").mkdir()
    clip = write_scene(root / "clips" / "c.mp4", [astronaut_face()], SceneConfig(frames=12))
    odd_clip = clip.rename(clip.with_name(f"clip_{ODD}.mp4"))
    return root, picture, odd_clip


def _no_crash(result):
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr


def test_an_odd_picture_name_reaches_every_output(odd_inputs, tmp_path, tiny_model_path):
    root, picture, _ = odd_inputs
    out = tmp_path / f"out_{ODD}"  # the output folder's own name is odd too
    result = run_agecam("image", root / "pictures", "-o", out, "--csv", tmp_path / "f.csv", "--json",
                        "--model", tiny_model_path)
    _no_crash(result)
    assert os.listdir(os.fsencode(out)) == [os.fsencode(picture.name)]  # the same bytes as the input
    faces = json.loads(result.stdout)
    assert faces[0]["path"].endswith(f"astro_{ODD_TEXT}.jpg") and faces[0]["faces"]
    rows = (tmp_path / "f.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 2 and f"astro_{ODD_TEXT}.jpg" in rows[1]


def test_an_odd_video_name_reaches_every_output(odd_inputs, tmp_path, tiny_model_path):
    _, _, clip = odd_inputs
    video = tmp_path / f"out_{ODD}.mp4"
    result = run_agecam("video", clip, "--no-window", "-o", video, "--csv", tmp_path / "f.csv", "--jsonl",
                        tmp_path / "f.jsonl", "--people", tmp_path / "people.csv", "--report", tmp_path / "report",
                        "--json", "--model", tiny_model_path)
    _no_crash(result)
    assert video.is_file() and json.loads(result.stdout)["frames"] == 12
    first = json.loads((tmp_path / "f.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["video"].endswith(f"clip_{ODD_TEXT}.mp4")
    assert (tmp_path / "report" / "report.html").is_file()


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_an_odd_video_name_through_a_batch(odd_inputs, tmp_path, tiny_model_path, engine):
    if engine == "ray":
        pytest.importorskip("ray", reason="Ray is the optional extra agecam[ray] (make test installs it)")
    root, _, clip = odd_inputs
    result = run_agecam("video", root / "clips", "-o", tmp_path / "v", "--csv-dir", tmp_path / "csv", "--jsonl",
                        tmp_path / "all.jsonl", "--people-dir", tmp_path / "people", "--workers", 1, "--json",
                        *(["--ray"] if engine == "ray" else []), "--model", tiny_model_path, timeout=600)
    _no_crash(result)
    files = json.loads(result.stdout)["files"]
    assert [f["status"] for f in files] == ["done"] and files[0]["name"] == f"clip_{ODD_TEXT}"
    assert os.listdir(os.fsencode(tmp_path / "v")) == [os.fsencode(clip.name)]
    assert os.listdir(os.fsencode(tmp_path / "csv")) == [os.fsencode(clip.with_suffix(".csv").name)]
    first = json.loads((tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["video"].endswith(f"clip_{ODD_TEXT}.mp4")


def test_the_summary_goes_to_stderr_when_the_csv_goes_to_stdout(astronaut_png, tiny_model_path):
    result = run_agecam("image", astronaut_png, "--csv", "/dev/stdout", "--model", tiny_model_path)
    _no_crash(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("path,face,") and all(line.startswith(str(astronaut_png)) for line in lines[1:])
    assert f"{astronaut_png}: " in result.stderr  # the per-image line, out of the data's way


def test_results_printed_to_a_closed_stdout_are_an_error(astronaut_png, tiny_model_path):
    command = [*AGECAM, "image", str(astronaut_png), "--json", "--model", str(tiny_model_path)]
    result = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            timeout=300, preexec_fn=lambda: os.close(1))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("agecam: error: standard output is closed")
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_results_printed_to_a_full_disk_are_an_error(astronaut_png, tiny_model_path):
    with open("/dev/full", "w") as full:
        result = subprocess.run([*AGECAM, "image", str(astronaut_png), "--json", "--model", str(tiny_model_path)],
                                cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "agecam: error: cannot write the results to standard output: No space left on device"]


def test_a_batch_with_no_video_finished_leaves_no_combined_files(tmp_path, tiny_model_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(b"not a video")
    result = run_agecam("video", folder, "--jsonl", tmp_path / "all.jsonl", "--people-dir", tmp_path / "people",
                        "--workers", 1, "--model", tiny_model_path)
    assert result.returncode == 1 and "2 of 2 videos failed" in result.stderr
    assert not (tmp_path / "all.jsonl").exists() and not (tmp_path / "people" / "people.csv").exists()


def test_a_refused_web_app_says_only_why():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_agecam("web", "--port", port, "--host", "127.0.0.1", timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"agecam: error: port {port} on 127.0.0.1 is in use (another agecam web?); choose another with --port"]


def test_resume_with_nothing_to_resume_says_so(tmp_path):
    result = run_agecam("train", "--data", tmp_path, "--out", tmp_path / "new", "--resume")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"agecam: error: nothing to resume: {tmp_path / 'new.run'} holds no backup of an earlier run (train "
        "without --resume to start one, or give its --run-dir)"]


def test_resume_from_a_damaged_backup_names_it_and_says_what_to_do(tmp_path):
    backup = tmp_path / "new.run" / "backup"
    backup.mkdir(parents=True)
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        (backup / name).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # an HDF5 signature, cut short
    result = run_agecam("train", "--data", tmp_path, "--out", tmp_path / "new", "--resume")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"agecam: error: cannot resume: the backup {backup / 'latest.weights.h5'} is damaged")
    assert f"delete {backup} and train again without --resume" in line
