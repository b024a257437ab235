"""What one batch or Spark scoring run scores: one frozen value, made once at the edge and passed down whole."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.config import FeaturesConfig
from features.dates import parse_cutoff
from serving.champions import Models
from serving.config import ServingConfig
from serving.schema import as_of_text


@dataclass(frozen=True)
class ScoringJob:
    """Every customer's scores as of one instant, with these champions and settings.

    ``as_of`` may be given as text, a date or an instant in any time zone; it is parsed once, here, to the
    naive UTC cutoff (features see only data strictly before it). The lifecycle rules are ``config.lifecycle``.
    """

    as_of: pd.Timestamp
    models: Models
    config: ServingConfig
    features: FeaturesConfig  # how the builders build (configs/features.yaml)
    reasons: bool = False  # add the top churn reasons

    def __post_init__(self):
        object.__setattr__(self, "as_of", parse_cutoff(self.as_of))

    @property
    def day(self) -> str:
        """The as_of text every output of the job carries (``serving.schema.as_of_text``)."""
        return as_of_text(self.as_of)
