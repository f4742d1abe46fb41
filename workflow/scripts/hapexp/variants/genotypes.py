"""Alt-allele dosages in cis windows, read from the normalized VCF/BCF with pysam.

Coordinates: gene `tss` is 1-based (genes.tsv); VCF `POS` is 1-based; inside this
module windows are 0-based half-open `[start0, end0)` and variant positions are
kept 1-based in `pos` (as in `variant_id = chrom_pos_ref_alt`).

Window of a gene (see `gene_window`):
- an integer `W` (tensorQTL; PredictDB's TSS-centred variant): variants with `|POS - tss| <= W`;
- `gene_body_1mb` (PredictDB's `gtex_v7_nested_cv_elnet.R`): variants with
  `start - 1e6 <= POS <= end + 1e6`, start/end the gene body of genes.tsv (1-based);
- a model name: exactly the model's reference window (docs/architecture.md), i.e.
  `+`: `[tss0 - L//2, tss0 + L//2)`, `-`: `[tss0 - L//2 + 1, tss0 + L//2 + 1)`.

Dosage = number of ALT alleles in GT (0/1/2; haploid calls give 0/1). Any missing
allele makes the dosage missing; missing dosages are mean-imputed per variant (as
tensorQTL's `impute_mean`). Variants are filtered on in-sample minor allele
frequency `maf >= threshold` after imputation, and monomorphic variants are always
dropped (their association statistics are undefined). Records with more than one
ALT or a symbolic/missing ALT are skipped (the input is split biallelic).
A chunk's windows are merged and each merged region is fetched once (streaming
per chunk of genes, not per gene).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hapexp.errors import InputError

log = logging.getLogger(__name__)


def vcf_samples(path) -> list[str]:
    """Sample ids of a VCF/BCF header, in file order."""
    import pysam

    with pysam.VariantFile(str(path)) as vf:
        return list(vf.header.samples)


GENE_BODY_WINDOWS = {"gene_body_1mb": 1_000_000}


def resolve_window(window, models: dict | None = None):
    """Normalize a config window: int → ("flank", W); `gene_body_1mb` → ("gene_body",
    1000000); model name → ("model", L)."""
    if isinstance(window, bool):
        raise ValueError(f"invalid window {window!r}")
    if isinstance(window, int | np.integer):
        if window < 0:
            raise ValueError(f"window must be >= 0 bp, got {window}")
        return ("flank", int(window))
    if isinstance(window, str):
        if window.isdigit():
            return ("flank", int(window))
        if window in GENE_BODY_WINDOWS:
            return ("gene_body", GENE_BODY_WINDOWS[window])
        models = models or {}
        if window not in models:
            raise ValueError(
                f"window {window!r} is neither a number of bp, {', '.join(GENE_BODY_WINDOWS)}, nor a model name "
                f"(models: {', '.join(models) or 'none'})"
            )
        from hapexp.models.spec import model_spec

        length = int(model_spec(models[window], window)["window"])
        return ("model", length)
    raise ValueError(f"invalid window {window!r}")


def gene_window(
    tss: int, strand: str, window, start: int | None = None, end: int | None = None
) -> tuple[int, int]:
    """0-based half-open window `[start0, end0)` of a gene (tss, gene body start/end
    1-based; the body defaults to the TSS); start clipped at 0."""
    kind, w = window
    tss0 = int(tss) - 1
    if kind == "flank":
        start0, end0 = tss0 - w, tss0 + w + 1
    elif kind == "gene_body":
        lo = int(tss) if start is None or pd.isna(start) else int(start)
        hi = int(tss) if end is None or pd.isna(end) else int(end)
        start0, end0 = lo - 1 - w, hi + w
    else:
        half = w // 2
        shift = 1 if strand == "-" else 0
        start0, end0 = tss0 - half + shift, tss0 + half + shift
    return max(start0, 0), end0


def merge_intervals(intervals: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Merge overlapping/adjacent (chrom, start0, end0) intervals, sorted by chrom then start."""
    out: list[list] = []
    for chrom, s, e in sorted(intervals):
        if out and out[-1][0] == chrom and s <= out[-1][2]:
            out[-1][2] = max(out[-1][2], e)
        else:
            out.append([chrom, s, e])
    return [tuple(x) for x in out]


