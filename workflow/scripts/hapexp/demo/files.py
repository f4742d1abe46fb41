"""The demo simulator's output files: the contract between rule `simulate_demo` and
`hapexp.demo.simulate` (no heavy imports: rules/simulate.smk reads it at parse time).

One-tissue demo (`tissues` empty): `OUTPUT_FILES`. Multi-tissue demo: `SHARED_FILES`,
`samples.tsv` and, per tissue, `TISSUE_FILES` with the tissue's name.
"""

from __future__ import annotations

from pathlib import Path

SHARED_FILES = [
    "reference.fa",
    "reference.fa.fai",
    "cohort.vcf.gz",
    "cohort.vcf.gz.tbi",
    "genes.tsv",
    "exons.tsv",
]
OUTPUT_FILES = [
    *SHARED_FILES,
    "expression.tsv",
    "expression_noiseless.tsv",
    "covariates.tsv",
    "truth.tsv",
    "truth_genes.tsv",
    "oracle.pt",
]
# rule output name -> file name pattern of the per-tissue files (one-tissue demo: no suffix)
TISSUE_FILES = {
    "expression": "expression_{tissue}.tsv",
    "noiseless": "expression_noiseless_{tissue}.tsv",
    "covariates": "covariates_{tissue}.tsv",
    "truth": "truth_{tissue}.tsv",
    "truth_genes": "truth_genes_{tissue}.tsv",
}
_SHARED_NAMES = ["fasta", "fai", "vcf", "tbi", "genes", "exons"]


def output_files(tissues=()) -> list[str]:
    """File names the simulator writes for these tissues (empty: the one-tissue demo)."""
    if not tissues:
        return list(OUTPUT_FILES)
    per_tissue = [p.format(tissue=t) for t in tissues for p in TISSUE_FILES.values()]
    return [*SHARED_FILES, "oracle.pt", "samples.tsv", *per_tissue]


def rule_outputs(outdir, tissues=()) -> dict:
    """Rule simulate_demo's named outputs: one path each, per-tissue ones as a list of
    paths in tissue order (the one-tissue demo: the historical names)."""
    d = Path(outdir)
    out = {name: str(d / f) for name, f in zip(_SHARED_NAMES, SHARED_FILES, strict=True)}
    if not tissues:
        plain = [
            "expression.tsv",
            "expression_noiseless.tsv",
            "covariates.tsv",
            "truth.tsv",
            "truth_genes.tsv",
        ]
        out.update({name: str(d / f) for name, f in zip(TISSUE_FILES, plain, strict=True)})
    else:
        out.update({name: [str(d / p.format(tissue=t)) for t in tissues] for name, p in TISSUE_FILES.items()})
        out["samples"] = str(d / "samples.tsv")
    out["oracle"] = str(d / "oracle.pt")
    return out
