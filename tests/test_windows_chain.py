"""TSS-centred windows against an independent answer: `bcftools consensus -c chain`.

For random cohorts dense in overlapping records (indels, MNPs, complex records,
deletions across the TSS and across window edges, insertions right before the TSS),
each personal haplotype of a whole chromosome is built by bcftools with its chain
file; the TSS (1-based, from the gene table) is mapped through the chain onto the
haplotype, and the expected window is cut around it there (N beyond the chromosome
ends), reverse-complemented for minus-strand genes. Every window of
`HaplotypeIndex.gene_haplotypes` must equal it byte for byte.

Convention when the TSS base itself is deleted on a haplotype (it lies in a chain
gap): the window is anchored at the first reference base after the gap, i.e. the
start of the chain's next aligned block on that haplotype (the base that follows
the deleted or replaced segment, in forward-strand coordinates); such windows are
reported by `tss_deleted` and checked with that convention.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from hapexp.sequences.haplotypes import build_index
from hapexp.sequences.index import HaplotypeIndex
from hapexp.variants.normalize import normalize
from tests.independent import revcomp

pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
BASES = list("ACGT")


def random_cohort(d: Path, seed: int, n_samples: int = 8, length: int = 3000, n_records: int = 180):
    """Reference + phased VCF (one chromosome) dense in overlapping records, and genes
    whose TSSs sit on, inside, right after and near the records."""
    rng = np.random.default_rng(seed)
    seq = "".join(rng.choice(BASES, length))
    (d / "ref.fa").write_text(f">c1\n{seq}\n")
    pysam.faidx(str(d / "ref.fa"))
    # positions clustered in hot spots so that records overlap
    hot = rng.choice(np.arange(30, length - 30), 40, replace=False)
    recs = set()
    while len(recs) < n_records:
        pos = int(np.clip(rng.choice(hot) + rng.integers(-6, 7), 2, length - 12))  # 1-based
        kind = rng.choice(["snv", "mnp", "ins", "del", "del_long", "complex", "complex2"])
        ref = seq[pos - 1]
        if kind == "snv":
            alt = rng.choice([b for b in BASES if b != ref])
        elif kind == "mnp":
            ref = seq[pos - 1 : pos + 1]
            alt = "".join(rng.choice([b for b in BASES if b != c]) for c in ref)
        elif kind == "ins":
            alt = ref + "".join(rng.choice(BASES, int(rng.integers(1, 6))))
        elif kind in ("del", "del_long"):
            n = int(rng.integers(1, 4)) if kind == "del" else int(rng.integers(5, 10))
            ref = seq[pos - 1 : pos + n]
            alt = ref[0]
        elif kind == "complex":  # length change, first base differs: the whole record is a chain gap
            ref = seq[pos - 1 : pos + 1]
            alt = "".join(rng.choice([b for b in BASES if b != ref[0]])) + "".join(
                rng.choice(BASES, int(rng.integers(2, 4)))
            )
        else:  # shared first base, then a different sequence of another length
            ref = seq[pos - 1 : pos + 2]
            alt = ref[0] + "".join(rng.choice(BASES, int(rng.integers(3, 6))))
        if ref != alt:
            recs.add((pos, ref, alt))
    samples = [f"S{i}" for i in range(n_samples)]
    lines = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID=c1,length={length}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
    ]
    for pos, ref, alt in sorted(recs):
        gts = [f"{int(rng.random() < 0.3)}|{int(rng.random() < 0.3)}" for _ in samples]
        lines.append(f"c1\t{pos}\t.\t{ref}\t{alt}\t.\t.\t.\tGT\t" + "\t".join(gts))
    (d / "raw.vcf").write_text("\n".join(lines) + "\n")
    subprocess.run(["bcftools", "view", "-Oz", "-o", str(d / "raw.vcf.gz"), str(d / "raw.vcf")], check=True)
    subprocess.run(["bcftools", "index", "-t", str(d / "raw.vcf.gz")], check=True)
    normalize([str(d / "raw.vcf.gz")], d / "ref.fa", d / "norm.bcf")
    # TSSs: on every record's first bases, right after them, and random; both strands
    tss = set()
    for pos, ref, _ in sorted(recs):
        for off in (0, 1, 2, len(ref), len(ref) + 1):
            tss.add(pos + off)
    tss |= {int(x) for x in rng.integers(1, length + 1, 40)}
    tss |= {1, 2, 5, length - 3, length}  # windows off both chromosome ends
    tss = sorted(t for t in tss if 1 <= t <= length)
    genes = pd.DataFrame(
        {
            "gene_id": [f"g{t}{s}" for t in tss for s in "+-"],
            "name": [f"g{t}{s}" for t in tss for s in "+-"],
            "chrom": "c1",
            "tss": [t for t in tss for _ in "+-"],
            "strand": [s for _ in tss for s in "+-"],
        }
    )
    return genes, samples


def bcftools_haplotype(d: Path, sample: str, hap: int, fasta=None, bcf=None, mode="pIu", chrom=None):
    """bcftools consensus of a whole chromosome and its chain's aligned blocks
    [(ref_start0, alt_start0, length)]; (None, None) when bcftools refuses the haplotype."""
    fasta = Path(fasta or d / "ref.fa")
    if chrom is not None:  # one chromosome of a multi-chromosome FASTA
        one = d / f"{fasta.stem}.{chrom}.fa"
        if not one.exists():
            with pysam.FastaFile(str(fasta)) as fa:
                one.write_text(f">{chrom}\n{fa.fetch(chrom)}\n")
        fasta = one
    chain = d / f"{sample}_{hap}_{chrom}.chain"
    cmd = ["bcftools", "consensus", "-f", str(fasta), "-s", sample, "-H", f"{hap}{mode}", "-c", str(chain)]
    cmd += ["-e", 'ALT~"<" || ALT="*"', str(bcf or d / "norm.bcf")]  # symbolic alleles: skipped by policy
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return None, None
    seq = "".join(out.stdout.splitlines()[1:]).upper().encode()
    blocks = []
    lines = [x.split() for x in chain.read_text().splitlines() if x.strip()]
    header = lines[0]
    r, a = int(header[5]), int(header[10])
    for fields in lines[1:]:
        n = int(fields[0])
        blocks.append((r, a, n))
        if len(fields) == 3:
            r += n + int(fields[1])
            a += n + int(fields[2])
    return seq, blocks


def map_tss(blocks, tss0: int) -> tuple[int, bool]:
    """Haplotype position of reference base `tss0` (0-based), and whether it was deleted
    (then: the start of the next aligned block, the documented convention)."""
    for r, a, n in blocks:
        if r <= tss0 < r + n:
            return a + (tss0 - r), False
        if tss0 < r:
            return a, True
    r, a, n = blocks[-1]
    return a + n, True


def expected_window(seq: bytes, p: int, strand: str, length: int) -> bytes:
    lo = p - length // 2 + (1 if strand == "-" else 0)
    out = bytearray(b"N" * length)
    for i in range(length):
        if 0 <= lo + i < len(seq):
            out[i] = seq[lo + i]
    if strand == "-":
        out = bytearray(revcomp(np.frombuffer(bytes(out), np.uint8)).tobytes())
    return bytes(out)


# seed 5 has identical records (indels left-aligned onto one another), which bcftools
# consensus applies one after the other
@pytest.mark.parametrize("seed", [1, 2, 5])
def test_windows_equal_bcftools_chain(tmp_path, seed):
    genes, samples = random_cohort(tmp_path, seed)
    length = 40
    out = tmp_path / "idx.npz"
    build_index(tmp_path / "norm.bcf", tmp_path / "ref.fa", genes, length, out)
    idx = HaplotypeIndex.load(out)
    haps = {(s, h): bcftools_haplotype(tmp_path, s, h) for s in samples for h in (1, 2)}
    assert all(seq is not None for seq, _ in haps.values()), "bcftools refused a haplotype"
    n_windows = n_deleted = 0
    for g in genes.itertuples(index=False):
        gh = idx.gene_haplotypes(g.gene_id, length, rc_minus=True)
        for si, s in enumerate(samples):
            for h in (1, 2):
                seq, blocks = haps[s, h]
                p, deleted = map_tss(blocks, int(g.tss) - 1)
                want = expected_window(seq, p, g.strand, length)
                got = gh.haplotype(si, h).tobytes()
                assert got == want, (g.gene_id, s, h, deleted, got, want)
                assert bool(gh.tss_deleted[gh.hap_map[si, h - 1]]) == deleted, (g.gene_id, s, h)
                n_windows += 1
                n_deleted += deleted
    assert n_windows == len(genes) * len(samples) * 2 > 4000
    assert n_deleted > 100  # the deleted-TSS convention was exercised


def map_interval(blocks, s0: int, e0: int) -> tuple[int, int]:
    """Haplotype [start, end) of reference [s0, e0) through the chain: the start base (or the
    next aligned base when it is deleted) to one past the last base (or the next aligned
    base when that is deleted); an interval deleted whole is empty."""
    start, _ = map_tss(blocks, s0)
    last, deleted = map_tss(blocks, e0 - 1)
    end = last if deleted else last + 1
    return start, max(end, start)


@pytest.mark.parametrize("seed", [3])  # 57,632 exon x haplotype mappings (seed 4 adds 55,776, all equal)
def test_exons_follow_each_haplotype_like_bcftools_chain(tmp_path, seed):
    """Exons (random intervals near each TSS: over indels, deleted whole, across the window
    edges) mapped onto every haplotype's window equal the chain's mapping, and the window's
    bases there are the haplotype's own exon bases."""
    genes, samples = random_cohort(tmp_path, seed)
    length = 40
    build_index(tmp_path / "norm.bcf", tmp_path / "ref.fa", genes, length, tmp_path / "idx.npz")
    idx = HaplotypeIndex.load(tmp_path / "idx.npz")
    haps = {(s, h): bcftools_haplotype(tmp_path, s, h) for s in samples for h in (1, 2)}
    rng = np.random.default_rng(seed)
    n_checked = n_changed = n_empty = 0
    for g in genes.itertuples(index=False):
        tss0 = int(g.tss) - 1
        starts = tss0 + rng.integers(-30, 30, 4)
        ex = np.stack([starts, starts + rng.integers(1, 12, 4)], 1)
        ex = ex[(ex[:, 0] >= 0) & (ex[:, 1] <= 3000)]  # on the chromosome (3,000 bp)
        gh = idx.gene_haplotypes(g.gene_id, length, rc_minus=True, exons=ex)
        for si, s in enumerate(samples):
            for h in (1, 2):
                seq, blocks = haps[s, h]
                p, _ = map_tss(blocks, tss0)
                lo = p - length // 2 + (1 if g.strand == "-" else 0)
                got = gh.exons[gh.hap_map[si, h - 1]]
                win = gh.haplotype(si, h)
                for k, (s0, e0) in enumerate(ex):
                    a, b = map_interval(blocks, int(s0), int(e0))
                    want = (a - lo, b - lo) if g.strand == "+" else (length - (b - lo), length - (a - lo))
                    assert tuple(got[k]) == want, (g.gene_id, s, h, (s0, e0), tuple(got[k]), want)
                    n_checked += 1
                    n_changed += (b - a) != (e0 - s0)
                    n_empty += a == b
                    if want[0] >= 0 and want[1] <= length and b > a:
                        piece = np.frombuffer(seq[a:b], np.uint8)
                        if g.strand == "-":
                            piece = revcomp(piece)
                        assert win[want[0] : want[1]].tobytes() == piece.tobytes()
    assert n_checked > 50000 and n_changed > 5000 and n_empty > 500, (n_checked, n_changed, n_empty)
