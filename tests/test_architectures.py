"""Borzoi, Flashzoi, AlphaGenome and Enformer through hapexp's registry.

Each small random checkpoint is written with its package's own save function and
loaded as real weights are (a local directory); hapexp's forward must equal the
package's own forward on the same one-hot input (fp32, rtol 1e-5), tracks must be
found by name, and stranded tracks must be handled on reverse complements.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hapexp.engine.predictor import Predictor
from hapexp.errors import InputError
from hapexp.models.registry import LoadedModel, load_model
from hapexp.models.spec import model_spec
from hapexp.models.tracks import resolve_tracks, track_table
from tests.tiny_models import onehot, random_seqs, save_alphagenome, save_borzoi

pytestmark = pytest.mark.usefixtures("torch_one_thread")
RTOL = 1e-5


def _close(got, want, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6 * np.abs(want).max(), err_msg=what)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-12)))


# ------------------------------------------------------------------------ Enformer
def test_enformer_outputs_unchanged_under_current_transformers():
    """tests/data/enformer_tiny_ref was written under transformers 4.56.2 (enformer-pytorch's
    pin); loading it through the registry under today's transformers gives the same output."""
    import transformers

    ref = np.load("tests/data/enformer_tiny_ref/io.npz")
    assert str(ref["transformers"]) == "4.56.2"
    spec = model_spec(
        {"kind": "enformer", "weights": "tests/data/enformer_tiny_ref/model", "window": 2048, "targets": None}
    )
    m = load_model(spec)
    with torch.inference_mode():
        out = m.forward(torch.from_numpy(ref["onehot"].astype(np.float32))).numpy()
    _close(out, ref["output"], f"enformer under transformers {transformers.__version__}")
    assert np.ptp(ref["output"]) > 0.1 * np.abs(ref["output"]).mean()  # sequence-sensitive


# ------------------------------------------------------------------------ Borzoi / Flashzoi
@pytest.fixture(scope="module", params=[False, True], ids=["borzoi", "flashzoi"])
def borzoi_dir(request, tmp_path_factory):
    return save_borzoi(tmp_path_factory.mktemp("bz") / "w", flashed=request.param), request.param


def _package_borzoi(path, flashed):
    from borzoi_pytorch import Borzoi

    from hapexp.models.borzoi.flash_attention import torch_flash_attention

    if flashed:
        with torch_flash_attention():
            return Borzoi.from_pretrained(str(path)).eval()
    return Borzoi.from_pretrained(str(path)).eval()


def test_borzoi_equals_package_forward(borzoi_dir):
    path, flashed = borzoi_dir
    spec = model_spec({"kind": "borzoi", "weights": str(path), "window": 2048, "unsquash": False}, "bz")
    m = load_model(spec)
    assert (m.window, m.bin_size, m.crop, m.n_bins, m.n_tracks) == (2048, 32, 512, 32, 7611)
    assert m.kind == "borzoi" and bool(getattr(m.module, "flashed", False)) == flashed
    x = onehot(random_seqs(3, 2048, seed=1))
    with torch.inference_mode():
        got = m.forward(x).numpy()
        want = _package_borzoi(path, flashed)(x.transpose(1, 2)).transpose(1, 2).numpy()
    _close(got, want, "borzoi forward")
    # the output depends on the sequence, so a wrong input layout could not pass
    assert np.ptp(want[:, 16, :].mean(1)) > 1e-3 * np.abs(want).mean()


def test_borzoi_unsquash_equals_annotated_borzoi(borzoi_dir):
    from borzoi_pytorch import AnnotatedBorzoi

    path, flashed = borzoi_dir
    if flashed:
        pytest.skip("same transform; checked on Borzoi")
    spec = model_spec({"kind": "borzoi", "weights": str(path), "window": 2048}, "bz")
    m = load_model(spec)
    pkg = _package_borzoi(path, False)
    ann = AnnotatedBorzoi(pkg.config)
    ann.load_state_dict(pkg.state_dict())
    ann.eval()
    x = onehot(random_seqs(2, 2048, seed=2))
    with torch.inference_mode():
        got = m.forward(x).transpose(1, 2)[:, ann.sense_tracks]
        raw = ann(x.transpose(1, 2))[:, ann.sense_tracks]
        want = ann._undo_squashed_scale(raw)
    _close(got.numpy(), want.numpy(), "undo squashed scale")


