"""The GTEx preset's tissue blocks, written from its tissue → track table.

config/gtex_tissue_tracks.tsv is the source: per GTEx v8 tissue and model, the tracks
selected (Enformer: 0-based indices; Borzoi, AlphaGenome: exact identifiers), their
identifiers and descriptions in the model's table, a regex every description matches,
the kind of match and the reason. config/gtex.yaml's `cohorts.gtex.tissues` block (between
the BEGIN/END markers) is `tissue_blocks(read_table())`; tests/test_gtex_preset.py checks
that it is, and resolves every selection against the real track tables.

    .venv/bin/python -m tests.gtex_tracks          # rewrite the block in config/gtex.yaml
    .venv/bin/python -m tests.gtex_tracks --check  # exit 1 when the yaml is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TSV = REPO / "config" / "gtex_tissue_tracks.tsv"
PRESET = REPO / "config" / "gtex.yaml"
MODELS = ("enformer", "borzoi", "alphagenome")
EXPRESSION_DIR = "resources/gtex/GTEx_Analysis_v8_eQTL_expression_matrices"
COVARIATES_DIR = "resources/gtex/GTEx_Analysis_v8_eQTL_covariates"
BEGIN = "    # BEGIN tissues: written by `python -m tests.gtex_tracks` from config/gtex_tissue_tracks.tsv"
END = "    # END tissues"


def read_table(path=TSV) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", comment="#", dtype=str, keep_default_na=False)


def selectors(row) -> list:
    """The `tracks` cell as config values: Enformer indices as ints, identifiers as strings."""
    parts = row["tracks"].split(",")
    return [int(p) for p in parts] if row["model"] == "enformer" else parts


def expression_path(tissue: str) -> str:
    return f"{EXPRESSION_DIR}/{tissue}.v8.normalized_expression.bed.gz"


def covariates_path(tissue: str) -> str:
    return f"{COVARIATES_DIR}/{tissue}.v8.covariates.txt"


def _flow(values: list) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def tissue_blocks(table: pd.DataFrame) -> str:
    """`tissues:` under `cohorts.gtex` (4-space indent), one block per tissue in table order."""
    lines = [BEGIN, "    tissues:"]
    for tissue, rows in table.groupby("tissue", sort=False):
        by_model = {r["model"]: r for _, r in rows.iterrows()}
        lines += [
            f"      {tissue}:",
            f"        expression: {expression_path(tissue)}",
            "        expression_format: bed",
            f"        covariates: {covariates_path(tissue)}",
            "        expression_corrected_upstream: true # PEER factors (InferredCov*) from all donors",
            "        tracks:",
        ]
        for model in MODELS:
            r = by_model[model]
            descs = r["descriptions"].split(" | ")
            note = " | ".join(dict.fromkeys(descs))  # repeated descriptions once
            if len(descs) > 1 and len(set(descs)) == 1:
                note += f" (x{len(descs)})"
            sel = selectors(r)
            if all(d in str(s) for d, s in zip(descs, sel, strict=True)):  # identifiers say it
                lines.append(f"          {model}: {_flow(sel)}")
            else:
                lines.append(f"          {model}: {_flow(sel)} # {note}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    start = text.index(BEGIN)
    stop = text.index(END, start) + len(END) + 1
    return text[:start] + block + text[stop:]


def main(argv: list[str]) -> int:
    text = PRESET.read_text()
    new = replace_block(text, tissue_blocks(read_table()))
    if "--check" in argv:
        if new != text:
            print(f"{PRESET} is stale: run python -m tests.gtex_tracks", file=sys.stderr)
            return 1
        return 0
    PRESET.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
