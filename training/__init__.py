"""Model training: datasets over cutoffs, churn model, baselines, tuning, evaluation, registry."""