def test_borzoi_tracks_by_name_and_strand_pairs(borzoi_dir):
    path, _ = borzoi_dir
    m = load_model(model_spec({"kind": "borzoi", "weights": str(path), "window": 2048}, "bz"))
    t = m.tracks
    ids, names = m.identifiers, m.track_names
    assert resolve_tracks(["ENCFF470BSF+", "ENCFF470BSF-", 6120], names, ids, table=t) == [6112, 6113, 6120]
    assert m.strand_pair[6112] == 6113 and m.strand_pair[6113] == 6112 and m.strand_pair[6120] == 6120
    assert (t.loc[6112, "strand"], t.loc[6113, "strand"], t.loc[6120, "strand"]) == ("+", "-", ".")
    assert t.loc[6112, "assay"] == "rna_seq" and t.loc[870, "assay"] == "cage"
    with pytest.raises(InputError, match="matches indices"):
        resolve_tracks(["RNA:GM12878"], names, ids, table=t)
    plus = resolve_tracks([{"description": "RNA:GM12878", "strand": "+"}], names, ids, table=t)
    assert plus == [6112, 6114, 6116, 6118, 6204, 6514, 6668, 7306]
    with pytest.raises(InputError, match="no track matches"):
        resolve_tracks([{"description": "RNA:nowhere"}], names, ids, table=t)
    with pytest.raises(InputError, match="not a metadata column"):
        resolve_tracks([{"tissue": "x"}], names, ids, table=t)


def test_flashzoi_attention_equals_naive_rotary_gqa():
    """hapexp's torch attention for Flashzoi (flash-attn is CUDA-only) against a naive
    implementation of flash_attn's MHA as Flashzoi configures it: GQA (kv heads = heads / 2),
    non-interleaved rotary on the first 128 dims (base 20,000), scale head_dim^-0.5."""
    from hapexp.models.borzoi.flash_attention import TorchFlashAttention

    torch.manual_seed(3)
    dim, heads, s = 512, 4, 24
    att = TorchFlashAttention(dim=dim, heads=heads).eval()
    with torch.no_grad():
        for p in att.parameters():
            p.normal_(0, 0.05)
    x = torch.randn(2, s, dim)
    with torch.inference_mode():
        got = att(x)
    # naive: rotate pairs (i, i + 64) of the first 128 dims as complex numbers
    d, hkv = dim // heads, heads // 2
    w, b = att.mha.Wqkv.weight.double(), att.mha.Wqkv.bias.double()
    qkv = x.double() @ w.T + b
    q = qkv[..., : heads * d].reshape(2, s, heads, d)
    k = qkv[..., heads * d : heads * d + hkv * d].reshape(2, s, hkv, d)
    v = qkv[..., heads * d + hkv * d :].reshape(2, s, hkv, d)
    theta = 20000.0 ** (-torch.arange(64, dtype=torch.float64) / 64)

    def rot(t):
        z = torch.complex(t[..., :64], t[..., 64:128])
        ang = torch.arange(s, dtype=torch.float64)[:, None] * theta[None, :]
        z = z * torch.polar(torch.ones_like(ang), ang)[None, :, None, :]
        return torch.cat([z.real, z.imag, t[..., 128:]], -1)

    q, k = rot(q), rot(k)
    out = torch.zeros(2, s, heads, d, dtype=torch.float64)
    for h in range(heads):
        g = h // (heads // hkv)
        logits = torch.einsum("bid,bjd->bij", q[:, :, h], k[:, :, g]) * d**-0.5
        out[:, :, h] = torch.einsum("bij,bjd->bid", logits.softmax(-1), v[:, :, g])
    want = out.reshape(2, s, dim) @ att.mha.out_proj.weight.double().T + att.mha.out_proj.bias.double()
    _close(got.numpy(), want.detach().numpy(), "flashzoi attention")


