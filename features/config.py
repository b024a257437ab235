"""Typed configuration shared by every layer, loaded once from configs/ at the edge.

Functions take these frozen objects as arguments; nothing below the CLI reads
a file. Unknown keys are refused so a typo in YAML is an error, not a default.
"""

from __future__ import annotations

import codecs
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.contract import NO_OFFER, ContractError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"

M = TypeVar("M", bound=BaseModel)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeaturesConfig(Frozen):
    """How features and churn labels are defined."""

    horizon_days: int = Field(90, gt=0, description="churned = no order in [cutoff, cutoff + horizon)")
    orphans: str = Field("error", pattern="^(error|drop)$", description="rows for unknown customers")
    top_interests: int = Field(20, ge=0, description="interests that become their own 0/1 feature")
    max_category_levels: int = Field(30, gt=1, description="rarer levels of a custom attribute become 'other'")
    date_format: str | None = Field(
        None,
        description="strptime format of every text date, e.g. '%m/%d/%Y'; None: ISO 8601, or one unambiguous "
        "common format per column",
    )

    encoding: str = Field("utf-8", description="text encoding of CSV files, e.g. 'latin-1' or 'cp1252'")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"encoding {value!r} is not a known text encoding such as 'utf-8' or 'latin-1'") from exc
        return value

    @field_validator("date_format")
    @classmethod
    def _strptime_format(cls, value: str | None) -> str | None:
        if value is None:
            return value
        example = datetime(2001, 2, 3, 4, 5, 6)
        try:
            datetime.strptime(example.strftime(value), value)
        except ValueError as exc:
            raise ValueError(f"date_format {value!r} is not a strptime format such as '%m/%d/%Y': {exc}") from exc
        if "%" not in value:
            raise ValueError(f"date_format {value!r} has no % field; expected e.g. '%m/%d/%Y'")
        return value


class Offer(Frozen):
    """One offer: what a send costs and what a redemption costs."""

    name: str
    cost_per_send: float = Field(0.0, ge=0, description="fixed cost of sending, e.g. postage or SMS")
    cost_share_of_order: float = Field(0.0, ge=0, le=1, description="share of the order value given up, e.g. 0.2")
    cost_per_redemption: float = Field(0.0, ge=0, description="fixed cost if redeemed, e.g. the shipping fee")
    min_orders: int = Field(0, ge=0, description="eligible only after this many orders")


DEFAULT_OFFERS = (
    Offer(name="free_shipping", cost_per_send=0.05, cost_per_redemption=5.0),
    Offer(name="discount_20", cost_per_send=0.05, cost_share_of_order=0.2),
)


class OfferCatalog(Frozen):
    offers: tuple[Offer, ...] = DEFAULT_OFFERS
    margin_per_order: float | None = Field(
        None, gt=0, description="value of a conversion; None = each customer's own average order x margin_rate"
    )
    margin_rate: float = Field(0.3, gt=0, le=1, description="gross margin on an order's value")

    @model_validator(mode="after")
    def _names(self):
        names = [o.name for o in self.offers]
        if len(set(names)) != len(names) or NO_OFFER in names:
            raise ValueError(f"offer names must be unique and not {NO_OFFER!r}: {names}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.offers)


def load_config(model: type[M], path: str | Path, **parts: str | Path) -> M:
    """Read one YAML file into a frozen model; ``parts`` fill whole sections from their own files
    (``lifecycle=configs/lifecycle.yaml``), so a setting lives in one file however many layers read it.

    A missing file or a bad setting is a ContractError naming the file, so the CLI exits 2 with the message.
    """
    data = _yaml(Path(path))
    for section, part in parts.items():
        if section in data:
            raise ContractError(f"{path}: {section!r} settings live in {Path(part).name}; move them there")
        data[section] = _yaml(Path(part))
    try:
        return model.model_validate(data)
    except Exception as exc:
        raise ContractError(f"{path}: {exc}") from exc


def _yaml(path: Path) -> dict:
    if not path.is_file():
        raise ContractError(f"{path}: no such settings file; copy it from the repository's configs/ or pass --configs")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML ({exc})") from exc
    if data is not None and not isinstance(data, dict):
        raise ContractError(f"{path}: expected settings (key: value lines), got {type(data).__name__}")
    return dict(data or {})
