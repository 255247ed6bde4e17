"""The real OpenCV window under Xvfb: the overlay is on screen, and q quits."""

import os
import shutil
import subprocess
import time

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
    time.sleep(1.0)
    if server.poll() is not None:
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
        time.sleep(3.0)  # let a few annotated frames be drawn
        screen = _grab()
        ARTIFACTS.mkdir(exist_ok=True)
        import cv2

        cv2.imwrite(str(ARTIFACTS / "window_screenshot.png"), screen)
        # The overlay's box colours are on screen (the synthetic scene has none of them).
        hits = [np.all(np.abs(screen.astype(int) - colour) < 10, axis=2).sum() for colour in PALETTE[1:4]]
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
