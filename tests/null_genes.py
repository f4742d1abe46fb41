"""Simulated genes for the null-calibration suite (tests/test_null_calibration.py).

Each gene has its own cis window of genotypes simulated by msprime (coalescent with
recombination: real LD, real allele-frequency spectrum; human-like N_e 10,000, mutation
1.25e-8 and recombination 1e-8 per bp per generation), so genes are independent of each
other. Window length varies per gene (`lengths`), so SNP counts vary (MAF ≥ `maf` kept:
about 230 SNPs per 100 kb at 200 people, MAF ≥ 1 %). Covariates (sex and two continuous
ones) act on the raw expression; the expression is then residualized on them, as rule
prepare_expression does, and the covariates go to the verdict, which residualizes the
predictions on them too.

Null genes: expression independent of genotype. Planted genes (`h2` > 0): `n_causal`
SNPs of the window carry effects explaining a fraction `h2` of the expression variance.
Positions are 1-based on one chromosome per gene ("chr1" with a gene-specific offset, so
windows never overlap). Everything is seeded: the same genes for every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hapexp.stats import covariate_design, residualize
from hapexp.variants.genotypes import Dosages

N_E, MU, RHO = 10_000, 1.25e-8, 1e-8
# Offset between genes' windows (1-based positions): larger than any window.
GENE_SPACING = 10_000_000


@dataclass
class Cohort:
    """genes × people expression (residualized), covariates × people, the genes' windows
    (gene_id, chrom, start0, end0: 0-based half-open) and each gene's dosages (variants ×
    people, `Dosages`); `haplotypes`: gene → (variants × 2·people) 0/1 phased alleles (people's
    haplotypes in order p0h0, p0h1, p1h0, ...); `causal`: gene → indices of planted SNPs."""

    expression: pd.DataFrame
    covariates: pd.DataFrame
    genes: pd.DataFrame
    dosages: Dosages
    haplotypes: dict
    causal: dict

    @property
    def samples(self) -> list[str]:
        return list(self.expression.columns)


def simulate_window(n_people: int, length: int, seed: int, maf: float = 0.01) -> np.ndarray:
    """(variants × 2·people) phased 0/1 alleles of one msprime window, MAF ≥ `maf`."""
    import msprime

    ts = msprime.sim_ancestry(
        samples=n_people,
        sequence_length=length,
        recombination_rate=RHO,
        population_size=N_E,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=MU, random_seed=seed, model=msprime.BinaryMutationModel())
    h = ts.genotype_matrix().astype(np.int8)
    f = h.mean(axis=1)
    return h[(np.minimum(f, 1 - f) >= maf)]


def null_cohort(
    n_genes: int,
    n_people: int = 200,
    seed: int = 0,
    lengths=(20_000, 400_000),
    maf: float = 0.01,
    h2: float = 0.0,
    n_causal: int = 1,
    n_covariates: int = 3,
) -> Cohort:
    """`n_genes` genes, windows of a length drawn log-uniformly from `lengths` (bp), expression
    independent of genotype unless `h2` > 0 (module doc). Genes with fewer than 2 SNPs are
    kept (the elastic net does not fit them: not tested)."""
    rng = np.random.default_rng([seed, 20])
    samples = [f"P{i:04d}" for i in range(n_people)]
    cov = np.column_stack(
        [rng.integers(0, 2, n_people).astype(float)]
        + [rng.normal(size=n_people) for _ in range(n_covariates - 1)]
    )
    haps, dos_rows, ids, pos_all, causal, expr = {}, [], [], [], {}, {}
    windows = []
    for g in range(n_genes):
        gid = f"G{g:05d}"
        length = int(np.exp(rng.uniform(np.log(lengths[0]), np.log(lengths[1]))))
        h = simulate_window(n_people, length, seed=int(rng.integers(1, 2**31 - 1)), maf=maf)
        haps[gid] = h
        d = (h[:, 0::2] + h[:, 1::2]).astype(float)
        offset = (g + 1) * GENE_SPACING
        pos = offset + np.sort(rng.choice(length, size=len(d), replace=False)) + 1  # 1-based
        dos_rows.append(d)
        pos_all.append(pos)
        ids += [f"chr1_{p}_A_G" for p in pos]
        windows.append((gid, "chr1", offset, offset + length + 1))
        y = rng.normal(size=n_people)
        if h2 > 0 and len(d) >= n_causal:
            ix = rng.choice(len(d), size=n_causal, replace=False)
            causal[gid] = ix
            sd = d[ix].std(axis=1)
            sd[sd == 0] = 1.0
            gv = (rng.choice([-1.0, 1.0], n_causal) / sd) @ (d[ix] - d[ix].mean(axis=1, keepdims=True))
            y = np.sqrt(h2) * gv / gv.std() + np.sqrt(1 - h2) * y
        # covariate effects on the raw expression; prepare_expression residualizes them away
        expr[gid] = y + cov @ rng.normal(scale=0.5, size=cov.shape[1])
    x = np.vstack(dos_rows) if dos_rows else np.zeros((0, n_people))
    pos = np.concatenate(pos_all) if pos_all else np.zeros(0, int)
    nv = len(x)
    dosages = Dosages(
        np.array(ids, dtype=object),
        np.array(["chr1"] * nv, dtype=object),
        pos,
        np.array(["A"] * nv, dtype=object),
        np.array(["G"] * nv, dtype=object),
        x,
        samples,
    )
    genes = pd.DataFrame(windows, columns=["gene_id", "chrom", "start0", "end0"])
    genes["name"] = genes["gene_id"]
    genes["tss"] = genes["start0"] + 1
    genes["strand"] = "+"
    raw = np.vstack([expr[g] for g in genes["gene_id"]])
    prepared = residualize(raw, covariate_design(cov))
    expression = pd.DataFrame(prepared, index=genes["gene_id"], columns=samples)
    expression.index.name = "gene_id"
    covariates = pd.DataFrame(cov.T, index=[f"C{i}" for i in range(cov.shape[1])], columns=samples)
    covariates.index.name = "id"
    return Cohort(expression, covariates, genes, dosages, haps, causal)


def binomial_bounds(n: int, p: float = 0.05, level: float = 0.99) -> tuple[float, float]:
    """The central `level` binomial interval of the fraction of n uniform p-values below p."""
    from scipy import stats

    lo, hi = stats.binom.interval(level, n, p)
    return lo / n, hi / n


def calibration(pvalues, r) -> dict:
    """Fraction of finite p-values below 0.05 overall and in each tail (sign of r), their
    count, and the KS test of uniformity."""
    from scipy import stats

    p = np.asarray(pvalues, dtype=float)
    r = np.asarray(r, dtype=float)
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    return {
        "n": int(ok.sum()),
        "p05": float((p < 0.05).mean()),
        "pos": float(((p < 0.05) & (r > 0)).mean()),
        "neg": float(((p < 0.05) & (r < 0)).mean()),
        "ks_p": float(stats.kstest(p, "uniform").pvalue),
    }


def assert_calibrated(name: str, pvalues, r, min_genes: int = 100) -> dict:
    """p < 0.05 within the binomial 99 % bounds overall, and p < 0.05 with r > 0 and with
    r < 0 each within the bounds for 2.5 %; KS does not reject uniformity at 0.01."""
    c = calibration(pvalues, r)
    n = c["n"]
    assert n >= min_genes, f"{name}: only {n} genes tested"
    lo, hi = binomial_bounds(n, 0.05)
    tlo, thi = binomial_bounds(n, 0.025)
    msg = f"{name}: {c} (bounds {lo:.3f}-{hi:.3f}, each tail {tlo:.3f}-{thi:.3f})"
    assert lo <= c["p05"] <= hi, msg
    assert tlo <= c["pos"] <= thi, msg
    assert tlo <= c["neg"] <= thi, msg
    assert c["ks_p"] > 0.01, msg
    return c
