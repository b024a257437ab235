"""The options, input loading and error handling every command shares: a user's mistake is exit 2 with a message."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from features.config import CONFIG_DIR, FeaturesConfig, OfferCatalog, load_config
from features.contract import ContractError

DataDir = typer.Option(Path("data/demo"), "--data", help="folder with one CSV or Parquet file per table")
Configs = typer.Option(CONFIG_DIR, "--configs", help="folder with the YAML configs")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def orphans_choice(value: str | None) -> str | None:
    """--orphans: error or drop, else exit 2 naming the choices."""
    if value is not None and value not in ("error", "drop"):
        raise typer.BadParameter(f"{value!r} is not one of 'error', 'drop'")
    return value


def instant(value: str | None) -> str | None:
    """An option's date: ISO 8601 (2026-06-30, 2026-06-30T14:00, with a zone or not) that exists, else exit 2."""
    if value is None:
        return None
    import pandas as pd

    if not INSTANT.match(value.strip()):
        raise typer.BadParameter(f"{value!r} is not a date; expected YYYY-MM-DD (or YYYY-MM-DDTHH:MM), e.g. 2026-06-30")
    try:
        pd.Timestamp(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date that exists ({exc})") from exc
    return value.strip()


def refuse(exc: Exception | str) -> None:
    """Exit 2 with ``error: <exc>`` in red on stderr: what a refusal looks like in every command."""
    typer.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


def fail_on_contract_errors(func):
    """Bad input exits with status 2 and a one-paragraph message, not a traceback."""
    from functools import wraps

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ContractError as exc:
            refuse(exc)
        except OSError as exc:  # a read-only or full disk, a folder where a file belongs: say which, no traceback
            where = exc.filename or "a file"
            refuse(f"{where}: {exc.strerror or exc}; nothing was replaced")

    return wrapper


def load_inputs(data: Path, configs: Path, orphans: str | None = None):
    """The features config, the offer catalog and the validated tables every data command starts from."""
    from features.sources import load_tables

    features = load_config(FeaturesConfig, configs / "features.yaml")
    catalog = load_config(OfferCatalog, configs / "offers.yaml")
    tables = load_tables(
        data,
        offers=catalog.names,
        orphans=orphans or features.orphans,
        date_format=features.date_format,
        encoding=features.encoding,
    )
    return features, catalog, tables
