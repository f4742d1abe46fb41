"""Wall time and peak memory of the whole demo workflow from scratch (issue 2).

Runs `snakemake --cores N` on the default config in a fresh directory and prints a
markdown block: total wall time, the largest resident set of any process the run
waited for (getrusage RUSAGE_CHILDREN), and per-rule wall time / max RSS from the
rules' `benchmark:` files.

    python bench/demo.py [--cores 2]
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hapexp_demo_"))
    shutil.copy(REPO / "config/config.yaml", workdir / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", "config.yaml", "--cores", str(args.cores), "--quiet", "all"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=workdir)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB

    rows = []
    for f in sorted((workdir / "benchmarks").rglob("*.tsv")):
        b = pd.read_csv(f, sep="\t")
        parts = f.relative_to(workdir / "benchmarks").parts  # [cohort/]rule[/model]/chunk.tsv
        rule = parts[1] if len(parts) > 2 else f.stem
        rows.append({"rule": rule, "s": float(b["s"].iloc[0]), "max_rss_mb": float(b["max_rss"].iloc[0])})
    per_rule = (
        pd.DataFrame(rows)
        .groupby("rule")
        .agg(jobs=("s", "size"), total_s=("s", "sum"), max_rss_mb=("max_rss_mb", "max"))
    )

    print(f"### Demo workflow ({date.today()}, {platform.machine()}, {args.cores} cores)\n")
    print(f"- wall time from scratch: **{wall:.0f} s** (`snakemake --cores {args.cores}`, default config)")
    print(f"- peak memory of any job: **{peak_mb:.0f} MB** RSS\n")
    print("| rule | jobs | total s | max RSS MB |\n| --- | ---: | ---: | ---: |")
    for rule, r in per_rule.sort_values("total_s", ascending=False).iterrows():
        print(f"| {rule} | {int(r.jobs)} | {r.total_s:.1f} | {r.max_rss_mb:.0f} |")
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
