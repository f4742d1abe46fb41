"""Compact haplotype index, read side: reference windows + which variants each
haplotype carries (`results/{cohort}/haplotypes/{chunk}.npz`, written by
`hapexp.sequences.haplotypes.build_index`).

A cohort's personal sequences are never written to disk: `HaplotypeIndex` rebuilds
haplotypes in memory, vectorized, on demand (GenVarLoader-style): it plans a gene's
edits (`hapexp.sequences.plan`), deduplicates the haplotypes that give the same window,
and renders each unique one (`hapexp.sequences.render`). Coordinates: reference
positions 0-based; gene `tss` 1-based.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hapexp.sequences.coords import make_edit, map_intervals, personal_position, record_blocks
from hapexp.sequences.plan import haplotype_edits, plan_region
from hapexp.sequences.render import render
from hapexp.sequences.windows import N, orient_intervals, revcomp, tss_index
from hapexp.variants.windows import window_bounds


@dataclass
class GeneHaplotypes:
    sequences: np.ndarray  # uint8 [n_unique, length]
    hap_map: np.ndarray  # int32 [n_samples, 2]
    reference: np.ndarray  # uint8 [length]
    tss_index: int
    flipped: bool
    gene_id: str = ""
    # per unique haplotype: the TSS base itself is deleted there (the window is then
    # anchored on the first base after the deletion, see `anchor_in_edit`)
    tss_deleted: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # with `exons`: per unique haplotype, the gene's exons as [start, end) in this window's
    # coordinates (gene orientation; may run outside [0, length)), and the reference's
    exons: list | None = None
    reference_exons: np.ndarray | None = None

    @property
    def n_unique(self) -> int:
        return len(self.sequences)

    def haplotype(self, sample_index: int, hap: int) -> np.ndarray:
        """Sequence of one sample's haplotype (`hap` 1 or 2)."""
        return self.sequences[self.hap_map[sample_index, hap - 1]]


