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

from hapexp.errors import InputError
from hapexp.io import write_tsv

log = logging.getLogger(__name__)

GENE_COLUMNS = ["gene_id", "name", "chrom", "tss", "strand", "start", "end", "gene_type"]


def read_gene_table(path) -> pd.DataFrame:
    """Read and check a gene table TSV (gene_id, chrom, tss [1-based], strand; name, start,
    end, gene_type optional; see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "gene table not found", "Check `genes.table` in the config.")
    df = pd.read_csv(
        path, sep="\t", dtype={"gene_id": str, "chrom": str, "name": str, "strand": str, "gene_type": str}
    )
    missing = [c for c in ("gene_id", "chrom", "tss", "strand") if c not in df.columns]
    if missing:
        raise InputError(
            path,
            f"missing column(s) {', '.join(missing)} (found {', '.join(map(str, df.columns))})",
            "The gene table needs gene_id, chrom, tss (1-based), strand (name optional).",
            where="line 1",
        )
    if "name" not in df.columns:
        df["name"] = df["gene_id"]
    df["name"] = df["name"].fillna(df["gene_id"])
    bad = ~df["strand"].isin(["+", "-"])
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(
            path,
            f"gene {df['gene_id'].iloc[i]}: strand {df['strand'].iloc[i]!r} is not + or -",
            "Fix the strand column.",
            where=f"line {i + 2}",
        )
    tss = pd.to_numeric(df["tss"], errors="coerce")
    bad = tss.isna() | (tss < 1)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(
            path,
            f"gene {df['gene_id'].iloc[i]}: tss {df['tss'].iloc[i]!r} is not a 1-based position",
            "Fix the tss column.",
            where=f"line {i + 2}",
        )
    df["tss"] = tss.astype("int64")
    ends = [df["tss"]]
    for col in ("start", "end"):
        if col not in df.columns:
            continue
        v = pd.to_numeric(df[col], errors="coerce")
        bad = (v.isna() & df[col].notna()) | (v < 1)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(
                path,
                f"gene {df['gene_id'].iloc[i]}: {col} {df[col].iloc[i]!r} is not a 1-based position",
                f"Fix the {col} column (or leave it empty).",
                where=f"line {i + 2}",
            )
        ends.append(v.fillna(df["tss"]).astype("int64"))
    body = pd.concat(ends, axis=1)
    df["start"], df["end"] = body.min(axis=1), body.max(axis=1)
    df["gene_type"] = df["gene_type"].fillna("NA") if "gene_type" in df.columns else "NA"
    dup = df["gene_id"].duplicated()
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise InputError(
            path,
            f"gene_id {df['gene_id'].iloc[i]} appears twice",
            "Keep one TSS per gene.",
            where=f"line {i + 2}",
        )
    return df[GENE_COLUMNS].copy()


def load_genes(cfg: dict) -> pd.DataFrame:
    """The configured gene table (`genes.table`) or TSSs from `genes.gtf` (one per gene).

    Columns `GENE_COLUMNS` (tss 1-based); the index is the gene id.
    """
    if cfg.get("gtf"):
        from hapexp.inputs.gtf import one_tss_per_gene, read_gtf_tss

        level = cfg.get("tss_level", "gene")
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
    from hapexp.inputs.formats import match_gene_ids
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


# ------------------------------------------------------------------------- exons
def load_exons(cfg: dict) -> pd.DataFrame | None:
    """The genes' exons (`hapexp.inputs.gtf.EXON_COLUMNS`, 1-based inclusive), merged per gene:
    from `genes.gtf`, or from the `genes.exons` table; None when neither is configured."""
    from hapexp.inputs.gtf import EXON_COLUMNS, merge_exons, read_gtf_exons

    if cfg.get("gtf"):
        return read_gtf_exons(cfg["gtf"])
    if not cfg.get("exons"):
        return None
    path = Path(cfg["exons"])
    if not path.is_file():
        raise InputError(path, "exon table not found", "Check `genes.exons` in the config.")
    df = pd.read_csv(path, sep="\t", dtype={"gene_id": str, "chrom": str})
    missing = [c for c in ("gene_id", "chrom", "start", "end") if c not in df.columns]
    if missing:
        raise InputError(
            path,
            f"missing column(s) {', '.join(missing)}",
            "Columns: gene_id, chrom, start, end (1-based).",
            "line 1",
        )
    for c in ("start", "end"):
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna() | (v < 1)
        if bad.any() or (df["end"] < df["start"]).any():
            i = int(np.flatnonzero(bad.to_numpy() | (df["end"] < df["start"]).to_numpy())[0])
            raise InputError(
                path, f"exon {df.iloc[i].to_dict()} is not a 1-based [start, end]", "Fix it.", f"line {i + 2}"
            )
        df[c] = v.astype("int64")
    if "strand" not in df:
        df["strand"] = "."
    return merge_exons(df[EXON_COLUMNS])


def exon_table(exons: pd.DataFrame | None, genes: pd.DataFrame) -> pd.DataFrame:
    """Exons of the cohort's genes under their final ids and chromosome names (`genes.tsv`)."""
    from hapexp.inputs.formats import match_gene_ids
    from hapexp.inputs.gtf import EXON_COLUMNS

    if exons is None or exons.empty:
        return pd.DataFrame(columns=EXON_COLUMNS)
    m = match_gene_ids(exons["gene_id"], genes["gene_id"])
    keep = m.notna().to_numpy()
    out = exons[keep].copy()
    out["gene_id"] = m[keep].to_numpy()
    g = genes.set_index("gene_id")
    out["chrom"] = out["gene_id"].map(g["chrom"])
    out["strand"] = out["gene_id"].map(g["strand"])
    order = {gid: i for i, gid in enumerate(genes["gene_id"])}
    out = out.assign(_o=out["gene_id"].map(order)).sort_values(["_o", "start"], kind="mergesort")
    return out[EXON_COLUMNS].reset_index(drop=True)


def read_exons(path) -> dict[str, np.ndarray]:
    """`exons.tsv` → gene_id → int64 [k, 2] reference intervals [start0, end0) (0-based half-open)."""
    df = pd.read_csv(path, sep="\t", dtype={"gene_id": str, "chrom": str})
    out = {}
    for gid, g in df.groupby("gene_id", sort=False):
        out[gid] = np.stack([g["start"].to_numpy(np.int64) - 1, g["end"].to_numpy(np.int64)], axis=1)
    return out
