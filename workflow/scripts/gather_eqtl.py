"""Rule gather_eqtl: concatenate chunks; per-gene table with q-values (hapexp.eqtl)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import pandas as pd

from hapexp.eqtl import NOMINAL_COLUMNS, add_qvalues
from hapexp.io import concat_parquet, write_tsv
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)
# Streamed chunk by chunk: the nominal pairs of a whole cohort need not fit in memory.
n_pairs = concat_parquet(snakemake.input.nominal, snakemake.output.nominal, NOMINAL_COLUMNS)
tops = [pd.read_csv(f, sep="\t") for f in snakemake.input.top]
top = pd.concat(tops, ignore_index=True) if any(len(t) for t in tops) else tops[0]
top = add_qvalues(top)
log.info("%d pairs, %d genes", n_pairs, len(top))
write_tsv(top, snakemake.output.genes)
