"""Prepared pipelines for the commands and their batch workers (a worker process builds its own)."""

from __future__ import annotations

import dataclasses

from agecam.core.native_output import native_stderr_silenced, quiet_environment, stop_signals_held


def build_cam(config, silence_native: bool, threads: int = 0, model=None, streams: bool = False):
    """A prepared pipeline (``core.analyzer.AgeCam``) using ``threads`` CPU threads (0: all), loaded with
    stop signals held and, with ``silence_native``, the native libraries' start-up lines hidden. A batch
    worker calls this once, in its own process (``functools.partial`` of it pickles). ``model``: an age
    model already loaded, shared with another pipeline; ``streams``: the detectors of a video read
    ahead made now too, their start-up lines hidden with the others.

    Example::

        cam = build_cam(AgeCamConfig(), silence_native=True, streams=True)
    """
    from agecam.core.analyzer import AgeCam

    if silence_native:
        quiet_environment()
    cam = None
    try:
        with stop_signals_held(), native_stderr_silenced(silence_native):
            cam = AgeCam(dataclasses.replace(config, threads=threads), model=model)
            if streams:
                cam.prepare_stream()
    except KeyboardInterrupt:  # held while it loaded: close it, or its native graph aborts the exit
        if cam is not None:
            cam.close()
        raise
    return cam
