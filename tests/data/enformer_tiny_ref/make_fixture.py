"""Regenerate the Enformer reference fixture (run once, with the *old* transformers).

The fixture pins what enformer-pytorch 0.8.12 computed under transformers 4.56.2,
the version it pins, before hapexp moved to transformers 4.57.6 (what borzoi-pytorch
0.5.1 needs): `model/` is a tiny Enformer written by `save_pretrained`, `io.npz` a
fixed one-hot input (A, C, G, T, N rows) and its fp32 output. tests/test_models.py
loads `model/` under the current transformers and compares at rtol 1e-5.

    python tests/data/enformer_tiny_ref/make_fixture.py   # writes next to this file
"""

from pathlib import Path

import numpy as np
import torch
import transformers
from enformer_pytorch import Enformer

HERE = Path(__file__).resolve().parent


def main():
    torch.manual_seed(5)
    model = Enformer.from_hparams(
        dim=48, depth=1, heads=2, attn_dim_key=16, dim_divisible_by=8,
        output_heads={"human": 4}, target_length=16, use_tf_gamma=False,
    )  # fmt: skip
    with torch.no_grad():  # He-normal, as hapexp's enformer_tiny: a sequence-sensitive output
        for m in model.modules():
            if isinstance(m, torch.nn.Conv1d | torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=(2.0 / m.weight[0].numel()) ** 0.5)
    model.eval()
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, size=(3, 2048))  # 4 = N (all-zero row)
    onehot = np.zeros((3, 2048, 4), np.float32)
    for k in range(4):
        onehot[codes == k, k] = 1
    with torch.inference_mode():
        out = model(torch.from_numpy(onehot), head="human").numpy()
    # shared trunk tensors: safetensors refuses them
    model.save_pretrained(HERE / "model", safe_serialization=False)
    np.savez_compressed(HERE / "io.npz", onehot=onehot.astype(np.uint8), output=out,
                        transformers=np.array(transformers.__version__))  # fmt: skip
    print(f"transformers {transformers.__version__}: output {out.shape}, mean {out.mean():.6g}")


if __name__ == "__main__":
    main()
