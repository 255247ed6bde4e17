"""The fitted parameters a model's card carries: ``agecam calibrate`` (age ranges), ``agecam quantize``
(int8), ``agecam gate-test`` (the age gate on tracks), ``agecam track-test`` (track ages and the shown age)."""

from __future__ import annotations

from pathlib import Path

import click

from agecam.core.native_output import native_stderr_silenced

from .errors import guarded, native_quiet, signals_held
from .options import import_keras_quietly, model_option, require_extra, save_and_print


@click.command()
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
    require_extra("train", "calibrate")
    import_keras_quietly()
    from agecam.core.age_model import AgeModel
    from agecam.training.evaluation.assess import AssessConfig, assess, command_line

    sample = {} if robustness_faces is None else {"robustness_faces": robustness_faces}
    config = AssessConfig(data=data, part1=part1, **sample)

    def action():
        loaded = AgeModel.load(model, runtime)
        return assess(loaded, config, command_line(model, config))

    card = guarded(action)
    test, coverage = card["metrics"]["test"], card["age_range"]["test"]["coverage"]
    degraded = card["degraded"]["test"]
    click.echo(f"{card.get('name', model)}: test MAE {test['mae']:.2f} (n={test['n']}), 80% range coverage "
               f"{coverage:.1%}; degraded MAE " + ", ".join(f"{w} px {m['mae']:.2f}" for w, m in degraded.items()))


@click.command()
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
    require_extra("train", "quantize")
    from agecam.core.age_model import available_models, is_ensemble, models_dir
    from agecam.training.quantize import QuantizeConfig, quantize_model

    config = QuantizeConfig(data=data, calibration_faces=calibration_faces)
    names = [model] if model else [n for n in available_models() if not is_ensemble(models_dir() / f"{n}.json")]
    for name in names:
        command = f"agecam quantize --model {name} --data {data} --calibration-faces {calibration_faces}"
        record = guarded(lambda: quantize_model(name, config, command))
        test = record["test"]
        click.echo(f"{name}: {record['file']}, test MAE {test['mae_float']:.3f} float -> {test['mae_int8']:.3f} int8, "
                   f"largest difference {test['max_difference']:.2f} years (p99 {test['p99_difference']:.2f}, "
                   f"{test['within_rule']:.1%} of {test['n']} faces within {config.max_face_difference}): "
                   f"parity {'holds, used by --runtime auto' if record['holds'] else 'missed, used only with --runtime int8'}")


@click.command("gate-test")
@model_option
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder of UTKFace-named crops holding the manifest's test faces.")
@click.option("--views", type=click.IntRange(2, 64), default=8, show_default=True, help="Views per generated track.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--record", is_flag=True, help="Store the results in the model's card (age_range.gate.tracks).")
def gate_test(model, runtime, data, views, as_json, record):
    """Measure the age gate on generated tracks: each test face seen in several camera renderings, decided
    on the median of their estimates (a robust track age; agecam track-test measures the fused one)."""
    require_extra("train", "gate-test")
    import_keras_quietly()
    from agecam.core.age_model import AgeModel
    from agecam.training.evaluation.gate_tracks import GateTrackConfig, gate_on_tracks, record_in_card

    loaded = guarded(lambda: AgeModel.load(model, runtime))
    result = guarded(lambda: gate_on_tracks(loaded, GateTrackConfig(data=data, views=views)))
    if record:
        guarded(lambda: record_in_card(loaded, result))
    if save_and_print(result, "gate-test", None, as_json):
        return
    click.echo(f"{loaded.name}: {result['faces']} generated tracks of {views} views; track-age MAE "
               f"{result['track_age_mae']:.2f} (one view {result['view_mae']:.2f})")
    for gate, o in result["gates"].items():
        click.echo(f"  gate {gate}: under-age called over {o['under_age_called_over']:.1%} (of {o['under_age']}), "
                   f"adults 5+ over called over {o['adults_called_over']:.1%}, sent to check {o['sent_to_check']:.1%}")


@click.command("track-test")
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
    require_extra("train", "track-test")
    import_keras_quietly()
    from agecam.core.age_model import AgeModel
    from agecam.training.evaluation.track_fusion import TrackTestConfig, make_detector, record_in_card
    from agecam.training.evaluation.track_fusion import track_test as run_test

    def quiet_detector():
        with signals_held(), native_stderr_silenced(native_quiet()):
            return make_detector()

    config = TrackTestConfig(data=data, fit_tracks=fit_tracks, test_tracks=test_tracks, views=views)
    loaded = guarded(lambda: AgeModel.load(model, runtime))
    result = guarded(lambda: run_test(loaded, config, quiet_detector))
    if record:
        guarded(lambda: record_in_card(loaded, result))
    if save_and_print(result, "track-test", None, as_json):
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
