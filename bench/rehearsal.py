"""Study-shape rehearsal (issue 23): the whole workflow on a simulated cohort in Geuvadis' shape.

A cohort of `--people` people (Geuvadis: 445) with `--genes` genes spread over several
chromosomes is simulated with the demo simulator (`hapexp.demo.simulate.simulate_demo`:
msprime haplotypes, expression from the oracle), then the whole workflow runs on it with
the demo's CPU models — oracle, enformer_tiny, enformer_tiny_ft (enformer_tiny fine-tuned
by rule finetune) and the enformer_tiny track heads — and the cis windows of the Geuvadis
preset. Prints a markdown block (machine, date, shape, total wall, per rule: jobs, summed
wall s, summed CPU s, max RSS MB) and saves the per-rule table as
`rehearsal_<genes>x<people>.tsv` (and the block as `.md`) next to the workdir.

The shape
- Genes: one per `--gene-spacing` bp (150 kb: Geuvadis' ~20,000 protein-coding + lincRNA
  genes over 2.9 Gb), on max(4, genes / 100) chromosomes; every TSS at least 1 Mb + 1 kb
  from a chromosome end (the simulator's `fit_window` = 2 × the eQTL window), so every
  gene's ±1 Mb cis window lies inside its chromosome, as on a real genome.
- Variants: msprime (constant Ne 10,000, recombination 1e-8) with mutation rate
  1.25e-8 × `--mutation-scale` (2: θ = 4 Ne μ = 1e-3, human nucleotide diversity). That
  gives the common variants of 1000 Genomes' (~1 SNV with MAF >= 5 % per 350 bp, ~1 with
  MAF >= 1 % per 200 bp: what the eQTL scan, the elastic net and SuSiE see); a constant-size
  coalescent lacks the human excess of rare variants (1000 Genomes' 445 Geuvadis people
  carry ~1 segregating site per 70 bp, this ~1 per 135 bp). 8 % of the sites are short
  indels, as in the demo (the demo's variants policy is kept; the preset keeps SNVs only).
  The demo simulator's own default is `mutation_scale` 3 (denser, so the demo's 2 kb
  windows hold several common variants); rule simulate_demo does not pass it, so this
  script runs the simulator itself, in a child process measured like a benchmark file
  (wall, user + system CPU, peak RSS), before Snakemake.
- Windows: eQTL scan (and SuSiE) TSS ± `--eqtl-window` (the preset's 1,000,000), elastic
  net ± `--elasticnet-window` (the preset's 98,304: the anchors' "PrediXcan 197 kb", the
  Enformer input window); genotype PCs as the preset (5 PCs of LD-pruned common SNVs).
  Models keep the tiny models' own 2,048-bp windows.
- Chunks: `--chunks` genes per chunk (50: the preset's 400 chunks over ~20,000 genes).
- Everything else is config/config.yaml's demo: expression (inverse normal, 2 PCs,
  sex/age/rin covariates), 1,000 eQTL permutations, 5 × 10 nested CV, the null check's 2
  permutations, splits, heads, concordance, the causal benchmark on the simulated truth.
  Fine-tuning runs `--finetune-epochs` epochs (default 1; the demo's 4 cost 4× as much: an
  epoch is every training gene × every training person, so the job grows as genes × people:
  at 100 genes × 445 people one epoch was 650 steps, 26,000 haplotype windows, 103 s at
  ~260 windows/s on a shared core; at 1,000 genes × 445 people 4 epochs would be ~1.5 M
  windows, about 1.5 h on one core).

Per rule: jobs and wall time from Snakemake's log (every rule), summed wall s, summed CPU
s (`cpu_time`) and max RSS from the rules' `benchmark:` files where the rule has one
(`source` says which); rules without a benchmark file (gathers, figures, summary, splits,
track_heads) have their log wall time only.

    nice -n 19 .venv/bin/python bench/rehearsal.py --genes 100 --people 445 --dry
    nice -n 19 .venv/bin/python bench/rehearsal.py --genes 100 --people 445 --cores 2 --timeout-min 40
    .venv/bin/python bench/rehearsal.py --fit /tmp/hapexp_rehearsal/rehearsal_*.tsv [--predict 20000x445]

`--fit` reads earlier runs' TSVs and fits, per rule, cost ∝ genes^a · people^b by least
squares on logs (CPU s, wall s and max RSS); `--predict GxP` extrapolates each rule's CPU
time to that shape.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "config" / "geuvadis.yaml"
COHORT = "sim"
SIM_DIR = "resources/sim"
MODEL_WINDOW = 2048  # the tiny models' window (config.yaml), also the simulator's design window
DEFAULT_GENES_PER_CHUNK = 50
COLUMNS = ["rule", "jobs", "wall_s", "cpu_s", "max_rss_mb", "source"]


# ---------------------------------------------------------------- shape and config
def preset() -> dict:
    return yaml.safe_load(PRESET.read_text())


def layout(genes: int, spacing: int, eqtl_window: int) -> dict:
    """Chromosomes and their length: `genes` TSSs `spacing` bp apart, each chromosome
    with a fit_window (2 × the cis window) margin so every cis window fits."""
    n_chrom = max(4, math.ceil(genes / 100))
    per = math.ceil(genes / n_chrom)
    fit_window = 2 * eqtl_window
    # simulate_demo's place_genes: margin = fit_window // 2 + 1000, slot = (length - 2 margin) / per
    length = per * spacing + fit_window + 2000
    return {"n_chromosomes": n_chrom, "chromosome_length": length, "fit_window": fit_window}


def make_config(a, shape: dict) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    pre = preset()
    sim = SIM_DIR
    cfg["reference"] = {"fasta": f"{sim}/reference.fa"}
    cfg["genes"] = {
        "table": f"{sim}/genes.tsv",
        "exons": f"{sim}/exons.tsv",
        "chunks": max(1, math.ceil(a.genes / a.chunks)),
    }
    cfg["cohorts"] = {
        COHORT: {
            "vcf": f"{sim}/cohort.vcf.gz",
            "expression": f"{sim}/expression.tsv",
            "covariates": f"{sim}/covariates.tsv",
        }
    }
    cfg["models"]["oracle"]["weights"] = f"{sim}/oracle.pt"
    cfg["models"]["enformer_tiny_ft"]["finetune"]["epochs"] = int(a.finetune_epochs)
    cfg["eqtl"]["window"] = int(a.eqtl_window)
    cfg["elasticnet"]["window"] = int(a.elasticnet_window)
    cfg["genotype_pcs"] = dict(pre["genotype_pcs"])
    cfg["causal"] = {"truth": {COHORT: f"{sim}/truth.tsv"}}
    cfg["simulate"] = {
        "outdir": sim,
        "seed": int(a.seed),
        "n_individuals": int(a.people),
        "n_chromosomes": shape["n_chromosomes"],
        "chromosome_length": shape["chromosome_length"],
        "n_genes": int(a.genes),
        "window": MODEL_WINDOW,
        "fit_window": shape["fit_window"],
    }
    return cfg


# ---------------------------------------------------------------- measured child processes
def run_measured(cmd: list[str], cwd: Path, log_path: Path, env=None, timeout_s=None, on_start=None) -> dict:
    """Run `cmd` in its own process group; wall, user + system CPU and peak RSS of it and its
    children (os.wait4). With `timeout_s`, the group gets SIGTERM then SIGKILL past it."""
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        p = subprocess.Popen(
            cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        if on_start:
            on_start(p)
        timed_out = False
        timer = None
        if timeout_s:

            def stop():
                nonlocal timed_out
                timed_out = True
                with _suppress():
                    os.killpg(p.pid, signal.SIGTERM)  # snakemake cancels its running jobs
                time.sleep(60)
                with _suppress():
                    os.killpg(p.pid, signal.SIGKILL)

            timer = threading.Timer(timeout_s, stop)
            timer.daemon = True
            timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        if timer:
            timer.cancel()
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "max_rss_mb": ru.ru_maxrss / 1024,  # Linux: KiB; the largest of the process tree
        "returncode": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
    }


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError)


def simulate(workdir: Path, cfg: dict, mutation_scale: float) -> dict:
    s = cfg["simulate"]
    kwargs = {k: s[k] for k in ("seed", "n_individuals", "n_chromosomes", "chromosome_length", "n_genes",
                                "window", "fit_window")}  # fmt: skip
    kwargs["mutation_scale"] = mutation_scale
    code = (
        "import json, logging, sys; sys.path.insert(0, sys.argv[1]);"
        "logging.basicConfig(level=logging.INFO);"
        "from hapexp.demo.simulate import simulate_demo;"
        "s = simulate_demo(sys.argv[2], **json.loads(sys.argv[3])); s.pop('h2');"
        "print('SUMMARY', json.dumps(s))"
    )
    cmd = [sys.executable, "-c", code, str(REPO / "workflow" / "scripts"), s["outdir"], json.dumps(kwargs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = run_measured(cmd, workdir, workdir / "simulate.log", env=env)
    if res["returncode"] != 0:
        sys.exit(f"simulation failed: see {workdir / 'simulate.log'}")
    line = next(x for x in (workdir / "simulate.log").read_text().splitlines() if x.startswith("SUMMARY "))
    res["summary"] = json.loads(line[len("SUMMARY ") :])
    res["kwargs"] = kwargs
    res["density"] = variant_density(workdir / s["outdir"] / "cohort.vcf.gz", s)
    return res


def variant_density(vcf: Path, s: dict) -> dict:
    """Records and records at MAF >= 1 % / 5 % (bcftools, from the genotypes) per kb."""
    total_kb = s["n_chromosomes"] * s["chromosome_length"] / 1000
    out = {"kb": total_kb}
    for name, q in (("all", None), ("maf01", "0.01:minor"), ("maf05", "0.05:minor")):
        cmd = ["bcftools", "view", "-H", str(vcf)] + (["-q", q] if q else [])
        p = subprocess.run(cmd, capture_output=True, check=True)
        out[name] = p.stdout.count(b"\n")
    return out


# ---------------------------------------------------------------- snakemake
def snakemake_cmd(workdir: Path, cores: int, dry: bool) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", "config.yaml", "--cores", str(cores), "--nocolor"]
    return cmd + (["--dry-run"] if dry else ["--keep-going"]) + ["all"]


def job_stats(text: str) -> pd.DataFrame:
    """The 'Job stats:' table of a Snakemake log (dry run or real)."""
    lines = text.splitlines()
    i = next((k for k, x in enumerate(lines) if x.strip() == "Job stats:"), None)
    if i is None:  # "Nothing to be done": every output is there
        return pd.DataFrame(columns=["rule", "jobs"])
    rows = []
    for x in lines[i + 3 :]:
        parts = x.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        rows.append((parts[0], int(parts[1])))
    return pd.DataFrame(rows, columns=["rule", "jobs"])


TS = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
DONE = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")
ERROR = re.compile(r"^Error in rule (\w+):")


def log_jobs(text: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Per job (rule, start, end) from a Snakemake log; the rules still running at its end
    and those that failed."""
    ts, rule, jobs, failed = None, None, {}, []
    for x in text.splitlines():
        if m := TS.match(x):
            ts = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := RULE.match(x):
            rule = m.group(1)
        elif (m := JOBID.match(x)) and rule:
            jobs.setdefault(int(m.group(1)), {"rule": rule, "start": ts, "end": None})
            rule = None
        elif m := DONE.match(x):
            j = jobs.setdefault(int(m.group(1)), {"rule": m.group(2), "start": None, "end": None})
            j["end"] = ts
        elif m := ERROR.match(x):
            failed.append(m.group(1))
    df = pd.DataFrame(list(jobs.values()), columns=["rule", "start", "end"])
    running = sorted(df.loc[df["end"].isna() & ~df["rule"].isin(failed), "rule"].tolist())
    return df, running, failed


