"""Rule gather_ism: concatenate a model's per-chunk ISM tables."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.engine.ism import gather
from hapexp.io import write_parquet
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)
df = gather(list(snakemake.input))
write_parquet(df, snakemake.output[0])
log.info("gathered %d ISM scores from %d chunks", len(df), len(snakemake.input))
