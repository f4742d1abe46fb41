"""The oracle: fixed motif model, its output contract and save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hapexp.errors import InputError
from hapexp.models.oracle import DEFAULT_MOTIFS, Oracle, one_hot, revcomp, tissue_motif_sets


def random_seq(rng, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


def tss_readout(model: Oracle, seqs: list[str]) -> np.ndarray:
    """Sum of the 2 central bins (7, 8 for L = 2048) of track 0."""
    x = one_hot(np.stack([np.frombuffer(s.encode(), dtype=np.uint8) for s in seqs])).float()
    with torch.no_grad():
        y = model(x)
    c = (x.shape[1] // 2) // 128
    return y[:, c - 1 : c + 1, 0].sum(1).numpy()


def test_output_shape_and_any_length():
    model = Oracle()
    for length in (128, 1280, 2048):
        y = model(torch.zeros(3, length, 4))
        assert y.shape == (3, length // 128, 2)
        assert torch.all(y > 0)  # softplus output
    with pytest.raises(ValueError, match="multiple of 128"):
        model(torch.zeros(1, 1000, 4))


def test_single_motif_gain_changes_tss_readout_clearly():
    rng = np.random.default_rng(0)
    model = Oracle()
    base = random_seq(rng, 2048)
    seqs = [base]
    for _name, motif, _w0, _w1 in DEFAULT_MOTIFS:
        pos = 1024 - len(motif) // 2 - 100
        seqs.append(base[:pos] + motif + base[pos + len(motif) :])
    for _name, motif, _w0, _w1 in DEFAULT_MOTIFS:  # reverse strand instances count too
        pos = 1024 + 200
        seqs.append(base[:pos] + revcomp(motif) + base[pos + len(motif) :])
    r = tss_readout(model, seqs)
    weights = np.array([m[2] for m in DEFAULT_MOTIFS] * 2)
    delta = r[1:] - r[0]
    assert np.all(np.sign(delta) == np.sign(weights))
    assert np.all(np.abs(delta) > 0.1), delta
    # farther from the TSS = smaller effect (distance weighting)
    assert np.all(np.abs(delta[: len(weights) // 2]) > np.abs(delta[len(weights) // 2 :]))


def test_one_mismatch_is_nearly_silent_and_n_is_zero():
    rng = np.random.default_rng(1)
    model = Oracle()
    base = random_seq(rng, 2048)
    motif = DEFAULT_MOTIFS[0][1]
    mutated = motif[:4] + ("A" if motif[4] != "A" else "C") + motif[5:]
    pos = 1000
    full = base[:pos] + motif + base[pos + len(motif) :]
    near = base[:pos] + mutated + base[pos + len(motif) :]
    r = tss_readout(model, [base, full, near])
    assert abs(r[2] - r[0]) < 0.01 * abs(r[1] - r[0])
    # N (all-zero one-hot) never matches a motif
    n_run = "N" * 2048
    x = one_hot(np.frombuffer(n_run.encode(), dtype=np.uint8)).float()
    assert float(model.motif_presence(x).max()) < 1e-3


def test_reverse_complement_symmetry():
    """Both strands are scanned and the distance kernel is symmetric: RC mirrors the bins."""
    rng = np.random.default_rng(2)
    model = Oracle()
    seq = random_seq(rng, 2048)
    motif = DEFAULT_MOTIFS[1][1]
    seq = seq[:900] + motif + seq[910:]
    x = one_hot(np.frombuffer(seq.encode(), dtype=np.uint8)).double()
    xr = one_hot(np.frombuffer(revcomp(seq).encode(), dtype=np.uint8)).double()
    m = model.double()
    with torch.no_grad():
        y, yr = m(x), m(xr)
    # approximately mirrored (kernel offsets are half-open, so not bit-exact)
    np.testing.assert_allclose(y[0, :, 0].numpy(), yr[0, :, 0].numpy()[::-1], rtol=0.05)


def test_save_load_round_trip(tmp_path):
    model = Oracle()
    path = tmp_path / "oracle.pt"
    model.save(path)
    again = Oracle.load(path)
    x = one_hot(np.frombuffer(random_seq(np.random.default_rng(3), 4096).encode(), dtype=np.uint8)).float()
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert again.hparams == model.hparams
    # deterministic bytes, independent of the file name
    other = tmp_path / "other_name.pt"
    again.save(other)
    assert path.read_bytes() == other.read_bytes()
    # a plain weights_only load works: nothing but tensors and builtins inside
    obj = torch.load(path, weights_only=True)
    assert set(obj) == {"format", "hparams", "state_dict"}


def test_custom_hparams_round_trip(tmp_path):
    model = Oracle(motifs=["ACGTAC", "GGGTTTAA"], weights=[[1.0, -0.5]], steepness=8.0, length_scale=300.0)
    model.save(tmp_path / "m.pt")
    again = Oracle.load(tmp_path / "m.pt")
    x = torch.rand(2, 1024, 4)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert again(x).shape == (2, 8, 1)


def test_load_rejects_foreign_file(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(InputError, match="not a hapexp oracle file"):
        Oracle.load(path)


def test_tissue_oracle_track_k_reads_tissue_k_motifs_only(tmp_path):
    """One track per tissue: a motif of tissue k placed near the TSS moves track k by its
    weight's sign and leaves every other track exactly unchanged; the file loads through
    the config's oracle block with one track per tissue."""
    import yaml

    from hapexp.models.oracle import load_oracle
    from hapexp.models.spec import model_spec

    tissues = ["liver", "blood", "brain"]
    model = Oracle.for_tissues(tissues)
    sets = tissue_motif_sets(3)
    assert model.n_tracks == 3 and len(model.motifs) == 18
    assert sets[0] == [m[:3] for m in DEFAULT_MOTIFS]  # the first tissue reads the default motifs
    assert tissue_motif_sets(2) == sets[:2]  # adding a tissue keeps the others'
    rng = np.random.default_rng(4)
    base = random_seq(rng, 2048)
    planted = [
        (k, w, base[:1000] + motif + base[1010:]) for k, mset in enumerate(sets) for _, motif, w in mset
    ]
    x = one_hot(
        np.stack([np.frombuffer(s.encode(), dtype=np.uint8) for s in [base] + [p[2] for p in planted]])
    )
    with torch.no_grad():
        y = model(x.float())[:, 7:9].sum(1).numpy()  # (1 + 18, tracks)
    for (k, w, _), delta in zip(planted, y[1:] - y[0], strict=True):
        assert np.sign(delta[k]) == np.sign(w) and abs(delta[k]) > 0.1, (k, w, delta)
        assert np.all(delta[np.arange(3) != k] == 0), (k, w, delta)
    # every pair of motifs (either strand, aligned) differs in >= 3 of 10 bases
    seqs = [s for mset in sets for _, m, _ in mset for s in (m, revcomp(m))]
    for i in range(len(seqs)):
        for j in range(i + 1, len(seqs)):
            if j != i + 1 or i % 2:  # not a motif vs its own reverse complement
                assert sum(a != b for a, b in zip(seqs[i], seqs[j], strict=True)) >= 3
    model.save(tmp_path / "oracle.pt")
    with open("config/config.yaml") as fh:
        cfg = yaml.safe_load(fh)["models"]["oracle"]
    loaded = load_oracle(model_spec({**cfg, "weights": str(tmp_path / "oracle.pt")}, "oracle"))
    assert loaded.n_tracks == 3
    assert Oracle.load(tmp_path / "oracle.pt").hparams["motif_names"][6] == "blood:ACT1"
