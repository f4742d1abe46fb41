"""Benchmark: 524,288- and 1,048,576-bp windows (Borzoi, AlphaGenome) on CPU memory.

A demo cohort is simulated with `fit_window` (every gene's 1 Mb window on the
chromosome), its haplotype index built once at 1,048,576 bp, and each window length is
run through the engine two ways, each in its own process (peak RSS = that process's
ru_maxrss):

(a) streamed  - `predict_chunk` on the real index: `iter_gene_haplotypes` renders a
                batch of unique haplotypes at a time (what the workflow does);
(b) whole gene - the same engine on an index that only offers `gene_haplotypes`, which
                renders every unique haplotype of a gene at once (the former way).

The model is a cheap stand-in (per-base one-hot averaged over 128-bp bins, 4 tracks) so
that memory and time are those of hapexp, not of a network. Prints a markdown block
for bench/RESULTS.md. Usage:

    nice .venv/bin/python bench/long_windows.py [--people 100] [--genes 3] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

WINDOWS = (524_288, 1_048_576)


def child(mode: str, window: int, index_path: str, batch: int) -> dict:
    import torch

    from hapexp.engine.predict import predict_chunk
    from hapexp.engine.predictor import Predictor
    from hapexp.models.registry import LoadedModel
    from hapexp.sequences.index import HaplotypeIndex

    torch.set_num_threads(1)

    class BinMean(torch.nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1, 128, 4).mean(2)

    idx = HaplotypeIndex.load(index_path)
    if mode == "whole":

        class WholeGene:  # only gene_haplotypes: every unique haplotype of a gene at once
            genes, samples = idx.genes, idx.samples

            def gene_haplotypes(self, gid, length, rc_minus=True):
                return idx.gene_haplotypes(gid, length, rc_minus=rc_minus)

        index = WholeGene()
    else:
        index = idx
    m = LoadedModel(BinMean(), window, 128, 0, 4, ["A", "C", "G", "T"], kind="bench")
    spec = {"kind": "oracle", "window": window, "tracks": [0, 1, 2, 3], "bins": 3, "device": "cpu",
            "batch_size": batch}  # fmt: skip
    p = Predictor(spec, model=m)
    t = time.perf_counter()
    tidy, _ = predict_chunk(index, p, progress=False)
    dt = time.perf_counter() - t
    n_hap = 2 * len(idx.samples) * len(idx.genes)
    return {
        "mode": mode,
        "window": window,
        "seconds": dt,
        "sequences": p.n_forward,
        "haplotypes": n_hap,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checksum": float(tidy["value"].sum()),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=100)
    ap.add_argument("--genes", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "WINDOW", "INDEX"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.child[2], args.batch)))
        return

    from hapexp.demo.simulate import simulate_demo
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.normalize import normalize

    tmp = Path(tempfile.mkdtemp(prefix="hapexp-longwin-"))
    chrom_len = WINDOWS[-1] + 2000 + args.genes * 3 * 2048 + 200_000
    t = time.perf_counter()
    simulate_demo(tmp, seed=11, n_individuals=args.people, n_chromosomes=1, chromosome_length=chrom_len,
                  n_genes=args.genes, fit_window=WINDOWS[-1])  # fmt: skip
    t_sim = time.perf_counter() - t
    genes = pd.read_csv(tmp / "genes.tsv", sep="\t")
    normalize([str(tmp / "cohort.vcf.gz")], tmp / "reference.fa", tmp / "norm.bcf")
    t = time.perf_counter()
    build_index(tmp / "norm.bcf", tmp / "reference.fa", genes, WINDOWS[-1], tmp / "index.npz")
    t_build = time.perf_counter() - t
    idx = HaplotypeIndex.load(tmp / "index.npz")
    ratio = idx.unique_ratio(WINDOWS[-1])
    rows = []
    for window in WINDOWS:
        for mode in ("stream", "whole"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--batch",
                    str(args.batch),
                    "--child",
                    mode,
                    str(window),
                    str(tmp / "index.npz"),
                ],  # fmt: skip
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    df = pd.DataFrame(rows)
    print(f"\n### Long windows (`bench/long_windows.py`), {time.strftime('%Y-%m-%d')}\n")
    print(
        f"Machine: {platform.machine()} {platform.processor() or ''}, 1 thread per run. Cohort: simulated "
        f"(seed 11, fit_window 1,048,576: {args.genes} genes on one {chrom_len:,}-bp chromosome, {args.people} "
        f"people; {int(ratio['n_unique'].sum())} unique of {int(ratio['n_haplotypes'].sum())} haplotypes at 1 Mb), "
        f"simulated in {t_sim:.0f} s; index built once at 1,048,576 bp in {t_build:.1f} s "
        f"({(tmp / 'index.npz').stat().st_size / 1e6:.1f} MB). Model: 128-bp bin means (no network), "
        f"batch {args.batch}.\n"
    )
    print("| window | way | sequences run | seconds | haplotypes/s | peak RSS (MB) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        way = "(a) streamed, a batch at a time" if r["mode"] == "stream" else "(b) whole gene at once"
        print(f"| {r['window']:,} | {way} | {r['sequences']} | {r['seconds']:.1f} | "
              f"{r['haplotypes'] / r['seconds']:.0f} | {r['max_rss_mb']:.0f} |")  # fmt: skip
    for w in WINDOWS:
        a, b = (df[(df.window == w) & (df["mode"] == m)].iloc[0] for m in ("stream", "whole"))
        assert np.isclose(a.checksum, b.checksum, rtol=1e-9), "both ways must give the same predictions"
        print(f"\n{w:,} bp: whole-gene / streamed peak RSS = {b.max_rss_mb / a.max_rss_mb:.2f}x "
              f"(same predictions); a batch of {args.batch} windows is {args.batch * w / 1e6:.1f} MB of "
              f"sequence, {args.batch * w * 16 / 1e6:.0f} MB as float32 one-hot.")  # fmt: skip


if __name__ == "__main__":
    main()
