"""What scoring reads, built from the contract tables: the rows the batch job scores and stores in the snapshot."""

from __future__ import annotations

import pandas as pd

from features.build import build_features
from features.contract import CUSTOMER_ID
from features.sources import Tables
from features.value import value_columns
from modeling.lifecycle import ACTION, CONTACT_AT, STAGE, lifecycle
from serving.job import ScoringJob
from serving.schema import BASE_ACTION, BASE_CONTACT, BASE_STAGE, instant_texts


def snapshot_frame(
    tables: Tables, job: ScoringJob, *, vocabulary: dict | None = None, progress: bool = True
) -> pd.DataFrame:
    """Every customer's features as of ``job.as_of``, the value columns (``features.value``) when there is a value
    model, and the base lifecycle stage, its next action and when to contact (ISO 8601 UTC text), the
    ``LIFECYCLE_COLUMNS``.

    Built with the same ``build_features`` call training uses (only the cutoff differs). ``vocabulary``: the
    whole population's, when ``tables`` hold only some customers (a Spark partition).
    """
    models = job.models
    beside = (value_columns,) if models.value is not None else ()  # the value model's own columns
    frame = build_features(
        tables, cutoff=job.as_of, config=job.features, vocabulary=vocabulary, progress=progress, beside=beside
    )
    models.check_features(frame.columns, source=f"features built as of {job.day}")
    base = lifecycle(tables, as_of=job.as_of, churn_probability=None, config=job.config.lifecycle)
    base = base.set_index(CUSTOMER_ID).reindex(frame.index.astype("string"))
    frame[BASE_STAGE] = base[STAGE].to_numpy()
    frame[BASE_ACTION] = base[ACTION].to_numpy()
    frame[BASE_CONTACT] = pd.array(instant_texts(base[CONTACT_AT]), dtype="string")
    return frame
