"""``agecam benchmark --serve DIR``: a bounded load run of ``agecam serve`` on loopback.

The server is started as a user starts it (``agecam serve`` with the default model and workers, on
a free loopback port); the photos of DIR are sent as raw request bodies, round-robin, ``requests``
times at each level of ``concurrency`` (that many clients at once, each with a keep-alive
connection). Reported per level: requests per second (wall time of the level), latency p50/p95/p99,
answers by kind (200, 503 busy, other errors), and the server's resident memory at the start and
after each level (it grows while the first requests warm the libraries' buffers, then stays flat:
measured 262 MB at start, 294 MB after 500 requests, 300 MB after 3,000).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agecam.core.hardware import cpu_cores, machine


class ServeBenchmarkError(OSError):
    """The server could not be started or did not answer (one line: why)."""


@dataclass(frozen=True)
class ServeBenchmarkConfig:
    photos: tuple[Path, ...]
    requests: int = 500
    concurrency: tuple[int, ...] = (1, 4, 16)
    options: tuple[str, ...] = field(default_factory=tuple)  # agecam serve options, e.g. ("--model", "cnn")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _get(port: int, path: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def _start_server(config: ServeBenchmarkConfig) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "agecam", "serve", "--port", str(port), *config.options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeBenchmarkError(f"agecam serve exited: {(process.stderr.read().strip().splitlines() or [''])[-1]}")
        try:
            _get(port, "/v1/health")
            return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise ServeBenchmarkError("agecam serve did not answer within 180 s")


def _level(port: int, bodies: list[bytes], requests: int, concurrency: int) -> dict:
    latencies, statuses = [], []
    lock, counter = threading.Lock(), iter(range(requests))

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            started = time.perf_counter()
            try:
                connection.request("POST", "/v1/ages", body=bodies[index % len(bodies)],
                                   headers={"Content-Type": "image/jpeg"})
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except OSError:
                status = 0
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            with lock:
                latencies.append(time.perf_counter() - started)
                statuses.append(status)
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    ok = sum(s == 200 for s in statuses)
    return {"concurrency": concurrency, "requests": requests, "ok": ok, "busy": sum(s == 503 for s in statuses),
            "errors": sum(s not in (200, 503) for s in statuses), "wall_s": round(wall, 2),
            "requests_per_s": round(ok / wall, 1) if wall > 0 else 0.0,
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}}


def run_serve_benchmark(config: ServeBenchmarkConfig) -> dict:
    """Start the server, run each concurrency level, stop it; the JSON docs/performance.md reads."""
    bodies = [Path(p).read_bytes() for p in config.photos]
    if not bodies:
        raise ServeBenchmarkError("no photos to send")
    process, port = _start_server(config)
    try:
        health = _get(port, "/v1/health")
        memory_before = _rss_mb(process.pid)
        rows = []
        for level in config.concurrency:  # the server's memory after each level: flat once warm, or a leak
            rows.append({**_level(port, bodies, config.requests, level), "server_rss_mb": _rss_mb(process.pid)})
        memory_after = rows[-1]["server_rss_mb"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    sizes = [os.path.getsize(p) for p in config.photos]
    return {"kind": "serve", "model": health["model"], "workers": health["workers"], "photos": len(bodies),
            "photo_kb_median": round(float(np.median(sizes)) / 1024, 1), "folder": str(Path(config.photos[0]).parent),
            "options": list(config.options), "rows": rows, "server_rss_mb": {"before": memory_before, "after": memory_after},
            "cpu_cores": cpu_cores(), "machine": machine()}
