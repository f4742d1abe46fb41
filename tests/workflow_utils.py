"""Running the workflow from tests: a fresh working directory per run, repo Snakefile."""

from __future__ import annotations

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
