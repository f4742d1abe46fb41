"""Scale check: a chromosome in 1000 Genomes' shape through the per-chunk rules.

Simulates one chromosome (GRCh37 chr22's length) with `--records` records
(SNVs, indels, 1 % multi-allelic) for `--samples` people (1000 Genomes: 2,504) in
one bgzipped, indexed VCF — allele frequencies from a neutral-like spectrum, so
most records are rare, as in the real file — and a cohort of `--keep` of them
(Geuvadis: 445) with expression for `--genes` genes. Then, each step in its own
child process (wall time and peak RSS from the child's rusage, bcftools children
included):

  normalize_variants   hapexp.variants.normalize.normalize (cohort's samples only, streaming REF
                       check), with `--genes` and a third of them (peak RSS must not
                       grow with the number of genes), and the code before issue 12
                       (all samples through norm/sort, REF check holding every record
                       in memory) on the same input;
  haplotypes / eqtl / elasticnet, one chunk each, at `--chunk-genes` genes and at
                       half and twice that (per-chunk memory follows the chunk's
                       windows, not the cohort's gene count);
  read_dosages         the fixed-width reader vs the per-record `str(rec)` parser it
                       replaced, µs per record on one eQTL chunk.

Usage: nice python bench/scale.py [--records 1050000 --samples 2504 --keep 445]
       python bench/scale.py --quick    (small smoke run)
Prints a markdown block (append it to bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROM, CHROM_LEN = "22", 51_304_566
OLD_COMMIT = "87ce1f9"  # the last commit before issue 12's fixes


# ---------------------------------------------------------------- simulation
def simulate(d: Path, n_records: int, n_samples: int, n_keep: int, n_genes: int, seed: int) -> dict:
    import pandas as pd
    import pysam

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    ref = rng.choice(np.frombuffer(b"ACGT", np.uint8), size=CHROM_LEN)
    with open(d / "ref.fa", "wb") as f:
        f.write(f">{CHROM}\n".encode())
        for i in range(0, CHROM_LEN, 60):
            f.write(ref[i : i + 60].tobytes() + b"\n")
    pysam.faidx(str(d / "ref.fa"))
    samples = [f"HG{i:05d}" for i in range(n_samples)]
    pos = np.unique(rng.integers(10, CHROM_LEN - 20, int(n_records * 1.02)))[:n_records]
    n = len(pos)
    kind = rng.random(n)
    # allele frequency: most records rare (1000 Genomes: half the records have AF < 0.5 %)
    af = np.clip(rng.random(n) ** 4, 1 / (2 * n_samples), 0.5)
    bases = np.frombuffer(b"ACGT", np.uint8)
    template = np.frombuffer(("\t0|0" * n_samples).encode(), np.uint8)
    header = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={CHROM},length={CHROM_LEN}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
    ]
    vcf = d / f"chr{CHROM}.vcf.gz"
    with open(vcf, "wb") as out:
        bg = subprocess.Popen(["bgzip", "-@", "2", "-c"], stdin=subprocess.PIPE, stdout=out)
        bg.stdin.write(("\n".join(header) + "\n").encode())
        buf = []
        for i in range(n):
            p = int(pos[i])
            r = chr(ref[p - 1])
            if kind[i] < 0.90:
                alts = [chr(rng.choice(bases[bases != ref[p - 1]]))]
            elif kind[i] < 0.945:  # insertion
                alts = [r + rng.choice(bases, int(rng.integers(1, 6))).tobytes().decode()]
            elif kind[i] < 0.99:  # deletion
                k = int(rng.integers(1, 6))
                r = ref[p - 1 : p + k].tobytes().decode()
                alts = [r[0]]
            else:  # multi-allelic SNV
                alts = [chr(x) for x in rng.choice(bases[bases != ref[p - 1]], 2, replace=False)]
            gt = template.copy()
            n_car = rng.binomial(2 * n_samples, af[i])
            if n_car:
                h = rng.choice(2 * n_samples, n_car, replace=False)
                allele = ord("1") + (rng.integers(0, len(alts), n_car) if len(alts) > 1 else 0)
                gt[4 * (h // 2) + 1 + 2 * (h % 2)] = allele
            buf.append(
                f"{CHROM}\t{p}\trs{p}\t{r}\t{','.join(alts)}\t.\tPASS\t.\tGT".encode() + gt.tobytes() + b"\n"
            )
            if len(buf) == 2000:
                bg.stdin.write(b"".join(buf))
                buf = []
        bg.stdin.write(b"".join(buf))
        bg.stdin.close()
        bg.wait()
    subprocess.run(["tabix", "-f", "-p", "vcf", str(vcf)], check=True)
    # genes: TSSs spread over the chromosome, both strands; expression for the kept people
    keep = sorted(rng.choice(n_samples, n_keep, replace=False).tolist())
    kept = [samples[i] for i in keep]
    tss = np.sort(rng.choice(np.arange(2_000_000, CHROM_LEN - 2_000_000), n_genes, replace=False))
    genes = pd.DataFrame(
        {
            "gene_id": [f"ENSG{i:011d}" for i in range(n_genes)],
            "name": [f"G{i}" for i in range(n_genes)],
            "chrom": CHROM,
            "tss": tss + 1,
            "strand": rng.choice(["+", "-"], n_genes),
        }
    )
    genes.to_csv(d / "genes.tsv", sep="\t", index=False)
    expr = pd.DataFrame(rng.normal(size=(n_genes, n_keep)), index=genes["gene_id"], columns=kept)
    expr.index.name = "gene_id"
    expr.to_csv(d / "prepared.tsv", sep="\t")
    pd.DataFrame(rng.normal(size=(3, n_keep)), index=["PC1", "PC2", "PC3"], columns=kept).rename_axis(
        "id"
    ).to_csv(d / "covariates.tsv", sep="\t")
    (d / "samples.txt").write_text("\n".join(kept) + "\n")
    return {
        "records": n,
        "samples": n_samples,
        "kept": n_keep,
        "genes": n_genes,
        "vcf_gz_mb": vcf.stat().st_size / 1e6,
        "simulate_s": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------- steps (run in children)
def step_normalize(d, out, n_genes, half, old):
    import pandas as pd

    from hapexp.inputs.genes import gene_regions

    genes = pd.read_csv(d / "genes.tsv", sep="\t", dtype={"chrom": str}).iloc[:n_genes]
    regions = gene_regions(genes, half)
    if old:  # the code before issue 12 (flat package): all samples, REF check holding every record
        from hapexp.vcf import normalize

        return normalize([str(d / f"chr{CHROM}.vcf.gz")], d / "ref.fa", out, regions=regions)
    from hapexp.variants.normalize import normalize

    samples = (d / "samples.txt").read_text().split()
    return normalize(
        [str(d / f"chr{CHROM}.vcf.gz")], d / "ref.fa", out, regions=regions, samples=samples, threads=2
    )


def _chunk(d, first, n):
    import pandas as pd

    genes = pd.read_csv(d / "genes.tsv", sep="\t", dtype={"chrom": str, "gene_id": str})
    return genes.iloc[first : first + n].reset_index(drop=True)


def step_haplotypes(d, bcf, first, n, window):
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex

    genes = _chunk(d, first, n)
    samples = (d / "samples.txt").read_text().split()
    out = Path(bcf).parent / f"h{first}_{n}.npz"
    counts = build_index(bcf, d / "ref.fa", genes, window, out, samples=samples)
    idx = HaplotypeIndex.load(out)
    n_seq = 0
    for gid in idx.genes["gene_id"]:  # rebuild every haplotype, as predict does
        it = idx.iter_gene_haplotypes(gid, window, batch_size=64)
        next(it)
        n_seq += sum(len(rows) for rows, _ in it)
    return {"variants": counts["variants_kept"], "unique_sequences": n_seq}


def step_eqtl(d, bcf, first, n, window):
    from hapexp.io import read_matrix
    from hapexp.linear.eqtl import scan_genes
    from hapexp.variants.genotypes import chunk_dosages

    expr = read_matrix(d / "prepared.tsv")
    cov = read_matrix(d / "covariates.tsv", index_col="id")
    genes = _chunk(d, first, n)
    dos, genes = chunk_dosages(bcf, genes, ("flank", window), list(expr.columns), 0.01)
    nominal, _ = scan_genes(dos, genes, expr, cov, permutations=0, seed=1)
    return {"variants": len(dos), "pairs": len(nominal)}


def step_elasticnet(d, bcf, first, n, window):
    from hapexp.io import read_matrix
    from hapexp.linear.elasticnet import fit_chunk
    from hapexp.variants.genotypes import chunk_dosages

    expr = read_matrix(d / "prepared.tsv")
    genes = _chunk(d, first, n)
    dos, genes = chunk_dosages(bcf, genes, ("flank", window), list(expr.columns), 0.01)
    m, *_ = fit_chunk(dos, genes, expr, alpha=0.5, outer_folds=5, inner_folds=10, seed=42, threads=1)
    return {"variants": len(dos), "genes_fit": int(m["rho_avg"].notna().sum())}


def step_dosages(d, bcf, first, n, window, old):
    if old:  # the code before issue 12 (flat package)
        from hapexp.genotypes import gene_window, read_dosages
    else:
        from hapexp.variants.genotypes import read_dosages
        from hapexp.variants.windows import gene_window

    genes = _chunk(d, first, n)
    samples = (d / "samples.txt").read_text().split()
    regions = [(str(g.chrom), *gene_window(g.tss, g.strand, ("flank", window))) for g in genes.itertuples()]
    t0 = time.perf_counter()
    dos = read_dosages(bcf, regions, samples, 0.0)
    dt = time.perf_counter() - t0
    return {"records": len(dos), "us_per_record": 1e6 * dt / max(len(dos), 1)}


STEPS = {
    "normalize": step_normalize,
    "haplotypes": step_haplotypes,
    "eqtl": step_eqtl,
    "elasticnet": step_elasticnet,
    "dosages": step_dosages,
}


def run_child(step: str, args: list, pythonpath: Path) -> dict:
    """Run one step in a fresh interpreter whose `hapexp` comes from `pythonpath`."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "from pathlib import Path; import scale;"
        "a = json.loads(sys.argv[4]); a = [Path(x) if isinstance(x, str) and x.startswith('/') else x for x in a];"
        "r = scale.STEPS[sys.argv[3]](*a); print(json.dumps(r, default=str))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            str(pythonpath),
            str(ROOT / "bench"),
            step,
            json.dumps(args, default=str),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{err[-3000:]}")
    res = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    res["wall_s"] = wall
    return res


