"""Inference precision and the precision budget measured in every reduced-precision run.

Pure numpy/pandas (the gather and summary rules use it); the autocast/TF32 switches
live with the engine (hapexp.engine.device.precision_mode). What a model's spec asks for is
read here only (`requested`); the engine, ISM and the verdict ask these functions.

Modes (a model's `precision`):
- `fp32`: strict float32: no autocast, no TF32; with the reference attention and no
  compilation this is the yardstick every reduced run is compared with.
- `tf32`: float32 storage, TF32 tensor-core matrix products/convolutions (CUDA only;
  on CPU identical to fp32). ~1e-4 relative read-out error on a full-size 196,608-bp model.
- `bf16`: bfloat16 autocast (8-bit mantissa). ~1e-3 relative read-out error.
- `auto` (default): fp32 on CPU; on CUDA the fastest of bf16 → tf32 → fp32 whose
  budget holds on the audited genes of the job (`choose`).

The budget (`precision.tsv`, one row per audited gene × stage): a deterministic sample
of each job's genes (`audit_genes`: ≥ `fraction` of them, at least `min_genes`) is
re-run in strict fp32 — for `predict` all their unique haplotypes and the reference,
for `ism` all their variants — and compared with the reduced run:
- predict: noise = SD over haplotypes of (reduced − fp32) read-out; signal = SD of the
  fp32 per-person prediction across people; r_fp32 = r(reduced, fp32) across people.
- ism: noise = SD over variants of (reduced − fp32) score; signal = SD of the fp32
  scores; r_fp32 and sign agreement of the scores; the fraction of the gene's scores
  below the measured noise floor (reported as NaN: unresolved).
noise_ratio = noise / signal; a gene is `flagged` when it exceeds `max_noise_ratio`
(0.1: the reduced predictions then still correlate ≥ 0.995 with fp32 across people).

ISM noise floor (`measure_floor`): z × RMS of (reduced − fp32) / |reference read-out|
over the audited variants (z = `noise_floor_z`, 3); every score of the job whose
|alt − ref| is at most floor × |ref| is NaN. fp32 runs use the fp32 rounding floor
(`STATIC_FLOOR`); a reduced run whose sample has no variant falls back to its static
floor (logged). ISM adds to either the error bound of the path that computed the scores
(reference reuse's, declared by the model: hapexp.engine.ism.EngineReadout.path_error).

Constancy (`constancy_floor`, `model_floor`, `used_precision`): a prediction whose
spread across individuals is within what the model resolves is rounding, not signal: an
insensitive model's rounding noise is deterministic per sequence, so it follows genotype
and would pass for a (tiny) genetic effect. `hapexp.verdict.performance` calls such a
gene's prediction constant. What the model resolves is measured, never assumed from the
precision's mantissa: in strict fp32 fp32's resolution (1e-6 relative: spacing ~1.2e-7,
a few ulps accumulate); in a reduced precision (tf32, bf16, `auto` that chose one) the
rounding noise its predict jobs' audits measured — per audited gene its own relative
noise (`rel_noise`), for the other genes the largest audited — times a margin of
`noise_floor_z` (3) standard errors of the log ratio of the two SDs (`noise_margin`;
×1.6 with 30 people, ×1.1 with 450), never below fp32's. With no real spread the
people's SD is at most the noise SD, so a gene whose real spread is resolved is tested
at every precision: the choice of precision does not change the gene set (the old static
bf16 floor, 1e-2, dropped genes whose real spread bf16 resolves; on enformer_tiny in bf16
on CPU the noise is 0.7–1 % of the level, and a fixed z = 3 on the SD would drop genes
whose real spread is 2 %). Linear predictors (float64 from dosages) and everything fitted in float64 on
the model's outputs (heads): 1e-12 (`RELATIVE_RESOLUTION["fp64"]`).
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import pandas as pd

from hapexp.engine.readout import REFERENCE_SAMPLE
from hapexp.stats import pearson

log = logging.getLogger(__name__)

MODES = ("fp32", "tf32", "bf16")
# auto: tried in this order; the first whose budget holds is used (fp32 always holds).
AUTO_CANDIDATES = {"cuda": ("bf16", "tf32", "fp32"), "cpu": ("fp32",)}
# Relative resolution when nothing was measured: fp32 rounding of an untrained
# network's read-out differences (~1e-7), TF32's 10-bit and bf16's 7-bit mantissas.
STATIC_FLOOR = {"fp32": 1e-6, "tf32": 1e-4, "bf16": 1e-2}
RELATIVE_RESOLUTION = {**STATIC_FLOOR, "fp64": 1e-12}

COLUMNS = [
    "model",
    "stage",
    "gene_id",
    "precision",
    "used",
    "n",
    "noise_sd",
    "signal_sd",
    "noise_ratio",
    "r_fp32",
    "sign_agreement",
    "frac_unresolved",
    "noise_floor",
    "max_rel_diff",
    "rel_noise",
    "flagged",
]


def requested(spec: dict) -> str:
    """The precision a model's spec asks for: fp32 | tf32 | bf16 | auto."""
    return str(spec["precision"])


