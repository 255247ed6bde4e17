"""``agecam field-test``: track coverage on generated clips and face recall on generated stills."""

from __future__ import annotations

from pathlib import Path

import click

from agecam.core.native_output import native_stderr_silenced
from agecam.core.paths import UTKFACE_CROP_PART1

from .errors import Failure, guarded, native_quiet
from .options import make_cam, model_option, save_and_print


@click.command("field-test")
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
    from agecam.realtime.measure.field_test import FieldTestConfig
    from agecam.realtime.measure.field_test import field_test as run_field_test

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
        cam = make_cam(model, runtime)
        with cam, native_stderr_silenced(native_quiet()):
            result = run_field_test(cam, faces, config)
        result["model"], result["runtime"] = cam.model.name, cam.model.runtime
        return result

    result = guarded(action)
    if save_and_print(result, "field-test", save, as_json):
        return
    for clip in result["clips"]:
        coverage = ", ".join(f"{c:.1%}" for c in clip["main_track_coverage"])
        click.echo(f"{clip['case']}, seed {clip['seed']}: main track covers {coverage}; tracks per face "
                   f"{clip['tracks_per_face']}; {clip['fps']:.1f} fps")
    if result["stills"]["recall"]:
        recall = ", ".join(f"{band} px {v['found']:.1%} of {v['n']}" for band, v in result["stills"]["recall"].items())
        click.echo(f"stills: found {recall}; face-free scenes with a face: "
                   f"{result['stills']['face_free']['with_a_face']:.1%}")