def benchmark_patterns() -> list[tuple[str, re.Pattern]]:
    """(rule, regex of its benchmark path relative to benchmarks/), from rules/*.smk."""
    out = []
    for f in sorted((REPO / "rules").glob("*.smk")):
        rule = None
        lines = f.read_text().splitlines()
        for k, x in enumerate(lines):
            if m := re.match(r"^(?:rule|checkpoint) (\w+):", x):
                rule = m.group(1)
            elif x.strip() == "benchmark:" and rule:
                path = lines[k + 1].strip().strip(",").strip('"')
                rel = path.removeprefix("benchmarks/")
                rx = re.escape(rel)
                rx = re.sub(r"\\\{\w+\\\}", "[^/]+", rx)
                out.append((rule, re.compile(rx + "$")))
    return out


def benchmark_rows(workdir: Path) -> pd.DataFrame:
    pats = benchmark_patterns()
    rows = []
    bdir = workdir / "benchmarks"
    for f in sorted(bdir.rglob("*.tsv")):
        rel = str(f.relative_to(bdir))
        rule = next((r for r, rx in pats if rx.match(rel)), f.stem)
        b = pd.read_csv(f, sep="\t")
        rows.append(
            {
                "rule": rule,
                "s": float(b["s"].iloc[0]),
                "cpu_time": float(b["cpu_time"].iloc[0]),
                "max_rss": float(b["max_rss"].iloc[0]),
            }
        )
    return pd.DataFrame(rows, columns=["rule", "s", "cpu_time", "max_rss"])