def run_measured(step: str, args: list, pythonpath: Path) -> dict:
    """As run_child, with the peak RSS (MB) of the step's process and its children."""
    # a fresh grandparent per step, so RUSAGE_CHILDREN's max is this step's alone
    code = (
        "import json, resource, sys; sys.path.insert(0, sys.argv[1]);"
        "import scale; r = scale.run_child(sys.argv[2], json.loads(sys.argv[3]), __import__('pathlib').Path(sys.argv[4]));"
        "r['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024; print(json.dumps(r))"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(ROOT / "bench"),
            step,
            json.dumps(args, default=str),
            str(pythonpath),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def old_tree(tmp: Path) -> Path:
    """The package as it was before issue 12 (for the side-by-side rows)."""
    dest = tmp / "old"
    dest.mkdir(exist_ok=True)
    arch = subprocess.run(
        ["git", "-C", str(ROOT), "archive", OLD_COMMIT, "workflow/scripts/hapexp"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch, check=True)
    return dest / "workflow" / "scripts"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_050_000)
    ap.add_argument("--samples", type=int, default=2504)
    ap.add_argument("--keep", type=int, default=445)
    ap.add_argument("--genes", type=int, default=450)
    ap.add_argument("--chunk-genes", type=int, default=10)
    ap.add_argument("--window", type=int, default=196_608, help="haplotype (model) window")
    ap.add_argument("--cis", type=int, default=1_000_000, help="eQTL / elastic-net window (TSS ± cis)")
    ap.add_argument("--en-genes", type=int, default=2, help="genes in the elastic-net chunks")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument(
        "--only",
        default="normalize,haplotypes,eqtl,elasticnet,dosages",
        help="steps to run (a --workdir of an earlier run keeps its simulation and normalized BCF)",
    )
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    if a.quick:
        a.records, a.samples, a.keep, a.genes, a.chunk_genes, a.window = 20_000, 300, 60, 30, 4, 20_000
    tmp = a.workdir or Path(tempfile.mkdtemp(prefix="hapexp_scale_"))
    tmp.mkdir(parents=True, exist_ok=True)
    new_py, old_py = ROOT / "workflow" / "scripts", old_tree(tmp)
    only = set(a.only.split(","))
    if (tmp / "sim.json").exists():  # reuse an earlier run's cohort (same arguments)
        sim = json.loads((tmp / "sim.json").read_text())
    else:
        sim = simulate(tmp, a.records, a.samples, a.keep, a.genes, a.seed)
        (tmp / "sim.json").write_text(json.dumps(sim))
    print(f"simulated: {sim}", file=sys.stderr)
    half = max(a.window // 2 + max(4096, a.window // 4), a.cis)
    rows = []

    def add(name, r):
        rows.append((name, r))
        print(name, r, file=sys.stderr)

    bcf = tmp / "normalized.bcf"
    third = max(1, a.genes // 3)
    plan = []
    if "normalize" in only or not bcf.exists():
        plan.append(
            (f"normalize_variants, {a.genes} genes", "normalize", [bcf, a.genes, half, False], new_py)
        )
    if "normalize" in only:
        plan.append(
            (f"normalize_variants, {third} genes", "normalize", [tmp / "n3.bcf", third, half, False], new_py)
        )
        plan.append(
            (
                f"normalize_variants before issue 12 (all {a.samples} samples), {a.genes} genes",
                "normalize",
                [tmp / "old.bcf", a.genes, half, True],
                old_py,
            )
        )
    mid = a.genes // 2
    for k in (max(1, a.chunk_genes // 2), a.chunk_genes, 2 * a.chunk_genes):
        if "haplotypes" in only:
            plan.append(
                (
                    f"haplotypes, chunk of {k} genes (L={a.window})",
                    "haplotypes",
                    [bcf, mid, k, a.window],
                    new_py,
                )
            )
        if "eqtl" in only:
            plan.append((f"eqtl, chunk of {k} genes (±{a.cis})", "eqtl", [bcf, mid, k, a.cis], new_py))
    if "elasticnet" in only:
        for k in (a.en_genes, 2 * a.en_genes):
            plan.append(
                (f"elasticnet, chunk of {k} genes (±{a.cis})", "elasticnet", [bcf, mid, k, a.cis], new_py)
            )
    if "dosages" in only:
        args = [bcf, mid, a.chunk_genes, a.cis]
        plan.append(("read_dosages (fixed-width parser)", "dosages", [*args, False], new_py))
        plan.append(("read_dosages before issue 12 (str(rec) per record)", "dosages", [*args, True], old_py))
    for name, step, args, py in plan:
        add(name, run_measured(step, [str(tmp), *[str(x) if isinstance(x, Path) else x for x in args]], py))

    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    print(f"\n### Scale check ({time.strftime('%Y-%m-%d')}, {model}, {os.cpu_count()} cores)\n")
    print(
        f"Simulated chromosome {CHROM} ({CHROM_LEN:,} bp): {sim['records']:,} records × {sim['samples']:,} people "
        f"({sim['vcf_gz_mb']:.0f} MB bgzipped), cohort of {sim['kept']} with {sim['genes']} genes; "
        f"simulation {sim['simulate_s']:.0f} s.\n"
    )
    print("| step | wall (s) | peak RSS (MB) | details |\n| --- | ---: | ---: | --- |")
    for name, r in rows:
        det = ", ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r.items()
            if k not in ("wall_s", "peak_rss_mb")
        )
        print(f"| {name} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {det} |")


if __name__ == "__main__":
    main()
