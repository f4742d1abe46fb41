"""The value fine-tuning trains: predict's per-person value, with gradients.

`sequence_values` takes the engine's read-out on the device
(hapexp.engine.predictor.Predictor.central_bins: the central bins of the selected tracks,
antisense pair tracks) and then aggregates like predict, in torch: bin aggregation,
the optional log(1 + x), the mean over tracks (hapexp.engine.readout.readout_values,
hapexp.engine.predict.aggregate_predictions); `person_values` adds the haplotype
aggregation. predict runs the same read-out in float64 numpy on the host.
"""

from __future__ import annotations

import numpy as np
import torch


def sequence_values(predictor, codes: torch.Tensor, tss, antisense: bool, tracks=None) -> torch.Tensor:
    """(B, L) uint8 codes on the device → (B,) per-haplotype values as predict computes them;
    `tracks`: positions among the predictor's tracks to average (one tissue's; None: all)."""
    s = predictor.spec
    n = codes.shape[0]
    start = predictor.bin_starts(tss, n).to(predictor.device)
    anti = torch.full((n,), bool(antisense), device=predictor.device)
    sel, _, _ = predictor.central_bins(codes, start, anti)
    sel = sel.float()
    v = sel.sum(1) if s["bin_aggregation"] == "sum" else sel.mean(1)
    if s["log"]:
        v = torch.log1p(v)
    return (v if tracks is None else v[:, list(tracks)]).mean(-1)


def person_values(predictor, gh, strand: str, tracks=None) -> torch.Tensor:
    """(people,) values of one gene's rendered haplotypes (GeneHaplotypes of those people);
    `tracks`: as sequence_values."""
    codes = torch.from_numpy(np.ascontiguousarray(gh.sequences)).to(predictor.device)
    antisense = (not bool(gh.flipped)) and strand == "-"
    per_seq = sequence_values(predictor, codes, int(gh.tss_index), antisense, tracks)
    hap = per_seq[torch.from_numpy(np.asarray(gh.hap_map, np.int64)).to(predictor.device)]  # (people, 2)
    return hap.mean(-1) if predictor.spec["haplotype_aggregation"] == "mean" else hap.sum(-1)
