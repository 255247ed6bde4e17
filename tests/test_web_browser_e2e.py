"""The real web app in a real browser: a fake camera streams faces, annotated frames come back."""

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, shipped_model_available
from agecam.core.annotator import PALETTE

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (CI installs it)"),
]


def write_y4m(path, frames):
    """A raw YUV4MPEG2 (4:2:0) clip, the format Chromium's fake camera reads."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            handle.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web_app(tmp_path_factory, tiny_model_path):
    env = {**os.environ}
    if not shipped_model_available():
        models = tmp_path_factory.mktemp("models")
        shutil.copy(tiny_model_path, models / "cnn.keras")
        env["AGECAM_MODELS"] = str(models)
    port = _free_port()
    log = open(tmp_path_factory.mktemp("web") / "server.log", "w")
    server = subprocess.Popen([*AGECAM, "web", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("the web app never answered /_stcore/health")
    yield url
    server.terminate()
    server.wait(timeout=20)
    log.close()
    # Every request the tests made was answered without a server-side error. What Streamlit prints
    # after "Stopping..." is its own shutdown racing a session's script thread (seen once under
    # load: "Event loop is closed"), not an answer to a request.
    served = Path(log.name).read_text().split("Stopping...")[0]
    assert "Traceback" not in served, served[-3000:]
    # agecam web is the server itself: once it is stopped, nothing may keep serving the port.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)


def test_health_and_every_page_served(web_app):
    assert urllib.request.urlopen(f"{web_app}/_stcore/health", timeout=5).read() == b"ok"
    for path in ("", "live", "image", "performance", "insights"):
        assert urllib.request.urlopen(f"{web_app}/{path}", timeout=5).status == 200
    # What a browser asks for with every page (favicon.png answered 500 with Starlette >= 1.8).
    for path in ("favicon.png", "manifest.json"):
        assert urllib.request.urlopen(f"{web_app}/{path}", timeout=5).status == 200, path


def test_live_page_streams_annotated_frames(web_app, tmp_path, test_split_faces):
    from playwright.sync_api import sync_playwright

    from agecam.realtime.synthetic import SceneConfig, render_scene

    clip = tmp_path / "camera.y4m"
    write_y4m(clip, [frame for frame, _ in render_scene([f for f, _, _ in test_split_faces],
                                                        SceneConfig(frames=45, fps=15, face_size=140))])
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{web_app}/live", wait_until="networkidle")
        component = page.frame_locator("iframe").first
        component.get_by_role("button", name="START").click(timeout=60_000)
        # The page reports frames annotated and the ages on them, from the server-side pipeline.
        status = page.get_by_text(re.compile(r"Frames annotated: \d+"))
        deadline, frames, text = time.time() + 120, 0, ""
        panel = page.get_by_text(re.compile(r"seen since start: \d+"))
        people, rows = "", []

        def person_rows():  # the people panel beside the stream: a row per person in view
            return [r for r in rows[1:] if re.match(r"#\d+\s+\d+", r)]

        while time.time() < deadline and not (frames >= 20 and "#" in text.split("Ages:")[-1]
                                              and re.search(r"seen since start: [1-9]", people) and person_rows()):
            try:
                text = status.first.inner_text(timeout=2000)
                frames = int(re.search(r"Frames annotated: (\d+)", text).group(1))
                people = panel.first.inner_text(timeout=2000)
                rows = page.locator("table").filter(has_text="80% range").first.locator("tr").all_inner_texts()
            except Exception:  # not on the page yet: the stream is still connecting
                pass
            page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "live_page.png"))
        video = component.locator("video").first
        video.screenshot(path=str(ARTIFACTS / "live_video.png"))
        browser.close()
    assert frames >= 20, f"only {frames} frames came back: {text!r}"
    assert re.search(r"People in view: \d+ · seen since start: [1-9]", people), people
    assert person_rows(), rows
    assert re.search(r"Ages: \*?\*?#\d+ \d+", text) or re.search(r"#\d+ \d+", text), text
    # What the browser shows is the annotated stream: box colours (shifted a little by the video
    # codec) cover many pixels of the video, and the generated scene itself has none of them.
    shown = cv2.imread(str(ARTIFACTS / "live_video.png")).astype(int)
    hits = [int(np.all(np.abs(shown - colour) < 45, axis=2).sum()) for colour in PALETTE]
    assert sum(h > 300 for h in hits) >= 2, hits


def test_every_page_reads_well_in_a_browser(web_app, tmp_path, astronaut_png):
    """Each page with what issue #48 asked of it; a screenshot of each is left in tests/artifacts."""
    from playwright.sync_api import sync_playwright

    second = tmp_path / "second.png"
    second.write_bytes(astronaut_png.read_bytes())
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        texts = {}
        for path, wanted in (("", "agecam"), ("live", "Press START below and allow the camera"),
                             ("performance", "Age assurance"), ("insights", "Training insights"),
                             ("image", "Upload images")):
            page.goto(f"{web_app}/{path}", wait_until="networkidle")
            page.get_by_text(wanted).first.wait_for(timeout=60_000)
            texts[path] = page.locator("section.main, [data-testid='stMain']").first.inner_text(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / f"page_{path or 'overview'}.png"), full_page=True)
        # Several uploads at once: every picture aged, one table, a CSV to take away.
        page.locator("input[type=file]").set_input_files([str(astronaut_png), str(second)])
        page.get_by_text("Download the table (CSV)").wait_for(timeout=60_000)
        table = page.locator("[data-testid='stDataFrame']").first
        table.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "page_image_uploads.png"), full_page=True)
        browser.close()
    assert "agecam evaluate" not in texts["insights"] and "earlier_stages" not in texts["insights"]
    assert "1 epochs" not in texts["insights"]
    assert "machine" in texts["performance"]


def test_an_upload_name_is_shown_as_text(web_app, tmp_path):
    """A file name is the user's text: it must not turn into a link or formatting on the page (#49)."""
    from playwright.sync_api import sync_playwright

    name = "evil_[click](https:evil.example)_<b>bold<b>_**star**.jpg"
    upload = tmp_path / name
    upload.write_bytes(b"not an image at all")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{web_app}/image", wait_until="networkidle")
        page.locator("input[type=file]").set_input_files(str(upload))
        alert = page.locator("[data-testid='stAlert']").filter(has_text="not a readable image").first
        alert.wait_for(timeout=60_000)
        text, html = alert.inner_text(), alert.inner_html()
        browser.close()
    assert name in text, text
    assert not any(tag in html for tag in ("<a ", "<strong", "<em", "<b>")), html


def test_report_page_opens_in_a_browser(tmp_path):
    """The page `agecam video --report` writes is self-contained: its figures load from the file alone."""
    from playwright.sync_api import sync_playwright

    from agecam.core.people import TrackLog
    from agecam.core.detections import Detections
    from agecam.realtime.run_report import report_html

    log = TrackLog()
    for i in range(10):
        log.add(Detections(xyxy=[[0, 0, 20, 20], [30, 0, 50, 20]], tracker_id=[1, 2], raw_age=[30.0 + i, 12.0],
                           age=[30.0, 12.0]), i / 10)
    page_path = tmp_path / "report.html"
    page_path.write_text(report_html(log.people(), {"frames": 10, "people": 2}))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(page_path.as_uri(), wait_until="load")
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
        people = page.locator("#people tr").all_inner_texts()
        browser.close()
    assert len(widths) == 2 and min(widths) > 300, widths  # ages and presence, drawn
    assert len(people) == 3 and people[1].split()[0] == "1" and people[2].split()[0] == "2"
