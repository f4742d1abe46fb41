"""Rule haplotypes: compact haplotype index of one chunk (no sequences on disk)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

from pathlib import Path

import pandas as pd

from hapexp.io import write_tsv
from hapexp.sequences.build import build_index
from hapexp.sequences.index import HaplotypeIndex

genes = pd.read_csv(snakemake.input.chunk, sep="\t", dtype={"chrom": str, "gene_id": str})
samples = Path(snakemake.input.samples).read_text().split()
window = int(snakemake.params.window)
counts = build_index(
    snakemake.input.bcf,
    snakemake.input.fasta,
    genes,
    window,
    snakemake.output.index,
    samples=samples,
    policies=snakemake.params.policies,
)
log.info(
    "policies %s: %s", snakemake.params.policies, ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
)
idx = HaplotypeIndex.load(snakemake.output.index)
ratio = idx.unique_ratio(window)
for r in ratio.itertuples():
    log.info(
        "%s: %d unique of %d haplotypes (%.3f); TSS deleted on %d haplotypes",
        r.gene_id, r.n_unique, r.n_haplotypes, r.unique_ratio, r.tss_deleted,
    )  # fmt: skip
if ratio["tss_deleted"].sum():
    log.info(
        "TSS deleted on %d haplotypes of %d genes: their windows are anchored on the first base "
        "after the deletion (docs/architecture.md)",
        int(ratio["tss_deleted"].sum()), int((ratio["tss_deleted"] > 0).sum()),
    )  # fmt: skip
write_tsv(ratio, snakemake.output.stats)
