"""readout: exons on models with a known answer, against bcftools consensus + chain.

The model reports, per base (1-bp bins), whether there is a base (track 0), an A on the +
strand (track 1) and an A on the − strand, i.e. a T (track 2, the pair of track 1).
Summed over a gene's exons it gives each haplotype's exon length inside the window and
its count of A on the gene's strand; the expected numbers come from the haplotype that
`bcftools consensus` builds, with the exons mapped through its chain file (insertions
and deletions inside exons, exons deleted whole, minus-strand genes, exons across the
window edges), computed independently of hapexp's mapping.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hapexp.engine.predict import predict_chunk
from hapexp.engine.predictor import Predictor
from hapexp.engine.readout import exon_bins, exon_counts
from hapexp.models.registry import LoadedModel
from hapexp.models.tracks import track_table
from hapexp.sequences.haplotypes import build_index
from hapexp.sequences.index import HaplotypeIndex
from hapexp.sequences.windows import revcomp
from tests.test_windows_chain import bcftools_haplotype, map_interval, map_tss, random_cohort

pytestmark = pytest.mark.usefixtures("torch_one_thread")
L = 40


class BaseCoverage(torch.nn.Module):
    def forward(self, x):
        return torch.stack([x.sum(-1), x[..., 0], x[..., 3]], -1)


def coverage_model(window=L, bin_size=1, crop=0):
    tab = track_table(["base", "A+", "A-"], ["base", "A", "A"], bin_size, assays=["rna_seq"] * 3,
                      strands=[".", "+", "-"], strand_pair=[0, 2, 1])  # fmt: skip

    class Binned(torch.nn.Module):
        def forward(self, x):
            out = BaseCoverage()(x)[:, crop : window - crop]
            return out.reshape(x.shape[0], -1, bin_size, 3).sum(2)

    return LoadedModel(Binned(), window, bin_size, crop, 3, list(tab["description"]), list(tab["identifier"]),
                       kind="coverage", tracks=tab)  # fmt: skip


def spec(**kw):
    return {"kind": "oracle", "window": L, "bin_size": 1, "tracks": [0, 1], "bins": 1, "device": "cpu",
            "readout": "exons", "batch_size": 16, **kw}  # fmt: skip


def expected(seq: bytes, blocks, tss0, strand, exons) -> tuple[float, float]:
    """Exon bases inside the window and their A count (gene strand), from bcftools' haplotype;
    NaN when no exon base is inside the window (the read-out's convention)."""
    p, _ = map_tss(blocks, tss0)
    lo = p - L // 2 + (1 if strand == "-" else 0)
    covered = np.zeros(L, bool)
    for s0, e0 in exons:
        a, b = map_interval(blocks, int(s0), int(e0))
        covered[max(a - lo, 0) : max(min(b - lo, L), 0)] = True
    win = np.full(L, ord("N"), np.uint8)
    for i in range(L):
        if 0 <= lo + i < len(seq):
            win[i] = seq[lo + i]
    if strand == "-":  # gene orientation: A on the gene's strand = T on the forward strand
        win, covered = revcomp(win), covered[::-1]
    if not covered.any():
        return np.nan, np.nan
    return int((covered & (win != ord("N"))).sum()), int((covered & (win == ord("A"))).sum())


@pytest.mark.parametrize("rc_minus", [True, False])
def test_exon_readout_equals_bcftools_haplotypes(tmp_path, rc_minus):
    genes, samples = random_cohort(tmp_path, seed=5)
    genes = genes.iloc[::3].reset_index(drop=True)  # both strands, every kind of TSS placement
    build_index(tmp_path / "norm.bcf", tmp_path / "ref.fa", genes, L, tmp_path / "idx.npz")
    idx = HaplotypeIndex.load(tmp_path / "idx.npz")
    rng = np.random.default_rng(1)
    exons = {}
    for g in genes.itertuples(index=False):
        st = int(g.tss) - 1 + rng.integers(-28, 24, 3)
        ex = np.stack([st, st + rng.integers(1, 14, 3)], 1)
        exons[g.gene_id] = ex[(ex[:, 0] >= 0) & (ex[:, 1] <= 3000)]
    p = Predictor(spec(rc_minus=rc_minus), model=coverage_model())
    tidy, _ = predict_chunk(idx, p, exons=exons, progress=False)
    haps = {(s, h): bcftools_haplotype(tmp_path, s, h) for s in samples for h in (1, 2)}
    got = tidy.set_index(["gene_id", "sample", "haplotype", "track"])["value"]
    n = n_len_changed = n_nan = 0
    for g in genes.itertuples(index=False):
        ref_len = int(sum(e - s for s, e in exons[g.gene_id]))
        for s in samples:
            for h in (1, 2):
                want_len, want_a = expected(*haps[s, h], int(g.tss) - 1, g.strand, exons[g.gene_id])
                np.testing.assert_array_equal(
                    [got[g.gene_id, s, h, 0], got[g.gene_id, s, h, 1]],
                    [want_len, want_a],
                    str((g.gene_id, s, h)),
                )
                n += 1
                n_nan += np.isnan(want_len)
                n_len_changed += want_len != min(ref_len, L)
    assert n > 1000 and n_len_changed > 50 and 0 < n_nan < n / 10, (n, n_len_changed, n_nan)
    # exons outside the window are counted (reference windows)
    st = {d["gene_id"]: d for d in p.exon_stats}
    assert (
        sum(d["exons_dropped"] for d in st.values()) > 0 and sum(d["exons_clipped"] for d in st.values()) > 0
    )
    # every haplotype run (no dedup) gives the same numbers
    every, _ = predict_chunk(idx, Predictor(spec(rc_minus=rc_minus), model=coverage_model()), exons=exons,
                             dedup=False, progress=False)  # fmt: skip
    np.testing.assert_array_equal(every["value"].to_numpy(), tidy["value"].to_numpy())


def test_exon_bins_and_counts_by_hand():
    # 8 bins of 32 bp, no crop: [40, 70) touches bins 1-2, [100, 101) bin 3, [300, 400) is outside
    assert list(exon_bins([[40, 70], [100, 101], [300, 400]], 0, 32, 8)) == [1, 2, 3]
    # crop 16: the output starts at input 16
    assert list(exon_bins([[40, 70], [100, 101]], 16, 32, 7)) == [0, 1, 2]
    assert exon_counts([[40, 70], [250, 300], [300, 400], [5, 5]], 0, 32, 8) == {
        "exons": 4, "exons_in_window": 1, "exons_clipped": 1, "exons_dropped": 1, "exons_deleted": 1, "exon_bins": 3,
    }  # fmt: skip


def test_exon_sum_mean_and_cage_tss_bins():
    """Output bin b of track t holds b + 100 t; exons over bins {1, 2, 3}: sum 6, mean 2;
    a CAGE track keeps the TSS bins; a gene without exon bins reads NaN."""
    n_bins = 8

    class BinIndex(torch.nn.Module):
        def forward(self, x):
            b = torch.arange(n_bins, dtype=torch.float32)[None, :, None].expand(x.shape[0], -1, 2)
            return b + torch.tensor([0.0, 100.0])

    tab = track_table(["rna", "cage"], ["RNA:x", "CAGE:x"], 32)
    m = LoadedModel(BinIndex(), 256, 32, 0, 2, list(tab["description"]), list(tab["identifier"]), tracks=tab)
    base = {"kind": "oracle", "window": 256, "bin_size": 32, "tracks": [0, 1], "bins": 2, "device": "cpu",
            "readout": "exons"}  # fmt: skip
    seqs = np.full((2, 256), ord("A"), np.uint8)
    ex = [np.array([[40, 70], [100, 101]]), np.array([[300, 400]])]
    got = Predictor(base, model=m).readout(seqs, 128, exons=ex)
    assert got[0, 0] == 6 and got[0, 1] == (3 + 100) + (4 + 100)  # TSS bin 4: bins 3, 4
    assert np.isnan(got[1, 0]) and got[1, 1] == 207
    got = Predictor({**base, "exon_aggregation": "mean"}, model=m).readout(seqs, 128, exons=ex)
    assert got[0, 0] == 2
    tss = Predictor({**base, "readout": "tss"}, model=m).readout(seqs, 128)
    assert tss[0, 0] == 3 + 4  # readout: tss reads every track at the TSS bins
    with pytest.raises(ValueError, match="needs the exons"):
        Predictor(base, model=m).readout(seqs, 128)


def test_predict_renders_one_batch_at_a_time(tmp_path, monkeypatch):
    """The engine never holds more than a batch of rendered windows (what lets 1 Mb windows
    fit): it streams `iter_gene_haplotypes` and never renders a whole gene at once, with the
    same predictions as the whole-gene path."""
    genes, _ = random_cohort(tmp_path, seed=1)
    genes = genes.iloc[::5].reset_index(drop=True)
    build_index(tmp_path / "norm.bcf", tmp_path / "ref.fa", genes, L, tmp_path / "idx.npz")
    idx = HaplotypeIndex.load(tmp_path / "idx.npz")
    whole, _ = predict_chunk(idx, Predictor(spec(readout="tss", batch_size=3), model=coverage_model()),
                             dedup=False, progress=False)  # fmt: skip
    sizes = []
    render = HaplotypeIndex._render_rows

    def spy(self, P, rows, length, flip):
        sizes.append(len(rows))
        return render(self, P, rows, length, flip)

    monkeypatch.setattr(HaplotypeIndex, "_render_rows", spy)
    monkeypatch.setattr(HaplotypeIndex, "gene_haplotypes", lambda *a, **k: pytest.fail("whole gene rendered"))
    streamed, _ = predict_chunk(idx, Predictor(spec(readout="tss", batch_size=3), model=coverage_model()),
                                progress=False)  # fmt: skip
    assert max(sizes) == 3 and len(sizes) > len(genes)
    np.testing.assert_array_equal(streamed["value"].to_numpy(), whole["value"].to_numpy())


def test_readout_exons_without_exons_is_a_config_error(tmp_path):
    import yaml

    from tests.conftest import demo_config
    from tests.workflow_utils import run_snakemake

    cfg = demo_config()
    del cfg["genes"]["exons"]
    cfg["models"]["enformer_tiny"]["readout"] = "exons"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "--configfile", "c.yaml", "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "models enformer_tiny use readout: exons" in out and "genes.exons" in out
    assert not (tmp_path / "results").exists()
