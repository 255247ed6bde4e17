"""What the commands share: the pipeline and output options (their defaults are the configs'), the
pipeline built from them, logging, and results stamped and saved."""

from __future__ import annotations

import errno
import json
import logging
import sys
from pathlib import Path

import click

from agecam.core.config import RANGES, RUNTIMES, DetectorConfig, EstimatorConfig
from agecam.core.native_output import native_stderr_silenced, quiet_environment
from agecam.realtime.config import StreamConfig
from agecam.realtime.pipelines import build_cam

from .errors import Failure, check_interrupts, guarded, native_quiet, setting, signals_held

# The options' defaults are the configs' own, stated once there.
DETECTOR, ESTIMATOR, STREAM = DetectorConfig(), EstimatorConfig(), StreamConfig()


def setup_logging(verbose: int) -> None:
    if verbose < 2:  # -vv lets the native libraries' own logs through
        quiet_environment()
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(max(level, logging.ERROR))


def model_option(func):
    """The --model and --runtime options."""
    func = click.option("--runtime", type=click.Choice(RUNTIMES), default=RUNTIMES[0], show_default=True,
                        help="auto: the int8 model when its parity record holds, else ONNX Runtime when the model's "
                             ".onnx export (made from this very file) is beside it, else Keras.")(func)
    return click.option("--model", "model", default=None, metavar="NAME|PATH",
                        help="A shipped model (dlib-resnet10, ensemble, cnn, resnet50) or a .keras file; "
                             "default: the one whose card is marked default (dlib-resnet10).")(func)


small_faces_option = click.option(
    "--small-faces/--no-small-faces", default=DETECTOR.tile_streams, show_default=True,
    help="Also search tiles (and, in video, regions around missed tracks) so faces of 40-100 px are found; "
         "--no-small-faces is faster on slow CPUs.")


def pipeline_options(func):
    func = small_faces_option(func)
    func = click.option("--range", "detector_range", type=click.Choice(sorted(RANGES)), default=DETECTOR.range,
                        show_default=True, help="Detector range: full (faces of any size, up to ~5 m) or short (close-up webcam, faster).")(func)
    func = click.option("--confidence", type=click.FloatRange(0, 1), default=DETECTOR.min_confidence, show_default=True,
                        help="Detection confidence that starts a face's track (weaker detections only extend one).")(func)
    return model_option(func)