@dataclass
class Dosages:
    """Variants × samples alt-allele dosages with their annotation (pos 1-based)."""

    variant_id: np.ndarray
    chrom: np.ndarray
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    dosage: np.ndarray  # float64, variants × samples, missing already imputed
    samples: list[str]
    ids: np.ndarray | None = None  # the VCF's ID column ("." when absent), e.g. dbSNP rs ids

    def __len__(self) -> int:
        return len(self.variant_id)

    @property
    def af(self) -> np.ndarray:
        return self.dosage.sum(axis=1) / (2 * self.dosage.shape[1]) if len(self) else np.zeros(0)

    def take(self, ix) -> Dosages:
        return Dosages(
            self.variant_id[ix],
            self.chrom[ix],
            self.pos[ix],
            self.ref[ix],
            self.alt[ix],
            self.dosage[ix],
            self.samples,
            None if self.ids is None else self.ids[ix],
        )

    def window_index(self, chrom: str, start0: int, end0: int) -> np.ndarray:
        """Row indices of the variants with 0-based position in `[start0, end0)` on `chrom`
        (rows sorted by position within a chromosome, as read)."""
        cache = self.__dict__.setdefault("_by_chrom", {})
        if chrom not in cache:
            on = np.flatnonzero(self.chrom == chrom)
            cache[chrom] = (on, self.pos[on] - 1)
        on, pos0 = cache[chrom]
        lo, hi = np.searchsorted(pos0, [start0, end0], side="left")
        return on[lo:hi]

    def window(self, chrom: str, start0: int, end0: int) -> Dosages:
        """The variants of `window_index` as a new Dosages."""
        return self.take(self.window_index(chrom, start0, end0))


def read_dosages(path, regions, samples: list[str], maf: float = 0.0) -> Dosages:
    """Dosages of `samples` for the records in `regions` [(chrom, start0, end0)], MAF-filtered.

    Records starting inside a region (0-based half-open) are read once (regions are
    merged first) with `bcftools query` and the fixed-width GT parser of
    `hapexp.variants.vcf.read_genotypes` (no per-record Python objects). Records with several
    ALTs or a symbolic/missing ALT are skipped (the normalized BCF is split
    biallelic). Dosage = ALT alleles carried (haploid calls 0/1); a call with a
    missing allele is missing → per-variant mean (tensorQTL's impute_mean).
    """
    from hapexp.variants import vcf as V

    header_samples = vcf_samples(path)
    have = set(header_samples)
    missing = [s for s in samples if s not in have]
    if missing:
        raise InputError(path, f"sample {missing[0]!r} is not in the VCF", "Use samples present in the VCF.")
    regions = merge_intervals(list(regions))
    contigs = set(V.vcf_contigs(path))
    reg = pd.DataFrame([r for r in regions if r[0] in contigs], columns=["chrom", "start0", "end0"]).astype(
        {"chrom": str}
    )
    if reg.empty or not samples:
        variants = pd.DataFrame({"chrom": [], "pos0": [], "ref": [], "alt": [], "id": []})
        alleles = np.zeros((0, len(samples), 2), np.int8)
        ploidy = np.zeros((0, len(samples)), np.int8)
    else:
        variants, alleles, _, ploidy = V.read_genotypes(path, reg, list(samples), with_id=True)
    alt = variants["alt"].astype(str)
    ok = ~(
        alt.str.contains(",", regex=False) | alt.str.startswith("<") | alt.isin(["*", "."]) | (alt == "")
    ).to_numpy()
    if (~ok).any():
        log.info("skipped %d multi-allelic/symbolic records", int((~ok).sum()))
    # Identical records (indels left-aligned onto one another) would share a variant id:
    # the linear models keep the first, as before (the haplotypes apply each, as bcftools).
    ok &= ~variants.duplicated(["chrom", "pos0", "ref", "alt"]).to_numpy()
    variants, alleles, ploidy = variants[ok], alleles[ok], ploidy[ok]
    # ALT count in int8 first (a float64 copy per allele would triple the peak memory)
    counts = (alleles[:, :, 0] > 0).view(np.int8) + ((alleles[:, :, 1] > 0) & (ploidy != 1)).view(np.int8)
    dosage = counts.astype(np.float64)
    del counts
    dosage[(alleles[:, :, 0] < 0) | (alleles[:, :, 1] < 0)] = np.nan  # (any over a length-2 axis is slow)
    nan = np.isnan(dosage)
    if nan.any():
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing rows: mean 0 below
            mu = np.nanmean(dosage, axis=1)
        mu = np.where(np.isnan(mu), 0.0, mu)
        dosage[nan] = np.take(mu, np.nonzero(nan)[0])
    chrom = variants["chrom"].astype(str).to_numpy(dtype=object)
    pos = variants["pos0"].to_numpy(np.int64) + 1
    ref = variants["ref"].astype(str).to_numpy(dtype=object)
    alts = variants["alt"].astype(str).to_numpy(dtype=object)
    vids = np.array(
        [f"{c}_{p}_{r}_{a}" for c, p, r, a in zip(chrom, pos, ref, alts, strict=True)], dtype=object
    )
    out = Dosages(
        vids, chrom, pos, ref, alts, dosage, list(samples), variants["id"].astype(str).to_numpy(dtype=object)
    )
    return filter_maf(out, maf)


