import numpy as np
import pytest

from agecam.core.age_model import AgeModel
from agecam.core.float16 import convert, is_float16
from agecam.training.models import build_cnn, build_resnet50


@pytest.mark.parametrize("build", [lambda: build_cnn(32), lambda: build_resnet50(32)])
def test_float16_file_is_half_the_size_and_loads_as_float32(tmp_path, build):
    import keras

    keras.utils.set_random_seed(1)
    model = build()
    full, half = tmp_path / "full.keras", tmp_path / "half.keras"
    model.save(full)
    convert(model, "float16").save(half)
    assert half.stat().st_size < 0.6 * full.stat().st_size

    loaded = AgeModel.load(half)
    assert not is_float16(loaded.keras_model)
    faces = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    reference = AgeModel.load(full).predict_preprocessed(faces)
    assert np.abs(loaded.predict_preprocessed(faces) - reference).max() < 0.1  # years
