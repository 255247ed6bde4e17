"""``agecam image``: ages of the faces in pictures and folders of them."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from .errors import Failure, check_interrupts, guarded
from .options import (
    age_gate_option,
    blur_faces_option,
    build_pipelines,
    cam_config,
    pipeline_options,
    progress_bars,
    show_range_option,
)


@click.command()
# readable=False: an unreadable file is reported by the reader, in its turn, and the others still run.
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@pipeline_options
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write annotated copies into this folder (created if needed).")
@click.option("--json", "as_json", is_flag=True, help="Print faces and ages (with the 80% age range) as JSON.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one row per face: path, face, box, score, age, 80% range, verdict.")
@show_range_option
@blur_faces_option
@age_gate_option
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

    config = cam_config(model, runtime, detector_range, confidence, show_range=show_range, small_faces=small_faces,
                         age_gate=age_gate, blur_faces=blur_faces)
    cams = build_pipelines(config, min(workers or (1 if runtime == "keras" else cpu_cores()), len(images)))
    guarded(check_interrupts)

    def action():
        if output_dir is not None:
            output_dir.mkdir(parents=True, exist_ok=True)
        results, failures = [], 0
        with (StillsCsvSink(csv_path) if csv_path is not None else contextlib.nullcontext()) as table, \
                progress_bars() as bars:
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
        results, failures = guarded(action)
    finally:
        for built in cams:
            built.close()
    if as_json:
        click.echo(json.dumps(results))
    if failures:
        sys.exit(1)
