"""Run an age model exported to ONNX with ONNX Runtime: the fast inference path on a CPU.

A shipped ``models/NAME.onnx`` is made from ``models/NAME.keras`` by ``training.export_onnx``
and carries the SHA-256 of that ``.keras`` file in its metadata, so agecam uses it only while
it is the same model: retrain without re-exporting and the Keras model is used instead.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SOURCE_DIGEST_KEY = "agecam_source_sha256"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxRunner:
    """Ages for preprocessed face batches, computed by ONNX Runtime.

    Example::

        runner = OnnxRunner.load(Path("models/resnet50.onnx"))
        ages = runner(np.zeros((2, runner.input_size, runner.input_size, 3), np.float32))
    """

    runtime = "onnx"

    def __init__(self, session, path: Path):
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name
        self.input_size = int(session.get_inputs()[0].shape[1])
        self.source_sha256 = session.get_modelmeta().custom_metadata_map.get(SOURCE_DIGEST_KEY)

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "OnnxRunner":
        """``threads``: intra-op threads (0: ONNX Runtime's default, one per physical core)."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Spinning worker threads would take CPU from detection and encoding between calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls(session, Path(path))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (ages,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(ages, np.float32).reshape(-1)


def matching_onnx_runner(keras_path: Path, threads: int = 0) -> tuple[OnnxRunner | None, str]:
    """A runner for the ONNX export beside ``keras_path`` if it is usable, else None and why not."""
    candidate = Path(keras_path).with_suffix(".onnx")
    if not candidate.is_file():
        return None, f"no {candidate.name} beside it"
    try:
        runner = OnnxRunner.load(candidate, threads)
    except ImportError:
        return None, "onnxruntime is not installed"
    except Exception as error:  # ONNX Runtime raises its own types for unreadable files
        text = str(error).strip().splitlines()
        return None, f"{candidate.name} cannot be read ({text[0] if text else type(error).__name__})"
    if runner.source_sha256 != file_sha256(Path(keras_path)):
        return None, (f"{candidate.name} was exported from another version of {Path(keras_path).name}; "
                      "re-export it with 'python -m agecam.training.export_onnx'")
    return runner, ""
