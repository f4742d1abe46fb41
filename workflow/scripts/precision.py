"""Rule precision: gather the per-job precision budgets of a cohort (all models, predict and ism)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.engine.precision import read, summarize
from hapexp.io import write_tsv
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)
table = read(list(snakemake.input))
write_tsv(table, snakemake.output[0])
log.info("precision budget: %d audited gene rows\n%s", len(table), summarize(table).to_string())
