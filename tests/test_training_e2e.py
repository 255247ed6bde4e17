"""A tiny real training run through the CLI: model, card and plots, loadable by evaluate and core."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import run_agecam

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, utk_dir):
    """60 real faces of varied ages plus a corrupt file and a malformed name."""
    folder = tmp_path_factory.mktemp("utk")
    names = sorted(p.name for p in utk_dir.iterdir() if p.name[0].isdigit())
    for name in names[:: len(names) // 60][:60]:
        shutil.copy(utk_dir / name, folder / name)
    (folder / "35_0_0_20170101000000000.jpg.chip.jpg").write_bytes(b"\xff\xd8corrupt")
    shutil.copy(utk_dir / "61_1_20170109142408075.jpg.chip.jpg", folder)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    work = tmp_path_factory.mktemp("run")
    result = run_agecam("train", "--data", tiny_dataset, "--arch", "cnn", "--epochs", 1, "--img-size", 32,
                        "--batch-size", 16, "--out", work / "tiny", "--manifest", work / "split.csv",
                        "--assets", work / "assets", "--warmup-epochs", 0.5, "--weight-decay", 0.001)
    assert result.returncode == 0, result.stderr
    return work, result


def test_training_writes_model_card_and_plots(trained):
    work, result = trained
    assert (work / "tiny.keras").is_file()
    # At the default verbosity the run's own progress shows, other libraries' INFO lines do not (#49).
    assert "INFO agecam.training.train: data:" in result.stderr and "INFO matplotlib" not in result.stderr
    card = json.loads((work / "tiny.json").read_text())
    assert card["architecture"] == "cnn" and card["input_size"] == 32
    assert card["data"]["skipped"] == {"malformed name": 1, "unreadable image": 1}
    assert card["training"]["epochs_run"] == 1
    assert card["training"]["config"]["warmup_epochs"] == 0.5
    assert card["training"]["config"]["weight_decay"] == 0.001
    test = card["metrics"]["test"]
    assert card["target"]["test_mae_at_most"] == 4.9
    assert card["target"]["met"] == (test["mae"] <= 4.9)
    assert card["head"] == "regression"
    assert card["training"]["config"]["precision"] in ("float32", "mixed_bfloat16")  # "auto" resolved
    # The list of training faces sits beside the model: exactly the train split's readable faces.
    trained_on = (work / card["data"]["train_files"]).read_text().split()
    assert len(trained_on) == card["data"]["split_sizes"]["train"]
    assert test["n"] == card["data"]["split_sizes"]["test"] > 0
    assert test["rmse"] == pytest.approx(np.sqrt(test["mse"]))
    for name in ("cnn_training_plot.png", "cnn_prediction_plot.png", "cnn_error_by_age.png"):
        image = cv2.imread(str(work / "assets" / name))
        assert image is not None and image.shape[0] > 200, name
    assert "test MAE" in result.stdout


def test_evaluate_and_core_load_the_trained_model(trained, tiny_dataset):
    work, _ = trained
    result = run_agecam("evaluate", "--data", tiny_dataset, "--model", work / "tiny.keras", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"n", "mae", "mse", "rmse", "bias", "by_age"}
    assert metrics["n"] == 60
    assert metrics["rmse"] >= metrics["mae"] > 0

    split = run_agecam("evaluate", "--data", tiny_dataset, "--model", work / "tiny.keras", "--split", "test",
                       "--manifest", work / "split.csv", "--json")
    card = json.loads((work / "tiny.json").read_text())
    assert json.loads(split.stdout)["mae"] == pytest.approx(card["metrics"]["test"]["mae"], abs=1e-3)

    from agecam.core.age_model import AgeModel

    model = AgeModel.load(work / "tiny.keras")
    assert model.predict([np.zeros((50, 50, 3), np.uint8)]).shape == (1,)


def test_evaluate_redraws_the_figures_of_a_trained_model(trained, tiny_dataset, tmp_path):
    work, _ = trained
    card = json.loads((work / "tiny.json").read_text())
    assert len(card["training"]["history"]["loss"]) == card["training"]["epochs_run"] == 1
    result = run_agecam("evaluate", "--data", tiny_dataset, "--model", work / "tiny.keras", "--split", "test",
                        "--manifest", work / "split.csv", "--figures", tmp_path / "figures", "--json")
    assert result.returncode == 0, result.stderr
    names = ("cnn_training_plot.png", "cnn_prediction_plot.png", "cnn_error_by_age.png")
    assert sorted(Path(p).name for p in json.loads(result.stdout)["figures"]) == sorted(names)
    for name in names:
        image = cv2.imread(str(tmp_path / "figures" / name))
        assert image is not None and image.shape[0] > 200, name

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    refused = run_agecam("evaluate", "--data", tiny_dataset, "--model", work / "tiny.keras", "--figures", blocked)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr


def test_resume_continues_from_the_last_epoch(trained, tiny_dataset):
    work, _ = trained
    result = run_agecam("train", "--data", tiny_dataset, "--epochs", 2, "--img-size", 32, "--batch-size", 16,
                        "--out", work / "tiny", "--manifest", work / "split.csv", "--assets", work / "assets",
                        "--resume")
    assert result.returncode == 0, result.stderr
    assert f"resuming the run in {work / 'tiny.run'} after epoch 1" in result.stderr
    assert json.loads((work / "tiny.json").read_text())["training"]["epochs_run"] == 2
    assert "Epoch 2/2" in result.stdout and "Epoch 1/2" not in result.stdout


def test_target_status_says_by_how_much_a_target_is_missed():
    from agecam.training.train import target_status

    assert target_status("resnet50", 5.23) == {"test_mae_at_most": 4.8, "met": False, "missed_by": 0.43}
    assert target_status("cnn", 4.59) == {"test_mae_at_most": 4.9, "met": True, "missed_by": 0.0}
    assert target_status("unknown", 3.0) is None


def test_auto_precision_is_bfloat16_only_on_a_cpu_with_bfloat16_kernels(monkeypatch):
    from agecam.core import hardware
    from agecam.training.arch_defaults import resolve_precision

    assert resolve_precision("auto", bfloat16_cpu=True) == "mixed_bfloat16"
    assert resolve_precision("auto", bfloat16_cpu=False) == "float32"
    assert resolve_precision("float32", bfloat16_cpu=True) == "float32"
    assert resolve_precision("mixed_bfloat16", bfloat16_cpu=False) == "mixed_bfloat16"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("float16", bfloat16_cpu=True)
    for flags, native in (("fpu avx2 avx512f avx512_bf16", True), ("fpu avx2 amx_bf16 amx_tile", True),
                          ("fpu avx2 avx512f avx512_vnni", False), ("", False)):
        monkeypatch.setattr(hardware, "_cpuinfo", lambda flags=flags: ["model name : x", f"flags : {flags}"])
        assert hardware.bfloat16_matmul() is native, flags


def test_photometric_families_are_the_shares_of_the_photometric_config():
    import dataclasses

    from agecam.training.arch_defaults import PHOTOMETRIC_FAMILIES
    from agecam.training.perturb import PhotometricConfig

    shares = [f.name for f in dataclasses.fields(PhotometricConfig)
              if not f.name.startswith("max_") and not f.name.endswith("_range")]
    assert list(PHOTOMETRIC_FAMILIES) == shares


@pytest.mark.parametrize("share, message", [("greyscale=1.5", "from 0 to 1"), ("greyscale=lots", "from 0 to 1"),
                                            ("sepia=0.2", "unknown family")])
def test_a_bad_photometric_share_is_a_one_line_usage_error(tiny_dataset, tmp_path, share, message):
    result = run_agecam("train", "--data", tiny_dataset, "--out", tmp_path / "m", "--photometric-share", share)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.keras").exists()


def test_learning_rate_warms_up_then_decays(tmp_path):
    from agecam.training.train import TrainConfig, learning_rate_schedule

    config = TrainConfig(data=tmp_path, epochs=10, lr=1e-3, warmup_epochs=1)
    schedule = learning_rate_schedule(config, steps_per_epoch=100)
    rates = [float(schedule(step)) for step in (0, 50, 100, 550, 1000)]
    assert rates[0] < rates[1] < rates[2] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] == pytest.approx(2e-5)
    flat = learning_rate_schedule(TrainConfig(data=tmp_path, epochs=10, lr=1e-3), steps_per_epoch=100)
    assert float(flat(0)) == pytest.approx(1e-3)


def test_init_from_a_trained_model_starts_where_it_ended(trained, tiny_dataset, tmp_path):
    from agecam.core.age_model import AgeModel

    work, _ = trained
    result = run_agecam("train", "--data", tiny_dataset, "--epochs", 1, "--img-size", 32, "--batch-size", 16,
                        "--lr", 1e-9, "--init-from", work / "tiny.keras", "--out", tmp_path / "again",
                        "--manifest", work / "split.csv", "--assets", tmp_path / "assets")
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "again.json").read_text())
    assert card["weights_init"] == "model:tiny.keras"
    first = json.loads((work / "tiny.json").read_text())
    assert [stage["epochs_run"] for stage in card["earlier_stages"]] == [first["training"]["epochs_run"]]
    assert card["earlier_stages"][0]["test_mae"] == first["metrics"]["test"]["mae"]
    # With a vanishing learning rate the continued model keeps the kernels it started from
    # (a fresh random initialisation would not).
    before, after = AgeModel.load(work / "tiny.keras"), AgeModel.load(tmp_path / "again.keras")
    kernel = "block1_conv1"
    start = before.keras_model.get_layer(kernel).get_weights()[0]
    np.testing.assert_allclose(after.keras_model.get_layer(kernel).get_weights()[0], start, atol=1e-5)
    assert np.abs(start).max() > 1e-3

    wrong = run_agecam("train", "--data", tiny_dataset, "--arch", "resnet50", "--epochs", 1, "--img-size", 32,
                       "--init-from", work / "tiny.keras", "--out", tmp_path / "wrong", "--manifest", work / "split.csv",
                       "--assets", tmp_path / "assets")
    assert wrong.returncode == 1 and "cannot start from it" in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no UTKFace-named images"),
    (lambda d: (d / "holiday.jpg").write_bytes(b"x"), "no UTKFace-named images"),
])
def test_train_on_unusable_folders_fails_in_one_line(tmp_path, setup, message):
    setup(tmp_path)
    result = run_agecam("train", "--data", tmp_path, "--epochs", 1, "--out", tmp_path / "m",
                        "--manifest", tmp_path / "s.csv", "--assets", tmp_path / "a")
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_evaluate_bad_model_path_fails_in_one_line(tmp_path, tiny_dataset):
    (tmp_path / "junk.keras").write_text("junk")
    for model in (tmp_path / "missing.keras", tmp_path / "junk.keras"):
        result = run_agecam("evaluate", "--data", tiny_dataset, "--model", model)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("agecam: error:")


def test_distribution_head_trains_end_to_end(tiny_dataset, tmp_path):
    from agecam.core.age_model import AgeModel

    result = run_agecam("train", "--data", tiny_dataset, "--epochs", 1, "--img-size", 32, "--batch-size", 16,
                        "--head", "distribution", "--out", tmp_path / "dist", "--manifest", tmp_path / "split.csv",
                        "--assets", tmp_path / "assets")
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "dist.json").read_text())
    assert card["head"] == "distribution" and card["training"]["config"]["head"] == "distribution"
    history = (tmp_path / "dist.run" / "history.csv").read_text().splitlines()[0].split(",")
    assert "dist_loss" in history and "val_age_mae" in history  # both losses were trained
    assert card["training"]["best_epoch"] == 1  # the checkpoint monitor found its metric
    ages = AgeModel.load(tmp_path / "dist.keras").predict([np.zeros((40, 40, 3), np.uint8)])
    assert ages.shape == (1,) and 0 <= ages[0] <= 116  # an expectation over the bins 0..116


def test_calibrate_records_ranges_and_degraded_metrics(trained, utk_full_dir, utk_dir, tmp_path, astronaut_png):
    work, _ = trained
    for suffix in (".keras", ".json"):
        shutil.copy(work / f"tiny{suffix}", tmp_path / f"tiny{suffix}")
    # A small robustness sample keeps this test quick; the shipped cards use the standard one.
    result = run_agecam("calibrate", "--model", tmp_path / "tiny.keras", "--data", utk_full_dir, "--part1", utk_dir,
                        "--robustness-faces", "200")
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["metrics"]["test"]["n"] > card["metrics"]["test_part1"]["n"] > 800
    assert set(card["degraded"]["test_part1"]) == {"32", "48", "64", "96"}
    coverage = card["age_range"]["test"]["coverage"]
    assert 0.6 < coverage < 0.95  # calibrated on validation, measured on test
    assert card["age_range"]["calibration"]["coverage"] == 0.8
    assert card["assessed"]["command"].startswith("agecam calibrate")
    robustness = card["robustness"]["test"]
    assert {"clean", "greyscale", "CLAHE", "JPEG q30", "face 48 px", "rotation +15"} <= set(robustness)
    assert robustness["clean"]["n"] == card["robustness"]["faces"] == 200
    assert card["assessed"]["command"].endswith("--robustness-faces 200")
    assert robustness["clean"]["mae_increase"] == 0.0
    assert robustness["clean"]["bias_shift"] == 0.0

    gate = card["age_range"]["gate"]
    assert gate["calibration"]["coverage"] == 0.96 and set(gate["test"]) == {"18", "25"}
    assert gate["test"]["18"]["faces"] == card["metrics"]["test"]["n"]

    # The gate on generated tracks, recorded beside the rest (calibrate's records are kept).
    tracks = run_agecam("gate-test", "--model", tmp_path / "tiny.keras", "--data", utk_full_dir, "--views", "2",
                        "--record", "--json")
    assert tracks.returncode == 0, tracks.stderr
    result = json.loads(tracks.stdout)
    assert result["faces"] == card["metrics"]["test"]["n"] and set(result["gates"]) == {"18", "25"}
    stored = json.loads((tmp_path / "tiny.json").read_text())
    assert stored["age_range"]["gate"]["tracks"]["gates"] == result["gates"]
    assert stored["robustness"] == card["robustness"] and stored["age_range"]["calibration"] == card["age_range"]["calibration"]

    # The calibration reaches the outputs: image JSON gains age_range, evaluate reports coverage.
    image = run_agecam("image", astronaut_png, "--json", "--model", tmp_path / "tiny.keras")
    assert image.returncode == 0, image.stderr
    face = json.loads(image.stdout)[0]["faces"][0]
    low, high = face["age_range"]
    assert low <= face["age"] <= high
    evaluated = run_agecam("evaluate", "--data", utk_dir, "--model", tmp_path / "tiny.keras", "--split", "test",
                           "--degrade", "48,64", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["n"] == card["metrics"]["test_part1"]["n"]
    assert metrics["degraded"]["64"]["mae"] == pytest.approx(card["degraded"]["test_part1"]["64"]["mae"], abs=1e-3)
    assert metrics["age_range"]["coverage"] == pytest.approx(card["age_range"]["test_part1"]["coverage"])
    suite = run_agecam("evaluate", "--data", utk_dir, "--model", tmp_path / "tiny.keras", "--split", "test",
                       "--robustness")
    assert suite.returncode == 0, suite.stderr
    assert "CLAHE" in suite.stdout and "greyscale" in suite.stdout
    bad = run_agecam("evaluate", "--data", utk_dir, "--model", tmp_path / "tiny.keras", "--degrade", "big")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "--degrade" in bad.stderr


def test_evaluate_on_a_folder_of_unreadable_images_fails_in_one_line(tmp_path, tiny_model_path):
    for age in (20, 30):
        (tmp_path / f"{age}_0_0_2017010100000000{age}.jpg.chip.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    result = run_agecam("evaluate", "--data", tmp_path, "--model", tiny_model_path, "--json")
    assert result.returncode == 1 and "no readable image" in result.stderr
    assert "Traceback" not in result.stderr and "NaN" not in result.stdout


def test_training_outside_models_writes_only_beside_its_output(tiny_dataset, tmp_path):
    from conftest import MANIFEST, REPO

    manifest = tmp_path / "split.csv"
    shutil.copy(MANIFEST, manifest)
    extra = tmp_path / "data"
    shutil.copytree(tiny_dataset, extra)
    new_face = extra / "33_1_0_20990101000000000.jpg.chip.jpg"  # not in the manifest
    shutil.copy(next(extra.glob("3*_*.chip.jpg")), new_face)
    before = {p.name: p.stat().st_mtime_ns for p in (REPO / "assets").iterdir()}
    listed = manifest.read_text()
    result = run_agecam("train", "--data", extra, "--epochs", 1, "--img-size", 32, "--batch-size", 16,
                        "--out", tmp_path / "run" / "m", "--manifest", manifest)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "cnn_training_plot.png").is_file()  # figures beside the model
    assert {p.name: p.stat().st_mtime_ns for p in (REPO / "assets").iterdir()} == before
    assert manifest.read_text() == listed  # the manifest changes only with --update-manifest
    result = run_agecam("train", "--data", extra, "--epochs", 1, "--img-size", 32, "--batch-size", 16,
                        "--out", tmp_path / "run" / "m", "--manifest", manifest, "--update-manifest")
    assert result.returncode == 0, result.stderr
    assert new_face.name in manifest.read_text()


def test_resume_survives_a_backup_cut_short_by_a_kill(tiny_dataset, tmp_path):
    common = ["--data", tiny_dataset, "--img-size", 32, "--batch-size", 16, "--out", tmp_path / "m",
              "--manifest", tmp_path / "split.csv"]
    result = run_agecam("train", *common, "--epochs", 2)
    assert result.returncode == 0, result.stderr
    latest = tmp_path / "m.run" / "backup" / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[:1000])  # what a SIGKILL during the rewrite leaves
    result = run_agecam("train", *common, "--epochs", 3, "--resume")
    assert result.returncode == 0, result.stderr
    assert "Epoch 3/3" in result.stdout  # carried on from the generation before
    assert json.loads((tmp_path / "m.json").read_text())["training"]["epochs_run"] >= 2


def test_training_with_an_extra_source_and_the_new_augmentation(tiny_dataset, tmp_path, test_split_faces):
    """A source in AiDataset's layout joins the training split only, re-cut, age-balanced, on the card."""
    rng = np.random.default_rng(4)
    for i, (face, age, _) in enumerate(test_split_faces):
        canvas = cv2.GaussianBlur(rng.integers(40, 220, (160, 160, 3), dtype=np.uint8), (0, 0), 5)
        canvas[30:130, 30:130] = cv2.resize(face, (100, 100), interpolation=cv2.INTER_AREA)
        folder = tmp_path / "extra" / "20-50" / "train" / str(30 + i)
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / f"{i}.jpg"), canvas)
    result = run_agecam("train", "--data", tiny_dataset, "--epochs", 1, "--img-size", 32, "--batch-size", 16,
                        "--out", tmp_path / "m", "--manifest", tmp_path / "split.csv", "--extra-data",
                        tmp_path / "extra", "--cache-dir", tmp_path / "cache",
                        "--photometric-share", "greyscale=0.4", "--photometric-share", "old-print=0")
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "m.json").read_text())
    (source,) = card["data"]["extra_sources"]
    assert source["faces_used"] == 3 and source["ages"] == [30, 32] and source["splits"] == ["train"]
    photometric = card["training"]["config"]["augment"]["photometric"]
    assert photometric["greyscale"] == 0.4 and photometric["old_print"] == 0.0
    assert photometric["cast"] > 0  # the families not named keep their default share
    trained_on = (tmp_path / card["data"]["train_files"]).read_text().split()
    assert sum(name.startswith("20-50:train/") for name in trained_on) == 3
    assert len(trained_on) == card["data"]["split_sizes"]["train"] + 3  # the split sizes are UTKFace's


