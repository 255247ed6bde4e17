import json

from conftest import REPO
from agecam.core.age_model import default_model_name
from agecam.training.evaluation.report import (GENERATED_PAGES, BEGIN, END, age_bands_table, default_model_text, generated_sections, load_cards,
                             mark_default, models_table, performance_table, pick_default, report_inputs, update_readme)


def test_readme_sections_are_the_ones_generated_from_cards_and_benchmarks():
    texts = {page: (REPO / page).read_text() for page in GENERATED_PAGES}
    for (begin, end), body in generated_sections(*report_inputs()).items():
        pages = [page for page, text in texts.items() if begin in text]
        assert pages, f"no page holds the generated section {begin}"
        for page in pages:
            text = texts[page]
            shown = text[text.index(begin) + len(begin): text.index(end)].strip()
            assert shown == body.strip(), "run: python -m agecam.training.evaluation.report"


def test_shipped_default_follows_the_rule():
    cards, results, runtimes = report_inputs()
    chosen = pick_default(cards, results, runtimes)
    assert [name for name, card in cards.items() if card.get("default")] == ([chosen] if chosen else [])
    if chosen:
        assert default_model_name() == chosen


def _card(mae, arch="cnn"):
    return {"architecture": arch, "input_size": 96, "weights_init": "none",
            "metrics": {"test": {"n": 10, "mae": mae, "mse": mae ** 2, "rmse": mae,
                                 "by_age": {"0-9": {"n": 4, "mae": mae - 1}, "10-19": {"n": 6, "mae": mae + 1}}}},
            "training": {"epochs_run": 1, "seconds": 60, "hardware": {"cpu_count": 2}}}


def _bench(model, fps3, fps5, refresh_every=3, runtime="keras", live_p95=30.0):
    stages = {s: {"median_ms": 1.0, "p95_ms": 2.0} for s in ("detect", "crop", "infer", "track", "draw", "encode")}
    return {"model": model, "refresh_every": refresh_every, "runtime": runtime,
            "pipeline": [{"faces": 3, "fps": fps3, "stages": stages}, {"faces": 5, "fps": fps5, "stages": stages}],
            "live_latency": {"capture_to_output_ms": {"median_ms": 20.0, "p95_ms": live_p95}}}


def test_default_is_the_most_accurate_model_that_keeps_real_time(tmp_path):
    cards = {"cnn": _card(5.6), "resnet50": _card(5.2, "resnet50"), "huge": _card(4.0)}
    results = [_bench("cnn", 60, 50), _bench("resnet50", 35, 22), _bench("huge", 12, 8),
               _bench("cnn", 20, 10, refresh_every=1)]
    assert pick_default(cards, results) == "resnet50"
    assert pick_default(cards, [_bench("cnn", 60, 50), _bench("resnet50", 35, 19)]) == "cnn"
    assert pick_default(cards, []) is None  # speed unknown: no default claimed
    # Only the runtime the tools use counts: a fast ONNX run does not vouch for a model run on Keras.
    fast_elsewhere = [_bench("cnn", 60, 50), _bench("resnet50", 25, 15), _bench("resnet50", 35, 22, runtime="onnx")]
    assert pick_default(cards, fast_elsewhere, {"cnn": "keras", "resnet50": "keras"}) == "cnn"
    assert pick_default(cards, fast_elsewhere, {"cnn": "keras", "resnet50": "onnx"}) == "resnet50"
    # Enough frames per second but a live view that lags the camera by more than 50 ms is not real time.
    assert pick_default(cards, [_bench("cnn", 60, 50), _bench("resnet50", 35, 22, live_p95=71.0)]) == "cnn"
    assert "`resnet50`" in default_model_text(cards, results) and "5.20" in default_model_text(cards, results)

    for name, card in cards.items():
        (tmp_path / f"{name}.keras").write_text("")
        (tmp_path / f"{name}.json").write_text(json.dumps({**card, "default": name == "cnn"}))
    assert mark_default(load_cards(tmp_path), results, tmp_path) == "resnet50"
    flags = {name: card.get("default") for name, card in load_cards(tmp_path).items()}
    assert flags == {"cnn": False, "huge": False, "resnet50": True}
    assert default_model_name(tmp_path) == "resnet50"


def test_age_band_table_has_a_column_per_model():
    table = age_bands_table({"cnn": _card(5.0), "resnet50": _card(4.0, "resnet50")}).splitlines()
    assert table[0] == "| age band | test faces | `cnn` MAE | `resnet50` MAE |"
    assert table[2] == "| 0-9 | 4 | 4.00 | 3.00 |"


def test_performance_table_reads_the_saved_benchmark():
    stages = {s: {"median_ms": 1.25, "p95_ms": 2.0} for s in ("detect", "crop", "infer", "track", "draw", "encode")}
    run = {"model": "cnn", "refresh_every": 3, "command": "agecam benchmark --save x.json",
           "pipeline": [{"faces": n, "fps": 40.0 - n, "stages": stages} for n in (1, 3, 5)],
           "live_latency": {"capture_to_output_ms": {"median_ms": 20.0, "p95_ms": 31.4}}}
    row = performance_table([run]).splitlines()[2]
    assert row.startswith("| `cnn` | keras | 3 | 39.0 | 37.0 | 35.0 | 1.2 |") and "| 31 ms |" in row


