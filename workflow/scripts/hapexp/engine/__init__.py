"""Inference engine: model-agnostic batching, prefetch, GPU memory, precision modes and audit, predict and ISM."""
