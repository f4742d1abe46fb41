"""Benchmark: the precision budget of a reduced precision against strict fp32 (hapexp.engine.precision).

Runs the audit of `predict` and of `ism` on every gene (fraction 1) of a simulated
cohort (msprime, 100 people, 12 genes, real haplotype index) and prints the budget per
gene and its summary, as written to precision.tsv by the workflow:
    nice .venv/bin/python bench/precision.py                 # enformer_tiny, bf16 autocast, CPU
    python bench/precision.py --device cuda --precision tf32
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from hapexp.engine import ism, precision  # noqa: E402
from hapexp.engine.audit import audit_predict  # noqa: E402
from hapexp.engine.predictor import Predictor  # noqa: E402


def _bench_ism():
    spec = importlib.util.spec_from_file_location("bench_ism", ROOT / "bench" / "ism.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="bf16", choices=["bf16", "tf32"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    index = _bench_ism().demo_index(2048)
    spec = {"kind": "enformer_tiny", "window": 2048, "tracks": [0], "bins": 2, "device": args.device,
            "precision": args.precision, "batch_size": 64, "seed": 0, "name": "enformer_tiny"}  # fmt: skip
    cfg = {"fraction": 1.0}
    t = time.perf_counter()
    pred = Predictor(spec)
    table = audit_predict(index, pred, cfg, model="enformer_tiny")
    _, it = ism.score_chunk(index, ism.EngineReadout(spec, predictor=pred), spec, {"maf": 0.01}, cfg,
                            model="enformer_tiny", return_audit=True)  # fmt: skip
    both = pd.concat([table, it], ignore_index=True)
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({platform.machine()})"
    print(
        f"\n### Precision budget: enformer_tiny in {args.precision} vs strict fp32 ({dev}, torch {torch.__version__})\n"
    )
    print(f"Simulated cohort: {len(index.genes)} genes × {len(index.samples)} people, every gene audited "
          f"({time.perf_counter() - t:.0f} s).\n")  # fmt: skip
    print(precision.summarize(both).to_markdown(index=False, floatfmt=".3g"))
    cols = ["stage", "gene_id", "n", "noise_sd", "signal_sd", "noise_ratio", "r_fp32", "sign_agreement",
            "frac_unresolved", "max_rel_diff", "flagged"]  # fmt: skip
    print("\n" + both[cols].to_markdown(index=False, floatfmt=".3g"))
    floor = it["noise_floor"].iloc[0]
    # The same ISM scores under the former fixed rule (|alt − ref| ≤ 1 % of |ref| → 0)
    # and under the measured floor, against strict fp32.
    bism = _bench_ism()
    red = bism.raw_scores(
        index, ism.EngineReadout(spec, predictor=pred), spec, {"maf": 0.01, "indels": False}
    )
    with pred.strict():
        ref = bism.raw_scores(
            index, ism.EngineReadout(spec, predictor=pred), spec, {"maf": 0.01, "indels": False}
        )
    real = np.abs(ref["score"]) > precision.STATIC_FLOOR["fp32"] * np.abs(ref["ref"])
    lines = []
    for label, f in (("former fixed 1 %", 0.01), (f"measured floor {floor:.3g}", floor)):
        kept = np.abs(red["score"]) > f * np.abs(red["ref"])
        flip = kept & real & (np.sign(red["score"]) != np.sign(ref["score"]))
        lines.append(
            f"| {label} | {100 * (~kept).mean():.1f} % | {100 * flip.sum() / max(kept.sum(), 1):.1f} % |"
        )
    print(f"\nISM noise floor: {floor:.3g} × |reference read-out|. {len(red)} SNVs, bf16 vs strict fp32:\n")
    print("| rule | scores unresolved (0 before, NaN now) | sign flipped among those kept |")
    print("| --- | ---: | ---: |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
