"""Synthetic scenes: faces moving over a background, for the demo, tests and benchmarks.

The project may ship no face photo but scikit-image's public-domain ``astronaut``; tests add
UTKFace crops read from ``../shared`` at run time. Every scene is reproducible from its seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .sinks import VideoSink


@dataclass(frozen=True)
class SceneConfig:
    """Frame size, clip length, face size and motion of a synthetic scene."""

    width: int = 640
    height: int = 480
    frames: int = 90
    fps: float = 30.0
    face_size: int = 130
    seed: int = 0
    speed: float = 1.0  # multiplies every face's speed
    occlusions: bool = False  # now and then a face is hidden for a few frames (a hand, a passer-by)
    crossing: bool = False  # faces in pairs walk across the frame towards each other and pass (one hides the other)
    pass_every_s: float = 4.0  # with crossing: seconds between two passes of a pair (at speed 1)
    exits: bool = False  # now and then a face leaves the view for 1.5-3 s and comes back where its path has gone


def astronaut_face() -> np.ndarray:
    """Eileen Collins' head from scikit-image's public-domain ``astronaut`` photo (BGR)."""
    from skimage import data

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return image[30:250, 115:335].copy()  # head with some hair and neck around the face


def background(config: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.mgrid[0 : config.height, 0 : config.width].astype(np.float32)
    base = rng.uniform(60, 200, size=3)
    tilt = rng.uniform(-0.1, 0.1, size=3)
    frame = np.stack([base[c] + tilt[c] * (xs + ys) / 4 for c in range(3)], axis=2)
    frame += rng.normal(0, 4, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def face_paths(count: int, config: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Top-left corners ``(frames, count, 2)`` of faces gliding in separate vertical lanes.

    Each face sways sideways within its lane and glides up and down, so faces never overlap.
    """
    size = config.face_size
    t = np.arange(config.frames)[:, None] / config.fps
    lane_width = config.width / count
    centre_x = lane_width * (np.arange(count) + 0.5)
    sway = max(0.0, (lane_width - size) / 2 - 2)
    speed = rng.uniform(0.15, 0.3, size=count) * config.speed
    phase = rng.uniform(0, 2 * np.pi, size=count)
    x = centre_x - size / 2 + sway * np.sin(2 * np.pi * speed * t + phase)
    y = (config.height - size) * (0.5 + 0.4 * np.sin(2 * np.pi * speed * 0.7 * t + phase * 1.3))
    if config.crossing:
        x, y = _crossing_paths(count, config, t)
    return np.clip(np.stack([x, y], axis=2), 0, [config.width - size, config.height - size]).astype(int)


def _crossing_paths(count: int, config: SceneConfig, t: np.ndarray):
    """Pairs of faces share a horizontal band and walk from opposite sides, passing each other in
    the middle every ``pass_every_s`` (at ``speed`` 1); the second of a pair is pasted over the first."""
    size = config.face_size
    bands = (count + 1) // 2
    band_height = config.height / bands
    centre_y = band_height * (np.arange(count) // 2 + 0.5)
    u = (t / (2 * config.pass_every_s / config.speed)) % 1.0
    across = (config.width - size) * (1 - np.abs(2 * u - 1))  # 0 -> right edge -> 0, two passes
    x = np.where(np.arange(count) % 2 == 0, across, (config.width - size) - across)
    y = centre_y - size / 2 + 0.05 * band_height * np.sin(2 * np.pi * t / 3.0 + np.arange(count))
    return x, np.broadcast_to(y, x.shape)


def render_scene(faces: list[np.ndarray], config: SceneConfig = SceneConfig()):
    """Yield ``(frame, boxes)`` for each frame; boxes are the pasted faces' xyxy, one per face (NaN
    while that face is hidden)."""
    rng = np.random.default_rng(config.seed)
    scenery = background(config, rng)
    tiles = [cv2.resize(face, (config.face_size, config.face_size), interpolation=cv2.INTER_AREA) for face in faces]
    paths = face_paths(len(tiles), config, rng)
    hidden = _occlusions(config, len(tiles), rng)
    size = config.face_size
    for corners, covered in zip(paths, hidden):
        frame = scenery.copy()
        boxes = []
        for tile, (x, y), face_hidden in zip(tiles, corners, covered):
            if face_hidden:
                boxes.append((np.nan,) * 4)
            else:
                frame[y : y + size, x : x + size] = tile
                boxes.append((x, y, x + size, y + size))
        yield frame, np.asarray(boxes, np.float32)


def _occlusions(config: SceneConfig, count: int, rng: np.random.Generator) -> np.ndarray:
    """``(frames, count)`` True where a face is hidden: with ``occlusions``, 0.1-0.3 s about every 4 s;
    with ``exits``, 1.5-3 s (longer than a track lives unseen) about every 7 s."""
    hidden = np.zeros((config.frames, count), bool)
    for wanted, first, length_s, every_s in ((config.occlusions, (0.5, 4.0), (0.1, 0.3), (3.0, 5.0)),
                                              (config.exits, (1.0, 3.0), (1.5, 3.0), (6.0, 8.0))):
        if not wanted:
            continue
        for face in range(count):
            start = rng.uniform(*first) * config.fps
            while start < config.frames:
                length = rng.uniform(*length_s) * config.fps
                hidden[int(start):int(start + length), face] = True
                start += rng.uniform(*every_s) * config.fps
    return hidden


def write_scene(path: str | os.PathLike, faces: list[np.ndarray], config: SceneConfig = SceneConfig()) -> Path:
    """Render a scene to a video file and return its path."""
    with VideoSink(path, config.fps, (config.width, config.height)) as sink:
        for frame, _ in render_scene(faces, config):
            sink.write(frame)
    return Path(path)
