"""ISM that reuses the reference: Enformer's stem and conv tower are local.

A single-variant sequence differs from its gene's reference window in a few bases.
Enformer's stem and convolution tower (enformer-pytorch 0.8.12) are made of
convolutions with "same" zero padding, point-wise layers (batch norm in eval mode,
GELU, 1×1 convolutions) and attention pooling over disjoint groups of 2, so a change
at input bases [a, b) (0-based, half-open) can only move the tower outputs inside a
receptive field derived from the kernel sizes and pools. `EnformerReuse` computes
the reference's activations at every level boundary (stem input, each tower block's
input, the tower output) once per gene and, per variant, recomputes only fixed-size
windows around the changed positions, level by level; the transformer and the
output head then run in full (attention mixes all positions).

Exactness: each window is computed from the reference activations around it with the
variant's recomputed values overlaid, using the same modules (weights) and the same
padding semantics as the full forward: zero padding of a convolution's input at the
sequence edges (after batch norm and GELU, which is where nn.Conv1d pads), and
AttentionPool's zero padding with a masked logit when a length is odd. Results equal
a full forward up to float rounding (convolution kernels on a slice sum in another
order): tests/test_enformer_ism.py checks every variant at rtol 1e-5.

Which positions differ is read from the sequences themselves (variant vs reference
one-hot), so any variant is exact: an SNV recomputes a window of a few bins per
level; an indel shifts everything on one side of it (the window is re-anchored on
the TSS), its difference spans most of the window and it runs the full forward
(`max_fraction`). Variants of one gene are batched; within a batch, windows of one
level share one size (per width class), so shapes stay static.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


class NotLocal(TypeError):
    """The stem/tower contains a layer whose receptive field this module does not know."""


@dataclass(frozen=True)
class _Step:
    kind: str  # "point" | "conv" | "residual" | "pool"
    module: nn.Module | None = None
    inner: tuple = ()
    halo: int = 0  # conv: kernel // 2
    pool: int = 1


def _steps(mod: nn.Module) -> tuple:
    """Flatten one level (nn.Sequential) into steps with known locality, or raise NotLocal."""
    from enformer_pytorch.modeling_enformer import GELU, AttentionPool, Residual

    if isinstance(mod, nn.Sequential):
        return tuple(s for m in mod for s in _steps(m))
    if type(mod) is Residual:
        return (_Step("residual", inner=_steps(mod.fn)),)
    if type(mod) is AttentionPool:
        if mod.pool_size != 2:  # enformer-pytorch pads `remainder`, which is only right for 2
            raise NotLocal(f"AttentionPool with pool_size {mod.pool_size}")
        return (_Step("pool", module=mod, pool=2),)
    if type(mod) is nn.Conv1d:
        (k,), (s,), (d,), (p,) = mod.kernel_size, mod.stride, mod.dilation, mod.padding
        if s != 1 or d != 1 or k % 2 == 0 or p != k // 2 or mod.padding_mode != "zeros":
            raise NotLocal(f"Conv1d(kernel {k}, stride {s}, dilation {d}, padding {p}, {mod.padding_mode})")
        return (_Step("point", module=mod),) if k == 1 else (_Step("conv", module=mod, halo=k // 2),)
    if isinstance(mod, (nn.BatchNorm1d, GELU, nn.GELU, nn.Identity, nn.Dropout)):
        return (_Step("point", module=mod),)
    raise NotLocal(f"unknown layer {type(mod).__name__} in the stem/conv tower")


def _width(steps, w: int) -> int:
    """Most output positions a change of width w can touch (any alignment, no clipping)."""
    for s in steps:
        if s.kind == "conv":
            w += 2 * s.halo
        elif s.kind == "residual":
            w = _width(s.inner, w)
        elif s.kind == "pool":
            w = (w + s.pool - 2) // s.pool + 1
    return w


def _need(steps, o0: int, o1: int) -> tuple[int, int]:
    """Input positions needed for outputs [o0, o1), ignoring the sequence edges (virtual positions)."""
    for s in reversed(steps):
        if s.kind == "conv":
            o0, o1 = o0 - s.halo, o1 + s.halo
        elif s.kind == "residual":
            o0, o1 = _need(s.inner, o0, o1)
        elif s.kind == "pool":
            o0, o1 = o0 * s.pool, o1 * s.pool
    return o0, o1


def _run(steps, x: torch.Tensor, start: torch.Tensor, n: int):
    """Run `steps` on per-row slices x (B, C, S) covering global positions start[b] + [0, S).

    Positions outside [0, n) are virtual: whatever they hold is zeroed where the full
    forward has zero padding (convolution inputs, AttentionPool's pad), so the valid
    outputs equal the full forward's. Returns (y, start', n').
    """
    for s in steps:
        if s.kind == "point":
            x = s.module(x)
        elif s.kind == "conv":
            pos = start[:, None] + torch.arange(x.shape[-1], device=x.device)[None, :]
            inside = ((pos >= 0) & (pos < n))[:, None, :]
            x = F.conv1d(x * inside.to(x.dtype), s.module.weight, s.module.bias)
            start = start + s.halo
        elif s.kind == "residual":
            y, ystart, _ = _run(s.inner, x, start, n)
            off = int((ystart - start)[0]) if len(start) else 0  # same for every row
            x = y + x[..., off : off + y.shape[-1]]
            start = ystart
        elif s.kind == "pool":
            x, start, n = _attention_pool(s.module, x, start, n)
    return x, start, n


def _attention_pool(pool: nn.Module, x: torch.Tensor, start: torch.Tensor, n: int):
    """enformer_pytorch AttentionPool.forward on slices (start even): the same operations;
    positions ≥ n are its zero padding with logits masked to -finfo.max."""
    b, c, length = x.shape
    p = pool.pool_size
    pos = start[:, None] + torch.arange(length, device=x.device)[None, :]
    pad = (pos >= n)[:, None, :]
    x = x.masked_fill(pad, 0).reshape(b, c, length // p, p)
    logits = pool.to_attn_logits(x)
    logits = logits.masked_fill(pad.reshape(b, 1, length // p, p), -torch.finfo(logits.dtype).max)
    attn = logits.softmax(dim=-1)
    return (x * attn).sum(dim=-1), start // p, -(-n // p)


class EnformerReuse:
    """Reference-reusing forward for one enformer_pytorch.Enformer (or subclass).

    `prepare(ref_onehot)` caches the reference activations (one row per reference, e.g.
    forward and reverse complement); `forward(x, ref_ids)` returns the model output
    (B, bins, tracks) for one-hot sequences x (B, L, 4), each compared with reference
    `ref_ids[b]`. Run both under the same precision (autocast) as a full forward.

    `score_error`: the bound this path's scores (alt − ref read-out) keep from full forwards,
    relative to the gene's reference read-out: tests/test_enformer_ism.py enforces it on
    every variant (measured at most 2.8e-6, bench/RESULTS.md); ISM adds it to the
    unresolved floor of the scores it computes (hapexp.engine.ism).
    """

    score_error = 2e-5

    def __init__(self, model: nn.Module, head: str | None = "human", max_fraction: float = 0.25):
        self.model = model
        self.head = head
        self.max_fraction = float(max_fraction)
        self.levels = [_steps(model.stem)] + [_steps(m) for m in model.conv_tower]
        self.cache: list[torch.Tensor] | None = None  # level inputs, then the tower output
        self.ref_onehot: torch.Tensor | None = None
        self.stats = {"reused": 0, "full": 0, "prepare_s": 0.0}
        self.tail_fn = self.tail  # the engine may swap in a compiled tail

    @staticmethod
    def supports(module: nn.Module) -> bool:
        try:
            from enformer_pytorch import Enformer
        except ImportError:
            return False
        if not isinstance(module, Enformer) or getattr(module, "use_checkpointing", False):
            return False
        try:
            [_steps(module.stem)] + [_steps(m) for m in module.conv_tower]
        except NotLocal as e:
            log.info("reference reuse off: %s", e)
            return False
        return True

    # ------------------------------------------------------------------ parts
    def _tower_levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, L, 4) one-hot → [stem input (B, 4, L), each block's input, tower output]."""
        outs = [x.transpose(1, 2)]
        for level in [self.model.stem, *self.model.conv_tower]:
            outs.append(level(outs[-1]))
        return outs

    def tail(self, tower: torch.Tensor) -> torch.Tensor:
        """Tower output (B, C, n) → model output (B, bins, tracks): transformer, crop, head."""
        m = self.model
        x = m.transformer(tower.transpose(1, 2))
        x = m.final_pointwise(m.crop_final(x))
        if self.head is None:
            return x
        return m._heads[self.head](x)

    def prepare(self, ref_onehot: torch.Tensor) -> None:
        """Cache the reference(s): ref_onehot (R, L, 4)."""
        t = time.perf_counter()
        with torch.inference_mode():
            self.cache = self._tower_levels(ref_onehot)
            if ref_onehot.is_cuda:
                torch.cuda.synchronize(ref_onehot.device)
        self.ref_onehot = ref_onehot
        self.stats["prepare_s"] += time.perf_counter() - t

    def release(self) -> None:
        self.cache = self.ref_onehot = None

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, ref_ids: torch.Tensor | None = None) -> torch.Tensor:
        if self.cache is None:
            raise RuntimeError("EnformerReuse.forward before prepare(reference)")
        b, length, _ = x.shape
        ids = torch.zeros(b, dtype=torch.long, device=x.device) if ref_ids is None else ref_ids.to(x.device)
        diff = (x != self.ref_onehot[ids]).any(-1)  # (B, L)
        has = diff.any(1)
        first = diff.int().argmax(1)
        last = length - 1 - diff.flip(1).int().argmax(1)
        width = torch.where(has, last - first + 1, torch.zeros_like(first))
        width_l, has_l = width.tolist(), has.tolist()
        tower_ref = self.cache[-1]
        tower = tower_ref[ids].clone()
        full = [i for i in range(b) if has_l[i] and width_l[i] > self.max_fraction * length]
        if full:
            idx = torch.tensor(full, device=x.device)
            tower[idx] = self._tower_levels(x[idx])[-1].to(tower.dtype)
        # Windowed rows in classes of width ≤ 1, 2, 4, …: one window size per class.
        classes: dict[int, list[int]] = {}
        for i in range(b):
            if has_l[i] and width_l[i] <= self.max_fraction * length:
                classes.setdefault(1 << max(0, width_l[i] - 1).bit_length(), []).append(i)
        for w0, rows in sorted(classes.items()):
            idx = torch.tensor(rows, device=x.device)
            p0, win = self._windows(x[idx], ids[idx], first[idx], first[idx] + width[idx], w0)
            pos = p0[:, None] + torch.arange(win.shape[-1], device=x.device)[None, :]
            tower[idx[:, None], :, pos] = win.transpose(1, 2).to(tower.dtype)
        self.stats["full"] += len(full)
        self.stats["reused"] += b - len(full)
        return self.tail_fn(tower)

    def _windows(self, x, ids, c0, c1, w0: int):
        """Recompute the changed windows of rows x (k, L, 4) level by level.

        c0, c1: changed input bases per row; w0 ≥ c1 - c0 for every row. Returns (start
        of each row's window at the tower output, its values (k, C, P)).
        """
        dev = x.device
        n = x.shape[1]
        patch = patch_start = None
        w = w0
        for level, steps in enumerate(self.levels):
            e0, _, n_out = _changed_t(steps, c0, c1, n)
            w = min(_width(steps, w), n_out)  # window size: static for a width class
            p0 = torch.clamp(e0, min=0, max=n_out - w)  # covers [e0, e1): e1 - e0 <= w
            s0, s1 = _need(steps, 0, w)
            start = p0 * _pools(steps) + s0  # global position of each row's input slice
            pos = start[:, None] + torch.arange(s1 - s0, device=dev)[None, :]
            if level == 0:  # the variant's own one-hot
                src = x.transpose(1, 2)
                sl = src.gather(2, pos.clamp(0, n - 1)[:, None, :].expand(-1, src.shape[1], -1))
            else:  # the reference, with the previous level's window overlaid
                ref = self.cache[level]
                sl = ref[ids[:, None], :, pos.clamp(0, n - 1)].transpose(1, 2)
                rel = pos - patch_start[:, None]
                inwin = ((rel >= 0) & (rel < patch.shape[-1]))[:, None, :]
                vals = patch.gather(
                    2, rel.clamp(0, patch.shape[-1] - 1)[:, None, :].expand(-1, patch.shape[1], -1)
                )
                sl = torch.where(inwin, vals.to(sl.dtype), sl)
            out, ostart, _ = _run(steps, sl, start, n)
            off = int((p0 - ostart)[0])  # equal for every row
            patch, patch_start = out[..., off : off + w], p0
            c0, c1, n = p0, p0 + w, n_out  # what can differ at the next level's input
        return patch_start, patch


def _changed_t(steps, c0: torch.Tensor, c1: torch.Tensor, n: int):
    """What can differ after `steps`: the changed range [c0, c1) of each row (tensors)
    through the convolutions' halos and the pools, and the level's length n."""
    for s in steps:
        if s.kind == "conv":
            c0, c1 = torch.clamp(c0 - s.halo, min=0), torch.clamp(c1 + s.halo, max=n)
        elif s.kind == "residual":
            c0, c1, _ = _changed_t(s.inner, c0, c1, n)
        elif s.kind == "pool":
            c0 = torch.div(c0, s.pool, rounding_mode="floor")
            c1 = -torch.div(-c1, s.pool, rounding_mode="floor")
            n = -(-n // s.pool)
    return c0, c1, n


def _pools(steps) -> int:
    p = 1
    for s in steps:
        if s.kind == "pool":
            p *= s.pool
        elif s.kind == "residual":
            p *= _pools(s.inner)
    return p
