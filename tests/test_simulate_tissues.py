"""The multi-tissue demo (simulate.tissues): each tissue's expression comes from its own oracle
track, and nothing of it from the other's.

The cohort's files are read back through the workflow's own path, independent of the
simulator's read-out code: VCF → normalized BCF → haplotype index (hapexp.sequences) → the
inference engine (hapexp.engine) with the config's oracle block, one track per tissue; ISM
through the engine's ISM (hapexp.engine.ism).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import yaml

from hapexp.demo.files import OUTPUT_FILES, output_files, rule_outputs
from hapexp.demo.simulate import run_simulate_demo, simulate_demo
from hapexp.models.oracle import Oracle, tissue_motif_sets

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TISSUES = ["liver", "whole_blood"]
N = 100
SIM = {"seed": 3, "n_individuals": N, "n_chromosomes": 2, "chromosome_length": 120_000, "n_genes": 12}


def oracle_spec(weights, track: int) -> dict:
    """config.yaml's oracle block reading one track."""
    with open("config/config.yaml") as fh:
        cfg = yaml.safe_load(fh)["models"]["oracle"]
    return {**cfg, "weights": str(weights), "tracks": [track]}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """The two-tissue demo, its haplotype index, and the engine's per-track predictions
    (genes × people matrix and reference read-out per track)."""
    from hapexp.engine.predict import aggregate_predictions, predict_chunk
    from hapexp.engine.predictor import Predictor
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.normalize import normalize

    d = tmp_path_factory.mktemp("tissues")
    summary = simulate_demo(d, tissues=TISSUES, **SIM)
    genes = pd.read_csv(d / "genes.tsv", sep="\t")
    normalize([str(d / "cohort.vcf.gz")], d / "reference.fa", d / "norm.bcf")
    build_index(d / "norm.bcf", d / "reference.fa", genes, 2048, d / "idx.npz")
    index = HaplotypeIndex.load(d / "idx.npz")
    pred, ref = {}, {}
    for k in range(len(TISSUES)):
        p = Predictor(oracle_spec(d / "oracle.pt", k), name="oracle")
        tidy, _ = predict_chunk(index, p, progress=False)
        pred[k], ref[k] = aggregate_predictions(tidy, p.spec["haplotype_aggregation"])
    return {"dir": d, "summary": summary, "index": index, "pred": pred, "ref": ref}


def read(d, name: str) -> pd.DataFrame:
    return pd.read_csv(d / name, sep="\t", index_col=0)


def residual(d, tissue: str) -> pd.DataFrame:
    """The tissue's expression with its measured covariates regressed out (least squares)."""
    e, c = read(d, f"expression_{tissue}.tsv"), read(d, f"covariates_{tissue}.tsv")
    X = np.column_stack([np.ones(e.shape[1]), c[e.columns].T.to_numpy()])
    y = e.to_numpy().T
    return pd.DataFrame((y - X @ np.linalg.lstsq(X, y, rcond=None)[0]).T, index=e.index, columns=e.columns)


