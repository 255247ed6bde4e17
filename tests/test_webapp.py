"""Every page of the Streamlit app, rendered with Streamlit's AppTest (no browser)."""

import json
import shutil

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import REPO

VIEWS = REPO / "webapp" / "views"
PAGES = ["overview", "live", "image", "performance", "insights"]


def _card(name, mae):
    by_age = {"20-29": {"n": 50, "mae": mae - 1, "mse": 30.0, "rmse": 5.5},
              "70+": {"n": 10, "mae": mae + 4, "mse": 90.0, "rmse": 9.5}}
    test = {"n": 60, "mae": mae, "mse": mae**2 + 10, "rmse": (mae**2 + 10) ** 0.5, "by_age": by_age}
    return {"name": name, "architecture": "cnn", "input_size": 32, "weights_init": "none",
            "weights_note": "trained from scratch", "file": f"{name}.keras",
            "data": {"split_sizes": {"train": 480, "val": 60, "test": 60}},
            "training": {"epochs_run": 3, "best_epoch": 2, "seconds": 120.0, "hardware": {"cpu_count": 2},
                         "keras_backend": "tensorflow", "keras_version": "3", "config": {"epochs": 3}},
            "metrics": {"val": test, "test": test}}


@pytest.fixture
def models_dir(tmp_path, monkeypatch, tiny_model_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name, mae in (("cnn", 6.25), ("other", 7.5)):
        shutil.copy(tiny_model_path, folder / f"{name}.keras")
        (folder / f"{name}.json").write_text(json.dumps(_card(name, mae)))
    monkeypatch.setenv("AGECAM_MODELS", str(folder))
    return folder


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    monkeypatch.setenv("AGECAM_MODELS", str(tmp_path))


def _run(page):
    app = AppTest.from_file(str(VIEWS / f"{page}.py"), default_timeout=120)
    app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_models(page, models_dir):
    app = _run(page)
    assert app.title[0].value


@pytest.mark.parametrize("page", PAGES[1:])
def test_every_page_says_how_to_train_without_models(page, no_models):
    app = _run(page)
    assert "agecam train" in app.info[0].value


def test_performance_table_equals_the_cards(models_dir):
    app = _run("performance")
    table = app.dataframe[0].value.set_index("model")
    for name in ("cnn", "other"):
        card = json.loads((models_dir / f"{name}.json").read_text())["metrics"]["test"]
        for column, key in (("MAE", "mae"), ("MSE", "mse"), ("RMSE", "rmse"), ("test faces", "n")):
            assert table.loc[name, column] == pytest.approx(round(card[key], 2))  # shown with 2 decimals
    # The command that reproduces the table names the table's split: the whole UTKFace folder's test split.
    reproduce = next(m.value for m in app.markdown if "Reproduce with" in m.value)
    assert "--data ../shared/data/utkface " in reproduce and "crop-part1" not in reproduce

    from agecam.core.model_card import benchmark_runtime, load_benchmarks

    speed = app.dataframe[1].value
    for shown, saved in zip(speed.to_dict("records"), load_benchmarks(), strict=True):
        assert shown["model"] == saved["model"] and shown["refresh every (frames)"] == saved["refresh_every"]
        assert shown["runtime"] == benchmark_runtime(saved)
        for row in saved["pipeline"]:
            assert shown[f"fps, {row['faces']} faces"] == pytest.approx(row["fps"], abs=0.05)
        assert shown["machine"] and shown["measured"]  # every row says where and when, or that it was not recorded
    # Two rows of one model, runtime and refresh are told apart by their machine.
    keys = [(r["model"], r["runtime"], r["refresh every (frames)"], r["machine"]) for r in speed.to_dict("records")]
    assert len(set(keys)) == len(keys)
    commands = next(c.value for c in app.code if "agecam benchmark" in c.value)
    assert all(saved.get("command", "not recorded") in commands for saved in load_benchmarks())


def test_image_page_dataset_pick_shows_true_age_and_error(models_dir, utk_dir, monkeypatch):
    monkeypatch.setenv("AGECAM_UTKFACE_DIR", str(utk_dir))
    app = _run("image")
    app.radio[0].set_value("Pick from the dataset").run()
    assert not app.exception
    rows = app.dataframe[0].value
    assert {"age", "true age", "error"} <= set(rows.columns)
    assert rows["error"].iloc[0] == pytest.approx(rows["age"].iloc[0] - rows["true age"].iloc[0], abs=0.11)


def test_image_page_rejects_bad_uploads(models_dir, monkeypatch):
    from agecam.core.images import ImageError, ImageLimits, decode_image

    for data, reason in ((b"", "empty"), (b"GIF89a not really", "not a readable"), (b"\x89PNG\r\n\x1a\n", "not a")):
        with pytest.raises(ImageError, match=reason):
            decode_image(data)
    big = cv2.imencode(".png", np.zeros((3000, 3000, 3), np.uint8))[1].tobytes()
    with pytest.raises(ImageError, match="too large"):
        decode_image(big, ImageLimits(max_pixels=1_000_000))
    truncated = cv2.imencode(".jpg", np.full((64, 64, 3), 99, np.uint8))[1].tobytes()[:200]
    with pytest.raises(ImageError):
        decode_image(truncated)
    assert decode_image(cv2.imencode(".webp", np.full((20, 30, 3), 9, np.uint8))[1].tobytes()).shape == (20, 30, 3)


def test_live_sessions_release_their_detector_when_closed_or_dropped(tiny_model_path):
    import gc

    from agecam.core.age_model import AgeModel
    from agecam.webapp.live import LiveSession

    model = AgeModel.load(str(tiny_model_path))
    frame = np.full((120, 160, 3), 90, np.uint8)
    LiveSession(model).close()  # loads what a first session loads once per process
    gc.collect()
    before = _detectors()
    sessions = [LiveSession(model) for _ in range(4)]
    assert _detectors() == before + 4  # counted as open graphs: thread counts vary under load
    sessions[0].close()
    sessions[0].close()  # twice is harmless
    assert sessions[0].closed and sessions[0].annotate(frame) is frame  # a late frame passes through
    del sessions  # Streamlit dropping a session's state
    gc.collect()
    assert _detectors() <= before


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_live_page_setting_changes_do_not_accumulate_detectors(models_dir):
    app = _run("live")
    for step in range(3):  # warm up: what every session loads once
        app.slider[0].set_value(0.6 - 0.05 * step).run()
    session = app.session_state["live_session"]
    detectors, rss = _detectors(), _rss_mb()
    for step in range(20):
        app.slider[0].set_value(0.3 + 0.05 * (step % 2)).run()
        assert not app.exception, [e.message for e in app.exception]
    assert app.session_state["live_session"] is session  # the running session took the new settings
    app.slider[0].set_value(0.15).run()  # below what the detector reports: a new session, the old one closed
    assert app.session_state["live_session"] is not session and session.closed
    del session  # the page holds it no more
    # Counted as objects, not threads: the libraries' pools start and end threads under load.
    assert _detectors() <= detectors
    # Each leaked session held ~16 MB (a MediaPipe graph): 20 would be ~320 MB.
    assert _rss_mb() - rss < 80, f"server memory grew by {_rss_mb() - rss:.0f} MB over 20 setting changes"


def _detectors() -> int:
    """Open FaceDetector objects in this process (each holds a MediaPipe graph). Counted, not inferred
    from the thread count: Streamlit's script runs and the libraries' pools start and end threads of
    their own, which made a thread count differ by one under load."""
    import gc

    from agecam.core.detector import FaceDetector

    gc.collect()
    return sum(isinstance(o, FaceDetector) and not o.closed for o in gc.get_objects())


def test_image_page_sessions_share_one_detector(models_dir, utk_dir, monkeypatch):
    monkeypatch.setenv("AGECAM_UTKFACE_DIR", str(utk_dir))
    counts, apps = [], []
    for _ in range(4):  # four browser sessions, each aging a face, all still open
        app = _run("image")
        app.radio[0].set_value("Pick from the dataset").run()
        assert not app.exception and len(app.dataframe[0].value)
        apps.append(app)
        counts.append(_detectors())
    assert counts[-1] == counts[0] >= 1


def test_image_page_age_gate_gives_verdicts_or_says_why_not(models_dir, utk_dir, monkeypatch):
    from agecam.core.age_range import AgeRangeCalibration

    card = json.loads((models_dir / "cnn.json").read_text())
    bounds = AgeRangeCalibration(coverage=0.96, intercept=2.0, slope=0.1, q_low=-2.0, q_high=2.0)
    card["age_range"] = {"gate": {"calibration": bounds.to_dict()}}
    (models_dir / "cnn.json").write_text(json.dumps(card))
    monkeypatch.setenv("AGECAM_UTKFACE_DIR", str(utk_dir))
    import streamlit as st

    st.cache_resource.clear()  # models cached by name by earlier tests hold cards without gate bounds
    app = _run("image")
    app.radio[0].set_value("Pick from the dataset").run()
    assert "verdict" not in app.dataframe[0].value.columns  # no gate: no verdict
    gate = next(s for s in app.selectbox if s.label == "Age gate")
    gate.set_value(25).run()
    assert not app.exception
    assert set(app.dataframe[0].value["verdict"]) <= {"over", "under", "check"}
    next(s for s in app.selectbox if s.label == "Model").set_value("other").run()  # a card without gate bounds
    # Shown as text: the message's Markdown characters are escaped (issue #49).
    assert not app.exception and any("no age-gate calibration" in e.value.replace("\\", "") for e in app.error)


def test_live_page_people_panel_rows():
    from agecam.webapp.live import age_histogram, people_markdown

    rows = [{"track_id": 1, "age": 28.2, "age_low": 20.4, "age_high": 39.6, "age_gate": "check"},
            {"track_id": 2, "age": None, "age_low": None, "age_high": None, "age_gate": None}]
    assert people_markdown(rows).splitlines()[2:] == ["| #1 | 28 | 20-40 | check |", "| #2 | … |  |  |"]
    histogram = age_histogram(rows)
    assert histogram.loc["20-29", "people"] == 1 and histogram["people"].sum() == 1


def test_assurance_figures_shown_on_the_performance_page_and_beside_the_gate(models_dir, utk_dir, monkeypatch):
    """The card's age-assurance record (issue #46) is what the pages show: the performance page's table
    and, beside the age-gate control, the gate's measured rates for the chosen age."""
    from agecam.core.age_range import AgeRangeCalibration
    from agecam.training.evaluation.assurance import assurance_report

    rng = np.random.default_rng(3)
    true = rng.uniform(1, 80, 400)
    bounds = AgeRangeCalibration(coverage=0.96, intercept=2.0, slope=0.1, q_low=-2.0, q_high=2.0)
    report = assurance_report(true, true + rng.normal(0, 4, 400), rng.integers(0, 2, 400), rng.integers(0, 5, 400),
                              bounds)
    card = json.loads((models_dir / "cnn.json").read_text())
    card["age_range"] = {"gate": {"calibration": bounds.to_dict()}}
    card["assurance"] = {"utkface-test": report}
    (models_dir / "cnn.json").write_text(json.dumps(card))
    import streamlit as st

    st.cache_resource.clear()
    app = _run("performance")
    table = next(d.value for d in app.dataframe if "MAE men" in d.value.columns).set_index("model")
    assert list(table.index) == ["cnn"]  # the card without a record has no row
    assert table.loc["cnn", "MAE men"] == pytest.approx(report["error"]["cells"]["male"]["mae"])
    over = report["gates"]["18"]["under_age_called_over"]["all"]["value"]
    assert table.loc["cnn", "gate 18: under-18s over (%)"] == pytest.approx(round(100 * over, 1))
    monkeypatch.setenv("AGECAM_UTKFACE_DIR", str(utk_dir))
    app = _run("image")
    next(s for s in app.selectbox if s.label == "Age gate").set_value(18).run()
    captions = [c.value for c in app.caption if "Measured on the UTKFace test split" in c.value]
    assert captions and f"called over {over:.1%}" in captions[0]
