"""Shared fixtures: one demo workflow run reused by the end-to-end tests."""

from __future__ import annotations

import pytest
import yaml

from tests.workflow_utils import REPO, run_snakemake


def demo_config(small: bool = False) -> dict:
    """The default demo config; `small` = a reduced cohort for the rerun/resume tests.

    The end-to-end truth checks need the full demo's power (100 people, 30 genes);
    determinism and resume only need every rule to run, so they use 50 people,
    10 genes, 2 chunks and a 3 x 3 nested CV to keep `make test` short.
    """
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    if small:
        config["simulate"].update(n_individuals=50, n_genes=10, chromosome_length=200_000)
        config["genes"]["chunks"] = 2
        config["elasticnet"].update(outer_folds=3, inner_folds=3)
    return config


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models run fastest single-threaded, and the test machine is shared."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def run_demo(workdir, small: bool = False):
    """A complete demo run in `workdir` (results/, resources/demo/ inside)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(demo_config(small)))
    run_snakemake(workdir, "--configfile", "config.yaml")
    return workdir


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("small_demo"), small=True)
