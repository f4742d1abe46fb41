"""The producer side of predict: each gene's sequences rendered a batch at a time and cut
into work blocks that share batches across genes, plus the progress bar over sequences.

`work_items` yields what `hapexp.engine.predict.predict_chunk` consumes (through
hapexp.engine.prefetch, in a background thread): at most a batch of windows exists at
a time, so 524,288- and 1,048,576-bp windows fit in memory.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch


class Progress:
    """tqdm over sequences (seq/s, ETA) whose total is re-estimated as genes are read."""

    def __init__(self, n_genes: int, enabled: bool):
        self.n_genes, self.seen_genes, self.queued = n_genes, 0, 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            tty = sys.stderr.isatty()
            self.bar = tqdm(total=0, unit="seq", desc="predict", file=sys.stderr,
                            mininterval=0.5 if tty else 30, dynamic_ncols=tty)  # fmt: skip

    def add_gene(self, n_seqs: int):
        self.seen_genes += 1
        self.queued += n_seqs
        if self.bar is not None:
            left = self.n_genes - self.seen_genes
            self.bar.total = self.queued + math.ceil(left * self.queued / self.seen_genes)
            self.bar.refresh()

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def gene_rows(gh, dedup: bool):
    """Sequences to run for one gene, and where each haplotype / the reference reads its value.

    dedup=True: the index's unique haplotypes plus the reference when it is not one
    of them. dedup=False: every haplotype of every sample (the anchors' way).
    Returns (seqs [M, L], hap_rows [n_samples, 2], ref_row, exons per row or None).
    """
    seqs, hap_map, ref = np.asarray(gh.sequences), np.asarray(gh.hap_map), np.asarray(gh.reference)
    ex = getattr(gh, "exons", None)
    ref_ex = getattr(gh, "reference_exons", None)
    if dedup:
        same = np.flatnonzero((seqs == ref[None, :]).all(axis=1)) if len(seqs) else np.array([], int)
        if len(same):
            return seqs, hap_map, int(same[0]), ex
        return np.concatenate([seqs, ref[None, :]]), hap_map, len(seqs), None if ex is None else [*ex, ref_ex]
    flat = seqs[hap_map.ravel()]
    rows = np.arange(flat.shape[0]).reshape(hap_map.shape)
    rows_ex = None if ex is None else [ex[h] for h in hap_map.ravel()] + [ref_ex]
    return np.concatenate([flat, ref[None, :]]), rows, flat.shape[0], rows_ex


def gene_batches(index, gid, window, rc_minus, batch_size, dedup, exons):
    """(header, hap_rows, iterator of (seqs, exons per row) batches, ref_row getter) for one gene.

    With the real index and dedup, rows are rendered a batch at a time
    (`iter_gene_haplotypes`); the reference is appended unless a unique haplotype
    equals it. Other indexes (and dedup=False) render the gene at once.
    """
    kw = {} if exons is None else {"exons": exons}
    if dedup and hasattr(index, "iter_gene_haplotypes"):
        it = index.iter_gene_haplotypes(gid, window, batch_size=batch_size, rc_minus=rc_minus, **kw)
        head = next(it)
        state = {"ref_row": None, "n": len(head.tss_deleted)}

        def batches():
            for rows, seqs in it:
                if state["ref_row"] is None:
                    same = np.flatnonzero((seqs == head.reference[None, :]).all(axis=1))
                    if len(same):
                        state["ref_row"] = int(rows[same[0]])
                yield seqs, None if exons is None else [head.exons[r] for r in rows]
            if state["ref_row"] is None:  # the reference is not a cohort haplotype: run it too
                state["ref_row"] = state["n"]
                yield head.reference[None, :], None if exons is None else [head.reference_exons]

        return head, np.asarray(head.hap_map), batches(), lambda: state["ref_row"]
    gh = index.gene_haplotypes(gid, window, rc_minus=rc_minus, **kw)
    seqs, hap_rows, ref_row, rows_ex = gene_rows(gh, dedup)
    return gh, hap_rows, iter([(seqs, rows_ex)]), lambda: ref_row


def work_items(index, gene_ids, window, rc_minus, dedup, bs, n_samples, pin, exons, strands, exon_stats_of):
    """The producer: renders each gene's sequences (a batch at a time) and cuts them
    into work blocks.

    Yields ("block", seqs [k, L], tss [k], exons per row | None, antisense [k]) with k a
    multiple of `bs` (the last block: the rest), so that sequences of consecutive genes
    share batches, and ("gene", gene_id, hap_rows, ref_row, n_rows, exon stats | None)
    once a gene's rows are all queued (its rows precede it in the blocks). The same
    items in the same order whether it runs in the calling thread or ahead of it
    (prefetch); `pin`: blocks as pinned torch tensors, ready for asynchronous
    host→device copies.
    """
    use_exons = exons is not None
    pending = {"seqs": [], "tss": [], "exons": [], "anti": []}
    n_pending = 0

    def block(k):
        nonlocal n_pending
        cat = {
            key: (np.concatenate(v) if len(v) > 1 else v[0]) for key, v in pending.items() if key != "exons"
        }
        rows_ex = [iv for part in pending["exons"] for iv in part] if use_exons else None
        rest = k < n_pending
        for key in ("seqs", "tss", "anti"):
            pending[key] = [cat[key][k:]] if rest else []
        pending["exons"] = [rows_ex[k:]] if (rest and use_exons) else []
        n_pending -= k
        out = np.ascontiguousarray(cat["seqs"][:k])
        seqs = torch.from_numpy(out).pin_memory() if pin else out
        return ("block", seqs, cat["tss"][:k], None if rows_ex is None else rows_ex[:k], cat["anti"][:k])

    for gid in gene_ids:
        gene_ex = None
        if use_exons:
            gene_ex = np.asarray(exons.get(gid, np.zeros((0, 2), np.int64)), dtype=np.int64).reshape(-1, 2)
        head, hap_rows, batches, ref_row = gene_batches(index, gid, window, rc_minus, bs, dedup, gene_ex)
        if hap_rows.shape != (n_samples, 2):
            raise ValueError(f"gene {gid}: hap_map has shape {hap_rows.shape}, expected ({n_samples}, 2)")
        antisense = (not bool(getattr(head, "flipped", True))) and strands.get(gid, "+") == "-"
        stats = exon_stats_of(gid, head) if use_exons else None
        n_rows = 0
        for seqs, rows_ex in batches:
            m_rows = seqs.shape[0]
            pending["seqs"].append(seqs)
            pending["tss"].append(np.full(m_rows, int(head.tss_index), dtype=np.int64))
            pending["anti"].append(np.full(m_rows, antisense, dtype=bool))
            if use_exons:
                pending["exons"].append(rows_ex)
            n_pending += m_rows
            n_rows += m_rows
            if n_pending >= bs:
                yield block((n_pending // bs) * bs)
        yield ("gene", gid, hap_rows, ref_row(), n_rows, stats)
    if n_pending:
        yield block(n_pending)
