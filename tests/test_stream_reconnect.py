"""Network streams: a stream that drops is reopened with back-off; one that never answers fails in
bounded time. Against MJPEG-over-HTTP servers started and stopped here, on the loopback interface only."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import socketserver
import subprocess
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, run_agecam

pytestmark = pytest.mark.slow


class MjpegServer:
    """``http://127.0.0.1:PORT/stream.mjpg``: each of the first ``connections`` clients gets
    ``frames`` JPEG frames, then the connection is closed (the stream drops); later clients are
    turned away with 503. ``served_all`` is set once the last of them has had its frames.

    Example::

        with MjpegServer(frames=20, connections=1) as server:
            run(server.url)
    """

    def __init__(self, frames: int, connections: int, port: int = 0):
        self.frames, self.connections, self.served = frames, connections, 0
        self.served_all, self.turned_away = threading.Event(), threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.served += 1
                if owner.served > owner.connections:
                    self.send_error(503)
                    owner.turned_away.set()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for index in range(owner.frames):
                    image = np.full((120, 160, 3), (index * 9) % 255, np.uint8)
                    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                     + jpeg + b"\r\n")
                    time.sleep(1 / 30)  # a camera's pace, so the reader sees a live stream
                if owner.served == owner.connections:
                    owner.served_all.set()

            def log_message(self, *args):
                pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True  # a restart takes the same port
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegServer":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "MjpegServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def test_a_stream_whose_server_stops_and_restarts_is_reopened_then_given_up(tmp_path, tiny_model_path):
    """The camera's server stops after a while (the stream drops) and starts again on the same port: the
    stream is reopened and goes on. The second server turns the next attempts away: agecam gives up
    after --reconnect attempts and keeps the frames it processed."""
    table = tmp_path / "faces.csv"
    first = MjpegServer(frames=20, connections=1).start()
    command = [*AGECAM, "-v", "video", first.url, "--no-window", "--csv", table, "--json", "--reconnect", "2",
               "--model", tiny_model_path]
    process = subprocess.Popen(list(map(str, command)), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert first.served_all.wait(timeout=120), "the first server was never read"
        first.stop()  # the camera goes away...
        with MjpegServer(frames=20, connections=1, port=first.port) as second:  # ...and comes back
            stdout, stderr = process.communicate(timeout=120)
            assert second.served_all.is_set() and second.turned_away.is_set()
    finally:
        process.kill()
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["reconnects"] == 1 and summary["frames"] >= 2
    assert "reconnect attempt 1 of 2" in stderr and "reconnected (attempt" in stderr
    assert "reconnect attempt 2 of 2" in stderr
    assert stderr.strip().splitlines()[-1] == (
        "agecam: error: the stream broke and did not come back after 2 reconnect attempts; outputs hold the "
        f"{summary['frames']} frames processed")
    assert table.read_text().startswith("frame,time_s,track_id")  # the frames processed, kept


def test_a_stream_that_never_answers_fails_within_the_open_timeout(tiny_model_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel accepts connections; nothing ever answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/stream.mjpg"
    try:
        result = run_agecam("video", url, "--no-window", "--json", "--model", tiny_model_path, timeout=120)
    finally:
        listener.close()
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"agecam: error: cannot open stream within 5 s: {url}"


def _faststart_mp4(path, frames: int = 90):
    """A generated clip with its index first (as web servers serve mp4), so it plays from a prefix."""
    import av

    from agecam.realtime.synthetic import SceneConfig, astronaut_face, write_scene

    raw = write_scene(path.with_name("raw.mp4"), [astronaut_face()], SceneConfig(width=320, height=240, frames=frames))
    with av.open(str(raw)) as source, av.open(str(path), "w", options={"movflags": "faststart"}) as target:
        video = source.streams.video[0]
        out = target.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is not None:
                packet.stream = out
                target.mux(packet)
    return path


class CutShortServer:
    """Serves one file with its whole Content-Length announced but only its first half sent, then the
    connection closed: a download broken off. ``requests`` counts the connections."""

    def __init__(self, data: bytes):
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(data[: len(data) // 2])
                self.close_connection = True

            def log_message(self, *args):
                pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/clip.mp4"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def test_a_file_stream_cut_short_is_reconnected_then_fails_keeping_its_frames(tmp_path, tiny_model_path):
    clip = _faststart_mp4(tmp_path / "clip.mp4")
    server = CutShortServer(clip.read_bytes())
    try:
        table = tmp_path / "faces.csv"
        result = run_agecam("video", server.url, "--no-window", "--csv", table, "--reconnect", "1", "--model",
                            tiny_model_path, timeout=120)
    finally:
        server.close()
    assert result.returncode == 1, result.stderr
    assert server.requests == 2  # the first connection and one reconnect
    errors = [line for line in result.stderr.splitlines() if line.startswith("agecam: error:")]
    assert len(errors) == 1 and "did not come back" in errors[0] and "Traceback" not in result.stderr
    rows = table.read_text().splitlines()
    frames = {int(line.split(",")[0]) for line in rows[1:]}
    assert rows[0].startswith("frame,") and frames and max(frames) < 90
    # Every frame the received half decodes to is kept (the face is in each), not only the few a
    # live reader would have had time for (issue #49: 2 of 25).
    decodable = _frames_decodable(clip.read_bytes()[: clip.stat().st_size // 2])
    assert decodable >= 10 and decodable - 2 <= len(frames) <= decodable


def _frames_decodable(data: bytes) -> int:
    """How many frames PyAV decodes from ``data`` (a file cut short)."""
    import io

    import av

    count = 0
    with contextlib.suppress(av.FFmpegError, OSError), av.open(io.BytesIO(data)) as container:
        for packet in container.demux(container.streams.video[0]):
            with contextlib.suppress(av.FFmpegError):
                count += len(packet.decode())
    return count


def test_a_stream_that_keeps_breaking_after_each_reconnect_is_given_up(tmp_path, tiny_model_path):
    """Every connection brings a moment of frames, then drops: each reconnect succeeds, yet the
    stream never runs steadily, so the attempts add up across drops and the run ends (issue #49:
    it was counted as attempt 1 again each time and retried forever)."""
    table = tmp_path / "faces.csv"
    with MjpegServer(frames=20, connections=1000) as server:
        result = run_agecam("-v", "video", server.url, "--no-window", "--csv", table, "--json", "--reconnect", "2",
                            "--model", tiny_model_path, timeout=120)
        served = server.served
    assert result.returncode == 1, result.stderr
    assert served == 3  # the first connection and two reconnects, no more
    summary = json.loads(result.stdout)
    assert summary["reconnects"] == 2
    assert "reconnect attempt 2 of 2" in result.stderr and "attempt 3" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "agecam: error: the stream kept breaking: 2 reconnect attempts, none followed by 30 s of steady frames; "
        f"outputs hold the {summary['frames']} frames processed")
