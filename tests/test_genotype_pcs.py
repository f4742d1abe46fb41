"""Genotype PCs as covariates (issue 20, item 11): a simulated two-population cohort.

msprime: two demes split 2,000 generations ago (N = 10,000 each: F_ST ≈ 0.1, about
Europe–Africa), 100 people each, 4 Mb of one autosome. Independent answers:
- LD pruning: r² of every pair of kept SNVs within the window computed here from msprime's
  own genotype matrix (not the project's reader), and every pruned SNV in LD above the
  threshold with a kept one before it (bcftools +prune's greedy rule);
- the PCs: scikit-learn's PCA of the standardized matrix built here, up to sign, 1e-6;
- PC1 separates the populations;
- ancestry-driven genes (expression shifted in one population, no cis effect; their cis
  variants differ in frequency between populations as drift made them): significant in
  the eQTL scan and for an ancestry-informative predictor in the verdict without the
  PCs, null-like (binomial bounds, KS) with them.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from hapexp.errors import InputError
from hapexp.inputs.expression import prepare_expression
from hapexp.io import write_matrix
from hapexp.linear.eqtl import scan_genes
from hapexp.variants.genotype_pcs import genotype_pcs, genotype_pcs_lines
from hapexp.variants.genotypes import read_dosages
from hapexp.verdict.performance import cross_individual
from tests.workflow_utils import REPO, snakemake_cmd

N_PER_POP = 100
LENGTH = 4_000_000
MAF, R2, WINDOW, N_PCS = 0.05, 0.2, 500_000, 3
N_GENES, SHIFT, CIS = 40, 1.5, 100_000


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Small matrices, and the test machine is shared: BLAS threads would only contend."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, one_blas_thread):
    import msprime

    d = tmp_path_factory.mktemp("two_pops")
    dem = msprime.Demography()
    for name in ("A", "B", "ANC"):
        dem.add_population(name=name, initial_size=10_000)
    dem.add_population_split(time=2_000, derived=["A", "B"], ancestral="ANC")
    ts = msprime.sim_ancestry(
        samples={"A": N_PER_POP, "B": N_PER_POP}, demography=dem, sequence_length=LENGTH,
        recombination_rate=1e-8, random_seed=11,
    )  # fmt: skip
    ts = msprime.sim_mutations(ts, rate=1.25e-8, random_seed=12, model=msprime.BinaryMutationModel())
    hap = ts.genotype_matrix()  # sites × haplotypes, individual i = haplotypes 2i, 2i + 1
    pos = ts.tables.sites.position.astype(np.int64) + 1  # 1-based, distinct
    keep = (pos >= 1) & (pos <= LENGTH)
    hap, pos = hap[keep], pos[keep]
    rng = np.random.default_rng(13)
    bases = np.array(list("ACGT"))
    ref = rng.integers(0, 4, len(pos))
    alt = (ref + rng.integers(1, 4, len(pos))) % 4
    samples = [f"P{i:03d}" for i in range(2 * N_PER_POP)]
    pop = np.array([0] * N_PER_POP + [1] * N_PER_POP)  # msprime lists A's individuals first
    header = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID=1,length={LENGTH}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    # GT columns as bytes: "a|b" + tab per person, newline at the end of each record
    cells = np.empty((len(pos), hap.shape[1] // 2, 4), np.uint8)
    cells[:, :, 0], cells[:, :, 1], cells[:, :, 2] = hap[:, 0::2] + 48, ord("|"), hap[:, 1::2] + 48
    cells[:, :, 3] = ord("\t")
    cells[:, -1, 3] = ord("\n")
    gts = cells.reshape(len(pos), -1)
    with open(d / "c.vcf", "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode())
        for i in range(len(pos)):
            fh.write(f"1\t{pos[i]}\t.\t{bases[ref[i]]}\t{bases[alt[i]]}\t.\tPASS\t.\tGT\t".encode())
            fh.write(gts[i].tobytes())
    bcf = d / "c.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(d / "c.vcf")], check=True)
    subprocess.run(["bcftools", "index", str(bcf)], check=True)
    dosage = (hap[:, 0::2] + hap[:, 1::2]).astype(float)  # variants × people, from msprime
    pcs, info, pruned = genotype_pcs(bcf, N_PCS, MAF, R2, WINDOW, tmp=d)
    return {"bcf": bcf, "samples": samples, "pop": pop, "pos": pos, "dosage": dosage, "pcs": pcs,
            "info": info, "pruned": pruned, "dir": d}  # fmt: skip


def _common(c):
    af = c["dosage"].mean(axis=1) / 2
    return np.minimum(af, 1 - af) >= MAF


def test_pruning_keeps_no_pair_above_r2_in_a_window(cohort):
    common = _common(cohort)
    pos, g = cohort["pos"][common], cohort["dosage"][common]
    kept = np.isin(pos, cohort["pruned"].pos)
    assert kept.sum() == len(cohort["pruned"]) == cohort["info"]["kept"]  # only common SNVs kept
    assert cohort["info"]["common_snvs"] == common.sum()
    assert 200 < kept.sum() < 0.5 * common.sum(), (kept.sum(), common.sum())  # pruning did prune
    r2 = np.corrcoef(g) ** 2
    near = np.abs(pos[:, None] - pos[None, :]) <= WINDOW
    np.fill_diagonal(near, False)
    pair = near & kept[:, None] & kept[None, :]
    assert r2[pair].max() <= R2 + 1e-9, r2[pair].max()
    assert r2[near].max() > 0.9  # the unpruned set had pairs in strong LD
    # greedy: every dropped SNV has an earlier kept one within the window above the threshold
    earlier = near & (pos[None, :] < pos[:, None]) & kept[None, :]
    dropped = np.flatnonzero(~kept)
    assert (np.where(earlier[dropped], r2[dropped], 0).max(axis=1) > R2 - 1e-9).all()


def test_pcs_equal_sklearn_pca_of_standardized_genotypes(cohort):
    from sklearn.decomposition import PCA

    g = cohort["dosage"][np.isin(cohort["pos"], cohort["pruned"].pos)]
    p = g.mean(axis=1, keepdims=True) / 2
    z = (g - 2 * p) / np.sqrt(2 * p * (1 - p))  # EIGENSOFT/plink standardization
    pca = PCA(n_components=N_PCS, svd_solver="full").fit(z.T)
    scores = pca.transform(z.T)
    scores /= np.linalg.norm(scores, axis=0)  # unit-norm eigenvectors, as plink's .eigenvec
    ours = cohort["pcs"].to_numpy().T
    assert list(cohort["pcs"].index) == [f"genotype_PC{i + 1}" for i in range(N_PCS)]
    assert list(cohort["pcs"].columns) == cohort["samples"]
    for k in range(N_PCS):
        sign = np.sign(ours[:, k] @ scores[:, k])
        np.testing.assert_allclose(ours[:, k], sign * scores[:, k], atol=1e-6)
    np.testing.assert_allclose(cohort["info"]["variance_explained"], pca.explained_variance_ratio_, atol=1e-6)


def test_pc1_separates_the_populations(cohort):
    pc1 = cohort["pcs"].loc["genotype_PC1"].to_numpy()
    a, b = pc1[cohort["pop"] == 0], pc1[cohort["pop"] == 1]
    assert a.max() < b.min() or b.max() < a.min()
    assert cohort["info"]["variance_explained"][0] > 2 * cohort["info"]["variance_explained"][1]


def _ancestry_genes(c):
    """Genes whose expression is shifted in population B (no cis effect), TSSs spread along
    the chromosome; an ancestry-informative predictor per gene: the sum of its cis
    SNVs' dosages signed by their frequency difference between the populations."""
    rng = np.random.default_rng(21)
    samples, pop = c["samples"], c["pop"]
    tss = np.linspace(2 * CIS, LENGTH - 2 * CIS, N_GENES).astype(int)
    ids = [f"G{i:02d}" for i in range(N_GENES)]
    expr = pd.DataFrame(SHIFT * pop + rng.normal(size=(N_GENES, len(samples))), index=ids, columns=samples)
    genes = pd.DataFrame({"gene_id": ids, "chrom": "1", "tss": tss, "strand": "+"})
    genes["start0"], genes["end0"] = tss - 1 - CIS, tss + CIS
    dosages = read_dosages(
        c["bcf"],
        [("1", int(a), int(b)) for a, b in zip(genes.start0, genes.end0, strict=True)],
        samples,
        0.01,
    )
    pred = {}
    for g, a, b in zip(ids, genes.start0, genes.end0, strict=True):
        d = dosages.window("1", int(a), int(b)).dosage
        diff = d[:, pop == 1].mean(axis=1) - d[:, pop == 0].mean(axis=1)
        pred[g] = np.sign(diff) @ d
    return expr, genes, dosages, pd.DataFrame(pred, index=samples).T


