"""retain score: every customer's scores as of a date, the drift check and the campaign export."""

from __future__ import annotations

from pathlib import Path

import typer

from retain.options import Configs, DataDir, fail_on_contract_errors, instant, load_inputs, orphans_choice, refuse


@fail_on_contract_errors
def score_cmd(
    as_of: str = typer.Option(
        ..., "--as-of", callback=instant, help="score as of this instant (YYYY-MM-DD); only rows before it (required)"
    ),
    data: Path = DataDir,
    out: Path = typer.Option(
        None, help="file to write; the extension picks the format: .parquet or .csv (default: outputs/scores.parquet)"
    ),
    csv: bool = typer.Option(False, "--csv", help="write CSV (default file outputs/scores.csv; --out must end .csv)"),
    reasons: bool = typer.Option(False, "--reasons", help="add the top 3 churn reasons per customer, in words"),
    campaign: Path = typer.Option(
        None, help="also write the campaign export (customer_id, action, offer, send_at, ...) to this .csv file"
    ),
    chunk_size: int = typer.Option(None, min=1, help="customers per chunk (default: batch.chunk_size in serving.yaml)"),
    store: Path = typer.Option(None, help="feature snapshot to refresh (default: store in serving.yaml)"),
    no_store: bool = typer.Option(False, "--no-store", help="do not refresh the service's feature snapshot"),
    no_track: bool = typer.Option(False, "--no-track", help="do not log the run (counts, distribution) to MLflow"),
    orphans: str = typer.Option(
        None, callback=orphans_choice, help="rows for customers missing from customers: error or drop (default: config)"
    ),
    configs: Path = Configs,
) -> None:
    """Score every customer as of a date (churn, risk band, lifecycle stage, next action and when, offer)."""
    from analytics.plotting import log_value_plot
    from serving.batch import run_batch
    from serving.config import ServingConfig
    from serving.drift import table_path
    from serving.job import ScoringJob
    from serving.models import ModelError, load_models
    from serving.writer import BatchError

    out, fmt = score_format(out, csv)
    if campaign is not None and campaign.suffix != ".csv":
        raise typer.BadParameter(f"{campaign}: the campaign export is CSV; name it *.csv", param_hint="--campaign")
    serving_cfg = ServingConfig.load(configs)
    features_cfg, _, tables = load_inputs(data, configs, orphans)
    try:
        models = load_models(serving_cfg)
        if campaign is not None and serving_cfg.campaign.priority != "profit" and models.value is None:
            raise ModelError(
                f"campaign.priority {serving_cfg.campaign.priority} needs a value model, and there is none "
                f"({models.value_label}); set campaign.priority: profit in {configs / 'serving.yaml'}"
            )
        result = run_batch(
            tables,
            ScoringJob(as_of, models, serving_cfg, features_cfg, reasons=reasons),
            out=out,
            fmt=fmt,
            chunk_size=chunk_size,
            store=None if no_store else (store or serving_cfg.store_path),
            track=not no_track,
        )
    except (ModelError, BatchError) as exc:
        refuse(exc)
    if result.run_id is not None and models.value is not None:
        log_value_plot(result.run_id, out, models.value.horizon_days)
    rate = result.customers / max(result.seconds, 1e-9)
    typer.echo(
        f"scored {result.customers:,} customers as of {as_of} into {out} in {result.seconds:.1f}s ({rate:,.0f}/s)"
    )
    if result.drift.table is not None and result.drift.drifted.empty:
        typer.echo(result.drift.message(table_path(out)))
    else:  # features drifted, or drift could not be checked: say so where warnings go
        where = None if result.drift.table is None else table_path(out)
        typer.secho(f"warning: {result.drift.message(where)}", fg="yellow", err=True)
    unscored = int(result.summary["churn_unscored"])
    if models.churn is None:
        typer.echo(f"{models.churn_label}: churn fields are null for all {unscored:,}; offers from {models.offer_note}")
    elif unscored:
        typer.echo(f"{unscored:,} customers without an order before {as_of} have no churn probability (prospects)")
    if result.store is not None:
        typer.echo(f"refreshed the feature snapshot {result.store}")
    if campaign is not None:
        from serving.campaign import CampaignError, write_campaign

        budget = serving_cfg.campaign
        try:
            sends = write_campaign(out, campaign, budget)
        except CampaignError as exc:
            refuse(f"{campaign}: {exc}")
        typer.echo(f"wrote {len(sends):,} sends to the campaign export {campaign}")
        if sends.over_budget:
            typer.echo(
                f"budget: {sends.offers:,} offers (campaign.max_offers {budget.max_offers:,}, first by "
                f"{budget.priority}); {sends.over_budget:,} more get their action without an offer"
            )


def score_format(out: Path | None, csv: bool) -> tuple[Path, str]:
    """The scores file and its format, from the extension; --csv with a file that is not .csv is refused."""
    if out is None:
        out = Path("outputs/scores.csv" if csv else "outputs/scores.parquet")
    kinds = {".parquet": "parquet", ".csv": "csv"}
    fmt = kinds.get(out.suffix.lower())
    if fmt is None:
        raise typer.BadParameter(f"{out}: name the scores file *.parquet or *.csv (the extension picks the format)")
    if csv and fmt != "csv":
        raise typer.BadParameter(
            f"--csv asks for CSV but {out} ends in {out.suffix}; name it *.csv", param_hint="--out"
        )
    return out, fmt
