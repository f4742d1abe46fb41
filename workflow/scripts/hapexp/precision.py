"""Numerical resolution of a predictor's outputs, by inference precision.

A prediction whose spread across individuals is below `relative resolution ×` its
magnitude is rounding, not signal: an insensitive model's rounding noise is
deterministic per sequence, so it follows genotype and would pass for a (tiny)
genetic effect. Used by `hapexp.performance` to call a gene's prediction constant.

- fp32: 1e-6 (fp32 spacing is ~1.2e-7 relative; forward passes accumulate a few ulps);
- bf16: 1e-2 (8 significant bits: spacing 2⁻⁸–2⁻⁷ ≈ 0.4–0.8 % relative; per-sequence
  rounding of a read-out is ~1e-3, so 1e-2 keeps a margin), as ISM's resolution;
- fp64 (the linear predictors, computed in float64 from dosages): 1e-12.

A measured noise floor (e.g. from repeated inference of identical sequences) can
replace these per model or per gene: `hapexp.performance.cross_individual(floors=…)`.
"""

from __future__ import annotations

RELATIVE_RESOLUTION = {"fp32": 1e-6, "bf16": 1e-2, "fp64": 1e-12}


def relative_resolution(precision: str | None) -> float:
    """Relative resolution of outputs computed at `precision` (fp32 when unknown)."""
    return RELATIVE_RESOLUTION.get(str(precision or "fp32"), RELATIVE_RESOLUTION["fp32"])


def model_floor(spec: dict) -> float:
    """The constancy floor of a deep model from its spec (`precision`, default fp32)."""
    return relative_resolution(spec.get("precision", "fp32"))
