"""In-silico mutagenesis (ISM) of the variants in each gene's model window.

For each gene, every variant passing the MAF filter (SNVs; indels optionally) is
inserted *alone* into the reference window; its score is read-out(alt) − read-out(ref)
with exactly predict's tracks/bins/aggregation (or log2(alt / ref) as an option).
The reference is predicted once per gene and batched with the variants through the
same engine as `predict`; for models that support reference reuse the engine reuses
the reference's activations and recomputes only what each variant changes
(`LoadedModel.reference_reuse`; exact up to float rounding).

Resolution: a score whose |alt − ref| is at most a noise floor × |ref| is NaN
(unresolved: its sign is rounding, not biology). In strict fp32 the floor is fp32's
(1e-6); in reduced precision it is measured in every job against strict fp32 on a
deterministic sample of genes, which also yields the job's precision budget
(hapexp.engine.audit, hapexp.engine.precision; `precision.tsv`). To either is added the
error bound of the path that computed the scores (`EngineReadout.path_error`): 0 for full
forwards, the bound the model's reference reuse declares for reused ones (the audit
compares reduced and strict runs that both reuse, so it cannot see that error). The bound
is per job: with reuse on, the few variants that run a full forward (long indels) get it
too (conservative).

Distances: `tss_distance` = variant pos − TSS on `+` genes and TSS − pos on `−`
genes (both 1-based), i.e. positive = downstream in the gene's orientation.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from hapexp.config.schema import with_defaults
from hapexp.engine.audit import audit_ism
from hapexp.engine.precision import empty_table, relative_resolution, requested, unresolved
from hapexp.variants.policy import minor_allele_frequency

log = logging.getLogger(__name__)

ISM_COLUMNS = ["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "af", "tss_distance", "score"]

# Sequences sent to the engine per call: bounds host memory (a 196,608-bp window is
# 196,608 bytes per sequence) while letting the engine batch inside; long windows
# (524,288 or 1,048,576 bp) send fewer, at most BLOCK_BYTES of sequence.
BLOCK = 256
BLOCK_BYTES = 64 << 20

# fn(seqs: uint8 [n, L] ASCII, tss_index: 0-based TSS index in every sequence) -> float [n];
# read-outs over exons also take exons= (one [k, 2] interval array per sequence) and
# antisense= (sequences read against the gene's strand), and carry `uses_exons = True`.
ReadoutFn = Callable[..., np.ndarray]


class EngineReadout:
    """ISM's view of the inference engine (hapexp.engine.predictor.Predictor): one value per
    sequence (several tracks averaged, as in predict's genes × samples matrix), the
    model's reference reuse, and the precision switches of the audit."""

    def __init__(self, spec: dict, reuse: bool = True, predictor=None):
        from hapexp.engine.predictor import Predictor  # torch: only where the engine runs

        self.predictor = predictor if predictor is not None else Predictor(spec)
        self.reuse = bool(reuse)
        self.requested = self.predictor.requested
        self.candidates = self.predictor.candidates

    def __call__(self, seqs: np.ndarray, tss_index: int, exons=None, antisense: bool = False) -> np.ndarray:
        out = np.asarray(
            self.predictor.readout(seqs, tss_index, exons=exons, antisense=antisense), dtype=float
        )
        if out.ndim != 2:
            return out
        groups = self.predictor.track_groups
        if len(groups) == 1:  # the model's tracks only: one value per sequence
            return out.mean(axis=1)
        # tissues: one column per group (the model's tracks, then each tissue's)
        return np.stack([out[:, pos].mean(axis=1) for pos in groups.values()], axis=1)

    @property
    def groups(self) -> list[str]:
        """Track groups of the read-out's columns ("" = the model's tracks; then tissues)."""
        return list(self.predictor.track_groups)

    @property
    def uses_exons(self) -> bool:
        return self.predictor.uses_exons

    strand_aware = True  # antisense windows read a stranded track's pair

    def reusing(self, reference: np.ndarray):
        return self.predictor.reusing(reference) if self.reuse else contextlib.nullcontext(False)

    @property
    def path_error(self) -> float:
        """Relative error bound (× |reference read-out|) of the path that computes the scores:
        the model's reference reuse declares its own (`ReferenceReuse.score_error`); a full
        forward adds none beyond the precision's floor."""
        reuse = self.predictor.reuse
        return float(reuse.score_error) if self.reuse and reuse is not None else 0.0

    @property
    def precision(self) -> str:
        return self.predictor.effective_precision

    def set_precision(self, precision: str) -> None:
        self.predictor.set_precision(precision)

    def strict(self):
        return self.predictor.strict()


def make_readout(spec: dict, reuse: bool = True) -> EngineReadout:
    """The read-out function of a model spec via predict's engine (the one place that
    knows the engine's API); `reuse`: recompute only what a variant changes (models that
    support reference reuse)."""
    return EngineReadout(spec, reuse=reuse)


def strand_tss_distance(pos, tss: int, strand: str) -> np.ndarray:
    """Variant distance to the TSS (both 1-based), positive downstream in gene orientation."""
    pos = np.asarray(pos, dtype=np.int64)
    return (pos - tss) if strand == "+" else (tss - pos)


def select_variants(variants: pd.DataFrame, maf: float, indels: bool) -> pd.DataFrame:
    """Variants to score: minor-allele frequency >= maf; SNVs only unless `indels`."""
    keep = minor_allele_frequency(variants["af"]) >= maf
    if not indels:
        keep &= variants["is_snv"].astype(bool).to_numpy()
    return variants[keep]


def _scores(alt: np.ndarray, ref: float, log2_ratio: bool, floor: float = 0.0) -> np.ndarray:
    """alt − ref (or log2(alt / ref)); NaN where |alt − ref| ≤ floor × |ref| (unresolved)."""
    alt = np.asarray(alt, dtype=float)
    below = unresolved(alt, ref, floor)
    if not log2_ratio:
        return np.where(below, np.nan, alt - ref)
    # log2 ratio needs positive read-outs (counts/CAGE); a tiny floor keeps zero finite.
    eps = 1e-6
    return np.where(below, np.nan, np.log2(np.maximum(alt, 0) + eps) - np.log2(max(ref, 0) + eps))


def gene_values(index, gene, readout: ReadoutFn, window: int, rc_minus: bool = True, maf: float = 0.01,
                indels: bool = False, exons: np.ndarray | None = None):  # fmt: skip
    """Raw read-outs of one gene: (variants, alt read-out per variant, reference read-out),
    or None when no variant passes the filters. `exons`: the gene's reference exons
    [start0, end0) (read-outs over exons), followed onto every single-variant window."""
    gene_id = str(gene["gene_id"])
    variants = select_variants(index.variants(gene_id, window), maf, indels)
    if variants.empty:
        return None
    ref_seq, tss_index = index.reference_window(gene_id, window, rc_minus)
    ref_seq = np.asarray(ref_seq, dtype=np.uint8)
    # Single-variant sequences are re-anchored on the TSS, so the reference's index holds.
    tss_index = int(tss_index)
    ids = list(variants["variant_id"])
    strand = str(gene["strand"])
    # engine read-outs read a stranded track's pair on antisense windows
    anti = strand == "-" and not rc_minus and getattr(readout, "strand_aware", False)
    kw = {"antisense": True} if anti else {}
    ref_ex = None
    if exons is not None:
        from hapexp.sequences.windows import orient_intervals
        from hapexp.variants.windows import window_bounds

        w0, _ = window_bounds(int(gene["tss"]), strand, window)
        ref_ex = orient_intervals(
            np.asarray(exons, dtype=np.int64).reshape(-1, 2) - w0, window, rc_minus and strand == "-"
        )
    alt_values = []
    ref_value = None
    block_n = max(1, min(BLOCK, BLOCK_BYTES // window))
    reusing = getattr(readout, "reusing", None)
    with reusing(ref_seq) if reusing is not None else contextlib.nullcontext():
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
                # one value per sequence, or one per track group (tissues: EngineReadout)
                ref_value = float(out[0]) if np.ndim(out) == 1 else np.asarray(out[0], float)
                out = out[1:]
            else:
                if exons is not None:
                    kw["exons"] = block_ex
                out = readout(block, tss_index, **kw)
            alt_values.append(np.asarray(out, dtype=float))
    return variants, np.concatenate(alt_values), ref_value


def scores_frame(
    gene, variants: pd.DataFrame, alt, ref, log2_ratio: bool, floor: float, groups: list[str] | None = None
) -> pd.DataFrame:
    """One row per variant; with track groups (`alt` [variants, groups], `ref` [groups]) the
    `score` is group "" (the model's tracks) and each tissue's is the column `score:<tissue>`."""
    if np.ndim(alt) == 2:
        frame = scores_frame(gene, variants, alt[:, 0], float(ref[0]), log2_ratio, floor)
        for k, g in enumerate(groups[1:], start=1):
            frame[f"score:{g}"] = _scores(alt[:, k], float(ref[k]), log2_ratio, floor)
        return frame
    return pd.DataFrame(
        {
            "gene_id": str(gene["gene_id"]),
            "variant_id": variants["variant_id"].astype(str).to_numpy(),
            "chrom": variants["chrom"].astype(str).to_numpy(),
            "pos": variants["pos"].astype(np.int64).to_numpy(),
            "ref": variants["ref"].astype(str).to_numpy(),
            "alt": variants["alt"].astype(str).to_numpy(),
            "af": variants["af"].astype(float).to_numpy(),
            "tss_distance": strand_tss_distance(variants["pos"], int(gene["tss"]), str(gene["strand"])),
            "score": _scores(alt, ref, log2_ratio, floor),
        }
    )


def score_chunk(index, readout: ReadoutFn, spec: dict, ism_cfg: dict, audit_cfg: dict | None = None,
                model: str = "model", return_audit: bool = False, exons: dict | None = None):  # fmt: skip
    """ISM for every gene of a haplotype index chunk (one rule job).

    With an engine read-out in reduced precision the precision budget is measured first
    (hapexp.engine.precision): the scores' noise floor and, for `precision: auto`, the
    precision itself. `return_audit`: also return the budget table. `exons` (gene_id →
    reference exons) is needed when the read-out sums exons.
    """
    spec, ism_cfg = with_defaults("models.*", spec), with_defaults("ism", ism_cfg)
    window, rc_minus = int(spec["window"]), bool(spec["rc_minus"])
    maf, indels, log2_ratio = float(ism_cfg["maf"]), bool(ism_cfg["indels"]), bool(ism_cfg["log2_ratio"])
    cache: dict = {}
    need_exons = bool(getattr(readout, "uses_exons", False))
    if need_exons and exons is None:
        raise ValueError(f"model {spec.get('name')}: readout exons needs the genes' exons")

    def gene_exons(gene):
        return exons.get(str(gene["gene_id"]), np.zeros((0, 2), np.int64)) if need_exons else None

    def values(gene, fn):
        if fn is None:  # only: does the gene have variants to score?
            return (
                None
                if select_variants(index.variants(str(gene["gene_id"]), window), maf, indels).empty
                else True
            )
        return gene_values(index, gene, fn, window, rc_minus, maf, indels, gene_exons(gene))

    table = empty_table()
    groups = readout.groups if isinstance(readout, EngineReadout) else [""]
    if isinstance(readout, EngineReadout) and readout.candidates != ("fp32",):
        if len(groups) == 1:
            table, _, floor, cache = audit_ism(index, readout, values, audit_cfg, model)
        else:  # the audit measures the model's tracks (group ""); genes scored again for all groups
            table, _, floor, _ = audit_ism(
                index, readout, lambda g, fn: _first_group(values(g, fn)), audit_cfg, model
            )
    else:
        floor = relative_resolution(requested(spec)) + float(getattr(readout, "path_error", 0.0))
    frames = []
    for _, gene in index.genes.iterrows():
        gid = str(gene["gene_id"])
        raw = cache[gid] if gid in cache else values(gene, readout)
        n = 0
        if raw is not None:
            frames.append(scores_frame(gene, *raw, log2_ratio, floor, groups))
            n = len(frames[-1])
        log.info("ISM %s: %d variants", gid, n)
    if isinstance(readout, EngineReadout) and readout.predictor.reuse is not None:
        st = readout.predictor.reuse.stats
        log.info("reference reuse: %d variant forwards windowed, %d full (indels)", st["reused"], st["full"])
    frames = [f for f in frames if len(f)]
    columns = ISM_COLUMNS + [f"score:{g}" for g in groups[1:]]
    df = pd.concat(frames, ignore_index=True)[columns] if frames else empty_ism(groups[1:])
    return (df, table) if return_audit else df


def _first_group(raw):
    """Raw read-outs of group "" only (the precision audit measures the model's tracks)."""
    if raw is None or raw is True or np.ndim(raw[1]) == 1:
        return raw
    variants, alt, ref = raw
    return variants, alt[:, 0], float(ref[0])


def empty_ism(tissues=()) -> pd.DataFrame:
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
            **{f"score:{t}": pd.Series(dtype=float) for t in tissues},
        }
    )


def gather(paths) -> pd.DataFrame:
    """Concatenate per-chunk ISM tables (chunk order = file order), tissues' columns kept."""
    frames = [pd.read_parquet(p) for p in paths]
    extra = [c for c in frames[0].columns if c.startswith("score:")] if frames else []
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_ism([c.removeprefix("score:") for c in extra])
    return pd.concat(frames, ignore_index=True)[ISM_COLUMNS + extra]


def tissue_scores(ism: pd.DataFrame, tissue: str) -> pd.DataFrame:
    """A cohort's gathered ISM table as one tissue reads it: `score` = the tissue's tracks."""
    col = f"score:{tissue}"
    if col not in ism:
        raise ValueError(f"ISM table has no column {col!r} (was ISM run for this tissue's tracks?)")
    return ism[ISM_COLUMNS[:-1]].assign(score=ism[col].to_numpy())


def run_tissue_ism(table, ism, tissue: str) -> None:
    """Rule `tissue_ism`: one `tissue`'s ISM table (`ism`) from the cohort's (`table`)."""
    from hapexp.io import write_parquet

    df = tissue_scores(pd.read_parquet(table), tissue)
    write_parquet(df, ism)
    log.info("tissue %s: %d ISM scores", tissue, len(df))


def run_ism(index, exons, table, precision, spec: dict, ism_cfg: dict, audit_cfg: dict | None, model: str,
            threads: int | None = None, readout=None) -> pd.DataFrame:  # fmt: skip
    """Rule `ism`: score the variants of one chunk's haplotype `index` (exons from the cohort's
    `exons` for an exon read-out) and write the scores (`table`) and the `precision` budget.
    `threads`: the job's CPU threads (None: torch's setting as it is); `readout`: a read-out
    function instead of the model's engine (tests)."""
    from hapexp.inputs.exons import read_exons
    from hapexp.io import write_parquet, write_tsv
    from hapexp.sequences.index import HaplotypeIndex

    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    spec = {**spec, "name": model}
    haplotypes = HaplotypeIndex.load(index)
    ism_cfg = with_defaults("ism", ism_cfg)
    if ism_cfg["precision"]:
        spec = {**spec, "precision": ism_cfg["precision"]}
    readout = readout or make_readout(spec, reuse=bool(ism_cfg["reuse_reference"]))
    gene_exons = read_exons(exons) if (exons and getattr(readout, "uses_exons", False)) else None
    df, budget = score_chunk(
        haplotypes, readout, spec, ism_cfg, audit_cfg, model=model, return_audit=True, exons=gene_exons
    )
    write_tsv(budget, precision)
    write_parquet(df, table)
    log.info("ISM: %d variants in %d genes, %d unresolved (NaN)",
             len(df), df["gene_id"].nunique(), int(df["score"].isna().sum()))  # fmt: skip
    return df


def run_gather_ism(chunks, table) -> None:
    """Rule `gather_ism`: a model's per-chunk ISM tables (`chunks`) into one `table`."""
    from hapexp.io import write_parquet

    df = gather(list(chunks))
    write_parquet(df, table)
    log.info("gathered %d ISM scores from %d chunks", len(df), len(chunks))
