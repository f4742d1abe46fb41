"""End to end with today's architectures side by side: Enformer (tiny), Borzoi and AlphaGenome
(small random checkpoints saved with their packages' own save functions) in one config,
through predict, ISM and the verdict, with RNA-seq read out over exons. (Flashzoi is
Borzoi with another attention: tests/test_architectures.py.) One chunk, 20 people, 3
genes: the run must stay a few minutes on a shared 2-core machine.

The models are random, so the check is wiring, not biology: every model reaches every
stage; the exon read-outs written by the workflow equal a direct read-out of the reference
window with the gene's exons from its exons.tsv; tracks chosen by name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import demo_config
from tests.tiny_models import save_alphagenome, save_borzoi
from tests.workflow_utils import run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.long]
MODELS = ["enformer_tiny", "borzoi", "alphagenome"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("models")
    cfg = demo_config(small=True)
    cfg["simulate"].update(n_individuals=20, n_genes=3, n_chromosomes=1, chromosome_length=60_000)
    cfg["genes"]["chunks"] = 1
    common = {"device": "cpu", "batch_size": 16, "rc_minus": True}
    cfg["models"] = {
        "enformer_tiny": {"kind": "enformer_tiny", "window": 2048, "tracks": [0], "bins": 2, **common},
        # RNA-seq over exons (the + strand = the gene's sense strand), CAGE at the TSS
        "borzoi": {"kind": "borzoi", "weights": str(save_borzoi(wd / "w_borzoi", bins_to_return=16)),
                   "window": 1024, "readout": "exons", "log": True,
                   "tracks": [{"description": "RNA:GM12878", "strand": "+"}, "CNhs12332+"], "bins": 1,
                   "rc_average": True, **common},
        "alphagenome": {"kind": "alphagenome", "weights": str(save_alphagenome(wd / "w_ag", max_seq_len=2048)),
                        "window": 2048, "resolution": 1, "readout": "exons", "exon_aggregation": "mean",
                        "tracks": [{"output": "rna_seq", "biosample_name": "GM12878", "strand": "+"}], "bins": 1,
                        **common},
    }  # fmt: skip
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_snakemake(wd, "--configfile", "config.yaml")
    return wd


def test_every_model_reaches_the_verdict(run):
    res = run / "results/demo"
    for m in MODELS:
        for rel in (f"predict/{m}.matrix.tsv", f"ism/{m}.parquet", f"concordance/{m}.tsv"):
            assert (res / rel).stat().st_size > 0, rel
    perf = pd.read_csv(res / "performance.tsv", sep="\t")
    col = "predictor" if "predictor" in perf else perf.columns[1]
    assert set(MODELS) <= set(perf[col].astype(str))
    summary = (res / "summary.tsv").read_text()
    assert all(m in summary for m in MODELS)
    # tracks chosen by name: Borzoi's 8 GM12878 + strand RNA-seq tracks and a CAGE track
    tidy = pd.read_parquet(res / "predict/borzoi.parquet")
    assert tidy["track"].nunique() == 9 and "CAGE:B lymphoblastoid cell line: GM12878 ENCODE, biol_" in set(
        tidy["track_name"]
    )
    exons = pd.read_csv(res / "predict/borzoi/000.exons.tsv", sep="\t")
    assert (exons["exons"] > 0).all() and (exons["exon_bins"] > 0).all()


@pytest.mark.parametrize("model", ["borzoi", "alphagenome"])
def test_workflow_exon_readout_equals_direct_readout(run, model):
    """Reference rows of predict = the engine on the reference window, exons taken straight
    from results/{cohort}/exons.tsv (1-based inclusive) and placed by window_bounds."""
    from hapexp.engine.predictor import Predictor
    from hapexp.engine.readout import REFERENCE_SAMPLE
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.windows import window_bounds

    cfg = yaml.safe_load((run / "config.yaml").read_text())["models"][model]
    p = Predictor(cfg, name=model)
    res = run / "results/demo"
    exons = pd.read_csv(res / "exons.tsv", sep="\t")
    tidy = pd.read_parquet(res / f"predict/{model}.parquet")
    n = 0
    for chunk in ("000",):
        idx = HaplotypeIndex.load(res / f"haplotypes/{chunk}.npz")
        for g in idx.genes.itertuples():
            seq, tss_index = idx.reference_window(g.gene_id, p.model.window)
            e = exons[exons["gene_id"] == g.gene_id]
            w0, _ = window_bounds(g.tss, g.strand, p.model.window)
            iv = np.stack([e["start"].to_numpy() - 1 - w0, e["end"].to_numpy() - w0], 1)
            if g.strand == "-":
                iv = p.model.window - iv[:, ::-1]
            want = p.readout(seq[None], tss_index, exons=[iv])[0]
            ref = tidy[(tidy["gene_id"] == g.gene_id) & (tidy["sample"] == REFERENCE_SAMPLE)]
            got = ref.set_index("track").loc[p.track_idx]  # the config's track order
            np.testing.assert_allclose(got["value"].to_numpy(), want, rtol=1e-5)
            n += 1
    assert n == 3