def test_ancestry_gene_significant_without_pcs_not_with(cohort):
    expr, genes, dosages, pred = _ancestry_genes(cohort)
    out = {}
    for arm, pcs in (("without", None), ("with", cohort["pcs"])):
        prepared, cov, _ = prepare_expression(expr, None, samples=cohort["samples"], genotype_pcs=pcs)
        _, top = scan_genes(dosages, genes, prepared, cov, permutations=200, seed=1)
        perf = cross_individual(prepared, {"ancestry_model": pred}, cov if len(cov) else None)
        out[arm] = {"eqtl": top["pval_beta"].to_numpy(), "p": perf["pearson_p"].to_numpy(),
                    "r": perf["pearson_r"].to_numpy(), "covariates": list(cov.index)}  # fmt: skip
    assert out["with"]["covariates"] == [f"genotype_PC{i + 1}" for i in range(N_PCS)]
    # without (today's covariates): population structure makes (nearly) every gene an eGene
    # and the ancestry-informative predictor "work"
    assert (out["without"]["eqtl"] < 0.01).mean() >= 0.9, out["without"]["eqtl"]
    assert (out["without"]["p"] < 1e-4).mean() >= 0.9, out["without"]["p"]
    # with: null-like — count below 0.05 within the binomial 99% bound, KS does not reject
    for p in (out["with"]["eqtl"], out["with"]["p"]):
        assert (p < 0.05).sum() <= stats.binom.ppf(0.995, N_GENES, 0.05), np.sort(p)[:8]
        assert stats.kstest(p, "uniform").pvalue > 0.01
    # and the verdict's r in each tail
    r, p = out["with"]["r"], out["with"]["p"]
    for tail in (r > 0, r < 0):
        assert ((p < 0.05) & tail).sum() <= stats.binom.ppf(0.995, N_GENES, 0.025)


