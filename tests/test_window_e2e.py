"""The real OpenCV window under Xvfb: the overlay is on screen, and q quits."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import AGECAM, REPO
from agecam.core.annotator import PALETTE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb not installed (CI installs it)"),
]
ARTIFACTS = REPO / "tests" / "artifacts"
DISPLAY = ":87"


@pytest.fixture(scope="module")
def xvfb():
    server = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path("/tmp/.X11-unix") / f"X{DISPLAY.lstrip(':')}"
    deadline = time.time() + 60
    while not socket.exists() and server.poll() is None and time.time() < deadline:  # the server is up
        time.sleep(0.1)
    if server.poll() is not None or not socket.exists():
        pytest.fail("Xvfb did not start")
    yield {**os.environ, "DISPLAY": DISPLAY, "QT_QPA_PLATFORM": "xcb"}
    server.terminate()
    server.wait(timeout=10)


def _grab():
    from PIL import ImageGrab

    return np.asarray(ImageGrab.grab(xdisplay=DISPLAY))[:, :, ::-1]  # RGB -> BGR


def _window_id(env):
    found = subprocess.run(["xdotool", "search", "--name", "^agecam$"], env=env, capture_output=True, text=True)
    ids = found.stdout.split()
    return ids[0] if ids else None


def test_window_shows_the_overlay_and_q_quits(xvfb, tmp_path, test_split_faces, tiny_model_path):
    from agecam.realtime.synthetic import SceneConfig, write_scene

    clip = write_scene(tmp_path / "window.mp4", [f for f, _, _ in test_split_faces], SceneConfig(frames=3000))
    process = subprocess.Popen([*AGECAM, "video", str(clip), "--model", str(tiny_model_path), "--show-fps"],
                               cwd=REPO, env=xvfb, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while _window_id(xvfb) is None and time.time() < deadline and process.poll() is None:
            time.sleep(0.5)
        window = _window_id(xvfb)
        assert window is not None, "the agecam window never appeared"
        import cv2

        # Wait for the event, not for a time: the overlay's box colours on screen (the synthetic scene
        # has none of them). A fixed 3 s wait saw a still-black window on a loaded machine.
        deadline = time.time() + 90
        while True:
            screen = _grab()
            hits = [np.all(np.abs(screen.astype(int) - colour) < 10, axis=2).sum() for colour in PALETTE[1:4]]
            if sum(h > 200 for h in hits) >= 2 or time.time() > deadline or process.poll() is not None:
                break
            time.sleep(0.5)
        ARTIFACTS.mkdir(exist_ok=True)
        cv2.imwrite(str(ARTIFACTS / "window_screenshot.png"), screen)
        assert sum(h > 200 for h in hits) >= 2, hits

        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=xvfb, timeout=10)
        subprocess.run(["xdotool", "key", "--window", window, "q"], env=xvfb, timeout=10)
        subprocess.run(["xdotool", "key", "q"], env=xvfb, timeout=10)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    frames = int(stderr.split(" frames")[0].split()[-1])
    assert 0 < frames < 3000  # quit by the key, long before the clip ended
