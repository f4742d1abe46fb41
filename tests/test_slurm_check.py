"""tests/slurm/check.py compares two runs: floats up to BLAS reordering, everything else exactly."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent / "slurm"))
import check  # noqa: E402


def _run(
    root: Path,
    slope_factor=1.0,
    variant="chr1_5_A_G",
    line="g1\t0.125\tchr1_5_A_G\n",
    weight_noise=0.0,
    step=3,
):
    (root / "results").mkdir(parents=True)
    df = pd.DataFrame(
        {
            "variant_id": ["chr1_3_C_T", variant],
            "ma_count": np.array([3, 7], dtype="int32"),
            "slope": np.array([0.1, -0.3]) * slope_factor,
        }
    )
    df.to_parquet(root / "results" / "nominal.parquet")
    (root / "results" / "top.tsv").write_text("gene\tr\tvariant\n" + line)
    np.savez(root / "results" / "pred.npz", x=np.array([1.5, 2.5], dtype="float32"))
    import torch

    w = torch.tensor([0.25, -1.5]) * (1 + weight_noise)
    torch.save({"layer.weight": w, "step": step, "history": [{"r": 0.5}]}, root / "results" / "weights.pt")


def test_blas_reordering_passes_real_differences_fail(tmp_path):
    base = tmp_path / "a"
    _run(base)
    cases = {
        "blas": ({"slope_factor": 1 + 1.2e-14, "line": "g1\t0.12500000000000003\tchr1_5_A_G\n"}, []),
        "slope": ({"slope_factor": 1 + 1e-7}, ["nominal.parquet"]),
        "variant": ({"variant": "chr1_5_A_C"}, ["nominal.parquet"]),
        "tsv_number": ({"line": "g1\t0.126\tchr1_5_A_G\n"}, ["top.tsv"]),
        "tsv_text": ({"line": "g1\t0.125\tchr1_5_A_C\n"}, ["top.tsv"]),
        # torch files (fine-tuned weights, checkpoints): float32 rounding passes, real changes fail
        "weights_rounding": ({"weight_noise": 2e-7}, []),
        "weights": ({"weight_noise": 1e-4}, ["weights.pt"]),
        "weights_step": ({"step": 4}, ["weights.pt"]),
    }
    for name, (kwargs, failing) in cases.items():
        other = tmp_path / name
        _run(other, **kwargs)
        problems = check.check_results(base, other, dirs=("results",))
        assert [p.split(":")[0] for p in problems] == [f"results/{f}" for f in failing], (name, problems)
