"""Motif design on the simulated reference: what gives each gene its level and its causal variants.

- *Background*: around each TSS a few activator/repressor motif instances (the oracle's
  motifs) are planted at positions no variant touches, giving genes different mean levels.
- *Causal variants*: for genes with h2 > 0, 1-3 common SNVs (MAF >= 0.1) within
  +-900 bp of the TSS; the reference around each is rewritten so that its ALT creates
  or breaks a motif instance. Variants that would create or break a motif by accident
  have a nearby reference base changed, so truth.tsv lists every variant with a
  motif-sized effect.
- *Verification*: the ISM of every variant allele in every window (readout of the ALT
  alone in the reference window minus the reference readout, `hapexp.demo.readout`):
  causal ones have the designed sign and size, the other SNVs ~0.
- *Tissues* (multi-tissue demo): each tissue k is oracle track k with a motif set of its own
  (`Oracle.for_tissues`). Background motifs of every tissue are planted around each TSS;
  a gene's causal variants are designed per tissue with that tissue's motifs (distinct
  SNVs per tissue: a gene shared between tissues has causal variants of each), and the
  verification reads every tissue track: a causal variant moves its own tissue's track
  only (|ISM| <= MAX_SNV_SIDE_EFFECT on the others).

Coordinates are 0-based.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from hapexp.demo.genome import Genome, Variant, other_bases
from hapexp.demo.layout import Gene
from hapexp.demo.readout import personal_window

log = logging.getLogger(__name__)

CAUSAL_RANGE = 900  # causal SNVs within +-900 bp of the TSS
BACKGROUND_RANGE = 700  # planted background motifs within +-700 bp
MIN_CAUSAL_MAF = 0.1
MIN_CAUSAL_EFFECT = 0.05  # |readout change| a causal design must reach
MAX_SNV_SIDE_EFFECT = 0.01  # |ISM| allowed for a non-causal SNV (near-match leakage)


def common_snv_counter(genome: Genome):
    """`n_common(chrom, tss0)`: the common SNVs (MAF >= MIN_CAUSAL_MAF) close enough to a
    TSS for a causal design (within CAUSAL_RANGE - 100 bp), for `layout.place_genes`."""
    common = {
        c: np.array([v.pos0 for v in genome.variants[c] if v.kind == "snv" and v.maf() >= MIN_CAUSAL_MAF])
        for c in genome.variants
    }

    def n_common(chrom, tss0):
        pos = common[chrom]
        return int(np.sum(np.abs(pos - tss0) <= CAUSAL_RANGE - 100))

    return n_common


def _instances(seq: str, motif_seqs: list[tuple[int, str]]) -> list[tuple[int, int, int]]:
    """(motif index, start, length) of every exact instance (both strands) in `seq`."""
    found = []
    for m, s in motif_seqs:
        i = seq.find(s)
        while i >= 0:
            found.append((m, i, len(s)))
            i = seq.find(s, i + 1)
    return found


class MotifDesigner:
    """Plants the oracle's motifs into `genome.ref` (in place) and records each gene's
    causal designs in `Gene.causal`; draws from `rng` in a fixed order.

    `n_tissues`: the tissues are the oracle's tracks 0 .. n_tissues - 1 (`readout.model`);
    tissue k's motifs are those with a non-zero weight on track k (the one-tissue demo: all
    of the default oracle's motifs, track 0)."""

    def __init__(self, rng, genome: Genome, readout, window: int, n_tissues: int = 1):
        from hapexp.models.oracle import revcomp

        self.rng = rng
        self.genome = genome
        self.readout = readout
        self.window = window
        hp = readout.model.hparams
        self.motifs = list(hp["motifs"])
        self.motif_names = list(hp["motif_names"])
        self.weights = [list(w) for w in hp["weights"]]  # [track][motif]
        self.tracks = list(range(n_tissues))
        self.track_motifs = [[m for m, w in enumerate(self.weights[t]) if w != 0] for t in self.tracks]
        self.kmax = max(len(m) for m in self.motifs)
        self.motif_seqs = [(i, s) for i, m in enumerate(self.motifs) for s in {m, revcomp(m)}]
        self.revcomp = revcomp

    def design(self, genes: list[Gene]) -> None:
        """Background motifs, causal designs (a gene none fits gets h2 0 in that tissue),
        removal of accidental motif changes, then `verify` (sets `Gene.ref_readout`)."""
        for g in genes:
            for t in self.tracks:
                self.plant_background(g, t)
        for g in genes:
            for t in self.tracks:
                if g.h2[t] > 0:
                    self.plant_causal(g, t)
                    if not any(c["track"] == t for c in g.causal):
                        log.warning("%s: no common SNV could be made causal (track %d); h2 set to 0",
                                    g.gene_id, t)  # fmt: skip
                        g.h2[t] = 0.0
        for g in genes:
            self.remove_accidental(g)
        self.verify(genes)

    # -- readout helpers ------------------------------------------------------------------
    def ref_window(self, g: Gene) -> np.ndarray:
        return personal_window(self.genome.ref[g.chrom], g.tss0, g.strand, self.window, [])

    def alt_window(self, g: Gene, v: Variant, a: int) -> np.ndarray:
        return personal_window(
            self.genome.ref[g.chrom], g.tss0, g.strand, self.window, [(v.pos0, v.ref, v.alts[a - 1])]
        )

    def gene_variants(self, g: Gene) -> list[Variant]:
        return self.genome.window_variants(g, self.window)

    # -- planting --------------------------------------------------------------------------
    def _write_motif(self, chrom, start0, seq, keep_pos0=None):
        ref = self.genome.ref[chrom]
        for i, b in enumerate(seq.encode()):
            if start0 + i != keep_pos0:
                ref[start0 + i] = b
        self.genome.reserved[chrom][start0 : start0 + len(seq)] = True

    def plant_background(self, g: Gene, track: int = 0):
        rng = self.rng
        n_act, n_rep = int(rng.integers(0, 5)), int(rng.integers(0, 2))
        acts = [i for i in self.track_motifs[track] if self.weights[track][i] > 0]
        reps = [i for i in self.track_motifs[track] if self.weights[track][i] < 0]
        for m in [int(rng.choice(acts)) for _ in range(n_act)] + [
            int(rng.choice(reps)) for _ in range(n_rep)
        ]:
            seq = self.motifs[m] if rng.random() < 0.5 else self.revcomp(self.motifs[m])
            for _ in range(50):
                start = g.tss0 + int(rng.integers(-BACKGROUND_RANGE, BACKGROUND_RANGE))
                if self.genome.free(g.chrom, start, start + len(seq)):
                    self._write_motif(g.chrom, start, seq)
                    break

    def plant_causal(self, g: Gene, track: int = 0):
        rng = self.rng
        n_causal = int(rng.choice([1, 1, 1, 2, 2, 3]))
        taken = {id(c["variant"]) for c in g.causal}  # another tissue's causal SNVs
        cands = [
            v
            for v in self.genome.variants[g.chrom]
            if v.kind == "snv"
            and abs(v.pos0 - g.tss0) <= CAUSAL_RANGE
            and v.maf() >= MIN_CAUSAL_MAF
            and id(v) not in taken
        ]
        n_before = len(g.causal)
        for v in [cands[i] for i in rng.permutation(len(cands))]:
            if len(g.causal) - n_before >= n_causal:
                break
            design = self._design(g, v, track)
            if design is not None:
                g.causal.append(design)

    def _design(self, g: Gene, v: Variant, track: int = 0) -> dict | None:
        """Rewrite the reference around SNV `v` so that its ALT creates or breaks a motif of
        `track`'s tissue."""
        rng = self.rng
        chrom, p0 = g.chrom, v.pos0
        ref = self.genome.ref[chrom]
        rbase = chr(ref[p0])
        own = self.track_motifs[track]
        for _ in range(30):
            m = own[int(rng.integers(len(own)))]
            seq = self.motifs[m] if rng.random() < 0.5 else self.revcomp(self.motifs[m])
            mode = "create" if rng.random() < 0.5 else "break"
            offs = [o for o, b in enumerate(seq) if (b != rbase) == (mode == "create")]
            if not offs:
                continue
            o = int(rng.choice(offs))
            start = p0 - o
            if not self.genome.free(chrom, start, start + len(seq), except_pos0=p0):
                continue
            alt = seq[o] if mode == "create" else other_bases(rng, ref[p0], 1)[0]
            saved = ref[start : start + len(seq)].copy()
            self._write_motif(chrom, start, seq, keep_pos0=p0)
            old_alts = v.alts
            v.alts = [alt]
            levels = self.readout(np.stack([self.ref_window(g), self.alt_window(g, v, 1)]), [track])
            effect = float(levels[1, 0] - levels[0, 0])
            sign = np.sign(self.weights[track][m]) * (1 if mode == "create" else -1)
            if abs(effect) >= MIN_CAUSAL_EFFECT and np.sign(effect) == sign:
                return {
                    "variant": v,
                    "motif": m,
                    "mode": mode,
                    "start0": start,
                    "length": len(seq),
                    "sign": sign,
                    "track": track,
                }
            ref[start : start + len(seq)] = saved  # undo: too weak (far from the TSS or saturated)
            self.genome.reserved[chrom][start : start + len(seq)] = False
            v.alts = old_alts
        return None

    # -- accidental motif changes and verification -------------------------------------------
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
                            ref[q] = ord(other_bases(self.rng, ref[q], 1)[0])
                            changed = True
            if not changed:
                return
        raise RuntimeError(f"{g.gene_id}: accidental motif removal did not converge")

    def verify(self, genes: list[Gene]):
        """ISM of every variant allele in every window on every tissue track: causal =
        designed sign on its own track, ~0 on the others; non-causal SNVs ~0 everywhere."""
        for g in genes:
            ref_level = self.readout(self.ref_window(g), self.tracks)[0]
            designed = {id(c["variant"]): c for c in g.causal}
            vs = [(v, a) for v in self.gene_variants(g) for a in range(1, len(v.alts) + 1)]
            g.ref_readout = [float(x) for x in ref_level]
            if not vs:
                continue
            eff = self.readout(np.stack([self.alt_window(g, v, a) for v, a in vs]), self.tracks) - ref_level
            for (v, a), es in zip(vs, eff, strict=True):
                c = designed.get(id(v))
                for t, e in zip(self.tracks, es, strict=True):
                    if c is not None and t == c["track"]:
                        if np.sign(e) != c["sign"] or abs(e) < MIN_CAUSAL_EFFECT / 2:
                            raise RuntimeError(
                                f"{g.gene_id}: causal {v.variant_id(a)} effect {e:.4g} not as designed"
                            )
                        c["effect"] = float(e)
                    elif (c is not None or v.kind in ("snv", "multi")) and abs(e) > MAX_SNV_SIDE_EFFECT:
                        raise RuntimeError(
                            f"{g.gene_id}: {v.variant_id(a)} has ISM {e:.4g} on track {t}, not its own"
                        )