class HaplotypeIndex:
    """Read side of the compact index (`results/{cohort}/haplotypes/{chunk}.npz`).

    `arrays`: the file's arrays (see `hapexp.sequences.haplotypes.build_index`); `pos0`,
    `rlen`, `alen`: 0-based position, REF and ALT length of every stored variant row.
    """

    def __init__(self, arrays: dict, path=None):
        self.path = path
        self.arrays = arrays
        self.window = int(arrays["window"])
        self.samples = [str(s) for s in arrays["samples"]]
        self.genes = pd.DataFrame(
            {
                "gene_id": arrays["gene_id"].astype(str),
                "name": arrays["name"].astype(str),
                "chrom": arrays["chrom"].astype(str),
                "tss": arrays["tss"].astype(np.int64),
                "strand": arrays["strand"].astype(str),
            }
        )
        self._gi = {g: i for i, g in enumerate(self.genes["gene_id"])}
        self.counts = json.loads(str(arrays["counts"]))
        self.pos0 = arrays["v_pos0"]
        self.rlen = np.diff(arrays["v_ref_off"])
        self.alen = np.diff(arrays["v_alt_off"])
        self._nh = 2 * len(self.samples)

    @classmethod
    def load(cls, path) -> HaplotypeIndex:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(arrays, path)

    # ---------------------------------------------------------------- helpers
    def _g(self, gene_id) -> int:
        try:
            return self._gi[gene_id]
        except KeyError:
            raise KeyError(f"gene {gene_id!r} is not in this index ({self.path})") from None

    def ref_bases(self, g: int, a: int, b: int) -> np.ndarray:
        """Reference bases [a, b) (0-based) of gene `g`'s stored region, upper-case uint8."""
        s0 = int(self.arrays["reg_start0"][g])
        off = int(self.arrays["ref_off"][g])
        if a < s0 or b > int(self.arrays["reg_end0"][g]):
            raise ValueError(f"region [{a}, {b}) outside the stored region of gene {self.genes.gene_id[g]}")
        return self.arrays["ref_seq"][off + a - s0 : off + b - s0]

    def allele(self, kind: str, row: int) -> bytes:
        """REF (`kind` "ref") or ALT ("alt") of a stored variant row."""
        off = self.arrays[f"v_{kind}_off"]
        return self.arrays[f"v_{kind}"][off[row] : off[row + 1]].tobytes()

    def carried(self, gene_id) -> np.ndarray:
        """bool [n_variants_in_region, n_samples * 2] (column 2*s + hap-1) for the gene's region."""
        g = self._g(gene_id)
        vs, ve = int(self.arrays["g_vstart"][g]), int(self.arrays["g_vend"][g])
        return np.unpackbits(self.arrays["gts"][vs:ve], axis=1, count=self._nh).astype(bool)

    def _window(self, g: int, length: int):
        if length > self.window or length % 2:
            raise ValueError(f"window length {length} must be even and <= the index's {self.window}")
        strand = self.genes.strand[g]
        w0, w1 = window_bounds(self.genes.tss[g], strand, length)
        return strand, w0, w1

    # ---------------------------------------------------------------- public
    def _prepare(self, gene_id, length: int, samples=None):
        """Everything but the rendering: unique haplotypes, their edits, the sample map."""
        g = self._g(gene_id)
        strand, w0, w1 = self._window(g, length)
        a, b = int(self.arrays["reg_start0"][g]), int(self.arrays["reg_end0"][g])
        plan = plan_region(self, g, a, b)
        C = self.carried(gene_id)  # the plan keeps every row of the stored region
        if samples is not None:
            si = np.array([self.samples.index(s) for s in samples])
            C = C[:, np.stack([2 * si, 2 * si + 1], 1).reshape(-1)]
        # Haplotypes differing only by SNVs outside the window give the same sequence.
        pos = self.pos0[plan.rows]
        sh = plan.shift_bound
        relevant = (self.rlen[plan.rows] != self.alen[plan.rows]) | (
            (pos + self.rlen[plan.rows] > w0 - sh) & (pos < w1 + sh)
        )
        for lr, _, _ in plan.clusters:
            relevant[lr] = True
        key = np.packbits(C[relevant].T, axis=1) if relevant.any() else np.zeros((C.shape[1], 1), np.uint8)
        _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        # Unique rows in order of first appearance (deterministic, sample-ordered).
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        per_hap, snv_mask = haplotype_edits(self, g, plan, C[:, first[order]])
        tss0 = int(self.genes.tss[g]) - 1
        tss_deleted = np.array([personal_position(e, tss0, a)[1] for e in per_hap], dtype=bool)
        return {
            "g": g,
            "strand": strand,
            "plan": plan,
            "per_hap": per_hap,
            "snv_mask": snv_mask,
            "ref_region": self.ref_bases(g, a, b),
            "tss0": tss0,
            "start_off": w0 - tss0,
            "hap_map": rank[inv].reshape(-1, 2).astype(np.int32),
            "tss_deleted": tss_deleted,
        }

    def _exon_windows(self, P, exons0, length: int, flip: bool):
        """The gene's exons (reference [start0, end0) rows) in each unique haplotype's window
        and in the reference window, gene orientation; see `map_intervals`."""
        a = P["plan"].a
        iv = np.asarray(exons0, dtype=np.int64).reshape(-1, 2)

        def window(edits):
            t, _ = personal_position(edits, P["tss0"], a)
            w = map_intervals(edits, iv, a) - (t + P["start_off"])
            return orient_intervals(w, length, flip)

        return [window(e) for e in P["per_hap"]], window([])

    def _render_rows(self, P, rows, length, flip):
        out = np.empty((len(rows), length), dtype=np.uint8)
        ref_rc = revcomp(P["ref_region"]) if flip else None
        for k, h in enumerate(rows):
            render(
                P["ref_region"],
                P["plan"],
                P["per_hap"][h],
                P["snv_mask"][:, h],
                P["tss0"],
                P["start_off"],
                length,
                flip,
                ref_rc,
                out[k],
            )
        return out

    def gene_haplotypes(
        self, gene_id, length: int, rc_minus: bool = True, samples=None, exons=None
    ) -> GeneHaplotypes:
        """Unique personal sequences of a gene's TSS-centred window, with the sample map.

        `samples` (default: all of the index) restricts and orders `hap_map`'s rows.
        `exons` (reference [start0, end0) rows, 0-based half-open): also map them onto
        every unique haplotype's window (`GeneHaplotypes.exons`).
        """
        P = self._prepare(gene_id, length, samples)
        flip = bool(rc_minus and P["strand"] == "-")
        seqs = self._render_rows(P, range(len(P["per_hap"])), length, flip)
        return self._gene_haplotypes(P, seqs, gene_id, length, rc_minus, flip, exons)

    def _gene_haplotypes(self, P, seqs, gene_id, length, rc_minus, flip, exons) -> GeneHaplotypes:
        """`GeneHaplotypes` of a prepared gene holding `seqs`, with its reference window."""
        reference, _, _ = render(P["ref_region"], P["plan"], [], None, P["tss0"], P["start_off"], length)
        if flip:
            reference = revcomp(reference)
        ex, ref_ex = self._exon_windows(P, exons, length, flip) if exons is not None else (None, None)
        return GeneHaplotypes(
            seqs,
            P["hap_map"],
            reference,
            tss_index(P["strand"], length, rc_minus),
            flip,
            gene_id,
            P["tss_deleted"],
            ex,
            ref_ex,
        )

    def reference_window(self, gene_id, length: int, rc_minus: bool = True) -> tuple[np.ndarray, int]:
        """The reference-genome window of a gene (gene orientation when flipped) and its
        0-based TSS index, without planning or rendering any personal haplotype."""
        g = self._g(gene_id)
        strand, w0, w1 = self._window(g, length)
        a, b = int(self.arrays["reg_start0"][g]), int(self.arrays["reg_end0"][g])
        out = np.full(length, N, dtype=np.uint8)
        lo, hi = max(w0, a), min(w1, b)  # outside the stored region = off the chromosome: N
        if lo < hi:
            out[lo - w0 : hi - w0] = self.ref_bases(g, lo, hi)
        if rc_minus and strand == "-":
            out = revcomp(out)
        return out, tss_index(strand, length, rc_minus)

    def iter_gene_haplotypes(
        self, gene_id, length: int, batch_size: int = 64, rc_minus: bool = True, samples=None, exons=None
    ):
        """Like `gene_haplotypes` but memory-bounded: yields (GeneHaplotypes with an empty
        `sequences` and `n_unique` rows to come, first) once, then (row indices, uint8
        [batch, length]) batches: at most `batch_size` windows exist at a time."""
        P = self._prepare(gene_id, length, samples)
        flip = bool(rc_minus and P["strand"] == "-")
        yield self._gene_haplotypes(
            P, np.zeros((0, length), np.uint8), gene_id, length, rc_minus, flip, exons
        )
        n = len(P["per_hap"])
        for s in range(0, n, batch_size):
            rows = np.arange(s, min(s + batch_size, n))
            yield rows, self._render_rows(P, rows, length, flip)

    def variants(self, gene_id, length: int) -> pd.DataFrame:
        """Variants (after policies) whose position lies in the gene's reference window; an
        identical record seen twice (indels left-aligned onto one another) is listed once."""
        g = self._g(gene_id)
        _, w0, w1 = self._window(g, length)
        vs, ve = int(self.arrays["g_vstart"][g]), int(self.arrays["g_vend"][g])
        rows = np.arange(vs, ve)
        pos = self.pos0[rows]
        rows = rows[(pos >= w0) & (pos < w1)]
        ref = [self.allele("ref", int(r)).decode() for r in rows]
        alt = [self.allele("alt", int(r)).decode() for r in rows]
        chrom = self.arrays["v_chrom"][rows].astype(str)
        pos1 = self.pos0[rows] + 1
        return pd.DataFrame(
            {
                "variant_id": [f"{c}_{p}_{r}_{x}" for c, p, r, x in zip(chrom, pos1, ref, alt, strict=True)],
                "chrom": chrom,
                "pos": pos1.astype(np.int64),
                "ref": ref,
                "alt": alt,
                "af": self.arrays["v_af"][rows].astype(float),
                "is_snv": [len(r) == 1 and len(x) == 1 for r, x in zip(ref, alt, strict=True)],
                "row": rows,
            }
        ).drop_duplicates("variant_id", ignore_index=True)

    def single_variant_sequences(self, gene_id, length: int, variant_ids, rc_minus: bool = True, exons=None):
        """Reference window with only one variant applied (TSS re-anchored), per variant id.

        With `exons` (reference [start0, end0) rows) also returns, per variant, the exons
        in that window's coordinates (`map_intervals`): (sequences, [intervals, ...]).
        """
        g = self._g(gene_id)
        strand, w0, w1 = self._window(g, length)
        a, b = int(self.arrays["reg_start0"][g]), int(self.arrays["reg_end0"][g])
        vt = self.variants(gene_id, length)
        by_id = dict(zip(vt["variant_id"], vt["row"], strict=True))
        plan = plan_region(self, g, a, b)
        ref_region = self.ref_bases(g, a, b)
        tss0 = int(self.genes.tss[g]) - 1
        out = np.empty((len(variant_ids), length), dtype=np.uint8)
        flip = bool(rc_minus and strand == "-")
        ex_out = []
        for i, vid in enumerate(variant_ids):
            if vid not in by_id:
                raise KeyError(f"variant {vid} is not in the {length}-bp window of {gene_id}")
            r = int(by_id[vid])
            p = int(self.pos0[r])
            ref = self.allele("ref", r)[: b - p]
            alt = self.allele("alt", r)
            if len(ref) < self.rlen[r] and len(alt) > len(ref):
                alt = alt[: len(ref)]
            edit = [make_edit(p, p + len(ref), alt, record_blocks(ref, alt))]
            out[i], t, _ = render(ref_region, plan, edit, None, tss0, w0 - tss0, length)
            if exons is not None:
                w = map_intervals(edit, exons, a) - (t + w0 - tss0)
                ex_out.append(orient_intervals(w, length, flip))
        if flip:
            out = revcomp(out)
        return (out, ex_out) if exons is not None else out

    def consensus(self, gene_id, sample: str, hap: int, start0: int, end0: int) -> bytes:
        """`bcftools consensus -H {hap}pIu -s sample` of the region [start0, end0) (no re-anchoring)."""
        g = self._g(gene_id)
        si = self.samples.index(sample)
        plan = plan_region(self, g, start0, end0)
        C = self.carried(gene_id)
        C = C[plan.rows - int(self.arrays["g_vstart"][g])][:, [2 * si + hap - 1]]
        per_hap, snv_mask = haplotype_edits(self, g, plan, C)
        ref_region = self.ref_bases(g, start0, end0)
        total = (end0 - start0) + sum(len(r) - (e - s) for s, e, r, _, _ in per_hap[0])
        # from the haplotype's first base, even when the region's first reference base is deleted
        back = -personal_position(per_hap[0], start0, start0)[0]
        seq, _, _ = render(ref_region, plan, per_hap[0], snv_mask[:, 0], start0, back, total)
        return seq.tobytes()

    def unique_ratio(self, length: int | None = None) -> pd.DataFrame:
        """Per gene: unique haplotypes / total haplotypes at `length` (default: the index
        window), and how many haplotypes have the TSS base deleted (`tss_deleted`)."""
        length = length or self.window
        rows = []
        for gid in self.genes["gene_id"]:
            P = self._prepare(gid, length)  # no sequence is rendered
            n = len(P["per_hap"])
            n_del = int(P["tss_deleted"][P["hap_map"]].sum()) if n else 0
            rows.append((gid, n, self._nh, n / max(self._nh, 1), n_del))
        return pd.DataFrame(
            rows, columns=["gene_id", "n_unique", "n_haplotypes", "unique_ratio", "tss_deleted"]
        )
