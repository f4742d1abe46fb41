"""Benchmark: personal haplotype sequences — bcftools consensus loop vs GenVarLoader vs hapexp.

Simulates a cohort with msprime (Ne=20,000 (human nucleotide diversity ~1e-3), mu=1.25e-8, r=1e-8; 10 % of
sites turned into indels of realistic lengths), one TSS every 200 kb, windows of
L = 196,608, then measures in one run, each method in its own child process:

  (a) the anchors' loop: one `bcftools consensus -s SAMPLE -H 1|2` call per gene x
      sample x haplotype on a region FASTA, output written to disk. Run on a subset
      of calls; haplotypes/s is extrapolated per call (stated in the output).
  (b) GenVarLoader, if importable from a separate venv (--gvl-python).
  (c) hapexp: build the chunked compact index (rule `haplotypes`) and rebuild every
      haplotype of every gene in memory, in batches (iter_gene_haplotypes).

Peak RSS per method comes from the child's getrusage. hapexp is also run on a
subset of the cohort to show that its peak memory does not grow with cohort size.

Usage: nice python bench/haplotypes.py [--individuals 500 --genes 100 --length 196608]
Prints a markdown block (append it to bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

SPACING = 200_000


# ---------------------------------------------------------------- simulation
def simulate(workdir: Path, n_ind: int, n_genes: int, length: int, seed: int) -> dict:
    import msprime
    import pandas as pd

    seq_len = SPACING * (n_genes + 1)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    ts = msprime.sim_ancestry(
        samples=n_ind,
        ploidy=2,
        population_size=20_000,
        sequence_length=seq_len,
        recombination_rate=1e-8,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=1.25e-8, random_seed=seed, discrete_genome=True)
    ref = rng.choice(np.frombuffer(b"ACGT", np.uint8), size=seq_len, p=[0.3, 0.2, 0.2, 0.3])
    fa = workdir / "reference.fa"
    with open(fa, "wb") as f:
        f.write(b">chr1\n")
        for i in range(0, seq_len, 60):
            f.write(ref[i : i + 60].tobytes() + b"\n")
    pos, gts = [], []
    for v in ts.variants():
        if len(v.site.mutations) != 1 or v.site.position < 1 or v.site.position >= seq_len - 50:
            continue
        pos.append(int(v.site.position))
        gts.append((v.genotypes > 0).astype(np.uint8))
    pos = np.array(pos)
    G = np.array(gts, dtype=np.uint8)  # [sites, 2 * n_ind], haplotype order = sample x ploidy
    # Alleles: 90 % SNVs, 5 % deletions (1-20 bp, geometric), 5 % insertions (1-10 bp).
    kind = rng.choice(3, size=len(pos), p=[0.9, 0.05, 0.05])
    dlen = np.minimum(rng.geometric(0.35, len(pos)), 20)
    ilen = np.minimum(rng.geometric(0.45, len(pos)), 10)
    lines = []
    for i, p in enumerate(pos):  # p is 0-based
        r = chr(ref[p])
        if kind[i] == 0:
            alt = "ACGT".replace(r, "")[rng.integers(3)]
            refa = r
        elif kind[i] == 1:
            refa, alt = ref[p : p + 1 + dlen[i]].tobytes().decode(), r
        else:
            refa, alt = r, r + rng.choice(list("ACGT"), ilen[i]).astype(object).sum()
        lines.append(f"chr1\t{p + 1}\t.\t{refa}\t{alt}\t.\tPASS\t.\tGT\t")
    a = G.reshape(len(pos), n_ind, 2)
    tok = np.empty((len(pos), n_ind, 4), dtype=np.uint8)
    tok[:, :, 0] = a[:, :, 0] + ord("0")
    tok[:, :, 1] = ord("|")
    tok[:, :, 2] = a[:, :, 1] + ord("0")
    tok[:, :, 3] = ord("\t")
    tok[:, -1, 3] = ord("\n")
    samples = [f"I{i:04d}" for i in range(n_ind)]
    vcf = workdir / "cohort.vcf.gz"
    hdr = (
        "##fileformat=VCFv4.2\n"
        f"##contig=<ID=chr1,length={seq_len}>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n"
    )
    with open(vcf, "wb") as f:
        p = subprocess.Popen(["bgzip", "-c"], stdin=subprocess.PIPE, stdout=f)
        p.stdin.write(hdr.encode())
        for i in range(len(pos)):
            p.stdin.write(lines[i].encode() + tok[i].tobytes())
        p.stdin.close()
        p.wait()
    subprocess.run(["tabix", "-f", str(vcf)], check=True)
    tss = SPACING * (np.arange(n_genes) + 1) + rng.integers(-5000, 5000, n_genes)
    genes = pd.DataFrame(
        {
            "gene_id": [f"G{i:04d}" for i in range(n_genes)],
            "name": [f"g{i}" for i in range(n_genes)],
            "chrom": "chr1",
            "tss": tss,
            "strand": np.where(rng.random(n_genes) < 0.5, "+", "-"),
        }
    )
    genes.to_csv(workdir / "genes.tsv", sep="\t", index=False)
    from hapexp.inputs.genes import gene_regions
    from hapexp.variants.normalize import normalize

    t1 = time.perf_counter()
    normalize([str(vcf)], fa, workdir / "normalized.bcf", regions=gene_regions(genes, length // 2 + 50_000))
    t2 = time.perf_counter()
    in_win = sum(int(((pos >= t - 1 - length // 2) & (pos < t - 1 + length // 2)).sum()) for t in tss)
    return {
        "sites": len(pos),
        "indels": int((kind > 0).sum()),
        "variants_per_window": in_win / n_genes,
        "simulate_s": t1 - t0,
        "normalize_s": t2 - t1,
        "samples": samples,
    }


# ---------------------------------------------------------------- methods (children)
def _rss_mb(children=False) -> float:
    """Peak RSS (MB) of this process (VmHWM: reset by exec, unlike ru_maxrss, which
    would report the forking parent's size) or the largest child waited for."""
    if children:
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bcftools(workdir: Path, length: int, n_calls: int, seed: int) -> dict:
    """The anchors' loop on a random subset of (gene, sample, haplotype) calls.

    Each call is timed on the cohort's VCF.gz (what the anchors ran on) and on the
    normalized BCF, interleaved so that both see the same machine load.
    """
    import pandas as pd
    import pysam

    from hapexp.variants.files import vcf_samples
    from hapexp.variants.windows import window_bounds

    genes = pd.read_csv(workdir / "genes.tsv", sep="\t")
    samples = vcf_samples(workdir / "normalized.bcf")
    rng = np.random.default_rng(seed)
    out = workdir / "bcftools_out"
    out.mkdir(exist_ok=True)
    fa = pysam.FastaFile(str(workdir / "reference.fa"))
    calls = list(
        zip(
            rng.integers(len(genes), size=n_calls).tolist(),
            rng.integers(len(samples), size=n_calls).tolist(),
            rng.integers(1, 3, size=n_calls).tolist(),
            strict=True,
        )
    )
    files = {"vcf": "cohort.vcf.gz", "bcf": "normalized.bcf"}
    spent = dict.fromkeys(files, 0.0)
    for k, (g, si, h) in enumerate(calls):
        row = genes.iloc[g]
        for key, name in files.items():
            t0 = time.perf_counter()
            w0, w1 = window_bounds(row.tss, row.strand, length)
            reg = out / f"{row.gene_id}.fa"  # what `samtools faidx ref region` pipes in
            reg.write_text(f">{row.chrom}:{w0 + 1}-{w1}\n{fa.fetch(row.chrom, w0, w1)}\n")
            cmd = [
                "bcftools",
                "consensus",
                "-f",
                str(reg),
                "-s",
                samples[si],
                "-H",
                str(h),
                str(workdir / name),
            ]
            with open(out / f"{k}.{key}.fa", "w") as fh:
                subprocess.run(cmd, stdout=fh, stderr=subprocess.DEVNULL, check=True)
            spent[key] += time.perf_counter() - t0
    # A child's ru_maxrss includes the Python it was forked from: an upper bound.
    rss = _rss_mb(True)
    return {
        key: {"calls": n_calls, "seconds": spent[key], "hap_per_s": n_calls / spent[key], "peak_rss_mb": rss}
        for key in files
    }


def run_hapexp(workdir: Path, length: int, n_samples: int | None, chunk: int) -> dict:
    import pandas as pd

    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.files import vcf_samples

    genes = pd.read_csv(workdir / "genes.tsv", sep="\t")
    samples = vcf_samples(workdir / "normalized.bcf")[:n_samples]
    t_build = t_rec = 0.0
    n_hap = n_unique = 0
    disk = 0
    for c0 in range(0, len(genes), chunk):  # streamed by chunk, as the workflow runs
        part = genes.iloc[c0 : c0 + chunk]
        path = workdir / f"idx_{n_samples}_{c0}.npz"
        t0 = time.perf_counter()
        build_index(workdir / "normalized.bcf", workdir / "reference.fa", part, length, path, samples=samples)
        t1 = time.perf_counter()
        idx = HaplotypeIndex.load(path)
        for gid in idx.genes.gene_id:
            it = idx.iter_gene_haplotypes(gid, length, batch_size=64)
            gh = next(it)
            for _rows, seqs in it:
                n_unique += len(seqs)
            n_hap += gh.hap_map.size
        t_rec += time.perf_counter() - t1
        t_build += t1 - t0
        disk += path.stat().st_size
        path.unlink()
    return {
        "samples": len(samples),
        "haplotypes": n_hap,
        "unique": n_unique,
        "build_s": t_build,
        "rebuild_s": t_rec,
        "hap_per_s": n_hap / (t_build + t_rec),
        "hap_per_s_rebuild": n_hap / t_rec,
        "index_mb": disk / 1e6,
        "peak_rss_mb": max(_rss_mb(), _rss_mb(True)),
    }


GVL_SCRIPT = r"""
import json, resource, sys, time
import numpy as np, polars as pl
import genvarloader as gvl
from genoray import VCF
wd, length = sys.argv[1], int(sys.argv[2])
g = pl.read_csv(f"{wd}/genes.tsv", separator="\t")
half = length // 2
shift = (g["strand"] == "-").cast(pl.Int64)  # same windows as hapexp (docs/architecture.md)
bed = pl.DataFrame({"chrom": g["chrom"], "chromStart": g["tss"] - 1 - half + shift,
                    "chromEnd": g["tss"] - 1 + half + shift, "strand": g["strand"]})
t0 = time.perf_counter()
gvl.write(f"{wd}/gvl.ds", bed, variants=VCF(f"{wd}/normalized.bcf"), overwrite=True)
t1 = time.perf_counter()
ds = gvl.Dataset.open(f"{wd}/gvl.ds", reference=f"{wd}/reference.fa").with_seqs("haplotypes").with_len(length)
ds[0, 0]  # numba JIT compilation, excluded from the timing
t2 = time.perf_counter()
n = 0
for r in range(ds.n_regions):
    x = ds[r, :]
    n += x.shape[0] * x.shape[1]
t3 = time.perf_counter()
print(json.dumps({"haplotypes": n, "build_s": t1 - t0, "jit_s": t2 - t1, "rebuild_s": t3 - t2,
                  "hap_per_s": n / (t1 - t0 + t3 - t2), "hap_per_s_rebuild": n / (t3 - t2),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(method: str, args) -> dict:
    """Run one method in a fresh interpreter so that its peak RSS is its own."""
    name, _, n = method.partition(":")
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--workdir",
        str(args.workdir),
        "--length",
        str(args.length),
    ]
    cmd += [
        "--bcftools-calls",
        str(args.bcftools_calls),
        "--chunk",
        str(args.chunk),
        "--seed",
        str(args.seed),
    ]
    if n and name == "hapexp":
        cmd += ["--n-samples", n]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--individuals", type=int, default=500)
    ap.add_argument("--genes", type=int, default=100)
    ap.add_argument("--length", type=int, default=196_608)
    ap.add_argument("--bcftools-calls", type=int, default=150)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--gvl-python", default=os.environ.get("GVL_PYTHON"))
    ap.add_argument("--child", default=None)
    ap.add_argument("--n-samples", type=int, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse the simulation in --workdir")
    args = ap.parse_args()
    if args.child:
        if args.child == "bcftools":
            res = run_bcftools(args.workdir, args.length, args.bcftools_calls, args.seed)
        else:
            res = run_hapexp(args.workdir, args.length, args.n_samples, args.chunk)
        print(json.dumps(res))
        return
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="hapexp-bench-")
        args.workdir = Path(tmp.name)
    args.workdir.mkdir(parents=True, exist_ok=True)
    simfile = args.workdir / "simulation.json"
    if args.reuse and simfile.exists():
        sim = json.loads(simfile.read_text())
    else:
        sim = simulate(args.workdir, args.individuals, args.genes, args.length, args.seed)
        sim.pop("samples")
        simfile.write_text(json.dumps(sim))
    print(
        f"simulated {sim['sites']} sites ({sim['indels']} indels), {sim['variants_per_window']:.0f} per window; "
        f"msprime+VCF {sim['simulate_s']:.0f} s, normalize {sim['normalize_s']:.0f} s",
        file=sys.stderr,
    )
    # The anchors ran consensus on the cohort's bgzipped VCF; on our normalized BCF
    # bcftools decodes genotypes faster, so both are measured.
    bc = child("bcftools", args)
    res = {"bcftools": bc["vcf"], "bcftools_bcf": bc["bcf"]}
    print(f"bcftools: {res['bcftools']} / BCF {res['bcftools_bcf']}", file=sys.stderr)
    small = max(args.individuals // 5, 1)
    res["hapexp"] = child(f"hapexp:{args.individuals}", args)
    print(f"hapexp: {res['hapexp']}", file=sys.stderr)
    res["hapexp_small"] = child(f"hapexp:{small}", args)
    gvl_note = "not run (no --gvl-python)"
    if args.gvl_python:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(GVL_SCRIPT)
        r = subprocess.run(
            [args.gvl_python, f.name, str(args.workdir), str(args.length)], capture_output=True, text=True
        )
        if r.returncode == 0:
            res["gvl"] = json.loads(r.stdout.strip().splitlines()[-1])
            res["gvl_version"] = subprocess.run(
                [args.gvl_python, "-c", "import genvarloader as g; print(g.__version__)"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            print(f"gvl: {res['gvl']}", file=sys.stderr)
        else:
            gvl_note = "failed: " + r.stderr.strip().splitlines()[-1][:300]
    b, h, hs = res["bcftools"], res["hapexp"], res["hapexp_small"]
    n_hap_total = args.genes * 2 * args.individuals
    print(f"\n### Haplotypes (`bench/haplotypes.py`), L = {args.length:,}\n")
    print(
        f"Cohort: msprime, {args.individuals} individuals x {args.genes} genes ({n_hap_total:,} haplotype windows), "
        f"{sim['sites']:,} sites ({sim['indels']:,} indels), {sim['variants_per_window']:.0f} variants per window.\n"
    )
    print("| method | haplotypes/s | x bcftools loop | peak RSS (MB) | notes |")
    print("| --- | ---: | ---: | ---: | --- |")
    print(
        f"| (a) bcftools consensus loop, cohort VCF.gz (as the anchors ran it) | {b['hap_per_s']:.1f} | 1 | "
        f"{b['peak_rss_mb']:.0f} | {b['calls']} calls timed, extrapolated per haplotype: "
        f"{n_hap_total / b['hap_per_s'] / 3600:.1f} h for the cohort |"
    )
    bb = res["bcftools_bcf"]
    print(
        f"| (a') bcftools consensus loop, normalized BCF | {bb['hap_per_s']:.1f} | "
        f"{bb['hap_per_s'] / b['hap_per_s']:.1f} | {bb['peak_rss_mb']:.0f} | {bb['calls']} calls, extrapolated |"
    )
    if "gvl" in res:
        g = res["gvl"]
        print(
            f"| (b) GenVarLoader {res['gvl_version']} (write + read) | {g['hap_per_s']:.0f} | "
            f"{g['hap_per_s'] / b['hap_per_s']:.0f} | {g['peak_rss_mb']:.0f} | write {g['build_s']:.1f} s + "
            f"read {g['rebuild_s']:.1f} s (+ {g['jit_s']:.1f} s numba JIT, excluded) |"
        )
        print(
            f"| (b) GenVarLoader read only | {g['hap_per_s_rebuild']:.0f} | "
            f"{g['hap_per_s_rebuild'] / b['hap_per_s']:.0f} | | from its dataset |"
        )
        print(
            f"| hapexp vs GenVarLoader | {h['hap_per_s'] / g['hap_per_s']:.2f}x | | | "
            f"rebuild only: {h['hap_per_s_rebuild'] / g['hap_per_s_rebuild']:.2f}x |"
        )
    else:
        print(f"| (b) GenVarLoader | – | – | – | {gvl_note} |")
    print(
        f"| (c) hapexp (index + rebuild) | {h['hap_per_s']:.0f} | {h['hap_per_s'] / b['hap_per_s']:.0f} | {h['peak_rss_mb']:.0f} | build {h['build_s']:.1f} s + rebuild {h['rebuild_s']:.1f} s; {h['unique']:,} unique of {h['haplotypes']:,}; index {h['index_mb']:.1f} MB; "
        f"{h['hap_per_s'] / bb['hap_per_s']:.0f}x the BCF loop |"
    )
    print(
        f"| (c) hapexp rebuild only | {h['hap_per_s_rebuild']:.0f} | {h['hap_per_s_rebuild'] / b['hap_per_s']:.0f} | | "
        f"from the index, as inference runs; {h['hap_per_s_rebuild'] / bb['hap_per_s']:.0f}x the BCF loop |"
    )
    print(
        f"| (c) hapexp, {hs['samples']} individuals | {hs['hap_per_s']:.0f} | | {hs['peak_rss_mb']:.0f} | peak memory vs {h['samples']} individuals: {h['peak_rss_mb']:.0f} MB |"
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
