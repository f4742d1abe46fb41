"""Rule gather_elasticnet: metrics, out-of-fold matrix, PredictDB db and covariances (hapexp.linear.predictdb)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import pandas as pd

from hapexp.io import read_matrix, write_matrix, write_tsv
from hapexp.linear.predictdb import extra_table, filter_models, write_covariances, write_db
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)
p = snakemake.params


def cat(files, **kw):
    parts = [pd.read_csv(f, sep="\t", **kw) for f in files]
    return pd.concat(parts, ignore_index=True)


metrics = cat(snakemake.input.metrics, dtype={"gene_id": str, "gene_name": str})
oof = pd.concat([read_matrix(f) for f in snakemake.input.oof])
weights = cat(snakemake.input.weights, dtype={"gene": str, "rsid": str, "varID": str})
cov = cat(snakemake.input.covariances, dtype={"GENE": str, "RSID1": str, "RSID2": str})
genes = pd.read_csv(snakemake.input.genes, sep="\t", dtype={"gene_id": str, "chrom": str, "gene_type": str})

kept = filter_models(metrics) if p.filter_db else metrics
gene_type = genes.set_index("gene_id")["gene_type"] if "gene_type" in genes.columns else "NA"
extra = extra_table(kept, gene_type)
log.info("%d genes fitted, %d with weights in the db (filter_db=%s)", len(metrics), len(extra), p.filter_db)
write_tsv(metrics, snakemake.output.metrics)
write_matrix(oof, snakemake.output.oof)
chroms = genes.loc[genes["gene_id"].isin(set(extra["gene"])), "chrom"]
write_db(snakemake.output.db, weights, extra, chroms, p.seed, oof.shape[1])
write_covariances(snakemake.output.covariances, cov, genes=extra["gene"])
