"""build_features(tables, cutoff=...): one model-ready row per customer.

Training, batch scoring and the service all call this same function; only the
cutoff differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
from rich.progress import Progress

from features import value
from features.builders import REGISTRY
from features.config import FeaturesConfig
from features.contract import CUSTOMER_ID
from features.snapshot import KEY, Snapshot
from features.sources import Tables


def build_features(
    tables: Tables,
    *,
    cutoff,
    config: FeaturesConfig | None = None,
    vocabulary: dict | None = None,
    progress: bool = False,
    beside: Sequence[Callable[[Snapshot, FeaturesConfig], pd.DataFrame]] = (),
) -> pd.DataFrame:
    """Features as of ``cutoff`` (required: never the data's last date by default).

    Only rows strictly before the cutoff are seen. Rows are the customers known
    before the cutoff, sorted by customer_id; a missing table gives NaN features.
    ``vocabulary`` (from :func:`learn_vocabulary` on the whole population) is for
    builds over some of the customers: without it, rare levels and top interests
    would be chosen among those customers only. ``beside``: more columns built
    like a builder's ``build`` on the same snapshot (``features.value``'s, which
    the models read but which are not features), so nothing is loaded twice.
    """
    config = config or FeaturesConfig()
    with Snapshot(tables, cutoff=cutoff, vocabulary=vocabulary) as snap:
        ids, keys = snap.population(), snap.population(key=True)
        parts = []
        builds = [builder.build for builder in REGISTRY] + list(beside)
        with Progress(transient=True, disable=not progress) as bar:
            task = bar.add_task(f"features as of {snap.cutoff:%Y-%m-%d}", total=len(builds))
            for build in builds:
                part = build(snap, config)  # keyed by cid (SQL builders) or customer_id
                part = part.reindex(keys if part.index.name == KEY else ids)
                part.index = ids
                parts.append(part)
                bar.advance(task)
    return pd.concat(parts, axis=1)


def learn_vocabulary(tables: Tables, *, cutoff, config: FeaturesConfig | None = None) -> dict:
    """Every builder's population-wide choices as of ``cutoff``, and the value columns' (``features.value``)
    (picklable: it travels to Spark executors)."""
    config = config or FeaturesConfig()
    with Snapshot(tables, cutoff=cutoff) as snap:
        learners = [b for b in REGISTRY if hasattr(b, "learn")] + [value]
        return {m.__name__: snap.learned(m.__name__, m.learn, config) for m in learners}


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model inputs in a feature table: everything but the key and the label."""
    return [c for c in frame.columns if c not in (CUSTOMER_ID, "churned")]
