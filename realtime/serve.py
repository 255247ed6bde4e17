"""``agecam serve``: the ages of the faces in a picture, over HTTP (FastAPI on Uvicorn).

- ``POST /v1/ages``: the picture as the raw body (``Content-Type: image/jpeg``, ``image/png``, ...) or as
  the ``file`` field of a multipart form; optional ``age_gate`` (1-100) and ``model`` (the served one)
  as query parameters or form fields. Answers what ``agecam image --json`` prints for one picture:
  ``{"path": NAME, "faces": [{"box", "score", "age", "age_range", "age_gate", "quality"}, ...]}``.
- ``GET /v1/health``: ``{"status": "ok", ...}`` with the workers busy and the requests counted.
- ``GET /v1/models``: the shipped models, the default, the one served and each one's measured MAE.
- ``GET /docs``: the OpenAPI page.

The model is loaded once; ``workers`` pipelines (a detector of their own each) share it, one request
each at a time. Limits, each answered with a JSON ``{"error": ...}`` and never a stack trace: a body
over ``max_body_bytes`` (413, before it is read whole), a picture over ``max_pixels`` (413), a body that
is not an image (415), more requests than ``workers + queue`` at once (503 with ``Retry-After``), a
request taking over ``timeout_s`` (504). Bound to anything but loopback, every request but the
health check and the API's description need the API token (``Authorization: Bearer TOKEN``, compared in constant time: 401
without it). Nothing received is stored or logged: only counts are kept.

Example::

    curl -s --data-binary @photo.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8000/v1/ages
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

from agecam.core.analyzer import AgeCam
from agecam.core.images import ImageError, ImageLimits, decode_image
from .stills import StillResult

log = logging.getLogger(__name__)

TOKEN_ENV = "AGECAM_API_TOKEN"
RAW_TYPES = ("image/", "application/octet-stream")
PUBLIC_PATHS = ("/v1/health", "/docs", "/openapi.json")  # no data in them: no token needed


@dataclass(frozen=True)
class ServeConfig:
    """Where the API listens and what it accepts (``agecam serve`` options)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    queue: int = 16  # requests waiting for a pipeline, beyond those being worked on
    timeout_s: float = 30.0
    token: str | None = None

    def __post_init__(self):
        if self.token is None and not is_loopback(self.host):
            raise ValueError(f"serving on {self.host} (not this machine alone) needs an API token: give "
                             f"--token-file FILE or set {TOKEN_ENV}")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("the API token must be at least 16 characters")
        if self.max_body_bytes < 1 or self.queue < 0 or self.timeout_s <= 0:
            raise ValueError("body limit, queue and timeout must be positive")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Pipelines:
    """Prepared pipelines sharing one model, each lent to one request at a time.

    Example::

        pipelines = Pipelines([cam_a, cam_b])
        result = pipelines.age(image, gate=18)
    """

    def __init__(self, cams: Sequence[AgeCam]):
        self.cams = list(cams)
        self.model = self.cams[0].model
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for cam in self.cams:
            self._idle.put(cam)

    def age(self, image, gate: int | None, name: str = "") -> dict:
        cam = self._idle.get()
        try:
            cam.set_gate(gate)
            return StillResult(name, cam.get_image(image)).as_json()
        finally:
            self._idle.put(cam)

    def close(self) -> None:
        for cam in self.cams:
            cam.close()


class _Admission:
    """At most ``limit`` requests inside at once; the rest are turned away (503)."""

    def __init__(self, limit: int):
        self.limit, self.inside = limit, 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.inside >= self.limit:
                return False
            self.inside += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


class BodyTooLarge(Exception):
    pass


