"""Benchmark of the linear baselines (issue 5), side by side in one run.

Simulated cohort: msprime (Ne 10,000, μ = r = 1e-8, one chromosome) for
`--individuals` diploids; `--genes` genes with TSSs spread over the chromosome and
±`--window` bp cis windows; 1-3 causal variants per gene, heritability U(0, 0.3),
3 covariates.

1. cis-eQTL nominal scan, all genes, on in-memory genotypes (simulation and data
   frames built before timing): hapexp (`scan_genes`, float64, one BLAS thread; after
   one untimed warm-up call) vs tensorQTL `map_nominal` (CPU, its default float32,
   torch on all cores; it writes parquet itself, so it is compared with hapexp's scan
   + `to_parquet`) vs a per-pair statsmodels OLS loop (inputs looked up before timing;
   each fit reads slope, se, t and p as the scan reports them; timed on a random
   sample of pairs and extrapolated; compared with hapexp's in-memory scan).
2. Elastic net on `--enet-genes` genes (evenly spaced): hapexp `fit_gene` vs R glmnet
   `cv.glmnet` running PredictDB's nested CV on *identical* outer/inner folds; time
   per gene (single thread each) and |Δ rho_avg|.

Usage: nice .venv/bin/python bench/linear.py [--individuals 400 --genes 200 ...]
Prints a markdown block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from hapexp.inputs.expression import inverse_normal_transform  # noqa: E402
from hapexp.linear.elasticnet import fit_gene, gene_folds, gene_rng, scale_expression  # noqa: E402
from hapexp.linear.eqtl import scan_genes  # noqa: E402
from hapexp.variants.genotypes import Dosages, filter_maf  # noqa: E402
from hapexp.variants.windows import gene_window, resolve_window  # noqa: E402

R_SCRIPT = r"""
suppressMessages(library(glmnet))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; genes <- readLines(file.path(dir, "genes.txt"))
alpha <- 0.5
calc_R2 <- function(y, y_pred) 1 - sum((y - y_pred)^2) / sum(y^2)
out <- data.frame()
for (g in genes) {
  x <- as.matrix(read.table(file.path(dir, paste0(g, ".x.tsv")), header = FALSE))
  y <- scan(file.path(dir, paste0(g, ".y.txt")), quiet = TRUE)
  folds <- read.table(file.path(dir, paste0(g, ".folds.tsv")), header = TRUE)
  t0 <- proc.time()[["elapsed"]]
  k_out <- max(folds$outer)
  rho <- numeric(k_out)
  for (k in 1:k_out) {
    tr <- which(folds$outer != k); te <- which(folds$outer == k)
    inner <- folds[[paste0("inner", k)]][tr]
    fit <- cv.glmnet(x[tr, ], y[tr], nfolds = max(inner), alpha = alpha, type.measure = "mse", foldid = inner)
    pred <- predict(fit, x[te, , drop = FALSE], s = "lambda.min")
    rho[k] <- ifelse(sd(pred) != 0, cor(pred, y[te]), 0)
  }
  fit <- cv.glmnet(x, y, nfolds = max(folds$final), alpha = alpha, type.measure = "mse", foldid = folds$final)
  nz <- fit$nzero[which.min(fit$cvm)]
  el <- proc.time()[["elapsed"]] - t0
  out <- rbind(out, data.frame(gene_id = g, rho_avg = mean(rho), n_snps_in_model = nz, seconds = el))
}
write.table(out, file.path(dir, "glmnet.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
cat(as.character(packageVersion("glmnet")), "\n", file = file.path(dir, "glmnet.version"))
"""


def simulate(n_ind: int, n_genes: int, window: int, seed: int):
    import msprime

    length = int(2 * window + n_genes * 50_000)
    ts = msprime.sim_ancestry(
        samples=n_ind,
        population_size=10_000,
        sequence_length=length,
        recombination_rate=1e-8,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed, model=msprime.BinaryMutationModel())
    hap = ts.genotype_matrix()  # sites × haplotypes (0/1)
    pos = np.floor(ts.tables.sites.position).astype(np.int64) + 1  # 1-based
    keep = np.concatenate([[True], np.diff(pos) > 0])  # one variant per position
    hap, pos = hap[keep], pos[keep]
    dos = (hap[:, 0::2] + hap[:, 1::2]).astype(float)
    samples = [f"I{i:04d}" for i in range(n_ind)]
    m = len(pos)
    d = Dosages(
        np.array([f"chr1_{p}_A_G" for p in pos], dtype=object),
        np.array(["chr1"] * m, dtype=object),
        pos,
        np.array(["A"] * m, dtype=object),
        np.array(["G"] * m, dtype=object),
        dos,
        samples,
    )
    d = filter_maf(d, 0.01)
    rng = np.random.default_rng(seed)
    tss = np.linspace(window + 1, length - window - 1, n_genes).astype(np.int64)
    genes = pd.DataFrame(
        {
            "gene_id": [f"G{i:04d}" for i in range(n_genes)],
            "name": [f"G{i:04d}" for i in range(n_genes)],
            "chrom": "chr1",
            "tss": tss,
            "strand": rng.choice(["+", "-"], n_genes),
        }
    )
    w = resolve_window(window)
    win = [gene_window(t, s, w) for t, s in zip(genes.tss, genes.strand, strict=True)]
    genes["start0"], genes["end0"] = [x[0] for x in win], [x[1] for x in win]
    cov = rng.normal(size=(3, n_ind))
    expr = []
    for row in genes.itertuples():
        local = d.window("chr1", row.start0, row.end0)
        h2 = rng.uniform(0, 0.3)
        c = rng.choice(len(local), rng.integers(1, 4), replace=False)
        gsig = local.dosage[c].T @ rng.normal(size=len(c))
        gsig = (gsig - gsig.mean()) / (gsig.std() or 1.0)
        y = np.sqrt(h2) * gsig + np.sqrt(1 - h2) * rng.normal(size=n_ind) + rng.normal(size=3) @ cov
        expr.append(y)
    expr = pd.DataFrame(inverse_normal_transform(np.array(expr)), index=genes.gene_id, columns=samples)
    covdf = pd.DataFrame(cov, index=["c0", "c1", "c2"], columns=samples)
    return d, genes, expr, covdf


def bench_eqtl(d, genes, expr, cov, n_ols: int, tmp: Path):
    out = {}
    scan_genes(d, genes, expr, cov)  # warm-up (imports, first-call allocations), not timed
    t = time.perf_counter()
    nominal, _ = scan_genes(d, genes, expr, cov)
    out["hapexp_scan_s"] = time.perf_counter() - t
    nominal.to_parquet(tmp / "ours.parquet")
    out["hapexp_s"] = time.perf_counter() - t
    out["pairs"] = len(nominal)
    try:
        import torch
        from tensorqtl import cis

        torch.set_num_threads(max(1, os.cpu_count() or 1))
        gdf = pd.DataFrame(d.dosage, index=d.variant_id, columns=d.samples)
        vdf = pd.DataFrame({"chrom": d.chrom, "pos": d.pos}, index=d.variant_id)
        pdf = pd.DataFrame({"chr": genes.chrom.to_numpy(), "pos": genes.tss.to_numpy()}, index=genes.gene_id)
        win = int((genes.end0 - genes.start0).iloc[0] // 2)
        t = time.perf_counter()
        cis.map_nominal(
            gdf, vdf, expr, pdf, "tq", covariates_df=cov.T, window=win, output_dir=str(tmp), verbose=False
        )
        out["tensorqtl_s"] = time.perf_counter() - t
        ref = pd.read_parquet(tmp / "tq.cis_qtl_pairs.chr1.parquet")
        m = ref.merge(nominal, on=["phenotype_id", "variant_id"], suffixes=("_tq", ""))
        out["tensorqtl_pairs"] = len(ref)
        out["tensorqtl_max_abs_slope"] = float(np.max(np.abs(m.slope - m.slope_tq)) / np.max(np.abs(m.slope)))
        out["tensorqtl_max_log10p"] = float(
            np.max(np.abs(np.log10(m.pval_nominal) - np.log10(m.pval_nominal_tq)))
        )
        import importlib.metadata as md

        out["tensorqtl_version"] = md.version("tensorqtl")
    except ImportError as e:
        out["tensorqtl_s"] = float("nan")
        out["tensorqtl_version"] = f"not installed ({e})"
    import statsmodels.api as sm

    sample = nominal.sample(n=min(n_ols, len(nominal)), random_state=0)
    idx = {v: i for i, v in enumerate(d.variant_id)}
    c = cov.to_numpy().T
    # inputs looked up before timing; each fit computes what the scan reports (slope, se, t, p)
    jobs = [
        (d.dosage[idx[v]], expr.loc[g].to_numpy())
        for g, v in zip(sample.phenotype_id, sample.variant_id, strict=True)
    ]
    t = time.perf_counter()
    for g, y in jobs:
        fit = sm.OLS(y, sm.add_constant(np.column_stack([g, c]))).fit()
        _ = (fit.params[1], fit.bse[1], fit.tvalues[1], fit.pvalues[1])
    per_pair = (time.perf_counter() - t) / len(sample)
    out["statsmodels_s"] = per_pair * len(nominal)
    return out


def bench_enet(d, genes, expr, n_genes: int, thresh: float, tmp: Path, seed: int = 42):
    sel = genes.iloc[np.linspace(0, len(genes) - 1, n_genes).astype(int)]
    rdir = tmp / "r"
    rdir.mkdir()
    ours = []
    for row in sel.itertuples():
        local = d.window("chr1", row.start0, row.end0)
        x = np.ascontiguousarray(local.dosage.T)
        y = expr.loc[row.gene_id].to_numpy()
        t = time.perf_counter()
        m, _, _ = fit_gene(
            row.gene_id, x, y, alpha=0.5, outer_folds=5, inner_folds=10, seed=seed, thresh=thresh
        )
        m["seconds"] = time.perf_counter() - t
        ours.append(m)
        outer, inner, final = gene_folds(len(y), 5, 10, gene_rng(seed, row.gene_id), seed)
        folds = {"outer": outer + 1, "final": final + 1}
        for k, f in enumerate(inner):
            col = np.zeros(len(y), dtype=int)
            col[outer != k] = f + 1
            folds[f"inner{k + 1}"] = col
        pd.DataFrame(folds).to_csv(rdir / f"{row.gene_id}.folds.tsv", sep="\t", index=False)
        np.savetxt(rdir / f"{row.gene_id}.x.tsv", x, fmt="%.6g", delimiter="\t")
        np.savetxt(rdir / f"{row.gene_id}.y.txt", scale_expression(y), fmt="%.17g")
    ours = pd.DataFrame(ours)
    (rdir / "genes.txt").write_text("\n".join(sel.gene_id) + "\n")
    (rdir / "run.R").write_text(R_SCRIPT)
    res = {"ours": ours}
    if shutil.which("Rscript"):
        subprocess.run(["Rscript", str(rdir / "run.R"), str(rdir)], check=True)
        res["glmnet"] = pd.read_csv(rdir / "glmnet.tsv", sep="\t")
        res["glmnet_version"] = (rdir / "glmnet.version").read_text().strip()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--individuals", type=int, default=400)
    ap.add_argument("--genes", type=int, default=200)
    ap.add_argument("--window", type=int, default=1_000_000)
    ap.add_argument("--enet-genes", type=int, default=20)
    ap.add_argument("--ols-pairs", type=int, default=3000)
    ap.add_argument("--thresh", type=float, default=1e-7)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    t = time.perf_counter()
    d, genes, expr, cov = simulate(a.individuals, a.genes, a.window, a.seed)
    sim_s = time.perf_counter() - t
    nsnp = [len(d.window("chr1", r.start0, r.end0)) for r in genes.itertuples()]
    tmp = Path(tempfile.mkdtemp(prefix="bench_linear_"))
    try:
        eq = bench_eqtl(d, genes, expr, cov, a.ols_pairs, tmp)
        lines = eqtl_lines(a, d, nsnp, sim_s, eq)
        print("\n".join(lines), flush=True)
        if a.enet_genes > 0:
            en = bench_enet(d, genes, expr, a.enet_genes, a.thresh, tmp)
            print("\n".join(enet_lines(a, en)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def eqtl_lines(a, d, nsnp, sim_s, eq):
    return [
        f"### Linear baselines (bench/linear.py) — {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {platform.machine()} VM, {os.cpu_count()} cores, no GPU, shared with other jobs; BLAS 1 thread. "
        f"Cohort: msprime, {a.individuals} individuals × {a.genes} genes, ±{a.window:,} bp windows, "
        f"{len(d):,} variants with MAF ≥ 0.01, median {int(np.median(nsnp))} variants per window "
        f"(simulated in {sim_s:.0f} s). tensorQTL {eq.get('tensorqtl_version')}.",
        "",
        "| cis-eQTL nominal scan | seconds | pairs | ratio (theirs / hapexp) |",
        "| --- | ---: | ---: | ---: |",
        f"| hapexp `scan_genes` (float64, in memory) | {eq['hapexp_scan_s']:.2f} | {eq['pairs']:,} | 1 |",
        f"| hapexp `scan_genes` + parquet | {eq['hapexp_s']:.2f} | {eq['pairs']:,} | 1 |",
        f"| tensorQTL `map_nominal` (CPU, float32, writes parquet; vs hapexp + parquet) | {eq['tensorqtl_s']:.2f} | "
        f"{eq.get('tensorqtl_pairs', 0):,} | {eq['tensorqtl_s'] / eq['hapexp_s']:.2f}× |",
        f"| statsmodels OLS per pair (extrapolated from {a.ols_pairs} pairs; vs hapexp in memory) | "
        f"{eq['statsmodels_s']:.0f} | {eq['pairs']:,} | {eq['statsmodels_s'] / eq['hapexp_scan_s']:.0f}× |",
        "",
        "Agreement with tensorQTL (its float32): max |Δslope| / max |slope| = "
        f"{eq.get('tensorqtl_max_abs_slope', float('nan')):.1e}, max |Δ log10 p| = "
        f"{eq.get('tensorqtl_max_log10p', float('nan')):.1e} (float64 parity at 1e-6 is in tests/test_eqtl.py).",
        "",
    ]


def enet_lines(a, en):
    o = en["ours"]
    lines = [
        f"Elastic net, PredictDB nested CV (α 0.5, 5 outer × 10 inner folds + final cv fit), {len(o)} genes, "
        f"median {int(o.n_snps_in_window.median())} variants per window, hapexp thresh {a.thresh:g} (glmnet default 1e-7):",
        "",
        "| elastic net | median s / gene | total s | median rho_avg |",
        "| --- | ---: | ---: | ---: |",
        f"| hapexp `fit_gene` | {o.seconds.median():.2f} | {o.seconds.sum():.1f} | {o.rho_avg.median():.3f} |",
    ]
    if "glmnet" in en:
        g = en["glmnet"].set_index("gene_id").loc[o.gene_id]
        delta = np.abs(o.rho_avg.to_numpy() - g.rho_avg.to_numpy())
        lines += [
            f"| R glmnet {en['glmnet_version']} `cv.glmnet`, same folds | {g.seconds.median():.2f} | "
            f"{g.seconds.sum():.1f} | {g.rho_avg.median():.3f} |",
            "",
            f"Speed ratio (glmnet / hapexp, total): {g.seconds.sum() / o.seconds.sum():.2f}×; "
            f"|Δ rho_avg| median {np.median(delta):.4f}, max {np.max(delta):.4f}; "
            f"model sizes (n_snps_in_model) median hapexp {int(o.n_snps_in_model.median())} vs glmnet "
            f"{int(g.n_snps_in_model.median())}.",
        ]
    else:
        lines += ["", "R/glmnet not available: comparison skipped (apt-get install r-cran-glmnet)."]
    return lines


if __name__ == "__main__":
    main()