def test_borzoi_crop_mismatch_and_missing_weights(tmp_path, borzoi_dir):
    path, _ = borzoi_dir
    with pytest.raises(InputError, match="differs from the checkpoint"):
        load_model(model_spec({"kind": "borzoi", "weights": str(path), "window": 2048, "crop": 256}, "bz"))
    with pytest.raises(InputError) as e:
        load_model(model_spec({"kind": "borzoi", "weights": str(tmp_path / "nope")}, "bz"))
    assert "huggingface-cli download johahi/borzoi-replicate-0" in str(e.value) and "HF_HUB_OFFLINE" in str(
        e.value
    )


# ------------------------------------------------------------------------ AlphaGenome
@pytest.fixture(scope="module")
def ag_dir(tmp_path_factory):
    return save_alphagenome(tmp_path_factory.mktemp("ag") / "w")


@pytest.mark.parametrize("resolution", [128, 1])
def test_alphagenome_equals_package_forward(ag_dir, resolution):
    from alphagenome_pt import AlphaGenome, get_dtype_policy

    spec = model_spec(
        {"kind": "alphagenome", "weights": str(ag_dir), "window": 4096, "resolution": resolution}, "ag"
    )
    m = load_model(spec)
    assert (m.bin_size, m.crop, m.n_bins, m.n_tracks) == (resolution, 0, 4096 // resolution, 6)
    x = onehot(random_seqs(2, 4096, seed=4))
    pkg = AlphaGenome.load(ag_dir).eval()
    pkg.dtype_policy = get_dtype_policy("float32")
    with torch.inference_mode():
        got = m.forward(x).numpy()
        pred = pkg(x, organism_index=0)
    key = f"predictions_{resolution}bp"
    want = torch.cat([pred["rna_seq"][key], pred["cage"][key]], -1).numpy()
    _close(got, want, f"alphagenome {resolution} bp")
    assert np.ptp(want[:, :, 0].sum(1)) > 1e-3 * np.abs(want[:, :, 0].sum(1)).mean()


def test_alphagenome_tracks_by_name(ag_dir):
    m = load_model(model_spec({"kind": "alphagenome", "weights": str(ag_dir), "window": 4096}, "ag"))
    t, names, ids = m.tracks, m.track_names, m.identifiers
    assert ids[:2] == ["rna_seq:EFO:0002784 total RNA-seq:+", "rna_seq:EFO:0002784 total RNA-seq:-"]
    assert list(t["assay"]) == ["rna_seq"] * 4 + ["cage"] * 2
    assert list(m.strand_pair) == [1, 0, 2, 3, 5, 4]
    sel = resolve_tracks(
        [{"output": "rna_seq", "biosample_name": "GM12878", "strand": "+"}], names, ids, table=t
    )
    assert sel == [0]
    assert resolve_tracks([{"ontology_curie": "EFO:0002784", "strand": "+"}], names, ids, table=t) == [0, 4]
    assert resolve_tracks(["cage:EFO:0002784 CAGE:-"], names, ids, table=t) == [5]
    # CAGE tracks keep the TSS read-out under readout: exons
    p = Predictor({"kind": "alphagenome", "weights": str(ag_dir), "window": 4096, "device": "cpu",
                   "readout": "exons", "tracks": [0, 4]}, model=m)  # fmt: skip
    assert list(p.tss_track) == [False, True] and p.uses_exons


def test_alphagenome_bf16_runs_the_deepmind_policy(ag_dir):
    """precision: bf16 = the port's DeepMind policy (fp32 weights, bf16 compute). A He-initialised
    random network amplifies bf16 rounding far more than trained weights, so only the
    agreement of the coverage profiles is checked here (the budget is measured on GPU)."""
    base = {"kind": "alphagenome", "weights": str(ag_dir), "window": 4096, "device": "cpu"}
    x = onehot(random_seqs(2, 4096, seed=5))
    a = load_model(model_spec(base, "ag"))
    b = load_model(model_spec({**base, "precision": "bf16"}, "ag"))
    assert (a.module.dtype_policy.name, b.module.dtype_policy.name) == ("float32", "deepmind")
    with torch.inference_mode():
        fa, fb = a.forward(x).numpy(), b.forward(x).numpy()
    assert np.isfinite(fb).all()
    r = np.corrcoef(np.log1p(fa[:, :, :3].ravel()), np.log1p(fb[:, :, :3].ravel()))[0, 1]
    assert r > 0.9, r


def test_alphagenome_missing_weights(tmp_path):
    with pytest.raises(InputError) as e:
        load_model(model_spec({"kind": "alphagenome", "weights": str(tmp_path / "nope")}, "ag"))
    assert "RylieWeaver/alphagenome-pytorch" in str(e.value) and "models.ag.weights" in str(e.value)


# ------------------------------------------------------------------------ strands
class StrandCounter(torch.nn.Module):
    """Known answer, 1-bp bins: track 0 (+ strand) = A at each base, track 1 (− strand) = T
    (an A read on the other strand), track 2 (unstranded) = G or C."""

    def forward(self, x):
        return torch.stack([x[..., 0], x[..., 3], x[..., 1] + x[..., 2]], -1)


def _strand_model(n=64):
    tab = track_table(["a+", "a-", "gc"], ["A", "A", "GC"], 1, assays=["rna_seq"] * 2 + ["dnase"],
                      strands=["+", "-", "."], strand_pair=[1, 0, 2])  # fmt: skip
    return LoadedModel(StrandCounter(), n, 1, 0, 3, list(tab["description"]), list(tab["identifier"]),
                       kind="counter", tracks=tab)  # fmt: skip


def test_rc_average_swaps_strand_pairs():
    seqs = random_seqs(4, 64, seed=6, with_n=False)
    spec = {"kind": "oracle", "window": 64, "bin_size": 1, "tracks": [0, 1, 2], "bins": 64, "device": "cpu"}
    plain = Predictor(spec, model=_strand_model()).central(seqs, 32)
    rc = Predictor({**spec, "rc_average": True}, model=_strand_model()).central(seqs, 32)
    # a strand-consistent model is its own RC average once pairs are swapped
    np.testing.assert_array_equal(rc, plain)
    a = (seqs == ord("A")).astype(np.float32)
    np.testing.assert_array_equal(rc[:, :, 0], a)
    # without the swap, track 0 would have averaged A with T
    assert not np.array_equal(rc[:, :, 0], (a + (seqs == ord("T"))) / 2)


def test_antisense_rows_read_the_pair_track():
    seqs = random_seqs(3, 64, seed=7, with_n=False)
    spec = {"kind": "oracle", "window": 64, "bin_size": 1, "tracks": [0, 2], "bins": 64, "device": "cpu"}
    p = Predictor(spec, model=_strand_model())
    sense = p.readout(seqs, 32)
    anti = p.readout(seqs, 32, antisense=np.array([False, True, True]))
    np.testing.assert_array_equal(anti[0], sense[0])
    np.testing.assert_array_equal(anti[1:, 0], (seqs[1:] == ord("T")).sum(1))  # the − strand track
    np.testing.assert_array_equal(anti[:, 1], sense[:, 1])  # unstranded: unchanged


def test_geuvadis_commented_model_entries_validate():
    """config/geuvadis.yaml's commented-out Borzoi/Flashzoi and AlphaGenome blocks, uncommented,
    pass the schema and resolve to the published windows, with tracks chosen by name."""
    import re
    from pathlib import Path

    import yaml

    from hapexp.config.check import check_config

    text = Path("config/geuvadis.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("  # borzoi:"))
    block = []
    for line in text[start:]:
        if not line.startswith("  # "):
            break
        block.append("  " + line[4:])
    cfg = yaml.safe_load(Path("config/geuvadis.yaml").read_text())
    extra = yaml.safe_load("\n".join(block).replace("\n  ", "\n").lstrip())
    assert set(extra) == {"borzoi", "alphagenome", "alphagenome_cage"}
    cfg["models"].update(extra)
    check_config(cfg, "geuvadis.yaml")
    windows = {k: model_spec(v, k)["window"] for k, v in extra.items()}
    assert windows == {"borzoi": 524288, "alphagenome": 1048576, "alphagenome_cage": 1048576}
    assert all(isinstance(v["tracks"][0], dict) for v in extra.values())
    assert not any(re.search(r"\b\d{4}\b", str(v["tracks"])) for v in extra.values())  # by name, not index
