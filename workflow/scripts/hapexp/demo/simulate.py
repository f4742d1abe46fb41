"""Demo cohort simulator: a small cohort whose expression comes from a known model.

`simulate_demo(outdir, seed, ...)` writes, deterministically from `seed`:
reference.fa(.fai), cohort.vcf.gz(.tbi), genes.tsv, expression.tsv, covariates.tsv,
truth.tsv, truth_genes.tsv, expression_noiseless.tsv and oracle.pt.

How it is made
- *Haplotypes*: msprime `sim_ancestry` (constant Ne, recombination r) + `sim_mutations`
  (discrete genome, JC69) per chromosome. The human-like mutation rate is scaled
  (`mutation_scale`, default 3) so that each 2 kb window holds several common
  variants. Only the genotype structure of msprime is used: REF is the reference base
  (the ancestral allele), ALTs are drawn here. Sites where msprime left two derived
  alleles become multi-allelic records; a fraction of bi-allelic sites become short
  (1-10 bp) insertions/deletions, left-aligned and padded with the preceding base.
- *Reference*: random sequence; around each TSS a few activator/repressor motif
  instances (the oracle's motifs) are planted at positions no variant touches, giving
  genes different mean levels.
- *Causal variants*: for genes with h2 > 0, 1-3 common SNVs (MAF >= 0.1) within
  +-900 bp of the TSS; the reference around each is rewritten so that its ALT creates
  or breaks a motif instance. Variants that would create or break a motif by accident
  have a nearby reference base changed, so truth.tsv lists every variant with a
  motif-sized effect.
- *Expression*: for each individual, the mean over its two haplotypes of the oracle
  readout of its own personal window (all its variants, built here from the
  simulator's own allele table, not through `hapexp.sequences.haplotypes`). Gaussian noise is
  scaled so that var(genetic) / (var(genetic) + var(noise)) = h2; genes with h2 = 0
  get noise around their reference-genome readout only. Measured covariates (sex,
  age, rin; `covariate_fraction` of the gene's genetic + noise variance) and two
  unmeasured factors shared by all genes (`hidden_fraction`; what expression PCs are
  for) are added on top; they are outside h2. `expression_noiseless.tsv` holds the
  genetic part (the personal readout mean) for every gene, h2 = 0 genes included.

The readout (must equal the inference engine's for `models.oracle` in config.yaml)
- Window length L = `window` (2048), gene orientation: `+` genes use reference
  `[tss0 - L/2, tss0 + L/2)`, `-` genes `[tss0 - L/2 + 1, tss0 + L/2 + 1)` reverse-
  complemented, so the TSS is at index L/2 (`tss0` = 0-based TSS). Off-chromosome
  bases are N (one-hot zeros).
- Personal windows are anchored on the TSS: the haplotype is built over a wider region,
  the reference TSS base is located in haplotype coordinates (after the length changes
  of indels upstream of it in forward coordinates; a deleted TSS maps to the first
  base after the deletion), and the window is cut around it with the same offsets as
  above. Indels therefore shift the far ends of the window, never the TSS.
- Oracle output bins of 128 bp; TSS bin `c = (L/2) // 128`; the `bins` (2) central bins
  `c - bins//2 ... c - bins//2 + bins - 1` of track 0 are summed; haplotypes averaged.
- `truth.tsv` effect = readout(ALT inserted alone into the reference window) -
  readout(reference window), one haplotype, gene orientation (= the ISM score).

Coordinates: everything here is 0-based (`pos0`, `tss0`) except the files, which are
1-based (VCF POS, genes.tsv tss, truth.tsv pos).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.io import write_matrix, write_tsv

log = logging.getLogger(__name__)

OUTPUT_FILES = [
    "reference.fa",
    "reference.fa.fai",
    "cohort.vcf.gz",
    "cohort.vcf.gz.tbi",
    "genes.tsv",
    "exons.tsv",
    "expression.tsv",
    "expression_noiseless.tsv",
    "covariates.tsv",
    "truth.tsv",
    "truth_genes.tsv",
    "oracle.pt",
]

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
N_BASE = ord("N")
_COMP = np.zeros(256, dtype=np.uint8)
_COMP[:] = N_BASE
for _a, _b in zip(b"ACGTN", b"TGCAN", strict=True):
    _COMP[_a] = _b

BIN_SIZE = 128
TRACK = 0
N_CENTRAL_BINS = 2
CAUSAL_RANGE = 900  # causal SNVs within +-900 bp of the TSS
BACKGROUND_RANGE = 700  # planted background motifs within +-700 bp
MIN_CAUSAL_MAF = 0.1
MIN_CAUSAL_EFFECT = 0.05  # |readout change| a causal design must reach
MAX_SNV_SIDE_EFFECT = 0.01  # |ISM| allowed for a non-causal SNV (near-match leakage)


@dataclass
class Variant:
    chrom: str
    pos0: int  # 0-based first base of REF (the padding base for indels)
    ref: str
    alts: list[str]
    gt: np.ndarray  # (2 n,) allele index per haplotype; haplotypes 2i, 2i+1 = individual i
    kind: str  # snv | multi | ins | del

    @property
    def end0(self) -> int:
        return self.pos0 + len(self.ref)

    def variant_id(self, alt_index: int = 1) -> str:
        return f"{self.chrom}_{self.pos0 + 1}_{self.ref}_{self.alts[alt_index - 1]}"

    def maf(self) -> float:
        af = float(np.mean(self.gt != 0))
        return min(af, 1 - af)


@dataclass
class Gene:
    gene_id: str
    name: str
    chrom: str
    tss0: int
    strand: str
    h2: float = 0.0
    ref_readout: float = 0.0
    causal: list[dict] = field(default_factory=list)


def revcomp_u8(seq: np.ndarray) -> np.ndarray:
    return _COMP[seq[..., ::-1]]


# ---------------------------------------------------------------------------------------
# Windows and readout (the simulator's own implementation; see module docstring)
# ---------------------------------------------------------------------------------------
def _ref_slice(ref: np.ndarray, start0: int, end0: int) -> np.ndarray:
    """ref[start0:end0] with N beyond the chromosome ends."""
    out = np.full(end0 - start0, N_BASE, dtype=np.uint8)
    a, b = max(start0, 0), min(end0, len(ref))
    if b > a:
        out[a - start0 : b - start0] = ref[a:b]
    return out


def personal_window(
    ref: np.ndarray, tss0: int, strand: str, window: int, applied: list[tuple[int, str, str]]
) -> np.ndarray:
    """Gene-oriented, TSS-anchored window of a sequence = reference + `applied` variants.

    `applied`: (pos0, ref_allele, alt_allele) with non-overlapping REF spans. The
    haplotype is built over `[tss0 - window, tss0 + window + 1)` so that indels up to a
    net window/2 bp cannot empty the window.
    """
    half = window // 2
    r0, r1 = tss0 - window, tss0 + window + 1
    pieces: list[np.ndarray] = []
    cursor, plen, tss_p = r0, 0, None
    for pos0, ref_allele, alt in sorted(applied):
        if pos0 < r0 or pos0 + len(ref_allele) > r1:
            continue
        if cursor <= tss0 < pos0:
            tss_p = plen + tss0 - cursor
        pieces.append(_ref_slice(ref, cursor, pos0))
        plen += pos0 - cursor
        if pos0 <= tss0 < pos0 + len(ref_allele):
            off = tss0 - pos0
            tss_p = plen + (off if off < len(alt) else len(alt))
        pieces.append(np.frombuffer(alt.encode(), dtype=np.uint8))
        plen += len(alt)
        cursor = pos0 + len(ref_allele)
    if tss_p is None:
        tss_p = plen + tss0 - cursor
    pieces.append(_ref_slice(ref, cursor, r1))
    seq = np.concatenate(pieces)
    start = tss_p - half if strand == "+" else tss_p - half + 1
    out = seq[start : start + window]
    return revcomp_u8(out) if strand == "-" else out.copy()


def central_bins(window: int, n_bins: int = N_CENTRAL_BINS, bin_size: int = BIN_SIZE) -> list[int]:
    """Bins summed by the readout (docs/architecture.md: TSS bin c, c - n//2 ... c - n//2 + n - 1)."""
    c = (window // 2) // bin_size
    return list(range(c - n_bins // 2, c - n_bins // 2 + n_bins))


class Readout:
    """The oracle readout of gene-oriented windows: sum of the central bins of track 0."""

    def __init__(self, oracle, window: int, batch_size: int = 512):
        import torch

        self.torch = torch
        self.model = oracle.double().eval()
        self.bins = central_bins(window)
        self.batch_size = batch_size

    def __call__(self, seqs: np.ndarray) -> np.ndarray:
        from hapexp.models.oracle import one_hot

        seqs = np.atleast_2d(seqs)
        out = []
        with self.torch.no_grad():
            for i in range(0, len(seqs), self.batch_size):
                y = self.model(one_hot(seqs[i : i + self.batch_size]))
                out.append(y[:, self.bins, TRACK].sum(dim=1).numpy())
        return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------------------------------
# Motif bookkeeping on the reference
# ---------------------------------------------------------------------------------------
def _instances(seq: str, motif_seqs: list[tuple[int, str]]) -> list[tuple[int, int, int]]:
    """(motif index, start, length) of every exact instance (both strands) in `seq`."""
    found = []
    for m, s in motif_seqs:
        i = seq.find(s)
        while i >= 0:
            found.append((m, i, len(s)))
            i = seq.find(s, i + 1)
    return found


class _Genome:
    """Mutable reference + per-base masks of variant spans (protected) and planted motifs."""

    def __init__(self, chroms: dict[str, np.ndarray]):
        self.ref = chroms
        self.protected = {c: np.zeros(len(s), dtype=bool) for c, s in chroms.items()}
        self.reserved = {c: np.zeros(len(s), dtype=bool) for c, s in chroms.items()}

    def free(self, chrom: str, start0: int, end0: int, except_pos0: int | None = None, gap: int = 2) -> bool:
        n = len(self.ref[chrom])
        if start0 < 0 or end0 > n:
            return False
        prot = self.protected[chrom][start0:end0].copy()
        if except_pos0 is not None:
            prot[except_pos0 - start0] = False
        res = self.reserved[chrom][max(start0 - gap, 0) : min(end0 + gap, n)]
        return not prot.any() and not res.any()

    def text(self, chrom: str, start0: int, end0: int) -> str:
        return _ref_slice(self.ref[chrom], start0, end0).tobytes().decode()


# ---------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------
def _msprime_sites(n_individuals, length, ne, mu, rr, seed_anc, seed_mut):
    """Positions (0-based) and allele-index genotypes (n_sites, 2n) of one chromosome."""
    import msprime

    ts = msprime.sim_ancestry(
        samples=n_individuals,
        ploidy=2,
        population_size=ne,
        sequence_length=length,
        recombination_rate=rr,
        random_seed=seed_anc,
    )
    mts = msprime.sim_mutations(ts, rate=mu, random_seed=seed_mut, discrete_genome=True)
    positions, genotypes = [], []
    for var in mts.variants():
        g = var.genotypes.astype(np.int16)
        counts = np.bincount(g, minlength=len(var.alleles))
        present = [a for a in range(len(var.alleles)) if counts[a] > 0]
        # Keep sites where the ancestral (REF) allele and 1-2 derived alleles segregate.
        if counts[0] == 0 or len(present) < 2 or len(present) > 3:
            continue
        remap = np.zeros(len(var.alleles), dtype=np.int8)
        for new, old in enumerate(present):
            remap[old] = new
        positions.append(int(var.site.position))
        genotypes.append(remap[g])
    return np.array(positions, dtype=np.int64), np.array(genotypes, dtype=np.int8)


def _other_bases(rng, base: int, n: int) -> list[str]:
    choices = [b for b in "ACGT" if ord(b) != base]
    return [str(x) for x in rng.choice(choices, size=n, replace=False)]


def _make_variants(chrom, ref, positions, genotypes, rng, indel_fraction):
    """Turn msprime sites into VCF-style variants; indels are left-aligned, non-overlapping."""
    n = len(ref)
    out: list[Variant] = []
    lengths = np.arange(1, 11)
    len_p = (1.0 / lengths) / (1.0 / lengths).sum()
    for k, (p, g) in enumerate(zip(positions, genotypes, strict=True)):
        prev_end = out[-1].end0 if out else -1
        next_pos = positions[k + 1] if k + 1 < len(positions) else n
        n_alleles = int(g.max()) + 1
        if n_alleles == 3 and p >= prev_end:
            out.append(Variant(chrom, int(p), chr(ref[p]), _other_bases(rng, ref[p], 2), g, "multi"))
            continue
        kind = "snv"
        if rng.random() < indel_fraction and 20 < p < n - 20:
            d = int(rng.choice(lengths, p=len_p))
            if rng.random() < 0.5:  # deletion of ref[p : p + d], padded with ref[p - 1]
                q = int(p) - 1
                while q > 0 and ref[q] == ref[q + d]:
                    q -= 1  # left-align
                if q >= prev_end and q + d + 1 <= min(next_pos, n):
                    ref_allele = ref[q : q + d + 1].tobytes().decode()
                    out.append(Variant(chrom, q, ref_allele, [ref_allele[0]], g, "del"))
                    kind = "del"
            else:  # insertion of d random bases after ref[p]
                ins = "".join(rng.choice(list("ACGT"), size=d))
                q = int(p)
                while q > 0 and chr(ref[q]) == ins[-1]:
                    ins = chr(ref[q]) + ins[:-1]  # left-align
                    q -= 1
                if q >= prev_end:
                    out.append(Variant(chrom, q, chr(ref[q]), [chr(ref[q]) + ins], g, "ins"))
                    kind = "ins"
        if kind == "snv" and p >= prev_end:
            out.append(Variant(chrom, int(p), chr(ref[p]), _other_bases(rng, ref[p], 1), g, "snv"))
    return out


def _place_genes(rng, chrom_names, chrom_length, n_genes, window, n_common, fit_window=None):
    """TSS positions (0-based) and strands; exactly one gene within window/2 of a chromosome end.

    Genes sit in equal slots; within its slot a TSS is drawn until at least 3 common
    SNVs (`n_common(chrom, tss0)`) lie within reach of a causal design, so that any gene
    can be given causal variants. With `fit_window`, every gene (the edge one included)
    stays fit_window/2 + 1 kb from the chromosome ends, so such windows hold no N.
    """
    per = np.full(len(chrom_names), n_genes // len(chrom_names))
    per[: n_genes % len(chrom_names)] += 1
    margin = 2 * window + 1000 if fit_window is None else max(2 * window, fit_window // 2) + 1000
    genes = []
    for ci, chrom in enumerate(chrom_names):
        k = int(per[ci])
        slot = (chrom_length - 2 * margin) / max(k, 1)
        for i in range(k):
            best = (-1, 0)
            for _ in range(200):
                if ci == len(chrom_names) - 1 and i == k - 1 and fit_window is None:
                    tss0 = chrom_length - int(rng.integers(200, window // 2 - 200))  # near the end
                else:
                    centre = margin + slot * (i + 0.5)
                    tss0 = int(centre + rng.uniform(-slot / 4, slot / 4))
                best = max(best, (min(n_common(chrom, tss0), 3), -tss0))
                if best[0] >= 3:
                    break
            genes.append((chrom, -best[1]))
    strands = list(rng.choice(["+", "-"], size=len(genes)))
    if n_genes >= 2 and len(set(strands)) < 2:
        strands[0] = "-" if strands[0] == "+" else "+"
    out = []
    for j, ((chrom, tss0), strand) in enumerate(zip(genes, strands, strict=True)):
        out.append(Gene(f"ENSGSIM{j + 1:06d}", f"GENE{j + 1}", chrom, tss0, str(strand)))
    return out


def gene_exons(seed: int, genes: list, chrom_length: int) -> pd.DataFrame:
    """A gene model per gene (for `readout: exons`): 2-5 exons of 40-300 bp separated by
    80-600 bp introns, the first starting at the TSS, in the gene's direction (1-based
    inclusive rows). Drawn from their own random stream, so the rest of the cohort does not
    depend on them."""
    rng = np.random.default_rng([seed, 15])
    rows = []
    for g in genes:
        off = 0
        for _ in range(int(rng.integers(2, 6))):
            n = int(rng.integers(40, 301))
            lo, hi = (
                (g.tss0 + off, g.tss0 + off + n)
                if g.strand == "+"
                else (g.tss0 - off - n + 1, g.tss0 - off + 1)
            )
            lo, hi = max(lo, 0), min(hi, chrom_length)
            if hi > lo:
                rows.append((g.gene_id, g.chrom, lo + 1, hi, g.strand))
            off += n + int(rng.integers(80, 601))
    return pd.DataFrame(rows, columns=["gene_id", "chrom", "start", "end", "strand"])


def _assign_h2(rng, n_genes, h2_values, zero_fraction):
    n_zero = int(round(zero_fraction * n_genes))
    nonzero = [v for v in h2_values if v > 0]
    vals = [0.0] * n_zero + [nonzero[i % len(nonzero)] for i in range(n_genes - n_zero)]
    return [float(v) for v in rng.permutation(vals)]


def _window_bounds(gene: Gene, window: int) -> tuple[int, int]:
    half = window // 2
    start = gene.tss0 - half if gene.strand == "+" else gene.tss0 - half + 1
    return start, start + window


class _Sim:
    def __init__(self, seed, n_individuals, chrom_names, chrom_length, n_genes, window, params):
        from hapexp.models.oracle import DEFAULT_MOTIFS, Oracle, revcomp

        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.n = n_individuals
        self.chrom_names = chrom_names
        self.chrom_length = chrom_length
        self.window = window
        self.p = params
        self.oracle = Oracle()
        self.readout = Readout(Oracle(), window)
        self.motifs = [m[1] for m in DEFAULT_MOTIFS]
        self.motif_w = [m[2] for m in DEFAULT_MOTIFS]  # track 0 = the readout track
        self.motif_names = [m[0] for m in DEFAULT_MOTIFS]
        self.kmax = max(len(m) for m in self.motifs)
        self.motif_seqs = [(i, s) for i, m in enumerate(self.motifs) for s in {m, revcomp(m)}]
        self.revcomp = revcomp
        self.n_genes = n_genes

    # -- readout helpers ------------------------------------------------------------------
    def ref_window(self, g: Gene) -> np.ndarray:
        return personal_window(self.genome.ref[g.chrom], g.tss0, g.strand, self.window, [])

    def alt_window(self, g: Gene, v: Variant, a: int) -> np.ndarray:
        return personal_window(
            self.genome.ref[g.chrom], g.tss0, g.strand, self.window, [(v.pos0, v.ref, v.alts[a - 1])]
        )

    def gene_variants(self, g: Gene, pad: int | None = None) -> list[Variant]:
        """Variants whose REF span lies in the region a personal window is built from."""
        pad = self.window if pad is None else pad
        lo, hi = g.tss0 - pad, g.tss0 + pad + 1
        return [v for v in self.variants[g.chrom] if v.pos0 >= lo and v.end0 <= hi]

    # -- steps -----------------------------------------------------------------------------
    def build(self):
        rng, p = self.rng, self.p
        chroms = {}
        for c in self.chrom_names:
            chroms[c] = rng.choice(BASES, size=self.chrom_length, p=[0.29, 0.21, 0.21, 0.29])
        self.genome = _Genome(chroms)
        self.variants: dict[str, list[Variant]] = {}
        for c in self.chrom_names:
            s1, s2 = (int(x) for x in rng.integers(1, 2**31 - 1, size=2))
            pos, gts = _msprime_sites(
                self.n,
                self.chrom_length,
                p["ne"],
                p["mutation_rate"] * p["mutation_scale"],
                p["recombination_rate"],
                s1,
                s2,
            )
            vs = _make_variants(c, chroms[c], pos, gts, rng, p["indel_fraction"])
            self.variants[c] = vs
            for v in vs:
                self.genome.protected[c][v.pos0 : v.end0] = True
        common = {
            c: np.array([v.pos0 for v in self.variants[c] if v.kind == "snv" and v.maf() >= MIN_CAUSAL_MAF])
            for c in self.chrom_names
        }

        def n_common(chrom, tss0):
            pos = common[chrom]
            return int(np.sum(np.abs(pos - tss0) <= CAUSAL_RANGE - 100))

        self.genes = _place_genes(
            rng, self.chrom_names, self.chrom_length, self.n_genes, self.window, n_common, p.get("fit_window")
        )
        for g, h2 in zip(
            self.genes, _assign_h2(rng, len(self.genes), p["h2_values"], p["zero_h2_fraction"]), strict=True
        ):
            g.h2 = h2
        for g in self.genes:
            self.plant_background(g)
        for g in self.genes:
            if g.h2 > 0:
                self.plant_causal(g)
                if not g.causal:
                    log.warning("%s: no common SNV could be made causal; h2 set to 0", g.gene_id)
                    g.h2 = 0.0
        for g in self.genes:
            self.remove_accidental(g)
        self.verify()

    def _write_motif(self, chrom, start0, seq, keep_pos0=None):
        ref = self.genome.ref[chrom]
        for i, b in enumerate(seq.encode()):
            if start0 + i != keep_pos0:
                ref[start0 + i] = b
        self.genome.reserved[chrom][start0 : start0 + len(seq)] = True

    def plant_background(self, g: Gene):
        rng = self.rng
        n_act, n_rep = int(rng.integers(0, 5)), int(rng.integers(0, 2))
        acts = [i for i, w in enumerate(self.motif_w) if w > 0]
        reps = [i for i, w in enumerate(self.motif_w) if w < 0]
        for m in [int(rng.choice(acts)) for _ in range(n_act)] + [
            int(rng.choice(reps)) for _ in range(n_rep)
        ]:
            seq = self.motifs[m] if rng.random() < 0.5 else self.revcomp(self.motifs[m])
            for _ in range(50):
                start = g.tss0 + int(rng.integers(-BACKGROUND_RANGE, BACKGROUND_RANGE))
                if self.genome.free(g.chrom, start, start + len(seq)):
                    self._write_motif(g.chrom, start, seq)
                    break

    def plant_causal(self, g: Gene):
        rng = self.rng
        n_causal = int(rng.choice([1, 1, 1, 2, 2, 3]))
        cands = [
            v
            for v in self.variants[g.chrom]
            if v.kind == "snv" and abs(v.pos0 - g.tss0) <= CAUSAL_RANGE and v.maf() >= MIN_CAUSAL_MAF
        ]
        for v in [cands[i] for i in rng.permutation(len(cands))]:
            if len(g.causal) >= n_causal:
                break
            design = self._design(g, v)
            if design is not None:
                g.causal.append(design)

    def _design(self, g: Gene, v: Variant) -> dict | None:
        """Rewrite the reference around SNV `v` so that its ALT creates or breaks a motif."""
        rng = self.rng
        chrom, p0 = g.chrom, v.pos0
        ref = self.genome.ref[chrom]
        rbase = chr(ref[p0])
        for _ in range(30):
            m = int(rng.integers(len(self.motifs)))
            seq = self.motifs[m] if rng.random() < 0.5 else self.revcomp(self.motifs[m])
            mode = "create" if rng.random() < 0.5 else "break"
            offs = [o for o, b in enumerate(seq) if (b != rbase) == (mode == "create")]
            if not offs:
                continue
            o = int(rng.choice(offs))
            start = p0 - o
            if not self.genome.free(chrom, start, start + len(seq), except_pos0=p0):
                continue
            alt = seq[o] if mode == "create" else _other_bases(rng, ref[p0], 1)[0]
            saved = ref[start : start + len(seq)].copy()
            self._write_motif(chrom, start, seq, keep_pos0=p0)
            old_alts = v.alts
            v.alts = [alt]
            ref_level, alt_level = self.readout(np.stack([self.ref_window(g), self.alt_window(g, v, 1)]))
            effect = float(alt_level - ref_level)
            sign = np.sign(self.motif_w[m]) * (1 if mode == "create" else -1)
            if abs(effect) >= MIN_CAUSAL_EFFECT and np.sign(effect) == sign:
                return {
                    "variant": v,
                    "motif": m,
                    "mode": mode,
                    "start0": start,
                    "length": len(seq),
                    "sign": sign,
                }
            ref[start : start + len(seq)] = saved  # undo: too weak (far from the TSS or saturated)
            self.genome.reserved[chrom][start : start + len(seq)] = False
            v.alts = old_alts
        return None

    def _allele_changes(self, chrom: str, v: Variant, a: int):
        """Motif instances an ALT creates (in alt context) or breaks (in ref context).

        Returns (diff Counter motif -> alt count - ref count, [(kind, motif, ref positions)]).
        """
        k1 = self.kmax - 1
        left = self.genome.text(chrom, v.pos0 - k1, v.pos0)
        right = self.genome.text(chrom, v.end0, v.end0 + k1)
        alt = v.alts[a - 1]
        ref_loc, alt_loc = left + v.ref + right, left + alt + right
        diff: Counter = Counter()
        found = []
        for ctx, allele, sgn in ((ref_loc, v.ref, -1), (alt_loc, alt, +1)):
            for m, s, length in _instances(ctx, self.motif_seqs):
                if s + length <= k1 or s >= k1 + len(allele):
                    continue  # entirely in the flanks: present in both contexts
                diff[m] += sgn
                pos = []
                for i in range(s, s + length):
                    if i < k1:
                        pos.append(v.pos0 - k1 + i)
                    elif i >= k1 + len(allele):
                        pos.append(v.end0 + i - k1 - len(allele))
                    elif sgn < 0:
                        pos.append(v.pos0 + i - k1)
                found.append((sgn, m, pos))
        return diff, found

    def remove_accidental(self, g: Gene):
        """Change reference bases so that only designed causal variants change motif instances."""
        designed = {id(c["variant"]): c for c in g.causal}
        for _ in range(50):
            changed = False
            for v in self.gene_variants(g):
                for a in range(1, len(v.alts) + 1):
                    diff, found = self._allele_changes(g.chrom, v, a)
                    expect: Counter = Counter()
                    c = designed.get(id(v))
                    if c is not None:
                        expect[c["motif"]] = 1 if c["mode"] == "create" else -1
                    for m in set(diff) | set(expect):
                        if diff[m] == expect[m]:
                            continue
                        for _sgn, mm, pos in found:
                            if mm != m:
                                continue
                            if (
                                c is not None
                                and mm == c["motif"]
                                and min(pos) >= c["start0"]
                                and (max(pos) < c["start0"] + c["length"])
                            ):
                                continue  # the designed instance itself
                            ok = [
                                q
                                for q in pos
                                if not self.genome.protected[g.chrom][q]
                                and not self.genome.reserved[g.chrom][q]
                            ]
                            if not ok:
                                raise RuntimeError(
                                    f"{g.gene_id}: cannot remove accidental motif at {v.variant_id(a)}"
                                )
                            q = ok[int(self.rng.integers(len(ok)))]
                            ref = self.genome.ref[g.chrom]
                            ref[q] = ord(_other_bases(self.rng, ref[q], 1)[0])
                            changed = True
            if not changed:
                return
        raise RuntimeError(f"{g.gene_id}: accidental motif removal did not converge")

    def verify(self):
        """ISM of every variant allele in every window: causal = designed sign, others ~0."""
        for g in self.genes:
            ref_level = float(self.readout(self.ref_window(g))[0])
            designed = {id(c["variant"]): c for c in g.causal}
            vs = [(v, a) for v in self.gene_variants(g) for a in range(1, len(v.alts) + 1)]
            if not vs:
                continue
            eff = self.readout(np.stack([self.alt_window(g, v, a) for v, a in vs])) - ref_level
            for (v, a), e in zip(vs, eff, strict=True):
                c = designed.get(id(v))
                if c is not None:
                    if np.sign(e) != c["sign"] or abs(e) < MIN_CAUSAL_EFFECT / 2:
                        raise RuntimeError(
                            f"{g.gene_id}: causal {v.variant_id(a)} effect {e:.4g} not as designed"
                        )
                    c["effect"] = float(e)
                elif v.kind in ("snv", "multi") and abs(e) > MAX_SNV_SIDE_EFFECT:
                    raise RuntimeError(f"{g.gene_id}: non-causal {v.variant_id(a)} has ISM {e:.4g}")
            g.ref_readout = ref_level

    def genetic_values(self) -> np.ndarray:
        """(genes, individuals): mean over the two haplotypes of the personal-window readout."""
        out = np.zeros((len(self.genes), self.n))
        for gi, g in enumerate(self.genes):
            vs = self.gene_variants(g)
            keys = [tuple(int(v.gt[h]) for v in vs) for h in range(2 * self.n)]
            uniq = sorted(set(keys))
            seqs = np.stack(
                [
                    personal_window(
                        self.genome.ref[g.chrom],
                        g.tss0,
                        g.strand,
                        self.window,
                        [(v.pos0, v.ref, v.alts[a - 1]) for v, a in zip(vs, key, strict=True) if a > 0],
                    )
                    for key in uniq
                ]
            )
            val = dict(zip(uniq, self.readout(seqs), strict=True))
            hap = np.array([val[k] for k in keys])
            out[gi] = 0.5 * (hap[0::2] + hap[1::2])
        return out


def _write_fasta(path: Path, genome: _Genome, chrom_names: list[str], width: int = 60) -> None:
    with open(path, "w") as fh:
        for c in chrom_names:
            seq = genome.ref[c].tobytes().decode()
            fh.write(f">{c}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")


def _write_vcf(path_gz: Path, sim: _Sim, samples: list[str]) -> None:
    import pysam

    lut = [f"{a}|{b}" for a in range(3) for b in range(3)]
    plain = path_gz.with_suffix("")
    with open(plain, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.write(f"##source=hapexp.simulate (msprime haplotypes, seed {sim.seed})\n")
        fh.write("##reference=reference.fa\n")
        for c in sim.chrom_names:
            fh.write(f"##contig=<ID={c},length={sim.chrom_length}>\n")
        fh.write('##FILTER=<ID=PASS,Description="All filters passed">\n')
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Phased genotype">\n')
        fh.write("#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]))
        fh.write("\t" + "\t".join(samples) + "\n")
        for c in sim.chrom_names:
            ref = sim.genome.ref[c]
            for v in sim.variants[c]:
                ref_allele = ref[v.pos0 : v.end0].tobytes().decode()
                assert ref_allele == v.ref, (v.variant_id(), ref_allele)
                codes = v.gt[0::2].astype(int) * 3 + v.gt[1::2].astype(int)
                gts = "\t".join(lut[k] for k in codes)
                fh.write(f"{c}\t{v.pos0 + 1}\t.\t{v.ref}\t{','.join(v.alts)}\t.\tPASS\t.\tGT\t{gts}\n")
    pysam.tabix_compress(str(plain), str(path_gz), force=True)
    plain.unlink()
    pysam.tabix_index(str(path_gz), preset="vcf", force=True)


def simulate_demo(
    outdir,
    seed: int = 7,
    n_individuals: int = 100,
    n_chromosomes: int = 2,
    chromosome_length: int = 400_000,
    n_genes: int = 30,
    window: int = 2048,
    ne: float = 10_000,
    mutation_rate: float = 1.25e-8,
    mutation_scale: float = 3.0,
    recombination_rate: float = 1e-8,
    indel_fraction: float = 0.08,
    h2_values: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.8),
    zero_h2_fraction: float = 0.2,
    covariate_fraction: float = 0.2,
    hidden_fraction: float = 0.2,
    fit_window: int | None = None,
) -> dict:
    """Simulate the demo cohort into `outdir` (see the module docstring); returns a summary.

    `fit_window`: keep every gene fit_window/2 + 1 kb from the chromosome ends, so that
    windows of that length (524,288 or 1,048,576 bp) fit on the chromosome.
    """
    import torch

    if window % BIN_SIZE or window < 4 * BIN_SIZE:
        raise ValueError(f"window must be a multiple of {BIN_SIZE} and >= {4 * BIN_SIZE}; got {window}")
    if chromosome_length < n_genes // max(n_chromosomes, 1) * 3 * window + 8 * window:
        raise ValueError("chromosome_length too small for that many genes and this window")
    if (
        fit_window is not None
        and chromosome_length < fit_window + 2000 + -(-n_genes // n_chromosomes) * 3 * window
    ):
        raise ValueError(
            f"chromosome_length {chromosome_length} cannot hold {fit_window}-bp windows around its genes: "
            f"use at least {fit_window + 2000 + -(-n_genes // n_chromosomes) * 3 * window}"
        )
    params = {
        "ne": ne,
        "mutation_rate": mutation_rate,
        "mutation_scale": mutation_scale,
        "recombination_rate": recombination_rate,
        "indel_fraction": indel_fraction,
        "h2_values": h2_values,
        "zero_h2_fraction": zero_h2_fraction,
        "fit_window": fit_window,
    }
    chrom_names = [f"chr{i + 1}" for i in range(n_chromosomes)]
    with _torch_threads(torch, 1):
        sim = _Sim(seed, n_individuals, chrom_names, chromosome_length, n_genes, window, params)
        sim.build()
        genetic = sim.genetic_values()
    rng = sim.rng
    n = n_individuals
    width = max(4, len(str(n)))
    samples = [f"S{i + 1:0{width}d}" for i in range(n)]

    # Covariates: measured (written out) and hidden factors (not written).
    sex = rng.integers(0, 2, size=n).astype(float)
    age = np.round(rng.uniform(20, 80, size=n), 1)
    rin = np.round(np.clip(rng.normal(7.0, 1.0, size=n), 3, 10), 1)
    cov = np.stack([sex, age, rin])
    cov_z = (cov - cov.mean(1, keepdims=True)) / cov.std(1, keepdims=True)
    hidden = rng.normal(size=(2, n))
    hidden = (hidden - hidden.mean(1, keepdims=True)) / hidden.std(1, keepdims=True)

    expr = np.zeros((len(sim.genes), n))
    gene_rows, truth_rows = [], []
    for gi, g in enumerate(sim.genes):
        gval = genetic[gi]
        if g.h2 > 0:
            gvar = float(np.var(gval))
            noise_var = gvar * (1 - g.h2) / g.h2
            base = gval
        else:
            gvar = 0.0
            noise_var = (0.15 * g.ref_readout + 0.05) ** 2
            base = np.full(n, g.ref_readout)
        noise = rng.normal(0.0, np.sqrt(noise_var), size=n)
        total = gvar + noise_var
        b = rng.normal(size=3)
        b *= np.sqrt(covariate_fraction * total / (b @ b))  # z-scores ~ uncorrelated: var ~ |b|^2
        # Unmeasured factors touch every gene equally (random sign): the shared structure
        # that expression PCs are meant to remove.
        lam = rng.choice([-1.0, 1.0], size=2) * np.sqrt(hidden_fraction * total / 2)
        expr[gi] = base + noise + b @ cov_z + lam @ hidden
        gene_rows.append(
            {
                "gene_id": g.gene_id,
                "h2": g.h2,
                "n_causal": len(g.causal),
                "genetic_var": gvar,
                "noise_var": noise_var,
                "ref_readout": g.ref_readout,
            }
        )
        for c in g.causal:
            v = c["variant"]
            truth_rows.append(
                {
                    "gene_id": g.gene_id,
                    "variant_id": v.variant_id(1),
                    "chrom": v.chrom,
                    "pos": v.pos0 + 1,
                    "ref": v.ref,
                    "alt": v.alts[0],
                    "effect": c["effect"],
                    "h2": g.h2,
                    "motif": sim.motif_names[c["motif"]],
                    "mechanism": c["mode"],
                }
            )

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".simulate_demo.", dir=outdir))
    try:
        _write_fasta(tmp / "reference.fa", sim.genome, chrom_names)
        import pysam

        pysam.faidx(str(tmp / "reference.fa"))
        _write_vcf(tmp / "cohort.vcf.gz", sim, samples)
        genes = pd.DataFrame(
            {
                "gene_id": [g.gene_id for g in sim.genes],
                "name": [g.name for g in sim.genes],
                "chrom": [g.chrom for g in sim.genes],
                "tss": [g.tss0 + 1 for g in sim.genes],  # 1-based
                "strand": [g.strand for g in sim.genes],
            }
        )
        write_tsv(genes, tmp / "genes.tsv")
        write_tsv(gene_exons(seed, sim.genes, chromosome_length), tmp / "exons.tsv")
        ids = [g.gene_id for g in sim.genes]
        write_matrix(pd.DataFrame(expr, index=ids, columns=samples), tmp / "expression.tsv")
        write_matrix(pd.DataFrame(genetic, index=ids, columns=samples), tmp / "expression_noiseless.tsv")
        covdf = pd.DataFrame(cov, index=["sex", "age", "rin"], columns=samples)
        write_matrix(covdf, tmp / "covariates.tsv", index_col="id")
        truth_cols = [
            "gene_id",
            "variant_id",
            "chrom",
            "pos",
            "ref",
            "alt",
            "effect",
            "h2",
            "motif",
            "mechanism",
        ]
        write_tsv(pd.DataFrame(truth_rows, columns=truth_cols), tmp / "truth.tsv")
        write_tsv(pd.DataFrame(gene_rows), tmp / "truth_genes.tsv")
        (tmp / "oracle.pt").write_bytes(sim.oracle.to_bytes())
        umask = os.umask(0)
        os.umask(umask)
        for name in OUTPUT_FILES:
            os.chmod(tmp / name, 0o666 & ~umask)  # mkstemp files are 0600
            os.replace(tmp / name, outdir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    all_v = [v for c in chrom_names for v in sim.variants[c]]
    kinds = Counter(v.kind for v in all_v)
    summary = {
        "n_variants": len(all_v),
        "n_snv": kinds["snv"],
        "n_insertions": kinds["ins"],
        "n_deletions": kinds["del"],
        "n_multiallelic": kinds["multi"],
        "genes_plus": sum(g.strand == "+" for g in sim.genes),
        "genes_minus": sum(g.strand == "-" for g in sim.genes),
        "h2": {g.gene_id: g.h2 for g in sim.genes},
        "n_causal": sum(len(g.causal) for g in sim.genes),
    }
    log.info("simulated demo cohort in %s: %s", outdir, {k: v for k, v in summary.items() if k != "h2"})
    return summary


@contextlib.contextmanager
def _torch_threads(torch, n: int):
    """Run the oracle single-threaded: identical float results whatever the machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
