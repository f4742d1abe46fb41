"""Enformer's attention with relative-position logits, without materialising what it need not.

enformer-pytorch 0.8.12 (`Attention.forward`) builds, per layer, the content logits
(B, H, n, n), the positional logits for every distance (B, H, n, 2n−1), a zero-padded
copy of those for `relative_shift` and its (B, H, n, n) result, their sum, the softmax
and the attention weights: about seven n×n-sized tensors in fp32 (n = 1536 for a
196,608 bp window), plus the positional features recomputed on every call. On a GPU
that is element-wise, concatenation and copy kernels rather than matrix kernels
(shared/perf/enformer_h200_bf16_profile.txt).

Kernels (`install(model, kernel)`; the module's weights are used as they are):
- `reference`: enformer-pytorch's own forward, unchanged (fp32 runs use it).
- `sdpa`: positional logits computed per block of queries, only for the distances the
  block needs (Bq + n − 1 columns), the relative shift taken as a strided *view*
  (bias[u, j] = rel[u, j − u + Bq − 1]), and added as the float attention mask of
  `scaled_dot_product_attention` (a fused kernel: the logits and weights are never
  stored). Logits = (q·scale + content_bias)·k + (q·scale + pos_bias)·rel_k[j − i + n − 1],
  exactly the reference's, so SDPA runs with scale 1.
- `flex`: FlexAttention with a score modifier that adds the positional logit read from
  the (B, H, n, 2n−1) table at distance j − i (needs torch.compile to be fused; eager
  FlexAttention on CPU is a slow reference implementation).
The positional keys (features → to_rel_k) depend only on the weights and n: they are
cached per (n, device, dtype, autocast) instead of being rebuilt every call.

tests/test_enformer_attention.py checks each kernel against the reference to fp32
tolerance on CPU.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("reference", "sdpa", "flex")
# Queries per block of the sdpa kernel: the positional-logit block is
# B × H × Bq × (n + Bq − 1); 512 keeps it ≤ 1/2 of one n × 2n table at n = 1536.
BLOCK = 512


def _attention_modules(model: nn.Module):
    from enformer_pytorch.modeling_enformer import Attention

    return [m for m in model.modules() if isinstance(m, Attention)]


def attention_modules(model: nn.Module) -> list:
    """The installed attention modules of `model` (set `m._hapexp_kernel` to switch one)."""
    return [m for m in _attention_modules(model) if hasattr(m, "_hapexp_kernel")]


def install(model: nn.Module, kernel: str = "sdpa", block: int = BLOCK) -> int:
    """Route every enformer_pytorch Attention of `model` through `kernel`; returns how many.

    The module tree and the weights are unchanged (an instance-level forward), so
    `use(model, kernel)` can switch kernels later, e.g. for a strict fp32 pass.
    """
    if kernel not in KERNELS:
        raise ValueError(f"attention kernel must be one of {KERNELS}, not {kernel!r}")
    mods = _attention_modules(model)
    for m in mods:
        if hasattr(m, "_hapexp_kernel"):  # installed already: switch only (compiled graphs keep their guards)
            m._hapexp_kernel = kernel
            continue
        m._hapexp_kernel = kernel
        m._hapexp_block = int(block)
        m._hapexp_rel_k = {}
        m.forward = functools.partial(_forward, m)
    return len(mods)


def set_kernel(model: nn.Module, kernel: str) -> None:
    """Switch the installed attention modules of `model` to `kernel`."""
    if kernel not in KERNELS:
        raise ValueError(f"attention kernel must be one of {KERNELS}, not {kernel!r}")
    for m in attention_modules(model):
        m._hapexp_kernel = kernel


@contextlib.contextmanager
def use(model: nn.Module, kernel: str):
    """Temporarily run the installed attention modules of `model` with `kernel`."""
    mods = attention_modules(model)
    old = [m._hapexp_kernel for m in mods]
    for m in mods:
        m._hapexp_kernel = kernel
    try:
        yield
    finally:
        for m, k in zip(mods, old, strict=True):
            m._hapexp_kernel = k


def _forward(self, x: torch.Tensor) -> torch.Tensor:
    from enformer_pytorch.modeling_enformer import Attention

    kernel = self._hapexp_kernel
    if kernel == "reference":
        return Attention.forward(self, x)
    b, n, _ = x.shape
    h = self.heads
    q, k, v = (t.unflatten(-1, (h, -1)).transpose(1, 2) for t in (self.to_q(x), self.to_k(x), self.to_v(x)))
    q = q * self.scale
    qc = q + self.rel_content_bias  # content term's query
    qp = q + self.rel_pos_bias  # positional term's query
    rel_k = _rel_k(self, n, x.device)  # (h, 2n−1, d)
    out = _sdpa(qc, k, v, qp, rel_k, self._hapexp_block) if kernel == "sdpa" else _flex(qc, k, v, qp, rel_k)
    return self.to_out(out.transpose(1, 2).flatten(2))


def _rel_k(self, n: int, device) -> torch.Tensor:
    """Positional keys for distances −(n−1) … n−1, zero-padded: (h, ALIGN + 2n − 1 + 2·ALIGN, d).

    Eager, eval mode: cached per (n, device, dtype, autocast, weights version), as they
    depend on the weights only. Under torch.compile they are computed in the graph
    (a dictionary lookup keyed on a tensor version would break it; inductor folds them).
    """
    from enformer_pytorch.modeling_enformer import get_positional_embed

    cache = not self.training and not torch.compiler.is_compiling()
    if cache:
        amp = torch.is_autocast_enabled(device.type)
        dt = torch.get_autocast_dtype(device.type) if amp else self.to_rel_k.weight.dtype
        key = (n, str(device), dt, amp, self.use_tf_gamma, self.to_rel_k.weight._version)
        hit = self._hapexp_rel_k.get(key)
        if hit is not None:
            return hit
    pos = get_positional_embed(n, self.num_rel_pos_features, device, use_tf_gamma=self.use_tf_gamma,
                               dtype=self.to_rel_k.weight.dtype)  # fmt: skip
    rel_k = self.to_rel_k(self.pos_dropout(pos)).unflatten(-1, (self.heads, -1)).transpose(0, 1)
    rel_k = F.pad(rel_k, (0, 0, ALIGN, 2 * ALIGN))  # see ALIGN; rows ALIGN … ALIGN + 2n − 2 are the keys
    if cache:
        self._hapexp_rel_k = {key: rel_k}
    return rel_k


# Fused attention kernels want the bias rows 16-element aligned (else they copy it):
# the positional keys are zero-padded by ALIGN rows on both sides so that each block's
# table can start and stride at multiples of ALIGN; the padding is never read.
ALIGN = 16


def relative_bias(qp: torch.Tensor, rel_k: torch.Tensor, i0: int, i1: int, pad: int = 0) -> torch.Tensor:
    """Positional logits of queries [i0, i1) against all n keys, (B, H, i1−i0, n).

    Only the distances j − i of these rows are multiplied out: rel_k rows
    [n − i1, 2n − 1 − i0) (Bq + n − 1 of them); the shift to key order is a view:
    bias[u, j] = rel[u, j − u + Bq − 1]. `rel_k` is (h, 2n − 1, d), or with `pad` =
    ALIGN zero rows in front and 2·ALIGN behind (`_rel_k`), which lets the table start
    and stride aligned.
    """
    n = qp.shape[2]
    bq = i1 - i0
    front = (1 - bq) % ALIGN if pad >= ALIGN else 0  # makes the view's offset a multiple of ALIGN
    width = bq + n - 1 + front
    if pad >= ALIGN:
        width += (1 - width) % ALIGN  # row stride width − 1: a multiple of ALIGN
    r0 = pad + n - i1 - front
    rel = torch.matmul(qp[:, :, i0:i1], rel_k[:, r0 : r0 + width].transpose(-1, -2)).contiguous()
    s = rel.stride()
    # rel is freshly allocated (contiguous, storage offset 0): a view, no copy.
    return torch.as_strided(
        rel, (*rel.shape[:2], bq, n), (s[0], s[1], s[2] - s[3], s[3]), (bq - 1 + front) * s[3]
    )


def _sdpa(qc, k, v, qp, rel_k, block: int) -> torch.Tensor:
    n = qc.shape[2]
    outs = []
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        bias = relative_bias(qp, rel_k, i0, i1, pad=ALIGN)
        if bias.dtype != qc.dtype:
            bias = bias.to(qc.dtype)
        outs.append(F.scaled_dot_product_attention(qc[:, :, i0:i1], k, v, attn_mask=bias, scale=1.0))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def _flex(qc, k, v, qp, rel_k) -> torch.Tensor:
    from torch.nn.attention.flex_attention import flex_attention

    n = qc.shape[2]
    rel_k = rel_k[:, ALIGN : ALIGN + 2 * n - 1]
    table = torch.matmul(qp, rel_k.transpose(-1, -2))  # (B, H, n, 2n−1): distance j − i at j − i + n − 1

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + table[b, h, q_idx, kv_idx - q_idx + n - 1]

    return flex_attention(qc, k, v, score_mod=score_mod, scale=1.0)
