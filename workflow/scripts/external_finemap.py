"""Rule external_finemap: a unit's external credible sets in the fine-mapping layout."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.linear.finemap import run_external_finemap

run_external_finemap(**snakemake.input, **snakemake.output, **snakemake.params)
