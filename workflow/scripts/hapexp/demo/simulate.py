"""Demo cohort simulator: a small cohort whose expression comes from a known model.

`simulate_demo(outdir, seed, ...)` writes, deterministically from `seed`:
reference.fa(.fai), cohort.vcf.gz(.tbi), genes.tsv, exons.tsv, expression.tsv,
covariates.tsv, truth.tsv, truth_genes.tsv, expression_noiseless.tsv and oracle.pt
(`OUTPUT_FILES`; `hapexp.demo.files` is the contract with rule `simulate_demo`).

With `tissues` [a, b, ...] (the multi-tissue demo) it writes the shared files
(reference, VCF, genes, exons), oracle.pt with one track per tissue (track k = tissue k,
`Oracle.for_tissues`), samples.tsv (sample, sex female/male) and, per tissue t,
expression_t.tsv, expression_noiseless_t.tsv, covariates_t.tsv, truth_t.tsv and
truth_genes_t.tsv in the one-tissue formats. Tissue t's expression is its track's genetic
value + noise scaled to the gene's h2 in t + t's covariates and hidden factors; causal
variants are designed per tissue with its own motifs, so about a third of the non-null
genes are shared (causal in every tissue, through different SNVs) and the others
specific to one tissue (`layout.assign_tissue_h2`); truth_t.tsv lists t's causal
variants with their ISM on track t (every other track: |ISM| <= 0.01, checked). Tissues
after the first lack a random `missing_fraction` (15 %) of the people each (GTEx-like:
people differ in their set of tissues); the first has everyone.

How it is made (one random stream, drawn in this order; each step's module says more)
- `hapexp.demo.genome`: a random reference and msprime haplotypes turned into SNVs,
  multi-allelic sites and short left-aligned indels.
- `hapexp.demo.layout`: TSSs placed in slots near common SNVs, one gene near a chromosome
  end (unless `fit_window`), h2 per gene; exons from a stream of their own.
- `hapexp.demo.design`: background motifs around each TSS, causal SNVs designed to
  create or break a motif, accidental motif changes removed, every variant's ISM checked.
- `hapexp.demo.phenotype`: the genetic value (oracle readout of each individual's two
  personal windows, `hapexp.demo.readout`), then noise scaled to h2, measured
  covariates and hidden factors (tissues: sex and age once, then per tissue its people,
  rin, hidden factors and noise).
- `hapexp.demo.writers`: the FASTA, VCF and tables.

The readout (`hapexp.demo.readout`) must equal the inference engine's for `models.oracle`
in config.yaml; `truth.tsv` effect = readout(ALT inserted alone into the reference
window) - readout(reference window), one haplotype, gene orientation (= the ISM score).

Coordinates: everything here is 0-based (`pos0`, `tss0`) except the files, which are
1-based (VCF POS, genes.tsv tss, truth.tsv pos).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.demo.design import MotifDesigner, common_snv_counter
from hapexp.demo.files import OUTPUT_FILES, output_files
from hapexp.demo.genome import simulate_genome
from hapexp.demo.layout import assign_h2, assign_tissue_h2, gene_exons, place_genes
from hapexp.demo.phenotype import draw_expression, draw_person_covariates, genetic_values
from hapexp.demo.readout import BIN_SIZE, Readout
from hapexp.demo.writers import gene_table, sample_sheet, truth_table, write_fasta, write_vcf
from hapexp.io import write_matrix, write_tsv

log = logging.getLogger(__name__)

__all__ = ["OUTPUT_FILES", "output_files", "run_simulate_demo", "simulate_demo"]

TISSUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    tissues: list[str] | tuple[str, ...] = (),
    missing_fraction: float = 0.15,
) -> dict:
    """Simulate the demo cohort into `outdir` (see the module docstring); returns a summary.

    `fit_window`: keep every gene fit_window/2 + 1 kb from the chromosome ends, so that
    windows of that length (524,288 or 1,048,576 bp) fit on the chromosome.
    `tissues`: names of a multi-tissue demo (empty: the one-tissue demo); every tissue
    after the first lacks round(`missing_fraction` × n_individuals) people.
    """
    import torch

    from hapexp.models.oracle import Oracle

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
    tissues = [str(t) for t in tissues]
    bad = [t for t in tissues if not TISSUE_NAME.match(t)]
    files = output_files(tissues)
    if bad or len(set(tissues)) != len(tissues) or len(set(files)) != len(files):
        raise ValueError(
            f"tissues must be distinct names of letters, digits, _ . - whose files differ; got {tissues}"
        )
    if not 0 <= missing_fraction < 1:
        raise ValueError(f"missing_fraction must be in [0, 1); got {missing_fraction}")
    n_tissues = max(len(tissues), 1)
    params = {
        "ne": ne,
        "mutation_rate": mutation_rate,
        "mutation_scale": mutation_scale,
        "recombination_rate": recombination_rate,
        "indel_fraction": indel_fraction,
    }
    chrom_names = [f"chr{i + 1}" for i in range(n_chromosomes)]
    n = n_individuals
    with _torch_threads(torch, 1):
        rng = np.random.default_rng(seed)

        def make_oracle():
            return Oracle.for_tissues(tissues) if tissues else Oracle()

        oracle = make_oracle()  # written out; the readout runs its own float64 copy
        readout = Readout(make_oracle(), window)
        genome = simulate_genome(rng, chrom_names, chromosome_length, n, params)
        genes = place_genes(
            rng, chrom_names, chromosome_length, n_genes, window, common_snv_counter(genome), fit_window
        )
        if tissues:
            h2s = assign_tissue_h2(rng, len(genes), n_tissues, h2_values, zero_h2_fraction)
        else:
            h2s = [[h2] for h2 in assign_h2(rng, len(genes), h2_values, zero_h2_fraction)]
        for g, h2 in zip(genes, h2s, strict=True):
            g.h2 = list(h2)
        designer = MotifDesigner(rng, genome, readout, window, n_tissues)
        designer.design(genes)
        genetic = genetic_values(genome, genes, readout, window, n, n_tissues)
    width = max(4, len(str(n)))
    samples = np.array([f"S{i + 1:0{width}d}" for i in range(n)])
    ids = [g.gene_id for g in genes]
    # per tissue: (file suffix, its people, expression, noiseless, covariates, truth_genes)
    per_tissue = []
    if not tissues:
        expr, cov, truth_genes = draw_expression(rng, genes, genetic[0], covariate_fraction, hidden_fraction)
        per_tissue.append(("", np.ones(n, bool), expr, genetic[0], cov, truth_genes))
    else:
        sex, age = draw_person_covariates(rng, n)
        for k, t in enumerate(tissues):
            present = np.ones(n, bool)
            if k >= 1:
                present[rng.choice(n, size=int(round(missing_fraction * n)), replace=False)] = False
            gk = genetic[k][:, present]
            expr, cov, truth_genes = draw_expression(
                rng,
                genes,
                gk,
                covariate_fraction,
                hidden_fraction,
                track=k,
                sex_age=(sex[present], age[present]),
            )
            per_tissue.append((f"_{t}", present, expr, gk, cov, truth_genes))

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".simulate_demo.", dir=outdir))
    try:
        write_fasta(tmp / "reference.fa", genome)
        import pysam

        pysam.faidx(str(tmp / "reference.fa"))
        write_vcf(tmp / "cohort.vcf.gz", genome, list(samples), seed)
        write_tsv(gene_table(genes), tmp / "genes.tsv")
        write_tsv(gene_exons(seed, genes, chromosome_length), tmp / "exons.tsv")
        for k, (sfx, present, expr, noiseless, cov, truth_genes) in enumerate(per_tissue):
            cols = list(samples[present])
            write_matrix(pd.DataFrame(expr, index=ids, columns=cols), tmp / f"expression{sfx}.tsv")
            write_matrix(
                pd.DataFrame(noiseless, index=ids, columns=cols), tmp / f"expression_noiseless{sfx}.tsv"
            )
            covdf = pd.DataFrame(cov, index=["sex", "age", "rin"], columns=cols)
            write_matrix(covdf, tmp / f"covariates{sfx}.tsv", index_col="id")
            write_tsv(truth_table(genes, designer.motif_names, track=k), tmp / f"truth{sfx}.tsv")
            write_tsv(truth_genes, tmp / f"truth_genes{sfx}.tsv")
        if tissues:
            write_tsv(sample_sheet(list(samples), sex), tmp / "samples.tsv")
        (tmp / "oracle.pt").write_bytes(oracle.to_bytes())
        umask = os.umask(0)
        os.umask(umask)
        for name in output_files(tissues):
            os.chmod(tmp / name, 0o666 & ~umask)  # mkstemp files are 0600
            os.replace(tmp / name, outdir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    all_v = [v for c in chrom_names for v in genome.variants[c]]
    kinds = Counter(v.kind for v in all_v)
    summary = {
        "n_variants": len(all_v),
        "n_snv": kinds["snv"],
        "n_insertions": kinds["ins"],
        "n_deletions": kinds["del"],
        "n_multiallelic": kinds["multi"],
        "genes_plus": sum(g.strand == "+" for g in genes),
        "genes_minus": sum(g.strand == "-" for g in genes),
        "h2": {g.gene_id: g.h2[0] for g in genes},
        "n_causal": sum(len(g.causal) for g in genes),
    }
    if tissues:
        summary["h2"] = {t: {g.gene_id: g.h2[k] for g in genes} for k, t in enumerate(tissues)}
        summary["n_causal_by_tissue"] = {
            t: sum(c["track"] == k for g in genes for c in g.causal) for k, t in enumerate(tissues)
        }
        summary["people_by_tissue"] = {t: int(p[1].sum()) for t, p in zip(tissues, per_tissue, strict=True)}
    log.info("simulated demo cohort in %s: %s", outdir, {k: v for k, v in summary.items() if k != "h2"})
    return summary


def run_simulate_demo(outputs, seed: int, n_individuals: int, n_chromosomes: int, chromosome_length: int,
                      n_genes: int, window: int, fit_window, tissues=()) -> None:  # fmt: skip
    """Rule `simulate_demo`: the demo cohort in the directory of the rule's `outputs`, which
    must be exactly `output_files(tissues)` (hapexp.demo.files: the contract between the
    rule and this module)."""
    outdir = Path(outputs[0]).parent
    tissues = list(tissues or [])
    expected = {str(outdir / name) for name in output_files(tissues)}
    if expected != {str(Path(f)) for f in outputs}:
        raise RuntimeError(f"rule outputs and hapexp.demo.files.output_files disagree: {sorted(expected)}")
    summary = simulate_demo(
        outdir,
        seed=int(seed),
        n_individuals=int(n_individuals),
        n_chromosomes=int(n_chromosomes),
        chromosome_length=int(chromosome_length),
        n_genes=int(n_genes),
        window=int(window),
        fit_window=None if fit_window is None else int(fit_window),
        tissues=tissues,
    )
    log.info("per-gene h2: %s", summary["h2"])


@contextlib.contextmanager
def _torch_threads(torch, n: int):
    """Run the oracle single-threaded: identical float results whatever the machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
