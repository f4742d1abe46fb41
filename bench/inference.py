"""Benchmark: the anchors' inference vs hapexp's engine, same model and data, one run.

(a) anchors: batch 1, fp32, every haplotype of every person run separately;
(b) hapexp: unique haplotypes only, batched (sequences of consecutive genes share
    batches), bf16 autocast on GPU, optional torch.compile.

CPU (default): `enformer_tiny` on the simulated demo cohort (100 people × 30 genes,
2 kb windows, real haplotype index):
    nice .venv/bin/python bench/inference.py
GPU: the full-size Enformer architecture (196,608 bp, random weights: speed only)
on synthetic haplotypes, with model FLOP utilization, GPU busy fraction and peak memory
(engine defaults on CUDA: compiled, sdpa attention, prefetch, batch from free memory):
    python bench/inference.py --device cuda --full --founders 1000
    python bench/inference.py --device cuda --full --compile off --attention reference --prefetch 0 --batch-size 16
bench/gpu_engine.sh runs every GPU measurement of the engine (issue 14) side by side.

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
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from hapexp.engine.predict import predict_chunk  # noqa: E402
from hapexp.engine.predictor import Predictor  # noqa: E402

# Dense peak TFLOPS (no sparsity) by GPU name: (bf16 tensor core, TF32 tensor core, fp32).
PEAK_TFLOPS = {
    "H200": (989.0, 494.0, 67.0),
    "H100 PCIe": (756.0, 378.0, 51.0),
    "H100": (989.0, 494.0, 67.0),  # SXM
    "A100": (312.0, 156.0, 19.5),
    "L40S": (362.0, 183.0, 91.6),
    "A10": (125.0, 62.5, 31.2),
}


class SyntheticIndex:
    """HaplotypeIndex interface: random reference, common SNVs, people drawn from a few founders.

    Founder haplotypes with recombination-free copying give a realistic number of
    unique haplotypes per gene (tunable with --founders), for windows of any length.
    Like the real index, sequences are rendered when a gene is asked for (so that the
    engine's prefetch thread has the rendering to overlap), not stored.
    """

    def __init__(self, n_genes, n_samples, length, n_snvs, n_founders, seed=0):
        rng = np.random.default_rng(seed)
        self.samples = [f"S{i:04d}" for i in range(n_samples)]
        self.genes = pd.DataFrame({"gene_id": [f"G{g:03d}" for g in range(n_genes)]})
        self.length, self._data = length, {}
        acgt = np.frombuffer(b"ACGT", np.uint8)
        for gid in self.genes["gene_id"]:
            ref = rng.choice(acgt, length)
            pos = rng.choice(length, n_snvs, replace=False)
            founders = rng.random((n_founders, n_snvs)) < rng.uniform(0.05, 0.5, n_snvs)
            pick = rng.integers(0, n_founders, size=(n_samples, 2))
            uniq_f, inv = np.unique(founders[pick.reshape(-1)], axis=0, return_inverse=True)
            alt = np.frombuffer(b"CGTA", np.uint8)[np.searchsorted(acgt, ref[pos])]
            self._data[gid] = (uniq_f, pos, alt, inv.reshape(n_samples, 2).astype(np.int32), ref)

    def gene_haplotypes(self, gene_id, length, rc_minus=True):
        uniq_f, pos, alt, hap_map, ref = self._data[gene_id]
        seqs = np.repeat(ref[None], len(uniq_f), 0)
        for h, row in enumerate(uniq_f):
            seqs[h, pos[row]] = alt[row]
        return SimpleNamespace(
            sequences=seqs, hap_map=hap_map, reference=ref, tss_index=length // 2, flipped=False
        )


def demo_index(window: int):
    """The simulated demo cohort's haplotype index (resources/demo if present, else simulated)."""
    from hapexp.demo.simulate import simulate_demo
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.normalize import normalize

    demo = Path("resources/demo")
    if not (demo / "cohort.vcf.gz").exists():
        demo = Path(tempfile.mkdtemp(prefix="hapexp-bench-"))
        t = time.perf_counter()
        simulate_demo(demo, seed=7)
        print(f"(simulated the demo cohort in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
    genes = pd.read_csv(demo / "genes.tsv", sep="\t")
    tmp = Path(tempfile.mkdtemp(prefix="hapexp-bench-"))
    normalize([str(demo / "cohort.vcf.gz")], demo / "reference.fa", tmp / "norm.bcf")  # split multi-allelics
    build_index(tmp / "norm.bcf", demo / "reference.fa", genes, window, tmp / "index.npz")
    out = tmp / "index.npz"
    return HaplotypeIndex.load(out)


def flops_per_sequence(pred: Predictor) -> float:
    """Forward FLOPs of one sequence (torch's FlopCounterMode: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, pred.model.window, 4, device=pred.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        pred.model.forward(x)
    return float(fc.get_total_flops())


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def peak_tflops(kind: str, override: float | None = None) -> float | None:
    """Dense peak of this GPU for bf16 / tf32 / fp32 (None off CUDA or for an unknown GPU)."""
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    hit = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    return hit[{"bf16": 0, "tf32": 1, "fp32": 2}[kind]] if hit else None


def measure(pred: Predictor, index, genes=None, dedup: bool = True, flops: float | None = None, peak=None):
    """Run predict_chunk once after a full-batch warm-up (compiles); sequences/s, GPU busy
    fraction (CUDA events around the forwards / wall), peak GPU memory, MFU."""
    gid = (genes or list(index.genes["gene_id"]))[0]
    warm = index.gene_haplotypes(gid, pred.model.window)
    pred.readout(np.repeat(warm.reference[None], pred.batch_size, 0), warm.tss_index)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    n0, busy0 = pred.n_forward, pred.gpu_busy_s
    (tab, _), t = timed(lambda: predict_chunk(index, pred, genes=genes, dedup=dedup, progress=False))
    n = pred.n_forward - n0
    out = {"table": tab, "sequences": n, "seconds": t, "seq_per_s": n / t, "batch": pred.batch_size,
           "precision": pred.effective_precision, "gpu_busy": (pred.gpu_busy_s - busy0) / t}  # fmt: skip
    if torch.cuda.is_available():
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if flops and peak:
        out["mfu"] = flops * out["seq_per_s"] / (peak * 1e12)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--full", action="store_true", help="full-size Enformer (196,608 bp), random weights")
    ap.add_argument("--data", choices=["demo", "synthetic"], help="default: demo (tiny), synthetic (--full)")
    ap.add_argument("--genes", type=int, default=8, help="synthetic: genes")
    ap.add_argument("--samples", type=int, default=100, help="synthetic: people")
    ap.add_argument("--founders", type=int, default=40, help="synthetic: founder haplotypes (uniqueness)")
    ap.add_argument("--snvs", type=int, default=200, help="synthetic: SNVs per window")
    ap.add_argument(
        "--batch-size", default=None, help="engine batch size or auto (default: 64 tiny, auto full)"
    )
    ap.add_argument(
        "--precision", choices=["fp32", "tf32", "bf16"], help="engine precision (default bf16 on cuda)"
    )
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto", help="engine: torch.compile")
    ap.add_argument("--compile-mode", default="default",
                    choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"])  # fmt: skip
    ap.add_argument("--attention", default="auto", choices=["auto", "reference", "sdpa", "flex"])
    ap.add_argument("--prefetch", type=int, default=2, help="engine: blocks rendered ahead (0: off)")
    ap.add_argument("--baseline-max", type=int, help="time the baseline on the first N haplotypes only")
    ap.add_argument(
        "--strict-fp32-baseline",
        action="store_true",
        help="GPU: baseline without TF32 (default: TF32 on, as TensorFlow/TF-Hub runs fp32 on Ampere+)",
    )
    ap.add_argument("--peak-tflops", type=float, help="GPU peak for MFU (default: looked up by name)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1: oversubscribed shared machines)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    on_gpu = args.device == "cuda"
    precision = args.precision or ("bf16" if on_gpu else "fp32")
    if args.full:
        base = {"kind": "enformer", "weights": "random", "window": 196608, "tracks": [5110], "bins": 3}
        batch = args.batch_size or "auto"
    else:
        base = {"kind": "enformer_tiny", "window": 2048, "tracks": [0], "bins": 2}
        batch = args.batch_size or 64
    batch = batch if batch == "auto" else int(batch)
    base.update(device=args.device, seed=0)
    data = args.data or ("synthetic" if args.full else "demo")
    if data == "demo":
        index = demo_index(base["window"])
    else:
        index = SyntheticIndex(args.genes, args.samples, base["window"], args.snvs, args.founders)
    n_genes, n_samples = len(index.genes), len(index.samples)
    n_hap = 2 * n_samples * n_genes

    # (a) the anchors' way: batch 1, every haplotype (no dedup), uncompiled, enformer-pytorch's
    # attention; fp32, with TF32 on GPUs (what TF-Hub/TensorFlow does on Ampere and newer).
    kind_a = "fp32" if (args.strict_fp32_baseline or not on_gpu) else "tf32"
    anchors = Predictor({**base, "batch_size": 1, "precision": kind_a, "compile": False, "attention": "reference",
                         "prefetch": 0}, name="anchors")  # fmt: skip
    genes = list(index.genes["gene_id"])
    if args.baseline_max:  # enough genes to cover N haplotypes (each gene has 2 × people + 1)
        genes = genes[: max(1, -(-args.baseline_max // (2 * n_samples + 1)))]
    flops = flops_per_sequence(anchors)
    a = measure(
        anchors, index, genes=genes, dedup=False, flops=flops, peak=peak_tflops(kind_a, args.peak_tflops)
    )
    del anchors

    # (b) hapexp's engine.
    compile_ = {"auto": "auto", "on": True, "off": False}[args.compile]
    engine = Predictor({**base, "batch_size": batch, "precision": precision, "compile": compile_,
                        "compile_mode": args.compile_mode, "attention": args.attention, "prefetch": args.prefetch},
                       name="hapexp")  # fmt: skip
    b = measure(engine, index, flops=flops, peak=peak_tflops(precision, args.peak_tflops))
    seq_a, t_a, rate_a = a["sequences"], a["seconds"], a["seq_per_s"]
    seq_b, t_b, rate_b = b["sequences"], b["seconds"], b["seq_per_s"]
    hap_rate_a, hap_rate_b = rate_a * n_hap / (n_hap + n_genes), n_hap / t_b

    # Same numbers (fp32 runs must agree; bf16 within its precision).
    merged = a["table"].merge(b["table"], on=["gene_id", "sample", "haplotype", "track"])
    rel = np.abs(merged["value_x"] - merged["value_y"]) / np.abs(merged["value_x"]).clip(1e-6)

    dev = torch.cuda.get_device_name() if on_gpu else f"CPU ({platform.processor() or platform.machine()})"
    print(
        f"\n### Inference: anchors' way vs hapexp engine ({'Enformer full-size, random weights' if args.full else 'enformer_tiny'}, {args.device})\n"
    )
    print(f"Device: {dev}; torch {torch.__version__}, {args.threads} threads. Data: {data}, {n_genes} genes × {n_samples} people "
          f"= {n_hap} haplotypes + {n_genes} references → {seq_b} unique sequences run by (b) "
          f"({100 * seq_b / (n_hap + n_genes):.0f} % of {n_hap + n_genes}). Window {base['window']:,} bp; "
          f"{flops / 1e9:.2f} GFLOP per sequence.\n")  # fmt: skip
    print(
        "| way | batch | precision | sequences run | time (s) | sequences/s | haplotypes/s | speed-up (haplotypes/s) |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| (a) anchors: batch 1, {kind_a}, every haplotype | 1 | {kind_a} | {seq_a} | {t_a:.2f} | {rate_a:.1f} | {hap_rate_a:.1f} | 1.0× |")  # fmt: skip
    opts = f"{'compiled ' + args.compile_mode if engine.compile else 'uncompiled'}, attention {args.attention}, prefetch {args.prefetch}"
    print(f"| (b) hapexp: unique only, batched, {opts} | {b['batch']} | {precision} | {seq_b} | {t_b:.2f} | {rate_b:.1f} | {hap_rate_b:.1f} | {hap_rate_b / hap_rate_a:.1f}× |")  # fmt: skip
    print(f"\nPer-sequence throughput alone (batching/precision, no dedup): {rate_b / rate_a:.1f}×; "
          f"dedup alone: {(n_hap + n_genes) / seq_b:.1f}× fewer sequences. "
          f"Max relative difference (a) vs (b) over {len(merged)} read-outs: {rel.max():.2e}.")  # fmt: skip
    if on_gpu:
        for label, r, kind in (("(a)", a, kind_a), ("(b)", b, precision)):
            mfu = f"MFU {100 * r['mfu']:.1f} % of the dense {kind} peak; " if "mfu" in r else ""
            print(
                f"{label}: {mfu}GPU busy {100 * r['gpu_busy']:.0f} % of wall; peak GPU memory {r['peak_gib']:.1f} GiB."
            )
    if seq_a < n_hap + n_genes:
        print(f"(Baseline timed on the first {seq_a} sequences.)")


if __name__ == "__main__":
    main()
