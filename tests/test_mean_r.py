"""Mean r across genes, tested by permuting people (hapexp.verdict.mean_r), against null
simulations with genes correlated through a shared latent factor, and a planted effect."""

import numpy as np
import pandas as pd
from scipy.stats import kstest, ttest_1samp

from hapexp import stats
from hapexp.verdict import mean_r as mr
from hapexp.verdict import performance as perf

N_COHORTS = 300
# binomial 99 % bounds of the rejection rate at 0.05 over N_COHORTS cohorts
LOW, HIGH = 0.05 - 2.576 * np.sqrt(0.05 * 0.95 / N_COHORTS), 0.05 + 2.576 * np.sqrt(0.05 * 0.95 / N_COHORTS)


def correlated_null(rng, n_genes=40, n=60, k=2, effect=0.0):
    """Expression and predictions each driven by its own latent factor shared by all genes
    (a person-level factor: technical batch, cell mix), with no causal link between the two
    (effect = 0); `effect` plants a per-gene link prediction → expression."""
    cov = rng.normal(size=(n, k))
    f, h = rng.normal(size=n), rng.normal(size=n)
    a, b = rng.uniform(0.5, 1.5, n_genes), rng.uniform(0.5, 1.5, n_genes)
    pred = b[:, None] * h + rng.normal(size=(n_genes, n))
    expr = (
        a[:, None] * f
        + rng.normal(size=(n_genes, n))
        + effect * pred
        + (cov @ rng.normal(size=(k, n_genes))).T
    )
    expr = stats.residualize(expr, stats.covariate_design(cov))  # the prepared expression is residualized
    return expr, pred, cov


def test_observed_mean_r_is_gene_table_mean():
    """The statistic is the mean of performance.gene_table's partial r (same residualization)."""
    rng = np.random.default_rng(0)
    expr, pred, cov = correlated_null(rng, effect=0.3)
    pred[3, 5] = np.nan  # a gene with a missing person: tested on its own people
    genes, people = [f"G{i}" for i in range(len(expr))], [f"S{j}" for j in range(expr.shape[1])]
    e = pd.DataFrame(expr, index=genes, columns=people)
    p = pd.DataFrame(pred, index=genes, columns=people)
    c = pd.DataFrame(cov.T, index=["c0", "c1"], columns=people)
    t = perf.gene_table(e, p, c)
    keys = mr.permutation_keys(len(people), 50, 1)
    rows = mr.mean_r_rows("x", e, p, c, {"own": genes, "some": genes[:10]}, keys)
    assert abs(rows[0]["mean_r"] - t["pearson_r"].mean()) < 1e-12
    assert abs(rows[1]["mean_r"] - t["pearson_r"].iloc[:10].mean()) < 1e-12
    assert rows[0]["mean_r_p"] == 1 / 51  # a planted effect no permutation reaches


def test_permuted_mean_r_is_the_mean_of_correlations_with_permuted_residuals():
    """The linear shortcut equals, permutation by permutation, the mean over genes of
    ⟨P(e∘π), p̃⟩ / (|e| sqrt(1 − k/(n − 1)) |p̃|) computed directly (P: residualization on the
    covariates), and the held-out version the same on each gene's own people."""
    rng = np.random.default_rng(1)
    expr, pred, cov = correlated_null(rng, n_genes=7, k=3)
    q = stats.covariate_design(cov)
    index = np.stack([rng.permutation(expr.shape[1]) for _ in range(5)])
    w = np.column_stack([np.full(7, 1 / 7), np.r_[np.full(3, 1 / 3), np.zeros(4)]])
    obs, null = stats.permuted_mean_r(expr, pred, q, w, index)
    pr = stats.residualize(pred, q)
    for b, idx in enumerate(index):
        ep = stats.residualize(expr[:, idx], q)
        # the expected re-residualized norm: |e|² (1 − k/(n − 1)), k = 3, n = 60
        r = (ep * pr).sum(1) / np.sqrt((expr * expr).sum(1) * (1 - 3 / 59) * (pr * pr).sum(1))
        assert np.allclose(null[b], r @ w, atol=1e-12)
    r_obs, _ = stats.rowwise_pearson(expr, pr)
    assert np.allclose(obs, r_obs @ w, atol=1e-12)
    held = rng.random(expr.shape) < 0.4
    keys = np.stack([rng.permutation(expr.shape[1]) for _ in range(4)])
    obs, null = stats.permuted_mean_r_held_out(expr, pred, held, w, keys)
    for b, key in enumerate(keys):
        r = []
        for g in range(7):
            m = np.flatnonzero(held[g])
            src = m[np.argsort(key[m], kind="stable")]  # the held-out people in key order
            r.append(stats.pearson(expr[g, src], pred[g, m]))
        assert np.allclose(null[b], np.array(r) @ w, atol=1e-12)


