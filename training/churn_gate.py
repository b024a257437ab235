"""The churn model's way through the registry: registered with the rows it was tested on, then gated.

The gate compares like with like: a champion tested on the very same rows is compared by its recorded
score, else rescored on this run's test rows, unless it was fitted on them.
"""

from __future__ import annotations

import zlib

import numpy as np

from features.contract import CUSTOMER_ID
from training.config import ChurnConfig
from training.datasets import CutoffPlan, Rows
from training.gate import Decision, Rescore, champion_score, gate
from training.registry import FITTED_TAG, deciding, register


def register_and_gate(
    model_uri: str, *, run_id: str, test: Rows, report: dict, plan: CutoffPlan, config: ChurnConfig
) -> tuple[str, Decision]:
    """A new version of ``config.model_name`` and the gate's decision on it; returns (version, decision)."""
    test_cutoff = plan.describe()["test_cutoff"]
    metric = f"test_{config.gate.metric}"
    score = report["models"]["model"][config.gate.metric]["value"]
    fitted_cutoffs = plan.describe()["refit_cutoffs"].split(",") + plan.describe()["recalibrate_cutoffs"].split(",")
    held_out = held_out_key(test, test_cutoff)
    version = register(
        model_uri,
        config.model_name,
        run_id=run_id,
        test_cutoff=held_out,
        metric=metric,
        score=score,
        fitted_through=max(c for c in fitted_cutoffs if c),
    )
    with deciding(config.model_name, version):
        decision = gate(
            config.model_name,
            version,
            gate=config.gate,
            test_cutoff=held_out,
            challenger_score=score,
            score_champion=lambda champ: rescore_champion(champ, test, score, test_cutoff, config),
        )
    return version, decision


def held_out_key(test: Rows, test_cutoff: str) -> str:
    """Names the test rows for the gate: the cutoff, and a checksum of which customers with which labels.

    Two runs share a recorded score only when they were tested on these very rows (the same cutoff date on
    other data is other rows).
    """
    keys = test.keys[CUSTOMER_ID].astype(str).to_numpy()
    order = np.argsort(keys, kind="stable")
    text = "\n".join(f"{k}:{int(v)}" for k, v in zip(keys[order], np.asarray(test.y)[order], strict=True))
    return f"{test_cutoff} ({len(keys):,} customers, crc32 {zlib.crc32(text.encode()):08x})"


def rescore_champion(champ, test: Rows, challenger_score: float, test_cutoff: str, config: ChurnConfig) -> Rescore:
    """The champion on this run's test rows, unless it was fitted on rows at (or after) this cutoff."""
    through = champ.tags.get(FITTED_TAG)
    if through is not None and through >= test_cutoff:
        return Rescore(
            None,
            None,
            f"v{champ.version} was fitted on cutoffs up to {through}, not before the test cutoff {test_cutoff}",
        )
    uri = f"models:/{champ.name}/{champ.version}"
    champion = champion_score(uri, test.X, test.y, config.gate.metric)
    return Rescore(champion, challenger_score, f"the {len(test.y):,} customers of test cutoff {test_cutoff}")