def per_rule(workdir: Path, log_text: str, sim: dict | None) -> tuple[pd.DataFrame, list[str], list[str]]:
    jobs, running, failed = log_jobs(log_text)
    done = jobs.dropna(subset=["start", "end"]).copy()
    done["wall"] = (done["end"] - done["start"]).dt.total_seconds()
    from_log = done.groupby("rule").agg(jobs=("wall", "size"), wall_s=("wall", "sum"))
    bench = benchmark_rows(workdir)
    from_bench = bench.groupby("rule").agg(
        bjobs=("s", "size"), bwall=("s", "sum"), cpu_s=("cpu_time", "sum"), max_rss_mb=("max_rss", "max")
    )
    rows = []
    for rule in sorted(set(from_log.index) | set(from_bench.index)):
        if rule == "all":
            continue
        if rule in from_bench.index:
            b = from_bench.loc[rule]
            rows.append((rule, int(b.bjobs), b.bwall, b.cpu_s, b.max_rss_mb, "benchmark"))
        else:
            r = from_log.loc[rule]
            rows.append((rule, int(r.jobs), r.wall_s, np.nan, np.nan, "log"))
    if sim is not None:
        rows.append(("simulate (rehearsal.py)", 1, sim["wall_s"], sim["cpu_s"], sim["max_rss_mb"], "rusage"))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["cpu_s", "wall_s"], ascending=False, na_position="last"), running, failed


