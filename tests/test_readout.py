"""Read-out: bin selection, RC averaging, aggregation and track names on known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hapexp.engine.predictor import Predictor
from hapexp.engine.readout import (
    aggregate_haplotypes,
    central_bin_start,
    readout_values,
    reverse_complement_average,
    tss_bin,
)
from hapexp.errors import InputError
from hapexp.models.registry import LoadedModel
from hapexp.models.tracks import load_targets, resolve_tracks

L, BIN = 2048, 128


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class BaseCounter(torch.nn.Module):
    """Known answer: output (B, bins, 4) = count of A, C, G, T in each 128-bp bin."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1, BIN, 4).sum(2)


def counter_predictor(**kw):
    spec = {"kind": "oracle", "window": L, "tracks": [0, 1, 2, 3], "bins": 2, "device": "cpu", **kw}
    loaded = LoadedModel(BaseCounter(), L, BIN, 0, 4, ["A", "C", "G", "T"], kind="counter")
    return Predictor(spec, model=loaded)


def test_tss_bin_matches_architecture_doc():
    # Enformer: 196,608 bp, crop 40,960, TSS at 98,304 → bin 448; 3 central bins 447-449.
    assert tss_bin(98304, 40960, 128) == 448
    assert central_bin_start(98304, 40960, 128, 3, 896) == 447
    # Minus strand without RC: TSS at L//2 - 1 falls in the bin before.
    assert tss_bin(L // 2 - 1, 0, 128) == L // 2 // 128 - 1
    with pytest.raises(ValueError, match="outside"):
        central_bin_start(10, 0, 128, 3, 16)


def test_bin_selection_known_answer():
    # Bin b holds exactly b A's (rest N): the sum over the n central bins is known.
    seq = np.full(L, ord("N"), np.uint8)
    for b in range(L // BIN):
        seq[b * BIN : b * BIN + b] = ord("A")
    c = (L // 2) // BIN  # 8
    for n, want_sum in [(1, c), (2, (c - 1) + c), (3, (c - 1) + c + (c + 1)), (4, sum(range(c - 2, c + 2)))]:
        p = counter_predictor(bins=n, tracks=[0])
        assert p.readout(seq[None], L // 2)[0, 0] == want_sum
        pm = counter_predictor(bins=n, tracks=[0], bin_aggregation="mean")
        assert pm.readout(seq[None], L // 2)[0, 0] == pytest.approx(want_sum / n)
    # Per-row TSS index (genes of both orientations in one batch).
    p = counter_predictor(bins=1, tracks=[0])
    got = p.readout(np.stack([seq, seq]), np.array([L // 2, L // 2 - 1]))[:, 0]
    assert list(got) == [c, c - 1]
    # log transform is log1p of the aggregated value.
    pl = counter_predictor(bins=2, tracks=[0], log=True)
    assert pl.readout(seq[None], L // 2)[0, 0] == pytest.approx(np.log1p(2 * c - 1))


def test_rc_average_known_answer():
    rng = np.random.default_rng(3)
    seqs = rng.choice(np.frombuffer(b"ACGTN", np.uint8), size=(3, L))
    plain = counter_predictor(bins=4).central(seqs, L // 2)
    rc = counter_predictor(bins=4, rc_average=True).central(seqs, L // 2)
    # RC input counts T where the forward counts A (same bases, flipped back): the average
    # of track A is (A + T) / 2 in the same bin, likewise C/G.
    np.testing.assert_allclose(rc[..., 0], (plain[..., 0] + plain[..., 3]) / 2)
    np.testing.assert_allclose(rc[..., 1], (plain[..., 1] + plain[..., 2]) / 2)
    np.testing.assert_allclose(rc[..., 0], rc[..., 3])
    # An asymmetric sequence: A's only in bin 2. Without the flip-back they would land in bin 13.
    seq = np.full(L, ord("N"), np.uint8)
    seq[2 * BIN : 2 * BIN + 5] = ord("A")
    full = counter_predictor(bins=16, rc_average=True).central(seq[None], L // 2)[0]
    assert full[2, 0] == 2.5 and full[2, 3] == 2.5 and full[13].sum() == 0


def test_reverse_complement_average_numpy():
    fwd = np.arange(12, dtype=float).reshape(1, 6, 2)
    rc = np.arange(12, dtype=float).reshape(1, 6, 2)
    out = reverse_complement_average(fwd, rc)
    np.testing.assert_allclose(out[0, 0], (fwd[0, 0] + rc[0, 5]) / 2)


def test_aggregations():
    x = np.array([[[1.0, 3.0], [2.0, 5.0]]])  # (N=1, bins=2, tracks=2)
    np.testing.assert_allclose(readout_values(x, "sum", False), [[3.0, 8.0]])
    np.testing.assert_allclose(readout_values(x, "mean", False), [[1.5, 4.0]])
    h = np.array([[1.0, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(aggregate_haplotypes(h, "mean"), [2.0, 2.0])
    np.testing.assert_allclose(aggregate_haplotypes(h, "sum"), [4.0, 4.0])
    with pytest.raises(ValueError):
        aggregate_haplotypes(h, "max")


def test_track_names_from_enformer_table():
    tab = load_targets("resources/enformer_targets_human.tsv")
    assert len(tab) == 5313
    names, ids = tab["description"].tolist(), tab["identifier"].tolist()
    gm = "CAGE:B lymphoblastoid cell line: GM12878 ENCODE, biol_"
    assert resolve_tracks([gm, "CNhs12333", 5110, 0], names, ids) == [5110, 5110, 5110, 0]
    with pytest.raises(InputError, match="no track named"):
        resolve_tracks(["CAGE:nonexistent"], names, ids)
    with pytest.raises(InputError, match="out of range"):
        resolve_tracks([5313], names, ids)
    dup = [d for d in set(names) if names.count(d) > 1]
    if dup:  # descriptions repeated in the table must be rejected, not silently picked
        with pytest.raises(InputError, match="matches indices"):
            resolve_tracks([dup[0]], names, ids)
