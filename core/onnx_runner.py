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

from .hardware import int8_kernels

log = logging.getLogger(__name__)

SOURCE_DIGEST_KEY = "agecam_source_sha256"
# ``models/NAME.int8.onnx``: the int8 version of the export (training.quantize), used only while
# the card's parity record ("int8") was made from this very file and says the rule holds.
INT8_SUFFIX = ".int8.onnx"


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

    def __init__(self, session, path: Path, runtime: str = "onnx"):
        self.runtime = runtime  # "onnx" (float) or "int8"
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name
        self.input_size = int(session.get_inputs()[0].shape[1])
        self.source_sha256 = session.get_modelmeta().custom_metadata_map.get(SOURCE_DIGEST_KEY)

    @classmethod
    def load(cls, path: Path, threads: int = 0, runtime: str = "onnx") -> "OnnxRunner":
        """``threads``: intra-op threads (0: ONNX Runtime's default, one per physical core)."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Spinning worker threads would take CPU from detection and encoding between calls.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls(session, Path(path), runtime)

    @classmethod
    def from_proto(cls, model, threads: int = 0, runtime: str = "onnx") -> "OnnxRunner":
        """A runner for an in-memory ``onnx.ModelProto`` (for measuring a model before it is written)."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return cls(session, Path("<memory>"), runtime)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        (ages,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(ages, np.float32).reshape(-1)


def matching_onnx_runner(keras_path: Path, threads: int = 0, candidate: Path | None = None,
                         runtime: str = "onnx") -> tuple[OnnxRunner | None, str]:
    """A runner for the ONNX export beside ``keras_path`` (or ``candidate``) if it is usable, else
    None and why not."""
    candidate = candidate or Path(keras_path).with_suffix(".onnx")
    if not candidate.is_file():
        return None, f"no {candidate.name} beside it"
    try:
        runner = OnnxRunner.load(candidate, threads, runtime)
    except ImportError:
        return None, "onnxruntime is not installed"
    except Exception as error:  # ONNX Runtime raises its own types for unreadable files
        text = str(error).strip().splitlines()
        return None, f"{candidate.name} cannot be read ({text[0] if text else type(error).__name__})"
    if runner.source_sha256 != file_sha256(Path(keras_path)):
        return None, (f"{candidate.name} was exported from another version of {Path(keras_path).name}; "
                      "re-export it with 'python -m agecam.training.export_onnx'")
    return runner, ""


def matching_int8_runner(keras_path: Path, card: dict, threads: int = 0,
                         need_parity: bool = True) -> tuple[OnnxRunner | None, str]:
    """A runner for ``NAME.int8.onnx`` beside ``keras_path`` when the card's parity record ("int8")
    was made from this very file with this CPU's kind of int8 kernels (:func:`int8_kernels`) and,
    with ``need_parity``, says the rule held; else None and why not."""
    candidate = Path(keras_path).with_name(Path(keras_path).stem + INT8_SUFFIX)
    record = card.get("int8")
    if not candidate.is_file():
        return None, f"no {candidate.name} beside it"
    if not isinstance(record, dict):
        return None, f"its card has no int8 parity record; run agecam quantize --model {Path(keras_path).stem}"
    # The record's own verdicts first: hashing the file (64 ms for the two shipped ones, at every
    # start-up with --runtime auto) is needed only when they let it run.
    measured_on, here = record.get("int8_kernels", "unrecorded"), int8_kernels()
    if measured_on != here:
        return None, (f"its parity record was measured with {measured_on} int8 kernels and this CPU runs {here} "
                      f"ones, whose ages differ; re-run agecam quantize --model {Path(keras_path).stem} here")
    if need_parity and not record.get("holds"):
        test = record.get("test", {})
        return None, (f"{candidate.name} missed the parity rule (largest difference "
                      f"{test.get('max_difference', float('nan')):.2f} years on the test split)")
    if record.get("sha256") != file_sha256(candidate):
        return None, f"{candidate.name} is not the file its card's parity record measured; re-run agecam quantize"
    return matching_onnx_runner(keras_path, threads, candidate, runtime="int8")
