"""Training on the cohort: splits of people and genes, track-combination heads, fine-tuning."""
