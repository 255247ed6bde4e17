"""Spread a batch of videos over a Ray cluster: one actor per worker, each preparing its pipeline once.

Ray is optional (``pip install 'agecam[ray]'``). With no address, a Ray instance is started on this
machine; with one, the batch joins that cluster. Every node must have agecam installed and see the
inputs and the output folders at the same paths (shared storage): a video's outputs are written by
whichever node processes it. A unit of work is one video.

Example::

    results = run_on_ray(jobs, make_cam, RayConfig(address="10.0.0.5:6379"))
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from agecam.core.hardware import cpu_cores
from .batch import (BatchError, BatchObserver, FileResult, VideoJob, WorkSettings, ended_without_processing,
                            process_video, run_unfinished, throttled)
from .config import BatchConfig

log = logging.getLogger(__name__)

LOCAL = "local"
CONNECT_TIMEOUT_S = 5.0  # a cluster address that refuses or drops connections fails the batch within this


@dataclass(frozen=True)
class RayConfig:
    """``address``: ``local`` (start Ray here), ``auto`` (the cluster this machine belongs to),
    ``HOST:PORT`` (a head node's GCS) or ``ray://HOST:PORT`` (Ray Client)."""

    address: str = LOCAL
    batch: BatchConfig = BatchConfig()
    # Ray retries a silent address for ever; joining it gives up after this (the stuck attempt is abandoned).
    join_timeout_s: float = 60.0


class VideoWorker:
    """A Ray actor's body: one prepared pipeline, then one video per call."""

    def __init__(self, make_cam: Callable, settings: WorkSettings):
        self._cam = make_cam(settings.threads)
        self._settings = settings
        self._name = f"{socket.gethostname()}:{os.getpid()}"

    def process(self, job: VideoJob, index: int, progress_queue) -> FileResult:
        """Process one video; its frame count goes to ``progress_queue`` (a Ray queue) now and then."""
        progress = throttled(lambda frames: progress_queue.put_nowait((index, frames)))
        return process_video(self._cam, job, self._settings, progress=progress, worker=self._name)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one line, when a ``HOST:PORT`` address does not accept a connection."""
    if address in (LOCAL, "auto"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise BatchError(f"a Ray address looks like HOST:PORT or ray://HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise BatchError(f"no Ray cluster answers at {address} (within {timeout_s:g} s: "
                         f"{error.strerror or error})") from None


def run_on_ray(jobs: Sequence[VideoJob], make_cam: Callable, config: RayConfig = RayConfig(),
               settings: WorkSettings = WorkSettings(), observer: BatchObserver | None = None) -> list[FileResult]:
    """Process ``jobs`` on Ray actors; one result per job in the jobs' order, as
    :func:`realtime.batch.run_batch` gives. Ctrl-C ends the actors; videos in progress keep no output."""
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs Ray: pip install 'agecam[ray]'") from None
    from .runner import StopRequests

    def run_todo(todo, observer):
        check_reachable(config.address)
        _start_ray(ray, config)
        try:
            yield from _run_actors(ray, todo, make_cam, config, settings, observer, StopRequests)
        finally:
            ray.shutdown()

    # Ray's own notices (a worker that died, ...) are printed to stdout from its threads: they go to
    # stderr instead, so the command's stdout (--json) stays parsable.
    with contextlib.redirect_stdout(sys.stderr):
        return run_unfinished(jobs, config.batch.overwrite, observer or BatchObserver(), run_todo)


def _start_ray(ray, config: RayConfig) -> None:
    """Start or join Ray, in bounded time: ``ray.init`` keeps retrying a cluster address that accepts a
    connection but does not answer, so joining runs in a daemon thread, abandoned after the timeout."""
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if config.address == LOCAL:
        options["num_cpus"] = config.batch.workers or cpu_cores()
    else:
        options["address"] = config.address
    outcome: dict = {}

    def start():
        try:
            ray.init(**options)
        except Exception as error:  # Ray raises several types (ConnectionError, RuntimeError, ...)
            outcome["error"] = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__

    if config.address == LOCAL:  # nothing to wait for; and Ray starts its local processes from the main thread
        start()
        thread = None
    else:
        thread = threading.Thread(target=start, name="agecam-ray-init", daemon=True)
        thread.start()
        thread.join(config.join_timeout_s)
    if thread is not None and thread.is_alive():
        raise BatchError(f"Ray at {config.address} did not answer within {config.join_timeout_s:g} s")
    if "error" in outcome:
        raise BatchError(f"cannot start or join Ray at {config.address}: {outcome['error']}")


def _run_actors(ray, jobs, make_cam, config: RayConfig, settings, observer, stop_requests):
    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    count = max(1, min(config.batch.workers or cluster_cpus, cluster_cpus, len(jobs)))
    actor_class = ray.remote(num_cpus=1)(VideoWorker)
    # Each actor holds one CPU of the cluster's: its pipeline keeps to one thread (as Ray's OMP_NUM_THREADS).
    actors = [actor_class.remote(make_cam, replace(settings, threads=1)) for _ in range(count)]
    log.info("Ray: %d actors over %d CPUs", count, cluster_cpus)
    from ray.util.queue import Queue

    progress_queue = Queue()  # (job index, frames done) from the actors, for the progress bars
    queue = list(enumerate(jobs))
    running: dict = {}  # task reference -> (actor, job index)
    replacements = 0  # actors started in place of dead ones: at most one per worker, never in a loop

    def submit(actor):
        index, job = queue.pop(0)
        observer.started(job, "ray")
        running[actor.process.remote(job, index, progress_queue)] = (actor, index)

    def report_progress():
        for index, frames in progress_queue.get_nowait_batch(progress_queue.qsize()):
            observer.advanced(jobs[index], frames)

    with stop_requests() as stops:
        try:
            for actor in actors[:len(queue)]:
                submit(actor)
            while running:
                if stops.requested:
                    break
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
                report_progress()
                for ref in ready:
                    actor, index = running.pop(ref)
                    result, died = _result_of(ray, ref, jobs[index])
                    observer.ended(jobs[index], result)
                    yield result
                    if died:  # as the local batch does: its video fails alone, a new actor takes the queue
                        actors.remove(actor)
                        actor = None
                        if replacements < count:
                            replacements += 1
                            actor = actor_class.remote(make_cam, replace(settings, threads=1))
                            actors.append(actor)
                            log.warning("Ray: a worker died (%s); started another", result.error)
                    if queue and actor is not None:
                        submit(actor)
                if queue and not running:  # every actor died and none may be started again
                    break
        except KeyboardInterrupt:
            pass
    # Stopped (or every video done): end the actors; a video in progress keeps no output.
    for actor, index in running.values():
        yield ended_without_processing(jobs[index], "interrupted", "stopped", observer)
    for index, job in queue:
        if stops.requested:
            yield ended_without_processing(job, "interrupted", "not started", observer)
        else:  # every worker died
            yield ended_without_processing(job, "failed", "no Ray worker left to take it", observer)
    for actor in actors:
        ray.kill(actor)
    progress_queue.shutdown()


def _result_of(ray, ref, job: VideoJob) -> tuple[FileResult, bool]:
    """A task's result, and whether its actor died (killed, or it could not prepare its pipeline)."""
    try:
        return ray.get(ref), False
    except ray.exceptions.RayError as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        died = isinstance(error, ray.exceptions.RayActorError)
        return FileResult.of(job, "failed", error=f"Ray worker failed: {message}"), died
