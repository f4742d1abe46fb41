"""Checks for tests/slurm/run.sh: the SLURM run really ran on SLURM, and equals the local run.

    python tests/slurm/check.py --local DIR --slurm DIR --log SLURM_RUN_LOG [--slurmctld-log FILE]

1. Every job the SLURM run executed outside the main process was submitted with sbatch:
   the main log names a SLURM job id and log file per submission, each log exists and
   holds the jobs (rule + output) that the main log lists; with --slurmctld-log, the
   controller allocated every one of those job ids. Accounting-free: no sacct.
2. results/ of both runs hold the same files, and each file is equal: text and TSV byte
   for byte (after replacing each run's own directory by a placeholder), Parquet/NPZ/
   SQLite by content, VCF/BCF by records (headers carry dates and command lines).
   Floating-point numbers are the one exception: a SLURM job gets other thread counts
   than the local run, so BLAS sums in another order and float64 statistics move in the
   last bits (measured: 1.2e-14 relative on eQTL slopes). Floats are compared at rtol
   1e-9 (float64; float32 at 1e-5), everything else (strings, integers, sequences,
   variant ids, every text token that is not a number) exactly.
   Figures only need to exist and be non-empty (PDF/PNG embed dates and fonts).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from pathlib import Path

SUBMIT = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$")
BLOCK = re.compile(r"^\s*(local)?(?:rule|checkpoint) (\w+):\s*$")
OUTPUT = re.compile(r"^\s*output: (.+)$")
SKIP_DIRS = {"logs", "benchmarks", ".snakemake"}
FIGURES = {".png", ".pdf", ".svg"}
RTOL = {8: 1e-9, 4: 1e-5, 2: 1e-2}  # by float itemsize: float64, float32, float16/bf16
NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


def jobs_in(text: str) -> tuple[set, set]:
    """(rule, output) of the remote and of the local jobs announced in a Snakemake log."""
    remote, local = set(), set()
    current = None
    for line in text.splitlines():
        m = BLOCK.match(line)
        if m:
            current = (bool(m.group(1)), m.group(2))
            continue
        m = OUTPUT.match(line)
        if m and current is not None:
            is_local, rule = current
            (local if is_local else remote).add((rule, m.group(1).strip()))
            current = None
    return remote, local


def check_slurm(log_path: Path, slurmctld_log: Path | None) -> list[str]:
    text = log_path.read_text()
    problems = []
    submissions = [SUBMIT.search(line) for line in text.splitlines()]
    submissions = [(int(m.group(1)), Path(m.group(2))) for m in submissions if m]
    if not submissions:
        return [f"{log_path}: no job was submitted to SLURM"]
    remote, local = jobs_in(text)
    seen_in_slurm_logs = set()
    for jobid, path in submissions:
        if not path.exists():
            problems.append(f"SLURM job {jobid}: log {path} missing")
            continue
        if path.name != f"{jobid}.log":
            problems.append(f"SLURM job {jobid}: log {path} is not named after the job id")
        job_text = path.read_text()
        ran, _ = jobs_in(job_text)
        if not ran:
            problems.append(f"SLURM job {jobid}: its log {path} shows no job")
        if "Finished jobid" not in job_text and "steps (100%) done" not in job_text:
            problems.append(f"SLURM job {jobid}: its log {path} does not show the job finishing")
        seen_in_slurm_logs |= ran
    not_on_slurm = sorted(remote - seen_in_slurm_logs)
    if not_on_slurm:
        problems.append(f"jobs not found in any SLURM job log: {not_on_slurm[:10]}")
    if slurmctld_log is not None:
        ctld = slurmctld_log.read_text()
        allocated = {int(j) for j in re.findall(r"(?:Allocate|Started) JobId=(\d+)", ctld)}
        missing = sorted({j for j, _ in submissions} - allocated)
        if missing:
            problems.append(f"slurmctld never allocated job ids {missing}")
    rules = sorted({rule for rule, _ in remote})
    groups = sorted({p.parent.name for _, p in submissions if p.parent.name.startswith("group_")})
    print(
        f"SLURM: {len(submissions)} sbatch submissions (job ids {submissions[0][0]}..{submissions[-1][0]}) "
        f"ran {len(remote)} jobs of {len(rules)} rules; {len(local)} local jobs; group jobs: {groups or 'none'}"
    )
    print(f"  rules on SLURM: {', '.join(rules)}")
    return problems


def _text(path: Path, root: Path) -> str:
    return path.read_text(errors="replace").replace(str(root.resolve()), "<RUN>")


def _vcf_records(path: Path) -> list[str]:
    import pysam

    with pysam.VariantFile(str(path)) as f:
        return [str(rec) for rec in f]


def _sqlite_dump(path: Path) -> list[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _floats_close(x, y) -> bool:
    """Equal arrays, floats up to RTOL (NaN equals NaN), other dtypes exactly."""
    import numpy as np

    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if x.dtype.kind != "f":
        return bool(np.array_equal(x, y))
    return bool(np.allclose(x, y, rtol=RTOL.get(x.dtype.itemsize, 1e-9), atol=0.0, equal_nan=True))


def _lines_close(x: str, y: str) -> bool:
    """Two text lines equal token by token; numeric tokens up to float64's RTOL."""
    tx, ty = re.split(r"([\t ,;:=|]+)", x), re.split(r"([\t ,;:=|]+)", y)
    if len(tx) != len(ty):
        return False
    for u, v in zip(tx, ty, strict=True):
        if u == v:
            continue
        if not (NUMBER.match(u) and NUMBER.match(v)):
            return False
        fu, fv = float(u), float(v)
        if abs(fu - fv) > RTOL[8] * max(abs(fu), abs(fv)):
            return False
    return True


