"""The champions every scoring path holds: the churn, offer and value models, any of them possibly absent.

Either the churn or the offer model may be absent, not both: without a churn champion every churn field is
null and ``churn_note`` says why; without an offer champion the scorer recommends ``none`` and ``offer_note``
says why. The value model comes with the churn champion; without it every value field is null and
``value_note`` says why. ``serving.models`` loads them from the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from features.value import VALUE_COLUMNS
from modeling.churn_model import ChurnModel
from modeling.errors import ModelError, NoChampion
from modeling.offer_model import OfferModel

if TYPE_CHECKING:
    from modeling.value_model import ValueModel

log = logging.getLogger(__name__)

NO_CHURN = "no churn model"  # how churn_model_version starts when there is none
NO_VALUE = "no value model"  # how value_model_version starts when there is none


@dataclass(frozen=True)
class Models:
    """What every scoring path uses: the churn and offer champions, either one possibly absent (not both)."""

    churn: ChurnModel | None
    offer: OfferModel | None
    offer_note: str  # the offer model's label, or why there is none
    churn_note: str | None = None  # why there is no churn model (None when there is one)
    value: ValueModel | None = None  # expected spend over the horizon, from the churn champion's run
    value_note: str | None = None  # why there is no value model (None when there is one)

    def __post_init__(self):
        if self.churn is None and self.offer is None:
            raise NoChampion(f"no model to score with: {self.churn_note}; {self.offer_note}")
        if self.churn is None and not self.churn_note:
            raise ValueError("Models without a churn model need churn_note saying why")
        if self.value is None and not self.value_note:
            raise ValueError("Models without a value model need value_note saying why")

    @property
    def churn_label(self) -> str:
        """The churn model's label, or why there is none (what outputs carry as churn_model_version)."""
        return self.churn.label if self.churn is not None else str(self.churn_note)

    @property
    def value_label(self) -> str:
        """The value model (its kind and the churn version it came with), or why there is none."""
        if self.value is None:
            return str(self.value_note)
        return f"{self.value.kind} value model of {self.churn_label}"

    @property
    def versions(self) -> dict[str, str]:
        return {"churn": self.churn_label, "offer": self.offer_note, "value": self.value_label}

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature any model reads, churn model's order first."""
        churn = () if self.churn is None else self.churn.features
        extra = [] if self.offer is None else [f for f in self.offer.features if f not in churn]
        return (*churn, *extra)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every column scoring reads: the features, then the value model's inputs and the value columns
        (``features.value``) stored beside them."""
        if self.value is None:
            return self.features
        return tuple(dict.fromkeys((*self.features, *self.value.features, *VALUE_COLUMNS)))

    def check_features(self, columns: Iterable[str], *, source: str) -> None:
        """Refuse when the builders' columns differ from a model's feature list (names both sides)."""
        have = set(columns)
        churn = [] if self.churn is None else [(self.churn.label, self.churn.features)]
        value = [] if self.value is None else [(self.value_label, self.inputs[len(self.features) :])]
        for label, wanted in (*churn, *self._offer_features(), *value):
            missing = [f for f in wanted if f not in have]
            if missing:
                raise ModelError(
                    f"{label} expects {len(wanted)} features but {source} lacks {len(missing)}: {missing[:10]}; "
                    "retrain the model on the current builders or rebuild the features"
                )
        extra = sorted(have - set(self.inputs))
        if extra:
            log.warning("%s has %d columns no model reads (first: %s)", source, len(extra), extra[:5])

    def _offer_features(self):
        return [] if self.offer is None else [(self.offer.label, self.offer.features)]
