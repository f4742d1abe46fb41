"""Flashzoi's attention without flash-attn: the same computation in plain torch.

Flashzoi's attention comes from the `flash-attn` package (CUDA only). Where it is
not installed (CPU, or a GPU node without its wheel), `attention: auto` runs the
same computation — flash_attn's `MHA` as Flashzoi configures it: grouped-query
attention with half as many key/value heads, rotary embeddings on the first 128
dimensions of each head (base 20,000, non-interleaved) — with torch's
`scaled_dot_product_attention` (`TorchFlashAttention`, same parameter names, so the
published weights load unchanged).
"""

from __future__ import annotations

import contextlib
import importlib.util

import torch
import torch.nn.functional as F
from torch import nn


def rotary(x: torch.Tensor, rot_dim: int, base: float) -> torch.Tensor:
    """Non-interleaved (GPT-NeoX) rotary embedding on the first `rot_dim` dims; x: (B, S, H, D)."""
    s = x.shape[1]
    inv_freq = 1.0 / (base ** (torch.arange(0, rot_dim, 2, device=x.device, dtype=torch.float32) / rot_dim))
    freqs = torch.outer(torch.arange(s, device=x.device, dtype=torch.float32), inv_freq)  # (S, rot/2)
    cos = torch.cat([freqs.cos(), freqs.cos()], -1)[None, :, None, :].to(x.dtype)
    sin = torch.cat([freqs.sin(), freqs.sin()], -1)[None, :, None, :].to(x.dtype)
    xr, rest = x[..., :rot_dim], x[..., rot_dim:]
    x1, x2 = xr.chunk(2, dim=-1)
    return torch.cat([xr * cos + torch.cat([-x2, x1], -1) * sin, rest], dim=-1)


class TorchMHA(nn.Module):
    """flash_attn.modules.mha.MHA (use_flash_attn, GQA, rotary, non-causal) in plain torch."""

    def __init__(self, embed_dim, num_heads, num_heads_kv, rotary_emb_dim, rotary_emb_base, softmax_scale):
        super().__init__()
        self.num_heads, self.num_heads_kv = num_heads, num_heads_kv
        self.head_dim = embed_dim // num_heads
        self.rotary_emb_dim, self.rotary_emb_base = rotary_emb_dim, rotary_emb_base
        self.softmax_scale = softmax_scale
        if rotary_emb_dim > self.head_dim:
            raise ValueError(f"rotary dim {rotary_emb_dim} exceeds the head dim {self.head_dim}")
        self.Wqkv = nn.Linear(embed_dim, self.head_dim * (num_heads + 2 * num_heads_kv), bias=True)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=True)

    def forward(self, x):
        b, s, _ = x.shape
        h, hkv, d = self.num_heads, self.num_heads_kv, self.head_dim
        qkv = self.Wqkv(x)
        q = qkv[..., : h * d].reshape(b, s, h, d)
        kv = qkv[..., h * d :].reshape(b, s, 2, hkv, d)
        k, v = kv[:, :, 0], kv[:, :, 1]
        q = rotary(q, self.rotary_emb_dim, self.rotary_emb_base)
        k = rotary(k, self.rotary_emb_dim, self.rotary_emb_base)
        # query head i attends with key/value head i // (h / hkv), as flash-attn's GQA
        k = k.repeat_interleave(h // hkv, dim=2)
        v = v.repeat_interleave(h // hkv, dim=2)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=self.softmax_scale
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, s, h * d))


class TorchFlashAttention(nn.Module):
    """Drop-in for borzoi_pytorch's FlashAttention (same constructor, same state-dict keys)."""

    def __init__(self, dim=1536, heads=8, dropout=0.15, pos_dropout=0.15, rotary_emb_base=20000.0,
                 rotary_emb_scale_base=None):  # fmt: skip
        super().__init__()
        if rotary_emb_scale_base is not None:
            raise ValueError("rotary_emb_scale_base (xPos) is not supported without flash-attn")
        self.mha = TorchMHA(dim, heads, heads // 2, 128, rotary_emb_base, (dim / heads) ** -0.5)

    def forward(self, x):
        return self.mha(x)


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


@contextlib.contextmanager
def torch_flash_attention():
    """Build Flashzoi models with `TorchFlashAttention` (restored on exit)."""
    import borzoi_pytorch.pytorch_borzoi_model as bm

    old = bm.FlashAttention
    bm.FlashAttention = TorchFlashAttention
    try:
        yield
    finally:
        bm.FlashAttention = old
