"""glmnet's gaussian elastic net in numpy: the λ path, the coordinate-descent solver, cv.glmnet.

Faithful to glmnet where it matters for the numbers (PredictDB's elastic net,
`hapexp.linear.elasticnet`, and the elastic nets fitted on training people,
`hapexp.linear.elasticnet.fit_predict_on`, use it):

- **fit** (`glmnet_path`): predictors standardized with the 1/n standard deviation,
  response standardized internally (so the ridge part is scaled by 1/sd(y) exactly as
  glmnet does), intercept unpenalized; objective
  `1/(2n)·RSS + λ(α|β|₁ + (1-α)/2·|β|²)`. Solved by coordinate descent in glmnet's
  covariance form (`_path_kernel`, compiled by numba): warm starts along the path, a
  working set with its Gram matrix, KKT checks of all variables at every λ; converged
  when a sweep moves no standardized coefficient by more than sqrt(`thresh`) (glmnet's
  `thresh`, default 1e-7).
- **λ path** (`lambda_path`): `λ_max = max_j |x̃_jᵀ(y - ȳ)| / (n α)` (x̃ standardized),
  `nlambda = 100` log-spaced down to `λ_max · ratio` with glmnet's
  `lambda.min.ratio = ifelse(nobs < nvars, 0.01, 0.0001)` (so 1e-4 at n == p); the
  path stops early as glmnet's does (after ≥ 5 λ, when the
  deviance explained changes by < 1e-5 relative, or exceeds 0.999).
- **cv.glmnet** (`cv_glmnet`): λ sequence from the full training data, each fold fit
  on it, `cvm` = mean squared error over all held-out individuals, `lambda.min` =
  the largest λ attaining the minimum.
"""

from __future__ import annotations

import numba
import numpy as np


def standardize(x: np.ndarray):
    """Column means and 1/n standard deviations (glmnet's), standardized copy (C order)."""
    mean = x.mean(axis=0)
    xs = x - mean
    sd = np.sqrt(np.einsum("ij,ij->j", xs, xs) / x.shape[0])
    sd = np.where(sd > 0, sd, 1.0)
    xs /= sd
    return xs, mean, sd


def lambda_path(xs: np.ndarray, yc: np.ndarray, alpha: float, nlambda: int = 100, ratio: float | None = None):
    """glmnet's default λ sequence for standardized `xs` and centered `yc`."""
    n, p = xs.shape
    if ratio is None:
        ratio = 1e-2 if n < p else 1e-4  # glmnet: lambda.min.ratio = ifelse(nobs < nvars, 0.01, 1e-4)
    lam_max = np.max(np.abs(xs.T @ yc)) / (n * alpha)
    if lam_max <= 0:
        return np.array([0.0])
    return lam_max * ratio ** (np.arange(nlambda) / (nlambda - 1))


def glmnet_path(
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    lambdas: np.ndarray | None = None,
    early_stop: bool = True,
    thresh: float = 1e-7,
    max_sweeps: int = 100000,
):
    """Fit a glmnet-equivalent gaussian elastic-net path.

    Returns (lambdas, beta (p × L, original scale), intercept (L,)). With
    `lambdas=None` the λ sequence is glmnet's default and the path may stop early
    as glmnet's does.
    """
    n, p = x.shape
    xs, xm, xsd = standardize(x)
    ym = y.mean()
    yc = y - ym
    ysd = yc.std()
    if ysd == 0:
        lam = np.array([0.0]) if lambdas is None else np.asarray(lambdas)
        return lam, np.zeros((p, lam.size)), np.full(lam.size, ym)
    if lambdas is None:
        lambdas = lambda_path(xs, yc, alpha)
    else:
        early_stop = False
    lambdas = np.asarray(lambdas, dtype=float)
    ys = yc / ysd
    xt = np.ascontiguousarray(xs.T)  # each variable's column of xs, contiguous
    coefs, n_done = _path_kernel(
        xt, xt.astype(np.float32), ys, lambdas / ysd, float(alpha), float(thresh), int(max_sweeps), early_stop
    )
    b = coefs[:, :n_done] * (ysd / xsd)[:, None]
    intercept = ym - xm @ b
    return lambdas[:n_done], b, intercept


