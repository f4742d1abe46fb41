"""Batch size from free GPU memory, modelled from measured per-sequence activation memory.

Peak memory of a forward pass is close to linear in the batch: peak(b) ≈ fixed + b ·
per_sequence, where `fixed` holds what does not scale with the batch (cuDNN/cuBLAS
workspaces, cached positional tables) and `per_sequence` the activations. Both are
measured on the device with two small batches (`measure`), then
`choose_batch_size` takes the largest batch that fits the free memory with a safety
margin (the allocator fragments; other processes may grow). A CUDA out-of-memory error
later still halves the batch (hapexp.engine.predictor.Predictor.run_batches), as a
safety net.

The Geuvadis preset's full-size model (196,608 bp in) in bf16 needs about 2 GiB per
sequence uncompiled (profile of 2026-11-30: 16.8 GiB at batch 8, 95.7 GiB at batch
48), so a 24-GiB card gets 8, a 40-GiB A100 16, an 80-GiB H100 32 and a 141-GiB H200
56 (tests/test_gpu_memory.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

GiB = 2**30
MARGIN = 0.15  # fraction of free memory kept back
MAX_BATCH = 64  # beyond this, throughput no longer grows (measured flat from 8 to 48)


def choose_batch_size(
    free_bytes: float,
    per_sequence_bytes: float,
    fixed_bytes: float = 0.0,
    margin: float = MARGIN,
    max_batch: int = MAX_BATCH,
) -> int:
    """Largest batch with fixed + b · per_sequence ≤ (1 − margin) · free, rounded down to a
    multiple of 8 (of 4 below 16: tensor-core friendly, few distinct compiled shapes);
    at least 1, at most `max_batch`."""
    if per_sequence_bytes <= 0:
        raise ValueError(f"per-sequence memory must be positive, not {per_sequence_bytes}")
    usable = (1.0 - margin) * free_bytes - fixed_bytes
    b = int(usable // per_sequence_bytes)
    b = min(b, int(max_batch))
    if b >= 16:
        b -= b % 8
    elif b >= 4:
        b -= b % 4
    return max(1, b)


def measure(run: Callable[[int], object], device, sizes=(1, 2)) -> tuple[float, float]:
    """(fixed, per-sequence) bytes of `run(batch)` on a CUDA device, from its peak memory
    above what was allocated before, at two batch sizes."""
    import torch

    peaks = []
    for b in sizes:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run(b)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    (b1, b2), (p1, p2) = sizes, peaks
    per_seq = max((p2 - p1) / (b2 - b1), p2 / b2 / 4, 1.0)  # guard: a non-monotone measurement
    fixed = max(p1 - b1 * per_seq, 0.0)
    return fixed, per_seq


def auto_batch_size(
    run: Callable[[int], object], device, max_batch: int = MAX_BATCH, margin: float = MARGIN
) -> int:
    """Measure `run` on `device` and choose the batch size for its free memory (logged)."""
    import torch

    fixed, per_seq = measure(run, device)
    torch.cuda.empty_cache()  # blocks cached by the allocator count as used in mem_get_info
    free, total = torch.cuda.mem_get_info(device)
    b = choose_batch_size(free, per_seq, fixed, margin=margin, max_batch=max_batch)
    log.info(
        "batch size auto: %d (free %.1f of %.1f GiB; measured %.2f GiB per sequence + %.2f GiB fixed; margin %.0f %%)",
        b, free / GiB, total / GiB, per_seq / GiB, fixed / GiB, 100 * margin,
    )  # fmt: skip
    return b
