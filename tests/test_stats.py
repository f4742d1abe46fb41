"""hapexp.stats against independent answers: statsmodels (OLS residuals and tests, BH),
scipy (pearsonr, spearmanr, the t distribution, the Beta MLE)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from hapexp import stats


def test_residualize_equals_ols_residuals():
    """Rows residualized on intercept + covariates are statsmodels' OLS residuals; without
    covariates they are the centred rows; Residualizer counts dof = n − 2 − k."""
    rng = np.random.default_rng(0)
    n, k = 60, 3
    cov = rng.normal(size=(n, k))
    x = rng.normal(size=(5, n)) + rng.normal(size=(5, k)) @ cov.T
    q = stats.covariate_design(cov)
    got = stats.residualize(x, q)
    for i in range(5):
        fit = sm.OLS(x[i], sm.add_constant(cov)).fit()
        np.testing.assert_allclose(got[i], fit.resid, atol=1e-12)
    np.testing.assert_allclose(stats.residualize(x), x - x.mean(axis=1, keepdims=True), atol=0)
    res = stats.Residualizer(cov)
    np.testing.assert_allclose(res.transform(x[0]), got[:1], atol=1e-12)
    assert res.dof == n - 2 - k == sm.OLS(x[0], sm.add_constant(np.column_stack([cov, x[1]]))).fit().df_resid
    assert stats.Residualizer(None, n_samples=n).dof == n - 2


def test_collinear_covariates_are_refused():
    rng = np.random.default_rng(1)
    cov = rng.normal(size=(30, 2))
    with pytest.raises(ValueError, match="collinear"):
        stats.covariate_design(np.column_stack([cov, cov[:, 0] * 2 + 1]))
    with pytest.raises(ValueError, match="collinear"):
        stats.covariate_design(np.column_stack([cov, np.full(30, 4.0)]))


def test_bh_fdr_matches_statsmodels_and_keeps_nan():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=200), rng.uniform(0, 1e-4, size=20)])
    p[[3, 50]] = np.nan
    q = stats.bh_fdr(p)
    ok = np.isfinite(p)
    expected = multipletests(p[ok], method="fdr_bh")[1]
    np.testing.assert_allclose(q[ok], expected, rtol=1e-12)
    assert np.isnan(q[[3, 50]]).all()
    assert stats.bh_fdr([np.nan]).shape == (1,)


def test_rowwise_correlations_match_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 40))
    y = x * np.linspace(-1, 1, 6)[:, None] + rng.normal(size=(6, 40))
    x[2, 5] = np.nan  # missing sample in one row only
    y[4, :] = 3.0  # constant: r undefined
    r, n = stats.rowwise_pearson(x, y)
    rho, _ = stats.rowwise_spearman(x, y)
    p = stats.r_pvalue(r, n)
    sp = stats.r_pvalue(rho, n)
    for i in range(6):
        ok = np.isfinite(x[i]) & np.isfinite(y[i])
        assert n[i] == ok.sum()
        if i == 4:
            assert np.isnan(r[i]) and np.isnan(rho[i]) and np.isnan(p[i])
            continue
        er, ep = sps.pearsonr(x[i, ok], y[i, ok])
        es, esp = sps.spearmanr(x[i, ok], y[i, ok])
        assert r[i] == pytest.approx(er, abs=1e-12)
        assert p[i] == pytest.approx(ep, rel=1e-8)
        assert rho[i] == pytest.approx(es, abs=1e-12)
        assert sp[i] == pytest.approx(esp, rel=1e-6)


def test_scalar_correlations_match_scipy_and_floor_means_constant():
    rng = np.random.default_rng(3)
    x = rng.normal(size=50)
    y = 0.3 * x + rng.normal(size=50)
    assert stats.pearson(x, y) == pytest.approx(sps.pearsonr(x, y)[0], abs=1e-12)
    assert stats.spearman(x, y) == pytest.approx(sps.spearmanr(x, y)[0], abs=1e-12)
    assert np.isnan(stats.pearson(x[:2], y[:2]))
    # rounding-level spread (1e-9 relative) is constant under a 1e-6 floor, not under 0
    flat = 1.0 + 1e-9 * y
    assert np.isfinite(stats.pearson(flat, x)) and np.isnan(stats.pearson(flat, x, floor=1e-6))
    assert np.isnan(stats.spearman(flat, x, floor=1e-6))


def test_p_values_from_t_and_r_match_scipy_and_ols():
    """p from t: scipy's t distribution; p from r with k covariates: the OLS t-test of the
    last regressor (dof = n − 2 − k); from r²: the same as from |r|."""
    rng = np.random.default_rng(4)
    t = rng.normal(scale=3, size=20)
    np.testing.assert_allclose(stats.pval_from_t(t, 17), 2 * sps.t.sf(np.abs(t), 17), rtol=1e-12)
    n, k = 40, 2
    cov = rng.normal(size=(n, k))
    a, b = rng.normal(size=n), rng.normal(size=n)
    b += 0.4 * a
    q = stats.covariate_design(cov)
    ra, rb = stats.residualize(np.vstack([a, b]), q)
    r = stats.pearson(ra, rb)
    fit = sm.OLS(b, sm.add_constant(np.column_stack([cov, a]))).fit()
    assert float(stats.r_pvalue(r, n, k)) == pytest.approx(fit.pvalues[-1], rel=1e-9)
    assert float(stats.pval_from_r2(np.array([r * r]), n - 2 - k)[0]) == pytest.approx(
        fit.pvalues[-1], rel=1e-9
    )
    assert np.isnan(stats.r_pvalue(0.5, 3, 1)) and np.isnan(stats.r_pvalue(np.nan, 30))


def _null_r2_perm(rng, n=80, n_var=150, nperm=1000):
    """Maximum r² over `n_var` LD-correlated variants for `nperm` null phenotypes."""
    x = rng.standard_normal((n_var, n))
    x += 0.8 * np.roll(x, 1, axis=0)
    x -= x.mean(1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    p = rng.standard_normal((nperm, n))
    p -= p.mean(1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return np.max((x @ p.T) ** 2, axis=0)


def test_beta_fit_is_the_exact_mle():
    """The Beta shapes are the maximum-likelihood fit to the permutation p-values at the
    effective dof: equal to scipy's `beta.fit` with loc 0 and scale 1 fixed (which solves
    the score equations directly) at 1e-7, where Nelder-Mead alone stops up to ~1e-5 away."""
    rng = np.random.default_rng(4)
    for _ in range(8):
        r2 = _null_r2_perm(rng, n_var=int(rng.integers(20, 300)))
        res = stats.beta_approx_pval(r2, 0.2, 78)
        a, b, _, _ = sps.beta.fit(stats.pval_from_r2(r2, res["true_df"]), floc=0, fscale=1)
        np.testing.assert_allclose([res["beta_shape1"], res["beta_shape2"]], [a, b], rtol=1e-7)


def test_beta_approximation_is_stable_under_rounding_noise():
    """Permutation r² that differ by 1e-14 (another BLAS thread count or CPU) give the same
    pval_beta to 1e-10. Nelder-Mead's stopping point alone moved it by up to 8e-6, which
    failed the SLURM-vs-local comparison of test-slurm."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        r2 = _null_r2_perm(rng, n_var=int(rng.integers(20, 300)))
        a = stats.beta_approx_pval(r2, 0.2, 78)
        b = stats.beta_approx_pval(r2 * (1 + 1e-14 * rng.standard_normal(r2.shape)), 0.2, 78)
        for key in ["beta_shape1", "beta_shape2", "true_df", "pval_beta"]:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-10, err_msg=key)