def test_table_reads_every_number_from_the_card(tmp_path):
    card = {"architecture": "cnn", "input_size": 96, "weights_init": "none", "default": True,
            "metrics": {"test": {"n": 879, "mae": 5.4321, "mse": 61.23, "rmse": 7.825, "by_age": {}}},
            "training": {"epochs_run": 30, "seconds": 3600, "hardware": {"cpu_count": 2}}}
    (tmp_path / "cnn.keras").write_text("")
    (tmp_path / "cnn.json").write_text(json.dumps(card))
    row = models_table(load_cards(tmp_path)).splitlines()[2]
    assert "`cnn` (default)" in row and "| 879 | 5.43 | 61.2 | 7.83 |" in row and "8.58 / 11.67" in row
    assert "| - |" in row  # a card without a target says so rather than inventing one
    card["target"] = {"test_mae_at_most": 5.0, "met": False, "missed_by": 0.43}
    (tmp_path / "cnn.json").write_text(json.dumps(card))
    assert "| ≤ 5.0: missed by 0.43 |" in models_table(load_cards(tmp_path))
    # Trained further from an earlier model: the table shows where it began and all of its training.
    card["weights_init"] = "model:cnn.keras"
    card["earlier_stages"] = [{"weights_init": "none", "epochs_run": 24, "seconds": 1800}]
    (tmp_path / "cnn.json").write_text(json.dumps(card))
    row = models_table(load_cards(tmp_path)).splitlines()[2]
    assert "| 96 px | none |" in row and row.endswith("| 24 + 30 | 90 min on 2 CPU cores |")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nold\n{END}\noutro\n")
    (tmp_path / "benchmark-cnn.json").write_text(json.dumps(_bench("cnn", 40, 30)))
    assert update_readme(readme, tmp_path, assets=tmp_path)
    assert "5.43" in readme.read_text() and "old" not in readme.read_text()


def test_model_cards_round_trip_with_a_version_and_bad_cards_fail_in_one_line(tmp_path, tiny_model_path):
    import shutil

    import pytest

    from conftest import run_agecam
    from agecam.core.age_model import AgeModel, ModelError
    from agecam.core.model_card import CARD_VERSION, CardError, read_card, write_card

    card = {"name": "cnn", "metrics": {"test": {"mae": 5.0}},
            "training": {"config": {"epochs": 3, "run_dir": "/home/someone/models/cnn.run", "resume": True}}}
    path = tmp_path / "cnn.json"
    written = write_card(path, card)
    back = read_card(path)
    assert back == written and back["card_version"] == CARD_VERSION and back["written_utc"].endswith("+00:00")
    assert back["training"]["config"] == {"epochs": 3}  # one machine's paths stay out of the card
    old = tmp_path / "old.json"
    old.write_text('{"name": "from before versions"}')
    assert read_card(old) == {"name": "from before versions"}  # version 1: still read
    for text, reason in (("{not json", "not JSON"), ("[1, 2]", "JSON object"),
                         (json.dumps({"card_version": CARD_VERSION + 1}), "update agecam")):
        path.write_text(text)
        with pytest.raises(CardError, match=reason) as caught:
            read_card(path)
        assert "\n" not in str(caught.value)
    # A model whose card is unusable: a one-line error from the library and from the CLI.
    shutil.copy(tiny_model_path, tmp_path / "cnn.keras")
    path.write_text("{not json")
    with pytest.raises(ModelError, match="not a model card"):
        AgeModel.load(tmp_path / "cnn.keras")
    result = run_agecam("image", tiny_model_path, "--model", tmp_path / "cnn.keras")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("agecam: error:") == 1 and "not a model card" in result.stderr


def test_track_ages_table_reads_the_cards_and_judges_the_targets():
    from agecam.training.evaluation.report import track_ages_table

    assert "agecam track-test" in track_ages_table({"cnn": {}})
    test = {"tracks": 10, "view_mae": 7.0, "track_mae": 5.5, "unweighted_mean_mae": 6.0, "old_track_mae": 6.5,
            "range_coverage": 0.9, "range_coverage_by_views": {"1": 0.8, "2-4": 0.85, "5-19": 0.9, "20+": 0.95},
            "shown_age_movement_after_2s": {"mean": 1.0, "p90": 2.5}, "old_shown_age_movement_after_2s": {"mean": 2, "p90": 4}}
    table = track_ages_table({"cnn": {"tracks": {"test": test, "range": {"rho": 0.8}, "config": {"views": 50}}}})
    assert "| `cnn` | 10 (50) | 7.00 | 5.50 | 6.00 | 6.50 | 90.0% | 80% / 85% / 90% / 95% |" in table
    assert "MAE gain ≥ 1.0: met" in table and "coverage 0.78-0.85: missed" in table and "moves ≤ 3: met (p90)" in table
