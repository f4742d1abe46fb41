"""Exactness of hapexp.sequences (index, plan, render) against real `bcftools consensus`, policies, windows.

The adversarial cohort (tests/data/adversarial/) is hand-made: a deletion spanning
the window start and one spanning its end, an insertion at the TSS (both strands),
overlapping records (SNV inside a deletion, SNV + insertion at one position,
insertion at a deletion's last base, deletion at a frozen base), multi-allelic
sites split by norm (SNV+insertion, two indels), missing and half-missing and
unphased genotypes, a symbolic <DEL>, an MNP, a complex record, genes at both ends
of a chromosome and minus-strand genes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hapexp.errors import InputError
from hapexp.sequences.haplotypes import build_index
from hapexp.sequences.index import HaplotypeIndex
from hapexp.variants.normalize import normalize
from hapexp.variants.windows import window_bounds
from tests.independent import revcomp
from tests.test_windows_chain import bcftools_haplotype, expected_window, map_tss

ADV = Path(__file__).parent / "data" / "adversarial"
L = 64
pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")


def _bgzip_vcf(text_vcf: Path, out: Path) -> Path:
    subprocess.run(f"bgzip -c {text_vcf} > {out}", shell=True, check=True)
    subprocess.run(["tabix", "-f", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def adv(tmp_path_factory):
    d = tmp_path_factory.mktemp("adv")
    fa = d / "reference.fa"
    shutil.copy(ADV / "reference.fa", fa)
    vcf = _bgzip_vcf(ADV / "cohort.vcf", d / "cohort.vcf.gz")
    genes = pd.read_csv(ADV / "genes.tsv", sep="\t")
    norm = d / "normalized.bcf"
    stats = normalize([str(vcf)], fa, norm)
    return {"dir": d, "fa": fa, "vcf": vcf, "bcf": norm, "genes": genes, "stats": stats}


def _index(adv, name, policies, window=L, samples=None, bcf=None):
    out = adv["dir"] / f"{name}.npz"
    counts = build_index(
        bcf or adv["bcf"], adv["fa"], adv["genes"], window, out, samples=samples, policies=policies
    )
    return HaplotypeIndex.load(out), counts


def _fasta_seq(fa, chrom, a, b):
    import pysam

    with pysam.FastaFile(str(fa)) as f:
        return f.fetch(chrom, a, b).upper()


def bcftools_consensus(adv, chrom, a, b, sample, hap, mode="pIu", bcf=None, exclude=True):
    """`bcftools consensus -H {hap}{mode} -s sample` over the region [a, b) (0-based)."""
    d = adv["dir"]
    reg = d / f"reg_{chrom}_{a}_{b}.fa"
    reg.write_text(f">{chrom}:{a + 1}-{b}\n{_fasta_seq(adv['fa'], chrom, a, b)}\n")
    cmd = ["bcftools", "consensus", "-f", str(reg), "-s", sample, "-H", f"{hap}{mode}"]
    if exclude:  # symbolic / spanning-deletion alleles are skipped by policy on both sides
        cmd += ["-e", 'ALT~"<" || ALT="*"']
    out = subprocess.run([*cmd, str(bcf or adv["bcf"])], capture_output=True, text=True, check=True).stdout
    return "".join(out.splitlines()[1:]).upper().encode()


def _regions(idx, gid):
    """Regions to compare: the gene's L window (both strands' shift) and wider ones."""
    g = idx.genes.set_index("gene_id").loc[gid]
    w0, w1 = window_bounds(g.tss, g.strand, L)
    i = idx._g(gid)
    s0, e0 = int(idx.arrays["reg_start0"][i]), int(idx.arrays["reg_end0"][i])
    cands = [(w0, w1), (w0 - 7, w1 + 9), (s0, e0), (w0 + 1, w1 - 1)]
    return [(max(a, s0), min(b, e0)) for a, b in cands]


def test_normalize_counts_and_split(adv):
    assert adv["stats"]["records"] == 34  # 31 records, 3 multi-allelic split into 2
    assert adv["stats"]["ref_mismatch"] == 0


@pytest.mark.parametrize("policy", ["first", "ref"])
def test_byte_exact_vs_bcftools(adv, policy):
    idx, counts = _index(adv, f"exact_{policy}", {"unphased": policy, "missing": "ref"})
    assert counts["skipped_symbolic"] == 1
    assert counts["missing_alleles"] == 6  # ./. and 0|. on both split records
    assert counts["unphased_heterozygous"] == 1
    bcf = adv["bcf"]
    if policy == "ref":  # what bcftools sees when the unphased call is read as reference
        txt = subprocess.run(
            ["bcftools", "view", str(bcf)], capture_output=True, text=True, check=True
        ).stdout
        txt = txt.replace("\t0|0\t0/1\n", "\t0|0\t0|0\n")
        p = adv["dir"] / "unphased_ref.vcf"
        p.write_text(txt)
        bcf = _bgzip_vcf(p, adv["dir"] / "unphased_ref.vcf.gz")
    mode = "" if policy == "first" else "pIu"  # -H 1 reads 0/1 in written order
    n = 0
    for gid in idx.genes.gene_id:
        g = idx.genes.set_index("gene_id").loc[gid]
        for a, b in _regions(idx, gid):
            for s in idx.samples:
                for h in (1, 2):
                    ours = idx.consensus(gid, s, h, a, b)
                    theirs = bcftools_consensus(adv, g.chrom, a, b, s, h, mode, bcf=bcf)
                    assert ours == theirs, (gid, s, h, a, b, ours, theirs)
                    n += 1
    assert n == 4 * 4 * 5 * 2


def test_windows_reanchor_pad_and_rc(adv):
    idx, _ = _index(adv, "win", {"unphased": "first"})
    for gid in idx.genes.gene_id:
        g = idx.genes.set_index("gene_id").loc[gid]
        gh = idx.gene_haplotypes(gid, L, rc_minus=True)
        assert gh.sequences.shape[1] == L and gh.tss_index == L // 2
        assert gh.flipped == (g.strand == "-")
        tss0 = int(g.tss) - 1
        ref_base = _fasta_seq(adv["fa"], g.chrom, tss0, tss0 + 1).encode()[0]
        fwd_ref = revcomp(gh.reference) if gh.flipped else gh.reference
        fwd_tss = L - 1 - gh.tss_index if gh.flipped else gh.tss_index
        assert fwd_ref[fwd_tss] == ref_base
        # every window equals bcftools' whole-chromosome consensus cut around the TSS
        # mapped through bcftools' chain (tests/test_windows_chain.py)
        for si, s in enumerate(idx.samples):
            for h in (1, 2):
                seq, blocks = bcftools_haplotype(adv["dir"], s, h, adv["fa"], adv["bcf"], "", g.chrom)
                p, deleted = map_tss(blocks, tss0)
                assert gh.haplotype(si, h).tobytes() == expected_window(seq, p, g.strand, L), (gid, s, h)
                assert gh.tss_deleted[gh.hap_map[si, h - 1]] == deleted
    # chromosome ends: padded on the correct side
    gs = idx.gene_haplotypes("G_START", L)
    w0, _ = window_bounds(10, "+", L)
    assert (gs.reference[:-w0] == ord("N")).all() and gs.reference[-w0] != ord("N")
    ge = idx.gene_haplotypes("G_END", L, rc_minus=True)  # minus: chromosome end is the RC start
    _, w1 = window_bounds(295, "-", L)
    pad = w1 - 300
    assert (ge.reference[:pad] == ord("N")).all() and ge.reference[pad] != ord("N")
    ge_f = idx.gene_haplotypes("G_END", L, rc_minus=False)
    assert ge_f.tss_index == L // 2 - 1 and (ge_f.reference[-pad:] == ord("N")).all()
    assert (revcomp(ge_f.sequences) == ge.sequences).all()


def test_insertion_at_tss_keeps_tss_at_center(adv):
    idx, _ = _index(adv, "tss", {"unphased": "first"})
    gh = idx.gene_haplotypes("G_PLUS", L)
    s2 = idx.samples.index("S2")  # S2 hap1 carries A>ACGT at the TSS (1-based 200)
    seq = gh.haplotype(s2, 1)
    assert bytes(seq[L // 2 : L // 2 + 4]) == b"ACGT"
    # bases upstream of the TSS are unchanged by the insertion
    assert bytes(seq[: L // 2])[-5:] == bytes(gh.reference[: L // 2])[-5:]
    gm = idx.gene_haplotypes("G_MINUS", L)  # S1 hap1: G>GTT at the TSS of a minus gene
    s1 = gm.haplotype(idx.samples.index("S1"), 1)
    assert s1[gm.tss_index] == gm.reference[gm.tss_index]
    # downstream (in gene orientation) of the TSS is unchanged; the insertion lies upstream
    assert (s1[gm.tss_index :][:10] == gm.reference[gm.tss_index :][:10]).all()
    assert bytes(revcomp(s1))[L - 1 - gm.tss_index :][:3] == b"GTT"


def test_dedup_map_and_ratio(adv):
    idx, _ = _index(adv, "dedup", {"unphased": "first"})
    for gid in idx.genes.gene_id:
        gh = idx.gene_haplotypes(gid, L)
        assert gh.hap_map.shape == (5, 2)
        assert len(np.unique(gh.sequences, axis=0)) <= gh.n_unique <= 10
        assert set(np.unique(gh.hap_map)) == set(range(gh.n_unique))
    ratio = idx.unique_ratio(L)
    assert ((ratio.unique_ratio > 0) & (ratio.unique_ratio <= 1)).all()


def test_variants_and_single_variant_sequences(adv):
    idx, _ = _index(adv, "ism", {"unphased": "first"})
    vt = idx.variants("G_PLUS", L)
    assert {"variant_id", "chrom", "pos", "ref", "alt", "af", "is_snv"} <= set(vt.columns)
    assert vt.pos.between(200 - 32, 200 + 31).all()
    assert "chr1_200_A_ACGT" in set(vt.variant_id)
    af = vt.set_index("variant_id").af
    assert af["chr1_200_A_ACGT"] == pytest.approx(2 / 10)
    seqs = idx.single_variant_sequences("G_PLUS", L, ["chr1_200_A_ACGT", "chr1_180_A_G"])
    gh = idx.gene_haplotypes("G_PLUS", L)
    assert bytes(seqs[0, L // 2 : L // 2 + 4]) == b"ACGT"
    diff = np.flatnonzero(seqs[1] != gh.reference)
    assert list(diff) == [180 - 1 - (200 - 1 - L // 2)] and seqs[1, diff[0]] == ord("G")
    sm = idx.single_variant_sequences("G_MINUS", L, ["chr1_405_AA_GT"])
    gm = idx.gene_haplotypes("G_MINUS", L)
    assert (sm[0] != gm.reference).sum() == 2 and gm.flipped


def test_policies(adv):
    with pytest.raises(InputError, match=r"chr1:420.*unphased heterozygous.*S5"):
        _index(adv, "unph", {"unphased": "error"})
    with pytest.raises(InputError, match=r"chr1:210.*missing genotype.*S4"):
        _index(adv, "miss", {"missing": "error", "unphased": "first"})
    idx, c = _index(adv, "snv", {"snv_only": True, "unphased": "first"})
    v = idx.variants("G_PLUS", L)
    assert v.is_snv.all() and c["skipped_indel_snv_only"] > 0
    idx, c = _index(adv, "maf", {"maf": 0.25, "unphased": "first"})
    for gid in idx.genes.gene_id:
        v = idx.variants(gid, L)
        assert (np.minimum(v.af, 1 - v.af) >= 0.25).all()
    assert c["skipped_maf"] > 0


def test_bad_inputs(adv, tmp_path):
    # REF mismatch: count + first example
    txt = (ADV / "cohort.vcf").read_text().replace("chr2\t12\tsnv\tG\tT", "chr2\t12\tsnv\tC\tT")
    (tmp_path / "bad.vcf").write_text(txt)
    bad = _bgzip_vcf(tmp_path / "bad.vcf", tmp_path / "bad.vcf.gz")
    with pytest.raises(InputError, match=r"1 of \d+ records have a REF.*chr2:12 REF=C FASTA=G"):
        normalize([str(bad)], adv["fa"], tmp_path / "n.bcf")
    assert not (tmp_path / "n.bcf").exists()
    # contig naming: '1' vs 'chr1'
    txt = (ADV / "cohort.vcf").read_text().replace("chr1", "1").replace("chr2", "2")
    (tmp_path / "nochr.vcf").write_text(txt)
    nochr = _bgzip_vcf(tmp_path / "nochr.vcf", tmp_path / "nochr.vcf.gz")
    with pytest.raises(InputError, match=r"harmonize_chrom"):
        normalize([str(nochr)], adv["fa"], tmp_path / "n2.bcf", harmonize=False)
    normalize([str(nochr)], adv["fa"], tmp_path / "n3.bcf", harmonize=True)
    q = subprocess.run(
        ["bcftools", "query", "-f", "%CHROM\n", str(tmp_path / "n3.bcf")], capture_output=True, text=True
    )
    assert set(q.stdout.split()) == {"chr1", "chr2"}


def test_iterator_matches_and_export(adv, tmp_path):
    from hapexp.sequences.fasta import export_fasta

    idx, _ = _index(adv, "iter", {"unphased": "first"})
    for gid in idx.genes.gene_id:
        gh = idx.gene_haplotypes(gid, L)
        it = idx.iter_gene_haplotypes(gid, L, batch_size=3)
        head = next(it)
        assert (head.hap_map == gh.hap_map).all() and (head.reference == gh.reference).all()
        got = np.concatenate([s for _, s in it])
        assert (got == gh.sequences).all()
    out = tmp_path / "x.fa"
    n = export_fasta([adv["dir"] / "iter.npz"], out, genes=["G_PLUS", "G_MINUS"], samples=["S2"], length=L)
    text = out.read_text().split(">")[1:]
    assert n == 4 and [t.split("\n", 1)[0] for t in text] == [
        "S2|1|G_PLUS",
        "S2|2|G_PLUS",
        "S2|1|G_MINUS",
        "S2|2|G_MINUS",
    ]
    seq = text[0].split("\n", 1)[1].replace("\n", "")
    gh = idx.gene_haplotypes("G_PLUS", L, rc_minus=False)
    assert seq.encode() == gh.haplotype(idx.samples.index("S2"), 1).tobytes()
    with pytest.raises(ValueError, match="NOPE"):
        export_fasta([adv["dir"] / "iter.npz"], tmp_path / "y.fa", genes=["NOPE"])


def test_demo_cohort_byte_exact(tmp_path):
    """The demo simulator's cohort (SNVs + indels, both strands) vs bcftools consensus."""
    sim = pytest.importorskip("hapexp.demo.simulate")
    pytest.importorskip("torch")
    sim.simulate_demo(tmp_path, seed=5, n_individuals=12, n_chromosomes=1, chromosome_length=60000, n_genes=6)
    genes = pd.read_csv(tmp_path / "genes.tsv", sep="\t")
    normalize([str(tmp_path / "cohort.vcf.gz")], tmp_path / "reference.fa", tmp_path / "norm.bcf")
    out = tmp_path / "idx.npz"
    counts = build_index(tmp_path / "norm.bcf", tmp_path / "reference.fa", genes, 2048, out)
    idx = HaplotypeIndex.load(out)
    adv = {"dir": tmp_path, "fa": tmp_path / "reference.fa", "bcf": tmp_path / "norm.bcf"}
    n_indel_haps = 0
    for gid in idx.genes.gene_id:
        g = idx.genes.set_index("gene_id").loc[gid]
        i = idx._g(gid)
        a, b = int(idx.arrays["reg_start0"][i]), int(idx.arrays["reg_end0"][i])
        for s in idx.samples[:6]:
            for h in (1, 2):
                ours = idx.consensus(gid, s, h, a, b)
                assert ours == bcftools_consensus(adv, g.chrom, a, b, s, h, "pIu"), (gid, s, h)
                n_indel_haps += len(ours) != b - a
    assert counts["variants_kept"] > 50 and n_indel_haps > 0  # indels were exercised


def test_reference_window_is_the_fasta(adv):
    """ISM's reference window (no haplotype rendered) = the FASTA cut around the TSS,
    N off the chromosome ends, reverse-complemented on minus genes."""
    import pysam

    idx, _ = _index(adv, "refwin", {"unphased": "first"})
    with pysam.FastaFile(str(adv["fa"])) as fa:
        for g in idx.genes.itertuples(index=False):
            w0, w1 = window_bounds(g.tss, g.strand, L)
            n = fa.get_reference_length(g.chrom)
            want = "".join(fa.fetch(g.chrom, i, i + 1).upper() if 0 <= i < n else "N" for i in range(w0, w1))
            want = np.frombuffer(want.encode(), np.uint8)
            for rc in (True, False):
                seq, ti = idx.reference_window(g.gene_id, L, rc_minus=rc)
                flip = rc and g.strand == "-"
                assert seq.tobytes() == (revcomp(want) if flip else want).tobytes(), (g.gene_id, rc)
                assert ti == (L // 2 - 1 if (g.strand == "-" and not rc) else L // 2)
