"""The simulated genome: a random reference and the cohort's variants on it (msprime haplotypes).

- *Haplotypes*: msprime `sim_ancestry` (constant Ne, recombination r) + `sim_mutations`
  (discrete genome, JC69) per chromosome. The human-like mutation rate is scaled
  (`mutation_scale`, default 3) so that each 2 kb window holds several common
  variants. Only the genotype structure of msprime is used: REF is the reference base
  (the ancestral allele), ALTs are drawn here. Sites where msprime left two derived
  alleles become multi-allelic records; a fraction of bi-allelic sites become short
  (1-10 bp) insertions/deletions, left-aligned and padded with the preceding base.
- `Genome` is the mutable reference with per-base masks of variant spans (protected)
  and planted motifs (reserved) that `hapexp.demo.design` respects.

Coordinates are 0-based (`pos0`, `end0` exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hapexp.demo.readout import ref_slice

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


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


class Genome:
    """Mutable reference + its variants + per-base masks of variant spans (protected) and
    planted motifs (reserved)."""

    def __init__(self, chroms: dict[str, np.ndarray]):
        self.ref = chroms
        self.variants: dict[str, list[Variant]] = {}
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
        return ref_slice(self.ref[chrom], start0, end0).tobytes().decode()

    def window_variants(self, gene, window: int) -> list[Variant]:
        """Variants whose REF span lies in the region a personal window of `gene` is built
        from (`[tss0 - window, tss0 + window + 1)`, see `readout.personal_window`)."""
        lo, hi = gene.tss0 - window, gene.tss0 + window + 1
        return [v for v in self.variants[gene.chrom] if v.pos0 >= lo and v.end0 <= hi]


def simulate_genome(rng, chrom_names, chrom_length, n_individuals, params) -> Genome:
    """Reference sequences, then per chromosome msprime sites turned into variants; the
    variants' REF spans are protected from motif planting."""
    chroms = {}
    for c in chrom_names:
        chroms[c] = rng.choice(BASES, size=chrom_length, p=[0.29, 0.21, 0.21, 0.29])
    genome = Genome(chroms)
    for c in chrom_names:
        s1, s2 = (int(x) for x in rng.integers(1, 2**31 - 1, size=2))
        pos, gts = _msprime_sites(
            n_individuals,
            chrom_length,
            params["ne"],
            params["mutation_rate"] * params["mutation_scale"],
            params["recombination_rate"],
            s1,
            s2,
        )
        vs = _make_variants(c, chroms[c], pos, gts, rng, params["indel_fraction"])
        genome.variants[c] = vs
        for v in vs:
            genome.protected[c][v.pos0 : v.end0] = True
    return genome


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


def other_bases(rng, base: int, n: int) -> list[str]:
    """`n` distinct bases other than `base` (an ASCII code), drawn without replacement."""
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
            out.append(Variant(chrom, int(p), chr(ref[p]), other_bases(rng, ref[p], 2), g, "multi"))
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
            out.append(Variant(chrom, int(p), chr(ref[p]), other_bases(rng, ref[p], 1), g, "snv"))
    return out
