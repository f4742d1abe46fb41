"""Rule prepare_expression: the expression every predictor is judged on."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.expression import run_prepare_expression

run_prepare_expression(
    vcf=snakemake.input.vcf,
    genotype_pcs=snakemake.input.get("genotype_pcs"),
    **snakemake.output,
    **snakemake.params,
)
