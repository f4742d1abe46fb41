"""Checkpoint chunk_genes: split genes.tsv into chunks/{chunk}.tsv (sorted by chrom, tss)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

import shutil
from pathlib import Path

import pandas as pd
from hapexp.genes import write_chunks

genes = pd.read_csv(snakemake.input.genes, sep="\t", dtype={"chrom": str, "gene_id": str})
out = Path(snakemake.output[0])
tmp = out.with_name(f".{out.name}.tmp")
shutil.rmtree(tmp, ignore_errors=True)
ids = write_chunks(genes, tmp, int(snakemake.params.chunk_size))
shutil.rmtree(out, ignore_errors=True)
tmp.rename(out)  # the directory appears complete or not at all
log.info("%d genes in %d chunks of up to %d", len(genes), len(ids), snakemake.params.chunk_size)
