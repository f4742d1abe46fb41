"""Linear baselines: the cis-eQTL scan (tensorQTL statistics) and its eGenes, glmnet's elastic
net and PredictDB's recipe around it, PredictDB files, q-values; SuSiE fine-mapping."""