def test_bfloat16_training_saves_a_float32_model(tiny_dataset, tmp_path):
    from agecam.core.age_model import AgeModel

    result = run_agecam("train", "--data", tiny_dataset, "--epochs", 1, "--img-size", 32, "--batch-size", 16,
                        "--precision", "mixed_bfloat16", "--out", tmp_path / "bf16",
                        "--manifest", tmp_path / "split.csv", "--assets", tmp_path / "assets")
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "bf16.json").read_text())
    assert card["training"]["config"]["precision"] == "mixed_bfloat16"
    history = (tmp_path / "bf16.run" / "history.csv").read_text().splitlines()
    loss = float(history[1].split(",")[history[0].split(",").index("loss")])
    assert np.isfinite(loss) and loss > 0  # the bfloat16 steps computed a real loss
    model = AgeModel.load(tmp_path / "bf16.keras", runtime="keras").keras_model
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}  # saved for float32 inference
    ages = AgeModel.load(tmp_path / "bf16.keras").predict([np.full((40, 40, 3), 128, np.uint8)])
    assert 0 <= ages[0] <= 116


def test_compact_residual_net_trains_at_its_own_input_size(tiny_dataset, tmp_path):
    from agecam.core.age_model import AgeModel

    result = run_agecam("train", "--data", tiny_dataset, "--arch", "resnet10", "--epochs", 1, "--batch-size", 16,
                        "--out", tmp_path / "res10", "--manifest", tmp_path / "split.csv",
                        "--assets", tmp_path / "assets")
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "res10.json").read_text())
    assert card["architecture"] == "resnet10" and card["input_size"] == 64  # its default, not the CNN's 96
    assert card["weights_note"].startswith("trained from scratch")
    assert (tmp_path / "assets" / "resnet10_prediction_plot.png").is_file()
    model = AgeModel.load(tmp_path / "res10.keras", runtime="keras")
    assert any(layer.name == "stage4_add" for layer in model.keras_model.layers)  # residual, not the CNN
    ages = model.predict([np.full((80, 80, 3), 128, np.uint8)])
    assert ages.shape == (1,) and 0 <= ages[0] <= 116


def test_a_model_trained_in_stages_gets_its_loss_figure_from_the_stages(tmp_path):
    from agecam.training.plots import write_model_figures

    stages = ([{"epochs_run": 30, "val_mae": 5.6, "test_mae": 5.6}, {"epochs_run": 14, "val_mae": 6.5, "test_mae": 6.6}],
              {"epochs": 5, "val_mae": 6.2, "test_mae": 6.2})
    written = write_model_figures("cnn", tmp_path, [], [], {}, history=None, stages=stages)
    assert [p.name for p in written] == ["cnn_training_plot.png"] and written[0].stat().st_size > 10_000
    assert write_model_figures("cnn", tmp_path / "none", [], [], {}, history=None, stages=None) == []
