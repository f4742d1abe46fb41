"""Running the workflow from tests: a fresh working directory per run, repo Snakefile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake_cmd(workdir, *args, cores: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        "--nocolor",
        *args,
    ]


def run_snakemake(workdir, *args, check: bool = True, cores: int = 2, timeout: int = 900):
    """Run snakemake in `workdir`; on failure show the tail of its output and logs."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        snakemake_cmd(workdir, *args, cores=cores),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=workdir,  # --configfile paths are relative to the working directory
    )
    if check and proc.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted(Path(workdir, "logs").rglob("*.log"))[-5:]
        )
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stderr[-6000:]}\n{logs}")
    return proc


# A Snakefile that includes the workflow's, then evaluates expressions in its namespace
# (rules parsed, input functions and derived values defined) and writes them as JSON.
_PARSE = """
include: {snakefile!r}

import json
from types import SimpleNamespace

with open("parsed.json", "w") as fh:
    json.dump({{name: eval(expr) for name, expr in {exprs!r}.items()}}, fh, default=str)
"""


def parse_workflow(tmp, configfile, exprs: dict[str, str]) -> dict:
    """The workflow parsed by Snakemake with `configfile` (`--list-rules`: nothing runs), and
    the value of each expression of `exprs` (name -> Python expression evaluated where the
    rules are defined: `config`, `MODELS`, input functions called with
    `SimpleNamespace(cohort=..., model=...)` as wildcards; per-tissue rules' functions take
    `unit=`), JSON-decoded."""
    tmp = Path(tmp)
    (tmp / "Snakefile").write_text(_PARSE.format(snakefile=str(REPO / "Snakefile"), exprs=exprs))
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow" / "scripts")}
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", "Snakefile", "--configfile", str(configfile),
           "--list-rules", "--nocolor"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp / "parsed.json").read_text())