def _simulate(n_cohorts, effect=0.0, seed=7, permutations=99, k=2):
    rng = np.random.default_rng(seed)
    old, new, signs = [], [], []
    for _ in range(n_cohorts):
        expr, pred, cov = correlated_null(rng, effect=effect, k=k)
        q = stats.covariate_design(cov)
        r, _ = stats.rowwise_pearson(stats.residualize(pred, q), expr)
        old.append(ttest_1samp(r, 0.0).pvalue)  # the old summary's test of mean r
        keys = mr.permutation_keys(expr.shape[1], permutations, int(rng.integers(1 << 30)))
        obs, null = mr.null_mean_r(expr, pred, cov, np.ones((len(expr), 1), bool), keys)
        new.append(mr.permutation_p(obs, null)[0])
        signs.append(np.sign(obs[0]))
    return np.array(old), np.array(new), np.array(signs)


def test_permutation_is_calibrated_where_the_t_test_over_genes_is_not():
    """Correlated genes, no causal link: the t-test over genes rejects far more than 5 % of
    cohorts; the permutation of people (one for all genes) ≈ 5 %, in each tail, uniform."""
    old, new, signs = _simulate(N_COHORTS)
    assert (old < 0.05).mean() > 0.3, (old < 0.05).mean()
    # B = 99: p <= 0.05 is exactly a 5 % test (5 of 100 equally likely ranks)
    rate = (new <= 0.05).mean()
    assert LOW <= rate <= HIGH, rate
    for s in (1, -1):  # each tail about half (binomial 99 % bounds of 2.5 %)
        tail = ((new <= 0.05) & (signs == s)).mean()
        assert tail <= 0.025 + 2.576 * np.sqrt(0.025 * 0.975 / N_COHORTS), (s, tail)
    # p on the grid k/100: uniform up to the grid (KS against U(0, 1) at 0.01)
    assert kstest(new - 0.5 / 100, "uniform").pvalue > 0.01


def test_permutation_is_calibrated_with_many_covariates():
    """k = 15 covariates for 60 people (many expression PCs): the permuted correlations keep
    the spread of the observed ones (the re-residualized norm, `stats.permuted_mean_r`)."""
    _, new, _ = _simulate(N_COHORTS, seed=8, k=15)
    assert LOW <= (new <= 0.05).mean() <= HIGH, (new <= 0.05).mean()


def test_permutation_rejects_a_planted_effect():
    _, new, signs = _simulate(20, effect=0.25, seed=3)
    assert (new <= 0.05).mean() >= 0.9 and (signs > 0).all()


def oof_null(rng, n_genes=30, n=60, folds=5, snps=4, per_gene_folds=False):
    """An honest out-of-fold linear predictor on null genes (expression independent of the
    genotypes): per gene, per outer fold, least squares on the other folds' people, predicting
    the fold's people. Genes are correlated as in a real cohort, with no causal link: the
    expression through a person-level factor (batch, cell mix), the genotypes through two
    populations with different allele frequencies (so the predictions of all genes share
    ancestry). Outer folds common to all genes, or drawn per gene."""
    expr = rng.uniform(1.0, 2.0, (n_genes, 1)) * rng.normal(size=n) + rng.normal(size=(n_genes, n))
    population = rng.random(n) < 0.5
    pred = np.empty_like(expr)
    common = rng.permutation(np.arange(n) % folds)
    labels = np.empty((n_genes, n), int)
    for g in range(n_genes):
        freq = np.where(population[:, None], 0.1, 0.5) * rng.uniform(0.8, 1.2, snps)
        x = np.column_stack([np.ones(n), rng.binomial(2, freq)])
        labels[g] = rng.permutation(np.arange(n) % folds) if per_gene_folds else common
        for f in range(folds):
            tr = labels[g] != f
            beta = np.linalg.lstsq(x[tr], expr[g, tr], rcond=None)[0]
            pred[g, ~tr] = x[~tr] @ beta
    return expr, pred, labels