def test_t_to_z_matches_scipy_quantiles_far_into_the_tail():
    """z with the t's tail probability, from scipy's t and normal distributions (mpmath-free:
    their isf/sf are independent kernels), including t where 1 − T(t) underflows in float64."""
    t = np.array([-40.0, -3.0, -0.5, 0.0, 0.7, 2.5, 30.0])
    dof = np.array([5.0, 17.0, 40.0, 10.0, 3.0, 200.0, 50.0])
    want = np.where(t >= 0, sps.norm.isf(sps.t.sf(t, dof)), sps.norm.ppf(sps.t.cdf(t, dof)))
    np.testing.assert_allclose(stats.t_to_z(t, dof), want, rtol=1e-9, atol=1e-12)
    assert np.isnan(stats.t_to_z(np.array([1.0, np.nan]), np.array([0.0, 5.0]))).all()


def test_heldout_fold_test_against_ols_per_fold_and_the_explicit_covariance():
    """Per fold, OLS y ~ 1 + covariates + prediction on the fold's people (statsmodels): its
    t for the prediction → z via scipy; combined as wᵀz / sqrt(wᵀ C w) with C written out as
    a matrix (1 on the diagonal, 1/(K − 1) between two folds with a model, 0 with a fold
    whose model is empty, whose z is the given draw), w = √dof."""
    rng = np.random.default_rng(3)
    n, k_folds = 97, 5
    labels = rng.permutation(np.arange(n) % k_folds)
    cov = rng.normal(size=(n, 2))
    pred = rng.normal(size=(3, n))
    expr = 0.3 * pred + rng.normal(size=(3, n)) + cov @ [0.5, -1.0]
    pred[2, labels == 1] = 0.25  # gene 3: fold 1's model is empty
    pred[2, labels == 3] = 0.0  # and fold 3's
    fill = rng.normal(size=(3, k_folds))
    z, p, dof, used = stats.heldout_fold_test(pred, expr, labels, k_folds, fill, cov)
    zr = stats.heldout_fold_test(pred, expr, labels, k_folds, fill, cov, rank=True)[0]
    for g in range(3):
        zs, ws, zs_rank, fitted = [], [], [], []
        for f in range(k_folds):
            m = labels == f
            df = m.sum() - 2 - 2
            ws.append(np.sqrt(df))
            fitted.append(np.ptp(pred[g, m]) > 0)
            if not fitted[-1]:
                zs.append(fill[g, f])
                zs_rank.append(fill[g, f])
                continue
            fit = sm.OLS(expr[g, m], sm.add_constant(np.column_stack([cov[m], pred[g, m]]))).fit()
            assert fit.df_resid == df
            zs.append(sps.norm.isf(sps.t.sf(fit.tvalues[-1], df)))
            # partial Spearman within the fold: Pearson of the two rank vectors' OLS residuals
            q = sm.add_constant(cov[m])
            rp = sm.OLS(sps.rankdata(pred[g, m]), q).fit().resid
            r = sps.pearsonr(rp, sm.OLS(sps.rankdata(expr[g, m]), q).fit().resid).statistic
            zs_rank.append(sps.norm.isf(sps.t.sf(r * np.sqrt(df / (1 - r * r)), df)))
        w, fitted = np.array(ws), np.array(fitted)
        c = np.where(np.outer(fitted, fitted), 1 / (k_folds - 1), 0.0)
        np.fill_diagonal(c, 1.0)
        want = w @ np.array(zs) / np.sqrt(w @ c @ w)
        assert z[g] == pytest.approx(want, rel=1e-9)
        assert p[g] == pytest.approx(2 * sps.norm.sf(abs(want)), rel=1e-9)
        assert zr[g] == pytest.approx(w @ np.array(zs_rank) / np.sqrt(w @ c @ w), rel=1e-9)
        assert dof[g] == round((w[fitted] ** 2).sum()) and used[g] == fitted.sum()  # exact integers
    assert used[2] == k_folds - 2