@numba.njit(cache=True)
def _path_kernel(xt, xt32, ys, scaled, alpha, thresh, max_sweeps, early_stop):
    """Pathwise coordinate descent in glmnet's *covariance* form (Friedman et al. 2010 §2.2),
    compiled (numba): `xt` is the standardized design transposed (p × n, each variable's
    column contiguous), `xt32` its float32 copy, `ys` the standardized response, `scaled`
    the λ sequence on ys' scale. Returns (coefficients p × L on the standardized scale, the
    number of λ fitted).

    Per λ, coordinate descent runs on a working set W only — every variable that was ever
    active (zeros in W cost O(1) per sweep) plus those violating their KKT condition at the
    warm start — with the Gram matrix ⟨x_j, x_k⟩ of W and H = Gram·w kept current (a
    coordinate that moves costs O(|W|), never O(n·p)), sweeping until no coefficient moves by
    more than sqrt(`thresh`) in a sweep (glmnet's criterion: max xv·Δβ² < thresh, xv = 1 on
    standardized variables). Then the KKT condition |x_jᵀr|/n ≤ αλ of the variables outside W,
    in two steps: a float32 product (half the memory traffic of the O(n·p) gradient) gives
    an upper bound of every |gradient| — |float32 result| + (n + 2)·eps32·|x_j|·|r| / n,
    twice the classical worst-case error of any summation order, with |x_j|² = n — and only
    the variables whose bound exceeds the threshold get the exact float64 gradient, so the
    violators are exactly those of a float64 check. Violators join W and the λ is re-solved.
    Early stop as glmnet's: after ≥ 5 λ, when the deviance explained changes by < 1e-5
    relative, or exceeds 0.999.
    """
    p, n = xt.shape
    n_lam = scaled.size
    coefs = np.zeros((p, n_lam))
    xty = np.dot(xt, ys)
    member = np.zeros(p, dtype=np.bool_)
    cap = 64
    index = np.empty(cap, dtype=np.int64)
    xw = np.empty((cap, n))  # W's variables, one row each
    gram = np.empty((cap, cap))
    w = np.zeros(cap)
    h = np.zeros(cap)  # Gram·w on W
    m = 0
    resid = ys.copy()
    tss = np.dot(ys, ys)
    slack = (n + 2) * np.finfo(np.float32).eps * np.sqrt(n)
    bound = np.abs(xty) / n  # |gradient| (here exact), later an upper bound of it
    prev_dev = 0.0
    n_done = 0
    cand = np.empty(p, dtype=np.int64)
    for k in range(n_lam):
        lam = scaled[k]
        l1 = lam * alpha * n
        l2 = lam * (1.0 - alpha) * n
        thr = alpha * lam * (1.0 + 1e-9)
        solved = False  # W is solved at every λ at least once (λ moved), then until no violator
        while True:
            # KKT of the variables outside W (those inside were left converged)
            nv = 0
            for j in range(p):
                # the exact float64 gradient only where the float32 bound allows a violation
                if not member[j] and bound[j] > thr and abs(np.dot(xt[j], resid)) / n > thr:
                    cand[nv] = j
                    nv += 1
            if nv:
                if m + nv > cap:
                    new_cap = max(2 * cap, m + nv)
                    index2 = np.empty(new_cap, dtype=np.int64)
                    index2[:m] = index[:m]
                    xw2 = np.empty((new_cap, n))
                    xw2[:m] = xw[:m]
                    gram2 = np.empty((new_cap, new_cap))
                    gram2[:m, :m] = gram[:m, :m]
                    w2 = np.zeros(new_cap)
                    w2[:m] = w[:m]
                    h2 = np.zeros(new_cap)
                    h2[:m] = h[:m]
                    index, xw, gram, w, h, cap = index2, xw2, gram2, w2, h2, new_cap
                for i in range(nv):
                    j = cand[i]
                    index[m + i] = j
                    xw[m + i] = xt[j]
                    member[j] = True
                new_rows = np.dot(xw[m : m + nv], xw[: m + nv].T)
                gram[m : m + nv, : m + nv] = new_rows
                gram[: m + nv, m : m + nv] = new_rows.T
                # the new variables' Gram·w (their coefficients are 0, so W's others are unchanged)
                for i in range(m, m + nv):
                    hi = 0.0
                    for j in range(m):
                        hi += gram[i, j] * w[j]
                    h[i] = hi
                w[m : m + nv] = 0.0
                m += nv
            elif solved:
                break
            if m == 0:
                break
            for _ in range(max_sweeps):
                dlx = 0.0
                for i in range(m):
                    wi = w[i]
                    gii = gram[i, i]
                    g = xty[index[i]] - h[i] + gii * wi
                    a = abs(g) - l1
                    new = 0.0
                    if a > 0.0:
                        new = (a if g > 0.0 else -a) / (gii + l2)
                    if new != wi:
                        d = new - wi
                        w[i] = new
                        gi = gram[i]
                        for j in range(m):
                            h[j] += d * gi[j]
                        if d * d > dlx:
                            dlx = d * d
                if dlx < thresh:
                    break
            solved = True
            resid = ys - np.dot(w[:m], xw[:m])
            rn = np.sqrt(np.dot(resid, resid))
            bound = (np.abs(np.dot(xt32, resid.astype(np.float32))).astype(np.float64) + slack * rn) / n
        for i in range(m):
            coefs[index[i], k] = w[i]
        n_done = k + 1
        if early_stop:
            dev = 1.0 - np.dot(resid, resid) / tss
            if k + 1 >= 5 and (dev - prev_dev < 1e-5 * dev or dev > 0.999):
                break
            prev_dev = dev
    return coefs, n_done


def cv_glmnet(x: np.ndarray, y: np.ndarray, foldid: np.ndarray, alpha: float, thresh: float = 1e-7):
    """cv.glmnet(type.measure='mse', foldid=foldid): returns dict with lambdas, cvm, i_min, beta, intercept."""
    lambdas, beta, a0 = glmnet_path(x, y, alpha, thresh=thresh)
    sq = np.zeros(lambdas.size)
    for f in np.unique(foldid):
        tr, te = foldid != f, foldid == f
        _, b, i = glmnet_path(x[tr], y[tr], alpha, lambdas=lambdas, thresh=thresh)
        pred = x[te] @ b + i
        sq += ((y[te][:, None] - pred) ** 2).sum(axis=0)
    cvm = sq / y.size
    i_min = int(np.flatnonzero(cvm <= cvm.min())[0])  # largest λ at the minimum
    return {"lambdas": lambdas, "cvm": cvm, "i_min": i_min, "beta": beta[:, i_min], "intercept": a0[i_min]}
