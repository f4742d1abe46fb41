"""The demo cohort's expression: the oracle's genetic value plus noise, covariates and hidden factors.

- *Genetic value*: for each individual, the mean over its two haplotypes of the oracle
  readout of its own personal window (all its variants; `hapexp.demo.readout`).
  `expression_noiseless.tsv` holds it for every gene, h2 = 0 genes included.
- *Expression*: Gaussian noise is scaled so that var(genetic) / (var(genetic) +
  var(noise)) = h2; genes with h2 = 0 get noise around their reference-genome readout
  only. Measured covariates (sex, age, rin; `covariate_fraction` of the gene's genetic +
  noise variance) and two unmeasured factors shared by all genes (`hidden_fraction`;
  what expression PCs are for) are added on top; they are outside h2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hapexp.demo.genome import Genome
from hapexp.demo.layout import Gene
from hapexp.demo.readout import personal_window


def genetic_values(genome: Genome, genes: list[Gene], readout, window: int, n: int) -> np.ndarray:
    """(genes, individuals): mean over the two haplotypes of the personal-window readout."""
    out = np.zeros((len(genes), n))
    for gi, g in enumerate(genes):
        vs = genome.window_variants(g, window)
        keys = [tuple(int(v.gt[h]) for v in vs) for h in range(2 * n)]
        uniq = sorted(set(keys))
        seqs = np.stack(
            [
                personal_window(
                    genome.ref[g.chrom],
                    g.tss0,
                    g.strand,
                    window,
                    [(v.pos0, v.ref, v.alts[a - 1]) for v, a in zip(vs, key, strict=True) if a > 0],
                )
                for key in uniq
            ]
        )
        val = dict(zip(uniq, readout(seqs), strict=True))
        hap = np.array([val[k] for k in keys])
        out[gi] = 0.5 * (hap[0::2] + hap[1::2])
    return out


def draw_expression(
    rng, genes: list[Gene], genetic: np.ndarray, covariate_fraction: float, hidden_fraction: float
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(expression genes × individuals, measured covariates sex/age/rin × individuals,
    the truth_genes table: per gene h2, n_causal, genetic_var, noise_var, ref_readout)."""
    n = genetic.shape[1]
    # Covariates: measured (written out) and hidden factors (not written).
    sex = rng.integers(0, 2, size=n).astype(float)
    age = np.round(rng.uniform(20, 80, size=n), 1)
    rin = np.round(np.clip(rng.normal(7.0, 1.0, size=n), 3, 10), 1)
    cov = np.stack([sex, age, rin])
    cov_z = (cov - cov.mean(1, keepdims=True)) / cov.std(1, keepdims=True)
    hidden = rng.normal(size=(2, n))
    hidden = (hidden - hidden.mean(1, keepdims=True)) / hidden.std(1, keepdims=True)

    expr = np.zeros((len(genes), n))
    gene_rows = []
    for gi, g in enumerate(genes):
        gval = genetic[gi]
        if g.h2 > 0:
            gvar = float(np.var(gval))
            noise_var = gvar * (1 - g.h2) / g.h2
            base = gval
        else:
            gvar = 0.0
            noise_var = (0.15 * g.ref_readout + 0.05) ** 2
            base = np.full(n, g.ref_readout)
        noise = rng.normal(0.0, np.sqrt(noise_var), size=n)
        total = gvar + noise_var
        b = rng.normal(size=3)
        b *= np.sqrt(covariate_fraction * total / (b @ b))  # z-scores ~ uncorrelated: var ~ |b|^2
        # Unmeasured factors touch every gene equally (random sign): the shared structure
        # that expression PCs are meant to remove.
        lam = rng.choice([-1.0, 1.0], size=2) * np.sqrt(hidden_fraction * total / 2)
        expr[gi] = base + noise + b @ cov_z + lam @ hidden
        gene_rows.append(
            {
                "gene_id": g.gene_id,
                "h2": g.h2,
                "n_causal": len(g.causal),
                "genetic_var": gvar,
                "noise_var": noise_var,
                "ref_readout": g.ref_readout,
            }
        )
    return expr, cov, pd.DataFrame(gene_rows)