def _pooled_within_folds_p(expr, pred, labels, keys):
    """The pooled out-of-fold mean r, people permuted within each gene's folds (models fixed)."""
    obs = stats.rowwise_pearson(expr, pred)[0].mean()
    n = expr.shape[1]
    by_sample = np.argsort(labels, axis=1, kind="stable")
    null = []
    for key in keys:
        # within each fold: the fold's people in sample order get those in key order
        by_key = np.argsort(labels * n + key[None, :], axis=1, kind="stable")
        idx = np.empty_like(by_key)
        np.put_along_axis(idx, by_sample, by_key, axis=1)
        null.append(stats.rowwise_pearson(np.take_along_axis(expr, idx, axis=1), pred)[0].mean())
    return mr.permutation_p(np.array([obs]), np.array(null)[:, None])[0]


def test_fitted_predictor_is_tested_on_one_outer_fold_it_never_saw():
    """Out-of-fold predictions of null genes (outer folds common to all genes). Pooled over
    folds, permuting people across all folds or within each fold (models fixed) both reject
    too often: the pooling artefact and the dependence between folds (fold f's model was
    trained on fold g's people and vice versa) are in the statistic, not in its null. r on
    one outer fold's people, permuted among them (the same permutation for all genes), is
    calibrated."""
    rng = np.random.default_rng(11)
    across, within, fold0 = [], [], []
    for i in range(200):
        expr, pred, labels = oof_null(rng)
        keys = mr.permutation_keys(expr.shape[1], 99, int(rng.integers(1 << 30)))
        sets = np.ones((len(expr), 1), bool)
        if i < 60:  # the wrong ways: far off, 60 cohorts show it
            obs, null = mr.null_mean_r(expr, pred, None, sets, keys)
            across.append(mr.permutation_p(obs, null)[0])
            within.append(_pooled_within_folds_p(expr, pred, labels, keys))
        obs, null = mr.null_mean_r(expr, pred, None, sets, keys, held_out=labels == mr.TEST_FOLD)
        fold0.append(mr.permutation_p(obs, null)[0])
    across, within, fold0 = np.array(across), np.array(within), np.array(fold0)
    high60 = 0.05 + 2.576 * np.sqrt(0.05 * 0.95 / 60)
    assert (across <= 0.05).mean() > high60, (across <= 0.05).mean()
    assert (within <= 0.05).mean() > high60, (within <= 0.05).mean()
    half = 2.576 * np.sqrt(0.05 * 0.95 / 200)
    assert 0.05 - half <= (fold0 <= 0.05).mean() <= 0.05 + half, (fold0 <= 0.05).mean()


def test_per_gene_folds_cannot_keep_the_correlation_between_genes():
    """Outer folds drawn per gene: shuffling each gene within its own held-out fold (even from
    one key per person) loses the correlation between genes — too many rejections — so
    mean_r_rows does not test it; with the same folds for every gene it does."""
    rng = np.random.default_rng(13)
    p = []
    for _ in range(150):
        expr, pred, labels = oof_null(rng, n_genes=80, per_gene_folds=True)
        keys = mr.permutation_keys(expr.shape[1], 99, int(rng.integers(1 << 30)))
        obs, null = mr.null_mean_r(
            expr, pred, None, np.ones((len(expr), 1), bool), keys, held_out=labels == 0
        )
        p.append(mr.permutation_p(obs, null)[0])
    assert (np.array(p) <= 0.05).mean() > 0.05 + 2.576 * np.sqrt(0.05 * 0.95 / 150)
    genes, people = [f"G{i}" for i in range(len(expr))], [f"S{j}" for j in range(expr.shape[1])]
    frames = [pd.DataFrame(m, index=genes, columns=people) for m in (expr, pred, labels)]
    keys = mr.permutation_keys(len(people), 19, 0)
    row = mr.mean_r_rows("en", frames[0], frames[1], None, {"own": genes}, keys, folds=frames[2])[0]
    assert row["method"] == mr.PER_GENE_FOLDS and np.isnan(row["mean_r_p"])
    same = frames[2].copy()
    same.iloc[:] = labels[0]
    row = mr.mean_r_rows("en", frames[0], frames[1], None, {"own": genes}, keys, folds=same)[0]
    assert row["method"] == mr.HELD_OUT_FOLD and row["mean_r_p"] > 0


