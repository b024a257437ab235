"""The models training and serving share: each estimator once, with its predictor, artifact format and fast path.

``prior_boosting`` and ``churn_model`` (the churn estimator and its hot path), ``offer_model`` (the uplift
learner's boosters and spec, scored one way everywhere), ``economics`` (offer costs, margin, profit, choice,
budget), ``value_model``, ``drift`` (the reference and PSI), ``lifecycle`` (stages, risk bands, contact times),
``encoding`` (feature columns to the matrix LightGBM reads). Imports only ``features``.
"""
