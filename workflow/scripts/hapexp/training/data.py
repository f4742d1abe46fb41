"""The training data of fine-tuning: genes rendered for chosen people, standardized expression,
and the seeded order of the steps of an epoch."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


class GeneSource:
    """Training genes of one or more haplotype indexes: renders a gene for chosen people."""

    def __init__(self, indexes, window: int, rc_minus: bool):
        self.window, self.rc_minus = int(window), bool(rc_minus)
        self.index_of, self.strand = {}, {}
        for idx in indexes:
            for gid, strand in zip(idx.genes["gene_id"].astype(str), idx.genes["strand"], strict=True):
                self.index_of[gid], self.strand[gid] = idx, strand
        self.samples = set().union(*(set(map(str, i.samples)) for i in indexes)) if indexes else set()

    def render(self, gid: str, people: list[str]):
        return self.index_of[gid].gene_haplotypes(gid, self.window, rc_minus=self.rc_minus, samples=people)


def standardize(expr: pd.DataFrame, people: list[str]) -> pd.DataFrame:
    """Per-gene z-scores over `people` (ddof 0); genes constant over them are dropped."""
    x = expr.loc[:, people]
    sd = x.std(axis=1, ddof=0)
    keep = sd > 0
    if (~keep).any():
        log.warning(
            "%d training genes are constant over the training people: not trained on", int((~keep).sum())
        )
    return x.loc[keep].sub(x.loc[keep].mean(axis=1), axis=0).div(sd[keep], axis=0)


def epoch_steps(genes: list[str], people: list[str], per_step: int, seed: int, epoch: int, stream=None):
    """The (gene, people) steps of one epoch: every gene × every training person once, in a
    seeded order that depends only on (seed, epoch[, stream]) — a resumed job replays it
    exactly (`stream`: one tissue's, when fine-tuning trains on several)."""
    rng = np.random.default_rng([int(seed), int(epoch)] + ([int(stream)] if stream is not None else []))
    steps = []
    for g in rng.permutation(len(genes)):
        order = rng.permutation(len(people))
        n_chunks = max(1, len(order) // per_step)
        for part in np.array_split(order, n_chunks):
            steps.append((genes[g], [people[i] for i in sorted(part)]))
    return [steps[i] for i in rng.permutation(len(steps))]
