"""Rule ism: in-silico mutagenesis of one chunk with one model."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.engine.ism import run_ism

run_ism(
    **snakemake.input,
    **snakemake.output,
    **snakemake.params,
    model=snakemake.wildcards.model,
    threads=snakemake.threads,
)