def limit_body(app, max_bytes: int):
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 as soon as it is known to be,
    from its ``Content-Length`` or while it arrives, never read whole."""
    async def middleware(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = JSONResponse({"error": f"the body is over the limit of {max_bytes / 1e6:g} MB"}, status_code=413)
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            return await too_large(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge()
            return message

        await app(scope, counted, send)  # the reader of the body answers BodyTooLarge (create_app)

    return middleware


def create_app(pipelines: Pipelines, config: ServeConfig, models: dict | None = None):
    """The FastAPI application serving ``pipelines``; ``models``: the shipped models' cards by name
    (``GET /v1/models``)."""
    served = pipelines.model.name
    admission = _Admission(len(pipelines.cams) + config.queue)
    counts: Counter = Counter()
    limits = ImageLimits(max_pixels=config.max_pixels, max_bytes=config.max_body_bytes)
    app = FastAPI(title="agecam", version="1", summary="Apparent age of every face in a picture.",
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        counts[status] += 1
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.middleware("http")
    async def authorise(request: Request, call_next):
        if config.token is not None and request.url.path not in PUBLIC_PATHS:
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), config.token.encode()):
                return error(401, "a valid API token is needed: Authorization: Bearer TOKEN",
                             {"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(Exception)
    async def internal_error(request, exc):  # a bug: said in one line, without the trace, and counted
        log.error("request failed: %s", type(exc).__name__)
        return error(500, "internal error")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        return error(422, f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request")

    @app.get("/v1/health", summary="Whether the server answers, and its counts")
    async def health():
        return {"status": "ok", "model": served, "workers": len(pipelines.cams), "inside": admission.inside,
                "limit": admission.limit, "answered": {str(k): v for k, v in sorted(counts.items())}}

    @app.get("/v1/models", summary="The shipped models, the default and the one served, with measured MAE")
    async def list_models():
        from agecam.core.age_model import default_model_name

        cards = models or {}
        return {"served": served, "default": default_model_name() if cards else served,
                "models": [{"name": name, "served": name == served,
                            "test_mae": card.get("metrics", {}).get("test", {}).get("mae"),
                            "test_faces": card.get("metrics", {}).get("test", {}).get("n")}
                           for name, card in cards.items()]}

    @app.post("/v1/ages", summary="Ages of the faces in one picture (raw body or multipart field 'file')")
    async def ages(request: Request, age_gate: int | None = None, model: str | None = None):
        content_type = request.headers.get("content-type", "").lower()
        name = ""
        try:
            if content_type.startswith("multipart/form-data"):
                form = await request.form(max_files=1, max_fields=8, max_part_size=config.max_body_bytes)
                upload = form.get("file") or form.get("image")
                if upload is None or isinstance(upload, str):
                    return error(400, "the form has no file field named 'file'")
                data, name = await upload.read(), upload.filename or ""
                age_gate = _form_int(form.get("age_gate"), age_gate)
                model = form.get("model") if isinstance(form.get("model"), str) else model
            elif content_type.startswith(RAW_TYPES) or not content_type:
                data = await request.body()
            else:
                return error(415, f"send an image (Content-Type image/jpeg, image/png, ...) or a multipart form, "
                                  f"not {content_type.split(';')[0]}")
        except BodyTooLarge:
            return error(413, f"the body is over the limit of {config.max_body_bytes / 1e6:g} MB")
        except ClientDisconnect:  # gone before its picture arrived: no one to answer, counted
            return error(400, "the client went away before sending the whole picture")
        if model not in (None, "", served):
            return error(422, f"model {model!r} is not served here; this server serves {served!r}")
        if age_gate is not None and not 1 <= age_gate <= 100:
            return error(422, "age_gate must be a whole age from 1 to 100")
        if age_gate is not None and pipelines.model.gate_bounds is None:
            return error(422, f"model {served!r} has no age-gate calibration")
        if not data:
            return error(400, "the request holds no image")
        try:
            image = decode_image(data, limits)
        except ImageError as problem:
            return error(413 if "too large" in str(problem) else 415, str(problem))
        if not admission.enter():
            return error(503, "busy: every worker and queue place is taken; try again shortly", {"Retry-After": "1"})
        try:
            result = await asyncio.wait_for(run_in_threadpool(pipelines.age, image, age_gate, name),
                                            timeout=config.timeout_s)
        except asyncio.TimeoutError:
            return error(504, f"the picture took over {config.timeout_s:g} s")
        finally:
            admission.leave()
        counts[200] += 1
        return result

    return limit_body(app, config.max_body_bytes)


def _form_int(value, default):
    if value is None or not isinstance(value, str) or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        return -1  # refused as out of range


def serve(pipelines: Pipelines, config: ServeConfig, models: dict | None = None) -> None:
    """Run the API until Ctrl-C or SIGTERM (Uvicorn's own handling: requests in hand are finished)."""
    import uvicorn

    app = create_app(pipelines, config, models)
    # The requests' own lines are not logged (nothing received is kept): access log off.
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, access_log=False,
                                           log_level="warning", workers=1, timeout_graceful_shutdown=5))
    server.run()
