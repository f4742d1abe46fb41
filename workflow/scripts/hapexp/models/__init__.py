"""Model registry, one module per architecture (enformer, borzoi, alphagenome, oracle, custom).

`load_model(spec, device)` → `LoadedModel`: forward takes one-hot (B, L, 4) and returns
(B, bins, tracks); `LoadedModel.tracks` names every track (hapexp.models.tracks).
"""

from hapexp.models.enformer import build_enformer_tiny
from hapexp.models.enformer import set_tf_gamma as _set_tf_gamma
from hapexp.models.registry import LoadedModel, load_model

__all__ = ["LoadedModel", "load_model", "build_enformer_tiny", "_set_tf_gamma"]
