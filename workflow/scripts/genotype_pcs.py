"""Rule genotype_pcs: the cohort's genotype principal components, for the covariates."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.variants.genotype_pcs import run_genotype_pcs

run_genotype_pcs(**snakemake.input, **snakemake.output, **snakemake.params, threads=snakemake.threads)
