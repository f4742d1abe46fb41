"""Enformer attention kernels (hapexp.models.enformer.attention) against enformer-pytorch's own
Attention.forward, in fp32 on CPU, at rtol 1e-5 (+ atol 1e-6 × the output scale)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hapexp.models.enformer import attention as ea

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _attention(n, dim, heads, dk, seed=0):
    from enformer_pytorch.modeling_enformer import Attention

    torch.manual_seed(seed)
    a = Attention(
        dim, num_rel_pos_features=dim // heads, heads=heads, dim_key=dk, dim_value=dim // heads
    ).eval()
    torch.nn.init.normal_(a.to_out.weight, std=0.2)  # enformer-pytorch zero-inits it: output would be 0
    x = torch.randn(2, n, dim) * 2
    return a, x


def _close(got, want):
    scale = float(want.abs().max())
    assert scale > 0.1
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize(("n", "block"), [(16, 512), (300, 64), (300, 77), (1536, 512)])
def test_sdpa_equals_reference(n, block):
    from enformer_pytorch.modeling_enformer import Attention

    a, x = _attention(n, 96 if n < 1536 else 48, 4 if n < 1536 else 2, 8)
    with torch.inference_mode():
        want = Attention.forward(a, x)
        assert ea.install(a, "sdpa", block=block) == 1
        _close(a(x), want)
        a(x)  # cached positional keys give the same result
        _close(a(x), want)
        with ea.use(a, "reference"):
            assert torch.equal(a(x), want)


def test_flex_score_mod_equals_reference():
    from enformer_pytorch.modeling_enformer import Attention

    a, x = _attention(40, 48, 2, 16)
    with torch.inference_mode():
        want = Attention.forward(a, x)
        ea.install(a, "flex")
        _close(a(x), want)


def test_relative_bias_is_the_relative_shift():
    """The blockwise, aligned, strided positional bias equals enformer-pytorch's
    relative_shift of the full (n, 2n−1) table, row block by row block."""
    from enformer_pytorch.modeling_enformer import relative_shift

    torch.manual_seed(1)
    n, h, d = 50, 3, 4
    qp, rk = torch.randn(2, h, n, d), torch.randn(h, 2 * n - 1, d)
    full = relative_shift(torch.einsum("bhid,hjd->bhij", qp, rk))
    padded = torch.nn.functional.pad(rk, (0, 0, ea.ALIGN, 2 * ea.ALIGN))
    for i0, i1 in [(0, 50), (0, 7), (7, 23), (40, 50)]:
        for bias in (ea.relative_bias(qp, rk, i0, i1), ea.relative_bias(qp, padded, i0, i1, pad=ea.ALIGN)):
            np.testing.assert_allclose(bias.numpy(), full[:, :, i0:i1].numpy(), rtol=1e-5, atol=1e-6)
        aligned = ea.relative_bias(qp, padded, i0, i1, pad=ea.ALIGN)
        assert aligned.stride(2) % ea.ALIGN == 0 and aligned.storage_offset() % ea.ALIGN == 0


def test_whole_model_and_kernel_switch():
    """A whole tiny Enformer: sdpa and reference agree; switching back restores the bytes."""
    from hapexp.models.enformer.load import build_enformer_tiny
    from hapexp.models.spec import model_spec

    m = build_enformer_tiny(
        model_spec({"kind": "enformer_tiny", "window": 2048, "hparams": {"depth": 2}}, "t")
    ).eval()
    x = torch.nn.functional.one_hot(
        torch.from_numpy(np.random.default_rng(0).integers(0, 4, (3, 2048))), 4
    ).float()
    with torch.inference_mode():
        want = m(x, head="human")
        ea.install(m, "sdpa")
        _close(m(x, head="human"), want)
        ea.set_kernel(m, "reference")
        assert torch.equal(m(x, head="human"), want)
    with pytest.raises(ValueError, match="attention kernel"):
        ea.set_kernel(m, "triton")


def test_sdpa_kernel_compiles_without_graph_breaks():
    """torch.compile must see one graph (a break per layer would split the fused model);
    dynamo's tracing alone, no inductor compilation (fast on CPU)."""
    from hapexp.models.registry import load_model
    from hapexp.models.spec import model_spec

    loaded = load_model(model_spec({"kind": "enformer_tiny", "window": 2048, "hparams": {"depth": 2}}, "t"))
    ea.install(loaded.module, "sdpa")
    x = torch.zeros(2, 2048, 4)
    for amp in (False, True):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            ex = torch._dynamo.explain(loaded.forward)(x)
        assert ex.graph_break_count == 0, [str(b.reason)[:200] for b in ex.break_reasons]
