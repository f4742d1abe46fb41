"""Rule gather_eqtl: concatenate chunks; per-gene table with eGenes (q-values, nominal thresholds)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import json

import pandas as pd

from hapexp.io import atomic_output, concat_parquet, write_tsv
from hapexp.linear.egenes import egenes
from hapexp.linear.eqtl import NOMINAL_COLUMNS
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)
# Streamed chunk by chunk: the nominal pairs of a whole cohort need not fit in memory.
n_pairs = concat_parquet(snakemake.input.nominal, snakemake.output.nominal, NOMINAL_COLUMNS)
tops = [pd.read_csv(f, sep="\t") for f in snakemake.input.top]
top = pd.concat(tops, ignore_index=True) if any(len(t) for t in tops) else tops[0]
top, summary = egenes(top, fdr=snakemake.params.fdr)
log.info("%d pairs, %d genes", n_pairs, len(top))
if summary:
    log.info(
        "eGenes (permutations, Storey q <= %(fdr)g): %(egenes)d of %(genes)d; pi0 = %(pi0).3f (%(qvalue_method)s); "
        "genome-wide min-p threshold %(min_p_threshold)s",
        summary,
    )
else:
    log.warning("no permutations (eqtl.permutations: 0): no eGenes; concordance can only use bh_all_pairs")
write_tsv(top, snakemake.output.genes)
with atomic_output(snakemake.output.summary) as tmp:
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
