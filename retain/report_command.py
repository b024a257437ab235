"""retain report: the HTML retention report, with the models' sections when their folders are given."""

from __future__ import annotations

from pathlib import Path

import typer

from features.contract import ContractError
from retain.options import Configs, DataDir, fail_on_contract_errors, instant, load_inputs


@fail_on_contract_errors
def report_cmd(
    as_of: str = typer.Option(
        ..., "--as-of", callback=instant, help="report instant (YYYY-MM-DD); only rows strictly before it (required)"
    ),
    data: Path = DataDir,
    out: Path = typer.Option(Path("outputs/report.html"), help="self-contained HTML file to write"),
    period_days: int = typer.Option(None, help="KPI period length in days before --as-of (default: churn horizon)"),
    churn_scores: Path = typer.Option(
        None,
        help="CSV/Parquet with customer_id and churn_probability (null = not scored; churn_unscored_reason says "
        "why): adds at-risk stage and risk bands, and the drift section when its <stem>.drift.csv is beside it",
    ),
    churn_model_dir: Path = typer.Option(
        None, help="train-churn's folder (model_card.md, report.json, drivers.csv, plots/), e.g. models/churn"
    ),
    offer_model_dir: Path = typer.Option(
        None, help="train-offers' folder (model_card.md, policies.csv, learners.csv, qini.png), e.g. models/offers"
    ),
    drivers: Path = typer.Option(None, help="CSV of top churn drivers (e.g. feature, importance)"),
    cohorts_dir: Path = typer.Option(
        None, help="folder for cohorts.csv and cohort_heatmap.png (default: the report's folder)"
    ),
    backtest_dir: Path = typer.Option(
        None, help="retain backtest's folder (backtest.md, reliability.png): adds the Back-test section"
    ),
    configs: Path = Configs,
) -> None:
    """Write the retention report (KPIs, cohorts, lifecycle and contact plan, models) and cohorts.csv beside it."""
    import pandas as pd

    from analytics.churn_section import churn_section
    from analytics.cohorts import cohort_retention
    from analytics.config import AnalyticsConfig
    from analytics.offer_section import offer_section
    from analytics.report import write_report
    from features.contract import CUSTOMER_ID
    from serving.config import ServingConfig

    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"{out}: the report is one HTML file; name it *.html", param_hint="--out")
    if churn_scores is not None and churn_scores.suffix not in (".parquet", ".csv"):
        raise typer.BadParameter(
            f"{churn_scores}: expected retain score's .parquet or .csv", param_hint="--churn-scores"
        )
    for option, folder in (("--churn-model-dir", churn_model_dir), ("--offer-model-dir", offer_model_dir)):
        if folder is not None and not (folder / "model_card.md").exists():
            raise typer.BadParameter(f"{folder}: no model_card.md there", param_hint=option)
    if backtest_dir is not None and not (backtest_dir / "backtest.md").exists():
        raise typer.BadParameter(
            f"{backtest_dir}: no backtest.md there (retain backtest writes it)", param_hint="--backtest-dir"
        )
    acfg = AnalyticsConfig.load(configs)
    currency = ServingConfig.load(configs).currency
    cfg, catalog, tables = load_inputs(data, configs)
    prob = unscored = scores = None
    if churn_scores is not None:
        from features.io import read_scores

        scores = read_scores(churn_scores)
        if "churn_probability" not in scores.columns or CUSTOMER_ID not in scores.columns:
            raise ContractError(f"{churn_scores}: expected columns {CUSTOMER_ID} and churn_probability")
        scores = scores.set_index(scores[CUSTOMER_ID].astype(str), drop=False)
        prob = scores["churn_probability"]
        unscored = scores["churn_unscored_reason"] if "churn_unscored_reason" in scores.columns else None
    value = None
    if scores is not None and "predicted_value" in scores.columns:
        from analytics.value_section import value_section

        value = value_section(scores, currency=currency, horizon_days=cfg.horizon_days, folder=out.parent)
    cohorts_csv = None
    if tables.orders is not None:
        folder = cohorts_dir if cohorts_dir is not None else out.parent
        cohorts = cohort_retention(
            tables, as_of=as_of, period=acfg.cohorts.period, max_periods=acfg.cohorts.max_periods
        )
        written = cohorts.write(folder)
        cohorts_csv = str(written["csv"].relative_to(out.parent) if folder == out.parent else written["csv"])
    from analytics.monitoring_sections import backtest_section, drift_section
    from serving.drift import table_path

    drift_csv = None if churn_scores is None else table_path(churn_scores)  # retain score writes it beside them
    drift = [drift_section(drift_csv)] if drift_csv is not None and drift_csv.exists() else []
    path = write_report(
        out,
        tables=tables,
        as_of=as_of,
        config=acfg,
        horizon_days=cfg.horizon_days,
        period_days=period_days,
        churn_probability=prob,
        churn_unscored_reason=unscored,
        customer_value=value,
        churn_model=churn_section(churn_model_dir, currency=currency) if churn_model_dir else None,
        offer_model=offer_section(offer_model_dir, offers=catalog.names, currency=currency)
        if offer_model_dir
        else None,
        drivers=pd.read_csv(drivers) if drivers else None,
        currency=currency,
        scores=scores,
        cohorts_csv=cohorts_csv,
        extra=[*drift, *([backtest_section(backtest_dir)] if backtest_dir is not None else [])],
    )
    typer.echo(f"wrote the report to {path.resolve()}")
    if value is not None and value.images:
        typer.echo(f"wrote the predicted value plot to {value.images[0]}")
    if cohorts_csv:
        typer.echo(f"wrote the cohort table to {(out.parent / cohorts_csv) if folder == out.parent else cohorts_csv}")
