"""Batch size from free GPU memory (hapexp.engine.gpu_memory), with mocked memory figures.

Per-sequence and fixed memory of full-size Enformer in bf16 (uncompiled) from the
H200 profile (shared/perf/enformer_h200_bf16_profile.txt): 16.8 GiB at batch 8 and
95.7 GiB at batch 48 → 1.97 GiB per sequence + 1.0 GiB; the model's fp32 weights
(251 M parameters, ~1 GiB) are already allocated, so free = total − ~1.5 GiB.
"""

from __future__ import annotations

import pytest

from hapexp.engine.gpu_memory import GiB, choose_batch_size, measure

PER_SEQ = (95.7 - 16.8) / 40 * GiB
FIXED = 16.8 * GiB - 8 * PER_SEQ


@pytest.mark.parametrize(
    ("card", "total_gib", "want"),
    [
        ("24-GB (L4/A10/RTX 4090)", 24, 8),
        ("A100 40 GB", 40, 16),
        ("H100 80 GB", 80, 32),
        ("H200 141 GB", 141, 56),
    ],
)
def test_cards(card, total_gib, want):
    free = (total_gib - 1.5) * GiB
    b = choose_batch_size(free, PER_SEQ, FIXED)
    assert b == want, card
    # It fits, with the margin, by the measured model.
    assert FIXED + b * PER_SEQ <= 0.85 * free


def test_rounding_caps_and_floor():
    assert choose_batch_size(100 * GiB, 1 * GiB, 0, margin=0.0, max_batch=64) == 64  # cap (flat throughput)
    assert choose_batch_size(100 * GiB, 1 * GiB, 0, margin=0.0, max_batch=1000) == 96  # multiple of 8
    assert choose_batch_size(10.9 * GiB, 1 * GiB, 0, margin=0.0) == 8  # 10 → multiple of 4
    assert choose_batch_size(3.5 * GiB, 1 * GiB, 0, margin=0.0) == 3
    assert choose_batch_size(0.5 * GiB, 1 * GiB, 0) == 1  # never 0: the OOM back-off is the last word
    with pytest.raises(ValueError):
        choose_batch_size(1 * GiB, 0)


def test_measure_with_mocked_cuda(monkeypatch):
    """measure() turns peak-memory readings at batch 1 and 2 into (fixed, per-sequence)."""
    import torch

    state = {"peak": 0}
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 5 * GiB)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: state["peak"])

    def run(b):  # activations of 2 GiB per sequence over 0.5 GiB of workspace
        state["peak"] = 5 * GiB + 0.5 * GiB + b * 2 * GiB

    fixed, per_seq = measure(run, "cuda")
    assert per_seq == pytest.approx(2 * GiB) and fixed == pytest.approx(0.5 * GiB)
