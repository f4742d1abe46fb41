"""Rule predict: one chunk of genes through one model (unique haplotypes only)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

import torch

from hapexp.haplotypes import HaplotypeIndex
from hapexp.inference import Predictor, predict_chunk, save_all_tracks
from hapexp.io import write_parquet

torch.set_num_threads(snakemake.threads)
spec = {**snakemake.params.spec, "name": snakemake.wildcards.model}
index = HaplotypeIndex.load(snakemake.input.index)
predictor = Predictor(spec)
tidy, all_tracks = predict_chunk(index, predictor, progress=True)
write_parquet(tidy, snakemake.output.table)
save_all_tracks(all_tracks, snakemake.output.tracks)
log.info("wrote %d rows to %s", len(tidy), snakemake.output.table)