def candidates(precision: str, device_type: str) -> tuple[str, ...]:
    """Precisions to try, in order: the configured one, or auto's list for the device."""
    if precision == "auto":
        return AUTO_CANDIDATES["cuda" if device_type == "cuda" else "cpu"]
    if precision not in MODES:
        raise ValueError(f"precision must be one of {MODES} or auto, not {precision!r}")
    return (precision,)


def relative_resolution(precision: str | None) -> float:
    """Relative resolution of outputs computed at `precision` (fp32 when unknown)."""
    return RELATIVE_RESOLUTION.get(str(precision or "fp32"), RELATIVE_RESOLUTION["fp32"])


def model_floor(spec: dict) -> float | None:
    """The constancy floor of a deep model known from its resolved spec: fp32's resolution for
    strict fp32; None for a reduced precision or `auto`, whose floor is measured by its
    predict jobs' audits (`constancy_floor` on their precision tables)."""
    return RELATIVE_RESOLUTION["fp32"] if requested(spec) == "fp32" else None


def used_precision(table: pd.DataFrame, model: str, stage: str = "predict") -> str:
    """The coarsest precision a model's jobs used (fp32 when no job ran reduced: strict
    fp32 jobs write header-only tables)."""
    t = table[table["used"].astype(bool) & (table["model"] == model) & (table["stage"] == stage)]
    used = set(t["precision"].astype(str))
    return max(used, key=lambda p: RELATIVE_RESOLUTION.get(p, 0.0)) if used else "fp32"


def constancy_floor(table: pd.DataFrame, model: str, genes, z: float = 3.0, n_people: int = 0) -> pd.Series:
    """Per gene of `genes`, the relative constancy floor of a deep model's predictions from
    its predict jobs' precision tables (`table`; module doc): fp32's resolution when no job
    ran reduced; else the gene's audited relative rounding noise (`rel_noise`: SD over its
    haplotypes of reduced − fp32, over the level) × `noise_margin`, never below fp32's;
    unaudited genes the largest audited noise (with the smallest audit's margin). A reduced
    run whose audit measured nothing (no finite `rel_noise`) falls back to its precision's
    static floor (logged). `n_people`: the people the spread is taken over."""
    genes = pd.Index([str(g) for g in genes], name="gene_id")
    fp32 = RELATIVE_RESOLUTION["fp32"]
    used = used_precision(table, model)
    if used == "fp32":
        return pd.Series(fp32, index=genes)
    t = table[table["used"].astype(bool) & (table["model"] == model) & (table["stage"] == "predict")]
    t = t.assign(rel=pd.to_numeric(t["rel_noise"], errors="coerce"), gene_id=t["gene_id"].astype(str))
    t = t[np.isfinite(t["rel"])].sort_values("rel").drop_duplicates("gene_id", keep="last")
    if t.empty:
        log.warning("%s ran in %s but its audit measured no noise: static floor %g", model, used,
                    STATIC_FLOOR[used])  # fmt: skip
        return pd.Series(STATIC_FLOOR[used], index=genes)
    n_hap = t["n"].astype(float).to_numpy()
    floor = pd.Series(t["rel"].to_numpy() * noise_margin(n_hap, n_people, z), index=t["gene_id"].to_numpy())
    unaudited = float(t["rel"].max() * noise_margin(n_hap.min(), n_people, z))
    return floor.reindex(genes).fillna(unaudited).clip(lower=fp32).rename(None)