def test_fitted_predictor_test_has_power():
    rng = np.random.default_rng(12)
    hits = 0
    for _ in range(10):
        expr, pred, labels = oof_null(rng)
        expr = expr + 1.5 * (pred - pred.mean(axis=1, keepdims=True))  # predictions carry signal
        keys = mr.permutation_keys(expr.shape[1], 99, int(rng.integers(1 << 30)))
        obs, null = mr.null_mean_r(
            expr, pred, None, np.ones((len(expr), 1), bool), keys, held_out=labels == 0
        )
        hits += mr.permutation_p(obs, null)[0] <= 0.05
    assert hits >= 9


def test_rule_performance_writes_mean_r_and_paired(tmp_path):
    """run_performance: mean_r.tsv (deep model by Freedman–Lane, the elastic net on one outer
    fold of folds.tsv, the model fine-tuned on the cohort on its test people only) and
    paired.tsv (deep vs linear, fine-tuned model left out); the fine-tuned model is out of
    the shared gene set."""
    from hapexp.io import write_matrix

    rng = np.random.default_rng(3)
    expr, pred, cov = correlated_null(rng, n_genes=12, n=50, effect=0.4)
    genes, people = [f"G{i}" for i in range(12)], [f"S{j}" for j in range(50)]
    frame = lambda m: pd.DataFrame(m, index=pd.Index(genes, name="gene_id"), columns=people)  # noqa: E731
    files = {}
    for name, m in {
        "prepared": expr,
        "deep": pred,
        "ft": expr + 0.1 * rng.normal(size=expr.shape),
        "oof": pred + rng.normal(size=expr.shape),
        "folds": np.tile(np.arange(50) % 5, (12, 1)),
    }.items():
        files[name] = tmp_path / f"{name}.tsv"
        write_matrix(frame(m), files[name])
    c = pd.DataFrame(cov.T, index=pd.Index(["c0", "c1"], name="id"), columns=people)
    c.to_csv(tmp_path / "cov.tsv", sep="\t")
    refs = []
    for m in ("deep", "ft"):
        refs.append(tmp_path / f"{m}.ref.tsv")
        pd.DataFrame({"gene_id": genes, "value": rng.normal(size=12)}).to_csv(refs[-1], sep="\t", index=False)
    split = ["train"] * 30 + ["validation"] * 5 + ["test"] * 15
    pd.DataFrame({"sample": people, "group": "", "split": split}).to_csv(
        tmp_path / "ind.tsv", sep="\t", index=False
    )
    out = {k: tmp_path / f"out_{k}.tsv" for k in ("performance", "cross_gene", "mean_r", "paired")}
    perf.run_performance(
        files["prepared"], files["prepared"], [files["deep"], files["ft"]], refs, out["performance"],
        out["cross_gene"], models=["deep", "ft"], raw_format="tsv", residualize=True,
        covariates=tmp_path / "cov.tsv", oof=files["oof"], mean_r=out["mean_r"], paired=out["paired"],
        folds=files["folds"], individuals=tmp_path / "ind.tsv", finetuned_here=["ft"], mean_r_permutations=99,
    )  # fmt: skip
    t = pd.read_csv(out["mean_r"], sep="\t").set_index(["predictor", "gene_set"])
    assert list(t.reset_index().columns) == mr.MEAN_R_COLUMNS
    assert t.loc[("deep", "shared"), "method"] == mr.FREEDMAN_LANE and t.loc[("deep", "own"), "n_genes"] == 12
    assert t.loc[("elasticnet", "own"), "method"] == mr.HELD_OUT_FOLD
    assert t.loc[("ft", "own"), "people"] == "test" and t.loc[("ft", "own"), "n_people"] == 15
    assert ("ft", "shared") not in t.index
    assert t.loc[("deep", "own"), "mean_r_p"] == 1 / 100  # planted: no permutation reaches it
    p = pd.read_csv(out["paired"], sep="\t")
    assert set(zip(p["deep"], p["linear"], strict=True)) == {("deep", "elasticnet")} and len(p) == 12
    performance = pd.read_csv(out["performance"], sep="\t")
    assert not performance.loc[performance.predictor == "ft", "in_shared_set"].any()
