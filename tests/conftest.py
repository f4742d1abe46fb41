"""Shared fixtures: one demo workflow run reused by the end-to-end tests."""

from __future__ import annotations

import pytest
import yaml

from tests.workflow_utils import REPO, run_snakemake


def demo_config() -> dict:
    """The default demo config (the reduced e2e config is the default demo itself)."""
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models run fastest single-threaded, and the test machine is shared."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """A complete demo run in a fresh directory (results/, resources/demo/ inside)."""
    workdir = tmp_path_factory.mktemp("demo")
    (workdir / "config.yaml").write_text(yaml.safe_dump(demo_config()))
    run_snakemake(workdir, "--configfile", "config.yaml")
    return workdir
