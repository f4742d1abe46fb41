"""Rule normalize_variants: the cohort's records near its genes, normalized, REF checked."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.variants.normalize import run_normalize_variants

run_normalize_variants(
    **snakemake.input, bcf=snakemake.output.bcf, **snakemake.params, threads=snakemake.threads
)
