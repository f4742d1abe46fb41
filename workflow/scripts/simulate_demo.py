"""Rule simulate_demo: the demo cohort (reference, phased VCF, genes, expression, truth, oracle)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.demo.simulate import run_simulate_demo

run_simulate_demo(
    list(snakemake.output),
    seed=snakemake.params.seed,
    n_individuals=snakemake.params.n_individuals,
    n_chromosomes=snakemake.params.n_chromosomes,
    chromosome_length=snakemake.params.chromosome_length,
    n_genes=snakemake.params.n_genes,
    window=snakemake.params.window,
    fit_window=snakemake.params.fit_window,
)
