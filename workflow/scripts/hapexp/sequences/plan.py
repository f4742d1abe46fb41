"""Planning a gene's haplotypes: which edits each haplotype carries over a region.

Exactness: applying variants follows `bcftools consensus -H 1pIu|2pIu` (1.16)
byte for byte over a region `[a, b)` (0-based half-open): records are applied in
file order; a record starting before `a` is ignored; a record starting after the
last base is ignored; one running past `b` is truncated to `b` (its ALT too); a
record overlapping the last applied one is skipped, except an indel sharing only
that last base (not after an insertion). Non-overlapping records are independent,
so they are applied as vectorized edits; only the rare overlapping clusters are
replayed with a literal port of bcftools' buffer logic (`hapexp.sequences.replay`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hapexp.sequences.coords import make_edit, record_blocks
from hapexp.sequences.replay import replay


@dataclass
class Plan:
    """Edits of one gene over a region [a, b), independent of the haplotype."""

    a: int
    b: int
    rows: np.ndarray  # global variant rows in the region (application order)
    snv_q: np.ndarray  # 0-based positions of simple same-length edits, one per base
    snv_byte: np.ndarray
    snv_row: np.ndarray  # local row (into rows) of each base
    ind_s: np.ndarray  # simple length-changing edits: [s, e) -> rep
    ind_e: np.ndarray
    ind_rep: list
    ind_row: np.ndarray
    ind_blocks: list  # aligned blocks of each simple length-changing edit (record_blocks)
    clusters: list  # (local rows, cs, ce)
    shift_bound: int  # max |net indel| any haplotype can have in the region


def plan_region(index, g: int, a: int, b: int) -> Plan:
    """The edits of gene `g` of a `hapexp.sequences.index.HaplotypeIndex` over the
    reference region [a, b) (0-based half-open, inside its stored region)."""
    vs, ve = int(index.arrays["g_vstart"][g]), int(index.arrays["g_vend"][g])
    rows = np.arange(vs, ve)
    pos = index.pos0[rows]
    m = (pos >= a) & (pos < b)  # bcftools ignores records starting outside the region
    rows, pos = rows[m], pos[m]
    rlen = np.minimum(index.rlen[rows], b - pos)
    alen = index.alen[rows]
    alen_eff = np.where(index.rlen[rows] > b - pos, np.minimum(alen, rlen), alen)
    end = pos + rlen - 1  # frozen position after applying
    prevmax = np.maximum.accumulate(np.concatenate([[-1], end]))[:-1]
    start_new = pos > prevmax
    cid = np.cumsum(start_new) - 1
    csize = np.bincount(cid, minlength=cid.max() + 1 if len(cid) else 0) if len(cid) else np.zeros(0, int)
    simple = csize[cid] == 1 if len(cid) else np.zeros(0, bool)
    same = simple & (rlen == alen_eff)
    indel = simple & ~same
    # same-length simple edits, one entry per base (MNPs expand)
    li = np.flatnonzero(same)
    reps = np.repeat(li, rlen[li])
    within = np.arange(len(reps)) - np.repeat(np.cumsum(rlen[li]) - rlen[li], rlen[li])
    alt_off = index.arrays["v_alt_off"]
    snv_q = pos[reps] + within
    snv_byte = index.arrays["v_alt"][alt_off[rows[reps]] + within] if len(reps) else np.zeros(0, np.uint8)
    ind = np.flatnonzero(indel)
    ind_rep = [index.allele("alt", int(rows[i]))[: int(alen_eff[i])] for i in ind]
    ind_blocks = [
        record_blocks(index.allele("ref", int(rows[i]))[: int(rlen[i])], r)
        for i, r in zip(ind, ind_rep, strict=True)
    ]
    clusters = []
    for c in np.flatnonzero(csize > 1):
        lr = np.flatnonzero(cid == c)
        clusters.append((lr, int(pos[lr].min()), int(min(b, (pos[lr] + index.rlen[rows[lr]]).max()))))
    shift = int(np.abs(index.rlen[rows] - alen).sum())
    return Plan(
        a, b, rows, snv_q, snv_byte, reps, pos[ind], pos[ind] + rlen[ind], ind_rep, ind, ind_blocks,
        clusters, shift,
    )  # fmt: skip


def haplotype_edits(index, g: int, plan: Plan, C: np.ndarray):
    """Per haplotype (columns of C [n_rows, n_h]): sorted edits (s, e, rep) and SNV mask."""
    n_h = C.shape[1]
    per_hap = [[] for _ in range(n_h)]
    for j, li in enumerate(plan.ind_row):
        edit = make_edit(int(plan.ind_s[j]), int(plan.ind_e[j]), plan.ind_rep[j], plan.ind_blocks[j])
        for h in np.flatnonzero(C[li]).tolist():
            per_hap[h].append(edit)
    for lr, cs, ce in plan.clusters:
        sub = C[lr]
        if not sub.any():
            continue
        pats, inv = np.unique(sub.T, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        ref = index.ref_bases(g, cs, ce).tobytes()
        for k, pat in enumerate(pats):
            if not pat.any():
                continue
            recs = [
                (
                    int(index.pos0[plan.rows[r]]),
                    index.allele("ref", int(plan.rows[r])),
                    index.allele("alt", int(plan.rows[r])),
                )
                for r in lr[pat]
            ]
            buf, _, blocks = replay(bytearray(ref), cs, recs, plan.b)
            edit = make_edit(cs, ce, bytes(buf), blocks)
            for h in np.flatnonzero(inv == k).tolist():
                per_hap[h].append(edit)
    for lst in per_hap:
        lst.sort(key=lambda x: x[0])
    snv_mask = C[plan.snv_row] if len(plan.snv_row) else np.zeros((0, n_h), bool)
    return per_hap, snv_mask