def _frames_close(da, db) -> str | None:
    if list(da.columns) != list(db.columns) or len(da) != len(db):
        return f"columns/rows {list(da.columns)} x {len(da)} vs {list(db.columns)} x {len(db)}"
    for col in da.columns:
        x, y = da[col], db[col]
        if x.dtype != y.dtype:
            return f"column {col}: dtype {x.dtype} vs {y.dtype}"
        if x.dtype.kind == "f":
            if not _floats_close(x.to_numpy(), y.to_numpy()):
                return f"column {col}: floats differ beyond rtol {RTOL.get(x.dtype.itemsize)}"
        elif not x.equals(y):
            return f"column {col} differs"
    if not da.index.equals(db.index):
        return "index differs"
    return None


def _torch_close(x, y, where: str = "") -> str | None:
    """Two torch.load results (state dicts, checkpoints) equal: the same structure, tensors
    of floats up to their dtype's RTOL, everything else exactly."""
    import torch

    if type(x) is not type(y):
        return f"{where}: {type(x).__name__} vs {type(y).__name__}"
    if isinstance(x, dict):
        if list(x) != list(y):
            return f"{where}: keys differ"
        return next((p for k in x if (p := _torch_close(x[k], y[k], f"{where}.{k}"))), None)
    if isinstance(x, list | tuple):
        if len(x) != len(y):
            return f"{where}: lengths differ"
        return next((p for i, (u, v) in enumerate(zip(x, y, strict=True)) if (p := _torch_close(u, v, f"{where}[{i}]"))), None)  # fmt: skip
    if isinstance(x, torch.Tensor):
        if x.dtype != y.dtype or x.shape != y.shape:
            return f"{where}: {x.dtype} {tuple(x.shape)} vs {y.dtype} {tuple(y.shape)}"
        if x.is_floating_point():
            ok = torch.allclose(x.double(), y.double(), rtol=RTOL.get(x.element_size(), 1e-5), atol=0.0, equal_nan=True)  # fmt: skip
        else:
            ok = torch.equal(x, y)
        return None if ok else f"{where}: tensor differs"
    if isinstance(x, float):
        return None if abs(x - y) <= RTOL[8] * max(abs(x), abs(y)) or x == y else f"{where}: {x} vs {y}"
    return None if x == y else f"{where}: {x!r} vs {y!r}"


