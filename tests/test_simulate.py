"""Demo cohort simulator: determinism, VCF validity, gene layout, truth and expression.

The checks that recompute readouts use their own window code (not hapexp.demo.readout's),
straight from the written files, so a shared bug cannot cancel out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pysam
import pytest
import torch

from hapexp.demo.readout import personal_window
from hapexp.demo.simulate import OUTPUT_FILES, simulate_demo
from hapexp.models.oracle import DEFAULT_MOTIFS, Oracle, one_hot

WINDOW = 2048
SMALL = {"n_individuals": 100, "n_chromosomes": 2, "chromosome_length": 120_000, "n_genes": 12}
COMP = str.maketrans("ACGTN", "TGCAN")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs with seed 3 and one with seed 4 (no hidden factors: clean h2 check)."""
    out = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        d = tmp_path_factory.mktemp(f"sim_{name}")
        summary = simulate_demo(d, seed=seed, hidden_fraction=0.0, **SMALL)
        out[name] = (d, summary)
    return out


@pytest.fixture(scope="module")
def demo(runs):
    return runs["a"][0]


def gene_window(fasta: pysam.FastaFile, chrom: str, tss: int, strand: str, subst=None) -> str:
    """Reference window in gene orientation (docs/architecture.md), N beyond the ends.

    subst: {0-based pos: base} SNV substitutions.
    """
    tss0 = tss - 1
    start = tss0 - WINDOW // 2 if strand == "+" else tss0 - WINDOW // 2 + 1
    n = fasta.get_reference_length(chrom)
    lo, hi = max(start, 0), min(start + WINDOW, n)
    seq = list("N" * (lo - start) + fasta.fetch(chrom, lo, hi).upper() + "N" * (start + WINDOW - hi))
    for p, base in (subst or {}).items():
        if start <= p < start + WINDOW:
            seq[p - start] = base
    seq = "".join(seq)
    return seq.translate(COMP)[::-1] if strand == "-" else seq


def readout(model: Oracle, seqs: list[str]) -> np.ndarray:
    x = one_hot(np.stack([np.frombuffer(s.encode(), dtype=np.uint8) for s in seqs])).float()
    with torch.no_grad():
        y = model(x)
    return y[:, 7:9, 0].sum(1).double().numpy()  # TSS bin 8, 2 central bins: 7, 8


