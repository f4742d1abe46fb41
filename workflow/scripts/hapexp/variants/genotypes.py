"""The one genotype reader: raw genotype arrays (`read_genotypes`, for the haplotype
index) and alt-allele dosages on top of them (`read_dosages`, for everything else).

Coordinates: VCF `POS` is 1-based; regions are 0-based half-open `[start0, end0)`;
`read_genotypes` returns 0-based `pos0`, `Dosages` keep 1-based `pos` (as in
`variant_id = chrom_pos_ref_alt`).

Both read the records of a set of regions with one streamed `bcftools query`
(`hapexp.variants.scan`, fixed-width GT parser: no per-record Python objects). What
differs between the callers is explicit in `read_dosages`' parameters:

- `overlap`: "pos" (records whose POS lies in a region: the cis windows of the eQTL scan
  and the elastic net, the haplotype index) or "record" (any record overlapping a region,
  e.g. a deletion starting before it: the per-gene look-ups of the verdict and of
  PredictDB models, as a pysam `fetch` of the region);
- `missing`: "mean" (a call with a missing allele gets the variant's mean dosage, as
  tensorQTL's `impute_mean`) or "nan";
- `maf`: in-sample minor allele frequency threshold after imputation, monomorphic
  variants always dropped (their association statistics are undefined); None: no filter;
- `symbolic`: keep records with a symbolic ALT (`<DEL>`, `*`); records with several ALTs
  or a missing ALT are always skipped (the normalized BCF is split biallelic);
- `duplicates`: "first" (identical records, e.g. indels left-aligned onto one another,
  share a variant id: keep the first) or "keep".

Dosage = number of ALT alleles in GT (0/1/2; haploid calls give 0/1).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hapexp.errors import InputError
from hapexp.variants.files import vcf_contigs, vcf_samples
from hapexp.variants.policy import filter_dosages, format_counts, minor_allele_frequency, predictdb_exclusions
from hapexp.variants.scan import parse_gt_block, scan
from hapexp.variants.windows import gene_window, merge_regions

log = logging.getLogger(__name__)


@dataclass
class Dosages:
    """Variants × samples alt-allele dosages with their annotation (pos 1-based)."""

    variant_id: np.ndarray
    chrom: np.ndarray
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    dosage: np.ndarray  # float64, variants × samples; missing: imputed, or NaN (read_dosages' `missing`)
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

    def frame(self) -> pd.DataFrame:
        """The dosages as a DataFrame: rows indexed by `variant_id`, columns = samples."""
        df = pd.DataFrame(self.dosage, index=list(self.variant_id), columns=list(self.samples))
        df.index.name = "variant_id"
        return df

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


def _in_regions(chrom: np.ndarray, pos0: np.ndarray, stop0: np.ndarray, regions: pd.DataFrame) -> np.ndarray:
    """Records [pos0, stop0) overlapping one of the merged `regions`."""
    keep = np.zeros(len(pos0), dtype=bool)
    for c, r in regions.groupby("chrom"):
        m = chrom == c
        st, en = r["start0"].to_numpy(), r["end0"].to_numpy()
        # the last region starting before the record's end; merged regions are disjoint
        k = np.searchsorted(st, stop0[m], side="left") - 1
        keep[m] = (k >= 0) & (pos0[m] < en[np.maximum(k, 0)])
    return keep


def read_genotypes(
    bcf, regions: pd.DataFrame, samples: list[str] | None = None, with_id: bool = False, overlap: str = "pos"
):
    """Records in `regions` (chrom, start0, end0; see the module doc for `overlap`) and
    their genotypes.

    Returns (variants DataFrame [chrom, pos0, ref, alt, order (+ id: the ID column
    when `with_id`)], alleles int8
    [n_var, n_samples, 2] (MISSING = -1), phased bool [n_var, n_samples],
    ploidy int8 [n_var, n_samples]). Records are in file order; `order` is the
    index in that order (ties at one position keep it, as bcftools consensus does).
    Identical records (e.g. two indels that left-align to the same one) are all kept:
    bcftools consensus applies each, so the haplotypes must too.
    """
    all_samples = vcf_samples(bcf)
    samples = list(all_samples if samples is None else samples)
    ns = len(samples)
    regions = regions[regions["start0"] < regions["end0"]]  # empty regions hold no record
    fields = (
        "CHROM",
        "POS",
        "REF",
        "ALT",
        *(["ID"] if with_id else []),
        *(["END"] if overlap == "record" else []),
    )
    columns, arrays = [], []  # per block: decoded site columns; genotype arrays
    with scan(
        bcf,
        fields,
        regions=regions,
        samples=None if samples == all_samples or not ns else samples,  # -S only to subset or reorder
        genotypes=ns > 0,
        overlap=overlap,
    ) as blocks:
        for b in blocks:
            cols = zip(*b.sites, strict=True)
            columns.append(
                {
                    f: np.array([x.decode() for x in col], dtype=object)
                    for f, col in zip(fields, cols, strict=True)
                }
            )
            if ns:
                arrays.append((b.alleles, b.phased, b.ploidy))
    text = {f: np.concatenate([c[f] for c in columns]) if columns else np.zeros(0, object) for f in fields}
    n = len(text["POS"])
    alleles, phased, ploidy = (
        (np.concatenate(a) for a in zip(*arrays, strict=True)) if arrays else parse_gt_block(b"", n, ns)
    )
    chrom = text["CHROM"]
    pos0 = text["POS"].astype(np.int64) - 1
    # END: the 1-based last base of the record = its 0-based end (exclusive)
    stop0 = text["END"].astype(np.int64) if overlap == "record" else pos0 + 1
    keep = _in_regions(chrom, pos0, stop0, merge_regions(regions))
    variants = pd.DataFrame(
        {"chrom": chrom[keep], "pos0": pos0[keep], "ref": text["REF"][keep], "alt": text["ALT"][keep]}
    )
    if with_id:
        variants["id"] = text["ID"][keep]
    variants["order"] = np.arange(len(variants))
    return variants, alleles[keep], phased[keep], ploidy[keep]


def read_dosages(
    path,
    regions,
    samples: list[str],
    maf: float | None = 0.0,
    *,
    missing: str = "mean",
    overlap: str = "pos",
    symbolic: bool = False,
    duplicates: str = "first",
) -> Dosages:
    """Dosages of `samples` for the records in `regions` [(chrom, start0, end0)].

    Regions are merged first (chromosomes in name order) and read once; see the module
    doc for `overlap`, `missing`, `maf`, `symbolic` and `duplicates`. The defaults are the
    cis windows of the linear models.
    """
    if missing not in ("mean", "nan") or duplicates not in ("first", "keep"):
        raise ValueError(
            f"missing must be 'mean' or 'nan', duplicates 'first' or 'keep' ({missing}, {duplicates})"
        )
    if missing == "nan" and maf is not None:
        raise ValueError("a MAF filter needs imputed dosages (missing='mean')")
    have = set(vcf_samples(path))
    absent = [s for s in samples if s not in have]
    if absent:
        raise InputError(path, f"sample {absent[0]!r} is not in the VCF", "Use samples present in the VCF.")
    regions = sorted(regions)
    reg = merge_regions(pd.DataFrame(regions, columns=["chrom", "start0", "end0"]))
    reg = reg[reg["chrom"].isin(set(vcf_contigs(path)))].astype({"chrom": str})
    if reg.empty or not samples:
        variants = pd.DataFrame({"chrom": [], "pos0": [], "ref": [], "alt": [], "id": []})
        alleles = np.zeros((0, len(samples), 2), np.int8)
        ploidy = np.zeros((0, len(samples)), np.int8)
    else:
        variants, alleles, _, ploidy = read_genotypes(path, reg, list(samples), with_id=True, overlap=overlap)
    alt = variants["alt"].astype(str)
    skip = alt.str.contains(",", regex=False) | alt.isin([".", ""])
    if not symbolic:
        skip |= alt.str.startswith("<") | (alt == "*")
    ok = ~skip.to_numpy()
    if (~ok).any():
        log.info("skipped %d multi-allelic/symbolic records", int((~ok).sum()))
    if duplicates == "first":
        # Identical records would share a variant id: the linear models keep the first, as
        # before (the haplotypes apply each, as bcftools).
        ok &= ~variants.duplicated(["chrom", "pos0", "ref", "alt"]).to_numpy()
    variants, alleles, ploidy = variants[ok], alleles[ok], ploidy[ok]
    # ALT count in int8 first (a float64 copy per allele would triple the peak memory)
    counts = (alleles[:, :, 0] > 0).view(np.int8) + ((alleles[:, :, 1] > 0) & (ploidy != 1)).view(np.int8)
    dosage = counts.astype(np.float64)
    del counts
    dosage[(alleles[:, :, 0] < 0) | (alleles[:, :, 1] < 0)] = np.nan  # (any over a length-2 axis is slow)
    nan = np.isnan(dosage)
    if missing == "mean" and nan.any():
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
    return out if maf is None else filter_maf(out, maf)


def filter_maf(d: Dosages, maf: float) -> Dosages:
    """Keep polymorphic variants with in-sample minor allele frequency >= `maf`."""
    if len(d) == 0:
        return d
    keep = (minor_allele_frequency(d.af) >= maf) & (d.dosage.max(axis=1) > d.dosage.min(axis=1))
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


def span_dosages(path, chrom: str, start0: int, end0: int, samples: list[str]) -> pd.DataFrame:
    """The per-gene look-ups of the verdict and of PredictDB models: every record
    overlapping `[start0, end0)` (0-based half-open; a deletion starting before it too, as
    a pysam `fetch`), symbolic and duplicate records kept, no MAF filter, missing calls NaN.
    Returns variants × samples, indexed by `variant_id` (`Dosages.frame`)."""
    return read_dosages(
        path, [(chrom, start0, end0)], samples, None,
        missing="nan", overlap="record", symbolic=True, duplicates="keep",
    ).frame()  # fmt: skip


def cis_dosages(vcf, genes: pd.DataFrame, window, samples: list[str], maf: float, policies: dict,
                predictdb: bool = False) -> tuple[Dosages, pd.DataFrame]:  # fmt: skip
    """What the linear models of a chunk use: every cis window (`window` resolved, see
    `hapexp.variants.windows.resolve_window`) read once (`chunk_dosages`), the run's one
    variant policy (as for the haplotypes and ISM), then with `predictdb` PredictDB's own
    exclusions (indels, strand-ambiguous SNPs). Returns (dosages, genes with start0/end0)."""
    dosages, genes = chunk_dosages(vcf, genes, window, samples, maf)
    dosages, counts = filter_dosages(dosages, policies)
    log.info("variant policy %s: %s", policies, format_counts(counts))
    if predictdb:
        dosages, excluded = predictdb_exclusions(dosages)
        log.info("PredictDB exclusions: %s", format_counts(excluded))
    log.info("%d genes, %d variants (window %s, maf >= %g)", len(genes), len(dosages), window, maf)
    return dosages, genes
