"""ISM with reference reuse (hapexp.models.enformer.ism_reuse) equals full forward passes of
enformer-pytorch, for every variant (SNVs, MNPs and indels) of several genes, on two
Enformer architectures (the demo's enformer_tiny, and one with a deeper transformer
and 5 pooling levels: 32-bp bins), in fp32.

Independent answer: the model's own `forward` (enformer-pytorch) on each
single-variant sequence, read out here with numpy (central bins of the TSS, summed,
tracks averaged), not through hapexp's engine.

Tolerance: read-outs at rtol 1e-5 plus atol 1e-6 × the gene's largest |read-out|. The
windowed convolutions sum in another order than the full ones; fp32 rounding in a deep
network scales with the activations, not with each output (the same model's full
forward at batch 1 vs batched differs by up to ~1e-5 relative on single outputs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hapexp.engine import ism
from hapexp.models.enformer.ism_reuse import EnformerReuse, NotLocal, _steps
from hapexp.models.enformer.load import build_enformer_tiny
from hapexp.models.registry import load_model
from hapexp.models.spec import model_spec

pytestmark = pytest.mark.usefixtures("torch_one_thread")

WINDOW = 2048
MODELS = {
    "enformer_tiny": {"kind": "enformer_tiny", "window": WINDOW, "tracks": [0, 3], "bins": 2, "device": "cpu",
                      "precision": "fp32", "batch_size": 16},
    # Another Enformer architecture: 2 transformer blocks, 4 heads, 5 downsamplings (32-bp bins).
    "deep_pool5": {"kind": "enformer_tiny", "window": WINDOW, "tracks": [1], "bins": 4, "device": "cpu",
                   "precision": "fp32", "batch_size": 16, "seed": 3,
                   "hparams": {"dim": 96, "depth": 2, "heads": 4, "attn_dim_key": 8, "dim_divisible_by": 16,
                               "num_downsamples": 5, "n_tracks": 4}},
}  # fmt: skip
ISM_CFG = {"maf": 0.0, "indels": True}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A simulated cohort (msprime, 8 % indels) → normalized BCF → haplotype index."""
    from tests.simulated_cohort import simulated_index

    d = tmp_path_factory.mktemp("reuse")
    return simulated_index(d, 5, WINDOW, n_individuals=20, n_chromosomes=1, chromosome_length=60000, n_genes=4)


def _direct_readouts(module, spec, seqs, tss_index, n_bins_out):
    """enformer-pytorch forward on one-hot sequences, read out with numpy."""
    onehot = np.zeros((len(seqs), seqs.shape[1], 4), np.float32)
    for i, b in enumerate(b"ACGT"):
        onehot[..., i] = seqs == b
    outs = []
    with torch.inference_mode():
        for s in range(0, len(seqs), 16):
            outs.append(module(torch.from_numpy(onehot[s : s + 16]), head="human").numpy())
    out = np.concatenate(outs)  # (N, bins, tracks)
    bin_size = WINDOW // n_bins_out
    c = tss_index // bin_size - spec["bins"] // 2
    return out[:, c : c + spec["bins"], spec["tracks"]].sum(axis=1, dtype=np.float64).mean(axis=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_variant_equals_full_forward(cohort, name):
    spec = model_spec(MODELS[name], name)
    readout = ism.make_readout(spec, reuse=True)
    module = readout.predictor.model.module
    n_out = readout.predictor.model.n_bins
    n_variants = n_indels = 0
    worst = 0.0
    for _, gene in cohort.genes.iterrows():
        raw = ism.gene_values(cohort, gene, readout, WINDOW, True, 0.0, True)
        if raw is None:
            continue
        variants, alt, ref = raw
        seqs = cohort.single_variant_sequences(gene["gene_id"], WINDOW, list(variants["variant_id"]))
        ref_seq, tss = cohort.reference_window(gene["gene_id"], WINDOW)
        want = _direct_readouts(module, spec, np.concatenate([ref_seq[None], seqs]), tss, n_out)
        scale = np.abs(want).max()
        np.testing.assert_allclose(ref, want[0], rtol=1e-5, atol=1e-6 * scale)
        np.testing.assert_allclose(
            alt, want[1:], rtol=1e-5, atol=1e-6 * scale, err_msg=f"{name} {gene['gene_id']}"
        )
        # Scores (alt − ref) within the bound the reuse path declares (ISM's unresolved floor
        # adds it): tiny effects keep their value.
        atol = EnformerReuse.score_error * scale
        np.testing.assert_allclose(alt - ref, want[1:] - want[0], rtol=0, atol=atol)
        worst = max(worst, float(np.max(np.abs(alt - want[1:]) / np.abs(want[1:]))))
        n_variants += len(variants)
        n_indels += int((~variants["is_snv"].astype(bool)).sum())
        assert np.ptp(want[1:] - want[0]) > 1e-4 * scale  # variants do move the read-out
    stats = readout.predictor.reuse.stats
    assert n_variants >= 40 and n_indels >= 2, (n_variants, n_indels)
    # Both paths ran: windowed recomputation (SNVs) and full forwards (indels far from the edges).
    assert stats["reused"] >= n_variants - n_indels and stats["full"] >= 1, stats
    print(f"{name}: {n_variants} variants ({n_indels} indels), max rel diff {worst:.2e}, {stats}")


def _onehot(codes):
    return torch.nn.functional.one_hot(torch.as_tensor(codes), 4).float()


@pytest.mark.parametrize("length", [2048, 1000])
def test_window_edges_and_odd_lengths(length):
    """SNVs at every one of the first and last 24 bases (conv zero padding at the edges),
    a 3-bp substitution and a shifted sequence; length 1000 makes intermediate lengths odd
    (125, 63), exercising AttentionPool's padded, masked last group."""
    torch.manual_seed(0)
    spec = model_spec({"kind": "enformer_tiny", "window": 2048}, "t")
    model = build_enformer_tiny(spec).eval()
    model.set_target_length(-1)
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 4, length)
    pos = list(range(24)) + list(range(length - 24, length)) + list(rng.integers(24, length - 24, 8))
    seqs = []
    for p in pos:
        s = ref.copy()
        s[p] = (s[p] + 1 + p % 3) % 4
        seqs.append(s)
    mnp = ref.copy()
    mnp[500:503] = (mnp[500:503] + 1) % 4
    seqs += [mnp, np.concatenate([ref[1:], [0]]), ref.copy()]
    x = _onehot(np.stack(seqs))
    reuse = EnformerReuse(model, "human")
    with torch.inference_mode():
        reuse.prepare(_onehot(ref)[None])
        got = reuse.forward(x)
        want = model(x, head="human")
    assert got.shape == want.shape
    scale = float(want.abs().max())
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6 * scale)
    assert reuse.stats["full"] == 1 and reuse.stats["reused"] == len(seqs) - 1


