"""The device side of the engine: which device, the precision switches, compiling, host copies.

Everything here is torch and model-agnostic: the device (`resolve_device`,
`configure_cuda`), the autocast/TF32 switches of a precision (`precision_mode`; the
precisions and their budget: hapexp.engine.precision), one-hot encoding on the device
(`onehot_lut`), torch.compile with a shared cache (`compile_fn`), asynchronous
device→host copies (`to_host`), out-of-memory errors (`is_oom`) and the host allocator
(`release_large_buffers`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    """auto → cuda when available, else cpu; cuda without a GPU is an error, never a silent fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "the model config asks for device: cuda but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); run on a GPU node "
            "(e.g. snakemake --resources gpu=1 on a GPU machine) or set device: cpu/auto"
        )
    return torch.device(device)


def configure_cuda(deterministic: bool) -> None:
    """cuDNN and TF32 for a job: deterministic = fixed kernels, same config + same data → same
    numbers (False lets cuDNN benchmark its convolution algorithms); TF32 off (strict fp32
    unless `precision_mode` turns it on)."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def release_large_buffers(threshold: int = 4 << 20) -> None:
    """Serve allocations above `threshold` bytes by mmap, returned to the OS when freed.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after
    which the per-batch buffers of long windows (a batch of 524,288-bp one-hots is 16-32
    MB) come from the heap and fragment it: bench/long_windows.py measured 1.4 GB peak RSS
    instead of 0.37 GB. A fixed threshold turns that adjustment off (glibc only; else a no-op).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, int(threshold))  # -3 = M_MMAP_THRESHOLD


def onehot_lut(device) -> torch.Tensor:
    """(256, 4) table: ASCII code → one-hot A, C, G, T; anything else (N) → zeros."""
    lut = torch.zeros(256, 4)
    for i, b in enumerate(b"ACGT"):
        lut[b, i] = 1
        lut[b + 32, i] = 1  # lower case
    return lut.to(device)


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower()
    )


@contextlib.contextmanager
def precision_mode(precision: str, device_type: str):
    """Autocast and TF32 switches for one precision; the TF32 flags are restored after."""
    cuda = device_type == "cuda"
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) if cuda else None
    try:
        if cuda:  # on CPU TF32 does not exist; never touch the CPU matmul precision
            tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield
    finally:
        if cuda:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def to_host(t: torch.Tensor) -> torch.Tensor:
    """Start an asynchronous device→host copy into pinned memory (complete after a sync)."""
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


def compile_cache_dir(spec: dict) -> str:
    """Where inductor keeps compiled kernels: $TORCHINDUCTOR_CACHE_DIR if set, else the
    spec's compile_cache, else .snakemake/hapexp/torchinductor in the working directory
    (shared by the jobs of a run, and by later runs)."""
    return (
        os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        or spec.get("compile_cache")
        or str(Path(".snakemake") / "hapexp" / "torchinductor")
    )


def compile_fn(fn, spec: dict):
    cache = compile_cache_dir(spec)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache).resolve())
    Path(cache).mkdir(parents=True, exist_ok=True)
    mode = spec["compile_mode"]
    log.info("torch.compile (mode %s, static shapes), cache %s", mode, cache)
    return torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)