def compare(a: Path, b: Path, root_a: Path, root_b: Path) -> str | None:
    """None when equal, else what differs."""
    name = a.name
    if a.suffix in FIGURES:
        return None if b.stat().st_size > 0 else "empty figure"
    if name.endswith((".vcf.gz", ".bcf", ".vcf")):
        return None if _vcf_records(a) == _vcf_records(b) else "VCF/BCF records differ"
    if a.suffix in {".csi", ".tbi", ".fai", ".gzi"}:
        return None  # indexes of files compared by content; offsets follow the header
    if a.suffix == ".parquet":
        import pandas as pd

        problem = _frames_close(pd.read_parquet(a), pd.read_parquet(b))
        return None if problem is None else f"Parquet differs: {problem}"
    if a.suffix == ".npz":
        import numpy as np

        with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
            if sorted(za.files) != sorted(zb.files):
                return f"NPZ arrays {sorted(za.files)} vs {sorted(zb.files)}"
            for key in za.files:
                if not _floats_close(za[key], zb[key]):
                    return f"NPZ array {key} differs"
        return None
    if a.suffix == ".pt":  # fine-tuned weights, checkpoints
        import torch

        problem = _torch_close(torch.load(a, weights_only=False), torch.load(b, weights_only=False))
        return None if problem is None else f"torch file differs at {problem or 'top level'}"
    if a.suffix == ".db":
        return None if _sqlite_dump(a) == _sqlite_dump(b) else "SQLite content differs"
    raw_a, raw_b = a.read_bytes(), b.read_bytes()
    if raw_a == raw_b:
        return None
    if b"\0" not in raw_a[:4096]:
        if _text(a, root_a) == _text(b, root_b):
            return None
        la, lb = _text(a, root_a).splitlines(), _text(b, root_b).splitlines()
        if len(la) == len(lb) and all(_lines_close(x, y) for x, y in zip(la, lb, strict=True)):
            return None
        for i, (x, y) in enumerate(zip(la, lb, strict=False)):
            if not _lines_close(x, y):
                return f"text differs at line {i + 1}: {x[:120]!r} vs {y[:120]!r}"
        return f"text differs in length ({len(la)} vs {len(lb)} lines)"
    if name.endswith(".gz"):
        import gzip

        return None if gzip.decompress(raw_a) == gzip.decompress(raw_b) else "gzip content differs"
    return "bytes differ"


def check_results(local: Path, slurm: Path, dirs=("results", "resources/demo")) -> list[str]:
    """Same files under `dirs` in both runs, each equal (see compare)."""

    def files(root: Path) -> set[Path]:
        out = set()
        for d in dirs:
            base = root / d
            if base.is_dir():
                out |= {
                    p.relative_to(root)
                    for p in base.rglob("*")
                    if p.is_file() and not (set(p.relative_to(base).parts) & SKIP_DIRS)
                }
        return out

    fa, fb = files(local), files(slurm)
    problems = []
    if not fa:
        return [f"{local}: nothing under {dirs}"]
    if fa != fb:
        problems.append(
            f"only in local: {sorted(map(str, fa - fb))[:10]}; only in SLURM: {sorted(map(str, fb - fa))[:10]}"
        )
    n_equal = 0
    for rel in sorted(fa & fb):
        diff = compare(local / rel, slurm / rel, local, slurm)
        if diff:
            problems.append(f"{rel}: {diff}")
        else:
            n_equal += 1
    print(
        f"outputs: {n_equal} of {len(fa)} files under {', '.join(dirs)} equal between the local and the SLURM run"
    )
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local", type=Path, required=True)
    ap.add_argument("--slurm", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True, help="main Snakemake log of the SLURM run")
    ap.add_argument("--slurmctld-log", type=Path)
    args = ap.parse_args(argv)
    problems = check_slurm(args.log, args.slurmctld_log) + check_results(args.local, args.slurm)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
