"""Rule simulate_demo: the demo cohort (reference, phased VCF, genes, expression, truth, oracle)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

from pathlib import Path

from hapexp.demo.simulate import OUTPUT_FILES, simulate_demo

p = snakemake.params
outdir = Path(snakemake.output.fasta).parent
expected = {str(outdir / name) for name in OUTPUT_FILES}
if expected != {str(Path(f)) for f in snakemake.output}:
    raise RuntimeError(f"rule outputs and hapexp.demo.simulate.OUTPUT_FILES disagree: {sorted(expected)}")
summary = simulate_demo(
    outdir,
    seed=int(p.seed),
    n_individuals=int(p.n_individuals),
    n_chromosomes=int(p.n_chromosomes),
    chromosome_length=int(p.chromosome_length),
    n_genes=int(p.n_genes),
    window=int(p.window),
    fit_window=None if p.fit_window is None else int(p.fit_window),
)
log.info("per-gene h2: %s", summary["h2"])
