"""Training settings that differ by architecture, chosen by measurement (see the model cards).

A light module (no Keras), so the command line shows them in its help.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchDefaults:
    """What a run of one architecture uses unless told otherwise."""

    img_size: int
    lr: float  # peak learning rate
    weight_decay: float  # AdamW, decoupled
    warmup_epochs: float  # linear warm-up; a 50-layer net from random weights needs one epoch


# Keras dtype policies a run may train under (--precision): any architecture, float32 the default.
PRECISIONS = ("float32", "mixed_bfloat16")

ARCH_DEFAULTS = {"cnn": ArchDefaults(96, 2e-3, 1e-4, 0.0), "resnet50": ArchDefaults(96, 1e-3, 1e-2, 1.0)}


def defaults_text(setting: str) -> str:
    """``cnn 2e-3, resnet50 1e-3``: one setting's default per architecture, for help texts."""
    return ", ".join(f"{arch} {getattr(d, setting):g}" for arch, d in ARCH_DEFAULTS.items())
