"""AlphaGenome through alphagenome-pt: the kind `alphagenome`.

This module declares the kind (defaults and derived values; no torch); `load` holds
the code (weights, heads read out, track table).
"""

from __future__ import annotations

from hapexp.models.kind import Kind, config_error

HUB_ID = "RylieWeaver/alphagenome-pytorch"  # alphagenome-pt's converted weights


class AlphaGenome(Kind):
    """1,048,576 bp in, bins of `resolution` (1 or 128) out, no crop."""

    name = "alphagenome"
    defaults = {
        "crop": 0,
        "window": 1048576,
        "weights": HUB_ID,
        "fold": "all_folds",
        "organism": "human",
        "outputs": ["rna_seq", "cage"],
        "resolution": 128,
    }
    loader = "hapexp.models.alphagenome.load:load_alphagenome"

    @classmethod
    def derive(cls, spec: dict, cfg: dict, name: str) -> None:
        if int(spec["resolution"]) not in (1, 128):
            raise config_error(
                name, f"resolution {spec['resolution']} is not 1 or 128", "set resolution: 1 or 128"
            )
        spec["bin_size"] = int(spec["resolution"])


KINDS = (AlphaGenome,)
