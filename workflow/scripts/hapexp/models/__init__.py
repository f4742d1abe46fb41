"""Models: one package per architecture (enformer, borzoi, alphagenome, custom) and the demo's oracle.

Each architecture's package `__init__` declares its kinds (`hapexp.models.kind.Kind`:
defaults, derived values, checks; no torch) and its `load` module loads them;
`spec.model_spec` resolves a config against the declarations (without torch, at
Snakemake parse time) and `registry.load_model(spec, device)` → `LoadedModel`: forward
takes one-hot (B, L, 4) and returns (B, bins, tracks); `LoadedModel.tracks` names every
track (`tracks`); what only some architectures can do is asked of the loaded model
(`LoadedModel` capabilities). This package imports nothing itself, so that importing
one architecture does not import the others' packages.
"""
