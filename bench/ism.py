"""Benchmark: ISM variants/s with and without reference reuse (hapexp.models.enformer.ism_reuse), one run.

(a) full forwards: every single-variant sequence through the whole model (reuse off);
(b) reuse: the reference's stem + conv tower once per gene, per variant only the bins
    within its receptive field, then the transformer and head in full.
Both through the same engine (hapexp.engine.ism.gene_values: the scoring work, without the
precision audit), same model, same variants, alternated (a, b, a, b) and each timed at
its best; read-outs and scores compared.

CPU, enformer_tiny on a simulated cohort (msprime, 100 people, real haplotype index):
    nice .venv/bin/python bench/ism.py
CPU or GPU, full-size Enformer architecture (196,608 bp, random weights) on synthetic
SNVs around a random reference (a few variants on CPU: a forward takes ~a minute):
    nice .venv/bin/python bench/ism.py --full --variants 4
    python bench/ism.py --full --device cuda --variants 256 --precision bf16

Prints a markdown block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from hapexp.engine import ism  # noqa: E402


class SyntheticVariants:
    """The HaplotypeIndex calls ISM makes, on a random reference with random SNVs near the TSS."""

    def __init__(self, n_genes, n_variants, length, spread, seed=0):
        rng = np.random.default_rng(seed)
        self.genes = pd.DataFrame(
            {"gene_id": [f"G{g:03d}" for g in range(n_genes)], "tss": 1_000_000, "strand": "+"}
        )
        self.length, self._ref, self._var = length, {}, {}
        acgt = np.frombuffer(b"ACGT", np.uint8)
        for gid in self.genes["gene_id"]:
            ref = rng.choice(acgt, length)
            pos = np.sort(
                rng.choice(np.arange(length // 2 - spread, length // 2 + spread), n_variants, replace=False)
            )
            alt = acgt[(np.searchsorted(acgt, ref[pos]) + rng.integers(1, 4, n_variants)) % 4]
            self._ref[gid] = ref
            self._var[gid] = pd.DataFrame(
                {
                    "variant_id": [f"v{p}" for p in pos],
                    "chrom": "1",
                    "pos": 1_000_000 - length // 2 + pos + 1,
                    "ref": [chr(c) for c in ref[pos]],
                    "alt": [chr(c) for c in alt],
                    "af": 0.3,
                    "is_snv": True,
                    "p0": pos,
                    "alt_code": alt,
                }
            )

    def variants(self, gene_id, length):
        return self._var[gene_id]

    def reference_window(self, gene_id, length, rc_minus=True):
        return self._ref[gene_id], length // 2

    def single_variant_sequences(self, gene_id, length, ids, rc_minus=True):
        v = self._var[gene_id].set_index("variant_id").loc[ids]
        out = np.repeat(self._ref[gene_id][None], len(ids), 0)
        out[np.arange(len(ids)), v["p0"].to_numpy()] = v["alt_code"].to_numpy()
        return out


def demo_index(window: int):
    from hapexp.demo.simulate import simulate_demo
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.normalize import normalize

    d = Path(tempfile.mkdtemp(prefix="hapexp-bench-ism-"))
    simulate_demo(d, seed=7, n_individuals=100, n_chromosomes=1, chromosome_length=200_000, n_genes=12)
    genes = pd.read_csv(d / "genes.tsv", sep="\t")
    normalize([str(d / "cohort.vcf.gz")], d / "reference.fa", d / "norm.bcf")
    build_index(d / "norm.bcf", d / "reference.fa", genes, window, d / "idx.npz")
    return HaplotypeIndex.load(d / "idx.npz")


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def raw_scores(index, readout, spec: dict, cfg: dict) -> pd.DataFrame:
    """alt − ref read-out of every variant, gene by gene (hapexp.engine.ism.gene_values): the
    scoring work itself, without the precision audit or the noise floor."""
    frames = []
    for _, gene in index.genes.iterrows():
        raw = ism.gene_values(index, gene, readout, int(spec["window"]), True, cfg["maf"], cfg["indels"])
        if raw is not None:
            v, alt, ref = raw
            frames.append(pd.DataFrame({"variant_id": v["variant_id"].to_numpy(), "alt": alt, "ref": ref}))
    df = pd.concat(frames, ignore_index=True)
    df["score"] = df["alt"] - df["ref"]
    return df


def run(args) -> dict:
    device = args.device
    if args.full:
        spec = {"kind": "enformer", "weights": "random", "window": 196608, "tracks": [5110], "bins": 3}
    else:
        spec = {"kind": "enformer_tiny", "window": 2048, "tracks": [0], "bins": 2}
    spec.update(device=device, seed=0, precision=args.precision, batch_size=args.batch_size,
                compile=False, name="bench")  # fmt: skip
    if args.full:
        index = SyntheticVariants(args.genes, args.variants, spec["window"], spread=args.spread)
    else:
        index = demo_index(spec["window"])
    cfg = {"maf": 0.01, "indels": args.indels}
    from hapexp.engine.predictor import Predictor

    predictor = Predictor(spec)  # one model in memory for both ways
    readers = {
        way: ism.EngineReadout(spec, reuse=way == "reuse", predictor=predictor) for way in ("full", "reuse")
    }
    if args.warmup:  # allocator, kernels: on the first gene's reference
        ref, tss = index.reference_window(index.genes["gene_id"].iloc[0], spec["window"])
        for r in readers.values():
            with r.reusing(np.asarray(ref)):
                r(np.repeat(np.asarray(ref)[None], 2, 0), tss)
    times = {"full": [], "reuse": []}
    out = {}
    prep = []
    for _ in range(args.repeats):
        for way in ("full", "reuse"):
            p0 = predictor.reuse.stats["prepare_s"] if predictor.reuse else 0.0
            df, t = timed(lambda way=way: raw_scores(index, readers[way], spec, cfg))
            times[way].append(t)
            out[way] = df
            if way == "reuse" and predictor.reuse:
                prep.append(predictor.reuse.stats["prepare_s"] - p0)
    n = len(out["full"])
    a, b = out["full"], out["reuse"]
    return {
        "spec": spec,
        "n_variants": n,
        "n_genes": len(index.genes),
        "t_full": min(times["full"]),
        "t_reuse": min(times["reuse"]),
        "t_prepare": prep[int(np.argmin(times["reuse"]))] if prep else 0.0,
        "max_rel_readout_diff": float((np.abs(a["alt"] - b["alt"]) / np.abs(a["alt"])).max()),
        "max_score_diff_rel_ref": float((np.abs(a["score"] - b["score"]) / np.abs(a["ref"])).max()),
        "stats": dict(predictor.reuse.stats) if predictor.reuse else {},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--full", action="store_true", help="full-size Enformer (196,608 bp), random weights")
    ap.add_argument("--genes", type=int, default=1, help="--full: genes")
    ap.add_argument("--variants", type=int, default=4, help="--full: SNVs per gene")
    ap.add_argument("--spread", type=int, default=50_000, help="--full: SNVs within ± this of the TSS")
    ap.add_argument("--indels", action="store_true", help="demo: score indels too")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="alternations of (a) and (b); best time kept")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the warm-up (CPU --full)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    r = run(args)
    dev = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    model = "Enformer full-size architecture, random weights" if args.full else "enformer_tiny"
    rate_a, rate_b = r["n_variants"] / r["t_full"], r["n_variants"] / r["t_reuse"]
    print(f"\n### ISM with vs without reference reuse ({model}, {args.device}, {args.precision})\n")
    print(f"Device: {dev}; torch {torch.__version__}, {args.threads} threads; batch {args.batch_size}. "
          f"{r['n_variants']} variants in {r['n_genes']} genes (+ one reference each); best of {args.repeats} "
          f"alternating runs.\n")  # fmt: skip
    print("| way | time (s) | variants/s | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| (a) full forward per variant | {r['t_full']:.2f} | {rate_a:.3g} | 1.0× |")
    print(f"| (b) reference reuse | {r['t_reuse']:.2f} | {rate_b:.3g} | **{rate_b / rate_a:.2f}×** |")
    # Per variant, the once-per-gene reference pass aside (real genes have hundreds of variants):
    n, g = r["n_variants"], r["n_genes"]
    per_a = r["t_full"] / (n + g)  # every sequence (references too) is one full forward
    per_b = (r["t_reuse"] - r["t_prepare"]) / (n + g)
    print(f"| (b) per variant, without the reference pass ({r['t_prepare']:.2f} s per run) | "
          f"{per_b * (n + g):.2f} | {1 / per_b:.3g} | {per_a / per_b:.2f}× |")  # fmt: skip
    print(f"\n(a) vs (b): max relative difference of the variants' read-outs {r['max_rel_readout_diff']:.2e}; "
          f"max |score (a) − score (b)| / |reference read-out| {r['max_score_diff_rel_ref']:.2e}. "
          f"Engine forwards (counted per sequence, references included): {r['stats']}.")  # fmt: skip
    return r


if __name__ == "__main__":
    main()
