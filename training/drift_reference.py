"""The churn model's drift reference: how the rows the scoring model learned from are distributed.

Written with the model's files and logged on its run, so ``retain score`` can compare the population it
scores with the one the champion was trained on (``serving.drift``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract import CUSTOMER_ID
from features.io import write_text_atomic
from serving.drift import REFERENCE_FILE, reference
from training.datasets import CUTOFF, Rows


def write_reference(folder: Path, *rows: Rows) -> Path:
    """``folder/drift_reference.json`` over the given rows together (the refit and recalibration rows), with the
    spread between their cutoffs."""
    X = pd.concat([r.X for r in rows], ignore_index=True)
    keys = pd.concat([r.keys for r in rows], ignore_index=True)
    return write_text_atomic(reference(X, keys[CUSTOMER_ID], keys[CUTOFF]).to_json(), Path(folder) / REFERENCE_FILE)