def stream_output_options(func):
    """Window and output options shared by the video and webcam commands."""
    options = [
        click.option("--no-window", is_flag=True, help="Run headless (no OpenCV window)."),
        click.option("-o", "--output", type=click.Path(path_type=Path),
                     help="Write the annotated video (.mp4, .avi); for a batch, the folder for them."),
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write one row per face per frame."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary when done."),
        click.option("--show-fps", is_flag=True, help="Draw the processing rate on the frames."),
        show_range_option,
        blur_faces_option,
        age_gate_option,
        click.option("--people", "people_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write one row per person (track): when seen, age, 80% range, verdict (CSV, or JSON "
                          "for a .json name)."),
        click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Write a page of figures about the people seen into this folder (report.html; for a "
                          "batch, NAME.html per video)."),
        click.option("--report-faces", is_flag=True, help="Show each person's clearest view in the report."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


show_range_option = click.option("--show-range", is_flag=True,
                                  help="Draw the calibrated 80% age range after the age: '#3 · 34 (29-40)'.")
blur_faces_option = click.option("--blur-faces", is_flag=True,
                                  help="Hide every face (pixelated beyond recognition) in what is shown and written: "
                                       "window, video, images, report; boxes, ids, ages and verdicts stay drawn.")
age_gate_option = click.option(
    "--age-gate", type=click.IntRange(1, 100), default=None, metavar="AGE",
    help="Decide for every face whether it is over AGE (its 98% lower bound at or above AGE), under it (98% "
         "upper bound below) or to check; drawn as the box colour and written as age_gate.")


def progress_bars():
    from agecam.progress import Bars, progress_wanted

    return Bars(progress_wanted(bool(setting("hide_progress"))))


def import_keras_quietly() -> None:
    """Import Keras (and TensorFlow behind it) with the native start-up logs hidden."""
    with signals_held(), native_stderr_silenced(native_quiet()):
        import keras  # noqa: F401


def make_cam(model, runtime, detector_range=DETECTOR.range, confidence=DETECTOR.min_confidence,
              refresh_every=ESTIMATOR.refresh_every, show_fps=False, show_range=False, small_faces=True, age_gate=None,
              blur_faces=False, streams=True):
    return prepared_cam(cam_config(model, runtime, detector_range, confidence, refresh_every, show_fps, show_range,
                                   small_faces, age_gate, blur_faces), streams=streams)


def prepared_cam(config, **kwargs):
    """``realtime.pipelines.build_cam`` for this command: a stop signal that landed while it loaded (and
    was swallowed there) stops the command once it is built, closing it first."""
    cam = build_cam(config, native_quiet(), **kwargs)
    try:
        check_interrupts()
    except KeyboardInterrupt:
        cam.close()
        raise
    return cam


def save_and_print(result: dict, command: str, save: Path | None, as_json: bool) -> bool:
    """Stamp ``result`` with the command that made it, save it (``--save``), print it (``--json``);
    True when it was printed as JSON (nothing more to print)."""
    # What follows the command's name (options before it, such as -q, change nothing it measured).
    words = sys.argv[1:]
    after = words[words.index(command) + 1:] if command in words else words[1:]
    result["command"] = " ".join(["agecam", command, *after])
    if save is not None:
        from datetime import datetime, timezone

        result["measured_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        from agecam.core.atomic import write_json_atomic

        guarded(lambda: write_json_atomic(save, result))
    if as_json:
        click.echo(json.dumps(result))
    return as_json


def cam_config(model, runtime, detector_range=DETECTOR.range, confidence=DETECTOR.min_confidence,
               refresh_every=ESTIMATOR.refresh_every, show_fps=False, show_range=False, small_faces=True,
               age_gate=None, blur_faces=False):
    """The pipeline's configuration from the command's flags (``AgeCamConfig.from_settings``)."""
    from agecam.core.analyzer import AgeCamConfig

    return AgeCamConfig.from_settings(model=model, runtime=runtime, detector_range=detector_range,
                                      confidence=confidence, small_faces=small_faces, refresh_every=refresh_every,
                                      show_fps=show_fps, show_range=show_range, blur_faces=blur_faces,
                                      age_gate=age_gate)


def build_pipelines(config, count: int) -> list:
    """``count`` prepared pipelines sharing one loaded model, each with a detector and tracker of its
    own and, when there are several, one CPU thread (they run side by side, not each on every core).
    One only for a Keras model, which is not known to be safe to call from two threads. On a failure
    the ones built are closed."""
    cam = guarded(lambda: prepared_cam(config, threads=1 if count > 1 else 0))
    cams = [cam]
    try:
        if cam.model.runtime != "keras":
            for _ in range(count - 1):
                cams.append(guarded(lambda: prepared_cam(config, threads=1, model=cam.model)))
    except BaseException:
        for built in cams:
            built.close()
        raise
    return cams


def check_port_free(host: str, port: int) -> None:
    """Fail in one line when ``host:port`` cannot be served (taken by another server, or not an
    address of this machine)."""
    import socket

    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise Failure(f"--host {host}: not an address of this machine ({error.strerror})") from None
    problems = []
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
                probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise Failure(f"port {port} on {host} is in use (another agecam web?); choose another with "
                              "--port") from None
            problems.append(error.strerror or str(error))  # e.g. no IPv6 here: the other address serves
    if problems and len(problems) == len(addresses):
        raise Failure(f"port {port} on {host} cannot be served: {problems[0]}")


# The optional packages each extra brings (setup.cfg), by import name.
EXTRAS = {"train": ("tensorflow", "keras", "onnx"), "web": ("streamlit", "streamlit_webrtc", "pandas"),
          "serve": ("fastapi", "uvicorn"), "ray": ("ray",)}


def require_extra(extra: str, command: str) -> None:
    """Fail in one line, naming the extra to install, when ``command`` needs packages of ``extra`` that
    are not installed (a plain ``pip install agecam`` has the camera, video and image commands only)."""
    import importlib.util

    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise Failure(f"agecam {command} needs {', '.join(missing)}, not installed here: pip install 'agecam[{extra}]'")
