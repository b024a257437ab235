"""Next-best-offer training, one module a step.

``dataset`` (the offers log as rows, with the customer's features as of each send) ->
``holdout`` (the latest campaign days, or a random share per arm when the log has too few days) ->
``conversion_value`` (what a conversion is worth) -> ``propensity`` (how sends were assigned) ->
``tuning`` -> ``candidates`` (every uplift learner of ``uplift`` fitted, with its policy) ->
``evaluation`` (off-policy value, ``offpolicy``, of every policy on the held-out sends; the learner
and the fallback of ``policy``) -> ``registry`` (the MLflow run, the pyfunc, the champion gate),
``model_card`` and ``outputs`` (``models/offers/``). ``pipeline.train_offers`` strings them together.
Policies are judged by off-policy (DR) value, never by redemption rate.

On the demo data (20,000 customers, seed 7, one tuning trial) the latest 4 of
13 campaign days are held out; the shipped T-learner policy earns 90% of the
oracle's true incremental profit per send (1.37 vs 1.52) and beats every
single-offer policy (tests/training/test_offers_demo.py). The X-learner's would have
earned 1.45, but its DR gain over the T-learner (+0.07 ± 0.05) was not
significant, so the simpler learner shipped. Small or noisy real logs usually
can't confirm a personalised policy; the constant-policy fallback then keeps
the shipped policy from losing money.
"""
