"""What the machine is, for measurements that depend on it (benchmarks, int8 parity, training time).

Example::

    from agecam.core.hardware import machine
    machine()  # {"cpu": "AMD EPYC", "cores": 2, "int8_kernels": "avx2"}
"""

from __future__ import annotations

import os
import platform


def _cpuinfo() -> list[str]:
    try:
        with open("/proc/cpuinfo") as stream:
            return stream.read().splitlines()
    except OSError:  # not Linux
        return []


def _field(name: str) -> str | None:
    for line in _cpuinfo():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform says, else ``unknown``."""
    return _field("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity, e.g. a container's limit), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def int8_kernels() -> str:
    """Which of ONNX Runtime's int8 matrix kernels this CPU runs: ``vnni`` (AVX512-VNNI or AVX-VNNI),
    ``avx2``, or the machine's architecture. They give different ages: the AVX2 u8s8 kernels add
    pairs of products in 16 bits, which saturate (on an AVX2-only EPYC the shipped int8 models
    differed from the float ones by up to 75 years where a VNNI CPU measured 2.6), so a parity
    record holds only on CPUs of the kind it was measured on."""
    flags = set((_field("flags") or "").split())
    if flags & {"avx512_vnni", "avx_vnni"}:
        return "vnni"
    if "avx2" in flags:
        return "avx2"
    return platform.machine().lower() or "unknown"


def bfloat16_matmul() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX-BF16): only there
    does Keras' ``mixed_bfloat16`` policy train faster than float32 (far slower without)."""
    return bool(set((_field("flags") or "").split()) & {"avx512_bf16", "amx_bf16"})


def machine() -> dict:
    """The CPU, the cores this process may use and its int8 kernels: saved beside every speed figure."""
    return {"cpu": cpu_model(), "cores": cpu_cores(), "int8_kernels": int8_kernels()}


def machine_text(described: dict | None) -> str:
    """``AMD EPYC, 2 cores, avx2`` for a saved :func:`machine`, or ``not recorded``."""
    if not described:
        return "not recorded"
    return f"{described['cpu']}, {described['cores']} cores, {described['int8_kernels']} int8"
