"""Rendering one personal sequence window from the reference and a haplotype's edits.

Windows (docs/architecture.md): a model of length L sees the TSS at index L//2 in
gene orientation. The index stores a region larger than the largest window by the
most any haplotype can delete (plus a margin), so after an indel the window is
re-anchored on the TSS (net indel length upstream of it) and still filled with
personal sequence; only the ends of a chromosome are padded with N.
"""

from __future__ import annotations

import numpy as np

from hapexp.sequences.coords import personal_position
from hapexp.sequences.plan import Plan
from hapexp.sequences.windows import COMP, N


def render(
    ref_region: np.ndarray,
    plan: Plan,
    edits,
    snv_sel,
    anchor0: int,
    start_off: int,
    length: int,
    flip: bool = False,
    ref_rc: np.ndarray | None = None,
    out: np.ndarray | None = None,
):
    """Personal sequence window: `start_off` bases relative to the personal position of
    reference base `anchor0`; positions outside the personal region stay N.

    `edits` are non-overlapping, sorted `make_edit` tuples. With `flip` the window is
    written reverse-complemented directly (pieces land at mirrored positions, taken
    from `ref_rc`), which is cheaper than an RC pass. This is the hot loop: plain
    Python over the (few) length-changing edits, numpy for copies and SNVs.
    """
    a = plan.a
    if out is None:
        out = np.empty(length, dtype=np.uint8)
    t, deleted = personal_position(edits, anchor0, a)
    p0 = t + start_off
    p1 = p0 + length
    R = len(ref_region)
    # Pieces cover the personal region [0, personal length) contiguously: only the
    # parts of the window outside it (chromosome ends) need N, not the whole row.
    if p0 < 0 and not flip:
        out[: min(-p0, length)] = N
    covered = p1
    # Pieces in personal coordinates: ref [cur, s) then rep, for each edit.
    cur = a
    delta = 0  # personal - reference offset so far
    ends, cum = [], []

    def copy_reference(p: int, q: int, delta: int) -> None:
        """Reference bases at personal [p, q) (offset delta), clipped to the window."""
        lo = p if p > p0 else p0
        hi = q if q < p1 else p1
        if lo < hi:
            if flip:
                out[p1 - hi : p1 - lo] = ref_rc[R - (hi - delta) : R - (lo - delta)]
            else:
                out[lo - p0 : hi - p0] = ref_region[lo - delta : hi - delta]

    for s, e, rep, rep_rc, _ in edits:
        # reference piece [cur, s) at personal [cur - a + delta, s - a + delta)
        q = s - a + delta
        copy_reference(cur - a + delta, q, delta)
        n = len(rep)
        if n:
            lo = q if q > p0 else p0
            hi = q + n if q + n < p1 else p1
            if lo < hi:
                if flip:
                    out[p1 - hi : p1 - lo] = rep_rc[n - (hi - q) : n - (lo - q)]
                else:
                    out[lo - p0 : hi - p0] = rep[lo - q : hi - q]
        delta += n - (e - s)
        cur = e
        ends.append(e)
        cum.append(delta)
        if q + n >= p1:
            break
    else:
        q = plan.b - a + delta
        copy_reference(cur - a + delta, q, delta)
        covered = q
    if covered < p1:  # window runs past the personal region's end
        k = max(covered, p0) - p0
        if flip:
            out[: length - k] = N
        else:
            out[k:] = N
    if p0 < 0 and flip:  # the left pad of the forward window is on the right after RC
        out[length - min(-p0, length) :] = N
    if snv_sel is not None:
        q = plan.snv_q[snv_sel]
        if len(q):
            byte = plan.snv_byte[snv_sel]
            if ends:
                k = np.searchsorted(np.asarray(ends), q, side="right")
                d = np.concatenate([[0], cum])[k]
                # SNVs past the last edit visited (loop left early) keep its offset
            else:
                d = 0
            pp = q - a + d - p0
            ok = (pp >= 0) & (pp < length)
            if flip:
                out[length - 1 - pp[ok]] = COMP[byte[ok]]
            else:
                out[pp[ok]] = byte[ok]
    return out, t, deleted