def window_flank(window) -> int:
    """Bases on each side of the TSS that `window` (resolved) can reach, for region
    pre-filters; a gene-body window reaches further by the body's length (add it)."""
    kind, w = window
    return w // 2 + 1 if kind == "model" else w


def filter_maf(d: Dosages, maf: float) -> Dosages:
    """Keep polymorphic variants with in-sample minor allele frequency >= `maf`."""
    if len(d) == 0:
        return d
    af = d.af
    m = np.minimum(af, 1 - af)
    keep = (m >= maf) & (d.dosage.max(axis=1) > d.dosage.min(axis=1))
    return d.take(np.flatnonzero(keep))


def chunk_dosages(
    vcf, genes: pd.DataFrame, window, samples: list[str], maf: float
) -> tuple[Dosages, pd.DataFrame]:
    """Read all cis windows of a chunk once. Returns (dosages, genes with start0/end0 columns)."""
    genes = genes.copy()
    lo = genes["start"] if "start" in genes.columns else genes["tss"]
    hi = genes["end"] if "end" in genes.columns else genes["tss"]
    wins = [
        gene_window(t, s, window, a, b)
        for t, s, a, b in zip(genes["tss"], genes["strand"], lo, hi, strict=True)
    ]
    genes["start0"] = [w[0] for w in wins]
    genes["end0"] = [w[1] for w in wins]
    regions = [(str(c), s, e) for c, s, e in zip(genes["chrom"], genes["start0"], genes["end0"], strict=True)]
    return read_dosages(vcf, regions, samples, maf), genes


def pysam_dosages(vcf_path, chrom: str, start0: int, end0: int, samples: list[str]) -> pd.DataFrame:
    """ALT dosages (0, 1, 2) of the biallelic variants in [start0, end0) (0-based, half-open).

    Rows are indexed by `variant_id` = chrom_pos_ref_alt (1-based pos); columns are
    `samples`. Missing genotypes become NaN. Reads the cohort's normalized BCF (one
    ALT per record after `bcftools norm -m-`); multi-ALT records are skipped.
    """
    import pysam

    rows, ids = [], []
    with pysam.VariantFile(str(vcf_path)) as vf:
        vf.subset_samples(samples)
        names = list(vf.header.samples)
        if chrom not in vf.header.contigs:
            return pd.DataFrame(columns=samples, dtype=float)
        for rec in vf.fetch(chrom, max(0, start0), end0):
            if rec.alts is None or len(rec.alts) != 1:
                continue
            d = np.empty(len(names))
            for i, s in enumerate(rec.samples.values()):
                gt = s.get("GT")
                if gt is None or any(a is None for a in gt):
                    d[i] = np.nan
                else:
                    d[i] = sum(1 for a in gt if a == 1)
            rows.append(d)
            ids.append(f"{rec.chrom}_{rec.pos}_{rec.ref}_{rec.alts[0]}")
    df = pd.DataFrame(np.array(rows).reshape(len(rows), len(names)), index=ids, columns=names)
    df.index.name = "variant_id"
    return df[samples]
