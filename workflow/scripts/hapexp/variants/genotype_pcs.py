"""Genotype principal components of the cohort, for the covariates (option `genotype_pcs`).

Population structure moves expression and allele frequencies together, so without it in
the covariates a gene whose expression differs between ancestries shows "eQTLs" at every
variant whose frequency differs too, and a predictor built on such variants "predicts"
it. GTEx/tensorQTL users add the top genotype PCs of an LD-pruned common-SNP set to the
covariates; so does this stage, for the eQTL scan, the elastic net and the verdict alike
(all residualize on results/{cohort}/expression/covariates.tsv, written by rule
prepare_expression, which appends these PCs as rows `genotype_PC1..k`).

Steps:

1. variants: the cohort's normalized BCF (its analysed people, split biallelic; the
   regions around its genes — with ±1 Mb eQTL windows over a genome-wide gene set, most
   of the genome), autosomes only (X/Y/MT dosages depend on sex), biallelic SNVs with
   in-sample minor allele frequency ≥ `maf` (AC/AN recomputed from the genotypes with
   `bcftools +fill-tags`: the file's INFO may describe other people; `-i 'MAF>=maf'`, as
   `bcftools view -q maf:minor` would drop a frequency equal to `maf`);
2. LD pruning by `bcftools +prune -m r2 -w <window>bp`: records in file order, each
   dropped when its genotype-dosage r² with a record already kept within `window` bp
   exceeds `r2` (greedy, like plink's --indep-pairwise but sequential: no kept pair
   within the window exceeds `r2`);
3. the pruned records read by the one genotype reader (`read_dosages`, missing calls
   mean-imputed), standardized as EIGENSOFT/plink — (g − 2p)/sqrt(2p(1 − p)) — and
   decomposed by SVD (`hapexp.stats.principal_components`): each PC is a unit-norm
   eigenvector over people, sign fixed by its largest variant loading.

Regions of long-range LD (MHC, the 8p23 inversion; Price et al. 2008) are not removed:
on a cohort with them the first PCs can describe a region rather than ancestry — check
the variance explained and the loadings in the log.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from hapexp.errors import InputError
from hapexp.stats import principal_components, standardize_genotypes
from hapexp.variants.files import vcf_contigs, vcf_samples
from hapexp.variants.genotypes import read_dosages
from hapexp.variants.normalize import _run

log = logging.getLogger(__name__)

# Contigs left out: sex chromosomes and mitochondria, with or without "chr".
_NON_AUTOSOMAL = re.compile(r"^(chr)?(X|Y|M|MT|XY)$", re.IGNORECASE)
# a region end past a contig's last base when the header has no length (a .csi index
# covers 2^29 bp by default; hg19's chromosome 1 is 249 Mb)
_WHOLE = (1 << 29) - 1


def autosomes(bcf) -> list[str]:
    """The file's contigs holding records, without X, Y and mitochondria."""
    return [c for c in vcf_contigs(bcf) if not _NON_AUTOSOMAL.match(c)]


def _contig_ends(bcf, contigs: list[str]) -> list[tuple[str, int, int]]:
    """Whole-contig regions (0-based half-open) from the header's lengths."""
    import pysam

    with pysam.VariantFile(str(bcf)) as f:
        lengths = {c: f.header.contigs[c].length for c in f.header.contigs}
    return [(c, 0, int(lengths.get(c) or _WHOLE)) for c in contigs]