def test_all_outputs_written_and_deterministic(runs):
    (a, sa), (b, _), (c, _) = runs["a"], runs["b"], runs["c"]
    for name in OUTPUT_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("reference.fa", "cohort.vcf.gz", "expression.tsv", "genes.tsv", "truth.tsv"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name
    assert not [p for p in a.iterdir() if p.name.startswith(".")]  # no temp leftovers
    assert sa["genes_plus"] > 0 and sa["genes_minus"] > 0


# Content hashes (sha256, first 16 hex digits) of the one-tissue demo's files for the
# `runs` fixture's seed-3 run, recorded from the simulator before the multi-tissue demo was
# added (simulate.tissues: []), which must not change it. A regression pin on top of the
# property tests: the VCF is hashed decompressed and the oracle as hparams + tensors (the
# .tbi is left out), so that a new zlib or torch serializer does not trip it; a new
# msprime/numpy may legitimately change the cohort: then re-record (and say why).
ONE_TISSUE_CONTENT = {
    "cohort.vcf.gz": "1ffa1d972e15ea4f",
    "covariates.tsv": "a88f852fbec85693",
    "exons.tsv": "008974c039c26a0e",
    "expression.tsv": "0258f2a739fa5d63",
    "expression_noiseless.tsv": "571f5f89476cce8f",
    "genes.tsv": "32216b39bb84041d",
    "oracle.pt": "4e50affe8daf8006",
    "reference.fa": "9c52da97fabc9f40",
    "reference.fa.fai": "dbba3584617970ee",
    "truth.tsv": "cbc261262fe401e6",
    "truth_genes.tsv": "4258bf3d3ae022bf",
}


def content_hash(path) -> str:
    if path.suffix == ".pt":
        obj = torch.load(path, weights_only=True)
        h = hashlib.sha256(json.dumps([obj["format"], obj["hparams"]], sort_keys=True).encode())
        for k in sorted(obj["state_dict"]):
            h.update(k.encode())
            h.update(obj["state_dict"][k].numpy().tobytes())
        return h.hexdigest()[:16]
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def test_one_tissue_demo_unchanged(demo):
    assert set(ONE_TISSUE_CONTENT) == set(OUTPUT_FILES) - {"cohort.vcf.gz.tbi"}
    got = {name: content_hash(demo / name) for name in ONE_TISSUE_CONTENT}
    assert got == ONE_TISSUE_CONTENT


def test_vcf_is_valid_and_matches_fasta(demo):
    fasta = pysam.FastaFile(str(demo / "reference.fa"))
    vcf = pysam.VariantFile(str(demo / "cohort.vcf.gz"))
    assert list(vcf.header.contigs) == ["chr1", "chr2"]
    for contig in vcf.header.contigs.values():
        assert contig.length == fasta.get_reference_length(contig.name)
    samples = list(vcf.header.samples)
    assert samples[0] == "S0001" and len(samples) == SMALL["n_individuals"]
    n = {"ins": 0, "del": 0, "multi": 0, "snv": 0}
    last = ("", -1)
    for rec in vcf:
        assert rec.ref == fasta.fetch(rec.chrom, rec.start, rec.stop).upper()
        assert (rec.chrom, rec.start) > last  # sorted, one record per position
        assert rec.start >= (last[1] if rec.chrom == last[0] else 0)
        last = (rec.chrom, rec.stop - 1)  # next record must start after this span
        assert all(rec.samples[s].phased for s in samples)
        if len(rec.alts) > 1:
            n["multi"] += 1
            assert len(rec.alts) == 2
        for alt in rec.alts:
            if len(alt) > len(rec.ref):
                n["ins"] += 1
                assert alt[0] == rec.ref and 1 <= len(alt) - 1 <= 10
            elif len(alt) < len(rec.ref):
                n["del"] += 1
                assert alt == rec.ref[0] and 1 <= len(rec.ref) - 1 <= 10
            else:
                n["snv"] += 1
    assert n["ins"] > 0 and n["del"] > 0 and n["multi"] >= 1 and n["snv"] > 1000


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
def test_bcftools_reads_it_and_indels_are_left_aligned(demo):
    vcf = str(demo / "cohort.vcf.gz")
    body = subprocess.run(["bcftools", "view", "-H", vcf], check=True, capture_output=True, text=True).stdout
    n_records = body.count("\n")
    assert n_records > 1000
    res = subprocess.run(
        ["bcftools", "norm", "-f", str(demo / "reference.fa"), "-c", "e", "-Ou", "-o", "/dev/null", vcf],
        check=True,
        capture_output=True,
        text=True,
    )
    # "Lines   total/split/realigned/skipped:	N/0/0/0": nothing to realign
    assert f"{n_records}/0/0/0" in res.stderr, res.stderr


def test_gene_layout(demo):
    genes = pd.read_csv(demo / "genes.tsv", sep="\t")
    assert list(genes.columns) == ["gene_id", "name", "chrom", "tss", "strand"]
    assert len(genes) == SMALL["n_genes"] and genes["gene_id"].str.fullmatch(r"ENSGSIM\d{6}").all()
    assert set(genes["strand"]) == {"+", "-"}
    length = SMALL["chromosome_length"]
    tss0 = genes["tss"] - 1
    start = np.where(genes["strand"] == "+", tss0 - WINDOW // 2, tss0 - WINDOW // 2 + 1)
    off = (start < 0) | (start + WINDOW > length)
    assert off.sum() == 1  # exactly one gene's window needs N padding
    near = genes[off].iloc[0]
    assert min(near["tss"], length - near["tss"] + 1) <= WINDOW // 2
    # windows of different genes never overlap
    s = np.sort(start[genes["chrom"] == "chr1"])
    assert np.all(np.diff(s) > WINDOW)


def test_truth_effects_are_the_oracle_ism(demo):
    """Recompute each causal SNV's effect from the files: oracle.pt + FASTA + gene table."""
    model = Oracle.load(demo / "oracle.pt")
    fasta = pysam.FastaFile(str(demo / "reference.fa"))
    genes = pd.read_csv(demo / "genes.tsv", sep="\t").set_index("gene_id")
    truth = pd.read_csv(demo / "truth.tsv", sep="\t")
    tg = pd.read_csv(demo / "truth_genes.tsv", sep="\t").set_index("gene_id")
    assert len(truth) >= (tg["h2"] > 0).sum()
    assert (
        truth["variant_id"]
        == truth["chrom"] + "_" + truth["pos"].astype(str) + "_" + truth["ref"] + "_" + truth["alt"]
    ).all()
    weights = {m[0]: m[2] for m in DEFAULT_MOTIFS}
    seqs = []
    for _, t in truth.iterrows():
        g = genes.loc[t["gene_id"]]
        assert abs(t["pos"] - g["tss"]) <= 900
        seqs.append(gene_window(fasta, g["chrom"], g["tss"], g["strand"]))
        seqs.append(gene_window(fasta, g["chrom"], g["tss"], g["strand"], subst={t["pos"] - 1: t["alt"]}))
    r = readout(model, seqs)
    r_ref, r_alt = r[0::2], r[1::2]
    np.testing.assert_allclose(r_alt - r_ref, truth["effect"], atol=1e-4)
    np.testing.assert_allclose(r_ref, tg.loc[truth["gene_id"], "ref_readout"], atol=1e-4)
    assert (truth["effect"].abs() > 0.02).all()
    expected_sign = np.sign(truth["motif"].map(weights)) * np.where(truth["mechanism"] == "create", 1, -1)
    assert (np.sign(truth["effect"]) == expected_sign).all()


def test_noiseless_expression_from_vcf_haplotypes(demo):
    """Rebuild personal windows from the VCF for individuals carrying no indel in the window.

    (With the TSS-anchored convention an indel outside the window changes nothing in it;
    indel anchoring itself is covered by test_personal_window_anchors_tss.)
    """
    model = Oracle.load(demo / "oracle.pt")
    fasta = pysam.FastaFile(str(demo / "reference.fa"))
    vcf = pysam.VariantFile(str(demo / "cohort.vcf.gz"))
    genes = pd.read_csv(demo / "genes.tsv", sep="\t")
    noiseless = pd.read_csv(demo / "expression_noiseless.tsv", sep="\t", index_col=0)
    checked = 0
    for _, g in genes.iterrows():
        tss0 = g["tss"] - 1
        start = tss0 - WINDOW // 2 if g["strand"] == "+" else tss0 - WINDOW // 2 + 1
        recs = list(vcf.fetch(g["chrom"], max(start - 20, 0), start + WINDOW + 20))
        indels = [r for r in recs if any(len(a) != len(r.ref) for a in r.alts)]
        samples = [s for s in noiseless.columns if all(max(r.samples[s]["GT"]) == 0 for r in indels)][:15]
        seqs = []
        for s in samples:
            for h in (0, 1):
                subst = {r.start: r.alleles[r.samples[s]["GT"][h]] for r in recs if r.samples[s]["GT"][h] > 0}
                seqs.append(gene_window(fasta, g["chrom"], g["tss"], g["strand"], subst))
        if not seqs:
            continue
        r = readout(model, seqs)
        np.testing.assert_allclose(0.5 * (r[0::2] + r[1::2]), noiseless.loc[g["gene_id"], samples], atol=1e-4)
        checked += len(samples)
    assert checked >= 50


def test_realised_h2_and_expression_levels(demo):
    expr = pd.read_csv(demo / "expression.tsv", sep="\t", index_col=0)
    noiseless = pd.read_csv(demo / "expression_noiseless.tsv", sep="\t", index_col=0)
    cov = pd.read_csv(demo / "covariates.tsv", sep="\t", index_col=0)
    tg = pd.read_csv(demo / "truth_genes.tsv", sep="\t", index_col=0)
    assert list(cov.index) == ["sex", "age", "rin"] and list(cov.columns) == list(expr.columns)
    assert set(cov.loc["sex"]) == {0.0, 1.0}
    X = np.column_stack([np.ones(expr.shape[1]), cov.T.to_numpy()])
    realised = {}
    for gene in expr.index:
        y = expr.loc[gene].to_numpy()
        resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
        if tg.loc[gene, "h2"] > 0:
            realised[gene] = np.corrcoef(noiseless.loc[gene], resid)[0, 1] ** 2
    h2 = tg.loc[list(realised), "h2"]
    assert 0.7 * len(expr) <= len(realised) < len(expr)  # ~20 % of genes have h2 = 0
    assert abs(np.mean(list(realised.values())) - h2.mean()) < 0.1
    # covariates have real effects: they explain a clear share of expression variance
    r2_cov = [
        1
        - np.var(expr.loc[g] - X @ np.linalg.lstsq(X, expr.loc[g].to_numpy(), rcond=None)[0])
        / np.var(expr.loc[g])
        for g in expr.index
    ]
    assert np.mean(r2_cov) > 0.1
    # genes differ in level, and mean expression follows the reference-genome readout
    assert expr.mean(axis=1).std() > 0.3
    assert np.corrcoef(expr.mean(axis=1), tg.loc[expr.index, "ref_readout"])[0, 1] > 0.95
    zero = tg.index[tg["h2"] == 0]
    np.testing.assert_allclose(expr.loc[zero].mean(axis=1), tg.loc[zero, "ref_readout"], rtol=0.1)


def test_eqtl_scan_finds_planted_variants(demo):
    """Marginal scan over each gene's chromosome: top variant = causal or LD proxy (r2 > 0.8)."""
    expr = pd.read_csv(demo / "expression.tsv", sep="\t", index_col=0)
    genes = pd.read_csv(demo / "genes.tsv", sep="\t", index_col=0)
    truth = pd.read_csv(demo / "truth.tsv", sep="\t")
    tg = pd.read_csv(demo / "truth_genes.tsv", sep="\t", index_col=0)
    vcf = pysam.VariantFile(str(demo / "cohort.vcf.gz"))
    samples = list(expr.columns)
    ids, chroms, dos = [], [], []
    for rec in vcf:
        gt = np.array([rec.samples[s]["GT"] for s in samples])
        for a, alt in enumerate(rec.alts, start=1):
            d = (gt == a).sum(1)
            if d.std() > 0:
                ids.append(f"{rec.chrom}_{rec.pos}_{rec.ref}_{alt}")
                chroms.append(rec.chrom)
                dos.append(d)
    D = np.array(dos, dtype=float)
    Dz = (D - D.mean(1, keepdims=True)) / D.std(1, keepdims=True)
    chroms = np.array(chroms)
    high = tg.index[tg["h2"] >= 0.5]
    hits = 0
    for gene in high:
        on = np.flatnonzero(chroms == genes.loc[gene, "chrom"])
        y = expr.loc[gene].to_numpy()
        r = Dz[on] @ ((y - y.mean()) / y.std()) / len(y)
        top = on[np.argmax(np.abs(r))]
        causal = [ids.index(v) for v in truth.loc[truth["gene_id"] == gene, "variant_id"]]
        hits += max(np.mean(Dz[top] * Dz[c]) ** 2 for c in causal) > 0.8
    assert len(high) >= 3 and hits >= 0.6 * len(high)


def test_personal_window_anchors_tss():
    ref = np.frombuffer(b"ACGT" * 1000, dtype=np.uint8).copy()
    tss0, w = 2000, 512
    plain = personal_window(ref, tss0, "+", w, [])
    assert plain.tobytes() == ref[tss0 - w // 2 : tss0 + w // 2].tobytes()
    # an upstream insertion shifts the upstream end; the TSS stays at index w // 2
    ins = personal_window(ref, tss0, "+", w, [(tss0 - 10, chr(ref[tss0 - 10]), chr(ref[tss0 - 10]) + "TTT")])
    assert ins[w // 2 :].tobytes() == plain[w // 2 :].tobytes()
    assert ins[w // 2 - 12 : w // 2 - 9].tobytes() == b"TTT"  # 9 bases between it and the TSS
    # a downstream deletion leaves everything up to the deletion unchanged
    dele = personal_window(
        ref, tss0, "+", w, [(tss0 + 5, ref[tss0 + 5 : tss0 + 8].tobytes().decode(), chr(ref[tss0 + 5]))]
    )
    assert dele[: w // 2 + 6].tobytes() == plain[: w // 2 + 6].tobytes()
    assert dele[w // 2 + 6 :].tobytes() == ref[tss0 + 8 : tss0 + 8 + w // 2 - 6].tobytes()
    # minus strand: reverse complement of [tss0 - w/2 + 1, tss0 + w/2 + 1); TSS base at w // 2
    minus = personal_window(ref, tss0, "-", w, [])
    fwd = ref[tss0 - w // 2 + 1 : tss0 + w // 2 + 1].tobytes().decode()
    assert minus.tobytes().decode() == fwd.translate(COMP)[::-1]
    assert chr(minus[w // 2]) == chr(ref[tss0]).translate(COMP)
    # a deleted TSS maps to the first base after the deletion
    gone = personal_window(
        ref, tss0, "+", w, [(tss0 - 1, ref[tss0 - 1 : tss0 + 2].tobytes().decode(), chr(ref[tss0 - 1]))]
    )
    assert gone[w // 2] == ref[tss0 + 2] and gone[w // 2 - 1] == ref[tss0 - 1]
    # off the chromosome end: N padding
    edge = personal_window(ref, len(ref) - 10, "+", w, [])
    assert edge[w // 2 + 10 :].tobytes() == b"N" * (w // 2 - 10)


def test_fit_window_places_genes_for_long_windows_and_writes_exons(tmp_path):
    """fit_window: every gene's 1,048,576-bp window lies on its chromosome; exons.tsv holds a
    gene model per gene starting at its TSS, in the gene's direction."""

    L = 1_048_576
    with pytest.raises(ValueError, match="cannot hold"):
        simulate_demo(tmp_path / "x", seed=2, n_individuals=10, n_chromosomes=1, chromosome_length=600_000,
                      n_genes=2, fit_window=L)  # fmt: skip
    simulate_demo(tmp_path, seed=2, n_individuals=10, n_chromosomes=1, chromosome_length=1_100_000, n_genes=2,
                  fit_window=L)  # fmt: skip
    genes = pd.read_csv(tmp_path / "genes.tsv", sep="\t")
    assert ((genes["tss"] - 1 - L // 2 >= 0) & (genes["tss"] + L // 2 <= 1_100_000)).all()
    exons = pd.read_csv(tmp_path / "exons.tsv", sep="\t")
    assert set(exons["gene_id"]) == set(genes["gene_id"]) and (exons["end"] >= exons["start"]).all()
    for g in genes.itertuples():
        e = exons[exons["gene_id"] == g.gene_id]
        first = e["start"].min() if g.strand == "+" else e["end"].max()
        assert first == g.tss and (e["strand"] == g.strand).all()
