"""The churn model's drift reference: how the rows the scoring model learned from are distributed.

Written with the model's files and logged on its run, so ``retain score`` can compare the population it
scores with the one the champion was trained on (``serving.drift``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract import CUSTOMER_ID
from features.io import write_text_atomic
from modeling.drift import REFERENCE_FILE, reference
from training.datasets import CUTOFF, Rows


def write_reference(folder: Path, refit: Rows, recalibrate: Rows) -> Path:
    """``folder/drift_reference.json`` over the refit and recalibration rows together, with the spread of the
    recalibration cutoffs (the latest populations the model was fitted and calibrated on) from them."""
    X = pd.concat([refit.X, recalibrate.X], ignore_index=True)
    keys = pd.concat([refit.keys, recalibrate.keys], ignore_index=True)
    ref = reference(X, keys[CUSTOMER_ID], keys[CUTOFF], recent=recalibrate.keys[CUTOFF].unique())
    return write_text_atomic(ref.to_json(), Path(folder) / REFERENCE_FILE)
