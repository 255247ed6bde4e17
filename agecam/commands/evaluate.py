"""``agecam evaluate`` and ``agecam evaluate-photos``: a model's errors on a split or on photo folders."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agecam.core.native_output import native_stderr_silenced

from .errors import Failure, UsageFailure, guarded, native_quiet
from .options import (
    import_keras_quietly,
    make_cam,
    model_option,
    pipeline_options,
    progress_bars,
    require_extra,
    save_and_print,
)


@click.command()
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
    require_extra("train", "evaluate")
    if record and not assurance:
        raise UsageFailure(click.UsageError("--record needs --assurance", click.get_current_context()))
    widths = _parse_widths(degrade) if degrade else ()
    import_keras_quietly()
    from agecam.training.evaluation.evaluate import EvaluateConfig
    from agecam.training.evaluation.evaluate import evaluate as run_evaluation
    from agecam.training.split import DEFAULT_MANIFEST

    if split and manifest is None:
        manifest = DEFAULT_MANIFEST
    config = EvaluateConfig(data=data, model=model, runtime=runtime, split=split, manifest=manifest, degrade=widths,
                            robustness=robustness, figures=figures, assurance=assurance, record=record)

    def action():
        with progress_bars() as bars:
            tasks = {}

            def progress(stage, done, total):
                if stage not in tasks:
                    tasks[stage] = bars.add(stage, total, unit="faces")
                bars.update(tasks[stage], completed=done)

            # Aligned chips are cut by MediaPipe: its graph's start-up lines are hidden as elsewhere.
            with native_stderr_silenced(native_quiet()):
                return run_evaluation(config, progress=progress)

    result, report = guarded(action)
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
        from agecam.training.evaluation.assurance import summary_lines

        for line in summary_lines(result["assurance"]):
            click.echo(line)
    for path in result.get("figures", []):
        click.echo(f"wrote {path}")
    if report.skipped:
        click.echo(f"skipped: {report.summary()}", err=True)


@click.command("evaluate-photos")
@click.argument("folder", type=click.Path(path_type=Path))
@pipeline_options
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
    require_extra("train", "evaluate-photos")
    from agecam.training.evaluation.photos import evaluate_photos as run
    from agecam.training.evaluation.photos import labelled_photos

    photos = guarded(lambda: labelled_photos(folder, labels))
    cam = guarded(lambda: make_cam(model, runtime, detector_range, confidence, small_faces=small_faces,
                                     streams=False))

    def action():
        with progress_bars() as bars:
            task = bars.add("photos", len(photos), unit="photos")
            return run(cam, photos, progress=lambda done, total: bars.update(task, completed=done))

    try:
        result = guarded(action)
    finally:
        cam.close()
    result["model"] = cam.model.name
    result["data"] = str(folder)
    printed = save_and_print(result, "evaluate-photos", save, as_json)
    if record:
        from agecam.training.evaluation.photos import record_in_card

        guarded(lambda: record_in_card(cam.model, Path(folder).resolve().name, result))
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
        from agecam.training.evaluation.assurance import group_summary_lines

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
