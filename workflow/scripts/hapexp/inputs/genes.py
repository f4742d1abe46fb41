"""The cohort's gene table: genes in the expression matrix, on a VCF contig and in the FASTA.

Gene table columns (TSV): ``gene_id, name, chrom, tss, strand, start, end, gene_type``
with ``tss`` 1-based (the transcript's first base: gene start on ``+``, gene end on
``-``) and ``start``/``end`` the gene body (1-based, inclusive, start <= end, as in a
GTF; PredictDB's window is start − 1 Mb … end + 1 Mb). A user gene table needs
gene_id, chrom, tss, strand; name, start, end and gene_type are optional: the body is
the span of tss and whichever of start/end is given (so a gene's other end may be
given as ``end`` on either strand), the TSS alone without them; gene_type defaults to
``NA``. Chunks are consecutive runs of genes sorted by (chrom, tss).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.config.schema import with_defaults
from hapexp.errors import InputError
from hapexp.inputs.formats import match_gene_ids
from hapexp.inputs.tables import raise_first_bad, read_config_table
from hapexp.io import atomic_output, write_tsv

log = logging.getLogger(__name__)

GENE_COLUMNS = ["gene_id", "name", "chrom", "tss", "strand", "start", "end", "gene_type"]


def read_gene_table(path) -> pd.DataFrame:
    """Read and check a gene table TSV (gene_id, chrom, tss [1-based], strand; name, start,
    end, gene_type optional; see the module doc)."""
    path = Path(path)
    df = read_config_table(
        path,
        "gene table",
        "genes.table",
        ["gene_id", "chrom", "tss", "strand"],
        "The gene table needs gene_id, chrom, tss (1-based), strand (name optional).",
        dtype={"gene_id": str, "chrom": str, "name": str, "strand": str, "gene_type": str},
    )
    if "name" not in df.columns:
        df["name"] = df["gene_id"]
    df["name"] = df["name"].fillna(df["gene_id"])
    gene = df["gene_id"]
    raise_first_bad(
        path,
        ~df["strand"].isin(["+", "-"]),
        lambda i: f"gene {gene.iloc[i]}: strand {df['strand'].iloc[i]!r} is not + or -",
        "Fix the strand column.",
    )
    tss = pd.to_numeric(df["tss"], errors="coerce")
    raise_first_bad(
        path,
        tss.isna() | (tss < 1),
        lambda i: f"gene {gene.iloc[i]}: tss {df['tss'].iloc[i]!r} is not a 1-based position",
        "Fix the tss column.",
    )
    df["tss"] = tss.astype("int64")
    ends = [df["tss"]]
    for col in ("start", "end"):
        if col not in df.columns:
            continue
        v = pd.to_numeric(df[col], errors="coerce")
        raise_first_bad(
            path,
            (v.isna() & df[col].notna()) | (v < 1),
            lambda i, col=col: f"gene {gene.iloc[i]}: {col} {df[col].iloc[i]!r} is not a 1-based position",
            f"Fix the {col} column (or leave it empty).",
        )
        ends.append(v.fillna(df["tss"]).astype("int64"))
    body = pd.concat(ends, axis=1)
    df["start"], df["end"] = body.min(axis=1), body.max(axis=1)
    df["gene_type"] = df["gene_type"].fillna("NA") if "gene_type" in df.columns else "NA"
    raise_first_bad(
        path, gene.duplicated(), lambda i: f"gene_id {gene.iloc[i]} appears twice", "Keep one TSS per gene."
    )
    return df[GENE_COLUMNS].copy()


def load_genes(cfg: dict) -> pd.DataFrame:
    """The configured gene table (`genes.table`) or TSSs from `genes.gtf` (one per gene).

    Columns `GENE_COLUMNS` (tss 1-based); the index is the gene id.
    """
    if cfg.get("gtf"):
        from hapexp.inputs.gtf import one_tss_per_gene, read_gtf_tss

        level = with_defaults("genes", cfg)["tss_level"]
        table = one_tss_per_gene(read_gtf_tss(cfg["gtf"], level=level, gene_types=cfg.get("gene_types")))
        log.info("TSSs from %s (level=%s): %d genes", cfg["gtf"], level, len(table))
        table = table[GENE_COLUMNS].copy()
    else:
        table = read_gene_table(cfg["table"])
    # Indexed by gene id (and keeping the column) so that id-indexed masks align.
    table.index = pd.Index(table["gene_id"].to_numpy(), name=None)
    return table


def build_gene_table(
    genes: pd.DataFrame,
    expression_ids,
    vcf_contigs,
    fasta_lengths: dict,
    harmonize: bool = True,
    source="genes",
) -> tuple[pd.DataFrame, dict]:
    """Keep genes in the expression matrix, on a VCF contig and in the FASTA.

    Gene ids match exactly or without the Ensembl version; the expression matrix's
    id is kept (downstream joins on it). Chromosome names are mapped onto the FASTA's
    (``chr22`` ↔ ``22``) when `harmonize`. Returns (table sorted by chrom, tss; counts).
    """
    from hapexp.inputs.gtf import match_contigs

    counts = {"input": len(genes)}
    genes = genes.copy()
    for col in ("start", "end"):  # tables without a gene body: the TSS
        if col not in genes.columns:
            genes[col] = genes["tss"]
    if "gene_type" not in genes.columns:
        genes["gene_type"] = "NA"
    m = match_gene_ids(genes["gene_id"], expression_ids)
    keep = m.notna().to_numpy()
    counts["dropped_not_in_expression"] = int((~keep).sum())
    genes = genes[keep].copy()
    genes["gene_id"] = m[keep].to_numpy()
    genes = genes.drop_duplicates("gene_id")
    cmap = match_contigs(genes["chrom"], list(fasta_lengths))
    renamed = {k: v for k, v in cmap.items() if v is not None and v != k}
    if renamed and not harmonize:
        ex = ", ".join(f"{k}→{v}" for k, v in list(renamed.items())[:3])
        raise InputError(
            source,
            f"chromosome names differ from the FASTA's ({ex})",
            "Set `variants.harmonize_chrom: true` or rename the chromosomes in the gene table",
        )
    genes["chrom"] = genes["chrom"].map(lambda c: cmap.get(c) or c)
    in_fa = genes["chrom"].isin(list(fasta_lengths))
    counts["dropped_chrom_not_in_fasta"] = int((~in_fa).sum())
    genes = genes[in_fa]
    off = genes["tss"] > genes["chrom"].map(fasta_lengths)
    counts["dropped_tss_beyond_chrom_end"] = int(off.sum())
    genes = genes[~off]
    vmap = match_contigs(vcf_contigs, list(fasta_lengths))
    vcf_in_fa = {v for v in vmap.values() if v is not None} if harmonize else set(vcf_contigs)
    on_vcf = genes["chrom"].isin(vcf_in_fa)
    counts["dropped_chrom_not_in_vcf"] = int((~on_vcf).sum())
    genes = genes[on_vcf]
    counts["kept"] = len(genes)
    order = {c: i for i, c in enumerate(fasta_lengths)}
    genes = (
        genes.assign(_o=genes["chrom"].map(order)).sort_values(["_o", "tss", "gene_id"]).drop(columns="_o")
    )
    return genes[GENE_COLUMNS].reset_index(drop=True), counts


def sample_overlap(vcf_samples, expression_samples) -> dict:
    v, e = list(vcf_samples), list(expression_samples)
    both = [s for s in e if s in set(v)]
    return {
        "vcf": len(v),
        "expression": len(e),
        "both": len(both),
        "vcf_only": len(set(v) - set(e)),
        "expression_only": len(set(e) - set(v)),
    }


def chunk_ids(n_chunks: int) -> list[str]:
    """The ids of `n_chunks` chunks: 000, 001, … (known before any gene is read)."""
    return [f"{k:03d}" for k in range(n_chunks)]


def check_chunkable(n_genes: int, n_chunks: int, source="genes") -> None:
    """Every chunk must get a gene: fewer genes than chunks is a config error."""
    if n_genes < n_chunks:
        raise InputError(
            source,
            f"empty gene chunk after filters: {n_genes} gene(s) passed the filters but genes.chunks is {n_chunks}",
            f"Set genes.chunks to at most {max(n_genes, 1)} (or check why genes were dropped: see the genes log).",
        )


def write_chunks(genes: pd.DataFrame, paths: list) -> None:
    """Split the (chrom, tss)-sorted table into len(paths) contiguous, balanced chunks.

    The number of chunks is fixed by the config (so the whole DAG is known before
    the gene table exists); sizes differ by at most one gene.
    """
    check_chunkable(len(genes), len(paths))
    bounds = np.linspace(0, len(genes), len(paths) + 1).round().astype(int)
    for path, start, end in zip(paths, bounds[:-1], bounds[1:], strict=True):
        write_tsv(genes.iloc[start:end], path)


def gene_regions(genes: pd.DataFrame, half_width: int) -> pd.DataFrame:
    """0-based half-open regions TSS ± half_width (+1 so both strands' windows fit)."""
    tss0 = genes["tss"].astype("int64") - 1
    return pd.DataFrame(
        {
            "chrom": genes["chrom"].to_numpy(),
            "start0": (tss0 - half_width).clip(lower=0).to_numpy(),
            "end0": (tss0 + half_width + 1).to_numpy(),
        }
    )


def gene_body_regions(genes: pd.DataFrame, flank: int) -> pd.DataFrame:
    """0-based half-open regions [start − flank, end + flank] of the gene bodies (1-based
    start/end of genes.tsv; the TSS where a table has no body)."""
    start = genes["start"] if "start" in genes.columns else genes["tss"]
    end = genes["end"] if "end" in genes.columns else genes["tss"]
    return pd.DataFrame(
        {
            "chrom": genes["chrom"].to_numpy(),
            "start0": (start.astype("int64") - 1 - flank).clip(lower=0).to_numpy(),
            "end0": (end.astype("int64") + flank).to_numpy(),
        }
    )


def run_genes(fasta, genes, exons, samples, genes_cfg: dict, cohort_cfg: dict, harmonize: bool) -> None:
    """Rule `genes`: the cohort's genes (in the expression, on a VCF contig and in the FASTA),
    their exons, and the samples both in the VCF and the expression (the haplotype index's
    sample order); `genes`, `exons`, `samples`: the files written. A cohort with tissues:
    the union of their genes and of their people (first seen first, tissues in config
    order), so that haplotypes, predict and ISM run once for all tissues."""
    from hapexp.config.units import tissues, unit_config
    from hapexp.inputs.exons import exon_table, load_exons
    from hapexp.inputs.formats import read_expression, read_sample_list
    from hapexp.variants.files import fasta_lengths, vcf_contigs, vcf_paths, vcf_samples

    source = genes_cfg.get("gtf") or genes_cfg["table"]
    parts = [unit_config({"c": cohort_cfg}, f"c/{t}") for t in tissues(cohort_cfg)] or [cohort_cfg]
    gene_ids, es = [], []
    for part in parts:
        expr = read_expression(part["expression"], part.get("expression_format", "auto"))
        gene_ids += list(expr.index)
        people = list(expr.columns)
        if part.get("samples"):
            wanted = set(read_sample_list(part["samples"]))
            people = [s for s in people if s in wanted]
        es += people
    gene_ids, es = list(dict.fromkeys(gene_ids)), list(dict.fromkeys(es))
    vcfs = vcf_paths(cohort_cfg["vcf"], cohort_cfg.get("chromosomes"))
    contigs = [c for v in vcfs for c in vcf_contigs(v)]
    kept, counts = build_gene_table(
        load_genes(genes_cfg),
        pd.Index(gene_ids),
        contigs,
        fasta_lengths(fasta),
        harmonize=harmonize,
        source=source,
    )
    log.info("genes: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    vs = vcf_samples(vcfs[0])
    log.info(
        "samples: VCF=%(vcf)d expression=%(expression)d both=%(both)d VCF-only=%(vcf_only)d "
        "expression-only=%(expression_only)d",
        sample_overlap(vs, es),
    )
    both = [s for s in es if s in set(vs)]
    if not both:
        raise InputError(
            vcfs[0],
            "no sample is both in the VCF and in the expression matrix",
            "Check the sample ids of both files.",
        )
    if kept.empty:
        raise InputError(source, "no gene left after matching", "See the counts in the log.")
    merged = exon_table(load_exons(genes_cfg), kept)
    log.info("exons: %d merged exons for %d of %d genes", len(merged), merged["gene_id"].nunique(), len(kept))
    write_tsv(kept, genes)
    write_tsv(merged, exons)
    with atomic_output(samples) as tmp:
        tmp.write_text("".join(f"{s}\n" for s in both))


def run_chunk_genes(genes, chunks) -> None:
    """Rule `chunk_genes`: genes.tsv (sorted by chrom, tss) into the config's number of chunks
    (`chunks`: their paths)."""
    table = pd.read_csv(genes, sep="\t", dtype={"chrom": str, "gene_id": str})
    write_chunks(table, list(chunks))
    log.info("%d genes in %d chunks", len(table), len(chunks))