def _count(bcf) -> int:
    subprocess.run(["bcftools", "index", "-f", str(bcf)], check=True, capture_output=True)
    out = subprocess.run(["bcftools", "index", "-n", str(bcf)], check=True, capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def _decimal(x: float) -> str:
    """A number as bcftools' option and expression parsers read it (no exponent)."""
    return f"{float(x):.15f}".rstrip("0").rstrip(".") or "0"


def prune(bcf, out_bcf, contigs: list[str], maf: float, r2: float, window: int, tmp) -> dict:
    """Steps 1–2 of the module doc: write the pruned, indexed BCF `out_bcf`; returns the
    counts (common_snvs: before pruning, kept: after)."""
    filtered = Path(tmp) / "common.bcf"
    _run(
        [
            ["bcftools", "view", "--no-version", "-r", ",".join(contigs), "-m2", "-M2", "-v", "snps",
             "-Ou", str(bcf)],
            ["bcftools", "+fill-tags", "-Ou", "-", "--", "-t", "AN,AC"],
            ["bcftools", "view", "--no-version", "-i", f"MAF>={_decimal(maf)}", "-Ob"],
        ],
        filtered,
    )  # fmt: skip
    counts = {"common_snvs": _count(filtered)}
    _run(
        [["bcftools", "+prune", "-m", f"r2={_decimal(r2)}", "-w", f"{int(window)}bp", "-Ob", str(filtered)]],
        out_bcf,
    )
    counts["kept"] = _count(out_bcf)
    return counts


def _too_many(bcf, n_pcs: int, n: int, m: int | None, maf, r2, window):
    snvs = "" if m is None else f" and {m} LD-pruned common SNVs (MAF ≥ {maf}, r² ≤ {r2} within {window} bp)"
    most = max(min(n, n if m is None else m) - 1, 0)
    raise InputError(
        bcf,
        f"genotype_pcs.n_pcs={n_pcs} but {n} people{snvs} give at most {most} PCs",
        "Lower genotype_pcs.n_pcs (or genotype_pcs.maf), or give more people/variants.",
    )


def genotype_pcs(bcf, n_pcs: int, maf: float = 0.05, r2: float = 0.2, window: int = 500_000, tmp=None):
    """The first `n_pcs` genotype PCs of the people of `bcf` (module doc). Returns (PCs ×
    samples frame, index `genotype_PC1..`; a log dict: counts, eigenvalues, variance
    explained; the pruned Dosages)."""
    samples = vcf_samples(bcf)
    contigs = autosomes(bcf)
    if not contigs:
        raise InputError(
            bcf, "no autosomal record to compute genotype PCs from", "Set genotype_pcs.n_pcs: 0."
        )
    if n_pcs > len(samples) - 1:  # known before any pruning
        _too_many(bcf, n_pcs, len(samples), None, maf, r2, window)
    with tempfile.TemporaryDirectory(dir=tmp, prefix=".genotype_pcs.") as t:
        pruned = Path(t) / "pruned.bcf"
        counts = prune(bcf, pruned, contigs, maf, r2, window, t)
        # MAF decided once, by bcftools (the reader would redo it in other rounding)
        dosages = read_dosages(pruned, _contig_ends(pruned, contigs), samples, maf=0.0)
    n, m = len(samples), len(dosages)
    if n_pcs > min(n, m) - 1:
        _too_many(bcf, n_pcs, n, m, maf, r2, window)
    vectors, s, explained = principal_components(standardize_genotypes(dosages.dosage), n_pcs)
    index = pd.Index([f"genotype_PC{i + 1}" for i in range(n_pcs)], name="id")
    pcs = pd.DataFrame(vectors, index=index, columns=samples)
    info = {
        **counts,
        "samples": n,
        # EIGENSOFT's eigenvalues: of the genetic relationship matrix Z Zᵀ / m
        "eigenvalues": (s[:n_pcs] ** 2 / m).tolist(),
        "variance_explained": explained[:n_pcs].tolist(),
    }
    return pcs, info, dosages


def run_genotype_pcs(bcf, pcs, n_pcs: int, maf: float, r2: float, window: int, threads: int = 1) -> None:
    """Rule `genotype_pcs`: the first `n_pcs` genotype PCs of the cohort's people (`pcs`:
    PCs × samples, as the covariates), from its LD-pruned common SNVs; the SVD on
    `threads` BLAS threads."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import write_matrix

    with threadpool_limits(limits=int(threads)):
        table, info, _ = genotype_pcs(
            bcf, int(n_pcs), float(maf), float(r2), int(window), tmp=Path(pcs).parent
        )
    log.info(
        "%d people; %d common biallelic autosomal SNVs (MAF >= %g); %d kept by LD pruning "
        "(r2 <= %g within %d bp), %d pruned",
        info["samples"], info["common_snvs"], maf, info["kept"], r2, window,
        info["common_snvs"] - info["kept"],
    )  # fmt: skip
    for i, (ev, frac) in enumerate(zip(info["eigenvalues"], info["variance_explained"], strict=True)):
        log.info("genotype_PC%d: eigenvalue %.4g, %.2f%% of the variance", i + 1, ev, 100 * frac)
    write_matrix(table, pcs, index_col="id")


def genotype_pcs_lines(covariates) -> list[str]:
    """summary.md's section on ancestry, from the covariates the verdict used
    (expression/covariates.tsv: the genotype PCs are its `genotype_PC*` rows)."""
    with open(covariates) as fh:
        ids = [line.split("\t", 1)[0] for line in fh][1:]
    k = sum(1 for i in ids if re.fullmatch(r"genotype_PC\d+", i))
    head = "## Ancestry (genotype PCs)\n"
    if k:
        return [
            head,
            f"{k} genotype principal components (LD-pruned common SNVs; `genotype_pcs.tsv`) are among "
            "the covariates of the eQTL scan, the elastic net and the verdict alike.",
        ]
    return [
        head,
        "No genotype principal components among the covariates (`genotype_pcs.n_pcs: 0`): where the "
        "cohort mixes ancestries, and the user covariates do not carry it, population structure enters "
        "the eQTL scan, the elastic net and the verdict alike.",
    ]
