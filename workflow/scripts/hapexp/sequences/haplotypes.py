"""Compact haplotype index: reference windows + which variants each haplotype carries.

A cohort's personal sequences are never written to disk. Per chunk of genes,
`build_index` stores (GenVarLoader-style) the reference around each gene, the
chunk's variants and a bit matrix of which haplotype carries which variant;
`HaplotypeIndex` rebuilds haplotypes in memory, vectorized, on demand.

Exactness: applying variants follows `bcftools consensus -H 1pIu|2pIu` (1.16)
byte for byte over a region `[a, b)` (0-based half-open): records are applied in
file order; a record starting before `a` is ignored; a record starting after the
last base is ignored; one running past `b` is truncated to `b` (its ALT too); a
record overlapping the last applied one is skipped, except an indel sharing only
that last base (not after an insertion). Non-overlapping records are independent,
so they are applied as vectorized edits; only the rare overlapping clusters are
replayed with a literal port of bcftools' buffer logic (`_replay`).

Windows (docs/architecture.md): a model of length L sees the TSS at index L//2 in
gene orientation. The index stores a region larger than the largest window by the
most any haplotype can delete (plus a margin), so after an indel the window is
re-anchored on the TSS (net indel length upstream of it) and still filled with
personal sequence; only the ends of a chromosome are padded with N.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hapexp.errors import InputError
from hapexp.io import atomic_output
from hapexp.variants.policy import POLICY_DEFAULTS, record_mask

log = logging.getLogger(__name__)

N = ord("N")
_COMP = np.full(256, N, dtype=np.uint8)
for _a, _b in zip(b"ACGTNacgtn", b"TGCANTGCAN", strict=True):
    _COMP[_a] = _b
_ACGTN = set(b"ACGTN")
FORMAT_VERSION = 1


_COMP_TABLE = _COMP.tobytes()


def revcomp(seq: np.ndarray) -> np.ndarray:
    """Reverse complement of uint8 ASCII sequence(s) along the last axis."""
    # bytes.translate is ~10x faster than a numpy lookup-table gather on uint8.
    flipped = np.ascontiguousarray(seq[..., ::-1])
    return np.frombuffer(flipped.tobytes().translate(_COMP_TABLE), dtype=np.uint8).reshape(seq.shape)


def window_bounds(tss: int, strand: str, length: int) -> tuple[int, int]:
    """0-based half-open reference window of a gene (1-based `tss`), forward strand."""
    tss0 = int(tss) - 1
    shift = 1 if strand == "-" else 0
    return tss0 - length // 2 + shift, tss0 + length // 2 + shift


def tss_index(strand: str, length: int, rc_minus: bool) -> int:
    return length // 2 - 1 if (strand == "-" and not rc_minus) else length // 2


# ====================================================================== build
def apply_policies(variants, alleles, phased, ploidy, policies: dict, source, samples):
    """Filter records and genotypes by the configured policies; every decision counted.

    Records: `hapexp.variants.policy.record_mask` (shared with the eQTL scan and the
    elastic net). Returns (variants [+ af, is_snv], carried bool [n_var, n_samples, 2], Counter).
    """
    p = {**POLICY_DEFAULTS, **(policies or {})}
    if (alleles > 1).any():
        i = int(np.argwhere(alleles > 1)[0][0])
        r = variants.iloc[i]
        raise InputError(
            source,
            "multi-allelic record not split",
            "Use the normalized BCF (rule normalize_variants: bcftools norm -m -any)",
            where=f"record {r.chrom}:{r.pos0 + 1}",
        )
    # Allele frequency over the index's samples, before any genotype policy.
    called = alleles >= 0
    n_called = called.sum(axis=(1, 2))
    af = np.where(n_called > 0, (alleles == 1).sum(axis=(1, 2)) / np.maximum(n_called, 1), 0.0)
    keep, counts = record_mask(variants["ref"], variants["alt"], af, p)
    ref = variants["ref"].str.upper()
    alt = variants["alt"].str.upper()
    is_snv = ((ref.str.len() == 1) & (alt.str.len() == 1)).to_numpy()
    variants = variants[keep].reset_index(drop=True).copy()
    alleles, phased, ploidy, af = alleles[keep], phased[keep], ploidy[keep], af[keep]
    variants["ref"], variants["alt"] = ref[keep].to_numpy(), alt[keep].to_numpy()
    variants["af"], variants["is_snv"] = af, is_snv[keep]

    missing = alleles < 0
    counts["missing_alleles"] = int(missing.sum())
    if missing.any():
        if p["missing"] == "error":
            i, s, _ = np.argwhere(missing)[0]
            r = variants.iloc[i]
            raise InputError(
                source,
                f"{int(missing.sum())} missing genotype alleles (e.g. sample {samples[s]})",
                "Set `variants.missing: ref` to read them as reference, or impute the VCF",
                where=f"record {r.chrom}:{r.pos0 + 1}",
            )
        alleles = np.where(missing, 0, alleles)
    het_unphased = (~phased) & (ploidy == 2) & (alleles[:, :, 0] != alleles[:, :, 1])
    counts["unphased_heterozygous"] = int(het_unphased.sum())
    counts["unphased_homozygous"] = int(((~phased) & (ploidy == 2)).sum() - het_unphased.sum())
    if het_unphased.any():
        if p["unphased"] == "error":
            i, s = np.argwhere(het_unphased)[0]
            r = variants.iloc[i]
            raise InputError(
                source,
                f"{int(het_unphased.sum())} unphased heterozygous genotypes (e.g. sample {samples[s]})",
                "Phase the VCF (SHAPEIT/Eagle/Beagle), or set `variants.unphased: ref` to read them as reference",
                where=f"record {r.chrom}:{r.pos0 + 1}",
            )
        if p["unphased"] == "ref":
            alleles = np.where(het_unphased[:, :, None], 0, alleles)
        # "first": keep the written order, i.e. what `bcftools consensus -H 1/-H 2` does.
    counts["variants_kept"] = len(variants)
    return variants, alleles == 1, counts


def _deletion_need(pos0, rlen, alen, lo, hi) -> int:
    """Most bases any haplotype can lose among records starting in [lo, hi)."""
    m = (pos0 >= lo) & (pos0 < hi)
    return int(np.clip(rlen[m] - alen[m], 0, None).sum())


def index_regions(genes: pd.DataFrame, window: int, chrom_len: dict, variants=None, margin: int = 64):
    """Stored region of each gene: both strands' windows + deletion-proof flanks, clipped."""
    out = []
    for g in genes.itertuples(index=False):
        tss0 = int(g.tss) - 1
        lo, hi = tss0 - window // 2, tss0 + window // 2 + 1  # covers + and - windows
        fl = fr = margin
        if variants is not None:
            v = variants[variants["chrom"] == g.chrom]
            pos0, rlen, alen = (
                v["pos0"].to_numpy(),
                v["ref"].str.len().to_numpy(),
                v["alt"].str.len().to_numpy(),
            )
            maxr = int(rlen.max()) if len(rlen) else 1
            for _ in range(20):  # grow until the flank covers the deletions inside it
                nl = margin + maxr + _deletion_need(pos0, rlen, alen, lo - fl, tss0)
                nr = margin + maxr + _deletion_need(pos0, rlen, alen, tss0, hi + fr)
                if nl <= fl and nr <= fr:
                    break
                fl, fr = max(fl, nl), max(fr, nr)
        n = chrom_len[g.chrom]
        out.append((max(lo - fl, 0), min(hi + fr, n)))
    return out


