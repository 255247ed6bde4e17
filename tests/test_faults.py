"""Promises kept under faults (issue #25): whole-or-absent outputs on full disks, special files written
in place, 16-bit and EXIF-rotated images, a FIFO refused, user errors in one line."""

import contextlib
import io
import json
import os
import subprocess

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, run_agecam

pytestmark = pytest.mark.slow
ROOT = os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(folder, size):
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)])


@pytest.fixture(scope="module")
def clip300(tmp_path_factory, test_split_faces):
    from agecam.realtime.synthetic import SceneConfig, write_scene

    path = tmp_path_factory.mktemp("clip") / "clip300.mp4"
    return write_scene(path, [face for face, _, _ in test_split_faces], SceneConfig(frames=300, seed=5))


@pytest.mark.skipif(not ROOT, reason="mounting a tmpfs needs root (CI runs as root)")
def test_a_video_that_does_not_fit_the_disk_is_not_kept(tmp_path, clip300, tiny_model_path):
    with tmpfs(tmp_path / "full", "256k") as full:
        result = run_agecam("video", clip300, "--no-window", "-o", full / "o.avi", "--json", "--model", tiny_model_path)
        assert result.returncode == 1, result.stderr
        assert "could not finish writing" in result.stderr and "Traceback" not in result.stderr
        assert not os.listdir(full)


@pytest.mark.skipif(not ROOT, reason="mounting a tmpfs needs root (CI runs as root)")
def test_a_run_that_fails_on_one_output_keeps_none(tmp_path, clip300, tiny_model_path):
    out = tmp_path / "out"
    out.mkdir()
    with tmpfs(tmp_path / "full", "16k") as full:
        result = run_agecam("video", clip300, "--no-window", "-o", out / "o.mp4", "--csv", full / "o.csv",
                            "--model", tiny_model_path)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("agecam: error:") == 1, result.stderr
        assert not os.listdir(full) and not os.listdir(out)


@pytest.mark.parametrize("flag", ["--csv", "--jsonl"])
def test_a_link_to_a_redirected_stdout_is_written_in_place(tmp_path, clip300, tiny_model_path, flag):
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")  # what /dev/stdout is
    rows = tmp_path / "rows.txt"
    with open(rows, "w") as handle:
        done = subprocess.run([*AGECAM, "video", str(clip300), "--no-window", flag, str(link), "--model",
                               str(tiny_model_path)], cwd=REPO, stdout=handle, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"
    text = rows.read_text()
    assert text.startswith("frame,time_s") if flag == "--csv" else json.loads(text.splitlines()[0])["frame"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.txt", "stdout"]


@pytest.mark.skipif(not ROOT, reason="a private /dev needs root (CI runs as root)")
def test_dev_stdout_in_a_private_dev_stays_a_link(tmp_path, clip300, tiny_model_path):
    """As root in a private mount namespace (the machine's own /dev is never touched)."""
    nodes = " ".join(f"mknod -m 666 /dev/{name} c {major} {minor};" for name, major, minor in
                     (("null", 1, 3), ("zero", 1, 5), ("random", 1, 8), ("urandom", 1, 9)))
    script = (f"mount -t tmpfs tmpfs /dev && {nodes} mkdir /dev/shm && ln -s /proc/self/fd/1 /dev/stdout && "
              f"ln -s /proc/self/fd/2 /dev/stderr && {' '.join(AGECAM)} video {clip300} --no-window --csv /dev/stdout "
              f"--model {tiny_model_path} > {tmp_path / 'rows.csv'} && test -L /dev/stdout && echo still-a-link >&2")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    if done.returncode and "unshare failed" in done.stderr:
        pytest.skip("cannot make a private mount namespace here")
    assert done.returncode == 0, done.stderr
    assert "still-a-link" in done.stderr
    assert (tmp_path / "rows.csv").read_text().startswith("frame,time_s")




def test_16_bit_pngs_are_read(tmp_path, astronaut_bgr, tiny_model_path):
    colour, grey = tmp_path / "colour16.png", tmp_path / "grey16.png"
    cv2.imwrite(str(colour), astronaut_bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(grey), cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    scene = tmp_path / "scene16.png"
    cv2.imwrite(str(scene), (np.indices((120, 160)).sum(axis=0) * 300).astype(np.uint16))
    assert cv2.imread(str(colour), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    result = run_agecam("image", colour, grey, scene, "--json", "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    faces = [len(r["faces"]) for r in json.loads(result.stdout)]
    assert faces == [1, 1, 0]

    from agecam.core.images import decode_image

    assert np.abs(decode_image(colour.read_bytes()).astype(int) - astronaut_bgr).max() <= 1


def test_exif_orientation_is_applied(tmp_path, astronaut_bgr, tiny_model_path):
    from PIL import Image

    from agecam.core.images import decode_image

    # A phone's portrait photo: the pixels stored turned left, orientation 6 says "turn right to view".
    stored = cv2.rotate(astronaut_bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB)).save(buffer, "JPEG", quality=95, exif=exif)
    path = tmp_path / "phone.jpg"
    path.write_bytes(buffer.getvalue())
    upright = decode_image(path.read_bytes())
    assert upright.shape == astronaut_bgr.shape
    assert np.abs(upright.astype(int) - astronaut_bgr).mean() < 4
    out = tmp_path / "out"
    result = run_agecam("image", path, "--json", "-o", out, "--model", tiny_model_path)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["faces"]) == 1
    assert cv2.imread(str(out / "phone.jpg")).shape == astronaut_bgr.shape  # written upright


def test_a_fifo_is_refused_not_waited_on(tmp_path, astronaut_png, tiny_model_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    result = run_agecam("image", fifo, astronaut_png, "--json", "--model", tiny_model_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("agecam: error:") == 1 and "not a regular file" in result.stderr
    assert [len(r["faces"]) for r in json.loads(result.stdout)] == [1]


def test_ctrl_c_while_the_libraries_load_never_prints_a_traceback(astronaut_png, tiny_model_path):
    """A sweep of start-up moments: wherever the signal lands, one line at most and exit 130 (or a
    finished run, when the signal came after it ended)."""
    import signal
    import time

    for delay in (0.5, 0.8, 1.1, 1.4, 1.8, 2.2, 2.4, 2.6, 3.0, 3.5):
        process = subprocess.Popen([*AGECAM, "image", str(astronaut_png), "--model", str(tiny_model_path)], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)  # the moment swept, not a wait for an event: every moment must be fine
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode in (0, 130), (delay, process.returncode, stderr)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, (delay, stderr)
        if process.returncode == 130:
            assert stderr.strip().splitlines()[-1] == "agecam: interrupted", stderr


@pytest.mark.parametrize("case", ["csv-folder", "batch-jsonl-folder", "missing-argument"])
def test_usage_errors_are_one_line(tmp_path, clip300, tiny_model_path, case):
    folder = tmp_path / "D"
    folder.mkdir()
    args = {"csv-folder": ("video", clip300, "--no-window", "--csv", folder),
            "batch-jsonl-folder": ("video", clip300.parent, "--jsonl", folder),
            "missing-argument": ("image",)}[case]
    result = run_agecam(*args, "--model", tiny_model_path)
    assert result.returncode == 2
    assert result.stderr.startswith("agecam: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Usage:" not in result.stderr


def test_an_unreadable_image_is_reported_in_its_turn_not_as_a_usage_error():
    """Click no longer checks readability of still-image paths (an unreadable one stopped the whole
    command with a usage error); the reader reports it and the others are processed."""
    from agecam.cli import main

    (paths,) = [p for p in main.commands["image"].params if p.name == "paths"]
    assert paths.type.readable is False