def test_summary_says_whether_genotype_pcs_are_covariates(cohort, tmp_path):
    expr = pd.DataFrame(np.random.default_rng(0).normal(size=(3, 200)), columns=cohort["samples"])
    for pcs, expect in ((cohort["pcs"], f"{N_PCS} genotype principal components"), (None, "No genotype")):
        _, cov, _ = prepare_expression(expr, None, n_pcs=1, samples=cohort["samples"], genotype_pcs=pcs)
        write_matrix(cov, tmp_path / "cov.tsv", index_col="id")
        assert expect in "\n".join(genotype_pcs_lines(tmp_path / "cov.tsv"))


def test_more_pcs_than_people_or_variants_is_a_clear_error(cohort):
    with pytest.raises(InputError, match=r"n_pcs=200 but 200 people"):
        genotype_pcs(cohort["bcf"], 200, MAF, R2, WINDOW, tmp=cohort["dir"])
    small = cohort["dir"] / "small.bcf"
    subprocess.run(
        ["bcftools", "view", "-r", "1:1-30000", "-Ob", "-o", str(small), str(cohort["bcf"])], check=True
    )
    subprocess.run(["bcftools", "index", str(small)], check=True)
    n = len(read_dosages(small, [("1", 0, 30_000)], cohort["samples"], MAF))
    assert 0 < n < 150
    with pytest.raises(InputError, match=r"LD-pruned common SNVs") as e:
        genotype_pcs(small, 150, MAF, R2, WINDOW, tmp=cohort["dir"])
    assert str(small) in str(e.value)


def test_rule_adds_the_pcs_to_prepare_expression_when_on(tmp_path):
    cfg = (REPO / "config" / "config.yaml").read_text()
    for n, expect in ((0, False), (2, True)):
        (tmp_path / "cfg.yaml").write_text(cfg + f"\ngenotype_pcs:\n  n_pcs: {n}\n")
        out = subprocess.run(
            snakemake_cmd(tmp_path, "results/demo/expression/prepared.tsv", "-n", "--configfile", "cfg.yaml"),
            cwd=tmp_path, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        prep = out.split("rule prepare_expression:")[1].split("\n\n")[0]
        assert ("rule genotype_pcs:" in out) is expect
        assert ("results/demo/genotype_pcs.tsv" in prep) is expect
