"""In-silico mutagenesis (ISM) of the variants in each gene's model window.

For each gene, every variant passing the MAF filter (SNVs; indels optionally) is
inserted *alone* into the reference window; its score is read-out(alt) − read-out(ref)
with exactly predict's tracks/bins/aggregation (or log2(alt / ref) as an option).
The reference is predicted once per gene and batched with the variants through the
same engine as `predict`.

Distances: `tss_distance` = variant pos − TSS on `+` genes and TSS − pos on `−`
genes (both 1-based), i.e. positive = downstream in the gene's orientation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ISM_COLUMNS = ["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "af", "tss_distance", "score"]

# Sequences sent to the engine per call: bounds host memory (an Enformer window is
# 196,608 bytes per sequence) while letting the engine batch inside; long windows
# (Borzoi 524,288, AlphaGenome 1,048,576 bp) send fewer, at most BLOCK_BYTES of sequence.
BLOCK = 256
BLOCK_BYTES = 64 << 20

# Relative numerical resolution of a read-out by inference precision: differences below
# resolution × |reference read-out| are float rounding (an untrained network gives
# ~1e-7 differences in fp32), so their sign means nothing and they are scored 0.
RESOLUTION = {"fp32": 1e-6, "bf16": 1e-2}

# fn(seqs: uint8 [n, L] ASCII, tss_index: 0-based TSS index in every sequence) -> float [n];
# read-outs over exons also take exons= (one [k, 2] interval array per sequence) and
# antisense= (sequences read against the gene's strand), and carry `uses_exons = True`.
ReadoutFn = Callable[..., np.ndarray]


def make_readout(spec: dict) -> ReadoutFn:
    """Build the read-out function from a model spec via predict's engine.

    The one place that knows the inference engine's API (hapexp.inference.Predictor).
    Several tracks are averaged into one score, as in predict's genes × samples matrix.
    """
    from .inference import Predictor

    predictor = Predictor(spec)

    def fn(seqs: np.ndarray, tss_index: int, exons=None, antisense: bool = False) -> np.ndarray:
        out = np.asarray(predictor.readout(seqs, tss_index, exons=exons, antisense=antisense), dtype=float)
        return out.mean(axis=1) if out.ndim == 2 else out

    fn.uses_exons = predictor.uses_exons
    fn.strand_aware = True
    return fn


def strand_tss_distance(pos, tss: int, strand: str) -> np.ndarray:
    """Variant distance to the TSS (both 1-based), positive downstream in gene orientation."""
    pos = np.asarray(pos, dtype=np.int64)
    return (pos - tss) if strand == "+" else (tss - pos)


def maf_of(af) -> np.ndarray:
    af = np.asarray(af, dtype=float)
    return np.minimum(af, 1.0 - af)


def select_variants(variants: pd.DataFrame, maf: float, indels: bool) -> pd.DataFrame:
    """Variants to score: minor-allele frequency >= maf; SNVs only unless `indels`."""
    keep = maf_of(variants["af"]) >= maf
    if not indels:
        keep &= variants["is_snv"].astype(bool).to_numpy()
    return variants[keep]


def _scores(alt: np.ndarray, ref: float, log2_ratio: bool, resolution: float = 0.0) -> np.ndarray:
    below = np.abs(alt - ref) <= resolution * max(abs(ref), 1e-12)
    if not log2_ratio:
        return np.where(below, 0.0, alt - ref)
    # log2 ratio needs positive read-outs (counts/CAGE); a tiny floor keeps zero finite.
    eps = 1e-6
    return np.where(below, 0.0, np.log2(np.maximum(alt, 0) + eps) - np.log2(max(ref, 0) + eps))


def score_gene(
    index,
    gene: pd.Series | dict,
    readout: ReadoutFn,
    window: int,
    rc_minus: bool = True,
    maf: float = 0.01,
    indels: bool = False,
    log2_ratio: bool = False,
    resolution: float = 0.0,
    exons: np.ndarray | None = None,
) -> pd.DataFrame:
    """ISM scores of one gene's variants (columns ISM_COLUMNS); empty when none pass.

    `resolution`: relative difference below which a score is 0 (see RESOLUTION).
    `exons` (reference [start0, end0) rows; read-outs over exons): followed onto each
    single-variant window, so an indel shifts the exons downstream of it.
    """
    gene_id = str(gene["gene_id"])
    variants = select_variants(index.variants(gene_id, window), maf, indels)
    if variants.empty:
        return pd.DataFrame(columns=ISM_COLUMNS)
    ref_seq, tss_index = index.reference_window(gene_id, window, rc_minus)
    ref_seq = np.asarray(ref_seq, dtype=np.uint8)
    # Single-variant sequences are re-anchored on the TSS, so the reference's index holds.
    tss_index = int(tss_index)
    ids = list(variants["variant_id"])
    strand = str(gene["strand"])
    # engine read-outs (make_readout) read a stranded track's pair on antisense windows
    anti = strand == "-" and not rc_minus and getattr(readout, "strand_aware", False)
    kw = {"antisense": True} if anti else {}
    ref_ex = None
    if exons is not None:
        from .haplotypes import window_bounds

        w0, _ = window_bounds(int(gene["tss"]), strand, window)
        ref_ex = np.asarray(exons, dtype=np.int64).reshape(-1, 2) - w0
        if rc_minus and strand == "-":
            ref_ex = np.stack([window - ref_ex[:, 1], window - ref_ex[:, 0]], 1)
    alt_values = []
    ref_value = None
    block_n = max(1, min(BLOCK, BLOCK_BYTES // window))
    for start in range(0, len(ids), block_n):
        ex_kw = {} if exons is None else {"exons": exons}
        got = index.single_variant_sequences(
            gene_id, window, ids[start : start + block_n], rc_minus=rc_minus, **ex_kw
        )
        block, block_ex = got if exons is not None else (got, None)
        block = np.asarray(block, dtype=np.uint8)
        if ref_value is None:
            # Reference rides in the first block: one engine call, computed once per gene.
            if exons is not None:
                kw["exons"] = [ref_ex, *block_ex]
            out = readout(np.concatenate([ref_seq[None, :], block]), tss_index, **kw)
            ref_value, out = float(out[0]), out[1:]
        else:
            if exons is not None:
                kw["exons"] = block_ex
            out = readout(block, tss_index, **kw)
        alt_values.append(np.asarray(out, dtype=float))
    alt = np.concatenate(alt_values)
    res = pd.DataFrame(
        {
            "gene_id": gene_id,
            "variant_id": variants["variant_id"].astype(str).to_numpy(),
            "chrom": variants["chrom"].astype(str).to_numpy(),
            "pos": variants["pos"].astype(np.int64).to_numpy(),
            "ref": variants["ref"].astype(str).to_numpy(),
            "alt": variants["alt"].astype(str).to_numpy(),
            "af": variants["af"].astype(float).to_numpy(),
            "tss_distance": strand_tss_distance(variants["pos"], int(gene["tss"]), str(gene["strand"])),
            "score": _scores(alt, ref_value, log2_ratio, resolution),
        }
    )
    return res


def score_chunk(
    index, readout: ReadoutFn, spec: dict, ism_cfg: dict, exons: dict | None = None
) -> pd.DataFrame:
    """ISM for every gene of a haplotype index chunk (one rule job).

    `exons` (gene_id → reference exons) is needed when the read-out sums exons.
    """
    frames = []
    genes = index.genes
    need_exons = bool(getattr(readout, "uses_exons", False))
    if need_exons and exons is None:
        raise ValueError(f"model {spec.get('name')}: readout exons needs the genes' exons")
    for _, gene in genes.iterrows():
        df = score_gene(
            index,
            gene,
            readout,
            window=int(spec["window"]),
            rc_minus=bool(spec.get("rc_minus", True)),
            maf=float(ism_cfg.get("maf", 0.01)),
            indels=bool(ism_cfg.get("indels", False)),
            log2_ratio=bool(ism_cfg.get("log2_ratio", False)),
            resolution=RESOLUTION.get(str(spec.get("precision", "fp32")), 0.0),
            exons=exons.get(gene["gene_id"], np.zeros((0, 2), np.int64)) if need_exons else None,
        )
        log.info("ISM %s: %d variants", gene["gene_id"], len(df))
        frames.append(df)
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_ism()
    return pd.concat(frames, ignore_index=True)[ISM_COLUMNS]


def empty_ism() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gene_id": pd.Series(dtype=str),
            "variant_id": pd.Series(dtype=str),
            "chrom": pd.Series(dtype=str),
            "pos": pd.Series(dtype=np.int64),
            "ref": pd.Series(dtype=str),
            "alt": pd.Series(dtype=str),
            "af": pd.Series(dtype=float),
            "tss_distance": pd.Series(dtype=np.int64),
            "score": pd.Series(dtype=float),
        }
    )


def gather(paths) -> pd.DataFrame:
    """Concatenate per-chunk ISM tables (chunk order = file order)."""
    frames = [pd.read_parquet(p) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_ism()
    return pd.concat(frames, ignore_index=True)[ISM_COLUMNS]


def run(
    index_path, spec: dict, ism_cfg: dict, out_path, readout: ReadoutFn | None = None, exons_path=None
) -> pd.DataFrame:
    """Rule `ism`: score one chunk and write its parquet."""
    from .genes import read_exons
    from .haplotypes import HaplotypeIndex
    from .io import write_parquet

    index = HaplotypeIndex.load(index_path)
    readout = readout or make_readout(spec)
    exons = read_exons(exons_path) if (exons_path and getattr(readout, "uses_exons", False)) else None
    df = score_chunk(index, readout, spec, ism_cfg, exons)
    write_parquet(df, out_path)
    return df