def test_receptive_field_is_tight():
    """An SNV changes the tower output only inside the window the module recomputes, and
    that window is small (a few bins), i.e. the reuse really skips work."""
    torch.manual_seed(0)
    model = load_model(model_spec({"kind": "enformer_tiny", "window": 2048}, "t")).module
    ref = np.random.default_rng(2).integers(0, 4, 2048)
    alt = ref.copy()
    alt[1000] = (alt[1000] + 2) % 4
    reuse = EnformerReuse(model, "human")
    with torch.inference_mode():
        reuse.prepare(_onehot(ref)[None])
        t_ref = reuse.cache[-1][0]
        t_alt = reuse._tower_levels(_onehot(alt)[None])[-1][0]
        start, win = reuse._windows(_onehot(alt)[None], torch.zeros(1, dtype=torch.long),
                                    torch.tensor([1000]), torch.tensor([1001]), 1)  # fmt: skip
    changed = np.flatnonzero((t_alt - t_ref).abs().amax(0).numpy() > 0)
    s = int(start[0])
    assert changed.min() >= s and changed.max() < s + win.shape[-1]
    assert win.shape[-1] <= 6 < t_ref.shape[-1]  # 6 of 16 bins at the tower output


def test_unknown_layers_are_refused():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotLocal):
        _steps(torch.nn.Sequential(torch.nn.Conv1d(4, 4, 5, padding=2), Odd()))
    with pytest.raises(NotLocal):
        _steps(torch.nn.Conv1d(4, 4, 5, padding=2, dilation=2))
    assert not EnformerReuse.supports(torch.nn.Linear(2, 2))


def test_reverse_complement_averaging_reuses_both_strands(cohort):
    """rc_average: each variant's reverse complement is compared with the reference's
    reverse complement (a second cached reference); equal to full forwards."""
    spec = model_spec({**MODELS["enformer_tiny"], "rc_average": True}, "rc")
    with_reuse = ism.make_readout(spec, reuse=True)
    without = ism.EngineReadout(spec, reuse=False, predictor=with_reuse.predictor)
    gene = cohort.genes.iloc[1]
    a = ism.gene_values(cohort, gene, with_reuse, WINDOW, True, 0.0, False)
    b = ism.gene_values(cohort, gene, without, WINDOW, True, 0.0, False)
    scale = np.abs(b[1]).max()
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-5)
    assert with_reuse.predictor.reuse.stats["reused"] >= 2 * len(a[0])  # both strands windowed
