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