def noise_margin(n_haplotypes, n_people: int, z: float = 3.0):
    """How far a spread across people must exceed the measured rounding noise to be real:
    with no real spread the people's SD is at most the noise SD (a person's prediction
    averages or sums rounding of their haplotypes), so the bound is the noise SD times z
    standard errors of the log ratio of two SD estimates, exp(z·√(1/(2(n_h − 1)) +
    1/(2(n − 1)))) — n_h haplotypes audited, n people (0: that term left out)."""
    n_h = np.maximum(np.asarray(n_haplotypes, dtype=float), 2.0)
    var = 1 / (2 * (n_h - 1)) + (1 / (2 * (max(int(n_people), 2) - 1)) if n_people else 0.0)
    return np.exp(float(z) * np.sqrt(var))


def audit_genes(gene_ids, fraction: float = 0.02, min_genes: int = 3) -> list[str]:
    """Deterministic sample of ⌈fraction · n⌉ genes (at least min_genes, at most all):
    the genes with the smallest SHA-1 of their id, in the job's order. The same gene is
    audited whatever chunk it lands in, in every run."""
    gene_ids = [str(g) for g in gene_ids]
    k = min(len(gene_ids), max(int(min_genes), math.ceil(float(fraction) * len(gene_ids))))
    ranked = sorted(gene_ids, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
    chosen = set(ranked[:k])
    return [g for g in gene_ids if g in chosen]


def _sd(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(x.std(ddof=1)) if len(x) > 1 else 0.0


def _ratio(noise: float, signal: float) -> float:
    if noise == 0:
        return 0.0 if signal > 0 else np.nan
    return noise / signal if signal > 0 else np.inf


def predict_budget(
    reduced: pd.DataFrame, strict: pd.DataFrame, haplotype_aggregation: str, bound: float
) -> pd.DataFrame:
    """Per gene: reduced vs strict-fp32 tidy predictions (hapexp.engine.predict.predict_chunk)."""
    keys = ["gene_id", "sample", "haplotype"]
    red = reduced.groupby(keys, sort=False)["value"].mean()
    ref = strict.groupby(keys, sort=False)["value"].mean()
    both = pd.concat({"red": red, "fp32": ref}, axis=1)
    m_red, m_ref = _people(red, haplotype_aggregation), _people(ref, haplotype_aggregation)
    rows = []
    for gid, g in both.groupby(level="gene_id", sort=False):
        haps = g[g.index.get_level_values("sample") != REFERENCE_SAMPLE]
        diff = (haps["red"] - haps["fp32"]).to_numpy()
        people_ref = m_ref.loc[gid].to_numpy(dtype=float)
        noise, signal = _sd(diff), _sd(people_ref)
        scale = float(np.abs(g["fp32"]).mean())
        rel = np.abs(g["red"] - g["fp32"]) / np.maximum(np.abs(g["fp32"]), 1e-30)
        ratio = _ratio(noise, signal)
        rows.append({
            "gene_id": gid, "n": len(haps), "noise_sd": noise, "signal_sd": signal, "noise_ratio": ratio,
            "r_fp32": pearson(m_red.loc[gid].reindex(m_ref.loc[gid].index).to_numpy(dtype=float), people_ref),
            "max_rel_diff": float(rel.max()), "rel_noise": noise / scale if scale > 0 else np.nan,
            "flagged": bool(ratio > bound),
        })  # fmt: skip
    return _table(rows, "predict")


def _people(per_hap: pd.Series, how: str) -> pd.Series:
    """(gene, sample, haplotype) → (gene, sample): predict's matrix values (mean over
    tracks already taken, then the haplotype aggregation); the reference row dropped."""
    per_hap = per_hap[per_hap.index.get_level_values("sample") != REFERENCE_SAMPLE]
    g = per_hap.groupby(level=["gene_id", "sample"], sort=False)
    return g.mean() if how == "mean" else g.sum()


def measure_floor(alt_red, ref_red, alt_fp32, ref_fp32, z: float = 3.0) -> float:
    """Relative ISM noise floor: z × RMS of the score error relative to the fp32 reference read-out.

    Arrays are per variant (ref_* broadcast per variant: each variant's gene reference);
    the floor is never below fp32's own resolution."""
    d_red = np.asarray(alt_red, float) - np.asarray(ref_red, float)
    d_ref = np.asarray(alt_fp32, float) - np.asarray(ref_fp32, float)
    e = (d_red - d_ref) / np.maximum(np.abs(np.asarray(ref_fp32, float)), 1e-12)
    if e.size == 0:
        return np.nan
    return max(float(z) * float(np.sqrt(np.mean(e**2))), STATIC_FLOOR["fp32"])


def unresolved(alt, ref, floor: float) -> np.ndarray:
    """Scores whose |alt − ref| is at most floor × |ref| (their sign is rounding)."""
    alt = np.asarray(alt, float)
    return np.abs(alt - ref) <= floor * max(abs(float(ref)), 1e-12)


def ism_budget(
    genes: list[tuple], floor: float, bound: float, fp32_floor: float = STATIC_FLOOR["fp32"]
) -> pd.DataFrame:
    """Per gene: (gene_id, alt_red, ref_red, alt_fp32, ref_fp32) raw read-outs → budget rows;
    `floor`: the reduced run's, `fp32_floor`: the strict run's (both with the path's error)."""
    rows = []
    for gid, alt_red, ref_red, alt_ref, ref_ref in genes:
        s_red = np.asarray(alt_red, float) - ref_red
        s_ref = np.asarray(alt_ref, float) - ref_ref
        noise, signal = _sd(s_red - s_ref), _sd(s_ref)
        kept = ~unresolved(alt_red, ref_red, floor)
        real = ~unresolved(alt_ref, ref_ref, fp32_floor)
        both = kept & real
        ratio = _ratio(noise, signal)
        rows.append({
            "gene_id": gid, "n": len(s_red), "noise_sd": noise, "signal_sd": signal, "noise_ratio": ratio,
            "r_fp32": pearson(s_red, s_ref),
            "sign_agreement": float(np.mean(np.sign(s_red[both]) == np.sign(s_ref[both]))) if both.any() else np.nan,
            "frac_unresolved": float(np.mean(~kept)) if len(kept) else np.nan,
            "noise_floor": floor,
            "max_rel_diff": float(np.max(np.abs(s_red - s_ref)) / max(abs(ref_ref), 1e-12)) if len(s_red) else np.nan,
            "rel_noise": noise / abs(ref_ref) if ref_ref else np.nan,
            "flagged": bool(ratio > bound),
        })  # fmt: skip
    return _table(rows, "ism")


def _table(rows, stage: str) -> pd.DataFrame:
    t = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in t.columns:
            t[c] = np.nan
    t["stage"] = stage
    t["flagged"] = t["flagged"].astype(bool)
    return t[COLUMNS]


def empty_table() -> pd.DataFrame:
    t = pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS})
    for c in ("model", "stage", "gene_id", "precision"):
        t[c] = t[c].astype(object)
    t["used"] = t["used"].astype(bool)
    t["flagged"] = t["flagged"].astype(bool)
    t["n"] = t["n"].astype(np.int64)
    return t


