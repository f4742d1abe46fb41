"""Split-aware expression preparation (rule prepare_split_expression): transform, expression PCs
and covariate regression fitted on the training people, applied to the validation and test
people — so that what fine-tuning, the heads and the split verdict's elastic net fit on does
not depend on a test person's expression.

Independent answers: scipy's rankdata / percentileofscore for the held-out inverse normal
transform, scikit-learn's PCA for the projection, statsmodels' OLS fitted on the training
rows for the residualization."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hapexp.errors import InputError
from hapexp.inputs.expression import inverse_normal_transform, prepare_expression
from hapexp.io import read_matrix
from hapexp.stats import covariate_design, residualize, residualize_fitted
from hapexp.training.splits import run_prepare_split_expression, split_individuals

ROOT = Path(__file__).resolve().parents[1]


def _raw(n_genes=40, n=60, seed=0):
    """Counts-like expression (Poisson: many ties, within and across people) × people."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:02d}" for i in range(n)]
    lam = rng.gamma(2.0, 5.0, size=(n_genes, 1)) * rng.lognormal(0, 0.3, size=(1, n))
    x = rng.poisson(lam).astype(float) + rng.normal(0, 1, size=(n_genes, 1)) ** 2  # gene offsets
    x[: n_genes // 2] = rng.lognormal(2, 1, size=(n_genes // 2, n))  # continuous genes too
    return pd.DataFrame(
        x, index=pd.Index([f"G{i:02d}" for i in range(n_genes)], name="gene_id"), columns=samples
    )


def _covariates(samples, k=2, seed=1):
    rng = np.random.default_rng(seed)
    c = pd.DataFrame(rng.normal(size=(k, len(samples))), index=[f"c{i}" for i in range(k)], columns=samples)
    c.index.name = "id"
    return c


def _write_cohort(d: Path, expr: pd.DataFrame, cov: pd.DataFrame, people: pd.DataFrame) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    expr.to_csv(d / "expression.tsv", sep="\t")
    cov.to_csv(d / "covariates.tsv", sep="\t")
    people.to_csv(d / "individuals.tsv", sep="\t", index=False)
    return {"expression": str(d / "expression.tsv"), "expression_format": "tsv",
            "covariates": str(d / "covariates.tsv")}  # fmt: skip


def _prepare(d: Path, cohort: dict, transform="inverse_normal", n_pcs=2):
    run_prepare_split_expression(
        d / "individuals.tsv", d / "prepared_split.tsv", d / "covariates_split.tsv", cohort, transform, n_pcs
    )
    return read_matrix(d / "prepared_split.tsv"), read_matrix(d / "covariates_split.tsv", index_col="id")


def _consumers(expr: pd.DataFrame, people: dict, genes_train: list[str]) -> dict:
    """What each trained predictor fits on or produces from the prepared expression: fine-tuning's
    standardized targets, the split verdict's elastic net on the training people and the heads
    (per-gene elastic net, cross-gene ridge), on fixed random genotypes / track features."""
    from hapexp.training.data import standardize
    from hapexp.training.heads import crossgene_head, per_gene_head
    from hapexp.variants.genotypes import Dosages
    from hapexp.verdict.split_verdict import elasticnet_on_training_people

    rng = np.random.default_rng(7)
    samples = list(expr.columns)
    genes = list(expr.index[:6])
    per = 8
    dos = rng.binomial(2, 0.3, size=(len(genes) * per, len(samples))).astype(float)
    n_v = len(dos)
    d = Dosages(np.array([f"v{i}" for i in range(n_v)]), np.array(["chr1"] * n_v),
                np.arange(n_v) * 100 + 1, np.array(["A"] * n_v), np.array(["G"] * n_v), dos, samples)  # fmt: skip
    table = pd.DataFrame({"gene_id": genes, "chrom": "chr1"})
    table["start0"] = np.arange(len(genes)) * per * 100
    table["end0"] = table["start0"] + per * 100
    feats = {g: rng.normal(size=(len(samples), 5)) for g in genes}
    return {
        "finetune": standardize(expr.loc[[g for g in genes_train if g in expr.index]], people["train"]),
        "finetune_validation": expr.loc[:, people["validation"]],
        "elasticnet": elasticnet_on_training_people(d, table, expr, people["train"], alpha=0.5, inner_folds=3, seed=1),
        "head_gene": per_gene_head(feats, expr, people["train"], alpha=0.5, inner_folds=3, seed=1),
        "head_crossgene": crossgene_head(feats, expr, people["train"], genes[:4])[0],
    }  # fmt: skip


@pytest.mark.parametrize("transform", ["inverse_normal", "zscore"])
def test_changing_only_test_peoples_expression_leaves_every_training_target_identical(tmp_path, transform):
    expr = _raw()
    samples = list(expr.columns)
    cov = _covariates(samples)
    table = split_individuals(samples, {"seed": 3})
    people = {s: table.loc[table["split"] == s, "sample"].tolist() for s in ("train", "validation", "test")}
    cohort = _write_cohort(tmp_path / "a", expr, cov, table)
    a, cov_a = _prepare(tmp_path / "a", cohort, transform)

    changed = expr.copy()
    rng = np.random.default_rng(11)
    # new values for the test people only, far beyond the training range for some
    changed.loc[:, people["test"]] = rng.lognormal(3, 2, size=(len(expr), len(people["test"])))
    cohort_b = _write_cohort(tmp_path / "b", changed, cov, table)
    b, cov_b = _prepare(tmp_path / "b", cohort_b, transform)

    fitted = people["train"] + people["validation"]
    assert list(a.index) == list(b.index) and list(a.columns) == samples
    # byte for byte: the training and validation people's prepared values and covariates
    assert np.array_equal(a[fitted].to_numpy(), b[fitted].to_numpy())
    assert np.array_equal(cov_a[fitted].to_numpy(), cov_b[fitted].to_numpy())
    assert (tmp_path / "a/prepared_split.tsv").read_text() != (tmp_path / "b/prepared_split.tsv").read_text()
    assert not np.allclose(a[people["test"]].to_numpy(), b[people["test"]].to_numpy())
    assert np.isfinite(b.to_numpy()).all()  # extremes stay finite

    genes_train = list(expr.index[::2])
    ca, cb = _consumers(a, people, genes_train), _consumers(b, people, genes_train)
    for name in ca:
        assert np.array_equal(ca[name].to_numpy(), cb[name].to_numpy(), equal_nan=True), name

    # The all-people preparation (what these consumers read before): the same change of the
    # test people moves the training people's targets.
    old_a, _, _ = prepare_expression(expr, cov, transform, n_pcs=2)
    old_b, _, _ = prepare_expression(changed, cov, transform, n_pcs=2)
    assert not np.array_equal(old_a[people["train"]].to_numpy(), old_b[people["train"]].to_numpy())
    ca, cb = _consumers(old_a, people, genes_train), _consumers(old_b, people, genes_train)
    assert not np.array_equal(ca["finetune"].to_numpy(), cb["finetune"].to_numpy())


def test_held_out_preparation_matches_a_direct_computation():
    """Inverse normal of held-out people by the training ECDF (scipy), PCs by scikit-learn's PCA
    fitted on the training people, residuals by statsmodels OLS on the training rows."""
    import statsmodels.api as sm
    from sklearn.decomposition import PCA

    expr = _raw(n_genes=30, n=50, seed=4)
    samples = list(expr.columns)
    cov = _covariates(samples, k=2, seed=5)
    rng = np.random.default_rng(2)
    fit = np.zeros(len(samples), bool)
    fit[rng.permutation(len(samples))[:30]] = True
    train = [s for s, f in zip(samples, fit, strict=True) if f]
    # a held-out value below / above every training value of G20 (continuous gene)
    held = [s for s in samples if s not in train]
    expr.loc["G20", held[0]] = expr.loc["G20", train].min() - 1
    expr.loc["G20", held[1]] = expr.loc["G20", train].max() + 1
    prepared, used, transformed = prepare_expression(expr, cov, "inverse_normal", n_pcs=3, fit_samples=train)

    n = len(train)
    x = expr.to_numpy(float)
    want = np.empty_like(x)
    for i in range(len(x)):
        tr = x[i, fit]
        want[i, fit] = stats.norm.ppf(stats.rankdata(tr) / (n + 1))
        # mid-rank in the training ECDF: n * (F(v-) + F(v)) / 2 + 1/2
        pct = np.array([stats.percentileofscore(tr, v, kind="mean") for v in x[i, ~fit]])
        want[i, ~fit] = stats.norm.ppf((n * pct / 100 + 0.5) / (n + 1))
    np.testing.assert_allclose(transformed.to_numpy(), want, rtol=0, atol=1e-12)
    # ties with training values take their transform; the extremes lie half a rank beyond
    ties = [(i, j) for i in range(len(x)) for j in np.flatnonzero(~fit) if (x[i, fit] == x[i, j]).any()]
    assert len(ties) > 20
    g20 = list(expr.index).index("G20")
    assert transformed.loc["G20", held[0]] == stats.norm.ppf(0.5 / (n + 1))
    assert transformed.loc["G20", held[1]] == stats.norm.ppf((n + 0.5) / (n + 1))
    assert want[g20, samples.index(held[0])] < want[g20, fit].min()

    t = transformed.to_numpy().T  # people × genes
    pca = PCA(n_components=3, svd_solver="full").fit(t[fit])
    ref = pca.transform(t)
    sign = np.sign((ref[fit] * used.loc[["PC1", "PC2", "PC3"]].to_numpy().T[fit]).sum(0))
    np.testing.assert_allclose(used.loc[["PC1", "PC2", "PC3"]].to_numpy().T, ref * sign, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(used.loc[["c0", "c1"]].to_numpy(), cov.to_numpy())

    design = sm.add_constant(used.to_numpy().T)
    for g in expr.index:
        ols = sm.OLS(transformed.loc[g].to_numpy()[fit], design[fit]).fit()
        np.testing.assert_allclose(
            prepared.loc[g].to_numpy(),
            transformed.loc[g].to_numpy() - ols.predict(design),
            rtol=0,
            atol=1e-10,
        )


def test_fitted_on_everyone_is_the_classic_preparation_and_training_collinearity_is_named():
    expr = _raw(n_genes=12, n=25, seed=8)
    x = expr.to_numpy()
    np.testing.assert_array_equal(
        inverse_normal_transform(x, np.ones(x.shape[1], bool)), inverse_normal_transform(x)
    )
    cov = _covariates(list(expr.columns), k=3).to_numpy().T
    np.testing.assert_allclose(
        residualize_fitted(x, cov, np.ones(len(cov), bool)), residualize(x, covariate_design(cov)), atol=1e-10
    )
    # a covariate constant over the training people cannot be fitted on them
    cov_df = _covariates(list(expr.columns), k=2)
    train = list(expr.columns[:12])
    cov_df.loc["c1", train] = 1.0
    with pytest.raises(InputError, match="collinear.*over the training people"):
        prepare_expression(expr, cov_df, "inverse_normal", fit_samples=train)
    # a gene constant over the training people is dropped
    expr.loc["G03", train] = 5.0
    prepared, _, _ = prepare_expression(expr, None, "inverse_normal", fit_samples=train)
    assert "G03" not in prepared.index and len(prepared) == len(expr) - 1


def test_trained_rules_read_the_split_aware_preparation():
    """Fine-tuning, the heads and the split verdict (their per-chunk fits too) read
    prepared_split.tsv (and its covariates); the rule that writes it needs the splits, and
    splits does not need it (no cycle)."""
    text = {p.stem: p.read_text() for p in (ROOT / "rules").glob("*.smk")}

    def inputs(rule_file: str, rule: str) -> str:
        body = text[rule_file].split(f"rule {rule}:", 1)[1]
        return body.split("output:", 1)[0]

    for rule_file, rule in [
        ("finetune", "finetune"),
        ("heads", "track_heads"),
        ("heads", "track_heads_gene"),
        ("split_verdict", "split_verdict"),
        ("split_verdict", "split_verdict_elasticnet"),
    ]:
        block = inputs(rule_file, rule)
        assert 'prepared="results/{unit}/expression/prepared_split.tsv"' in block, rule
        assert "expression/prepared.tsv" not in block and "expression/covariates.tsv" not in block, rule
    assert 'covariates="results/{unit}/expression/covariates_split.tsv"' in inputs(
        "split_verdict", "split_verdict"
    )
    assert "splits/individuals.tsv" in inputs("splits", "prepare_split_expression")
    # fine-tuning on every tissue of a cohort: each tissue's split-aware preparation
    block = inputs("finetune", "finetune_tissues")
    assert 'f"results/{u}/expression/prepared_split.tsv"' in block and "expression/prepared.tsv" not in block
    assert not re.search(r"prepared_split|covariates_split", inputs("splits", "splits"))


def test_split_verdict_on_the_split_aware_expression_is_calibrated_on_null_genes():
    """The split verdict on test people whose expression was prepared by the training people's
    fit: on 400 null genes (skewed expression driven by covariates, independent of genotype)
    p < 0.05 in ≈ 2.5 % per tail and uniform (KS) for a genotype score and for the cross-gene
    head fitted on the training people; 40 planted genes are found (power)."""
    from hapexp.training.heads import crossgene_head
    from hapexp.verdict.split_verdict import split_performance

    rng = np.random.default_rng(0)
    n_genes, n, per, n_signal = 440, 200, 10, 40
    samples = [f"S{i:03d}" for i in range(n)]
    cov = pd.DataFrame(rng.normal(size=(2, n)), index=["c0", "c1"], columns=samples)
    dos = rng.binomial(2, rng.uniform(0.05, 0.5, (n_genes, per, 1)), size=(n_genes, per, n)).astype(float)
    score = dos.sum(1)  # genes × people: a fixed genotype score per gene
    noise = (
        rng.normal(size=(n_genes, n))
        + 0.5 * cov.to_numpy()[0]
        + 0.3 * rng.normal(size=(n_genes, 1)) * cov.to_numpy()[1]
    )
    z = (score - score.mean(1, keepdims=True)) / score.std(1, keepdims=True)
    noise[:n_signal] += 0.6 * z[:n_signal]
    genes = [f"G{i:03d}" for i in range(n_genes)]
    expr = pd.DataFrame(np.exp(noise), index=genes, columns=samples)  # skewed: the transform matters
    table = split_individuals(samples, {"seed": 2})
    people = {s: table.loc[table["split"] == s, "sample"].tolist() for s in ("train", "validation", "test")}
    prep, used, _ = prepare_expression(expr, cov, "inverse_normal", n_pcs=2, fit_samples=people["train"])
    feats = {g: dos[i].T for i, g in enumerate(genes)}
    head, _ = crossgene_head(feats, prep, people["train"], genes[n_signal::2])
    preds = {"score": pd.DataFrame(score, index=genes, columns=samples), "head": head}
    split = pd.DataFrame({"gene_id": genes, "chrom": "chr1", "split": "test"})
    perf = split_performance(prep, preds, people, split, used)
    lo, hi = stats.binom.ppf([0.005, 0.995], n_genes - n_signal, 0.025)
    for name, t in perf.groupby("predictor"):
        null = t[~t["gene_id"].isin(genes[:n_signal])]
        p, r = null["pearson_p"].to_numpy(float), null["pearson_r"].to_numpy(float)
        assert np.isfinite(p).all() and len(p) == n_genes - n_signal, name
        for tail in (r > 0, r < 0):
            assert lo <= ((p < 0.05) & tail).sum() <= hi, (name, ((p < 0.05) & tail).sum(), lo, hi)
        assert stats.kstest(p, "uniform").pvalue > 0.01, name
    signal = perf[(perf["predictor"] == "score") & perf["gene_id"].isin(genes[:n_signal])]
    assert ((signal["pearson_p"] < 0.05) & (signal["pearson_r"] > 0)).mean() > 0.8
