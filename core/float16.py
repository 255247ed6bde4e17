"""Store a Keras model's weights in float16 (half the file) and run it in float32.

A shipped ResNet50 is ~94 MB in float32; in float16 it fits the repository's ~50 MB budget.
Saving builds the same architecture under the ``float16`` dtype policy; loading rebuilds it
under ``float32`` from the saved config and widens the weights, so inference (and accuracy,
to within float16 rounding of the weights) is as before.
"""

from __future__ import annotations

import keras
import numpy as np


def _with_dtype(config, dtype: str):
    """A copy of a (nested) layer config with every dtype policy replaced by ``dtype``."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            return {**config, "config": {**config.get("config", {}), "name": dtype}}
        return {key: _with_dtype(value, dtype) for key, value in config.items()}
    if isinstance(config, list):
        return [_with_dtype(value, dtype) for value in config]
    return config


def is_float16(model: keras.Model) -> bool:
    return any(w.dtype == "float16" for w in model.weights)


def convert(model: keras.Model, dtype: str) -> keras.Model:
    """The same model with ``dtype`` weights and computation (``float16`` or ``float32``)."""
    clone = model.__class__.from_config(_with_dtype(model.get_config(), dtype))
    clone.set_weights([np.asarray(w).astype(dtype) for w in model.get_weights()])
    return clone
