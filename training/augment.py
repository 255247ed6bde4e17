"""Training batches with CPU augmentation, as a backend-neutral ``keras.utils.PyDataset``."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import keras
import numpy as np

from .degrade import DegradeConfig, degrade_face
from .perturb import PhotometricConfig, random_photometric


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes applied to each training face."""

    flip: bool = True
    max_shift: float = 0.08  # fraction of the side
    # Zoom (log-uniform): covers crop margins from x0.8 to x1.25 of the calibrated one, since a
    # detector's box wanders by that much between photos, cameras and head poses.
    scale_range: tuple[float, float] = (0.8, 1.25)
    max_rotation_deg: float = 18.0
    brightness: float = 0.15  # fraction of 255 added or removed
    contrast_range: tuple[float, float] = (0.6, 1.3)
    # Colour, tone and detail changes of cameras and photo apps (training.perturb); None: off.
    photometric: PhotometricConfig | None = PhotometricConfig()
    # Small, compressed, soft faces as the live pipeline sees them (training.degrade); None: off.
    degrade: DegradeConfig | None = DegradeConfig()


def camera_rendering(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """A uint8 face as a camera or photo app might render it: the photometric changes, then the
    degradation (each when ``config`` has it on), no geometry."""
    if config.photometric is not None:
        image = random_photometric(image, rng, config.photometric)
    if config.degrade is not None:
        image = degrade_face(image, rng, config.degrade)
    return image


def augment_face(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """One randomly flipped, shifted, scaled, rotated, re-lit and (maybe) degraded copy of a uint8 face."""
    size = image.shape[0]
    if config.flip and rng.random() < 0.5:
        image = image[:, ::-1]
    angle = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    scale = float(np.exp(rng.uniform(*np.log(config.scale_range))))
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-config.max_shift, config.max_shift, size=2) * size
    # Reflecting the border avoids black wedges the model would never see at inference.
    out = cv2.warpAffine(np.ascontiguousarray(image), matrix, (size, size), borderMode=cv2.BORDER_REFLECT_101)
    out = camera_rendering(out, rng, config).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(*config.contrast_range) + mean
    out += rng.uniform(-config.brightness, config.brightness) * 255.0
    return np.clip(out, 0.0, 255.0)


class AugmentedFaces(keras.utils.PyDataset):
    """Shuffled, augmented ``(images float32, ages[, weights])`` batches from in-memory uint8 faces.

    ``weights`` (one per face, or None) weigh each face's loss, e.g. to balance ages across sources.
    ``batches_per_epoch`` (or None: every face once) makes each epoch that many batches of a fresh
    shuffle: quick runs see a new random subset each epoch, never a pass cut short. (Keras' own
    ``steps_per_epoch`` instead goes on where the last epoch stopped and runs out of data once
    ``epochs x steps`` exceeds one pass: a 4-epoch run trained only 2 epochs that way.)
    """

    def __init__(self, images, ages, batch_size, seed=0, config=AugmentConfig(), outputs=None, weights=None,
                 batches_per_epoch: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.outputs = outputs  # output names of a multi-output model: each gets the ages
        self.images, self.ages = images, np.asarray(ages, np.float32)
        self.weights = None if weights is None else np.asarray(weights, np.float32)
        self.batch_size, self.config = batch_size, config
        self.epoch, self.seed = 0, seed
        self.batches_per_epoch = batches_per_epoch
        self._order = self._shuffled()

    def _shuffled(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __len__(self) -> int:
        every_face = int(np.ceil(len(self.images) / self.batch_size))
        return min(every_face, self.batches_per_epoch or every_face)

    def __getitem__(self, index):
        ids = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        batch = np.stack([augment_face(self.images[i], rng, self.config) for i in ids])
        ages = self.ages[ids]
        targets = {name: ages for name in self.outputs} if self.outputs else ages
        if self.weights is None:
            return batch, targets
        return batch, targets, self.weights[ids]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._shuffled()
