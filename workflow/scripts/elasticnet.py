"""Rule elasticnet: PredictDB nested-CV elastic net for one chunk of genes (hapexp.linear.elasticnet)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import pandas as pd
from threadpoolctl import threadpool_limits

from hapexp.io import read_matrix, write_matrix, write_tsv
from hapexp.linear.elasticnet import fit_chunk
from hapexp.log import setup_rule_logging
from hapexp.variants.genotypes import chunk_dosages
from hapexp.variants.policy import filter_dosages, format_counts, predictdb_exclusions
from hapexp.variants.windows import resolve_window

log = setup_rule_logging(snakemake)
p = snakemake.params
expr = read_matrix(snakemake.input.prepared)
genes = pd.read_csv(snakemake.input.chunk, sep="\t", dtype={"gene_id": str, "chrom": str})
window = resolve_window(p.window, p.models)
dosages, genes = chunk_dosages(snakemake.input.vcf, genes, window, list(expr.columns), p.maf)
# The run's one variant policy (as for haplotypes, eQTL, ISM), then PredictDB's own
# exclusions (indels, strand-ambiguous SNPs) unless elasticnet.predictdb_exclusions: false.
dosages, counts = filter_dosages(dosages, p.policies)
log.info("variant policy %s: %s", p.policies, format_counts(counts))
if p.predictdb_exclusions:
    dosages, excluded = predictdb_exclusions(dosages)
    log.info("PredictDB exclusions: %s", format_counts(excluded))
log.info("%d genes, %d variants (window %s, maf >= %g)", len(genes), len(dosages), window, p.maf)
# Genes run in parallel forked processes (they inherit this limit): BLAS stays
# single-threaded to avoid oversubscription.
with threadpool_limits(limits=1):
    metrics, oof, weights, cov = fit_chunk(
        dosages,
        genes,
        expr,
        alpha=p.alpha,
        outer_folds=p.outer_folds,
        inner_folds=p.inner_folds,
        seed=p.seed,
        threads=snakemake.threads,
        thresh=p.thresh,
        build=p.build,
    )
write_tsv(metrics, snakemake.output.metrics)
write_matrix(oof, snakemake.output.oof)
write_tsv(weights, snakemake.output.weights)
write_tsv(cov, snakemake.output.covariances)
