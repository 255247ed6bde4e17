"""Ensembles: a card naming shipped models, loaded, evaluated and reported like a trained model."""

import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_agecam
from agecam.core.age_model import AgeModel, EnsembleRunner, ModelError, available_models, resolve_model_path
from agecam.training.evaluation.report import load_cards, models_table, tool_runtimes


class ConstantRunner:
    """A stand-in model that rates every face the same age."""

    runtime = "keras"
    input_size = 32

    def __init__(self, age):
        self.age = age

    def __call__(self, batch):
        return np.full(len(batch), self.age, np.float32)


def _model(age, size=32):
    runner = ConstantRunner(age)
    runner.input_size = size
    return AgeModel(runner, name=f"m{age}", path=None, card={})


def test_ensemble_is_the_weighted_mean_of_its_members():
    batch = np.zeros((3, 32, 32, 3), np.float32)
    np.testing.assert_allclose(EnsembleRunner([_model(20), _model(40)], [1, 1])(batch), [30, 30, 30])
    np.testing.assert_allclose(EnsembleRunner([_model(20), _model(40)], [3, 1])(batch), [25, 25, 25])
    with pytest.raises(ModelError, match="one weight per member"):
        EnsembleRunner([_model(20), _model(40)], [1])


class MeanPixelRunner(ConstantRunner):
    """A stand-in model whose "age" is the mean pixel value; it checks the batch size it gets."""

    def __call__(self, batch):
        assert batch.shape[1:] == (self.input_size, self.input_size, 3)
        return batch.mean(axis=(1, 2, 3)).astype(np.float32)


def test_members_of_different_input_sizes_each_get_faces_at_their_size():
    small, large = MeanPixelRunner(0), MeanPixelRunner(0)
    small.input_size, large.input_size = 32, 48
    members = [AgeModel(runner, name=f"m{runner.input_size}", path=None, card={}) for runner in (small, large)]
    ensemble = AgeModel(EnsembleRunner(members, [1, 1]), name="mixed", path=None, card={})
    assert ensemble.input_size == 48  # the larger member's: no member sees an enlarged face
    face = np.full((100, 80, 3), 90, np.uint8)
    np.testing.assert_allclose(ensemble.predict([face, face]), [90, 90], rtol=1e-5)
    np.testing.assert_allclose(ensemble.predict_preprocessed(np.full((1, 48, 48, 3), 60, np.float32)), [60], rtol=1e-5)


def test_an_ensemble_predicts_live_exactly_what_evaluation_measures():
    """Live inference (crops) and evaluation (preprocessed batches) share one numeric path."""
    from agecam.core.preprocess import preprocess_face

    small, large = MeanPixelRunner(0), MeanPixelRunner(0)
    small.input_size, large.input_size = 32, 48
    members = [AgeModel(runner, name=f"m{runner.input_size}", path=None, card={}) for runner in (small, large)]
    ensemble = AgeModel(EnsembleRunner(members, [1, 2]), name="mixed", path=None, card={})
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((100, 80), (61, 77), (200, 200))]
    evaluated = ensemble.predict_preprocessed(np.stack([preprocess_face(f, ensemble.input_size) for f in faces]))
    np.testing.assert_array_equal(ensemble.predict(faces), evaluated)


@pytest.fixture()
def models_folder(tmp_path, tiny_model_path):
    """Two copies of the tiny model and an ensemble card naming them."""
    for name in ("a", "b"):
        shutil.copy(tiny_model_path, tmp_path / f"{name}.keras")
    card = {"name": "both", "architecture": "ensemble", "members": ["a", "b"], "member_weights": [1, 1],
            "input_size": 32, "weights_init": "mean of a + b",
            "metrics": {"test": {"n": 5, "mae": 4.0, "mse": 20.0, "rmse": 4.47, "by_age": {}}}}
    (tmp_path / "both.json").write_text(json.dumps(card))
    (tmp_path / "notes.json").write_text(json.dumps({"not": "a model"}))
    return tmp_path


def test_an_ensemble_card_is_a_model(models_folder, monkeypatch):
    monkeypatch.setenv("AGECAM_MODELS", str(models_folder))
    assert available_models() == ["a", "b", "both"]
    assert resolve_model_path("both") == models_folder / "both.json"
    ensemble, member = AgeModel.load("both"), AgeModel.load("a")
    faces = [np.random.default_rng(0).integers(0, 255, (50, 40, 3), np.uint8)]
    np.testing.assert_allclose(ensemble.predict(faces), member.predict(faces), rtol=1e-5)  # same weights twice
    assert ensemble.runtime == "keras" and ensemble.input_size == 32
    with pytest.raises(ModelError, match="names no members"):
        AgeModel.load(models_folder / "notes.json")
    (models_folder / "b.keras").unlink()
    with pytest.raises(ModelError, match="not found"):
        AgeModel.load("both")


def test_report_lists_an_ensemble_without_training_columns(models_folder):
    cards = load_cards(models_folder)
    assert list(cards) == ["both"]  # the plain copies have no cards
    row = models_table(cards).splitlines()[2]
    assert row.startswith("| `both` | mean of members | 32 px | mean of a + b | 5 | 4.00 |") and row.endswith("| - | - |")
    assert tool_runtimes(cards, models_folder) == {"both": "keras"}


def test_ensemble_command_evaluates_and_writes_the_card(models_folder, utk_dir):
    result = run_agecam("ensemble", "--data", utk_dir, "--members", "a,b", "--name", "pair",
                        env={**os.environ, "AGECAM_MODELS": str(models_folder)})
    assert result.returncode == 0, result.stderr
    card = json.loads((models_folder / "pair.json").read_text())
    assert card["members"] == ["a", "b"] and card["metrics"]["test"]["n"] > 800
    assert f"test MAE {card['metrics']['test']['mae']:.2f}" in result.stdout
    clash = run_agecam("ensemble", "--data", utk_dir, "--members", "a,b", "--name", "a",
                       env={**os.environ, "AGECAM_MODELS": str(models_folder)})
    assert clash.returncode == 1 and "another --name" in clash.stderr and "Traceback" not in clash.stderr


def test_shipped_ensembles_were_measured_on_the_shipped_members():
    from agecam.core.age_model import models_dir
    from agecam.core.onnx_runner import file_sha256

    for card_path in models_dir().glob("*.json"):
        card = json.loads(card_path.read_text())
        for name, digest in card.get("member_sha256", {}).items():
            assert file_sha256(models_dir() / f"{name}.keras") == digest, (
                f"{card_path.name}: {name}.keras changed since the ensemble was evaluated; "
                f"rerun {card['command']}")
