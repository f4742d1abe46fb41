"""Deep vs linear, paired (hapexp.verdict.paired, hapexp.stats.williams_t): against R's
psych::r.test and a null simulation with covariates (calibration, each tail) + power."""

import numpy as np
import pandas as pd

from hapexp import stats
from hapexp.verdict import paired as pr
from hapexp.verdict import performance as perf

# R 4.2.2, psych 2.2.9 (Debian r-cran-psych), Williams' t of dependent correlations:
#   r <- psych::r.test(n=n, r12=r12, r13=r13, r23=r23); sprintf("%.15g %.15g", r$t, r$p)
R_PSYCH = [
    (100, 0.45, 0.20, 0.30, 2.30880502695566, 0.023076927690778),
    (60, -0.10, 0.35, 0.55, -4.1192497577033, 0.000124292764774666),
    (445, 0.12, 0.05, 0.80, 2.35076917637056, 0.0191731543837282),
    (30, 0.60, 0.58, 0.90, 0.292206600772388, 0.772362293389678),
    (200, 0.00, -0.25, -0.40, 2.15048249994523, 0.032735402319742),
]


def test_williams_t_matches_r_psych():
    n, r12, r13, r23, t_r, p_r = (np.array(c) for c in zip(*R_PSYCH, strict=True))
    t, dof, p = stats.williams_t(r12, r13, r23, n)
    assert np.allclose(t, t_r, rtol=1e-9, atol=0) and np.allclose(p, p_r, rtol=1e-9, atol=0)
    assert (dof == n - 3).all()
    # k covariates partialled out: the same test on n − k samples
    t_k, dof_k, p_k = stats.williams_t(r12, r13, r23, n + 7, k=7)
    assert np.allclose(t_k, t_r, rtol=1e-9) and np.allclose(p_k, p_r, rtol=1e-9) and (dof_k == n - 3).all()


def simulate(rng, genes, n, k, r_deep, r_linear, r_dl=0.5):
    """Per gene: expression, deep and linear predictions (latent, jointly normal with the given
    correlations) plus covariate effects on all three."""
    cov = rng.normal(size=(n, k))
    c = np.array([[1, r_deep, r_linear], [r_deep, 1, r_dl], [r_linear, r_dl, 1]])
    z = rng.normal(size=(genes, n, 3)) @ np.linalg.cholesky(c).T
    mats = [z[:, :, j] + 2.0 * (cov @ rng.normal(size=(k, genes))).T for j in range(3)]
    return mats, cov


def test_null_is_calibrated_with_covariates_and_has_power():
    """Equal true correlations (0.3 each, deep and linear correlated 0.5), n = 40 people, k = 8
    covariates: p < 0.05 in ≈ 5 % of 4,000 genes, ≈ 2.5 % in each tail; only with the
    degrees of freedom reduced by the covariates (n instead of n − k rejects too often).
    Deep 0.6 vs linear 0.2: rejected, deep > linear."""
    rng = np.random.default_rng(5)
    (e, d, lin), cov = simulate(rng, 4000, 40, 8, 0.3, 0.3)
    res = pr.paired_genes(e, d, lin, cov)
    p, t = res["p"], res["williams_t"]
    half = 2.576 * np.sqrt(0.05 * 0.95 / 4000)
    assert abs((p < 0.05).mean() - 0.05) < half, (p < 0.05).mean()
    tail = 2.576 * np.sqrt(0.025 * 0.975 / 4000)
    for s in (1, -1):
        assert abs(((p < 0.05) & (np.sign(t) == s)).mean() - 0.025) < tail
    _, _, p_naive = stats.williams_t(res["r_deep"], res["r_linear"], res["r_deep_linear"], res["n"])
    assert (p_naive < 0.05).mean() > 0.05 + half
    (e, d, lin), cov = simulate(rng, 200, 100, 3, 0.6, 0.2)
    res = pr.paired_genes(e, d, lin, cov)
    assert (res["p"] < 0.05).mean() > 0.8 and (res["williams_t"][res["p"] < 0.05] > 0).all()


def test_paired_table_on_the_shared_genes_and_people_counts():
    """paired.tsv's r_deep / r_linear are performance.tsv's per-gene r (same people, same
    residualization), on the shared genes; counts by direction at the FDR."""
    rng = np.random.default_rng(6)
    (e, d, lin), cov = simulate(rng, 30, 80, 2, 0.6, 0.1)
    genes, people = [f"G{i}" for i in range(30)], [f"S{j}" for j in range(80)]
    q = stats.covariate_design(cov)
    e = pd.DataFrame(stats.residualize(e, q), index=genes, columns=people)
    d = pd.DataFrame(d, index=genes, columns=people)
    lin = pd.DataFrame(lin, index=genes, columns=people).iloc[2:]  # linear lacks 2 genes
    c = pd.DataFrame(cov.T, index=["a", "b"], columns=people)
    preds = {"deep": d, "lin": lin}
    p = perf.cross_individual(e, preds, c)
    t = pr.paired_table(e, preds, c, p, ["deep"], ["lin"])
    assert list(t.columns) == pr.PAIRED_COLUMNS and list(t["gene_id"]) == genes[2:]
    ref = p.set_index(["predictor", "gene_id"])["pearson_r"]
    assert np.allclose(t["r_deep"], ref.loc["deep"].loc[genes[2:]], atol=1e-12)
    assert np.allclose(t["r_linear"], ref.loc["lin"].loc[genes[2:]], atol=1e-12)
    counts = pr.paired_counts(t, 0.05).iloc[0]
    q = stats.bh_fdr(t["p"])
    assert counts["deep_better"] == int(((q < 0.05) & (t["williams_t"] > 0)).sum()) > 10
    assert counts["linear_better"] == 0 and counts["genes"] == 28 and counts["n_people"] == 80