# ---------------------------------------------------------------- machine
def machine() -> dict:
    try:
        cpu = next(
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    try:
        kb = int(
            next(
                x.split()[1]
                for x in Path("/proc/meminfo").read_text().splitlines()
                if x.startswith("MemTotal")
            )
        )
        mem = f"{kb / 1024**2:.0f} GB"
    except (OSError, StopIteration):
        mem = "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "mem": mem, "host": platform.node(), "nice": os.nice(0)}


class LoadSampler:
    """The 1-minute load average every 30 s during the run."""

    def __init__(self):
        self.samples, self._stop = [], threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(30)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def describe(self) -> str:
        s = np.array(self.samples)
        if not len(s):
            return "?"
        return f"mean {s.mean():.1f}, range {s.min():.1f}–{s.max():.1f} ({len(s)} samples)"


# ---------------------------------------------------------------- reports
def fmt(v, digits=1) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:,.{digits}f}"


def report(a, shape, cfg, sim, table, wall, load, res, running, failed, cmdline) -> str:
    m = machine()
    d = sim["density"]
    out = [
        f"### Rehearsal: {a.genes} genes × {a.people} people ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{m['cpu']}, {m['cores']} cores, {m['mem']})\n",
        f"- command: `{cmdline}` (process niceness {m['nice']}); 1-min load average during the run (this run's "
        f"jobs included): "
        f"{load.describe()}",
        f"- shape: {a.genes} genes on {shape['n_chromosomes']} chromosomes × {shape['chromosome_length']:,} bp "
        f"(one TSS per {a.gene_spacing:,} bp, each ≥ {shape['fit_window'] // 2 + 1000:,} bp from the ends), "
        f"{a.people} people; {cfg['genes']['chunks']} chunks ({a.chunks} genes per chunk)",
        f"- variants (msprime, Ne 10,000, μ 1.25e-8 × {a.mutation_scale:g}): {d['all']:,} records "
        f"(1 per {1000 * d['kb'] / max(d['all'], 1):.0f} bp), MAF ≥ 1 %: {d['maf01']:,} "
        f"(1 per {1000 * d['kb'] / max(d['maf01'], 1):.0f} bp), MAF ≥ 5 %: {d['maf05']:,} "
        f"(1 per {1000 * d['kb'] / max(d['maf05'], 1):.0f} bp)",
        f"- windows: eQTL / SuSiE TSS ± {a.eqtl_window:,}, elastic net ± {a.elasticnet_window:,}, models "
        f"{MODEL_WINDOW:,} bp; genotype PCs {cfg['genotype_pcs']['n_pcs']}; fine-tuning "
        f"{a.finetune_epochs} epoch(s) (demo: 4)",
        f"- models: {', '.join(cfg['models'])}; heads of {', '.join(cfg['heads'])}",
        f"- simulation (outside Snakemake): {sim['wall_s']:.0f} s wall, {sim['cpu_s']:.0f} s CPU, "
        f"{sim['max_rss_mb']:.0f} MB peak RSS",
        f"- Snakemake: **{wall:.0f} s wall** ({wall / 60:.1f} min), {res['cpu_s']:.0f} s CPU of it and its "
        f"jobs, peak RSS of any job {res['max_rss_mb']:.0f} MB; exit {res['returncode']}"
        + (" — **stopped at the time box**" if res["timed_out"] else ""),
    ]
    if running:
        out.append(f"- jobs running when it stopped (no benchmark file): {', '.join(running)}")
    if failed:
        out.append(f"- **failed rules**: {', '.join(failed)} (see the workdir's snakemake.log)")
    total_cpu = np.nansum(table["cpu_s"])
    out += [
        "",
        "| rule | jobs | wall s (sum) | CPU s (sum) | CPU share | max RSS MB | source |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in table.itertuples():
        share = r.cpu_s / total_cpu if np.isfinite(r.cpu_s) and total_cpu else np.nan
        out.append(
            f"| {r.rule} | {r.jobs} | {fmt(r.wall_s)} | {fmt(r.cpu_s)} | "
            f"{'–' if not np.isfinite(share) else f'{100 * share:.0f} %'} | {fmt(r.max_rss_mb, 0)} | {r.source} |"
        )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- fit
def fit(files: list[Path], predict: str | None) -> None:
    frames = []
    for f in files:
        t = pd.read_csv(f, sep="\t")
        frames.append(t)
        print(
            f"{f}: {t['genes'].iloc[0]} genes × {t['people'].iloc[0]} people, complete={t['complete'].iloc[0]}"
        )
    df = pd.concat(frames, ignore_index=True)
    for col in ("eqtl_window", "elasticnet_window", "finetune_epochs"):
        if df[col].nunique() > 1:
            print(f"warning: the runs differ in {col} ({sorted(df[col].unique())}): exponents mix them")
    target = None
    if predict:
        g, p = (int(x) for x in predict.lower().split("x"))
        target = (g, p)

    def one(sub, col):
        sub = sub[np.isfinite(sub[col]) & (sub[col] > 0)]
        if len(sub) < 2:
            return np.nan, np.nan, None
        lg, lp, y = np.log(sub["genes"]), np.log(sub["people"]), np.log(sub[col])
        cols, names = [np.ones(len(sub))], []
        if lg.nunique() > 1:
            cols.append(lg.to_numpy())
            names.append("a")
        if lp.nunique() > 1:
            cols.append(lp.to_numpy())
            names.append("b")
        coef, *_ = np.linalg.lstsq(np.column_stack(cols), y.to_numpy(), rcond=None)
        est = dict(zip(names, coef[1:], strict=True))
        return est.get("a", np.nan), est.get("b", np.nan), coef

    rows = []
    for rule, sub in df.groupby("rule"):
        r = {"rule": rule, "runs": len(sub)}
        for col, name in (("cpu_s", "cpu"), ("wall_s", "wall"), ("max_rss_mb", "rss")):
            r[f"a_{name}"], r[f"b_{name}"], coef = one(sub, col)
            if name == "cpu" and target and coef is not None:
                lg, lp = math.log(target[0]), math.log(target[1])
                x = (
                    [1.0]
                    + ([lg] if np.isfinite(r["a_cpu"]) else [])
                    + ([lp] if np.isfinite(r["b_cpu"]) else [])
                )
                r["predicted_cpu_h"] = math.exp(float(np.dot(coef, x))) / 3600
        rows.append(r)
    out = pd.DataFrame(rows).sort_values("rule")
    print("\nPer rule: cost ∝ genes^a · people^b (least squares on logs; – where a factor did not vary)\n")
    head = "| rule | runs | CPU a | CPU b | wall a | wall b | RSS a | RSS b |"
    sep = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if target:
        head += f" CPU h at {target[0]:,} × {target[1]:,} |"
        sep += " ---: |"
    print(head + "\n" + sep)
    for r in out.itertuples():
        line = (
            f"| {r.rule} | {r.runs} | {fmt(r.a_cpu, 2)} | {fmt(r.b_cpu, 2)} | {fmt(r.a_wall, 2)} | "
            f"{fmt(r.b_wall, 2)} | {fmt(r.a_rss, 2)} | {fmt(r.b_rss, 2)} |"
        )
        if target:
            line += f" {fmt(getattr(r, 'predicted_cpu_h', np.nan), 2)} |"
        print(line)


# ---------------------------------------------------------------- main
def main() -> None:
    pre = preset()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", type=int, default=100)
    ap.add_argument("--people", type=int, default=445)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="default: /tmp/hapexp_rehearsal/<genes>x<people>")
    ap.add_argument(
        "--eqtl-window", type=int, default=int(pre["eqtl"]["window"]),
        help="eQTL scan / SuSiE cis window, TSS ± bp (default: the Geuvadis preset's, %(default)s)",
    )  # fmt: skip
    ap.add_argument(
        "--elasticnet-window", type=int, default=int(pre["elasticnet"]["window"]),
        help="elastic-net cis window, TSS ± bp (default: the Geuvadis preset's, %(default)s)",
    )  # fmt: skip
    ap.add_argument(
        "--chunks", type=int, default=DEFAULT_GENES_PER_CHUNK, help="genes per chunk (%(default)s)"
    )
    ap.add_argument("--gene-spacing", type=int, default=150_000, help="bp between TSSs (%(default)s)")
    ap.add_argument(
        "--mutation-scale", type=float, default=2.0, help="msprime μ = 1.25e-8 × this (%(default)s)"
    )
    ap.add_argument(
        "--finetune-epochs", type=int, default=1, help="fine-tuning epochs (demo: 4; %(default)s)"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--timeout-min",
        type=float,
        help="time box from the start, simulation included: Snakemake's group gets SIGTERM past it",
    )
    ap.add_argument("--dry", action="store_true", help="job counts per rule from a dry run only")
    ap.add_argument(
        "--fit", nargs="+", type=Path, metavar="TSV", help="fit exponents from earlier runs' TSVs"
    )
    ap.add_argument(
        "--predict", metavar="GENESxPEOPLE", help="with --fit: extrapolate CPU hours to this shape"
    )
    a = ap.parse_args()
    if a.fit:
        fit(a.fit, a.predict)
        return
    workdir = (a.workdir or Path("/tmp/hapexp_rehearsal") / f"{a.genes}x{a.people}").resolve()
    stem = workdir.parent / f"rehearsal_{a.genes}x{a.people}"
    workdir.mkdir(parents=True, exist_ok=True)
    shape = layout(a.genes, a.gene_spacing, a.eqtl_window)
    cfg = make_config(a, shape)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    if a.dry:
        # Without the simulated files rule simulate_demo stands in (1 job) for this
        # script's own simulation; the rest of the DAG is the real run's.
        p = subprocess.run(snakemake_cmd(workdir, a.cores, True), cwd=workdir, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stdout[-3000:] + p.stderr[-3000:])
        stats = job_stats(p.stdout + p.stderr)
        stats = stats[stats["rule"] != "all"]
        print(f"Dry run, {a.genes} genes × {a.people} people, {cfg['genes']['chunks']} chunks; "
              f"{shape['n_chromosomes']} chromosomes × {shape['chromosome_length']:,} bp\n")  # fmt: skip
        print("| rule | jobs |\n| --- | ---: |")
        for r in stats.itertuples():
            print(f"| {r.rule} | {r.jobs} |")
        print(f"| **total** | {stats['jobs'].sum()} |")
        return

    if (workdir / "results").exists() or (workdir / "benchmarks").exists():
        sys.exit(f"{workdir} holds an earlier run: pass a fresh --workdir (or delete it)")
    cmdline = "nice -n 19 .venv/bin/python bench/rehearsal.py " + " ".join(sys.argv[1:])
    started = time.perf_counter()  # the time box counts the simulation too
    print(
        f"workdir {workdir}; simulating {a.genes} genes × {a.people} people ...", file=sys.stderr, flush=True
    )
    sim = simulate(workdir, cfg, a.mutation_scale)
    (workdir / "sim.json").write_text(json.dumps({k: v for k, v in sim.items()}, default=str, indent=1))
    print(f"simulated in {sim['wall_s']:.0f} s: {sim['density']}", file=sys.stderr, flush=True)
    with LoadSampler() as load:
        t0 = time.perf_counter()
        res = run_measured(
            snakemake_cmd(workdir, a.cores, False),
            workdir,
            workdir / "snakemake.log",
            timeout_s=None if a.timeout_min is None else max(1.0, 60 * a.timeout_min - (t0 - started)),
            on_start=lambda p: print(
                f"snakemake pid {p.pid} (its own process group)", file=sys.stderr, flush=True
            ),
        )
        wall = time.perf_counter() - t0
    text = (workdir / "snakemake.log").read_text()
    table, running, failed = per_rule(workdir, text, sim)
    if (workdir / "benchmarks" / "simulate_demo.tsv").exists():
        print("warning: rule simulate_demo ran and replaced the simulation", file=sys.stderr)
    complete = res["returncode"] == 0 and not res["timed_out"]
    meta = {
        "genes": a.genes,
        "people": a.people,
        "chunks": cfg["genes"]["chunks"],
        "eqtl_window": a.eqtl_window,
        "elasticnet_window": a.elasticnet_window,
        "finetune_epochs": a.finetune_epochs,
        "complete": complete,
    }
    tsv = table.assign(**meta)
    n_jobs = int(table.loc[table["source"] != "rusage", "jobs"].sum())  # the simulation is not a job
    total = pd.DataFrame([{"rule": "_total (snakemake)", "jobs": n_jobs, "wall_s": wall, "cpu_s": res["cpu_s"],
                           "max_rss_mb": res["max_rss_mb"], "source": "rusage", **meta}])  # fmt: skip
    pd.concat([tsv, total], ignore_index=True).to_csv(f"{stem}.tsv", sep="\t", index=False)
    md = report(a, shape, cfg, sim, table, wall, load, res, running, failed, cmdline)
    Path(f"{stem}.md").write_text(md)
    print(md)
    print(f"(saved {stem}.tsv and {stem}.md)", file=sys.stderr)


if __name__ == "__main__":
    main()