def budget_holds(table: pd.DataFrame) -> bool:
    """No audited gene is flagged (genes without signal and without noise do not count)."""
    return not bool(table["flagged"].any())


def choose(trials: list[tuple[str, pd.DataFrame | None]], requested: str) -> str:
    """The precision to use from (precision, budget table) trials run in candidate order:
    the configured one, or for auto the first whose budget holds (fp32 always does)."""
    for p, table in trials:
        if requested != "auto" or p == "fp32" or (table is not None and budget_holds(table)):
            return p
    return "fp32"


def finish(trials: list[tuple[str, pd.DataFrame | None]], used: str, model: str) -> pd.DataFrame:
    """Concatenate the trials' tables with `precision`, `used` and `model` filled in."""
    frames = []
    for p, t in trials:
        if t is None or t.empty:
            continue
        t = t.copy()
        t["precision"], t["used"], t["model"] = p, p == used, model
        frames.append(t)
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else empty_table()


# ---------------------------------------------------------------- read side
def read(paths) -> pd.DataFrame:
    frames = [pd.read_csv(p, sep="\t") for p in paths]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else empty_table()


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per model × stage × precision used: genes audited and flagged, median noise ratio,
    ISM r and sign agreement with fp32, fraction of ISM scores unresolved."""
    t = table[table["used"].astype(bool)]
    cols = ["model", "stage", "precision", "genes_audited", "genes_flagged", "median_noise_ratio",
            "median_r_fp32", "median_sign_agreement", "median_frac_unresolved", "median_rel_noise"]  # fmt: skip
    if t.empty:
        return pd.DataFrame(columns=cols)
    g = t.groupby(["model", "stage", "precision"], sort=True)
    out = g.agg(
        genes_audited=("gene_id", "nunique"),
        genes_flagged=("flagged", "sum"),
        median_noise_ratio=("noise_ratio", "median"),
        median_r_fp32=("r_fp32", "median"),
        median_sign_agreement=("sign_agreement", "median"),
        median_frac_unresolved=("frac_unresolved", "median"),
        median_rel_noise=("rel_noise", "median"),
    ).reset_index()
    return out[cols]


def flagged_genes(table: pd.DataFrame, model: str | None = None, stage: str | None = None) -> list[str]:
    """Audited genes whose noise/signal exceeded the bound in the precision used."""
    t = table[table["used"].astype(bool) & table["flagged"].astype(bool)]
    if model is not None:
        t = t[t["model"] == model]
    if stage is not None:
        t = t[t["stage"] == stage]
    return sorted(set(t["gene_id"].astype(str)))


def noise_floor(
    table: pd.DataFrame, model: str, stage: str = "predict", precision: str | None = None
) -> float:
    """Measured relative noise of a model's reduced-precision read-outs (largest over the
    audited genes of the precision used), e.g. for deciding that a prediction is constant;
    NaN when the model ran in strict fp32 (no audit)."""
    t = table[table["used"].astype(bool) & (table["model"] == model) & (table["stage"] == stage)]
    if precision is not None:
        t = t[t["precision"] == precision]
    v = pd.to_numeric(t["rel_noise"], errors="coerce").dropna()
    return float(v.max()) if len(v) else np.nan


def summary_lines(table: pd.DataFrame) -> list[str]:
    """Markdown lines for summary.md: the budget per model and stage, flagged genes."""
    s = summarize(table)
    if s.empty:
        return ["- every model ran in strict fp32 (no reduced precision, nothing to audit)."]
    lines = []
    for _, r in s.iterrows():
        line = (f"- {r['model']} {r['stage']} in {r['precision']}: {int(r['genes_flagged'])} of "
                f"{int(r['genes_audited'])} audited genes flagged (noise/signal median {r['median_noise_ratio']:.3g})")  # fmt: skip
        if r["stage"] == "ism":
            line += (f"; ISM vs fp32: r {r['median_r_fp32']:.3f}, sign agreement {r['median_sign_agreement']:.3f}, "
                     f"{100 * r['median_frac_unresolved']:.1f} % unresolved (NaN)")  # fmt: skip
        flagged = flagged_genes(table[table["precision"] == r["precision"]], r["model"], r["stage"])
        if flagged:
            line += f"; flagged: {', '.join(flagged[:10])}" + (
                f" (+{len(flagged) - 10} more)" if len(flagged) > 10 else ""
            )
        lines.append(line + ".")
    return lines


def run_precision(tables, precision) -> None:
    """Rule `precision`: the per-job precision budgets of a cohort (every model, predict and
    ISM: `tables`) in one table, `precision`."""
    from hapexp.io import write_tsv

    table = read(list(tables))
    write_tsv(table, precision)
    log.info("precision budget: %d audited gene rows\n%s", len(table), summarize(table).to_string())
