"""``agecam video``, ``agecam webcam`` and ``agecam demo``: one stream in a window or headless, or a
batch of videos on worker processes or Ray."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from agecam.realtime.pipelines import build_cam

from .errors import Failure, check_interrupts, exit_interrupted, guarded, native_quiet, setting
from .options import (
    DETECTOR,
    ESTIMATOR,
    STREAM,
    cam_config,
    make_cam,
    model_option,
    pipeline_options,
    progress_bars,
    stream_output_options,
)


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@pipeline_options
@stream_output_options
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


@click.command()
@click.option("--camera", type=click.IntRange(0), default=0, show_default=True, help="Camera index.")
@pipeline_options
@stream_output_options
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

        guarded(lambda: make_output_folder(report_dir, "the --report folder"))

    def action():
        with make_cam(model, runtime, detector_range, confidence, refresh_every, show_fps, show_range,
                       small_faces, age_gate, blur_faces) as cam, \
                VideoSource(source, realtime=realtime, stream=StreamConfig(reconnect=reconnect)) as src, \
                progress_bars() as bars:
            check_interrupts()  # a Ctrl-C while the libraries loaded may have been swallowed
            config = RunConfig(show_window=not no_window, output=output, csv=csv_path, jsonl=jsonl_path,
                               people=people_path, report=report, report_faces=report_faces,
                               video_name=str(source), max_frames=max_frames)
            task = bars.add(Path(str(target)).name, max_frames or src.frame_count) if not src.live else None
            return run(cam, src, config, progress=None if task is None else lambda n: bars.update(task, completed=n))

    summary = guarded(action)
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


def _run_batch(sources, pipeline: dict, output, csv_dir, jsonl_path, as_json, workers, overwrite, ray_address,
               max_frames, people_dir=None, report_dir=None, report_faces=False):
    import functools
    import time

    from agecam.progress import BatchBars
    from agecam.realtime.batch import (
        BatchOutputs,
        WorkSettings,
        find_videos,
        plan_jobs,
        run_batch,
        totals,
        write_combined_jsonl,
        write_combined_people,
    )
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

        guarded(lambda: check_reachable(ray_address))

    jobs = guarded(lambda: plan_jobs(find_videos(sources), outputs))
    config = BatchConfig(workers=workers or 0, overwrite=overwrite)
    settings = WorkSettings(max_frames=max_frames, log_level=setting("log_level", logging.WARNING),
                            report_faces=report_faces)
    make_cam = functools.partial(build_cam, cam_config(**pipeline), native_quiet(), streams=True)
    started = time.perf_counter()

    def action():
        with progress_bars() as bars:
            observer = BatchBars(bars, jobs)
            if ray_address is not None:
                from agecam.realtime.ray_batch import RayConfig, run_on_ray

                return run_on_ray(jobs, make_cam, RayConfig(ray_address, config), settings, observer)
            return run_batch(jobs, make_cam, config, settings, observer)

    results = guarded(action)
    interrupted = any(r.status == "interrupted" for r in results)
    if jsonl_path is not None and not interrupted:
        guarded(lambda: write_combined_jsonl(jobs, results, jsonl_path))
    if people_dir is not None and not interrupted:
        guarded(lambda: write_combined_people(jobs, results, outputs.all_people))
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


@click.command()
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
