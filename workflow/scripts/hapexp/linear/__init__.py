"""Linear baselines: the cis-eQTL scan (tensorQTL statistics), the PredictDB elastic net, PredictDB files, q-values."""
