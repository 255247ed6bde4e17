"""``agecam serve`` end to end against a real server on a free loopback port (issue #48): a good picture,
each kind of bad request, the API token, the queue full, and the load benchmark on a few requests."""

import http.client
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import cv2
import numpy as np
import pytest

from conftest import AGECAM, REPO, run_agecam

pytestmark = pytest.mark.slow
TOKEN = "a-test-token-of-32-characters-ok"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_health(port: int, process=None, deadline_s: float = 120) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"the server exited: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=2) as answer:
                return json.loads(answer.read())
        except OSError:
            time.sleep(0.1)  # polling for the event: the server answering
    pytest.fail("the server never answered /v1/health")


def request(port, method, path, body=b"", headers=None, timeout=60):
    """``(status, JSON body, headers)`` of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        data = answer.read()
        return answer.status, json.loads(data) if data else None, dict(answer.getheaders())
    finally:
        connection.close()


def multipart(fields: dict, filename="photo.jpg", data=b"") -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture(scope="module")
def photo(astronaut_bgr) -> bytes:
    return cv2.imencode(".jpg", astronaut_bgr)[1].tobytes()


@pytest.fixture(scope="module")
def server(tiny_model_path, tmp_path_factory):
    """The real CLI serving the tiny model, with an API token, on a free loopback port."""
    port = _free_port()
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text(TOKEN + "\n")
    process = subprocess.Popen([*AGECAM, "serve", "--port", str(port), "--model", str(tiny_model_path), "--token-file",
                                str(token_file), "--max-body-mb", "2", "--workers", "2"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_health(port, process)
    yield port
    process.terminate()
    process.wait(timeout=30)
    assert "Traceback" not in process.stderr.read()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_picture_gets_what_agecam_image_prints(server, photo, astronaut_png, tiny_model_path):
    status, body, _ = request(server, "POST", "/v1/ages", photo, {**AUTH, "Content-Type": "image/jpeg"})
    assert status == 200 and len(body["faces"]) == 1
    printed = json.loads(run_agecam("image", astronaut_png, "--json", "--model", tiny_model_path).stdout)[0]
    assert body["faces"][0]["box"] == pytest.approx(printed["faces"][0]["box"], abs=2)
    form, headers = multipart({}, "astronaut.jpg", photo)
    status, body, _ = request(server, "POST", "/v1/ages", form, {**AUTH, **headers})
    assert status == 200 and body["path"] == "astronaut.jpg" and len(body["faces"]) == 1


@pytest.mark.parametrize("case, status", [
    ("empty", 400), ("truncated", 415), ("text named .jpg", 415), ("wrong type", 415), ("png bomb", 413),
    ("over the body limit", 413), ("no token", 401), ("wrong token", 401), ("bad gate", 422), ("gate out of range", 422),
    ("another model", 422), ("form without file", 400), ("malformed form", 400)])
def test_each_bad_request_gets_its_status_and_a_json_error(server, photo, case, status):
    raw = {**AUTH, "Content-Type": "image/jpeg"}
    bomb = cv2.imencode(".png", np.zeros((8000, 8000), np.uint8))[1].tobytes()  # 64 MP in 60 kB
    form, form_headers = multipart({"note": "x"}, data=b"")
    no_file = form.replace(b'name="file"', b'name="other"')
    requests = {
        "empty": ("/v1/ages", b"", raw), "truncated": ("/v1/ages", photo[:2000], raw),
        "text named .jpg": ("/v1/ages", b"just some text, not a picture", raw),
        "wrong type": ("/v1/ages", photo, {**AUTH, "Content-Type": "text/plain"}),
        "png bomb": ("/v1/ages", bomb, {**AUTH, "Content-Type": "image/png"}),
        "over the body limit": ("/v1/ages", b"\xff" * 3_000_000, raw),
        "no token": ("/v1/ages", photo, {"Content-Type": "image/jpeg"}),
        "wrong token": ("/v1/ages", photo, {"Authorization": "Bearer " + "x" * 32, "Content-Type": "image/jpeg"}),
        "bad gate": ("/v1/ages?age_gate=old", photo, raw), "gate out of range": ("/v1/ages?age_gate=300", photo, raw),
        "another model": ("/v1/ages?model=cnn", photo, raw),
        "form without file": ("/v1/ages", no_file, {**AUTH, **form_headers}),
        "malformed form": ("/v1/ages", b"--nonsense", {**AUTH, "Content-Type": "multipart/form-data; boundary=zz"}),
    }
    path, body, headers = requests[case]
    got, answer, _ = request(server, "POST", path, body, headers)
    assert got == status, answer
    assert isinstance(answer["error"], str) and "Traceback" not in answer["error"]
    assert request(server, "GET", "/v1/health")[0] == 200  # still answering


def test_a_slow_upload_holds_up_no_one_else(server, photo):
    with socket.create_connection(("127.0.0.1", server), timeout=10) as slow:
        slow.sendall(b"POST /v1/ages HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n" + photo[:100])  # then nothing more
        status, body, _ = request(server, "POST", "/v1/ages", photo, {**AUTH, "Content-Type": "image/jpeg"})
        assert status == 200 and len(body["faces"]) == 1
        assert request(server, "GET", "/v1/health")[0] == 200


def test_health_needs_no_token_but_models_does(server):
    status, health, _ = request(server, "GET", "/v1/health")
    assert status == 200 and health["status"] == "ok" and health["workers"] == 1  # a Keras model: one worker
    assert request(server, "GET", "/v1/models")[0] == 401
    status, models, _ = request(server, "GET", "/v1/models", headers=AUTH)
    assert status == 200 and models["served"] == "tiny"
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.request("GET", "/docs")  # the API's description is public; its answers are not
    assert connection.getresponse().status == 200
    connection.close()
    assert "/v1/ages" in request(server, "GET", "/openapi.json")[1]["paths"]


def test_binding_beyond_loopback_needs_a_token(tiny_model_path):
    result = run_agecam("serve", "--host", "0.0.0.0", "--port", _free_port(), "--model", tiny_model_path,
                        env={k: v for k, v in os.environ.items() if k != "AGECAM_API_TOKEN"}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("agecam: error: serving on 0.0.0.0")


class _Blocking:
    """Pipelines whose work waits for ``release``: requests stay inside as long as a test wants."""

    def __init__(self):
        self.release, self.cams = threading.Event(), [object()]
        self.model = type("Model", (), {"name": "held", "gate_bounds": None})()

    def age(self, image, gate, name=""):
        self.release.wait(60)
        return {"path": name, "faces": []}


def test_a_full_queue_answers_503_with_retry_after(photo):
    import uvicorn

    from agecam.realtime.serve import ServeConfig, create_app

    pipelines, port = _Blocking(), _free_port()
    app = create_app(pipelines, ServeConfig(port=port, queue=0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_for_health(port)
    first: dict = {}
    held = threading.Thread(target=lambda: first.update(answer=request(port, "POST", "/v1/ages", photo)))
    held.start()
    deadline = time.monotonic() + 30
    while request(port, "GET", "/v1/health")[1]["inside"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the event: the first request inside
    status, body, headers = request(port, "POST", "/v1/ages", photo)
    pipelines.release.set()
    held.join(30)
    server.should_exit = True
    thread.join(30)
    assert status == 503 and headers.get("retry-after") == "1" and "busy" in body["error"]
    assert first["answer"][0] == 200


def test_the_serve_benchmark_reports_its_load_run(tmp_path, tiny_model_path, astronaut_bgr):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"{i}.jpg"), astronaut_bgr)
    saved = tmp_path / "serve.json"
    result = run_agecam("benchmark", "--serve", photos, "--requests", 12, "--concurrency", "1,4", "--model",
                        tiny_model_path, "--save", saved, timeout=600)
    assert result.returncode == 0, result.stderr
    record = json.loads(saved.read_text())
    assert [row["concurrency"] for row in record["rows"]] == [1, 4]
    for row in record["rows"]:
        assert row["requests"] == 12 and row["errors"] == 0 and row["ok"] + row["busy"] == 12
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert record["command"].startswith("agecam benchmark --serve")
