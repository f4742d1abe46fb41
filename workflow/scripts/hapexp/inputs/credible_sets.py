"""External fine-mapping as input: credible sets a user already has, read into one table.

PIPs fitted on the cohort's own expression share its noise with every in-cohort
baseline; credible sets from another study are the non-circular reference. Formats
(`CS_FORMATS`; ``auto`` picks one from the header):

- ``eqtl_catalogue``: eQTL Catalogue SuSiE ``QTD*.credible_sets.tsv.gz`` (release 6 on):
  ``molecular_trait_id gene_id cs_id variant rsid cs_size pip pvalue beta se z cs_min_r2
  region``; ``variant`` = ``chr19_226776_C_T`` on GRCh38 (1-based position, ALT the effect
  allele); a variant with several rs ids is repeated once per rs id (deduplicated here).
  Older releases without ``gene_id`` (their ``molecular_trait_id`` is the gene for
  gene-level data) and variants without the ``chr`` prefix are read as well.
- ``gtex_dapg``: GTEx v8 DAP-G ``GTEx_v8_finemapping_DAPG.txt.gz``: ``tissue_id gene_id
  cluster_id cluster_pip variant_id variant_pip``; ``variant_id`` = ``chr1_13550_G_A_b38``,
  gene ids versioned. The same six columns without a header line are read too.
- ``gtex_susie``: the GTEx v8 SuSiE/FINEMAP release (``GTEx_49tissues_release1.tsv.bgz``):
  ``chromosome start end variant variant_hg38 allele1 allele2 minor_allele cohort method
  tissue gene maf beta_marginal se_marginal z pip cs_id beta_posterior sd_posterior``;
  rows of one ``method`` (``SUSIE`` unless told), the variant from ``variant_hg38``;
  ``cs_id`` < 1 (or empty) = not in a credible set.

The normalized table (`read_credible_sets`): one row per (set, variant) with `COLUMNS`:
``gene_id`` (Ensembl, version stripped), ``chrom`` (as in the file), ``pos`` (1-based),
``ref``, ``alt``, ``pip``, ``cs_id`` (unique within the file: the eQTL Catalogue's own id,
GTEx ``tissue:gene:set``; <NA> outside a set), ``source`` (the format), then ``beta``
when the file has one (marginal effect of ALT: eQTL Catalogue's ``beta``, GTEx's
``beta_marginal`` — LD-confounded slopes, not posterior effects), ``beta_posterior`` and
``sd_posterior`` (``gtex_susie`` only: the fine-mapping's posterior mean and SD of ALT's
effect, adjusted for the other variants), ``tissue`` (GTEx), ``trait_id`` (the file's own
gene/trait id), ``line`` (1-based file line, for messages). `select_tissue` keeps one
tissue's rows of a GTEx file that holds several.

Build: eQTL Catalogue is GRCh38 by definition; GTEx ids carry ``_b38`` (``_b37``) — a
file whose build differs from the cohort's ``reference.build`` is an `InputError`. With
the cohort's reference FASTA, REF alleles are also checked against it
(`check_reference_alleles`: more than `MIN_REF_MATCH` must agree), which catches files
whose labels lie. `match_to_cohort` then places the rows on the cohort's variants by
position and alleles, either orientation, with counts in the log.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.errors import InputError
from hapexp.inputs.formats import strip_version
from hapexp.inputs.gtf import match_contigs
from hapexp.inputs.tables import open_text

log = logging.getLogger(__name__)

CS_FORMATS = ("auto", "eqtl_catalogue", "gtex_dapg", "gtex_susie")
COLUMNS = ["gene_id", "chrom", "pos", "ref", "alt", "pip", "cs_id", "source"]

# The full layouts as published (what the fixtures reproduce); only REQUIRED is enforced.
LAYOUTS = {
    "eqtl_catalogue": [
        "molecular_trait_id", "gene_id", "cs_id", "variant", "rsid", "cs_size", "pip",
        "pvalue", "beta", "se", "z", "cs_min_r2", "region",
    ],
    "gtex_dapg": ["tissue_id", "gene_id", "cluster_id", "cluster_pip", "variant_id", "variant_pip"],
    "gtex_susie": [
        "chromosome", "start", "end", "variant", "variant_hg38", "allele1", "allele2",
        "minor_allele", "cohort", "method", "tissue", "gene", "maf", "beta_marginal",
        "se_marginal", "z", "pip", "cs_id", "beta_posterior", "sd_posterior",
    ],
}  # fmt: skip
REQUIRED = {
    "eqtl_catalogue": ["molecular_trait_id", "cs_id", "variant", "pip"],
    "gtex_dapg": ["tissue_id", "gene_id", "cluster_id", "variant_id", "variant_pip"],
    "gtex_susie": ["tissue", "gene", "variant_hg38", "method", "pip", "cs_id"],
}
# Posterior effect columns (posterior mean, SD) per format: only the GTEx SuSiE/FINEMAP
# release has them; eQTL Catalogue's `beta` and GTEx's `beta_marginal` are marginal slopes.
POSTERIOR = {"gtex_susie": ("beta_posterior", "sd_posterior")}
# Why a format has no posterior effect (the causal benchmark's sign agreement says so).
NO_POSTERIOR = {
    "eqtl_catalogue": "the eQTL Catalogue's credible sets carry no posterior effect (their `beta` is the "
    "marginal, LD-confounded slope)",
    "gtex_dapg": "GTEx's DAP-G table carries no effect sizes",
}
# Effect columns `match_to_cohort` turns to the cohort's ALT (`<column>_cohort`).
EFFECT_COLUMNS = ("beta", "beta_posterior")
# Columns per format: (variant id, pip, gene, beta or None)
_FIELDS = {
    "eqtl_catalogue": ("variant", "pip", "gene_id", "beta"),
    "gtex_dapg": ("variant_id", "variant_pip", "gene_id", None),
    "gtex_susie": ("variant_hg38", "pip", "gene", "beta_marginal"),
}

BUILDS = {
    "grch38": "GRCh38", "hg38": "GRCh38", "b38": "GRCh38", "38": "GRCh38",
    "grch37": "GRCh37", "hg19": "GRCh37", "b37": "GRCh37", "37": "GRCh37",
}  # fmt: skip
_SUFFIX_BUILD = {"b38": "GRCh38", "b37": "GRCh37"}
MIN_REF_MATCH = 0.95  # fraction of checked sites whose REF must agree with the FASTA
MAX_REF_SITES = 20_000  # sites checked against the FASTA (evenly spaced beyond that)
NA_TOKENS = frozenset({"", "NA", "NaN", "nan", "NAN", "na", "N/A"})

# chrom_pos_ref_alt[_b37|_b38], chrom with or without "chr"; alleles as VCF bases.
_VARIANT = re.compile(r"^((?:chr)?[0-9A-Za-z]+)_([0-9]+)_([ACGTNacgtn]+)_([ACGTNacgtn]+)(?:_(b3[78]))?$")

_BUILD_FIX = (
    "eQTL Catalogue and GTEx v8 credible sets are on GRCh38 (the Geuvadis preset is GRCh37): "
    "lift the credible sets over to the cohort's build (e.g. CrossMap or liftOver with the "
    "matching chain file), or run the cohort on the credible sets' build"
)


# --------------------------------------------------------------------------- build
def normalize_build(build) -> str | None:
    """``GRCh38``/``hg38``/``b38`` → ``GRCh38``, likewise GRCh37; None stays None."""
    if build is None or str(build).strip() == "":
        return None
    key = str(build).strip().lower()
    if key not in BUILDS:
        raise InputError(
            "config",
            f"unknown genome build {build!r}",
            "Set `reference.build` to GRCh38 or GRCh37 (hg38/hg19 are accepted).",
            where="reference.build",
        )
    return BUILDS[key]


# -------------------------------------------------------------------------- reading
def _header(path) -> list[str]:
    with open_text(path) as fh:
        first = fh.readline()
    if not first.strip():
        raise InputError(path, "the file is empty", "Give a credible-set table with its header line.")
    return [h.strip() for h in first.rstrip("\r\n").split("\t")]


def _headerless_dapg(header: list[str]) -> bool:
    return len(header) == 6 and _VARIANT.match(header[4]) is not None


def detect_format(path) -> str:
    """The credible-set format of `path` from its header (see `CS_FORMATS`)."""
    header = _header(path)
    cols = set(header)
    if {"molecular_trait_id", "variant", "cs_id", "pip"} <= cols:
        return "eqtl_catalogue"
    if {"cluster_id", "variant_id", "variant_pip"} <= cols or _headerless_dapg(header):
        return "gtex_dapg"
    if {"variant_hg38", "method", "pip", "cs_id"} <= cols:
        return "gtex_susie"
    raise InputError(
        path,
        f"not a known credible-set layout (header: {' '.join(header[:8])}{' …' if len(header) > 8 else ''})",
        "Give an eQTL Catalogue *.credible_sets.tsv.gz, GTEx_v8_finemapping_DAPG.txt.gz or the GTEx "
        "SuSiE release table (GTEx_49tissues_release1.tsv.bgz), with its header line",
        where="line 1",
    )


def _read_table(path, fmt: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Every field as text; returns (table, 1-based file line of each row)."""
    header = _header(path)
    headerless = fmt == "gtex_dapg" and _headerless_dapg(header)
    names = LAYOUTS["gtex_dapg"] if headerless else header
    missing = [c for c in REQUIRED[fmt] if c not in names]
    if missing:
        raise InputError(
            path,
            f"missing column(s) {', '.join(missing)} for the {fmt} layout (found {', '.join(header)})",
            f"The {fmt} layout has the columns {' '.join(LAYOUTS[fmt])}; is `format` right?",
            where="line 1",
        )
    dup = [c for c in dict.fromkeys(names) if names.count(c) > 1]
    if dup:
        raise InputError(path, f"duplicate column {dup[0]!r}", "Name each column once.", where="line 1")
    first = 0 if headerless else 1
    try:
        with open_text(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(
                fh,
                sep="\t",
                header=None,
                names=names,
                skiprows=first,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                quoting=3,
                index_col=False,
            )
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame(columns=names)
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        problem = f"{m.group(3)} fields where the header has {m.group(1)}" if m else f"cannot parse ({e})"
        raise InputError(
            path,
            problem,
            "Every row needs the same tab-separated fields as the header.",
            where=f"line {m.group(2)}" if m else None,
        ) from None
    lines = np.arange(len(raw)) + first + 1
    raw = raw.fillna("")
    blank = (raw.apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
    raw, lines = raw.loc[~blank].reset_index(drop=True), lines[~blank]
    if raw.empty:
        raise InputError(path, "no rows below the header", "The credible-set table is empty.")
    return raw, lines


def _fail_first(path, bad, lines, problem, fix: str) -> None:
    rows = np.flatnonzero(np.asarray(bad))
    if len(rows):
        i = int(rows[0])
        raise InputError(path, problem(i), fix, where=f"line {lines[i]}")


def _numbers(path, raw: pd.DataFrame, col: str, lines, *, allow_na: bool) -> np.ndarray:
    text = raw[col].str.strip()
    num = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    na = text.isin(NA_TOKENS).to_numpy()
    bad = np.isnan(num) & ~(na if allow_na else np.zeros(len(num), bool))
    _fail_first(
        path,
        bad,
        lines,
        lambda i: f"{'empty' if text.iat[i] == '' else 'non-numeric'} {col} {text.iat[i]!r}",
        f"`{col}` must be a number{' (missing: NA)' if allow_na else ''}; a shifted column or a short row "
        "is the usual cause",
    )
    return num


def _parse_variants(path, ids: pd.Series, lines, col: str) -> pd.DataFrame:
    parts = ids.str.strip().str.extract(_VARIANT)
    _fail_first(
        path,
        parts[0].isna().to_numpy(),
        lines,
        lambda i: f"malformed variant id {ids.iat[i]!r} in `{col}`",
        "Variant ids are chrom_pos_ref_alt (e.g. chr1_13550_G_A, GTEx with _b38), position 1-based",
    )
    return pd.DataFrame(
        {
            "chrom": parts[0].to_numpy(dtype=object),
            "pos": parts[1].astype("int64").to_numpy(),
            "ref": parts[2].str.upper().to_numpy(dtype=object),
            "alt": parts[3].str.upper().to_numpy(dtype=object),
            "suffix": parts[4].fillna("").to_numpy(dtype=object),
        }
    )


def _declared_build(path, fmt: str, suffix: np.ndarray, lines) -> str | None:
    """The build the file says it is on: GTEx's _b37/_b38 (must be one for the whole
    file), the eQTL Catalogue's documented GRCh38."""
    tags = sorted(set(suffix) - {""})
    if len(tags) > 1 or (tags and (suffix == "").any()):
        other = suffix != suffix[0]
        _fail_first(
            path,
            other,
            lines,
            lambda i: (
                f"variant ids mix build suffixes ({suffix[0] or 'none'} on line {lines[0]}, "
                f"{suffix[i] or 'none'} here)"
            ),
            "One file must be on one genome build",
        )
    if tags:
        return _SUFFIX_BUILD[tags[0]]
    return "GRCh38" if fmt == "eqtl_catalogue" else None


def read_credible_sets(
    path, format: str = "auto", build=None, fasta=None, method: str = "SUSIE"
) -> pd.DataFrame:
    """Read an external credible-set file into the normalized table (module docstring).

    `format`: one of `CS_FORMATS`. `build`: the cohort's genome build (config
    ``reference.build``; None skips the label check); `fasta`: the cohort's reference
    FASTA, whose REF alleles the rows must match (`check_reference_alleles`). `method`:
    the ``gtex_susie`` rows to keep (``SUSIE`` or ``FINEMAP``). Raises `InputError` with
    the file and line for a missing column, a malformed variant id, a non-numeric pip or
    one outside [0, 1], and for a build that is not the cohort's. ``df.attrs`` holds
    ``path``, ``format`` and ``build`` (the file's own, when it declares one).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "credible-set file not found", "Check the path in the config.")
    if format not in CS_FORMATS:
        raise InputError(
            path, f"unknown credible-set format {format!r}", f"Use one of: {', '.join(CS_FORMATS)}."
        )
    fmt = detect_format(path) if format == "auto" else format
    if format == "auto":
        log.info("%s: credible-set format detected as %r", path, fmt)
    expected = normalize_build(build)
    raw, lines = _read_table(path, fmt)
    vcol, pcol, gcol, bcol = _FIELDS[fmt]

    if fmt == "gtex_susie":
        keep = (raw["method"].str.strip().str.upper() == method.upper()).to_numpy()
        if not keep.any():
            found = ", ".join(sorted(set(raw["method"].str.strip())))
            raise InputError(
                path,
                f"no rows of method {method!r} (methods in the file: {found})",
                "Choose one of those methods.",
            )
        raw, lines = raw.loc[keep].reset_index(drop=True), lines[keep]
    if fmt == "eqtl_catalogue" and "gene_id" not in raw.columns:
        gcol = "molecular_trait_id"  # releases before 6: the trait is the gene for gene-level data

    for col in dict.fromkeys([vcol, gcol, *REQUIRED[fmt]]):
        empty = (raw[col].str.strip() == "").to_numpy()
        _fail_first(
            path,
            empty,
            lines,
            lambda i, col=col: f"empty `{col}` (a short row?)",
            "Every row needs a value in each column of the layout",
        )
    var = _parse_variants(path, raw[vcol], lines, vcol)
    pip = _numbers(path, raw, pcol, lines, allow_na=False)
    _fail_first(
        path,
        (pip < -1e-6) | (pip > 1 + 1e-6),
        lines,
        lambda i: f"{pcol} {raw[pcol].iat[i].strip()!r} is outside [0, 1]",
        "A posterior inclusion probability lies in [0, 1]; is the column a PIP (not a log Bayes factor)?",
    )
    pip = np.clip(pip, 0.0, 1.0)

    gene_raw = raw[gcol].str.strip()
    tissue = None
    if fmt == "eqtl_catalogue":
        cs_id = pd.array(raw["cs_id"].str.strip().to_numpy(dtype=object), dtype="string")
    elif fmt == "gtex_dapg":
        tissue = raw["tissue_id"].str.strip()
        cs_id = pd.array(
            (tissue + ":" + gene_raw + ":" + raw["cluster_id"].str.strip()).to_numpy(), dtype="string"
        )
    else:
        tissue = raw["tissue"].str.strip()
        num = _numbers(path, raw, "cs_id", lines, allow_na=True)
        _fail_first(
            path,
            ~np.isnan(num) & (num != np.round(num)),
            lines,
            lambda i: f"cs_id {raw['cs_id'].iat[i].strip()!r} is not an integer",
            "`cs_id` is the credible set's index (1, 2, …; -1 or NA outside a set)",
        )
        in_set = ~np.isnan(num) & (num >= 1)
        ids = (tissue + ":" + gene_raw + ":").to_numpy(dtype=object) + np.where(
            in_set, np.nan_to_num(num).astype(np.int64).astype(str), ""
        ).astype(object)
        cs_id = pd.array(np.where(in_set, ids, None), dtype="string")

    out = pd.DataFrame(
        {
            "gene_id": strip_version(gene_raw.tolist()),
            "chrom": var["chrom"],
            "pos": var["pos"],
            "ref": var["ref"],
            "alt": var["alt"],
            "pip": pip,
            "cs_id": cs_id,
            "source": fmt,
        }
    )
    if bcol is not None and bcol in raw.columns:
        out["beta"] = _numbers(path, raw, bcol, lines, allow_na=True)
    for col in POSTERIOR.get(fmt, ()):
        if col in raw.columns:
            out[col] = _numbers(path, raw, col, lines, allow_na=True)
    if tissue is not None:
        out["tissue"] = tissue.to_numpy(dtype=object)
    trait = raw["molecular_trait_id"].str.strip() if fmt == "eqtl_catalogue" else gene_raw
    out["trait_id"] = trait.to_numpy(dtype=object)
    out["line"] = lines

    if fmt == "eqtl_catalogue":  # one row per rs id in the file: keep each (set, variant) once
        dup = out.duplicated(["trait_id", "cs_id", "chrom", "pos", "ref", "alt"]).to_numpy()
        if dup.any():
            log.info(
                "%s: %d rows repeat a (set, variant) with another rs id; kept once", path, int(dup.sum())
            )
            out = out.loc[~dup].reset_index(drop=True)
            var = var.loc[~dup].reset_index(drop=True)

    declared = _declared_build(path, fmt, var["suffix"].to_numpy(dtype=object), out["line"].to_numpy())
    if declared and expected and declared != expected:
        how = (
            f"variant ids end in _{'b38' if declared == 'GRCh38' else 'b37'}"
            if (var["suffix"] != "").any()
            else "the eQTL Catalogue's variants are"
        )
        raise InputError(
            path,
            f"{how} on {declared}, but the cohort's reference.build is {expected}",
            _BUILD_FIX,
            where=f"line {out['line'].iat[0]}",
        )
    if declared is None and expected is None and fasta is None:
        log.warning(
            "%s: neither the file nor the config names a genome build, and no FASTA to check REF", path
        )
    out.attrs.update(path=str(path), format=fmt, build=declared or expected)
    if fasta is not None:
        check_reference_alleles(out, fasta, path=path, build=expected)
    log.info(
        "%s: %d credible-set rows (%s), %d genes, %d sets",
        path,
        len(out),
        fmt,
        out["gene_id"].nunique(),
        out["cs_id"].dropna().nunique(),
    )
    return out


# ----------------------------------------------------------------- reference check
def check_reference_alleles(
    cs: pd.DataFrame,
    fasta,
    path=None,
    build=None,
    min_fraction: float = MIN_REF_MATCH,
    max_sites: int = MAX_REF_SITES,
) -> dict:
    """Check that the rows' REF alleles are the FASTA's bases at their positions.

    Unique sites (at most `max_sites`, evenly spaced) on contigs the FASTA has (``chr1``
    ↔ ``1``); raises `InputError` when `min_fraction` or fewer of them agree (another
    genome build) or when no row lies on a FASTA contig. Returns counts ``checked``,
    ``matched``, ``off_fasta`` (rows on contigs the FASTA lacks)."""
    import pysam

    path = path or cs.attrs.get("path", "credible sets")
    fasta = Path(fasta)
    if not fasta.is_file():
        raise InputError(fasta, "reference FASTA not found", "Check `reference.fasta` in the config.")
    sites = cs.drop_duplicates(["chrom", "pos", "ref"])
    with pysam.FastaFile(str(fasta)) as fa:
        contigs = match_contigs(sites["chrom"].unique(), fa.references)
        lengths = dict(zip(fa.references, fa.lengths, strict=True))
        on = sites["chrom"].map(contigs).notna().to_numpy()
        if not on.any():
            raise InputError(
                path,
                f"none of the credible sets' chromosomes ({', '.join(list(contigs)[:5])}) is in the FASTA {fasta} "
                f"(its contigs: {', '.join(list(fa.references)[:5])})",
                "Give the cohort's reference FASTA (`reference.fasta`).",
            )
        sites = sites.loc[on]
        if len(sites) > max_sites:
            sites = sites.iloc[np.linspace(0, len(sites) - 1, max_sites).astype(int)]
        same, first_bad = 0, None
        lines = sites["line"] if "line" in sites.columns else [None] * len(sites)
        for chrom, pos, ref, line in zip(sites["chrom"], sites["pos"], sites["ref"], lines, strict=True):
            contig = contigs[chrom]
            start0 = int(pos) - 1
            base = (
                fa.fetch(contig, start0, min(start0 + len(ref), lengths[contig])).upper()
                if start0 < lengths[contig]
                else ""
            )
            if base == ref:
                same += 1
            elif first_bad is None:
                first_bad = (line, chrom, pos, ref, base or "beyond the contig's end")
    n = len(sites)
    counts = {"checked": n, "matched": same, "off_fasta": int((~on).sum())}
    log.info("%s: REF agrees with %s at %d of %d sites", path, fasta, same, n)
    if same <= min_fraction * n:
        line, chrom, pos, ref, base = first_bad
        build_note = f" (the config says {build})" if build else ""
        raise InputError(
            path,
            f"REF alleles agree with the cohort's reference FASTA {fasta}{build_note} at only {same} of {n} sites "
            f"({100 * same / n:.1f} %, more than {100 * min_fraction:.0f} % expected; e.g. "
            f"{f'line {line}: ' if line is not None else ''}{chrom}:{pos} REF {ref}, FASTA {base}): "
            "the credible sets are on another genome build",
            _BUILD_FIX,
        )
    return counts


# ------------------------------------------------------------------------ matching
def _cohort_table(variants) -> pd.DataFrame:
    if isinstance(variants, pd.DataFrame):
        df = variants.reset_index(drop=variants.index.name != "variant_id")  # Dosages.frame: ids in the index
        if "variant_id" not in df.columns:
            df = df.assign(
                variant_id=[
                    f"{c}_{p}_{r}_{a}" for c, p, r, a in zip(df.chrom, df.pos, df.ref, df.alt, strict=True)
                ]
            )
    else:  # hapexp.variants.genotypes.Dosages or anything with those arrays
        df = pd.DataFrame(
            {k: np.asarray(getattr(variants, k)) for k in ("variant_id", "chrom", "pos", "ref", "alt")}
        )
    missing = [c for c in ("chrom", "pos", "ref", "alt") if c not in df.columns]
    if missing:
        raise ValueError(f"cohort variant table lacks column(s) {', '.join(missing)}")
    df = df[["variant_id", "chrom", "pos", "ref", "alt"]].copy()
    df["chrom"] = df["chrom"].astype(str)
    df["pos"] = df["pos"].astype("int64")
    df["ref"] = df["ref"].astype(str).str.upper()
    df["alt"] = df["alt"].astype(str).str.upper()
    return df.drop_duplicates(["chrom", "pos", "ref", "alt"])


def match_to_cohort(cs: pd.DataFrame, variants) -> tuple[pd.DataFrame, dict]:
    """Place credible-set rows on the cohort's variants by position and alleles.

    `variants`: the cohort's normalized variants — a DataFrame with ``chrom pos ref alt``
    (1-based pos; ``variant_id`` built as ``chrom_pos_ref_alt`` when absent) or a
    `Dosages`. Chromosome names are harmonized (``chr1`` ↔ ``1``, ``chrM`` ↔ ``MT``). A
    row matches a cohort variant with the same REF/ALT, or with them swapped
    (``flipped``: the file's effect allele is the cohort's REF, so ``beta_cohort`` =
    −``beta``). Returns (`cs` plus ``variant_id`` — the cohort's id, <NA> when unmatched
    — ``flipped`` and, for each effect column it has (``beta``, ``beta_posterior``:
    `EFFECT_COLUMNS`), ``<column>_cohort`` (per the cohort's ALT); counts ``rows``, ``matched``
    (both orientations), ``flipped``, ``unmatched``, ``unmatched_alleles`` (a cohort
    variant at the position, other alleles)). The counts are logged."""
    cohort = _cohort_table(variants)
    contigs = match_contigs(cs["chrom"].astype(str).unique(), cohort["chrom"].unique())
    key = pd.DataFrame(
        {
            "chrom": cs["chrom"].astype(str).map(contigs).to_numpy(dtype=object),
            "pos": cs["pos"].astype("int64").to_numpy(),
            "ref": cs["ref"].to_numpy(dtype=object),
            "alt": cs["alt"].to_numpy(dtype=object),
        }
    )
    cols = ["chrom", "pos", "ref", "alt"]
    direct = key.merge(cohort, on=cols, how="left")["variant_id"].to_numpy(dtype=object)
    swapped = key.rename(columns={"ref": "alt", "alt": "ref"}).merge(cohort, on=cols, how="left")
    swapped = swapped["variant_id"].to_numpy(dtype=object)
    has_direct = pd.notna(direct)
    flipped = ~has_direct & pd.notna(swapped)
    vid = np.where(has_direct, direct, np.where(flipped, swapped, None))
    out = cs.copy()
    out["variant_id"] = pd.array(vid, dtype="string")
    out["flipped"] = flipped
    for col in EFFECT_COLUMNS:
        if col in out.columns:
            effect = out[col].to_numpy(dtype=float)
            out[f"{col}_cohort"] = np.where(flipped, -effect, effect)
    matched = int(pd.notna(vid).sum())
    at_pos = key.merge(
        cohort[["chrom", "pos"]].drop_duplicates(), on=["chrom", "pos"], how="left", indicator=True
    )
    unmatched = pd.isna(vid)
    counts = {
        "rows": len(out),
        "matched": matched,
        "flipped": int(flipped.sum()),
        "unmatched": int(unmatched.sum()),
        "unmatched_alleles": int((unmatched & (at_pos["_merge"] == "both").to_numpy()).sum()),
    }
    where = cs.attrs.get("path", "credible sets")
    log.info(
        "%s: %d of %d rows matched the cohort's variants (%d with REF/ALT swapped); %d unmatched "
        "(%d at a cohort position with other alleles, the rest not among the cohort's variants)",
        where,
        matched,
        counts["rows"],
        counts["flipped"],
        counts["unmatched"],
        counts["unmatched_alleles"],
    )
    if counts["rows"] and matched < 0.5 * counts["rows"]:
        log.warning(
            "%s: only %d of %d credible-set rows are among the cohort's variants: check the genome build "
            "and that the cohort's variant filters (MAF, policy) keep the fine-mapped variants",
            where,
            matched,
            counts["rows"],
        )
    return out, counts


# ------------------------------------------------------------------------- tissues
def select_tissue(
    cs: pd.DataFrame, tissue: str | None = None, unit_tissue: str | None = None
) -> pd.DataFrame:
    """The rows of one tissue of a GTEx table (``tissue`` column): `tissue` when given (the
    config's ``credible_sets.tissue``), else the file's only tissue, else the unit's own
    tissue name (`unit_tissue`: a GTEx-style cohort's tissues are named as GTEx's). A file
    without tissues (eQTL Catalogue: one dataset per file) is returned as it is; naming a
    tissue for it, a tissue the file lacks, or leaving a several-tissue file ambiguous is an
    `InputError` listing the file's tissues."""
    path = cs.attrs.get("path", "credible sets")
    if "tissue" not in cs.columns:
        if tissue is not None:
            raise InputError(
                path,
                f"`tissue: {tissue}` is set but the {cs.attrs.get('format', 'file')} layout has no tissue column "
                "(an eQTL Catalogue file is one dataset, one tissue)",
                "Remove `tissue` from this credible_sets block (it applies to GTEx tables only).",
            )
        return cs
    found = list(dict.fromkeys(cs["tissue"]))
    listed = ", ".join(found[:10]) + (f" … ({len(found)} in all)" if len(found) > 10 else "")
    if tissue is not None:
        if tissue not in found:
            raise InputError(
                path,
                f"no rows of tissue {tissue!r} (tissues in the file: {listed})",
                "Set credible_sets.tissue to one of those (GTEx tissue names, e.g. Whole_Blood).",
            )
        keep = tissue
    elif len(found) == 1:
        keep = found[0]
    elif unit_tissue is not None and unit_tissue in found:
        keep = unit_tissue
    else:
        raise InputError(
            path,
            f"the file holds {len(found)} tissues ({listed}) and the config does not say which one is "
            + (
                f"this cohort's (its tissue {unit_tissue!r} is not among them)"
                if unit_tissue
                else "this cohort's"
            ),
            "Set credible_sets.tissue to the tissue whose fine-mapping matches this expression.",
        )
    out = cs[cs["tissue"] == keep].reset_index(drop=True)
    out.attrs.update(cs.attrs, tissue=keep)
    log.info("%s: %d of %d rows are tissue %s", path, len(out), len(cs), keep)
    return out
