"""Torch files written byte-reproducibly (the oracle, fine-tuned weights and checkpoints).

Apart from hapexp.io so that the rules without torch in their env (tests/test_envs.py
follows imports) do not import it."""

from __future__ import annotations

from pathlib import Path

from hapexp.io import atomic_output


def torch_bytes(obj) -> bytes:
    """torch.save's bytes, identical for identical objects: written through a buffer, since
    a saved file's zip records are named after the file (a random temporary name here)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_torch(obj, path) -> None:
    """torch.save `obj` to `path`, atomically and byte-reproducibly (`torch_bytes`)."""
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(torch_bytes(obj))
