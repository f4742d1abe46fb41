"""The kind `oracle`: the demo's fixed motif model (hapexp.models.oracle), declared without torch."""

from __future__ import annotations

from hapexp.models.kind import Kind


class Oracle(Kind):
    """Bins of 128 bp tiling the whole input (no crop); weights: the file rule simulate_demo writes."""

    name = "oracle"
    defaults = {"bin_size": 128, "crop": 0}
    loader = "hapexp.models.oracle:load_oracle"
    local_weights = True


KINDS = (Oracle,)
