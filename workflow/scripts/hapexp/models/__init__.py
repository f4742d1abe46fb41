"""Models: one module per architecture (enformer, borzoi, alphagenome, oracle, custom).

`registry.load_model(spec, device)` → `LoadedModel`: forward takes one-hot (B, L, 4) and
returns (B, bins, tracks); `LoadedModel.tracks` names every track (`tracks`). This
package imports nothing itself, so that importing one architecture does not import the
others' packages.
"""