def corr(x, y) -> float:
    """Pearson r; 0 when either side is constant (a track that does not vary predicts nothing)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.std() < 1e-9 or y.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def test_outputs_and_oracle_tracks(cohort):
    d = cohort["dir"]
    assert sorted(p.name for p in d.iterdir() if p.name in output_files(TISSUES)) == sorted(
        output_files(TISSUES)
    )
    for t in TISSUES:
        for stem in ("expression", "expression_noiseless", "covariates", "truth", "truth_genes"):
            assert (d / f"{stem}_{t}.tsv").exists()
    assert not (d / "expression.tsv").exists()
    oracle = Oracle.load(d / "oracle.pt")
    assert oracle.n_tracks == len(TISSUES)
    assert cohort["pred"][0].shape == (SIM["n_genes"], N)


def test_each_track_predicts_its_own_tissue_only(cohort):
    """The engine's track k on each person's VCF haplotypes = tissue k's noiseless expression
    (so r = 1 on tissue k's causal genes); the other track is flat on tissue-k-specific genes
    and only weakly correlated (LD between the tissues' causal SNVs) on shared ones, with
    the noiseless and with the measured expression alike.

    Measured (seed 3, 100 people, 12 genes; 7 + 7 gene × tissue pairs with h2 > 0, 8 of
    them on shared genes): own track r = 1.000 with the noiseless expression, the other
    track's mean |r| 0.18 (max 0.30; mean r 0.14 on shared, -0.02 on specific genes); with
    the measured expression (covariates regressed out) mean r 0.51 (own) vs 0.03 (other);
    on tissue-specific genes the other track's sd is at most 0.8 % of the own track's.
    """
    d, pred, ref = cohort["dir"], cohort["pred"], cohort["ref"]
    noiseless = {k: read(d, f"expression_noiseless_{t}.tsv") for k, t in enumerate(TISSUES)}
    expr = {k: residual(d, t) for k, t in enumerate(TISSUES)}
    tg = {k: read(d, f"truth_genes_{t}.tsv") for k, t in enumerate(TISSUES)}
    for k in noiseless:
        got = pred[k].loc[noiseless[k].index, noiseless[k].columns]
        np.testing.assert_allclose(got.to_numpy(), noiseless[k].to_numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ref[k].loc[tg[k].index], tg[k]["ref_readout"], rtol=1e-5, atol=1e-5)
    rows = []
    for k, j in ((0, 1), (1, 0)):
        people = list(noiseless[k].columns)
        for gene in tg[k].index[tg[k]["h2"] > 0]:
            own, other = pred[k].loc[gene, people], pred[j].loc[gene, people]
            rows.append(
                {
                    "h2": tg[k].loc[gene, "h2"],
                    "specific": tg[j].loc[gene, "h2"] == 0,
                    "own": corr(own, noiseless[k].loc[gene]),
                    "other": corr(other, noiseless[k].loc[gene]),
                    "own_expr": corr(own, expr[k].loc[gene]),
                    "other_expr": corr(other, expr[k].loc[gene]),
                    "sd_ratio": other.std() / own.std(),
                }
            )
    r = pd.DataFrame(rows)
    assert r["specific"].sum() >= 4 and (~r["specific"]).sum() >= 4  # both kinds of gene
    assert r["own"].min() > 0.9999
    assert r["other"].abs().mean() < 0.35 and r["other"].abs().max() < 0.6
    assert r.loc[r["specific"], "sd_ratio"].max() < 0.02
    # measured covariates removed, the hidden factors (20 % of the variance) remain
    high = r[r["h2"] >= 0.3]
    assert high["own_expr"].mean() >= 0.8 * np.sqrt(high["h2"] / 1.2).mean()
    assert r["other_expr"].mean() < 0.4 * r["own_expr"].mean()


def test_truth_is_the_engine_ism_of_its_own_track(cohort):
    """truth_<tissue>.tsv effect = the engine's ISM on that tissue's track; on the other
    track the same variants score ~0; each tissue's causal variants are its own (named
    motifs of that tissue, sign = motif weight × create/break)."""
    from hapexp.engine import ism

    d, index = cohort["dir"], cohort["index"]
    scores = {}
    for k in range(len(TISSUES)):
        spec = oracle_spec(d / "oracle.pt", k)
        scores[k] = ism.score_chunk(index, ism.make_readout(spec), spec, {"maf": 0.0, "indels": True})
        scores[k] = scores[k].set_index(["gene_id", "variant_id"])["score"]
    truth = {k: pd.read_csv(d / f"truth_{t}.tsv", sep="\t") for k, t in enumerate(TISSUES)}
    assert not set(truth[0]["variant_id"]) & set(truth[1]["variant_id"])
    for k, t in enumerate(TISSUES):
        tk = truth[k]
        assert len(tk) >= 5
        key = list(zip(tk["gene_id"], tk["variant_id"], strict=True))
        np.testing.assert_allclose(scores[k].loc[key].to_numpy(), tk["effect"], rtol=1e-4, atol=1e-5)
        other = scores[1 - k].loc[key].fillna(0.0)  # NaN = below the engine's resolution
        assert other.abs().max() <= 0.01
        weights = {f"{t}:{name}": w for name, _, w in tissue_motif_sets(len(TISSUES))[k]}
        assert tk["motif"].isin(list(weights)).all()
        sign = np.sign(tk["motif"].map(weights)) * np.where(tk["mechanism"] == "create", 1, -1)
        assert (np.sign(tk["effect"]) == sign).all()
        tg = read(d, f"truth_genes_{t}.tsv")
        assert (tk.groupby("gene_id").size().reindex(tg.index, fill_value=0) == tg["n_causal"]).all()
        assert ((tg["n_causal"] > 0) == (tg["h2"] > 0)).all()
        assert (tk["h2"].to_numpy() == tg.loc[tk["gene_id"], "h2"].to_numpy()).all()


def test_people_sample_sheet_and_covariates(cohort):
    """Everyone has the first tissue; each later one lacks round(15 %) of the people, so
    people's sets of tissues differ; samples.tsv holds every VCF sample with its sex, which
    is the sex row of every tissue's covariates; a tissue's files share its people."""
    d = cohort["dir"]
    vcf_samples = list(pysam.VariantFile(str(d / "cohort.vcf.gz")).header.samples)
    sheet = pd.read_csv(d / "samples.tsv", sep="\t")
    assert list(sheet.columns) == ["sample", "sex"] and list(sheet["sample"]) == vcf_samples
    assert set(sheet["sex"]) == {"female", "male"}
    male = dict(zip(sheet["sample"], sheet["sex"] == "male", strict=True))
    people = {}
    for t in TISSUES:
        e, n, c = (read(d, f"{s}_{t}.tsv") for s in ("expression", "expression_noiseless", "covariates"))
        assert list(e.columns) == list(n.columns) == list(c.columns)
        assert list(c.index) == ["sex", "age", "rin"]
        assert list(e.columns) == [s for s in vcf_samples if s in set(e.columns)]  # VCF order
        assert (c.loc["sex"].to_numpy() == np.array([male[s] for s in c.columns], float)).all()
        people[t] = set(e.columns)
    assert people[TISSUES[0]] == set(vcf_samples)
    assert len(people[TISSUES[1]]) == N - round(0.15 * N)
    # the person-level covariates agree between tissues; rin is the tissue's own
    c0, c1 = (read(d, f"covariates_{t}.tsv") for t in TISSUES)
    both = list(c1.columns)
    assert (c0.loc[["sex", "age"], both] == c1.loc[["sex", "age"], both]).all().all()
    assert not np.allclose(c0.loc["rin", both], c1.loc["rin", both])
    assert cohort["summary"]["people_by_tissue"] == {TISSUES[0]: N, TISSUES[1]: N - round(0.15 * N)}


def test_deterministic_and_three_tissues(tmp_path, cohort):
    """Same seed = same bytes; a third tissue keeps the first two tissues' motifs, has its
    own track, and misses its own people."""
    again = tmp_path / "again"
    simulate_demo(again, tissues=TISSUES, **SIM)
    for name in output_files(TISSUES):
        assert (again / name).read_bytes() == (cohort["dir"] / name).read_bytes(), name
    three = ["a", "b", "c"]
    simulate_demo(tmp_path / "three", tissues=three, seed=5, n_individuals=40, n_chromosomes=1,
                  chromosome_length=60_000, n_genes=4)  # fmt: skip
    o3 = Oracle.load(tmp_path / "three" / "oracle.pt")
    o2 = Oracle.load(cohort["dir"] / "oracle.pt")
    assert o3.n_tracks == 3 and o3.motifs[: len(o2.motifs)] == o2.motifs
    cols = [set(read(tmp_path / "three", f"expression_{t}.tsv").columns) for t in three]
    assert len(cols[0]) == 40 and len(cols[1]) == len(cols[2]) == 34 and cols[1] != cols[2]


def test_rule_contract(tmp_path):
    """rule_outputs (rules/simulate.smk) lists exactly what run_simulate_demo writes; the
    one-tissue demo keeps its file names; a disagreeing rule is refused."""
    assert output_files([]) == OUTPUT_FILES
    plain = rule_outputs(tmp_path, [])
    assert sorted(Path(p).name for p in plain.values()) == sorted(OUTPUT_FILES)
    outs = rule_outputs(tmp_path / "x", ["a", "b"])
    files = [f for v in outs.values() for f in (v if isinstance(v, list) else [v])]
    assert sorted(Path(f).name for f in files) == sorted(output_files(["a", "b"]))
    assert [Path(f).name for f in outs["expression"]] == ["expression_a.tsv", "expression_b.tsv"]
    kw = {"seed": 1, "n_individuals": 10, "n_chromosomes": 1, "chromosome_length": 60_000, "n_genes": 2,
          "window": 2048, "fit_window": None}  # fmt: skip
    with pytest.raises(RuntimeError, match="disagree"):
        run_simulate_demo(files[:-1], tissues=["a", "b"], **kw)
    run_simulate_demo(files, tissues=["a", "b"], **kw)
    assert all(Path(f).exists() for f in files)
    for bad in (["a", "a"], ["a", "noiseless_a"], ["a b"]):  # noiseless_a: expression_noiseless_a.tsv twice
        with pytest.raises(ValueError, match="distinct names"):
            simulate_demo(tmp_path / "y", tissues=bad, **{k: kw[k] for k in list(kw)[:5]})
