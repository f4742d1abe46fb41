"""Reruns are byte-identical; a run killed mid-job resumes to the same results.

The kill lands at the worst moment for a non-atomic writer: the stalled output
is complete in its temporary file but not yet renamed: tests/stall/sitecustomize.py,
put on every job's PYTHONPATH by the test, pauses that rename (`os.replace`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import demo_config, run_demo
from tests.workflow_utils import run_snakemake, snakemake_cmd

pytestmark = [pytest.mark.slow, pytest.mark.long]

TABLE_SUFFIXES = (".tsv", ".parquet", ".md", ".json", ".gz", ".npz")


def _tables(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted((root / "results").rglob("*")):
        if p.is_file() and p.name.endswith(TABLE_SUFFIXES):
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _assert_same_tables(a: Path, b: Path):
    ta, tb = _tables(a), _tables(b)
    assert sorted(ta) == sorted(tb)
    differ = [k for k in ta if ta[k] != tb[k]]
    assert not differ, f"tables differ between runs: {differ}"


def test_two_runs_from_scratch_are_byte_identical(small_demo, tmp_path_factory):
    second = run_demo(tmp_path_factory.mktemp("small_demo_again"), small=True)
    _assert_same_tables(small_demo, second)


def _run_until_killed(workdir: Path, stall_glob: str, tmp_glob: str, timeout: float = 600) -> None:
    """Start the workflow, SIGKILL it (and its jobs) once a stalled temp file exists."""
    stall = str(Path(__file__).with_name("stall"))
    path = os.pathsep.join(p for p in (stall, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path, "HAPEXP_TEST_STALL": f"{stall_glob}:120"}
    proc = subprocess.Popen(
        snakemake_cmd(workdir, "--configfile", "config.yaml"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=workdir,
    )
    deadline = time.time() + timeout
    try:
        while not list(workdir.glob(tmp_glob)):
            assert proc.poll() is None, "workflow ended before reaching the stalled output"
            assert time.time() < deadline, "stalled output never appeared"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize(
    "stage, stall_glob, tmp_glob",
    [
        ("predict", "*/predict/oracle/000.parquet", "results/demo/predict/oracle/.000.parquet.*.tmp*"),
        ("elasticnet", "*/elasticnet/000.metrics.tsv", "results/demo/elasticnet/.000.metrics.tsv.*.tmp*"),
    ],
)
def test_killed_run_resumes_to_identical_results(small_demo, tmp_path_factory, stage, stall_glob, tmp_glob):
    workdir = tmp_path_factory.mktemp(f"killed_{stage}")
    (workdir / "config.yaml").write_text(yaml.safe_dump(demo_config(small=True)))
    _run_until_killed(workdir, stall_glob, tmp_glob)
    assert not (workdir / stall_glob.replace("*", "results/demo", 1)).exists()
    run_snakemake(workdir, "--configfile", "config.yaml", "--unlock")
    run_snakemake(workdir, "--configfile", "config.yaml", "--rerun-incomplete")
    _assert_same_tables(small_demo, workdir)
    leftovers = [p for p in (workdir / "results").rglob(".*.tmp*")]
    assert not leftovers, leftovers
