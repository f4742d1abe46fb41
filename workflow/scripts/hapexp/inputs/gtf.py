"""Transcription start sites from a GTF or GFF3 annotation (GENCODE, Ensembl).

`read_gtf_tss` accepts GTF (``key "value";`` attributes) and GFF3 (``key=value;``),
gzipped or not, any GENCODE/Ensembl release, GRCh37 or GRCh38, chromosome names
with or without ``chr`` (kept as in the file; `match_contigs` maps them onto the
names of a FASTA/VCF).

TSS convention (1-based, like the file): the feature's ``start`` on ``+``, its
``end`` on ``-`` (GENCODE: the gene's 5' end is its start on +, its end on −).

Gene level (``level="gene"``): one row per gene, the TSS of the gene feature, which
is the most 5' TSS of all its transcripts. ``start``/``end`` are the gene feature's
(1-based, inclusive, start <= end: the gene body, e.g. for PredictDB's window);
``gene_type`` its GENCODE ``gene_type`` / Ensembl ``gene_biotype``.

Transcript level (``level="transcript"``): one row per transcript, with
``transcript_id``, ``canonical`` (tagged ``Ensembl_canonical`` or ``MANE_Select``, or
``canonical`` in the source's tags) and ``rank`` (0 = the transcript to use for a
one-TSS-per-gene analysis). Downstream stages that need one TSS per gene call
`one_tss_per_gene`, which keeps the rank-0 transcript: the canonical one when the
annotation tags it (GENCODE ≥ v40 / Ensembl ≥ 104), otherwise the ``basic``-tagged
transcript with the best (lowest) GENCODE ``level``, then the highest
``transcript_support_level``, then the longest, then the first in the file.

The attribute parsers and `detect_gff3` also serve the exon reader
(`hapexp.inputs.exons.read_gtf_exons`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import unquote

import pandas as pd

from hapexp.errors import InputError
from hapexp.inputs.tables import open_text

log = logging.getLogger(__name__)

TSS_COLUMNS = ["gene_id", "name", "chrom", "tss", "strand", "gene_type", "start", "end"]
TRANSCRIPT_COLUMNS = [*TSS_COLUMNS, "transcript_id", "transcript_type", "canonical", "rank"]

# GFF3 feature types that are genes (Ensembl uses several; GENCODE only "gene").
GFF3_GENE_TYPES = frozenset({"gene", "ncRNA_gene", "pseudogene"})
# Sub-transcript features: never transcripts themselves.
SUBFEATURES = frozenset(
    {
        "exon",
        "CDS",
        "UTR",
        "five_prime_UTR",
        "three_prime_UTR",
        "start_codon",
        "stop_codon",
        "Selenocysteine",
        "stop_codon_redefined_as_selenocysteine",
        "biological_region",
        "chromosome",
        "region",
        "supercontig",
        "scaffold",
    }
)
CANONICAL_TAGS = frozenset({"Ensembl_canonical", "MANE_Select", "canonical"})
_GTF_ATTR = re.compile(r'\s*([^\s";]+)\s+(?:"([^"]*)"|([^\s;]+))\s*;?')


def parse_gtf_attrs(s: str) -> dict[str, list[str]]:
    """GTF attributes (``key "value";``) → key → values in file order."""
    out: dict[str, list[str]] = {}
    for m in _GTF_ATTR.finditer(s):
        val = m.group(2) if m.group(2) is not None else m.group(3)
        out.setdefault(m.group(1), []).append(val)
    return out


def parse_gff3_attrs(s: str) -> dict[str, list[str]]:
    """GFF3 attributes (``key=v1,v2;``, URL-escaped) → key → values in file order."""
    out: dict[str, list[str]] = {}
    for part in s.strip().strip(";").split(";"):
        if not part:
            continue
        key, _, val = part.partition("=")
        out.setdefault(key.strip(), []).extend(unquote(v) for v in val.split(","))
    return out


def first_attr(attrs: dict[str, list[str]], *keys: str, default: str = "") -> str:
    """The first value of the first of `keys` that the attributes hold."""
    for k in keys:
        if k in attrs and attrs[k]:
            return attrs[k][0]
    return default


def strip_id_prefix(x: str) -> str:
    # Ensembl GFF3 ids are "gene:ENSG…" / "transcript:ENST…".
    return x.split(":", 1)[1] if ":" in x and x.split(":", 1)[0] in ("gene", "transcript") else x


def detect_gff3(path) -> bool:
    """Whether `path` is GFF3 (by its name, a ``##gff-version 3`` line or its first
    attribute column) rather than GTF."""
    name = Path(path).name.lower()
    if ".gff3" in name or ".gff" in name:
        return True
    with open_text(path) as fh:
        for line in fh:
            if line.startswith("##gff-version 3"):
                return True
            if line.startswith("#") or not line.strip():
                continue
            f = line.rstrip("\n").split("\t")
            if len(f) == 9:
                return bool(re.match(r"\s*[^\s=;]+=", f[8])) and '"' not in f[8]
            return False
    return False


def read_gtf_tss(path, level: str = "gene", gene_types=None) -> pd.DataFrame:
    """TSSs of genes (``level="gene"``) or transcripts (``level="transcript"``).

    Returns columns `TSS_COLUMNS` (gene level) or `TRANSCRIPT_COLUMNS` (transcript
    level); ``tss`` is 1-based. `gene_types` (e.g. ``["protein_coding", "lncRNA"]``)
    keeps only genes of those types (GENCODE ``gene_type``, Ensembl ``gene_biotype``
    / ``biotype``); ``None`` keeps all. Gene ids keep their version suffix as in the
    file. A gene id present on two chromosomes (PAR genes of GENCODE ≤ v23, listed
    on chrX and chrY under one id) keeps its first occurrence.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "annotation file not found", "Check genes.gtf in the config.")
    if level not in ("gene", "transcript"):
        raise InputError(path, f"unknown TSS level {level!r}", "Use genes.tss_level: gene or transcript.")
    gff3 = detect_gff3(path)
    parse = parse_gff3_attrs if gff3 else parse_gtf_attrs

    genes: dict[str, dict] = {}  # gene_id -> record (first occurrence)
    gff3_gene_ids: dict[str, str] = {}  # GFF3 ID (e.g. "gene:ENSG…") -> gene_id
    transcripts: list[dict] = []
    n_dup = 0
    n_lines = 0
    with open_text(path) as fh:
        for n, line in enumerate(fh, start=1):
            if line.startswith("#") or not line.strip():
                continue
            # Exons/CDS/UTRs are ~90% of a GENCODE file: skip them on the first 3 fields.
            head = line.split("\t", 3)
            if len(head) == 4 and head[2] in SUBFEATURES:
                continue
            f = line.rstrip("\r\n").split("\t")
            if len(f) != 9:
                raise InputError(
                    path,
                    f"{len(f)} tab-separated fields, a {'GFF3' if gff3 else 'GTF'} line has 9",
                    "Is this a GTF/GFF3 file? Use genes.table for a gene table.",
                    where=f"line {n}",
                )
            ftype = f[2]
            n_lines += 1
            is_gene = ftype in GFF3_GENE_TYPES if gff3 else ftype == "gene"
            is_tx = (not is_gene) and (ftype == "transcript" or gff3)
            if not (is_gene or (level == "transcript" and is_tx)):
                continue
            attrs = parse(f[8])
            strand = f[6]
            if strand not in ("+", "-"):
                raise InputError(
                    path,
                    f"strand {strand!r} (need + or -)",
                    "Genes need a strand to have a TSS.",
                    where=f"line {n}",
                )
            try:
                start, end = int(f[3]), int(f[4])
            except ValueError:
                raise InputError(
                    path,
                    f"non-integer start/end {f[3]!r}/{f[4]!r}",
                    "Fix the coordinates.",
                    where=f"line {n}",
                ) from None
            tss = start if strand == "+" else end
            gtype = first_attr(attrs, "gene_type", "gene_biotype", "biotype")
            if is_gene:
                gid = first_attr(attrs, "gene_id") or strip_id_prefix(first_attr(attrs, "ID"))
                if not gid:
                    raise InputError(
                        path, "gene feature without gene_id/ID", "Fix the annotation.", where=f"line {n}"
                    )
                if gff3 and "ID" in attrs:
                    gff3_gene_ids[attrs["ID"][0]] = gid
                if gid in genes:
                    n_dup += 1
                    continue
                genes[gid] = {
                    "gene_id": gid,
                    "name": first_attr(attrs, "gene_name", "Name", "gene", default=gid),
                    "chrom": f[0],
                    "tss": tss,
                    "strand": strand,
                    "gene_type": gtype,
                    "start": start,
                    "end": end,
                }
            else:
                tags = set()
                for k in ("tag", "tags"):
                    for t in attrs.get(k, []):
                        tags.update(x.strip() for x in t.split(","))
                level_attr = first_attr(attrs, "level")
                tsl = first_attr(attrs, "transcript_support_level").split(" ")[0]
                transcripts.append(
                    {
                        "gene_ref": first_attr(attrs, "gene_id") if not gff3 else first_attr(attrs, "Parent"),
                        "gene_ref_alt": first_attr(attrs, "gene_id"),
                        "transcript_id": first_attr(attrs, "transcript_id")
                        or strip_id_prefix(first_attr(attrs, "ID")),
                        "transcript_type": first_attr(
                            attrs, "transcript_type", "transcript_biotype", "biotype"
                        ),
                        "chrom": f[0],
                        "tss": tss,
                        "strand": strand,
                        "gene_type": gtype,
                        "canonical": bool(tags & CANONICAL_TAGS),
                        "basic": "basic" in tags,
                        "level": int(level_attr) if level_attr.isdigit() else 9,
                        "tsl": int(tsl) if tsl.isdigit() else 9,
                        "length": end - start + 1,
                        "start": start,
                        "end": end,
                        "order": len(transcripts),
                        "line": n,
                    }
                )
    if n_lines == 0:
        raise InputError(path, "no gene or transcript features", "Is this a GTF/GFF3 annotation file?")
    if n_dup:
        log.warning("%s: %d gene ids seen twice (PAR genes?); kept the first occurrence", path, n_dup)

    if level == "gene":
        df = pd.DataFrame(list(genes.values()), columns=TSS_COLUMNS)
    else:
        rows = []
        seen_tx: set[tuple[str, str]] = set()
        for t in transcripts:
            if gff3:
                gid = gff3_gene_ids.get(t["gene_ref"])
                if gid is None:
                    continue  # a feature whose parent is not a gene (not a transcript)
            else:
                gid = t["gene_ref"]
            if not gid:
                raise InputError(
                    path, "transcript without gene_id", "Fix the annotation.", where=f"line {t['line']}"
                )
            tid = t["transcript_id"]
            if (gid, tid) in seen_tx:
                continue  # PAR copy
            seen_tx.add((gid, tid))
            g = genes.get(gid)
            if g is not None and g["chrom"] != t["chrom"]:
                continue  # PAR copy on the other chromosome
            rows.append(
                {
                    "gene_id": gid,
                    "name": g["name"] if g else gid,
                    "chrom": t["chrom"],
                    "tss": t["tss"],
                    "strand": t["strand"],
                    "gene_type": (g["gene_type"] if g else "") or t["gene_type"],
                    # the gene body: the gene feature's, else the transcript's own
                    "start": g["start"] if g else t["start"],
                    "end": g["end"] if g else t["end"],
                    "transcript_id": tid,
                    "transcript_type": t["transcript_type"],
                    "canonical": t["canonical"],
                    "_basic": t["basic"],
                    "_level": t["level"],
                    "_tsl": t["tsl"],
                    "_length": t["length"],
                    "_order": t["order"],
                }
            )
        if not rows:
            raise InputError(
                path,
                "no transcript features",
                "Use genes.tss_level: gene, or an annotation with transcripts.",
            )
        df = pd.DataFrame(rows)
        # rank 0 = the transcript one_tss_per_gene keeps (see module docstring).
        df = df.sort_values(
            ["gene_id", "canonical", "_basic", "_level", "_tsl", "_length", "_order"],
            ascending=[True, False, False, True, True, False, True],
            kind="mergesort",
        )
        df["rank"] = df.groupby("gene_id", sort=False).cumcount()
        df = df.sort_values("_order", kind="mergesort")[TRANSCRIPT_COLUMNS]
    if gene_types is not None:
        keep = set(gene_types)
        df = df[df["gene_type"].isin(keep)]
        if df.empty:
            raise InputError(
                path,
                f"no genes of type(s) {sorted(keep)}",
                "Check genes.gene_types against the annotation's gene_type/gene_biotype values "
                "(GENCODE ≤ v21 says 'lincRNA', later 'lncRNA').",
            )
    df = df.reset_index(drop=True)
    for col in ("tss", "start", "end"):
        df[col] = df[col].astype("int64")
    return df


def one_tss_per_gene(df: pd.DataFrame) -> pd.DataFrame:
    """Collapse a transcript-level table to one row per gene (the rank-0 transcript)."""
    if "rank" not in df.columns:
        return df.drop_duplicates("gene_id").reset_index(drop=True)
    return df[df["rank"] == 0].reset_index(drop=True)


def match_contigs(names, available) -> dict[str, str | None]:
    """Map annotation chromosome names onto `available` (FASTA/VCF contigs).

    Tries the name itself, then with ``chr`` added or removed, and ``chrM`` ↔ ``MT``.
    Returns name → matched contig, or ``None`` when none of those exists.
    """
    avail = set(map(str, available))
    out: dict[str, str | None] = {}
    for name in dict.fromkeys(map(str, names)):
        bare = name[3:] if name.startswith("chr") else name
        candidates = [name, bare, f"chr{bare}"]
        if bare in ("M", "MT"):
            candidates += ["MT", "chrM", "chrMT", "M"]
        out[name] = next((c for c in candidates if c in avail), None)
    return out
