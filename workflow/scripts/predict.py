"""Rule predict: one chunk of genes through one model (unique haplotypes only)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

import pandas as pd
import torch

from hapexp.genes import read_exons
from hapexp.haplotypes import HaplotypeIndex
from hapexp.inference import Predictor, predict_chunk, save_all_tracks
from hapexp.io import write_parquet, write_tsv

torch.set_num_threads(snakemake.threads)
spec = {**snakemake.params.spec, "name": snakemake.wildcards.model}
index = HaplotypeIndex.load(snakemake.input.index)
predictor = Predictor(spec)
exons = read_exons(snakemake.input.exons) if predictor.uses_exons else None
if exons is not None:
    missing = [g for g in index.genes["gene_id"] if g not in exons]
    if missing:
        log.warning("%d genes have no exons (their exon read-out is NaN), e.g. %s", len(missing), missing[:3])
tidy, all_tracks = predict_chunk(index, predictor, progress=True, exons=exons)
write_parquet(tidy, snakemake.output.table)
save_all_tracks(all_tracks, snakemake.output.tracks)
cols = ["gene_id", "exons", "exons_in_window", "exons_clipped", "exons_dropped", "exons_deleted", "exon_bins"]
write_tsv(pd.DataFrame(predictor.exon_stats, columns=cols), snakemake.output.exons)
log.info("wrote %d rows to %s", len(tidy), snakemake.output.table)
