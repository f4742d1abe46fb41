"""Edits of a haplotype and the map from reference to personal coordinates.

An edit is the tuple `make_edit` builds: reference `[s, e)` (0-based half-open) replaced
by `rep`, with its aligned blocks. Positions follow bcftools' chain (`-c chain.txt`,
docs/architecture.md): a reference base keeps its place in an aligned block; a
deleted base is placed on the first base after the deleted segment.
"""

from __future__ import annotations

import numpy as np

from hapexp.sequences.windows import COMP_TABLE


def make_edit(s: int, e: int, rep: bytes, blocks: tuple) -> tuple:
    """An edit of the reference: [s, e) (0-based) replaced by `rep`, with its RC ready, and
    `blocks` ((ref_off, rep_off, length), ...): the reference bases of [s, e) that stay
    aligned to bases of `rep` (bcftools' chain), which places a TSS inside the edit."""
    return (
        s,
        e,
        np.frombuffer(rep, np.uint8),
        np.frombuffer(rep.translate(COMP_TABLE)[::-1], np.uint8),
        blocks,
    )


def personal_position(edits, anchor0: int, a: int) -> tuple[int, bool]:
    """Position of reference base `anchor0` on a haplotype whose region starts at reference
    `a` (0-based), given its sorted edits; and whether that base is deleted there (see
    `anchor_in_edit` for where a deleted base is placed)."""
    t = anchor0 - a
    for i, (s, e, rep, _, blocks) in enumerate(edits):
        if e <= anchor0:
            t += len(rep) - (e - s)
        else:
            if s <= anchor0:
                off, deleted = anchor_in_edit(blocks, anchor0 - s, len(rep))
                t += off - (anchor0 - s)
                # Deleted up to the edit's end: when the next edit starts right there with
                # a gap, bcftools' chain merges both gaps (push_chain_gap), so the first
                # aligned base is the next edit's first aligned one.
                end = e
                while deleted and off == len(rep) and i + 1 < len(edits) and edits[i + 1][0] == end:
                    i += 1
                    s, e, rep, _, blocks = edits[i]
                    first, gap_first = anchor_in_edit(blocks, 0, len(rep))
                    if not gap_first:
                        break
                    off, end = first, e
                    t += first  # this edit starts where the previous one ended
                return t, deleted
            break
    return t, False


def map_positions(edits, pos0, a: int) -> tuple[np.ndarray, np.ndarray]:
    """`personal_position` of many reference bases at once (same chain semantics).

    Edits are sorted and disjoint, so those wholly before a base are a prefix: a
    searchsorted on their ends gives the shift; only bases inside an edit (rare) go
    through `personal_position` itself.
    """
    pos0 = np.asarray(pos0, dtype=np.int64)
    if not len(edits):
        return pos0 - a, np.zeros(pos0.shape, bool)
    starts = np.fromiter((e[0] for e in edits), np.int64, len(edits))
    ends = np.fromiter((e[1] for e in edits), np.int64, len(edits))
    cum = np.concatenate([[0], np.cumsum([len(e[2]) - (e[1] - e[0]) for e in edits])])
    k = np.searchsorted(ends, pos0, side="right")  # edits ending at or before each base
    t = pos0 - a + cum[k]
    deleted = np.zeros(pos0.shape, bool)
    inside = (k < len(edits)) & (starts[np.minimum(k, len(edits) - 1)] <= pos0)
    for i in np.flatnonzero(inside):
        t[i], deleted[i] = personal_position(edits, int(pos0[i]), a)
    return t, deleted


def map_intervals(edits, intervals0: np.ndarray, a: int) -> np.ndarray:
    """Reference intervals [start, end) (0-based, forward strand) → haplotype intervals.

    Chain semantics (docs/architecture.md): the start is the haplotype position of the
    first base, or of the first base after the deleted segment when it is deleted;
    the end is one past the haplotype position of the last base (insertions inside the
    interval are in it, an insertion right after its last base is not), or the first
    base after the deleted segment when the last base is deleted. An interval deleted
    whole becomes empty. Positions are relative to the haplotype's region start `a`.
    """
    iv = np.asarray(intervals0, dtype=np.int64).reshape(-1, 2)
    start, _ = map_positions(edits, iv[:, 0], a)
    last, deleted = map_positions(edits, iv[:, 1] - 1, a)
    end = last + (~deleted)
    return np.stack([start, np.maximum(end, start)], axis=1)


def record_blocks(ref: bytes, alt: bytes) -> tuple:
    """Aligned blocks of one record, as bcftools' chain has them: a same-length record is
    aligned base by base; an indel keeps only a first base shared by REF and ALT."""
    if len(ref) == len(alt):
        return ((0, 0, len(ref)),)
    return ((0, 0, 1),) if ref[:1] == alt[:1] else ()


def anchor_in_edit(blocks: tuple, k: int, n_rep: int) -> tuple[int, bool]:
    """Offset in `rep` of the edit's reference base `k` (0-based from the edit start), and
    whether that base is deleted (in a chain gap). Convention for a deleted base: the
    start of the next aligned block, i.e. the first base after the deleted segment."""
    for r, q, n in blocks:
        if r <= k < r + n:
            return q + (k - r), False
        if k < r:
            return q, True
    return n_rep, True
