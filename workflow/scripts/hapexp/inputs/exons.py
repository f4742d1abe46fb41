"""Gene models for `readout: exons`: each gene's exons, merged over its transcripts.

Exons come from the annotation (`genes.gtf`, GTF or GFF3: `read_gtf_exons`) or from an
exon table (`genes.exons`, columns ``gene_id, chrom, start, end[, strand]``); `load_exons`
reads the configured one, `exon_table` renames them to the cohort's gene ids and
chromosome names (written as ``exons.tsv`` by rule `genes`) and `read_exons` reads that
back for the engine. Tables are 1-based inclusive as in a GTF (`EXON_COLUMNS`);
`read_exons` gives 0-based half-open intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.errors import InputError
from hapexp.inputs.formats import match_gene_ids
from hapexp.inputs.gtf import (
    GFF3_GENE_TYPES,
    detect_gff3,
    first_attr,
    parse_gff3_attrs,
    parse_gtf_attrs,
    strip_id_prefix,
)
from hapexp.inputs.tables import open_text, raise_first_bad, read_config_table

EXON_COLUMNS = ["gene_id", "chrom", "start", "end", "strand"]


def merge_exons(df: pd.DataFrame) -> pd.DataFrame:
    """Union of each gene's exons over its transcripts (overlapping exons merged), sorted.

    Coordinates stay as given (1-based inclusive for GTF rows): [s, e] and [s2, e2]
    merge when s2 <= e: the isoform-agnostic gene model of an exon read-out (Linder et
    al. 2025; baskerville's `Gene.get_exons`).
    """
    rows = []
    df = df.sort_values(["gene_id", "start", "end"], kind="mergesort")
    for gid, g in df.groupby("gene_id", sort=False):
        chrom, strand = g["chrom"].iloc[0], g["strand"].iloc[0]
        cur_s = cur_e = None
        for s, e in zip(g["start"].to_numpy(), g["end"].to_numpy(), strict=True):
            if cur_e is not None and s <= cur_e:
                cur_e = max(cur_e, e)
                continue
            if cur_e is not None:
                rows.append((gid, chrom, cur_s, cur_e, strand))
            cur_s, cur_e = s, e
        if cur_e is not None:
            rows.append((gid, chrom, cur_s, cur_e, strand))
    out = pd.DataFrame(rows, columns=EXON_COLUMNS)
    out[["start", "end"]] = out[["start", "end"]].astype("int64")
    return out


def read_gtf_exons(path, gene_ids=None) -> pd.DataFrame:
    """Exons of every gene (`EXON_COLUMNS`, 1-based inclusive as in the file), merged per gene.

    GTF exon lines carry `gene_id`; GFF3 exons point at their transcript (`Parent`),
    whose `Parent` is the gene. `gene_ids` (ids as in the file) restricts the genes.
    """
    path = Path(path)
    gff3 = detect_gff3(path)
    parse = parse_gff3_attrs if gff3 else parse_gtf_attrs
    want = None if gene_ids is None else set(map(str, gene_ids))
    rows, tx_gene, gene_of_id, exon_parents = [], {}, {}, []
    with open_text(path) as fh:
        for n, line in enumerate(fh, start=1):
            if line.startswith("#") or not line.strip():
                continue
            f = line.rstrip("\r\n").split("\t")
            if len(f) != 9:
                raise InputError(
                    path, f"{len(f)} tab-separated fields, need 9", "Is this a GTF/GFF3?", f"line {n}"
                )
            if gff3 and f[2] != "exon":
                attrs = parse(f[8])
                if f[2] in GFF3_GENE_TYPES and "ID" in attrs:
                    gid = first_attr(attrs, "gene_id") or strip_id_prefix(attrs["ID"][0])
                    gene_of_id[attrs["ID"][0]] = gid
                elif "ID" in attrs and "Parent" in attrs:
                    tx_gene[attrs["ID"][0]] = attrs["Parent"][0]
                continue
            if f[2] != "exon":
                continue
            try:
                start, end = int(f[3]), int(f[4])
            except ValueError:
                raise InputError(
                    path, f"non-integer start/end {f[3]!r}/{f[4]!r}", "Fix it.", f"line {n}"
                ) from None
            attrs = parse(f[8])
            if gff3:
                exon_parents.append((attrs.get("Parent", [""])[0], f[0], start, end, f[6]))
            else:
                rows.append((first_attr(attrs, "gene_id"), f[0], start, end, f[6]))
    for parent, chrom, start, end, strand in exon_parents:
        gid = gene_of_id.get(tx_gene.get(parent, ""))
        if gid:
            rows.append((gid, chrom, start, end, strand))
    df = pd.DataFrame(rows, columns=EXON_COLUMNS)
    if want is not None:
        df = df[df["gene_id"].isin(want)]
    return merge_exons(df)


def load_exons(cfg: dict) -> pd.DataFrame | None:
    """The genes' exons (`EXON_COLUMNS`, 1-based inclusive), merged per gene:
    from `genes.gtf`, or from the `genes.exons` table; None when neither is configured."""
    if cfg.get("gtf"):
        return read_gtf_exons(cfg["gtf"])
    if not cfg.get("exons"):
        return None
    path = Path(cfg["exons"])
    df = read_config_table(
        path,
        "exon table",
        "genes.exons",
        ["gene_id", "chrom", "start", "end"],
        "Columns: gene_id, chrom, start, end (1-based).",
        dtype={"gene_id": str, "chrom": str},
    )
    for c in ("start", "end"):
        v = pd.to_numeric(df[c], errors="coerce")
        raise_first_bad(
            path,
            v.isna() | (v < 1) | (df["end"] < df["start"]),
            lambda i: f"exon {df.iloc[i].to_dict()} is not a 1-based [start, end]",
            "Fix it.",
        )
        df[c] = v.astype("int64")
    if "strand" not in df:
        df["strand"] = "."
    return merge_exons(df[EXON_COLUMNS])


def exon_table(exons: pd.DataFrame | None, genes: pd.DataFrame) -> pd.DataFrame:
    """Exons of the cohort's genes under their final ids and chromosome names (`genes.tsv`)."""
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
