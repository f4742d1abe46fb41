"""Rule eqtl: nominal cis-eQTL scan (+ permutations) of one chunk of genes (hapexp.linear.eqtl)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import pandas as pd
from threadpoolctl import threadpool_limits

from hapexp.io import read_matrix, write_parquet, write_tsv
from hapexp.linear.eqtl import scan_genes
from hapexp.log import setup_rule_logging
from hapexp.variants.genotypes import chunk_dosages
from hapexp.variants.policy import filter_dosages, format_counts
from hapexp.variants.windows import resolve_window

log = setup_rule_logging(snakemake)
p = snakemake.params
expr = read_matrix(snakemake.input.prepared)
cov = read_matrix(snakemake.input.covariates, index_col="id")
genes = pd.read_csv(snakemake.input.chunk, sep="\t", dtype={"gene_id": str, "chrom": str})
window = resolve_window(p.window, p.models)
dosages, genes = chunk_dosages(snakemake.input.vcf, genes, window, list(expr.columns), p.maf)
dosages, counts = filter_dosages(dosages, p.policies)  # the run's one variant policy
log.info("variant policy %s: %s", p.policies, format_counts(counts))
log.info("%d genes, %d variants (window %s, maf >= %g)", len(genes), len(dosages), window, p.maf)
with threadpool_limits(limits=snakemake.threads):
    nominal, top = scan_genes(dosages, genes, expr, cov, permutations=p.permutations, seed=p.seed)
write_parquet(nominal, snakemake.output.nominal)
write_tsv(top, snakemake.output.top)