def build_index(
    bcf,
    fasta,
    genes: pd.DataFrame,
    window: int,
    out_path,
    samples: list[str] | None = None,
    policies: dict | None = None,
    initial_flank: int | None = None,
) -> Counter:
    """Build and write the compact haplotype index of `genes` (one chunk) to `out_path` (.npz)."""
    import pysam

    from hapexp.variants.files import fasta_lengths, vcf_samples
    from hapexp.variants.genotypes import read_genotypes

    genes = genes.reset_index(drop=True).copy()
    genes["tss"] = genes["tss"].astype(np.int64)
    if "name" not in genes:
        genes["name"] = genes["gene_id"]
    chrom_len = fasta_lengths(fasta)
    samples = list(vcf_samples(bcf) if samples is None else samples)
    flank = initial_flank if initial_flank is not None else max(2048, window // 16)
    while True:
        pre = index_regions(genes, window + 2 * flank, chrom_len)
        reg = pd.DataFrame(
            {"chrom": genes["chrom"], "start0": [r[0] for r in pre], "end0": [r[1] for r in pre]}
        )
        variants, alleles, phased, ploidy = read_genotypes(bcf, reg, samples)
        variants, carried, counts = apply_policies(variants, alleles, phased, ploidy, policies, bcf, samples)
        regions = index_regions(genes, window, chrom_len, variants)
        # The read flank must contain each final region, else read more.
        if all(r[0] >= p[0] and r[1] <= p[1] for r, p in zip(regions, pre, strict=True)):
            break
        flank *= 4
    # Variants sorted by chrom (gene order), pos, file order; gene ranges are contiguous.
    chrom_rank = {c: i for i, c in enumerate(dict.fromkeys(genes["chrom"]))}
    variants["crank"] = variants["chrom"].map(chrom_rank).fillna(len(chrom_rank)).astype(int)
    order = np.lexsort(
        (variants["order"].to_numpy(), variants["pos0"].to_numpy(), variants["crank"].to_numpy())
    )
    variants = variants.iloc[order].reset_index(drop=True)
    carried = carried[order]
    vstart, vend = [], []
    key_c, key_p = variants["crank"].to_numpy(), variants["pos0"].to_numpy()
    for g, (s, e) in zip(genes.itertuples(index=False), regions, strict=True):
        c = chrom_rank[g.chrom]
        lo = np.searchsorted(key_c, c, "left")
        hi = np.searchsorted(key_c, c, "right")
        vstart.append(lo + np.searchsorted(key_p[lo:hi], s, "left"))
        vend.append(lo + np.searchsorted(key_p[lo:hi], e, "left"))
    # Reference of each region, upper case (soft-masking is not sequence).
    refs = []
    with pysam.FastaFile(str(fasta)) as fa:
        for g, (s, e) in zip(genes.itertuples(index=False), regions, strict=True):
            refs.append(np.frombuffer(fa.fetch(g.chrom, s, e).upper().encode(), dtype=np.uint8))
    ref_off = np.concatenate([[0], np.cumsum([len(r) for r in refs])]).astype(np.int64)
    ns = len(samples)
    bits = (
        np.packbits(carried.reshape(len(variants), 2 * ns), axis=1)
        if len(variants)
        else np.zeros((0, (2 * ns + 7) // 8), np.uint8)
    )
    ref_b = [s.encode() for s in variants["ref"]]
    alt_b = [s.encode() for s in variants["alt"]]
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "window": np.array(window),
        "samples": np.array(samples, dtype=str),
        "gene_id": genes["gene_id"].astype(str).to_numpy(dtype=str),
        "name": genes["name"].astype(str).to_numpy(dtype=str),
        "chrom": genes["chrom"].astype(str).to_numpy(dtype=str),
        "tss": genes["tss"].to_numpy(np.int64),
        "strand": genes["strand"].astype(str).to_numpy(dtype=str),
        "chrom_len": np.array([chrom_len[c] for c in genes["chrom"]], dtype=np.int64),
        "reg_start0": np.array([r[0] for r in regions], dtype=np.int64),
        "reg_end0": np.array([r[1] for r in regions], dtype=np.int64),
        "ref_seq": np.concatenate(refs) if refs else np.zeros(0, np.uint8),
        "ref_off": ref_off,
        "v_chrom": variants["chrom"].astype(str).to_numpy(dtype=str),
        "v_pos0": variants["pos0"].to_numpy(np.int64),
        "v_ref": np.frombuffer(b"".join(ref_b), dtype=np.uint8),
        "v_ref_off": np.concatenate([[0], np.cumsum([len(x) for x in ref_b])]).astype(np.int64),
        "v_alt": np.frombuffer(b"".join(alt_b), dtype=np.uint8),
        "v_alt_off": np.concatenate([[0], np.cumsum([len(x) for x in alt_b])]).astype(np.int64),
        "v_af": variants["af"].to_numpy(np.float32),
        "gts": bits,
        "g_vstart": np.array(vstart, dtype=np.int64),
        "g_vend": np.array(vend, dtype=np.int64),
        "counts": np.array(json.dumps(dict(counts), sort_keys=True)),
    }
    # Uncompressed: zlib on the reference would cost more than the whole build.
    with atomic_output(out_path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return counts


# ====================================================================== replay
def _replay(buf: bytearray, ori: int, recs, region_end: int) -> tuple[bytearray, int, tuple]:
    """Apply `recs` [(pos0, REF, ALT), ...] to `buf` (reference from 0-based `ori`) like bcftools.

    A literal port of apply_variant() of bcftools 1.16 consensus.c for the overlap
    cases (frozen position, prev_base special case, insertion `ibeg`), and of its
    chain output (`push_chain_gap`, `-c chain.txt`): which reference bases stay
    aligned to which bases of the result. `buf` ends at `region_end` when a record
    may run past it. Returns (buffer, records skipped, aligned blocks) with blocks
    ((ref_off, alt_off, length), ...) relative to `ori` and the buffer start.
    """
    frz, prev_is_insert, prev_base_pos, prev_base = -1, False, -1, 0
    mod_off, skipped = 0, 0
    ref_len0 = len(buf)
    # chain state (absolute coordinates): gaps after each block, start of the next block
    gaps: list[list[int]] = []  # [block_length, ref_gap, alt_gap]
    ref_last = ori
    for pos, ref, alt in recs:
        rlen = len(ref)
        indel = len(ref) != len(alt)
        trim_beg = 1 if (indel and ref[0] == alt[0]) else 0
        if pos <= frz and (pos < frz or not trim_beg or prev_is_insert):
            skipped += 1
            continue
        idx = pos - ori + mod_off
        if idx < 0:
            skipped += 1
            continue
        if rlen > len(buf) - idx:
            rlen = len(buf) - idx
            if len(alt) > rlen:
                alt = alt[:rlen]
        if buf[idx : idx + rlen] != ref[:rlen]:
            ok = (
                prev_base_pos == pos
                and ref[0] == prev_base
                and (rlen == 1 or ref[1:rlen] == buf[idx + 1 : idx + rlen])
            )
            if not ok:  # bcftools aborts here; skip the record instead
                skipped += 1
                continue
        alen = len(alt)
        len_diff = alen - rlen
        if len_diff <= 0:
            prev_base = buf[idx + rlen - 1]
            prev_base_pos = pos + rlen - 1
            prev_is_insert = False
            buf[idx + trim_beg : idx + rlen] = alt[trim_beg:]
        else:
            prev_is_insert = True
            prev_base_pos = pos
            ibeg = 1 if ref[0] == alt[0] else 0
            buf[idx + ibeg : idx + rlen] = alt[ibeg:]
        if len_diff:
            # push_chain_gap: an indel sharing its first base with ALT keeps that base aligned
            if alt[:1] == ref[:1]:
                g_ref, g_rlen, g_alen = pos + 1, rlen - 1, alen - 1
            else:
                g_ref, g_rlen, g_alen = pos, rlen, alen
            if gaps and g_ref <= ref_last:  # back to back with the previous gap: one gap
                gaps[-1][1] += g_rlen
                gaps[-1][2] += g_alen
            else:
                gaps.append([g_ref - ref_last, g_rlen, g_alen])
            ref_last = g_ref + g_rlen
        mod_off += len_diff
        frz = pos + rlen - 1
    blocks, r, q = [], 0, 0
    for n, rg, ag in gaps:
        blocks.append((r, q, n))
        r, q = r + n + rg, q + n + ag
    blocks.append((r, q, ref_len0 - r))
    return buf, skipped, tuple(blocks)


# ====================================================================== index
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


@dataclass
class _Plan:
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


def _edit(s: int, e: int, rep: bytes, blocks: tuple) -> tuple:
    """An edit of the reference: [s, e) (0-based) replaced by `rep`, with its RC ready, and
    `blocks` ((ref_off, rep_off, length), ...): the reference bases of [s, e) that stay
    aligned to bases of `rep` (bcftools' chain), which places a TSS inside the edit."""
    return (
        s,
        e,
        np.frombuffer(rep, np.uint8),
        np.frombuffer(rep.translate(_COMP_TABLE)[::-1], np.uint8),
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


class HaplotypeIndex:
    """Read side of the compact index (`results/{cohort}/haplotypes/{chunk}.npz`)."""

    def __init__(self, arrays: dict, path=None):
        self.path = path
        self._a = arrays
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
        self._pos0 = arrays["v_pos0"]
        self._rlen = np.diff(arrays["v_ref_off"])
        self._alen = np.diff(arrays["v_alt_off"])
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

    def _ref(self, g: int, a: int, b: int) -> np.ndarray:
        s0 = int(self._a["reg_start0"][g])
        off = int(self._a["ref_off"][g])
        if a < s0 or b > int(self._a["reg_end0"][g]):
            raise ValueError(f"region [{a}, {b}) outside the stored region of gene {self.genes.gene_id[g]}")
        return self._a["ref_seq"][off + a - s0 : off + b - s0]

    def _allele(self, kind: str, row: int) -> bytes:
        off = self._a[f"v_{kind}_off"]
        return self._a[f"v_{kind}"][off[row] : off[row + 1]].tobytes()

    def carried(self, gene_id) -> np.ndarray:
        """bool [n_variants_in_region, n_samples * 2] (column 2*s + hap-1) for the gene's region."""
        g = self._g(gene_id)
        vs, ve = int(self._a["g_vstart"][g]), int(self._a["g_vend"][g])
        return np.unpackbits(self._a["gts"][vs:ve], axis=1, count=self._nh).astype(bool)

    def _plan(self, g: int, a: int, b: int) -> _Plan:
        vs, ve = int(self._a["g_vstart"][g]), int(self._a["g_vend"][g])
        rows = np.arange(vs, ve)
        pos = self._pos0[rows]
        m = (pos >= a) & (pos < b)  # bcftools ignores records starting outside the region
        rows, pos = rows[m], pos[m]
        rlen = np.minimum(self._rlen[rows], b - pos)
        alen = self._alen[rows]
        alen_eff = np.where(self._rlen[rows] > b - pos, np.minimum(alen, rlen), alen)
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
        alt_off = self._a["v_alt_off"]
        snv_q = pos[reps] + within
        snv_byte = self._a["v_alt"][alt_off[rows[reps]] + within] if len(reps) else np.zeros(0, np.uint8)
        ind = np.flatnonzero(indel)
        ind_rep = [self._allele("alt", int(rows[i]))[: int(alen_eff[i])] for i in ind]
        ind_blocks = [
            record_blocks(self._allele("ref", int(rows[i]))[: int(rlen[i])], r)
            for i, r in zip(ind, ind_rep, strict=True)
        ]
        clusters = []
        for c in np.flatnonzero(csize > 1):
            lr = np.flatnonzero(cid == c)
            clusters.append((lr, int(pos[lr].min()), int(min(b, (pos[lr] + self._rlen[rows[lr]]).max()))))
        shift = int(np.abs(self._rlen[rows] - alen).sum())
        return _Plan(
            a, b, rows, snv_q, snv_byte, reps, pos[ind], pos[ind] + rlen[ind], ind_rep, ind, ind_blocks,
            clusters, shift,
        )  # fmt: skip

    def _hap_edits(self, g: int, plan: _Plan, C: np.ndarray):
        """Per haplotype (columns of C [n_rows, n_h]): sorted edits (s, e, rep) and SNV mask."""
        n_h = C.shape[1]
        per_hap = [[] for _ in range(n_h)]
        for j, li in enumerate(plan.ind_row):
            edit = _edit(int(plan.ind_s[j]), int(plan.ind_e[j]), plan.ind_rep[j], plan.ind_blocks[j])
            for h in np.flatnonzero(C[li]).tolist():
                per_hap[h].append(edit)
        for lr, cs, ce in plan.clusters:
            sub = C[lr]
            if not sub.any():
                continue
            pats, inv = np.unique(sub.T, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            ref = self._ref(g, cs, ce).tobytes()
            for k, pat in enumerate(pats):
                if not pat.any():
                    continue
                recs = [
                    (
                        int(self._pos0[plan.rows[r]]),
                        self._allele("ref", int(plan.rows[r])),
                        self._allele("alt", int(plan.rows[r])),
                    )
                    for r in lr[pat]
                ]
                buf, _, blocks = _replay(bytearray(ref), cs, recs, plan.b)
                edit = _edit(cs, ce, bytes(buf), blocks)
                for h in np.flatnonzero(inv == k).tolist():
                    per_hap[h].append(edit)
        for lst in per_hap:
            lst.sort(key=lambda x: x[0])
        snv_mask = C[plan.snv_row] if len(plan.snv_row) else np.zeros((0, n_h), bool)
        return per_hap, snv_mask

    def _render(
        self,
        ref_region: np.ndarray,
        plan: _Plan,
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

        `edits` are non-overlapping, sorted `_edit` tuples. With `flip` the window is
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
                    out[length - 1 - pp[ok]] = _COMP[byte[ok]]
                else:
                    out[pp[ok]] = byte[ok]
        return out, t, deleted

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
        a, b = int(self._a["reg_start0"][g]), int(self._a["reg_end0"][g])
        plan = self._plan(g, a, b)
        C = self.carried(gene_id)  # the plan keeps every row of the stored region
        if samples is not None:
            si = np.array([self.samples.index(s) for s in samples])
            C = C[:, np.stack([2 * si, 2 * si + 1], 1).reshape(-1)]
        # Haplotypes differing only by SNVs outside the window give the same sequence.
        pos = self._pos0[plan.rows]
        sh = plan.shift_bound
        relevant = (self._rlen[plan.rows] != self._alen[plan.rows]) | (
            (pos + self._rlen[plan.rows] > w0 - sh) & (pos < w1 + sh)
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
        per_hap, snv_mask = self._hap_edits(g, plan, C[:, first[order]])
        tss0 = int(self.genes.tss[g]) - 1
        tss_deleted = np.array([personal_position(e, tss0, a)[1] for e in per_hap], dtype=bool)
        return {
            "g": g,
            "strand": strand,
            "plan": plan,
            "per_hap": per_hap,
            "snv_mask": snv_mask,
            "ref_region": self._ref(g, a, b),
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
            return np.stack([length - w[:, 1], length - w[:, 0]], 1) if flip else w

        return [window(e) for e in P["per_hap"]], window([])

    def _render_rows(self, P, rows, length, flip):
        out = np.empty((len(rows), length), dtype=np.uint8)
        ref_rc = revcomp(P["ref_region"]) if flip else None
        for k, h in enumerate(rows):
            self._render(
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
        reference, _, _ = self._render(
            P["ref_region"], P["plan"], [], None, P["tss0"], P["start_off"], length
        )
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
        a, b = int(self._a["reg_start0"][g]), int(self._a["reg_end0"][g])
        out = np.full(length, N, dtype=np.uint8)
        lo, hi = max(w0, a), min(w1, b)  # outside the stored region = off the chromosome: N
        if lo < hi:
            out[lo - w0 : hi - w0] = self._ref(g, lo, hi)
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
        reference, _, _ = self._render(
            P["ref_region"], P["plan"], [], None, P["tss0"], P["start_off"], length
        )
        if flip:
            reference = revcomp(reference)
        n = len(P["per_hap"])
        ex, ref_ex = self._exon_windows(P, exons, length, flip) if exons is not None else (None, None)
        yield GeneHaplotypes(
            np.zeros((0, length), np.uint8),
            P["hap_map"],
            reference,
            tss_index(P["strand"], length, rc_minus),
            flip,
            gene_id,
            P["tss_deleted"],
            ex,
            ref_ex,
        )
        for s in range(0, n, batch_size):
            rows = np.arange(s, min(s + batch_size, n))
            yield rows, self._render_rows(P, rows, length, flip)

    def variants(self, gene_id, length: int) -> pd.DataFrame:
        """Variants (after policies) whose position lies in the gene's reference window; an
        identical record seen twice (indels left-aligned onto one another) is listed once."""
        g = self._g(gene_id)
        _, w0, w1 = self._window(g, length)
        vs, ve = int(self._a["g_vstart"][g]), int(self._a["g_vend"][g])
        rows = np.arange(vs, ve)
        pos = self._pos0[rows]
        rows = rows[(pos >= w0) & (pos < w1)]
        ref = [self._allele("ref", int(r)).decode() for r in rows]
        alt = [self._allele("alt", int(r)).decode() for r in rows]
        chrom = self._a["v_chrom"][rows].astype(str)
        pos1 = self._pos0[rows] + 1
        return pd.DataFrame(
            {
                "variant_id": [f"{c}_{p}_{r}_{x}" for c, p, r, x in zip(chrom, pos1, ref, alt, strict=True)],
                "chrom": chrom,
                "pos": pos1.astype(np.int64),
                "ref": ref,
                "alt": alt,
                "af": self._a["v_af"][rows].astype(float),
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
        a, b = int(self._a["reg_start0"][g]), int(self._a["reg_end0"][g])
        vt = self.variants(gene_id, length)
        by_id = dict(zip(vt["variant_id"], vt["row"], strict=True))
        plan = self._plan(g, a, b)
        ref_region = self._ref(g, a, b)
        tss0 = int(self.genes.tss[g]) - 1
        out = np.empty((len(variant_ids), length), dtype=np.uint8)
        flip = bool(rc_minus and strand == "-")
        ex_out = []
        for i, vid in enumerate(variant_ids):
            if vid not in by_id:
                raise KeyError(f"variant {vid} is not in the {length}-bp window of {gene_id}")
            r = int(by_id[vid])
            p = int(self._pos0[r])
            ref = self._allele("ref", r)[: b - p]
            alt = self._allele("alt", r)
            if len(ref) < self._rlen[r] and len(alt) > len(ref):
                alt = alt[: len(ref)]
            edit = [_edit(p, p + len(ref), alt, record_blocks(ref, alt))]
            out[i], t, _ = self._render(ref_region, plan, edit, None, tss0, w0 - tss0, length)
            if exons is not None:
                w = map_intervals(edit, exons, a) - (t + w0 - tss0)
                ex_out.append(np.stack([length - w[:, 1], length - w[:, 0]], 1) if flip else w)
        if flip:
            out = revcomp(out)
        return (out, ex_out) if exons is not None else out

    def consensus(self, gene_id, sample: str, hap: int, start0: int, end0: int) -> bytes:
        """`bcftools consensus -H {hap}pIu -s sample` of the region [start0, end0) (no re-anchoring)."""
        g = self._g(gene_id)
        si = self.samples.index(sample)
        plan = self._plan(g, start0, end0)
        C = self.carried(gene_id)
        C = C[plan.rows - int(self._a["g_vstart"][g])][:, [2 * si + hap - 1]]
        per_hap, snv_mask = self._hap_edits(g, plan, C)
        ref_region = self._ref(g, start0, end0)
        total = (end0 - start0) + sum(len(r) - (e - s) for s, e, r, _, _ in per_hap[0])
        # from the haplotype's first base, even when the region's first reference base is deleted
        back = -personal_position(per_hap[0], start0, start0)[0]
        seq, _, _ = self._render(ref_region, plan, per_hap[0], snv_mask[:, 0], start0, back, total)
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


# ====================================================================== export
def export_fasta(
    index_paths, out_path, genes=None, samples=None, length=None, rc_minus=True, width=60
) -> int:
    """Write personal sequences as FASTA with headers ``>sample|hap|gene`` (hap 1 or 2).

    `genes`/`samples` None = all; `length` None = each index's window. Returns the
    number of records. Genes or samples asked for but absent raise ValueError.
    """
    want_g = None if genes is None else list(map(str, genes))
    want_s = None if samples is None else list(map(str, samples))
    found_g, n = set(), 0
    with atomic_output(out_path) as tmp, open(tmp, "w") as f:
        for path in index_paths:
            idx = HaplotypeIndex.load(path)
            sel = [s for s in idx.samples if want_s is None or s in want_s]
            if want_s is not None:
                missing = set(want_s) - set(idx.samples)
                if missing:
                    raise ValueError(f"samples not in the cohort: {', '.join(sorted(missing))}")
            si = [idx.samples.index(s) for s in sel]
            for gid in idx.genes["gene_id"]:
                if want_g is not None and gid not in want_g:
                    continue
                found_g.add(gid)
                gh = idx.gene_haplotypes(gid, length or idx.window, rc_minus=rc_minus)
                for s, i in zip(sel, si, strict=True):
                    for h in (1, 2):
                        seq = gh.haplotype(i, h).tobytes().decode()
                        f.write(f">{s}|{h}|{gid}\n")
                        f.write("".join(seq[k : k + width] + "\n" for k in range(0, len(seq), width)))
                        n += 1
    if want_g is not None and set(want_g) - found_g:
        raise ValueError(f"genes not in the cohort's gene table: {', '.join(sorted(set(want_g) - found_g))}")
    return n
